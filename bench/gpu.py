"""GPU check: XGBoost's predictions and SHAP values on the CPU and on CUDA, side by side.

Usage (from the repository root, on a machine with an NVIDIA GPU and the CUDA build of
XGBoost, `pip install xgboost==<the locked xgboost-cpu version>`; see docs/gpu.md):

    python -m bench.gpu [--rows 1000000] [--explain-rows 100000] [--repeats 3]

It trains an XGBoost regressor of the demo model's size (the bike sharing features, 300 trees
of depth 8, native categoricals) on the real rows, resamples `--rows` rows, and times, side by
side and interleaved, on each device that can run here:

  predict: `Booster.inplace_predict` over the rows (the path the predict step takes);
  explain: `Booster.predict(DMatrix, pred_contribs=True)` over `--explain-rows` rows (exact Tree
           SHAP, the explain step's path).

It prints rows per second per device, the GPU/CPU speed-up, and the largest differences between
the devices' values against the tolerance docs/gpu.md documents (predictions 1e-5 relative,
SHAP values 1e-4 of the prediction's scale: the GPU sums the trees in another order, in
float32). Where no GPU can run it says why (`components.utils.devices.why_cpu`) and times the
CPU alone. It exits 1 only when the devices disagree beyond the tolerance.
"""

from __future__ import annotations

import argparse
import pathlib
import statistics
import sys
import time

import numpy as np
import pandas as pd

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python bench/gpu.py` puts bench/ on the path, not the root
    sys.path.insert(0, str(ROOT))

from components import demo  # noqa: E402
from components.utils import devices  # noqa: E402

SOURCE = demo.resolve("demo://bike-sharing/hour.parquet")
TARGET = "cnt"
CATEGORICAL = ["season", "weathersit"]
EXCLUDE = ["instant", "dteday", "casual", "registered", TARGET]
SEED = 42
# The tolerances between devices (docs/gpu.md): relative for predictions, absolute over the
# predictions' spread for SHAP values.
PREDICTION_TOLERANCE = 1e-5
SHAP_TOLERANCE = 1e-4


def frames(rows: int) -> tuple[pd.DataFrame, pd.Series, pd.DataFrame]:
    """The real rows with their target, and `rows` rows resampled from them for timing."""
    data = pd.read_parquet(SOURCE)
    features = data.drop(columns=EXCLUDE)
    for column in CATEGORICAL:
        features[column] = features[column].astype("category")
    rng = np.random.default_rng(SEED)
    sample = features.iloc[rng.integers(0, len(features), rows)].reset_index(drop=True)
    return features, data[TARGET], sample


def train(features: pd.DataFrame, target: pd.Series):
    """The benchmark's booster: 300 trees of depth 8, trained on the CPU."""
    import xgboost

    model = xgboost.XGBRegressor(
        n_estimators=300, max_depth=8, tree_method="hist", enable_categorical=True, random_state=0
    )
    model.fit(features, target)
    return model.get_booster()


def timed(function, repeats: int) -> tuple[float, np.ndarray]:
    """The median seconds of `repeats` calls, and the last call's result."""
    seconds, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = function()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds), np.asarray(result)


def measure(booster, device: str, sample: pd.DataFrame, explain_rows: int, repeats: int) -> dict:
    """Rows per second and values of predict and explain on one device."""
    import xgboost

    booster.set_param({"device": device})
    head = sample.iloc[:explain_rows]
    matrix = xgboost.DMatrix(head, enable_categorical=True)
    predict_seconds, predictions = timed(lambda: booster.inplace_predict(sample), repeats)
    explain_seconds, contributions = timed(
        lambda: booster.predict(matrix, pred_contribs=True), repeats
    )
    return {
        "device": device,
        "predict_rows_per_second": len(sample) / predict_seconds,
        "explain_rows_per_second": len(head) / explain_seconds,
        "predictions": predictions,
        "contributions": contributions,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--explain-rows", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    import xgboost

    print(f"xgboost {xgboost.__version__}, CUDA build: {devices.xgboost_has_cuda()}")
    features, target, sample = frames(args.rows)
    print(f"training on {len(features):,} rows; timing {args.rows:,} rows ...", flush=True)
    booster = train(features, target)
    reason = devices.why_cpu()
    chosen = ["cpu"] if reason else ["cpu", "cuda"]
    if reason:
        print(f"GPU: not run here: {reason}")
    results = [
        measure(booster, device, sample, args.explain_rows, args.repeats) for device in chosen
    ]
    for result in results:
        print(
            f"{result['device']:>4}: predict {result['predict_rows_per_second']:>12,.0f} rows/s, "
            f"explain {result['explain_rows_per_second']:>10,.0f} rows/s"
        )
    cpu = results[0]
    # Additivity on the CPU: the contributions (bias included) sum to the margin.
    margin = booster.inplace_predict(sample.iloc[: args.explain_rows], predict_type="margin")
    gap = float(np.max(np.abs(cpu["contributions"].sum(axis=1) - margin)))
    print(f"additivity (cpu): max |sum(SHAP) - margin| = {gap:.2e}")
    if len(results) == 1:
        return 0
    gpu = results[1]
    scale = float(np.ptp(cpu["predictions"])) or 1.0
    prediction_gap = float(
        np.max(
            np.abs(gpu["predictions"] - cpu["predictions"])
            / np.maximum(1.0, np.abs(cpu["predictions"]))
        )
    )
    shap_gap = float(np.max(np.abs(gpu["contributions"] - cpu["contributions"]))) / scale
    print(
        f"speed-up (cuda/cpu): predict "
        f"{gpu['predict_rows_per_second'] / cpu['predict_rows_per_second']:.1f}x, explain "
        f"{gpu['explain_rows_per_second'] / cpu['explain_rows_per_second']:.1f}x"
    )
    agree = prediction_gap <= PREDICTION_TOLERANCE and shap_gap <= SHAP_TOLERANCE
    print(
        f"cpu vs cuda: predictions {prediction_gap:.1e} (tolerance {PREDICTION_TOLERANCE:.0e}), "
        f"SHAP {shap_gap:.1e} of the spread (tolerance {SHAP_TOLERANCE:.0e}): "
        f"{'PASS' if agree else 'MISS'}"
    )
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
