"""Start-up benchmark: what each step pays before its work, and the pipeline against its job.

Usage (from the repository root):

    python -m bench.startup [--repeats 3] [--rows 2000000] [--pipeline-repeats 1]

A step under kfp.local (and in a pod) is a fresh interpreter running
`python -m kfp.dsl.executor_main` on the component's source: it imports kfp, then the
component's body imports the job it runs and what the job's modules import at their top level.
For each step (train, evaluate, promote, predict, explain, notify) the benchmark starts such an
interpreter `--repeats` times, interleaved, which imports what the step imports (kfp's executor,
then the import statements of the component's body, read from its source) and exits; it prints
the median wall time from process start to exit, kfp's share, and the heavy libraries the chain
loaded. Beside them it times the libraries a predict step cannot start without (MLflow,
scikit-learn, pandas, pyarrow: FLOOR_IMPORTS) after the same kfp header: this machine's floor,
so that what a step adds to it reads the same on a fast machine and a slow one. Imports a job
makes later, when it needs them (an MLflow flavour, a store's driver, skops to load a model),
are not in these figures: they are paid where they are used.

Side by side, interleaved, it times the same chains with their bytecode cached (a private
PYTHONPYCACHEPREFIX, warmed once): a venv installed without compiled bytecode, in an environment
that sets PYTHONDONTWRITEBYTECODE, compiles every imported module from source at every start.

It then times, side by side, the `inference` pipeline under kfp.local (`python -m pipelines run
inference --local`: predict, explain, notify, each step a fresh process) and InferenceJob alone
in one fresh process (imports included), on the same `--rows` rows (bench.inference's generated
bike sharing rows, cached under bench/.data/) with the same Champion, trained and promoted into
a throwaway MLflow store. It prints PASS or MISS per target and exits 0 either way.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import inspect
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python bench/startup.py` puts bench/ on the path, not the root
    sys.path.insert(0, str(ROOT))

# The steps of the pipelines, by component name (see components.COMPONENTS).
STEPS = ("train", "evaluate", "promote", "predict", "explain", "notify")
# Libraries worth naming when a step's chain loads them: the slow ones to import.
HEAVY = (
    "mlflow",
    "sklearn",
    "scipy",
    "pandas",
    "pyarrow",
    "pandera",
    "matplotlib",
    "skops",
    "shap",
    "sqlalchemy",
    "pytest",
)
# What KFP's executor imports before it runs a component's body: the ephemeral component
# module's own header (see kfp.dsl.component_factory), then the executor.
KFP_HEADER = (
    "import kfp\nfrom kfp import dsl\nfrom kfp.dsl import *\nfrom typing import *\n"
    "import kfp.dsl.executor_main\n"
)
RESULT_PREFIX = "BENCH-RESULT "
# Set by the command KFP compiles for every step: kfp's package then leaves its client (and the
# Kubernetes library) unimported.
STEP_ENVIRONMENT = {"_KFP_RUNTIME": "true"}

# The libraries a predict step cannot start without, whatever the project does: MLflow (to find
# and load the model), scikit-learn (which every model framework here imports, and which
# imports scipy.stats), pandas and pyarrow; mlflow.pyfunc comes later, with the model. Timed as
# a chain of its own, it is this machine's floor: what a step's start-up costs beyond it is the
# project's.
FLOOR = "libraries alone"
FLOOR_IMPORTS = "import mlflow, sklearn.base, pandas, pyarrow.parquet, pydantic"

TARGET_STARTUP_SECONDS = {"predict": 2.0, "notify": 2.0}
TARGET_PIPELINE_RATIO = 1.5  # the inference pipeline / InferenceJob alone, at 2M rows


# %% WHAT A STEP IMPORTS


def body_imports(step: str) -> str:
    """The import statements of a component's body, as source lines, in their order.

    They are what the step imports before its job runs: the component module's top level holds
    only kfp and the standard library, and KFP's executor runs the function's source alone.

    Args:
        step: a component name (a key of components.COMPONENTS).
    """
    import components

    function = importlib.import_module(components.COMPONENTS[step]).__dict__[step].python_func
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    imports = [
        node for node in ast.walk(tree.body[0]) if isinstance(node, (ast.Import, ast.ImportFrom))
    ]
    return "\n".join(ast.unparse(node) for node in sorted(imports, key=lambda n: n.lineno))


def chain_program(step: str) -> str:
    """A program that imports what the step imports, then prints the split and the modules.

    Args:
        step: a component name, or FLOOR for the libraries alone.
    """
    return (
        "import time\nstarted = time.perf_counter()\n"
        + KFP_HEADER
        + "kfp_done = time.perf_counter()\n"
        + (FLOOR_IMPORTS if step == FLOOR else body_imports(step))
        + "\nimport json, sys\n"
        + f"heavy = sorted(set({list(HEAVY)!r}) & {{m.split('.')[0] for m in sys.modules}})\n"
        + f"print({RESULT_PREFIX!r} + json.dumps({{'kfp': kfp_done - started, "
        "'body': time.perf_counter() - kfp_done, 'heavy': heavy}))\n"
    )


def bytecode_state() -> str:
    """Whether this environment's imports read cached bytecode or compile every module.

    A venv installed by `uv pip install` without `--compile-bytecode` holds no .pyc files; with
    PYTHONDONTWRITEBYTECODE set, none is ever written, so each step compiles every module it
    imports from source again (pip compiles at install, as the image's build does).
    """
    import mlflow

    cached = pathlib.Path(importlib.util.cache_from_source(mlflow.__file__)).exists()
    if cached:
        return "the venv holds compiled bytecode"
    if sys.dont_write_bytecode:
        return "no bytecode in the venv and PYTHONDONTWRITEBYTECODE set: every import compiles"
    return "no bytecode in the venv yet: the first import of each module writes it"


def cached_environment(prefix: pathlib.Path) -> dict[str, str]:
    """The environment of a step whose imports read bytecode cached under `prefix`."""
    environment = {**os.environ, **STEP_ENVIRONMENT, "PYTHONPYCACHEPREFIX": str(prefix)}
    environment.pop("PYTHONDONTWRITEBYTECODE", None)
    return environment


def time_chain(step: str, environment: dict[str, str] | None = None) -> dict:
    """Run the step's import chain in a fresh interpreter; return its wall time and split.

    Args:
        step: a component name.
        environment: the interpreter's environment; this one's, as kfp.local passes it, if None.
    """
    started = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, "-c", chain_program(step)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=environment or {**os.environ, **STEP_ENVIRONMENT},
    )
    seconds = time.perf_counter() - started
    if completed.returncode != 0:
        raise RuntimeError(f"{step}'s imports failed:\n{completed.stderr[-4000:]}")
    [line] = [out for out in completed.stdout.splitlines() if out.startswith(RESULT_PREFIX)]
    return {"seconds": seconds, **json.loads(line.removeprefix(RESULT_PREFIX))}


# %% THE PIPELINE AGAINST ITS JOB


def run_pipeline(input_path: pathlib.Path, root: pathlib.Path) -> float:
    """Run the `inference` pipeline under kfp.local from the CLI; return its wall time."""
    from bench import inference as bench

    command = [sys.executable, "-m", "pipelines", "run", "inference", "--local"]
    command += ["--param", f"data={input_path}", "--param", f"model_name={bench.MODEL_NAME}"]
    command += ["--root", str(root)]
    started = time.perf_counter()
    completed = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    seconds = time.perf_counter() - started
    if completed.returncode != 0:
        raise RuntimeError(f"the inference pipeline failed:\n{completed.stdout[-4000:]}")
    return seconds


def run_job_alone(input_path: pathlib.Path, output_path: pathlib.Path) -> dict:
    """Run InferenceJob in a fresh interpreter (bench.inference's child); time it whole."""
    from bench import inference as bench

    started = time.perf_counter()
    measured = bench.run_job(input_path, output_path, None, drift=True)
    output_path.unlink()
    return {"process_seconds": time.perf_counter() - started, **measured}


# %% REPORT


def verdict(passed: bool) -> str:
    return "PASS" if passed else "MISS"


def line(label: str, value: str, note: str = "") -> None:
    """One row of the table: a label, a value, a note."""
    print(f"  {label:<44} {value:>10}   {note}".rstrip())


def median_seconds(runs: list[dict], key: str = "seconds") -> float:
    return statistics.median(run[key] for run in runs)


def report_startup(
    chains: dict[str, list[dict]], cached: dict[str, list[dict]], repeats: int, loads: tuple
) -> dict[str, float]:
    """Print each step's start-up, as installed and with bytecode cached; return the former."""
    medians = {step: median_seconds(runs) for step, runs in chains.items()}
    print()
    print(
        f"Step start-up: a fresh interpreter importing what the step imports, median of "
        f"{repeats} interleaved, {os.cpu_count()} CPUs, "
        f"load average {loads[0]:.1f} before / {loads[1]:.1f} after"
    )
    print(f"  (this environment: {bytecode_state()})")
    for step, runs in chains.items():
        line(
            f"{step}: process start to imports done",
            f"{medians[step]:.2f} s",
            f"kfp {median_seconds(runs, 'kfp'):.2f} s, "
            f"the step's imports {median_seconds(runs, 'body'):.2f} s",
        )
        line("    with bytecode cached", f"{median_seconds(cached[step]):.2f} s")
        line("    loads", "", ", ".join(runs[0]["heavy"]))
    return medians


def report_pipeline(pipelines: list[float], jobs: list[dict], rows: int) -> float:
    """Print the pipeline against the job alone; return the ratio of their medians."""
    pipeline = statistics.median(pipelines)
    job = statistics.median(run["process_seconds"] for run in jobs)
    work = statistics.median(run["seconds"] for run in jobs)
    print()
    print(f"The inference pipeline against InferenceJob alone, {rows:,} rows, drift on")
    line("inference pipeline under kfp.local", f"{pipeline:.2f} s", "predict, explain, notify")
    line("InferenceJob alone, one fresh process", f"{job:.2f} s", f"of which its run {work:.2f} s")
    ratio = pipeline / job
    line("ratio pipeline / job alone", f"{ratio:.2f}")
    return ratio


# %% MAIN


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.startup",
        description="Time each step's start-up, and the inference pipeline against its job.",
    )
    parser.add_argument("--repeats", type=int, default=3, help="start-ups per step (3)")
    parser.add_argument(
        "--rows", type=int, default=2_000_000, help="rows of the pipeline run (2M; 0 skips it)"
    )
    parser.add_argument(
        "--pipeline-repeats", type=int, default=1, help="pipeline and job runs, interleaved (1)"
    )
    args = parser.parse_args(argv)
    if args.repeats <= 0 or args.pipeline_repeats <= 0 or args.rows < 0:
        parser.error("--repeats and --pipeline-repeats must be positive, --rows not negative")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Alerts stay in the log: the benchmark never posts to a real Slack webhook.
    os.environ["SLACK_WEBHOOK_URL"] = ""
    timed = (*STEPS, FLOOR)
    chains: dict[str, list[dict]] = {step: [] for step in timed}
    cached: dict[str, list[dict]] = {step: [] for step in timed}
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-startup-pycache-") as prefix:
        with_bytecode = cached_environment(pathlib.Path(prefix))
        for step in timed:  # compiles and caches what each chain imports, untimed
            time_chain(step, with_bytecode)
        for _ in range(args.repeats):
            for step in timed:
                chains[step].append(time_chain(step))
                cached[step].append(time_chain(step, with_bytecode))
    loads = (load_before, os.getloadavg()[0])
    medians = report_startup(chains, cached, args.repeats, loads)
    ratio = None
    if args.rows:
        from bench import inference as bench

        input_path = bench.ensure_dataset(args.rows)
        with tempfile.TemporaryDirectory(prefix="bench-startup-") as workdir:
            work = pathlib.Path(workdir)
            # A throwaway store; the job and the pipeline's steps inherit it.
            os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{work / 'mlflow.db'}"
            print("\ntraining and promoting a model into a throwaway MLflow store ...", flush=True)
            bench.train_and_promote()
            pipelines, jobs = [], []
            for repeat in range(1, args.pipeline_repeats + 1):
                jobs.append(run_job_alone(input_path, work / "predictions.parquet"))
                pipelines.append(run_pipeline(input_path, work / f"runs-{repeat}"))
                print(
                    f"  repeat {repeat}/{args.pipeline_repeats}: pipeline {pipelines[-1]:.2f} s, "
                    f"job alone {jobs[-1]['process_seconds']:.2f} s",
                    flush=True,
                )
        ratio = report_pipeline(pipelines, jobs, args.rows)
    print()
    print("Targets")
    for step, target in TARGET_STARTUP_SECONDS.items():
        seconds = medians[step]
        line(f"{step} start-up <= {target:.0f} s", f"{seconds:.2f} s", verdict(seconds <= target))
        seconds = median_seconds(cached[step])
        line("    with bytecode cached", f"{seconds:.2f} s", verdict(seconds <= target))
        if step == "predict":
            line(
                f"    beyond the {FLOOR}",
                f"{medians[step] - medians[FLOOR]:+.2f} s",
                f"what the project adds to this machine's floor, {medians[FLOOR]:.2f} s",
            )
    if ratio is None:
        line("pipeline / job alone", "skipped", "(--rows 0)")
    else:
        passed = verdict(ratio <= TARGET_PIPELINE_RATIO)
        line(
            f"pipeline / job alone at {args.rows:,} rows <= {TARGET_PIPELINE_RATIO}",
            f"{ratio:.2f}",
            passed,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
