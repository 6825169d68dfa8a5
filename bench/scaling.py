"""Scaling benchmark: one input predicted by 1 shard, then by 2 shards in processes side by side.

Usage (from the repository root):

    python -m bench.scaling [--rows 20000000] [--repeats 2]

It reuses bench.inference's generated bike sharing rows (row groups of 131,072 rows, cached
under bench/.data/) and its model, trained and promoted into a throwaway MLflow store. The
PlanningJob splits the input into 2 shards from the file's footer. Each shard then runs as a
pod of its own would: a fresh interpreter pinned to one CPU (OMP_NUM_THREADS=1, as the pipeline
sets it from a 1-CPU limit), running InferenceJob over the shard's pieces. Side by side, over
`--repeats` interleaved repetitions:

  1 shard:  one process predicts every row;
  2 shards: two processes start at once, one per shard, each on its own CPU.

The wall time counts from the processes' start to the last one's end, imports and model loading
included, as the pods' would: a fixed start-up of seconds per pod, which sharding pays once per
shard and which only a large input amortises (hence 20M rows by default, the size of
bench.inference's memory run, whose cached file it reuses). It prints the speed-up of 2 shards
over 1 (target >= 1.7x: this machine has 2 cores) and each shard's peak RSS, and exits 0 either
way.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python bench/scaling.py` puts bench/ on the path, not the root
    sys.path.insert(0, str(ROOT))

from bench import inference as bench  # noqa: E402
from components.io import datasets, registries, shards  # noqa: E402
from components.jobs import inference, planning  # noqa: E402

TARGET_SPEEDUP = 1.7  # 2 shards on 2 cores against 1 shard on 1 core
# Two reference kernels that show what this machine's 2 CPUs allow side by side: arithmetic
# alone, and streaming through memory (as decoding, validating and predicting batches do).
KERNELS = {
    "arithmetic": "x = 0\nfor i in range(20_000_000):\n    x += i * i",
    "memory": "import numpy as np\na = np.random.rand(20_000_000)\n"
    "for _ in range(15):\n    a = np.sqrt(a + 1.0)",
}


def child(plan_path: str, shard: int, output_path: str) -> None:
    """Predict one shard of a plan, as a pod would; print what it took."""
    plan = shards.ShardPlan.read(plan_path)
    batch_size = os.environ.get("BENCH_BATCH_SIZE")
    options = {"batch_size": int(batch_size)} if batch_size else {}
    job = inference.InferenceJob(
        inputs={**plan.reader_config(shard), **options},
        outputs=datasets.ParquetWriter(path=output_path),
        finder=plan.finder,
        logger_service=bench.quiet_logs(),
        report_violations=True,
    )
    started = time.perf_counter()
    with job:
        outcome = job.run()
    result = {
        "seconds": time.perf_counter() - started,
        "rows": outcome.rows,
        "peak_rss_kib": bench.peak_rss_kib(),
    }
    print(bench.RESULT_PREFIX + json.dumps(result), flush=True)


def start(plan: pathlib.Path, shard: int, output: pathlib.Path, cpu: int) -> subprocess.Popen:
    """Start one shard's process on one CPU."""
    command = [sys.executable, "-m", "bench.scaling", "--child", str(plan), str(shard)]
    command += [str(output)]
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        command, cwd=ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
        # Pinned before Python starts, so that every thread it makes (BLAS, OpenMP, Arrow's
        # pools) shares the one CPU, as a pod's threads share its CPU limit.
        preexec_fn=lambda: os.sched_setaffinity(0, {cpu}),
    )  # fmt: skip


def finish(process: subprocess.Popen) -> dict:
    """Wait for a shard's process and return what it measured."""
    stdout, stderr = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"a shard failed:\n{stderr[-4000:]}")
    lines = [line for line in stdout.splitlines() if line.startswith(bench.RESULT_PREFIX)]
    if not lines:
        raise RuntimeError(f"a shard printed no result:\n{stdout[-4000:]}")
    return json.loads(lines[-1].removeprefix(bench.RESULT_PREFIX))


def run_shards(plan: pathlib.Path, count: int, work: pathlib.Path) -> dict:
    """Run every shard of a plan at once, shard i on CPU i; return the wall time and each's."""
    cpus = sorted(os.sched_getaffinity(0))
    started = time.perf_counter()
    processes = [
        start(plan, shard, work / f"part-{shard}.parquet", cpus[shard % len(cpus)])
        for shard in range(count)
    ]
    results = [finish(process) for process in processes]
    wall = time.perf_counter() - started
    for shard in range(count):
        (work / f"part-{shard}.parquet").unlink()
    return {"wall": wall, "shards": results, "rows": sum(r["rows"] for r in results)}


