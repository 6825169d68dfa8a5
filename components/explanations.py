"""Component `explain`: SHAP explanations of the registered model and of sample rows."""

from typing import Optional

from kfp import dsl
from kfp.dsl import HTML, Dataset, Markdown, Output

from components.image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def explain(
    data: str,
    models_explanations: Output[Dataset],
    samples_explanations: Output[Dataset],
    report: Output[HTML],
    summary: Output[Markdown],
    model_name: str = "bike-sharing",
    alias_or_version: str = "Champion",
    max_samples: int = 1000,
    passthrough: Optional[list] = None,
    input_schema: str = "",
    experiment: str = "bike-sharing",
    run_id: str = "",
) -> int:
    """Explain the model (feature importance) and up to `max_samples` rows (SHAP values).

    Args:
        data: Rows to explain: a Parquet file or folder, or a CSV file (the first rows are used).
        model_name: Registered model name in MLflow.
        alias_or_version: Alias (e.g. Champion) or version number of the model to explain.
        max_samples: Most rows explained; bounds the step's time and memory.
        passthrough: Input columns copied beside the sample explanations (ids).
        input_schema: Pandera schema with domain rules: a YAML file or module:NAME (optional).
        experiment: MLflow experiment of the explanations run.
        run_id: Pipeline run id, recorded on the MLflow run (set by the pipeline).

    Returns:
        models_explanations: One row per feature: importance (mean |SHAP|) and rank.
        samples_explanations: One row per sample: base_value and one shap_<feature> column each.
        report: Explanations report with charts.
        summary: Run summary.
        Output: The version explained.
    """
    from components.core import reports
    from components.io import artifacts, datasets, registries
    from components.jobs import base
    from components.jobs.explanations import ExplanationsJob

    job = ExplanationsJob(
        inputs_samples=datasets.reader_for(data),
        models_explanations=datasets.ParquetWriter(path=models_explanations.path),
        samples_explanations=datasets.ParquetWriter(path=samples_explanations.path),
        finder=registries.RegistryFinder(name=model_name, alias_or_version=alias_or_version),
        input_schema=input_schema or None,
        passthrough=passthrough or [],
        max_samples=int(max_samples),  # integers may arrive as JSON floats (1000.0)
        **base.step_settings(experiment, run_id, "explain"),
    )
    with job:
        result = job.run()
    model_ref, explainer = result["model_ref"], result["explainer"].KIND
    page = reports.explanations_page(
        model_ref.describe(), result["importances"], result["preview"], explainer
    )
    artifacts.write_text(report, page)
    facts = {
        "model": model_ref.describe(),
        "explainer": explainer,
        "samples": result["samples"],
        "top features": ", ".join(result["importances"]["feature"].head(5)),
        "seconds": f"{result['seconds']:.1f}",
    }
    artifacts.write_text(summary, reports.markdown_summary("Explanations", facts))
    return model_ref.version
