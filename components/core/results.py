"""Results: what each job returns, small and typed, for components, reports and tests."""

from __future__ import annotations

import dataclasses
import typing as T

import pandas as pd

from components.core import champions
from components.core.drift import DriftReport, Profile, Tally
from components.core.lineage import Lineage
from components.core.model_refs import ModelRef as ModelRef  # where users' finders import it
from components.core.schemas import Violation
from components.core.shadow import Comparison, ShadowSummary


@dataclasses.dataclass(frozen=True)
class TrainingResult:
    """A trained and registered version.

    Attributes:
        model_ref: the registered version.
        model_kind: the model's KIND.
        task: regression or classification.
        numerical: the numeric features, as inferred or given.
        categorical: the categorical features, as inferred or given.
        rows: labelled rows read.
        train_rows: rows fitted on.
        test_rows: rows held out.
        scores: holdout metrics.
        seconds: wall time.
        profile: the reference profile stored with the version (training data, holdout
            predictions).
        card: the version's model card (Markdown).
        warnings: what the user should know of the data and the holdout (rows dropped, a
            column that looks like an identifier, a holdout too small to trust).
    """

    model_ref: ModelRef
    model_kind: str
    task: str
    numerical: list[str]
    categorical: list[str]
    rows: int
    train_rows: int
    test_rows: int
    scores: dict[str, float]
    seconds: float
    profile: Profile | None = None
    card: str | None = None
    warnings: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class Curves:
    """A classifier's confusion matrix and the ROC curve of one class against the rest.

    `roc` is None (and `roc_positive` "") when the targets hold fewer than two classes, so
    that no class has a curve; see `metrics.roc_class` for the class drawn.
    """

    labels: list[str]
    confusion_matrix: list[list[int]]
    roc_positive: str
    roc: dict[str, list[float]] | None


@dataclasses.dataclass(frozen=True)
class EvaluationResult:
    """The verdict on a candidate version.

    Attributes:
        candidate_ref: the evaluated version.
        champion_ref: the Champion it was compared with, if any.
        task: regression or classification.
        passed: whether it may be promoted.
        reasons: why not, one line per failed check.
        thresholds: the thresholds applied.
        scores: the candidate's holdout metrics.
        champion_scores: the Champion's metrics on the same rows ({} without a Champion).
        rows: holdout rows.
        curves: confusion matrix and ROC (classifiers only).
        targets: the holdout's true values (for the regression chart).
        predicted: the candidate's predictions of them.
        card: the version's model card with the verdict (Markdown; None: it has no card).
        report: the evaluation report (HTML), as logged on the job's run ("": not made).
    """

    candidate_ref: ModelRef
    champion_ref: ModelRef | None
    task: str
    passed: bool
    reasons: list[str]
    thresholds: dict[str, float]
    scores: dict[str, float]
    champion_scores: dict[str, float]
    rows: int
    curves: Curves | None
    targets: pd.Series
    predicted: pd.Series
    card: str | None = None
    report: str = ""


@dataclasses.dataclass(frozen=True)
class PromotionResult:
    """The outcome of a promotion: which version the alias serves now.

    Attributes:
        model_ref: the candidate version.
        alias: the alias.
        previous: the version the alias pointed to before the candidate (None: none, or the
            alias was not moved).
        served_ref: the version the alias points to now: the candidate, or a Champion promoted
            meanwhile that the candidate did not beat (None: none, the candidate awaiting
            approval of a model that has no Champion yet).
        reason: why the candidate is not served (None when it is).
        awaiting_approval: the candidate passed and waits for `model approve` (manual mode).
    """

    model_ref: ModelRef
    alias: str
    previous: int | None
    served_ref: ModelRef | None
    reason: str | None = None
    awaiting_approval: bool = False

    @property
    def promoted(self) -> bool:
        """Whether the candidate is the version served."""
        return self.served_ref is not None and self.served_ref.version == self.model_ref.version


@dataclasses.dataclass(frozen=True)
class RegistryDecision:
    """A rollback or a rejection: the model, and the Champion history entry it recorded.

    Attributes:
        model_name: the registered model.
        entry: the entry (from which version to which, when, by whom, why).
    """

    model_name: str
    entry: champions.AliasMove


