"""Inference benchmark: InferenceJob end to end against the raw estimator, and its peak memory.

Usage (from the repository root):

    python -m bench.inference [--rows 5000000] [--large-rows 20000000] [--repeats 3]
                              [--batch-size ROWS] [--model-kind KIND]

It generates a Parquet file of `--rows` rows with the bike sharing schema by resampling the real
rows (cached under bench/.data/), trains and promotes a model into a throwaway MLflow store, then
times side by side, interleaved, `--repeats` times:

  (a) InferenceJob end to end (connect to MLflow, find and load the Champion, read Parquet,
      validate, predict batch by batch, write Parquet), each run in a fresh process so that its
      peak RSS is its own; module imports happen before the timer starts, as for (b); once
      with drift off and once with drift on (the default: every batch counted into the
      training profile's bins, and the drift report written to MLflow);
  (b) the same fitted sklearn Pipeline, loaded with mlflow.sklearn.load_model, predicting the
      same rows already in memory as one pandas DataFrame; for an XGBoost kind
      (`--model-kind XGBRegressor`), XGBoost's own `Booster.inplace_predict` on those rows
      already preprocessed (columns chosen, categories cast) before the timer.

It then runs the job once over `--large-rows` rows, drift on, to show that its peak memory does
not grow with the row count. It prints PASS or MISS per target and exits 0 either way.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import pathlib
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import typing as T
import warnings

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python bench/inference.py` puts bench/ on the path, not the root
    sys.path.insert(0, str(ROOT))

import mlflow  # noqa: E402

from components import demo  # noqa: E402
from components.core import models  # noqa: E402
from components.io import datasets, registries, services  # noqa: E402
from components.jobs import inference, promotion, training  # noqa: E402

SOURCE = pathlib.Path(demo.resolve("demo://bike-sharing/hour.parquet"))
DATA_DIR = ROOT / "bench" / ".data"
ROW_GROUP_ROWS = 131_072
CHUNK_ROWS = 4 * ROW_GROUP_ROWS  # rows generated at a time: ~500k, four whole row groups
SEED = 42
MODEL_NAME = "bike-sharing"
# The demo data's target and the integer codes that mean categories (confs/bike-sharing.yaml).
TARGET = "cnt"
CATEGORICAL = ["season", "weathersit"]
# The demo features: every column but the ids, the date and the two counts that add up to cnt.
EXCLUDE = ["instant", "dteday", "casual", "registered"]
ALIAS = "Champion"
RESULT_PREFIX = "BENCH-RESULT "
# Modules that the job imports lazily: on its first call to this benchmark's sqlite store, and
# (skops, about 0.6 s) as it loads the model, which (b) loads before its timer. The child
# imports them before its timer starts, as it imports the job's own modules: (a) and (b) both
# leave imports out. The child prints how long they took.
LAZY_IMPORTS = (
    "mlflow.store.tracking.sqlalchemy_store",
    "mlflow.store.model_registry.sqlalchemy_store",
    "skops.io",
)

DEFAULT_KIND = "HistGradientBoostingRegressor"
TARGET_RATIO = 1.10  # job time (drift on) / raw predict time
TARGET_PEAK_MB = 600  # the job's peak RSS at the default row count
TARGET_GROWTH = 1.10  # the large run's peak RSS / the default run's peak RSS


def megabytes(kib: float) -> float:
    """KiB (as Linux reports RSS) to MB (10^6 bytes)."""
    return kib * 1024 / 1e6


def peak_rss_kib() -> int:
    """This process's peak resident set size so far, in KiB.

    VmHWM belongs to this process alone, whereas ru_maxrss of a child starts at its parent's
    peak (Linux keeps it across fork and exec), which would charge the job with this benchmark.
    """
    status = pathlib.Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # not Linux: KiB or bytes


# %% DATA


def dataset_path(rows: int) -> pathlib.Path:
    """The cached generated file for a row count."""
    return DATA_DIR / f"bike-sharing-{rows}.parquet"


def generate(rows: int, path: pathlib.Path) -> None:
    """Write `rows` real bike sharing rows drawn with replacement, chunk by chunk.

    Only one chunk is in memory at a time; `instant` is renumbered so it stays a unique id. The
    file appears under its final name only once it is complete.
    """
    source = pq.read_table(SOURCE)
    rng = np.random.default_rng(SEED)
    instant = source.schema.get_field_index("instant")
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with pq.ParquetWriter(temporary, source.schema) as writer:
            for start in range(0, rows, CHUNK_ROWS):
                size = min(CHUNK_ROWS, rows - start)
                chunk = source.take(rng.integers(0, source.num_rows, size))
                ids = pa.array(np.arange(start + 1, start + size + 1, dtype=np.int64))
                chunk = chunk.set_column(instant, "instant", ids)
                writer.write_table(chunk, row_group_size=ROW_GROUP_ROWS)
        temporary.rename(path)
    finally:
        temporary.unlink(missing_ok=True)


def ensure_dataset(rows: int) -> pathlib.Path:
    """Return the generated file for a row count, generating it on first use."""
    path = dataset_path(rows)
    if not path.exists():
        print(f"generating {rows:,} rows into {path.relative_to(ROOT)} ...", flush=True)
        started = time.perf_counter()
        generate(rows, path)
        size = path.stat().st_size / 1e6
        print(f"  done in {time.perf_counter() - started:.1f}s ({size:,.0f} MB)", flush=True)
    return path


# %% MODEL


def quiet_logs() -> services.LoggerService:
    """Jobs log warnings only, so that the benchmark's table stays readable."""
    return services.LoggerService(level="WARNING")


