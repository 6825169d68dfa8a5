"""Reports: self-contained HTML pages (inline PNG or SVG charts, inline CSS) and Markdown summaries.

Pages must render inside the Kubeflow UI's sandboxed iframe and on air-gapped clusters, so they
load nothing: no script, no external style sheet, no web font, charts as data: URIs.
"""

from __future__ import annotations

import base64
import functools
import html
import io
import types
import typing as T

import numpy as np
import pandas as pd

from components.core import drift, results, shadow, svg

if T.TYPE_CHECKING:  # the estimate's module loads scikit-learn: not for the notify step
    from components.core import estimation

if T.TYPE_CHECKING:
    from matplotlib.figure import Figure

STYLE = """
body { font-family: system-ui, sans-serif; margin: 24px; color: #1f2328; }
h1 { font-size: 22px; } h2 { font-size: 17px; margin-top: 28px; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border: 1px solid #d0d7de; padding: 4px 8px; text-align: right; }
th { background: #f6f8fa; } td:first-child, th:first-child { text-align: left; }
.passed { color: #1a7f37; font-weight: 600; } .failed { color: #cf222e; font-weight: 600; }
img { max-width: 100%; height: auto; }
"""


@functools.cache
def pyplot() -> types.ModuleType:
    """Pyplot, imported on the first chart, drawing without a display (Agg).

    Not at import: the steps that chart nothing (notify, promote) would pay a second for it.
    """
    import matplotlib

    matplotlib.use("Agg")  # no display in a pod
    import matplotlib.pyplot as plt

    return plt


def figure_uri(figure: Figure, dpi: int = 110, tight: bool = True) -> str:
    """Render a matplotlib figure to a PNG data: URI and close it.

    Args:
        figure: the figure.
        dpi: its resolution.
        tight: crop the margins to the drawing (costs a second drawing of the figure).
    """
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight" if tight else None)
    pyplot().close(figure)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def page(title: str, sections: T.Iterable[str]) -> str:
    """A complete HTML document with the inline style sheet."""
    body = "\n".join(sections)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n"
    )


def table(frame: pd.DataFrame, digits: int = 4) -> str:
    """An escaped HTML table of a DataFrame."""
    return frame.to_html(index=False, float_format=lambda x: f"{x:.{digits}g}", border=0)


def image(uri: str, alt: str) -> str:
    """An <img> of a data: URI."""
    return f'<img alt="{html.escape(alt)}" src="{uri}">'


def importance_chart(importances: pd.DataFrame, top: int = 20) -> str:
    """A horizontal bar chart of the most important features."""
    shown = importances.head(top).iloc[::-1]
    figure, axes = pyplot().subplots(figsize=(7, 0.3 * len(shown) + 1))
    axes.barh(shown["feature"], shown["importance"], color="#0969da")
    axes.set_xlabel("mean |SHAP value|")
    axes.set_title("Feature importance")
    return figure_uri(figure)


def contributions_chart(row: pd.Series, prefix: str = "shap_", top: int = 12) -> str:
    """The largest SHAP contributions of one sample, positive in red and negative in blue."""
    values = row[[c for c in row.index if c.startswith(prefix)]].astype(float)
    values.index = [c.removeprefix(prefix) for c in values.index]
    shown = values.reindex(values.abs().sort_values(ascending=False).index).head(top).iloc[::-1]
    figure, axes = pyplot().subplots(figsize=(7, 0.3 * len(shown) + 1))
    colours = ["#cf222e" if v > 0 else "#0969da" for v in shown]
    axes.barh(shown.index, shown.to_numpy(), color=colours)
    axes.axvline(0, color="#57606a", linewidth=0.8)
    axes.set_xlabel(f"SHAP value (base value {float(row['base_value']):.4g})")
    axes.set_title(f"Sample explanation ({row['output']})")
    return figure_uri(figure)