def make_plan(data: pathlib.Path, count: int, work: pathlib.Path) -> pathlib.Path:
    """Plan `count` shards of the input with the Champion, as the plan_shards step does."""
    path = work / f"plan-{count}.json"
    with planning.PlanningJob(
        inputs=datasets.ParquetReader(path=str(data)),
        finder=registries.RegistryFinder(name=bench.MODEL_NAME, alias_or_version=bench.ALIAS),
        shards=count,
        output=str(path),
        logger_service=bench.quiet_logs(),
    ) as job:
        job.run()
    return path


def kernel_speedup(code: str) -> float:
    """How much faster two copies of a kernel finish side by side, one CPU each, than in turn."""

    def side_by_side(cpus: list[int]) -> float:
        started = time.perf_counter()
        processes = [
            subprocess.Popen(
                [sys.executable, "-c", code],
                preexec_fn=lambda cpu=cpu: os.sched_setaffinity(0, {cpu}),
            )
            for cpu in cpus
        ]
        for process in processes:
            process.wait()
        return time.perf_counter() - started

    cpus = sorted(os.sched_getaffinity(0))[:2]
    return 2 * side_by_side(cpus[:1]) / side_by_side(cpus)


def report(
    rows: int, runs: dict[int, list[dict]], load: tuple[float, float], kernels: dict[str, float]
) -> float:
    """Print the scaling table and the verdict; return the speed-up."""
    walls = {count: statistics.median(run["wall"] for run in done) for count, done in runs.items()}
    speedup = walls[1] / walls[2]
    print(f"\nScaling: {rows:,} rows, 1 CPU per shard, median of {len(runs[1])} runs")
    print(f"  {'shards':>6}  {'wall s':>8}  {'rows/s':>12}  {'peak RSS per shard (MB)':>24}")
    for count, done in runs.items():
        peaks = [
            max(bench.megabytes(run["shards"][shard]["peak_rss_kib"]) for run in done)
            for shard in range(count)
        ]
        shown = ", ".join(f"{peak:.0f}" for peak in peaks)
        print(f"  {count:>6}  {walls[count]:>8.2f}  {rows / walls[count]:>12,.0f}  {shown:>24}")
    verdict = bench.verdict(speedup >= TARGET_SPEEDUP)
    print(f"\nspeed-up with 2 shards: {speedup:.2f}x  (target >= {TARGET_SPEEDUP}x) {verdict}")
    # Start-up: the wall time a pod spends before and after its job (imports, interpreter).
    startup = statistics.median(run["wall"] - run["shards"][0]["seconds"] for run in runs[1])
    streaming = statistics.median(rows / run["shards"][0]["seconds"] for run in runs[1])
    print(
        f"one pod of 1 CPU: {startup:.1f} s of start-up, then {streaming:,.0f} rows/s (model "
        f"loading included); N such pods side by side take about {startup:.1f} s + "
        f"rows / (N x {streaming * speedup / 2:,.0f} rows/s), plus the plan and publish steps"
    )
    shown = ", ".join(f"{name} {ratio:.2f}x" for name, ratio in kernels.items())
    print(f"this machine, 2 processes against 1 on the same work: {shown}")
    print(f"load average before / after: {load[0]:.2f} / {load[1]:.2f}")
    return speedup


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.scaling",
        description="Time 1 shard against 2 shards side by side, one CPU each.",
    )
    parser.add_argument("--rows", type=int, default=20_000_000, help="rows predicted (20M)")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved repetitions (2)")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rows <= 0 or args.repeats <= 0:
        parser.error("--rows and --repeats must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Alerts stay in the log: the benchmark never posts to a real Slack webhook.
    os.environ["SLACK_WEBHOOK_URL"] = ""
    if args.child:
        plan, shard, output = args.child
        child(plan, int(shard), output)
        return 0
    if len(os.sched_getaffinity(0)) < 2:
        print("this benchmark needs 2 CPUs; this process may use 1")
        return 0
    data = bench.ensure_dataset(args.rows)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-scaling-") as workdir:
        work = pathlib.Path(workdir)
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{work / 'mlflow.db'}"
        print("training and promoting a model into a throwaway MLflow store ...", flush=True)
        bench.train_and_promote()
        plans = {count: make_plan(data, count, work) for count in (1, 2)}
        runs: dict[int, list[dict]] = {1: [], 2: []}
        for repeat in range(1, args.repeats + 1):
            for count, plan in plans.items():
                run = run_shards(plan, count, work)
                if run["rows"] != args.rows:
                    raise RuntimeError(f"{count} shard(s) predicted {run['rows']:,} rows")
                runs[count].append(run)
            print(
                f"  repeat {repeat}/{args.repeats}: 1 shard {runs[1][-1]['wall']:.2f} s, "
                f"2 shards {runs[2][-1]['wall']:.2f} s",
                flush=True,
            )
    kernels = {name: kernel_speedup(code) for name, code in KERNELS.items()}
    report(args.rows, runs, (load_before, os.getloadavg()[0]), kernels)
    return 0


if __name__ == "__main__":
    sys.exit(main())