def train_and_promote(model_kind: str = DEFAULT_KIND) -> str:
    """Train and register a model on the real data, make it the Champion, return its URI.

    MLFLOW_TRACKING_URI must point at the throwaway store already.

    Args:
        model_kind: the model's KIND, with its default parameters (the demo's size).
    """
    reader = datasets.ParquetReader(path=str(SOURCE))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MLflow's hints about integer columns in the signature
        with training.TrainingJob(
            inputs=reader,
            target=TARGET,
            model=models.MODELS.coerce(model_kind),
            model_name=MODEL_NAME,
            exclude=EXCLUDE,
            categorical=CATEGORICAL,
            logger_service=quiet_logs(),
        ) as job:
            job.run()
    with promotion.PromotionJob(
        model_name=MODEL_NAME, alias=ALIAS, logger_service=quiet_logs()
    ) as job:
        job.run()
    return registries.uri_for(MODEL_NAME, ALIAS)


# %% (a) THE JOB, IN A FRESH PROCESS


def cpu_seconds() -> float:
    """CPU time (user + system) of this process so far, every thread included."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def child(input_path: str, output_path: str, batch_size: int | None, drift_policy: str) -> None:
    """Run InferenceJob once and print what it took as one JSON line."""
    importing = time.perf_counter()
    for module in LAZY_IMPORTS:
        importlib.import_module(module)
    imports_seconds = time.perf_counter() - importing
    imported_kib = peak_rss_kib()
    options = {"batch_size": batch_size} if batch_size else {}
    job = inference.InferenceJob(
        inputs=datasets.ParquetReader(path=input_path, **options),
        outputs=datasets.ParquetWriter(path=output_path),
        finder=registries.RegistryFinder(name=MODEL_NAME, alias_or_version=ALIAS),
        drift_policy=drift_policy,
        logger_service=quiet_logs(),
    )
    started, cpu_started = time.perf_counter(), cpu_seconds()
    with job:
        entered = time.perf_counter()
        outcome = job.run()
    result = {
        "seconds": time.perf_counter() - started,
        "cpu_seconds": cpu_seconds() - cpu_started,
        "setup_seconds": entered - started,
        "lazy_imports_seconds": imports_seconds,
        "rows": outcome.rows,
        "drift_checked": outcome.drift is not None,
        "batch_size": job.inputs.batch_size,
        "peak_rss_kib": peak_rss_kib(),
        "imported_rss_kib": imported_kib,
    }
    print(RESULT_PREFIX + json.dumps(result), flush=True)


def run_job(
    input_path: pathlib.Path, output_path: pathlib.Path, batch_size: int | None, drift: bool
) -> dict:
    """Run the job in a fresh interpreter and return what it measured."""
    command = [sys.executable, str(pathlib.Path(__file__).resolve()), "--child"]
    command += [str(input_path), str(output_path), "--drift-policy", "warn" if drift else "off"]
    if batch_size:
        command += ["--batch-size", str(batch_size)]
    completed = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if completed.returncode != 0:
        raise RuntimeError(f"the inference job failed:\n{completed.stderr[-4000:]}")
    lines = [line for line in completed.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if not lines:
        raise RuntimeError(f"the inference job printed no result:\n{completed.stdout[-4000:]}")
    measured = json.loads(lines[-1].removeprefix(RESULT_PREFIX))
    if measured["drift_checked"] != drift:
        raise RuntimeError(f"the job was to check drift: {drift}; it did: {not drift}")
    return measured


# %% (b) THE RAW ESTIMATOR, IN THIS PROCESS


class RawXGBoost:
    """XGBoost's own `inplace_predict` on rows already prepared as XGBoost takes them.

    The fitted pipeline's preprocessing (the feature columns, categories as pandas categoricals)
    is applied before the timer: (b) is the booster alone, the strictest baseline.
    """

    def __init__(self, pipeline: T.Any):
        self.preprocessor, self.booster = pipeline[:-1], pipeline[-1].get_booster()
        self.prepared: T.Any = None

    def prepare(self, frame: T.Any) -> None:
        self.prepared = self.preprocessor.transform(frame)

    def predict(self, frame: T.Any) -> np.ndarray:
        return np.asarray(self.booster.inplace_predict(self.prepared))


def raw_model(pipeline: T.Any, frame: T.Any) -> T.Any:
    """What (b) times: the sklearn Pipeline, or the XGBoost booster at its end."""
    if type(pipeline[-1]).__module__.startswith("xgboost"):
        raw = RawXGBoost(pipeline)
        raw.prepare(frame)
        return raw
    return pipeline


def run_raw(model, frame) -> tuple[dict, np.ndarray]:
    """Time the raw model's predict over the whole in-memory frame."""
    started, cpu_started = time.perf_counter(), cpu_seconds()
    predictions = np.asarray(model.predict(frame))
    seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu_started
    return {"seconds": seconds, "cpu_seconds": cpu}, predictions