def _shown_value(value: T.Any) -> str:
    """A feature value as a chart label shows it: short numbers, truncated text."""
    if isinstance(value, float | np.floating):
        return "missing" if np.isnan(value) else f"{value:.4g}"
    text = str(value)
    return text if len(text) <= 24 else text[:23] + "…"


def sample_rows(shown: pd.DataFrame, sample: int) -> pd.DataFrame:
    """The rows (one per output) of the sample at this position among the shown ones."""
    outputs = max(1, shown["output"].nunique())  # each sample has a row per output, in order
    return shown.iloc[sample * outputs : (sample + 1) * outputs]


def explained_row(rows: pd.DataFrame, prefix: str = "shap_") -> tuple[pd.Series, str]:
    """The output row a sample's chart explains, and what the model predicted, in words.

    A regressor's one output; for a classifier the class of the largest margin (or
    probability), which is the class it predicts; a binary margin says which side it is on.
    """
    shap_columns = [c for c in rows.columns if c.startswith(prefix)]
    totals = rows["base_value"].to_numpy(float) + rows[shap_columns].to_numpy(float).sum(axis=1)
    if len(rows) == 1:
        row, total = rows.iloc[0], float(totals[0])
        if row["output"] == "prediction":
            return row, f"prediction {total:.4g}"
        # Here only: what imports this module for its other pages needs no explainer.
        from components.core import explainers

        prediction = explainers.prediction_of(str(row["output"]), total)
        if prediction is not None:  # through the regressor's link: log(prediction), ...
            return row, f"prediction {prediction:.4g} ({row['output']} {total:.4g})"
        side = "predicted" if total > 0 else "not predicted"
        return row, f"margin of '{row['output']}' {total:.4g} ({side})"
    best = int(np.argmax(totals))
    row = rows.iloc[best]
    return row, f"predicted '{row['output']}' (output {float(totals[best]):.4g})"


def sample_contributions(
    rows: pd.DataFrame, values: pd.Series, prefix: str = "shap_", top: int = 12
) -> tuple[pd.DataFrame, pd.Series, str]:
    """One sample's largest contributions to the output its chart explains.

    Args:
        rows: the sample's explanation rows (one per output).
        values: the sample's input values, by column.
        prefix: the prefix of the SHAP columns.
        top: the most contributions kept.

    Returns:
        The contributions (`feature`, `value`, `SHAP value`, largest first), the output row
        explained, and what the model predicted, in words.
    """
    row, predicted = explained_row(rows, prefix)
    contributions = row[[c for c in row.index if c.startswith(prefix)]].astype(float)
    contributions.index = [c.removeprefix(prefix) for c in contributions.index]
    order = contributions.abs().sort_values(ascending=False).index[:top]
    frame = pd.DataFrame(
        {
            "feature": list(order),
            "value": [_shown_value(values[n]) if n in values.index else "" for n in order],
            "SHAP value": contributions[order].to_numpy(),
        }
    )
    return frame, row, predicted


def sample_chart(contributions: pd.DataFrame, row: pd.Series, title: str) -> str:
    """One sample's largest contributions, each labelled with the sample's value of the column.

    Args:
        contributions: `sample_contributions`' frame.
        row: the output row explained.
        title: the chart's title (which sample, what it predicted).
    """
    shown = contributions.iloc[::-1]
    labels = [
        f"{name} = {value}" for name, value in zip(shown["feature"], shown["value"], strict=True)
    ]
    shown = shown["SHAP value"]
    figure, axes = pyplot().subplots(figsize=(7.5, 0.32 * len(shown) + 1.2))
    colours = ["#cf222e" if v > 0 else "#0969da" for v in shown]
    axes.barh(labels, shown.to_numpy(float), color=colours)
    axes.axvline(0, color="#57606a", linewidth=0.8)
    axes.set_xlabel(f"SHAP value (base value {float(row['base_value']):.4g})")
    axes.set_title(title)
    return figure_uri(figure)


