"""Component `explain`: SHAP explanations of a model from MLflow and of sample rows."""

from typing import Any, Optional

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Markdown, Output

from components.image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def explain(
    models_explanations: Output[Dataset],
    samples_explanations: Output[Dataset],
    report: Output[HTML],
    summary: Output[Markdown],
    card: Output[Markdown],
    data: str = "",
    dataset: Optional[Input[Dataset]] = None,
    plan: Optional[Input[Artifact]] = None,
    model_name: str = "",
    alias_or_version: str = "Champion",
    finder: Optional[dict] = None,
    loader: Optional[dict] = None,  # type: ignore[type-arg]
    reader: Optional[dict] = None,
    explainer: Optional[dict] = None,  # type: ignore[type-arg]
    max_samples: int = 1000,
    passthrough: Optional[list] = None,
    input_schema: str = "",
    allow_unsigned: bool = False,
    experiment: str = "model-lifecycle",
    run_id: str = "",
) -> int:
    """Explain the model (feature importance) and up to `max_samples` rows (SHAP values).

    Args:
        data: Rows to explain: a Parquet file or folder, or a CSV file (the first rows are
            used), streamed from where it is; or leave empty and connect `dataset`.
        dataset: Rows to explain as a Dataset artifact from an upstream step.
        plan: The plan of a sharded prediction (plan_shards), instead of data and the model:
            the rows are drawn across its shards and its model version is explained.
        model_name: Registered model name in MLflow.
        alias_or_version: Alias (e.g. Champion) or version number of the model to explain.
        finder: Another way to find the model, by KIND (see predict): BestRunFinder, UriFinder
            or RegistryFinder; default: model_name and alias_or_version.
        loader: How the model is loaded, as predict loads it (see predict), e.g.
            {"label_mapping": ["a", "b"]}: the labels that name a label-encoded classifier's
            explained classes; default: the model's richest flavour.
        reader: Reader options, e.g. {"KIND": "CSVReader", "delimiter": ";"}.
        explainer: How to explain: an explainer KIND with its options, e.g.
            {"KIND": "PermutationExplainer", "max_evals": 500}, or a user's
            {"KIND": "package.module:Class"} (the pipeline's description lists the kinds);
            default: the one chosen for the model's estimator (Tree SHAP for tree ensembles).
        max_samples: Most rows explained; bounds the step's time and memory.
        passthrough: Input columns copied beside the sample explanations (ids).
        input_schema: Pandera schema with domain rules: a YAML file or module:NAME (optional).
        allow_unsigned: Explain a model that has no signature (its inputs go unchecked).
        experiment: MLflow experiment of the explanations run.
        run_id: Pipeline run id, recorded on the MLflow run (set by the pipeline).

    Returns:
        models_explanations: One row per input column: importance (mean |SHAP|) and rank.
        samples_explanations: One row per sample: base_value and shap_<column> per input column.
        report: Explanations report with charts.
        summary: Run summary.
        card: Model card of the version explained, now with its top features (or why there
            is none).
        Output: The registered version explained (0 for an unregistered model).
    """
    from components import steps
    from components.core import cards, reports
    from components.fields import explain_fields
    from components.io import artifacts, shards
    from components.jobs.explanations import ExplanationsJob

    def mapping(**inputs: Any) -> dict:  # type: ignore[type-arg]
        # A sharded prediction's plan, read first: its shards hold the rows, it names the model.
        the_plan = shards.ShardPlan.read(plan.path) if plan is not None else None
        return explain_fields(the_plan=the_plan, **inputs)

    # The one mapping of this step's inputs to its job, also the pre-run check's.
    result = steps.run_step(
        ExplanationsJob, "explain", experiment, run_id, mapping,
        models_explanations=models_explanations, samples_explanations=samples_explanations,
        data=data, dataset=dataset, model_name=model_name, alias_or_version=alias_or_version,
        finder=finder, loader=loader, reader=reader, explainer=explainer, max_samples=max_samples,
        passthrough=passthrough, input_schema=input_schema, allow_unsigned=allow_unsigned,
    )  # fmt: skip
    if result.lineage is not None:  # also shown in the Kubeflow UI beside the artifacts
        models_explanations.metadata.update(result.lineage.metadata())
        samples_explanations.metadata.update(result.lineage.metadata())
    artifacts.write_text(report, result.report or reports.explanations_page(result))
    artifacts.write_text(summary, reports.explanations_summary(result))
    artifacts.write_text(card, result.card or cards.missing(result.model_ref))
    return result.model_ref.version or 0