def check_output(output_path: pathlib.Path, expected: np.ndarray) -> None:
    """The job must have written one prediction per input row, equal to the raw estimator's."""
    written = pq.read_table(output_path, columns=["prediction"]).column(0).to_numpy()
    if len(written) != len(expected) or not np.allclose(written, expected):
        raise RuntimeError(
            f"the job's {len(written):,} predictions differ from the raw estimator's "
            f"{len(expected):,}"
        )


# %% REPORT


def verdict(passed: bool) -> str:
    return "PASS" if passed else "MISS"


def line(label: str, value: str, note: str = "") -> None:
    """One row of the table: a label, a value, a note."""
    print(f"  {label:<44} {value:>10}   {note}".rstrip())


def median(runs: list[dict], key: str) -> float:
    return statistics.median(run[key] for run in runs)


def report(
    args: argparse.Namespace,
    runs: dict[str, list[dict]],
    raws: list[dict],
    large: dict | None,
    loads: tuple[float, float],
) -> None:
    """Print the measurements and the targets.

    Args:
        runs: the job's runs, by "off" and "on" (drift).
    """
    raw_median = median(raws, "seconds")
    medians = {name: median(measured, "seconds") for name, measured in runs.items()}
    ratios = {name: seconds / raw_median for name, seconds in medians.items()}
    on = runs["on"]
    peak = megabytes(max(run["peak_rss_kib"] for run in on))
    peak_off = megabytes(max(run["peak_rss_kib"] for run in runs["off"]))
    imported = megabytes(max(run["imported_rss_kib"] for run in on))
    rows = f"{args.rows:,} rows"

    def times(measured: list[dict]) -> str:
        return "runs: " + " ".join(f"{run['seconds']:.2f}" for run in measured)

    print()
    print(
        f"Inference benchmark, {args.model_kind}: {rows}, batch size {on[0]['batch_size']:,}, "
        f"{args.repeats} interleaved repeats, {os.cpu_count()} CPUs, "
        f"load average {loads[0]:.1f} before / {loads[1]:.1f} after"
    )
    line("(a) InferenceJob, drift off, median", f"{medians['off']:.2f} s", times(runs["off"]))
    line("(a) InferenceJob, drift on, median", f"{medians['on']:.2f} s", times(on))
    line("    of which job setup (logging, MLflow)", f"{median(on, 'setup_seconds'):.2f} s")
    line(
        "    not counted: MLflow store and skops imports",
        f"{median(on, 'lazy_imports_seconds'):.2f} s",
        "imported before the timer, like (b)'s imports",
    )
    raw_name = "Booster.inplace_predict" if "XGB" in args.model_kind else "Pipeline.predict"
    line(f"(b) raw {raw_name}, median", f"{raw_median:.2f} s", times(raws))
    line("ratio a/b, drift off (wall clock)", f"{ratios['off']:.3f}")
    line("ratio a/b, drift on (wall clock)", f"{ratios['on']:.3f}")
    line("drift's cost: on / off", f"{medians['on'] / medians['off']:.3f}")
    cpu_ratio = median(on, "cpu_seconds") / median(raws, "cpu_seconds")
    line("ratio a/b, drift on (CPU s, all threads)", f"{cpu_ratio:.3f}", "for reference")
    line("job throughput, drift on", f"{args.rows / medians['on'] / 1e6:.2f} M/s", "rows per s")
    line(f"job peak RSS, {rows}, drift on", f"{peak:.0f} MB", f"off: {peak_off:.0f} MB")
    line("    after imports", f"{imported:.0f} MB")
    if large:
        large_peak = megabytes(large["peak_rss_kib"])
        line(
            f"job peak RSS, {large['rows']:,} rows, drift on",
            f"{large_peak:.0f} MB",
            f"one run of {large['seconds']:.2f} s",
        )
    print()
    print("Targets")
    ratio = ratios["on"]
    passed = verdict(ratio <= TARGET_RATIO)
    line(f"ratio job/raw, drift on, <= {TARGET_RATIO}", f"{ratio:.3f}", passed)
    line(
        f"peak RSS at {rows} <= {TARGET_PEAK_MB} MB",
        f"{peak:.0f} MB",
        verdict(peak <= TARGET_PEAK_MB),
    )
    if large:
        growth = large_peak / peak
        line(
            f"peak RSS at {large['rows']:,} rows <= {TARGET_GROWTH} x that",
            f"{growth:.3f} x",
            verdict(growth <= TARGET_GROWTH),
        )
    else:
        line("peak RSS not growing with the row count", "skipped", "(--large-rows 0)")