def _colour_scale(column: pd.Series) -> np.ndarray | None:
    """A feature's values as 0..1 by rank (low to high), None when they are not numbers."""
    if not pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
        return None
    ranks = column.astype(float).rank(pct=True).to_numpy()
    return np.where(np.isnan(ranks), 0.5, ranks)


def summary_chart(
    shown: pd.DataFrame, inputs: pd.DataFrame, prefix: str = "shap_", top: int = 15
) -> str:
    """How the features' values drive the output: a beeswarm, one panel per output (up to 4).

    Each dot is a sample: across, its SHAP value for the feature; its colour, the sample's value
    of the feature from low (blue) to high (red), grey for a text or categorical column. The
    features are ranked by mean |SHAP value|.
    """
    plt = pyplot()
    outputs = list(dict.fromkeys(shown["output"]))[:4]
    shap_columns = [c for c in shown.columns if c.startswith(prefix)]
    ranking = shown[shap_columns].abs().mean().sort_values(ascending=False).index[:top]
    names = [c.removeprefix(prefix) for c in ranking][::-1]
    figure, axes_list = plt.subplots(
        1, len(outputs), figsize=(6 * len(outputs) + 1, 0.4 * len(names) + 1.5), squeeze=False
    )
    colours = plt.get_cmap("coolwarm")
    jitter = np.random.default_rng(0)
    for axes, output in zip(axes_list[0], outputs, strict=True):
        rows = shown[shown["output"] == output]
        for position, name in enumerate(names):
            values = rows[prefix + name].to_numpy(float)
            scale = _colour_scale(inputs[name]) if name in inputs.columns else None
            scale = scale[: len(values)] if scale is not None else None
            # Dots spread vertically where they are dense, as a swarm does.
            counts, edges = np.histogram(values, bins=min(30, max(1, len(values))))
            density = counts[np.clip(np.digitize(values, edges[1:-1]), 0, len(counts) - 1)]
            spread = 0.38 * density / max(1, counts.max())
            y = position + jitter.uniform(-1, 1, len(values)) * spread
            colour = colours(scale) if scale is not None else "#8c959f"
            axes.scatter(values, y, c=colour, s=9, alpha=0.8, linewidths=0)
        axes.axvline(0, color="#57606a", linewidth=0.8)
        axes.set_yticks(range(len(names)), names)
        axes.set_xlabel(f"SHAP value ({output})")
    mappable = plt.cm.ScalarMappable(cmap=colours)
    bar = figure.colorbar(mappable, ax=axes_list[0].tolist(), ticks=[0, 1], fraction=0.03)
    bar.ax.set_yticklabels(["low", "high"])
    bar.set_label("feature value")
    figure.suptitle("How the features' values drive the output")
    return figure_uri(figure)


def explanations_page(result: results.ExplanationsResult) -> str:
    """The explanations report: importance, the summary chart, then the first samples."""
    model = result.model_ref.describe()
    shown = result.shown if result.shown is not None else result.preview
    inputs = result.shown_inputs if result.shown_inputs is not None else pd.DataFrame()
    sections = [
        f"<p>Model <b>{html.escape(model)}</b>, explained with {html.escape(result.explainer)} "
        f"on {result.samples} rows. The SHAP values of a sample add up, with the base value, "
        "to the model's raw output: a regressor's prediction (or its log, for a Poisson, gamma "
        "or Tweedie regressor: the output says which), a classifier's margin (log-odds) "
        "per class, or its probability when explained by permutation.</p>",
        *warnings_html(result.warnings),
        "<h2>Model explanations</h2>",
        image(importance_chart(result.importances), "feature importance"),
        table(result.importances.head(30)),
    ]
    if len(shown) and len(inputs):
        sections += [
            f"<h2>How values drive the output</h2><p>The first {len(inputs)} samples.</p>",
            image(summary_chart(shown, inputs), "summary"),
        ]
    sections.append("<h2>Sample explanations</h2>")
    if len(inputs):
        for sample in range(min(3, len(inputs))):
            rows, values = sample_rows(shown, sample), inputs.iloc[sample]
            contributions, row, predicted = sample_contributions(rows, values)
            title = f"Sample {sample + 1}: {predicted}"
            sections += [
                f"<h3>{html.escape(title)}</h3>",
                image(sample_chart(contributions, row, title), "sample"),
                table(contributions),
            ]
    else:
        sections += [
            image(contributions_chart(row), "sample") for _, row in shown.head(3).iterrows()
        ]
    return page(f"Explanations: {model}", sections)


