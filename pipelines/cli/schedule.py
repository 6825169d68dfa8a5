"""`schedule sync --file FILE --host URL`: keep KFP recurring runs in step with a schedules file."""

from __future__ import annotations

import argparse
from pathlib import Path

from pipelines.checks import params
from pipelines.cli.guard import guarded
from pipelines.cli.options import add_connection_arguments
from pipelines.cluster.client import build_client, resolve_pipeline_file
from pipelines.cluster.schedules import DEFAULT_FILE, load_schedule_file, resolve_parameters, sync


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the `schedule` sub-commands (only `sync` for now) to its parser."""
    actions = parser.add_subparsers(dest="schedule_command", required=True)
    sync_parser = actions.add_parser("sync", help="Make KFP recurring runs match the file.")
    sync_parser.add_argument(
        "--file", type=Path, default=DEFAULT_FILE, help=f"schedules file (default: {DEFAULT_FILE})"
    )
    add_connection_arguments(sync_parser)
    sync_parser.add_argument("--dry-run", action="store_true", help="print the plan only")
    sync_parser.set_defaults(handler=sync_command)


@guarded
def sync_command(args: argparse.Namespace) -> int:
    """Validate the file, its pipelines and parameters (every step's), then sync or plan."""
    config = load_schedule_file(args.file)
    pipelines = sorted({schedule.pipeline for schedule in config.schedules})
    files = {
        name: resolve_pipeline_file(name, pipelines_dir=args.pipelines_dir) for name in pipelines
    }
    config = resolve_parameters(config, files, params.of_folder(args.pipelines_dir))
    client = build_client(args.host, args.namespace, args.token_env)
    sync(client, config, files, dry_run=args.dry_run, namespace=args.namespace)
    return 0
