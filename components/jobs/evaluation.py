"""Evaluation job: score a model version on held-out data and decide whether it may be promoted."""

from __future__ import annotations

import dataclasses
import logging
import typing as T

import mlflow
import pandas as pd  # type: ignore[import-untyped]
import pydantic as pdt

from components.core import cards, metrics, models, reports, results, schemas
from components.core.model_refs import ModelRef
from components.io import cards as card_store
from components.io import datasets, registries
from components.jobs import base

logger = logging.getLogger(__name__)

# Where the evaluation report goes among the artifacts of the job's run.
REPORT_PATH = "reports/evaluation.html"


class ChampionMismatchError(ValueError):
    """The Champion cannot score the candidate's held-out rows: they cannot be compared."""


class EvaluationJob(base.Job, frozen=True):
    """Evaluate a registered version against thresholds and against the current Champion.

    The version passes when every threshold is met and, when a Champion exists, the version is at
    least as good as the Champion on the task's primary metric (rmse for regression, f1_macro for
    classification), within a relative tolerance.

    Args:
        inputs: held-out rows with the target column.
        target: the column the model predicts.
        model_name: the registered model name.
        alias_or_version: the version (or alias) to evaluate.
        champion_alias: the alias of the model in production, compared against.
        thresholds: metric -> limit, in each metric's own direction (rmse <= 80, r2 >= 0.8);
            None applies the task's defaults (`metrics.DEFAULT_THRESHOLDS`).
        tolerance: how much worse than the Champion a candidate may be, relative (0.02 = 2%).
        loader: how models are loaded; by default in their richest flavour (native
            scikit-learn, XGBoost, LightGBM or CatBoost give class probabilities), else
            through pyfunc.
    """

    KIND: T.Literal["EvaluationJob"] = "EvaluationJob"
    inputs: datasets.ReaderKind
    target: str = pdt.Field(min_length=1)
    model_name: registries.ModelName
    alias_or_version: str | int = "latest"
    champion_alias: str = "Champion"
    thresholds: dict[str, float] | None = None
    tolerance: float = pdt.Field(default=0.0, ge=0.0)
    loader: registries.LoaderKind = pdt.Field(default_factory=registries.FlavorLoader)

    @pdt.field_validator("thresholds")
    @classmethod
    def _known_metrics(cls, thresholds: dict[str, float] | None) -> dict[str, float] | None:
        if thresholds is None:
            return None
        unknown = sorted(set(thresholds) - set(metrics.DIRECTIONS))
        if unknown:
            known = ", ".join(sorted(metrics.DIRECTIONS))
            raise ValueError(f"unknown metrics in thresholds: {unknown}; known: {known}")
        return thresholds

    def run(self) -> results.EvaluationResult:
        """Score the candidate and the Champion on the holdout, decide, record the verdict."""
        client = self.mlflow_service.client()
        # Read the held-out rows; a row without a target value scores nothing.
        data, unlabelled = schemas.labelled(self.inputs.read(), self.target)
        if unlabelled:
            logger.warning("leaving out %d rows without a value in '%s'", unlabelled, self.target)
        if data.empty:
            raise schemas.ValidationError([schemas.Violation("*", schemas.NO_ROWS, 0)], 0)
        if self.target not in data.columns:
            raise schemas.ValidationError(
                [schemas.Violation(self.target, "missing, the target column", len(data))], len(data)
            )
        targets = data[self.target]
        # Load the candidate and score it.
        candidate_ref = self._finder(self.alias_or_version).find(client)
        candidate = self.loader.load(candidate_ref.uri)
        predictions = candidate.predict(data)
        task = candidate.task
        thresholds = (
            metrics.DEFAULT_THRESHOLDS[task] if self.thresholds is None else self.thresholds
        )
        metrics.check_thresholds(task, thresholds)
        scores = metrics.score(task, targets, predictions)
        logger.info("%s: %s", candidate_ref.describe(), scores)
        # Compare with the Champion, when there is one other than the candidate.
        champion_ref = self._champion(client, candidate_ref)
        champion_scores: dict[str, float] = {}
        if champion_ref is not None:
            champion_scores = self._champion_scores(champion_ref, candidate_ref, data, task)
        # Decide, with a reason for every failed check.
        reasons = [
            f"{name}={scores[name]:.4g} does not meet the threshold {limit:g}"
            for name, limit in thresholds.items()
            if not metrics.meets(name, scores.get(name, float("nan")), limit)
        ]
        if champion_ref is not None:
            worse = metrics.worse_than_champion(
                task, scores, champion_scores, champion_ref.describe(), self.tolerance
            )
            reasons.extend([worse] if worse else [])
        passed = not reasons
        # Classification details for the confusion matrix and the ROC curve.
        curves = self._curves(targets, predictions) if task == "classification" else None
        # Record the verdict on the version, with the Champion it beat (promotion moves the
        # alias only if it still points there), and the metrics in a run. Tags are overwritten:
        # evaluating again records the latest comparison.
        champion = champion_ref.version if champion_ref else None
        verdict = {
            **{registries.METRIC_TAG.format(k): f"{v:.6g}" for k, v in scores.items()},
            **registries.comparison_tags(champion, champion_scores),
            registries.REASONS_TAG: "; ".join(reasons)[:5000],  # why not, for the run's final line
            registries.PASSED_TAG: str(passed).lower(),  # last: the verdict is read first
        }
        registries.set_version_tags(client, self.model_name, candidate_ref.version, verdict)
        mlflow.set_tags(
            {
                "model_name": self.model_name,
                "model_version": candidate_ref.version,
                "passed": passed,
            }
        )
        # The names training gives the same figures on the same held-out rows.
        mlflow.log_metrics({f"test_{name}": value for name, value in scores.items()})
        mlflow.log_metrics({f"champion_{name}": value for name, value in champion_scores.items()})
        result = results.EvaluationResult(
            candidate_ref=candidate_ref,
            champion_ref=champion_ref,
            task=task,
            passed=passed,
            reasons=reasons,
            thresholds=thresholds,
            scores=scores,
            champion_scores=champion_scores,
            rows=len(data),
            curves=curves,
            targets=targets,
            predicted=predictions[models.PREDICTION],
        )
        # Complete the version's model card with the verdict, when it has one.
        card = card_store.complete(
            client, candidate_ref, lambda card: cards.with_evaluation(card, result)
        )
        # The report, among the run's artifacts, where the MLflow UI shows it.
        page = reports.evaluation_page(result)
        mlflow.log_text(page, REPORT_PATH)
        # Tell people the verdict.
        self.alerter.notify(
            # The job succeeded whatever the verdict: the title says so, the message the verdict.
            title=f"{self.KIND} succeeded",
            message=f"{candidate_ref.describe()} "
            + ("passed: it may be promoted." if passed else "did not pass: " + "; ".join(reasons)),
            fields={k: round(v, 4) for k, v in scores.items()},
            status="SUCCEEDED",
        )
        return dataclasses.replace(result, card=card, report=page)

    def _finder(self, alias_or_version: str | int) -> registries.RegistryFinder:
        if alias_or_version == "latest":
            latest = registries.latest_version(self.mlflow_service.client(), self.model_name)
            alias_or_version = latest
        return registries.RegistryFinder(name=self.model_name, alias_or_version=alias_or_version)

    def _champion_scores(
        self,
        champion_ref: ModelRef,
        candidate_ref: ModelRef,
        data: pd.DataFrame,
        task: models.Task,
    ) -> dict[str, float]:
        """The Champion's metrics on the same held-out rows.

        Raises:
            ChampionMismatchError: the Champion is of another task (a regressor, a classifier
                now), or cannot score these rows (a column it takes was dropped or retyped since
                it was trained): the two cannot be compared.
        """
        champion = self.loader.load(champion_ref.uri)
        serve = (
            f"serve it by hand: python -m pipelines model rollback {self.model_name} --to "
            f'{candidate_ref.version} --reason "..."'
        )
        if champion.task != task:
            raise ChampionMismatchError(
                f"the Champion, {champion_ref.describe()}, is a {champion.task} model and "
                f"{candidate_ref.describe()} a {task} one: they have no metric in common to be "
                f"compared on. Register the new kind under a model name of its own, or, if "
                f"{candidate_ref.describe()} is to replace the Champion, {serve}"
            )
        broken = schemas.check_signature(data, champion.signature)
        cause = "; ".join(str(violation) for violation in broken[:5])
        if not broken:
            try:
                return metrics.score(task, data[self.target], champion.predict(data))
            except (ValueError, KeyError, TypeError) as error:
                cause = f"{type(error).__name__}: {error}"
        raise ChampionMismatchError(
            f"the Champion, {champion_ref.describe()}, cannot score these held-out rows, so "
            f"{candidate_ref.describe()} cannot be compared with it: {cause}. The data changed "
            "since the Champion was trained (a column dropped or retyped?): evaluate on rows "
            f"that the Champion can read, or, if you trust {candidate_ref.describe()}, {serve}"
        )

    def _champion(self, client, candidate_ref) -> ModelRef | None:
        """The current Champion, unless there is none or it is the candidate itself."""
        model = client.get_registered_model(self.model_name)
        if self.champion_alias not in model.aliases:
            logger.info("no %s yet: nothing to compare with", self.champion_alias)
            return None
        champion_ref = self._finder(self.champion_alias).find(client)
        return None if champion_ref.version == candidate_ref.version else champion_ref

    @staticmethod
    def _curves(targets, predictions) -> results.Curves:
        labels = [str(label) for label in metrics.probability_labels(predictions)]
        positive = metrics.roc_class(targets, labels)
        roc = None
        if positive is not None:
            scores = predictions[models.probability_column(positive)].to_numpy()
            roc = metrics.roc(targets, scores, positive)
        return results.Curves(
            labels=labels,
            confusion_matrix=metrics.confusion(targets, predictions[models.PREDICTION], labels),
            roc_positive=positive or "",
            roc=roc,
        )