def explanations_summary(result: results.ExplanationsResult) -> str:
    """The explain step's Markdown summary."""
    facts = {
        "model": result.model_ref.describe(),
        "explainer": result.explainer,
        "samples": result.samples,
        "top features": ", ".join(map(str, result.importances["feature"].head(5))),
        "seconds": f"{result.seconds:.1f}",
        "warnings": "; ".join(result.warnings) or "none",
    }
    return markdown_summary("Explanations", facts)


def warnings_html(warnings: T.Sequence[str]) -> list[str]:
    """Warnings as highlighted paragraphs."""
    return [f'<p class="failed">Warning: {html.escape(w)}</p>' for w in warnings]


def confusion_chart(labels: list[str], matrix: list[list[int]]) -> str:
    """A confusion matrix heat map with counts."""
    figure, axes = pyplot().subplots(figsize=(1.2 * len(labels) + 2, 1.2 * len(labels) + 1.5))
    axes.imshow(matrix, cmap="Blues")
    axes.set_xticks(range(len(labels)), labels)
    axes.set_yticks(range(len(labels)), labels)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            axes.text(j, i, str(count), ha="center", va="center", color="#1f2328")
    axes.set_title("Confusion matrix")
    return figure_uri(figure)


def roc_chart(roc: dict[str, list[float]], positive: str) -> str:
    """The ROC curve of one class against the rest."""
    figure, axes = pyplot().subplots(figsize=(5, 5))
    axes.plot(roc["fpr"], roc["tpr"], color="#0969da")
    axes.plot([0, 1], [0, 1], linestyle="--", color="#8c959f")
    axes.set_xlabel("false positive rate")
    axes.set_ylabel("true positive rate")
    axes.set_title(f"ROC: {positive} vs rest")
    return figure_uri(figure)


def residuals_chart(targets: pd.Series, predictions: pd.Series) -> str:
    """Predicted against actual values, for a regressor."""
    figure, axes = pyplot().subplots(figsize=(5, 5))
    axes.scatter(targets, predictions, s=4, alpha=0.4, color="#0969da")
    low, high = (
        float(min(targets.min(), predictions.min())),
        float(max(targets.max(), predictions.max())),
    )
    axes.plot([low, high], [low, high], linestyle="--", color="#8c959f")
    axes.set_xlabel("actual")
    axes.set_ylabel("predicted")
    axes.set_title("Predicted vs actual")
    return figure_uri(figure)


def evaluation_charts(result: results.EvaluationResult) -> list[str]:
    """Confusion matrix and ROC for a classifier; predicted against actual for a regressor."""
    if result.curves is not None:
        curves = result.curves
        charts = [confusion_chart(curves.labels, curves.confusion_matrix)]
        if curves.roc is not None:
            charts.append(roc_chart(curves.roc, curves.roc_positive))
        return charts
    return [residuals_chart(result.targets, result.predicted)]


