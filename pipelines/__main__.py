"""Command line: compile | run --local | submit | schedule."""

from __future__ import annotations

import argparse
import logging
import sys


def build_parser() -> argparse.ArgumentParser:
    """Build the CLI parser; each sub-command lives in its own module."""
    from pipelines import compilation, local, schedules, submit

    parser = argparse.ArgumentParser(prog="python -m pipelines", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    compilation.add_arguments(commands.add_parser("compile", help="Compile every pipeline."))
    local.add_arguments(commands.add_parser("run", help="Run a pipeline here with kfp.local."))
    submit.add_arguments(commands.add_parser("submit", help="Submit a compiled pipeline to KFP."))
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
