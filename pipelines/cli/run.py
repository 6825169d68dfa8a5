"""`run NAME --local`: check a pipeline's parameters, run it here, say what it produced.

The argparse side of local runs; the runner itself is `pipelines.local.runner`, the background
worker that `--detach` starts is `pipelines.local.background`.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import sys
import time
import typing as T

from components.utils import secrets
from pipelines.cli import options
from pipelines.cli.guard import guarded
from pipelines.cli.options import add_parameter_arguments
from pipelines.common.errors import UsageError
from pipelines.local import runner
from pipelines.local.console import Console


def detach(name: str, values: dict[str, T.Any], root: pathlib.Path | None) -> int:
    """Start the run in a background process and print its job id alone (for scripts)."""
    from pipelines.jobs import futures
    from pipelines.local import background

    if root is not None:
        raise UsageError(
            "--detach keeps a run's outputs in its job folder ($LIFECYCLE_HOME/jobs/<id>); "
            "leave out --root"
        )
    future = futures.LocalFuture(background.submit(name, values))
    print(f"started {name} in the background; log: {future.log}", file=sys.stderr)
    print(future.id)
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`run NAME --local [--config FILE] [--param K=V ...] [--root DIR]`.

    Args:
        parser: the `run` sub-command parser, made with add_help=False (its --help lists the
            named pipeline's parameters).
    """
    from pipelines.checks import params
    from pipelines.dags import catalog

    parser.add_argument(
        "name",
        nargs="?",
        help=f"pipeline: {', '.join(catalog.NAMES)} (default: the --config's `pipeline:`)",
    )
    parser.add_argument(
        "--local",
        action="store_true",
        help="run here with kfp.local (required: `submit` runs a pipeline on a cluster)",
    )
    add_parameter_arguments(parser, lambda args: (args.name, params.of_pipeline(args.name)))
    parser.add_argument(
        "--root",
        type=pathlib.Path,
        default=None,
        help="output folder (default: $LIFECYCLE_HOME/runs, "
        "else ~/.local/share/kfp-model-lifecycle/runs)",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="print everything the steps print (KFP's executor input, library warnings); "
        "each step's whole output is in <run>/<task>/output.log either way",
    )
    parser.add_argument(
        "--detach",
        action="store_true",
        help="run in a background process; print only its job id for "
        "`python -m pipelines job status|wait|cancel|result ID`",
    )
    parser.set_defaults(handler=run_command)


@guarded
def run_command(args: argparse.Namespace) -> int:
    """Validate the pipeline and its parameters, run it locally, then say where outputs are."""
    from pipelines.checks import params, preflight

    args.name = options.pipeline_name(args)
    if not args.local:
        raise UsageError(
            f"`run` runs a pipeline on this machine: add --local (run {args.name} --local ...); "
            f"to run it on a KFP cluster, use `submit {args.name} --host URL`"
        )
    console = Console(verbose=args.verbose)
    if not (args.dry_run or args.detach):
        console.start_interpreters()  # the first step's imports overlap the checks below
    try:
        parameters = params.of_pipeline(args.name)
        # Every step has checked its settings here (preflight.validate).
        resolved = params.resolve(args.name, parameters, args.config, args.params)
        values = preflight.validate(args.name, resolved, parameters)
    except BaseException:
        console.close_interpreters()  # nothing will run
        raise
    if args.dry_run:  # it shows the steps and their settings, and stops
        print(preflight.describe(args.name, values, parameters), end="")
        return 0
    if args.detach:
        return detach(args.name, values, args.root)
    started = time.monotonic()
    try:
        ok, run_dir = runner.run_local(args.name, values, args.root, console=console)
    except BaseException:
        # latest/ shows one run: an earlier run's files must not pass for this one's.
        shutil.rmtree((args.root or runner.default_root()) / runner.LATEST, ignore_errors=True)
        raise
    seconds = time.monotonic() - started
    print(f"\nOutputs in {run_dir}; this run's key outputs:")
    if not runner.print_outputs(run_dir):
        print("  none: no step that writes one ran to its end")
    # Shown, never with its credentials: this output ends up in terminals and CI logs.
    uri = secrets.redact(os.environ["MLFLOW_TRACKING_URI"])
    model = values.get("model_name", getattr(parameters.get("model_name"), "default", None))
    # Named only when registered: a run that failed before registering it leaves none.
    models = f"Models > {model}" if model and runner.registered(model, console.steps) else "Models"
    if uri.startswith(("http://", "https://")):
        print(f"MLflow UI: {uri} ({models})")
    else:
        mlflow = pathlib.Path(sys.executable).parent / "mlflow"
        ui = f"{mlflow} ui --backend-store-uri {uri}"
        print(f"MLflow UI: {ui}, then http://127.0.0.1:5000 ({models})")
    for line in runner.closing(args.name, ok, run_dir, console.steps, seconds, uri):
        print(line)
    return 0 if ok else 1