def evaluation_page(result: results.EvaluationResult) -> str:
    """The evaluation report: the verdict, metrics beside the Champion's, and charts."""
    verdict = (
        '<p class="passed">Passed: may be promoted.</p>'
        if result.passed
        else '<p class="failed">Failed: ' + html.escape("; ".join(result.reasons)) + "</p>"
    )
    scores, champion_scores = result.scores, result.champion_scores
    metrics = pd.DataFrame({"metric": list(scores), "candidate": list(scores.values())})
    if champion_scores:  # no column of blanks before the first Champion exists
        metrics["champion"] = [champion_scores.get(name, float("nan")) for name in scores]
    compared = (
        f"Compared with the Champion {result.champion_ref.describe()}."
        if result.champion_ref
        else "No Champion yet: nothing to compare with."
    )
    sections = [verdict, f"<p>{html.escape(compared)}</p>", "<h2>Metrics</h2>", table(metrics)]
    sections += ["<h2>Charts</h2>", *(image(uri, "chart") for uri in evaluation_charts(result))]
    return page(f"Evaluation: {result.candidate_ref.describe()}", sections)


def evaluation_summary(result: results.EvaluationResult) -> str:
    """The evaluate step's Markdown summary: each figure names the version it belongs to."""
    candidate = f"v{result.candidate_ref.version}"
    champion = f"v{result.champion_ref.version}" if result.champion_ref else ""
    facts = {
        "model": result.candidate_ref.describe(),
        "passed": result.passed,
        "verdict": "may be promoted" if result.passed else "not to be promoted",
        "champion": result.champion_ref.describe() if result.champion_ref else "none",
        "rows": result.rows,
        **{f"{key} ({candidate})": f"{value:.4g}" for key, value in result.scores.items()},
        **{f"{key} ({champion})": f"{value:.4g}" for key, value in result.champion_scores.items()},
        "reasons": "; ".join(result.reasons) or "-",
    }
    return markdown_summary("Evaluation", facts)


def training_summary(result: results.TrainingResult) -> str:
    """The train step's Markdown summary."""
    facts = {
        "model": result.model_ref.describe(),
        "kind": result.model_kind,
        "task": result.task,
        "features": f"{len(result.numerical)} numerical, {len(result.categorical)} categorical",
        "rows in": result.rows,
        "rows held out": result.test_rows,
        **{name: f"{value:.4g}" for name, value in result.scores.items()},
        "seconds": f"{result.seconds:.1f}",
    }
    return markdown_summary("Training", facts)


def _trial_params(params: dict[str, str]) -> str:
    """`learning_rate=0.177, max_depth=6`: a trial's parameters, numbers to 4 digits."""

    def shown(value: str) -> str:
        try:
            return f"{float(value):.4g}"
        except ValueError:
            return value

    return ", ".join(f"{name}={shown(value)}" for name, value in sorted(params.items()))


def selection_summary(result: results.SelectionResult) -> str:
    """The select-trial step's Markdown summary: the version registered, the trials ranked."""
    facts = {
        "model": result.model_ref.describe(),
        "best trial": "?" if result.best.trial is None else result.best.trial,
        result.metric: f"{result.best.score:.4g} ({result.mode} is best)",
        "trials": len(result.trials),
        **{
            f"trial {'?' if ranked.trial is None else ranked.trial}": f"{ranked.score:.4g}"
            + (f" ({_trial_params(ranked.params)})" if ranked.params else "")
            for ranked in result.trials
        },
    }
    return markdown_summary("Tuning", facts)


def promotion_summary(result: results.PromotionResult) -> str:
    """The promote step's Markdown summary."""
    facts = {
        "model": result.model_ref.name,
        "candidate": f"v{result.model_ref.version}",
        result.alias: f"v{result.served_ref.version}" if result.served_ref else "none",
        "promoted": "yes"
        if result.promoted
        else ("awaiting approval" if result.awaiting_approval else "no"),
        "previous": f"v{result.previous}" if result.previous else "none",
    }
    if result.reason:
        facts["why not"] = result.reason
    return markdown_summary("Promotion", facts)