# %% MAIN


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.inference",
        description="Time InferenceJob against the raw estimator and measure its peak memory.",
    )
    parser.add_argument("--rows", type=int, default=5_000_000, help="rows timed (default 5M)")
    parser.add_argument(
        "--large-rows",
        type=int,
        default=20_000_000,
        help="rows of the memory-growth run (default 20M; 0 skips it)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repetitions (3)")
    parser.add_argument(
        "--model-kind",
        default=DEFAULT_KIND,
        help=f"the model's KIND, default parameters ({DEFAULT_KIND}; XGBRegressor times "
        "XGBoost's own inplace_predict as (b))",
    )
    parser.add_argument(
        "--batch-size", type=int, default=None, help="rows per batch (the reader's default)"
    )
    parser.add_argument("--child", nargs=2, metavar=("INPUT", "OUTPUT"), help=argparse.SUPPRESS)
    parser.add_argument("--drift-policy", default="warn", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rows <= 0 or args.repeats <= 0 or args.large_rows < 0:
        parser.error("--rows and --repeats must be positive, --large-rows not negative")
    if args.batch_size is not None and args.batch_size <= 0:
        parser.error("--batch-size must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Alerts stay in the log: the benchmark never posts to a real Slack webhook.
    os.environ["SLACK_WEBHOOK_URL"] = ""
    if args.child:
        child(*args.child, args.batch_size, args.drift_policy)
        return 0
    small = ensure_dataset(args.rows)
    large_path = ensure_dataset(args.large_rows) if args.large_rows else None
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-inference-") as workdir:
        work = pathlib.Path(workdir)
        # A throwaway store; the job processes inherit it through the environment.
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{work / 'mlflow.db'}"
        print("training and promoting a model into a throwaway MLflow store ...", flush=True)
        pipeline = mlflow.sklearn.load_model(train_and_promote(args.model_kind))
        frame = pq.read_table(small).to_pandas()
        model = raw_model(pipeline, frame)
        output = work / "predictions.parquet"
        runs: dict[str, list[dict]] = {"off": [], "on": []}
        raws = []
        for repeat in range(1, args.repeats + 1):
            for name in ("off", "on"):
                runs[name].append(run_job(small, output, args.batch_size, drift=name == "on"))
                if name == "off":
                    raw, predictions = run_raw(model, frame)
                    raws.append(raw)
                check_output(output, predictions)
                output.unlink()
            print(
                f"  repeat {repeat}/{args.repeats}: job drift off {runs['off'][-1]['seconds']:.2f}"
                f" s, drift on {runs['on'][-1]['seconds']:.2f} s "
                f"(peak {megabytes(runs['on'][-1]['peak_rss_kib']):.0f} MB), "
                f"raw {raw['seconds']:.2f} s",
                flush=True,
            )
        del frame, predictions
        large = None
        if large_path is not None:
            print(f"running the job over {args.large_rows:,} rows ...", flush=True)
            large = run_job(large_path, output, args.batch_size, drift=True)
            if large["rows"] != args.large_rows:
                raise RuntimeError(f"the job predicted {large['rows']:,} of {args.large_rows:,}")
    report(args, runs, raws, large, (load_before, os.getloadavg()[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
