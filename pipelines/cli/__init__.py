"""Command line: compile | run --local | submit | job | schedule | model.

Installed as `kfp-lifecycle`; `python -m pipelines` is the same.

usage:
  python -m pipelines run NAME --local [--config FILE] [--param KEY=VALUE ...] [--root DIR]
  python -m pipelines run NAME --local [--config FILE] [--param KEY=VALUE ...] --detach
  python -m pipelines submit NAME --host URL [--config FILE] [--param KEY=VALUE ...] [--detach]
  python -m pipelines job status|wait|cancel|result ID     # a job started with --detach
  python -m pipelines job list [--state S] [--host URL] [--json]   # the jobs, newest first
  python -m pipelines job prune --older-than DAYS [--dry-run]      # remove local jobs that ended
  python -m pipelines schedule sync --file schedules.yaml --host URL [--dry-run]
  python -m pipelines model history|rollback|approve|reject NAME ...  # the Champion's history
  python -m pipelines model reference NAME --data ROWS [--target COL]  # drift, performance ref.
  python -m pipelines run NAME --help      # NAME's parameters, their types and defaults
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

# The console script pyproject.toml installs; `python -m pipelines` runs the same CLI.
SCRIPT = "kfp-lifecycle"


def program() -> str:
    """How the user called the CLI: `kfp-lifecycle` for the installed script, else the module."""
    return SCRIPT if os.path.basename(sys.argv[0]) == SCRIPT else "python -m pipelines"


def version() -> str:
    """The installed version, with the kfp and MLflow it was locked with."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    def of(name: str) -> str:
        try:
            return installed(name)
        except PackageNotFoundError:
            return "not installed"

    return f"{SCRIPT} {of('kfp-model-lifecycle')} (kfp {of('kfp')}, mlflow {of('mlflow')})"


def build_parser() -> argparse.ArgumentParser:
    """Build the CLI parser; each sub-command lives in its own module."""
    from pipelines.cli import compile, job, model, run, schedule, submit

    prog = program()
    parser = argparse.ArgumentParser(
        prog=prog,
        description=__doc__.replace("  python -m pipelines ", f"  {prog} "),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=version())
    commands = parser.add_subparsers(dest="command", required=True)
    compile.add_arguments(commands.add_parser("compile", help="Compile every pipeline."))
    # run and submit bring their own --help, which lists the named pipeline's parameters.
    run.add_arguments(
        commands.add_parser("run", help="Run a pipeline here with kfp.local.", add_help=False)
    )
    submit.add_arguments(
        commands.add_parser("submit", help="Submit a compiled pipeline to KFP.", add_help=False)
    )
    job.add_arguments(
        commands.add_parser("job", help="Follow a job started with --detach: status, wait...")
    )
    schedule.add_arguments(
        commands.add_parser("schedule", help="Keep KFP recurring runs in step with a file.")
    )
    model.add_arguments(
        commands.add_parser("model", help="Champion history, rollback, approve or reject.")
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit status."""
    from components.utils import exits

    exits.exit_quickly()  # the command has loaded the ML stack: end at once when it is done
    args = build_parser().parse_args(argv)
    # Libraries' INFO (kfp.local's workspace, MLflow's store) only with --verbose; the
    # project's own messages always.
    verbose = getattr(args, "verbose", False)
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for own in ("pipelines", "components"):
        logging.getLogger(own).setLevel(logging.INFO)
    return int(args.handler(args) or 0)
