"""Explanations benchmark: Tree SHAP rows per second on one core and on every CPU, side by side.

Usage (from the repository root):

    python -m bench.explanations [--rows 8000] [--repeats 3] [--batch-size ROWS]

It reuses bench.inference's generated bike sharing rows (cached under bench/.data/) and its demo
model, a HistGradientBoostingRegressor trained and promoted into a throwaway MLflow store, then
loaded as ExplanationsJob loads it (the native sklearn flavour). It conforms the rows to the
model's signature, as the job does, and times side by side, interleaved, `--repeats` times:

  1 core:    TreeExplainer(workers=1), Tree SHAP in this process;
  all cores: TreeExplainer(workers=K), K = the CPUs this process may use (a cgroup CPU limit,
             bounded by the CPU affinity), the rows split over K forked processes.

Both explain the same rows batch by batch (`--batch-size`, by default the reader's, as the job
reads them) and must give identical SHAP values. It prints rows per second, the speed-up and
PASS or MISS per target, and exits 0 either way.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import statistics
import sys
import tempfile
import time

import numpy as np
import pyarrow.parquet as pq

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python bench/explanations.py` puts bench/ on the path
    sys.path.insert(0, str(ROOT))

from bench import inference as bench  # noqa: E402
from components.core import explainers, schemas  # noqa: E402
from components.io import datasets, registries  # noqa: E402
from components.utils import cpus  # noqa: E402

TARGET_SPEEDUP = 1.7  # all cores / 1 core, with 2 cores or more
TARGET_ROWS_PER_SECOND = 3_000  # on all cores
BACKGROUND_ROWS = 100  # Tree SHAP ignores it; the signature of explain() wants one


def explain_all(
    explainer: explainers.Explainer, model, batches: list, background
) -> tuple[float, np.ndarray]:
    """Explain every batch; return the seconds taken and the SHAP values, in row order."""
    started = time.perf_counter()
    values = [explainer.explain(model, batch, background).values for batch in batches]
    return time.perf_counter() - started, np.concatenate(values)


def report(
    args: argparse.Namespace,
    workers: int,
    runs: tuple[list[float], list[float]],
    loads: tuple[float, float],
) -> None:
    """Print the table, the two summary lines and the targets.

    Args:
        args: the command line.
        workers: the processes of the all-cores runs.
        runs: the seconds of each 1-core run and of each all-cores run.
        loads: the load average before and after the runs.
    """
    one, many = (statistics.median(seconds) for seconds in runs)
    one_rate, many_rate = args.rows / one, args.rows / many
    speedup = one / many

    def times(seconds: list[float]) -> str:
        return "runs: " + " ".join(f"{each:.2f}" for each in seconds)

    limit = cpus.cgroup_cpu_limit()
    print()
    print(
        f"Explanations benchmark: Tree SHAP of {args.rows:,} rows in batches of "
        f"{args.batch_size:,}, {args.repeats} interleaved repeats; {workers} CPUs available "
        f"(cgroup limit {limit or 'none'}, affinity {cpus.affinity_cpus()}, "
        f"machine {os.cpu_count()}), load average {loads[0]:.1f} before / {loads[1]:.1f} after"
    )
    bench.line("1 core, median", f"{one:.2f} s", times(runs[0]))
    bench.line(f"all cores ({workers}), median", f"{many:.2f} s", times(runs[1]))
    bench.line("SHAP values, all cores vs 1 core", "identical")
    print()
    print(f"explanations rows/s: 1 core {one_rate:,.0f}, all cores ({workers}) {many_rate:,.0f}")
    print(f"speed-up with {workers} cores: {speedup:.2f}x")
    print()
    print("Targets")
    if workers >= 2:
        bench.line(
            f"speed-up >= {TARGET_SPEEDUP}x (2 cores or more)",
            f"{speedup:.2f}x",
            bench.verdict(speedup >= TARGET_SPEEDUP),
        )
    else:
        bench.line(f"speed-up >= {TARGET_SPEEDUP}x", "skipped", "(1 CPU available)")
    bench.line(
        f"all cores >= {TARGET_ROWS_PER_SECOND:,} rows/s",
        f"{many_rate:,.0f}",
        bench.verdict(many_rate >= TARGET_ROWS_PER_SECOND),
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.explanations",
        description="Time Tree SHAP explanations on one core and on every CPU, side by side.",
    )
    parser.add_argument("--rows", type=int, default=8_000, help="rows explained (default 8,000)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repetitions (3)")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=datasets.ParquetReader.model_fields["batch_size"].default,
        help="rows per explain() call (default: the reader's batch size)",
    )
    args = parser.parse_args(argv)
    if args.rows <= 0 or args.repeats <= 0 or args.batch_size <= 0:
        parser.error("--rows, --repeats and --batch-size must be positive")
    args.batch_size = min(args.batch_size, args.rows)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ["SLACK_WEBHOOK_URL"] = ""  # alerts stay in the log
    path = bench.ensure_dataset(args.rows)
    with tempfile.TemporaryDirectory(prefix="bench-explanations-") as workdir:
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{pathlib.Path(workdir) / 'mlflow.db'}"
        print("training and promoting a model into a throwaway MLflow store ...", flush=True)
        predictor = registries.SklearnLoader().load(bench.train_and_promote())
    model = predictor.model
    inputs = schemas.conform(pq.read_table(path).to_pandas(), predictor.signature)
    batches = [
        inputs.iloc[start : start + args.batch_size]
        for start in range(0, len(inputs), args.batch_size)
    ]
    background = inputs.head(BACKGROUND_ROWS)
    workers = cpus.available_cpus()
    load_before = os.getloadavg()[0]
    runs: tuple[list[float], list[float]] = ([], [])
    for repeat in range(1, args.repeats + 1):
        seconds_one, values_one = explain_all(
            explainers.TreeExplainer(workers=1), model, batches, background
        )
        seconds_all, values_all = explain_all(
            explainers.TreeExplainer(workers=workers), model, batches, background
        )
        if not np.array_equal(values_one, values_all):
            raise RuntimeError(f"{workers} processes gave other SHAP values than one")
        runs[0].append(seconds_one)
        runs[1].append(seconds_all)
        print(
            f"  repeat {repeat}/{args.repeats}: 1 core {seconds_one:.2f} s, "
            f"{workers} cores {seconds_all:.2f} s",
            flush=True,
        )
    report(args, workers, runs, (load_before, os.getloadavg()[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