def inference_summary(result: results.InferenceResult) -> str:
    """The predict step's Markdown summary."""
    facts = {
        "model": result.model_ref.describe(),
        "rows in": result.rows_in,
        "rows out": result.rows,
        "columns out": result.columns,
        **({"shards": result.shards} if result.shards > 1 else {}),
        # Shards run side by side: the slowest one is the wall time of the prediction.
        ("seconds" if result.shards == 1 else "seconds (slowest shard)"): f"{result.seconds:.1f}",
        "rows per second": f"{result.rows / max(result.seconds, 1e-9):,.0f}",
        "drift": result.drift.headline() if result.drift is not None else "not checked",
        **({"challenger": result.shadow.headline} if result.shadow is not None else {}),
        "warnings": "; ".join(result.warnings) or "none",
    }
    return markdown_summary("Predictions", facts)


def markdown_summary(title: str, facts: T.Mapping[str, T.Any]) -> str:
    """A Markdown run summary: a heading and a two-column table of facts."""
    lines = [f"## {title}", "", "| | |", "|---|---|"]
    lines += [f"| {key} | {str(value).replace('|', '/')} |" for key, value in facts.items()]
    return "\n".join(lines) + "\n"


def distribution_charts(columns: T.Sequence[drift.ColumnDrift]) -> str:
    """The training and the batch shares of each column's bins, side by side, one panel each.

    Drawn as SVG (components.core.svg): the predict step draws them on every run, where
    matplotlib's import and PNG encoding would cost it about a second.
    """
    panels = [
        svg.Panel(
            title=f"{column.column}: "
            f"{'no values' if column.psi is None else f'PSI {column.psi:.3f}'} ({column.status})",
            categories=[str(label) for label in column.bins],
            series=[
                svg.Series("training", list(column.reference_shares), "#8c959f"),
                svg.Series("this batch", list(column.shares), "#0969da"),
            ],
            y_label="share of rows",
        )
        for column in columns
    ]
    return svg.chart(panels)


# The columns charted in a drift report: the most drifted first.
DRIFT_CHARTS = 6


