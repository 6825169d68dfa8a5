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
reads them) and must give identical SHAP values.

Then an XGBoost regressor of the same size as the demo's (100 trees of at most 31 leaves, the
categoricals native), logged with `mlflow.xgboost` and loaded as the job loads it
(`io.flavors.load_native`), is explained on the same rows two ways, interleaved:

  job path:       what ExplanationsJob does per batch: XGBoostExplainer.explain (XGBoost's
                  own pred_contribs on the device it may use), the values summed per input
                  column, the output table;
  pred_contribs:  `Booster.predict(DMatrix(batch), pred_contribs=True)` alone.

It prints rows per second, the ratios and PASS or MISS per target, and exits 0 either way.
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
TARGET_XGBOOST_RATIO = 1.10  # the job path's time / bare pred_contribs' time
XGBOOST_PARAMS = {"n_estimators": 100, "max_leaves": 31, "grow_policy": "lossguide"}
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
        "--case",
        choices=("all", "tree", "xgboost"),
        default="all",
        help="the cases timed: shap's Tree SHAP on 1 vs all cores, XGBoost's, or both (all)",
    )
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
        return measure(args, path)


def measure(args: argparse.Namespace, path: pathlib.Path) -> int:
    """Train the models into the throwaway store (MLFLOW_TRACKING_URI), then time each case."""
    print("training and promoting a model into a throwaway MLflow store ...", flush=True)
    predictor = registries.SklearnLoader().load(bench.train_and_promote())
    model = predictor.model
    inputs = schemas.conform(pq.read_table(path).to_pandas(), predictor.signature)
    batches = [
        inputs.iloc[start : start + args.batch_size]
        for start in range(0, len(inputs), args.batch_size)
    ]
    background = inputs.head(BACKGROUND_ROWS)
    if args.case in ("all", "tree"):
        tree_case(args, model, batches, background)
    if args.case in ("all", "xgboost"):
        xgboost_case(args, inputs, batches, background)
    return 0


def tree_case(args: argparse.Namespace, model, batches: list, background) -> None:
    """Time shap's Tree SHAP on one core and on every CPU, side by side; print the table."""
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


def xgboost_model(inputs) -> tuple[object, object]:
    """Train the demo-sized XGBoost regressor, log it with its flavour, load it as the job does.

    MLFLOW_TRACKING_URI must point at the throwaway store already.
    """
    import mlflow
    import pyarrow.parquet as parquet
    import xgboost
    from mlflow.models import infer_signature

    from components.io import flavors

    source = parquet.read_table(bench.SOURCE).to_pandas()
    columns = list(inputs.columns)
    frame = source[columns].astype({name: "category" for name in bench.CATEGORICAL})
    model = xgboost.XGBRegressor(**XGBOOST_PARAMS, enable_categorical=True, tree_method="hist")
    model.fit(frame, source[bench.TARGET])
    with mlflow.start_run():
        info = mlflow.xgboost.log_model(
            model, name="model", signature=infer_signature(source[columns], model.predict(frame))
        )
    native = flavors.load_native(info.model_uri)
    assert native is not None and native.flavor == "xgboost"
    return native.model, frame


def job_path(explainer: explainers.Explainer, model, batches: list, background) -> float:
    """The explanations job's work per batch: explain, sum per input column, make the table."""
    started = time.perf_counter()
    for batch in batches:
        explainer.explain(model, batch, background).grouped(batch.columns).frame()
    return time.perf_counter() - started


def bare_contribs(booster, batches: list) -> float:
    """XGBoost's pred_contribs alone on the same batches (as categoricals, as it was trained)."""
    import xgboost

    started = time.perf_counter()
    for batch in batches:
        matrix = xgboost.DMatrix(batch, enable_categorical=True)
        booster.predict(matrix, pred_contribs=True)
    return time.perf_counter() - started


def xgboost_case(args: argparse.Namespace, inputs, batches: list, background) -> None:
    """Time the job path against bare pred_contribs on an XGBoost model; print the ratio."""
    from components.utils import devices

    model, _ = xgboost_model(inputs)
    booster = explainers.xgboost_booster(model)
    device = devices.xgboost_device()
    booster.set_param({"device": device})
    categorical = [
        batch.astype({name: "category" for name in bench.CATEGORICAL}) for batch in batches
    ]
    explainer = explainers.XGBoostExplainer()
    job_path(explainer, model, batches[:1], background)  # warm up both
    bare_contribs(booster, categorical[:1])
    runs: tuple[list[float], list[float]] = ([], [])
    for _ in range(args.repeats):
        runs[0].append(job_path(explainer, model, batches, background))
        runs[1].append(bare_contribs(booster, categorical))
    job, bare = (statistics.median(seconds) for seconds in runs)
    ratio = job / bare
    print()
    print(
        f"XGBoost explanations ({XGBOOST_PARAMS['n_estimators']} trees, <= "
        f"{XGBOOST_PARAMS['max_leaves']} leaves, on {device}): {args.rows:,} rows in batches "
        f"of {args.batch_size:,}, {args.repeats} interleaved repeats"
    )
    bench.line("job path, median", f"{job:.3f} s", f"{args.rows / job:,.0f} rows/s")
    bench.line("pred_contribs alone, median", f"{bare:.3f} s", f"{args.rows / bare:,.0f} rows/s")
    bench.line(
        f"ratio <= {TARGET_XGBOOST_RATIO:.2f}",
        f"{ratio:.3f}",
        bench.verdict(ratio <= TARGET_XGBOOST_RATIO),
    )


if __name__ == "__main__":
    sys.exit(main())