@dataclasses.dataclass(frozen=True)
class ReferenceResult:
    """A reference stored with a version trained elsewhere (`components.jobs.reference`).

    Attributes:
        model_ref: the version.
        rows: rows profiled.
        numerical: the numeric features profiled.
        categorical: the categorical features profiled.
        estimator: whether a performance estimator was stored too (the rows had a target).
    """

    model_ref: ModelRef
    rows: int
    numerical: list[str]
    categorical: list[str]
    estimator: bool

    def describe(self) -> str:
        """What was stored, and what it makes `predict` check, for the alert and the terminal."""
        features = len(self.numerical) + len(self.categorical)
        stored = "a reference profile" + (" and a performance estimator" if self.estimator else "")
        checks = "drift and the estimated performance" if self.estimator else "drift"
        return (
            f"Stored {stored} of {features} features from {self.rows:,} rows with "
            f"{self.model_ref.describe()}: predict now checks {checks} of each batch."
        )


@dataclasses.dataclass(frozen=True)
class InferenceResult:
    """Predictions written.

    Attributes:
        model_ref: the version that predicted.
        rows_in: input rows checked.
        rows: rows predicted and written.
        columns: output columns.
        output: where the predictions went.
        seconds: wall time.
        warnings: what the user should know (e.g. predicting without a signature).
        lineage: where the predictions came from, as written into their metadata.
        violations: the rules the input broke, when the job reports them instead of raising
            (then nothing was written).
        shards: how many shards predicted the rows (1: one pod).
        drift: the batch against the model's training profile (None: not checked, or left to
            the publishing step of a sharded prediction).
        estimate: the batch's estimated performance, before its labels (None: not estimated).
        estimate_tally: the sums the estimate is made of (added up across shards).
        tally: the counts the drift report is made of (added up across shards).
        shadow: the challenger's comparison with the Champion (None: no challenger).
        comparison: the sums the comparison is made of (added up across shards).
        notes: why drift or the comparison was not checked, or only in part.
        monitoring_page: the HTML report of the drift and the comparison ("" when neither).
        shard_report: a shard's report for the publishing step (None: not a shard's job).
    """

    model_ref: ModelRef
    rows_in: int
    rows: int
    columns: int
    output: str
    seconds: float
    warnings: list[str] = dataclasses.field(default_factory=list)
    lineage: Lineage | None = None
    violations: list[Violation] = dataclasses.field(default_factory=list)
    shards: int = 1
    drift: DriftReport | None = None
    estimate: T.Any | None = None  # components.core.estimation.Estimate (it loads sklearn)
    estimate_tally: T.Any | None = None  # its EstimateTally, added up across shards
    tally: Tally | None = None
    shadow: ShadowSummary | None = None
    comparison: Comparison | None = None
    notes: list[str] = dataclasses.field(default_factory=list)
    monitoring_page: str = ""
    shard_report: T.Any | None = None  # components.io.shards.ShardReport


@dataclasses.dataclass(frozen=True)
class PlanResult:
    """Shards planned.

    Attributes:
        model_ref: the version every shard predicts with.
        shards: how many shards were made.
        pieces: how many pieces (row groups, files) they share.
        weights: each shard's rows (bytes for CSV).
        unit: "rows" or "bytes".
        output: where the plan went.
        seconds: wall time.
        warnings: what the user should know (e.g. fewer shards than asked).
    """

    model_ref: ModelRef
    shards: int
    pieces: int
    weights: list[int]
    unit: str
    output: str
    seconds: float
    warnings: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class ExplanationsResult:
    """Explanations written.

    Attributes:
        model_ref: the version explained.
        explainer: the explainer's KIND.
        samples: rows explained.
        importances: one row per feature: importance (mean |SHAP|) and rank.
        preview: the first explained rows (for the report).
        shown: the explanations of the first samples (at most a few hundred, one row per
            sample and output, as written), for the report's charts; None: not kept.
        shown_inputs: those samples' input values, one row per sample, in the same order.
        seconds: wall time.
        warnings: what the user should know.
        lineage: where the explanations came from, as written into both files' metadata.
        card: the version's model card with its top features (Markdown; None: it has none).
        report: the explanations report (HTML), as logged on the job's run ("": not made).
    """

    model_ref: ModelRef
    explainer: str
    samples: int
    importances: pd.DataFrame
    preview: pd.DataFrame
    seconds: float
    shown: pd.DataFrame | None = None
    shown_inputs: pd.DataFrame | None = None
    warnings: list[str] = dataclasses.field(default_factory=list)
    lineage: Lineage | None = None
    card: str | None = None
    report: str = ""


