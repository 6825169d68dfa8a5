"""`submit NAME --host URL`: check a pipeline's parameters, start a run of it on KFP, follow it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipelines.checks import params, preflight
from pipelines.cli import options
from pipelines.cli.guard import guarded
from pipelines.cli.options import add_connection_arguments, add_parameter_arguments
from pipelines.cluster.client import build_client, resolve_pipeline_file
from pipelines.cluster.submit import FINAL_STATES, run_link, start_run, wait_for_run


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the `submit` arguments and handler to its sub-command parser.

    Args:
        parser: the `submit` sub-command parser, made with add_help=False (its --help lists
            the named pipeline's parameters, read from the compiled file).
    """
    parser.add_argument(
        "name",
        nargs="?",
        help="pipeline name: pipelines/compiled/<name>.yaml (default: the --config's `pipeline:`)",
    )
    add_connection_arguments(parser)
    add_parameter_arguments(parser, _compiled_parameters)
    parser.add_argument(
        "--experiment", default="Default", help="KFP experiment (created if missing)"
    )
    parser.add_argument("--run-name", default=None, help="run name (default: <name>-<UTC time>)")
    parser.add_argument("--file", type=Path, default=None, help="compiled YAML to submit instead")
    finish = parser.add_mutually_exclusive_group()
    finish.add_argument("--wait", action="store_true", help="wait for the run to finish")
    finish.add_argument(
        "--detach",
        action="store_true",
        help="print only the job id (kfp:<run id>) for `python -m pipelines job ...`",
    )
    parser.add_argument(
        "--timeout", type=float, default=3600.0, help="seconds --wait waits (default: 3600)"
    )
    parser.add_argument(
        "--poll-seconds", type=float, default=10.0, help="seconds between --wait polls"
    )
    parser.set_defaults(handler=submit_command)


def _compiled_parameters(args: argparse.Namespace) -> tuple[str, dict[str, params.Parameter]]:
    """The parameters of the compiled file that `submit` would send (for --help)."""
    path = resolve_pipeline_file(args.name, args.file, args.pipelines_dir)
    return args.name, params.of_file(path)


@guarded
def submit_command(args: argparse.Namespace) -> int:
    """Upload the pipeline if it changed, start a run, print its link, optionally wait."""
    args.name = options.pipeline_name(args)
    path = resolve_pipeline_file(args.name, args.file, args.pipelines_dir)
    # Every value is checked against the compiled file, by the steps that take it, before
    # anything reaches KFP; a run config serves every compiled pipeline of the folder.
    parameters = params.of_file(path)
    pipelines = params.of_folder(args.pipelines_dir)
    resolved = params.resolve(args.name, parameters, args.config, args.params, pipelines)
    values = preflight.validate(args.name, resolved, parameters)
    if args.dry_run:
        print(preflight.describe(args.name, values, parameters), end="")
        return 0
    client = build_client(args.host, args.namespace, args.token_env)
    version, run_id = start_run(
        client, args.name, path, values, args.experiment, args.run_name, args.namespace
    )
    verb = "uploaded" if version.uploaded else "reusing unchanged"
    print(
        f"{verb} pipeline version {version.version_name} ({version.version_id})",
        file=sys.stderr if args.detach else sys.stdout,
    )
    # Here: it loads MLflow, which the other commands need not wait for.
    from pipelines.jobs import futures

    if args.detach:
        # The future id alone on stdout, for `ID=$(python -m pipelines submit ... --detach)`.
        print(f"run {run_id}: {run_link(args.host, run_id)}", file=sys.stderr)
        print(f"{futures.KFP}:{run_id}")
        return 0
    print(f"run {run_id}: {run_link(args.host, run_id)}")
    print(f"job id: {futures.KFP}:{run_id} (python -m pipelines job status|wait|result|cancel ID)")
    if not args.wait:
        return 0
    state = wait_for_run(client, run_id, args.timeout, args.poll_seconds)
    if state not in FINAL_STATES:
        print(f"run {run_id} still {state} after {args.timeout:g}s", file=sys.stderr)
        return 1
    print(f"run {run_id} finished: {state}")
    return 0 if state == "SUCCEEDED" else 1
