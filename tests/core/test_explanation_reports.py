"""Tests for the explanations report: which output a sample's chart explains, with its values."""

from __future__ import annotations

import numpy as np
import pandas as pd

from components.core import reports, results
from components.core.model_refs import ModelRef


def explained(outputs: list[str], samples: int) -> pd.DataFrame:
    """Sample explanations as the job writes them: one row per sample and output, in order."""
    rng = np.random.default_rng(0)
    rows = samples * len(outputs)
    return pd.DataFrame(
        {
            "output": outputs * samples,
            "base_value": np.full(rows, 0.5),
            "shap_temp": rng.normal(size=rows),
            "shap_weather": rng.normal(size=rows),
        }
    )


def test_a_samples_rows_are_its_outputs():
    shown = explained(["high", "low", "medium"], 4)
    rows = reports.sample_rows(shown, 2)
    assert rows.index.tolist() == [6, 7, 8]
    assert rows["output"].tolist() == ["high", "low", "medium"]


def test_a_classifiers_chart_explains_the_class_it_predicts():
    shown = explained(["high", "low", "medium"], 1)
    shown.loc[1, "shap_temp"] = 9.0  # the largest margin: "low"
    row, predicted = reports.explained_row(shown)
    assert row["output"] == "low"
    assert predicted.startswith("predicted 'low' (output ")
    regression = explained(["prediction"], 1)
    total = 0.5 + regression.loc[0, "shap_temp"] + regression.loc[0, "shap_weather"]
    assert reports.explained_row(regression)[1] == f"prediction {total:.4g}"
    binary = explained(["yes"], 1).assign(shap_temp=-5.0)
    assert reports.explained_row(binary)[1].endswith("(not predicted)")


def test_a_samples_contributions_carry_its_values_largest_first():
    shown = explained(["prediction"], 1).assign(shap_temp=0.1, shap_weather=-2.0)
    values = pd.Series({"temp": 0.123456, "weather": "rain"})
    contributions, _, _ = reports.sample_contributions(shown, values)
    assert contributions.to_dict("list") == {
        "feature": ["weather", "temp"],
        "value": ["rain", "0.1235"],
        "SHAP value": [-2.0, 0.1],
    }


def test_the_page_has_one_summary_chart_and_three_samples_with_their_values():
    shown = explained(["high", "low", "medium"], 20)
    inputs = pd.DataFrame({"temp": np.linspace(0, 1, 20), "weather": ["rain", "clear"] * 10})
    importances = pd.DataFrame(
        {"feature": ["temp", "weather"], "importance": [1.0, 0.5], "rank": [1, 2]}
    )
    result = results.ExplanationsResult(
        model_ref=ModelRef(uri="models:/m/1", name="m", version=1),
        explainer="XGBoostExplainer",
        samples=20,
        importances=importances,
        preview=shown.head(9),
        seconds=1.0,
        shown=shown,
        shown_inputs=inputs,
    )
    page = reports.explanations_page(result)
    assert page.count('alt="summary"') == 1
    assert page.count('alt="sample"') == 3
    assert "Sample 1: predicted " in page and "Sample 3: predicted " in page
    assert "<td>rain</td>" in page and "<td>clear</td>" in page  # the samples' own values
    assert "http://" not in page and "https://" not in page  # nothing loaded from anywhere
    # Without the shown samples (a result made elsewhere), the preview's rows are charted.
    bare = reports.explanations_page(
        results.ExplanationsResult(
            model_ref=result.model_ref,
            explainer="TreeExplainer",
            samples=3,
            importances=importances,
            preview=shown.head(3),
            seconds=1.0,
        )
    )
    assert 'alt="summary"' not in bare and bare.count('alt="sample"') == 3
