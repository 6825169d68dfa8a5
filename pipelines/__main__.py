"""Command line: compile | run --local | submit | job | schedule.

usage:
  python -m pipelines run NAME --local [--config FILE] [--param KEY=VALUE ...] [--root DIR]
  python -m pipelines run NAME --local [--config FILE] [--param KEY=VALUE ...] --detach
  python -m pipelines submit NAME --host URL [--config FILE] [--param KEY=VALUE ...] [--detach]
  python -m pipelines job status|wait|cancel|result ID     # a job started with --detach
  python -m pipelines schedule sync --file schedules.yaml --host URL [--dry-run]
  python -m pipelines run NAME --help      # NAME's parameters, their types and defaults
"""

from __future__ import annotations

import argparse
import logging
import sys


def build_parser() -> argparse.ArgumentParser:
    """Build the CLI parser; each sub-command lives in its own module."""
    from pipelines import compilation, jobs_cli, local, schedules, submit

    parser = argparse.ArgumentParser(
        prog="python -m pipelines",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    compilation.add_arguments(commands.add_parser("compile", help="Compile every pipeline."))
    # run and submit bring their own --help, which lists the named pipeline's parameters.
    local.add_arguments(
        commands.add_parser("run", help="Run a pipeline here with kfp.local.", add_help=False)
    )
    submit.add_arguments(
        commands.add_parser("submit", help="Submit a compiled pipeline to KFP.", add_help=False)
    )
    jobs_cli.add_arguments(
        commands.add_parser("job", help="Follow a job started with --detach: status, wait...")
    )
    schedules.add_arguments(
        commands.add_parser("schedule", help="Keep KFP recurring runs in step with a file.")
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit status."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    args = build_parser().parse_args(argv)
    return int(args.handler(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