def drift_page(
    title: str,
    report: drift.DriftReport | None,
    summary: shadow.ShadowSummary | None,
    notes: T.Sequence[str] = (),
    estimate: estimation.Estimate | None = None,
    tolerance: float = 0.1,
    extra_sections: T.Sequence[str] = (),
) -> str:
    """The drift and data-quality report of a batch, and the challenger's comparison.

    Args:
        title: what predicted, e.g. `bike-sharing v3`.
        report: the batch against the training profile (None: not checked).
        summary: the challenger against the Champion (None: no challenger).
        notes: why something was not checked.
        estimate: the batch's estimated performance, before the labels (None: not estimated).
        tolerance: how much worse than the holdout an estimate may be before it is flagged.
        extra_sections: HTML added after the drift (the model's trend).
    """
    sections = [f"<p>{html.escape(note)}</p>" for note in notes]
    if estimate is not None:
        worse = {m.metric for m in estimate.degraded(tolerance)}
        rows = pd.DataFrame(
            {
                "metric": [m.metric for m in estimate.estimates],
                "estimated": [m.value for m in estimate.estimates],
                "lower (95%)": [m.lower for m in estimate.estimates],
                "upper (95%)": [m.upper for m in estimate.estimates],
                "holdout": [m.holdout for m in estimate.estimates],
                "verdict": [
                    "worse than the holdout" if m.metric in worse else "ok"
                    for m in estimate.estimates
                ],
            }
        )
        verdict = (
            f'<p class="failed">Estimated worse than the holdout beyond {tolerance:.0%}: '
            f"{html.escape(', '.join(sorted(worse)))}.</p>"
            if worse
            else '<p class="passed">Estimated performance within the holdout\'s.</p>'
        )
        sections += [
            "<h2>Estimated performance (before the labels)</h2>",
            verdict,
            f"<p>{html.escape(estimate.headline())}. Estimated from the model's calibrated "
            f"probabilities (classifiers) or its holdout errors by predicted value "
            f"(regressors), fitted on {estimate.holdout_rows:,} held-out rows.</p>",
            table(rows),
        ]
    if report is not None:
        drifted = report.drifted
        features = len(report.columns)
        if report.dataset_drift:
            verdict = (
                f'<p class="failed">Dataset drift: {len(drifted)} of {features} features '
                "drifted.</p>"
            )
        elif drifted:
            verdict = (
                f'<p class="passed">No dataset drift: {len(drifted)} of {features} features '
                f"drifted, under the share of {report.thresholds.drift_share:.0%}.</p>"
            )
        elif not report.judged and features:
            verdict = f'<p class="passed">Too few rows to judge ({features} features).</p>'
        else:
            verdict = f'<p class="passed">No feature drifted ({features} checked).</p>'
        limits = report.thresholds
        sections += [
            "<h2>Drift and data quality</h2>",
            verdict,
            f"<p>{html.escape(report.headline())}</p>",
            f"<p>{report.rows:,} rows compared with {report.reference_rows:,} training rows. "
            f"Up to {limits.test_rows:,} values a column is tested (Kolmogorov-Smirnov for a "
            f"numeric one, chi-square for a categorical one; drift under p = "
            f"{limits.p_value:g} / {max(1, features)} features); above, a distance decides "
            f"(Wasserstein over the training standard deviation from {limits.wasserstein:g}, "
            f"Jensen-Shannon from {limits.jensen_shannon:g}, PSI {limits.psi_warn:g} warn / "
            f"{limits.psi:g} drift). Under {limits.min_rows} values, a column is not judged. "
            f"Data quality, at any size when significant: missing rate +{limits.missing:.0%}, "
            f"outside the training range {limits.out_of_range:.0%}, unseen categories "
            f"{limits.unseen:.0%}.</p>",
            table(report.table().drop(columns=["kind"]).head(50)),
        ]
        charted = [c for c in report.columns if c.psi is not None][:DRIFT_CHARTS]
        if report.prediction is not None and report.prediction.psi is not None:
            charted.append(report.prediction)
        if charted:
            sections.append(image(distribution_charts(charted), "distributions"))
    sections += [section for section in extra_sections if section]
    if summary is not None:
        scores = pd.DataFrame(
            {"score": list(summary.scores), "value": list(summary.scores.values())}
        )
        sections += [
            "<h2>Challenger</h2>",
            f"<p>{html.escape(summary.headline)}. The published predictions are "
            f"{html.escape(summary.champion)}'s.</p>",
            table(scores),
        ]
        if summary.confusion:
            confusion = summary.confusion_table().reset_index()
            sections += [
                "<p>Rows by the Champion's label (lines) and the challenger's (columns):</p>",
                table(confusion),
            ]
    return page(f"Monitoring: {title}", sections)


def performance_page(result: results.MonitoringResult) -> str:
    """The realized performance against the holdout's (and the estimate), period by period."""
    report = result.report
    verdict = "degraded" if result.degraded else "not degraded"
    sections = [
        f'<p class="{"failed" if result.degraded else "passed"}">'
        f"{html.escape(result.headline)}</p>",
        f"<p>Compared with {html.escape(result.model_ref.describe())} "
        f"({html.escape(result.version_source)}): {verdict} beyond a tolerance of "
        f"{report.tolerance:.0%} on {html.escape(report.primary)}, policy "
        f"{html.escape(result.policy)}. {html.escape(result.join.describe())}.</p>",
        *(f"<p>Note: {html.escape(note)}</p>" for note in result.notes),
        "<h2>Over all labelled rows</h2>",
        table(result.table[result.table["period"] == "all"]),
    ]
    if report.periods:
        sections += [
            f"<h2>By {html.escape(report.unit or 'period')}</h2>",
            table(result.table[result.table["period"] != "all"]),
        ]
    return page(f"Performance: {result.model_ref.describe()}", sections)