@dataclasses.dataclass(frozen=True)
class NotificationResult:
    """The pipeline's alert.

    Attributes:
        title: the alert's headline.
        message: its text.
        fields: its key facts.
        delivered: whether it reached its destination.
        closed: the MLflow runs left RUNNING by steps that died, now ended FAILED.
        retraining: the training job the retraining policy started ("" when none).
    """

    title: str
    message: str
    fields: dict[str, T.Any]
    delivered: bool
    closed: list[str] = dataclasses.field(default_factory=list)
    retraining: str = ""


@dataclasses.dataclass(frozen=True)
class MonitoringResult:
    """A model's realized performance, once the ground truth of its predictions arrived.

    Attributes:
        model_ref: the version compared with.
        version_source: how it was chosen ("named by the predictions' lineage", "Champion given").
        task: regression or classification (from the version's holdout metrics).
        join: how the predictions met the ground truth (a `labels.JoinSummary`).
        report: the verdicts per period and over all rows (a `labels.PerformanceReport`).
        by_period: the metrics per period, then over all rows (`labels.metrics_by_period`).
        table: one row per period and metric, with the holdout's value and the verdict.
        headline: one line for an alert.
        metrics: flat figures as logged: realized_*, change_*, period counts.
        degraded: whether the realized performance is worse than the holdout's beyond the
            tolerance (over all rows or in any period).
        policy: warn or fail.
        notes: what was done to make the sides meet, or why no estimate was compared with.
        seconds: wall time.
        page: the performance report (HTML), as logged on the job's run ("": not made).
    """

    model_ref: ModelRef
    version_source: str
    task: str
    join: T.Any  # components.core.labels.JoinSummary (labels loads the metrics' sklearn)
    report: T.Any  # components.core.labels.PerformanceReport
    by_period: pd.DataFrame
    table: pd.DataFrame
    headline: str
    metrics: dict[str, float]
    degraded: bool
    policy: str
    notes: list[str] = dataclasses.field(default_factory=list)
    seconds: float = 0.0
    page: str = ""


@dataclasses.dataclass(frozen=True)
class TrialPlan:
    """The trials a tuning runs, as planned from its search space.

    Attributes:
        search: grid or random.
        trials: each trial's number and parameters, in order.
        grid_points: how many points the grid of the space's choices has.
        metric: the holdout metric the trials are ranked by (`test_rmse`).
        mode: "min" when lower is better, "max" when higher is.
        parallelism: how many trials run at once.
        warnings: what the plan could not do as asked.
    """

    search: str
    trials: list[dict[str, T.Any]]
    grid_points: int
    metric: str
    mode: str
    parallelism: int
    warnings: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class RankedTrial:
    """One trial of a tuning with its score.

    Attributes:
        run_id: the trial's MLflow run.
        trial: its number (None when its run has no trial tag).
        score: its holdout metric.
        params: the estimator parameters the trial set (the space's point, and the config's
            `model_params`), as MLflow logged them.
    """

    run_id: str
    trial: int | None
    score: float
    params: dict[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class SelectionResult:
    """The best trial of a tuning, registered as a new version.

    Attributes:
        model_ref: the version registered from the best trial's logged model.
        best: the best trial.
        metric: the metric the trials were ranked by.
        mode: "min" when lower is better, "max" when higher is.
        trials: every trial given, best first (those that logged no metric last).
        card: the version's model card (Markdown; None when the trial kept no facts for it).
    """

    model_ref: ModelRef
    best: RankedTrial
    metric: str
    mode: str
    trials: list[RankedTrial]
    card: str | None = None
