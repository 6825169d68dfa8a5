"""Trial selection job: rank a tuning's trials, register the best trial's model as a version."""

from __future__ import annotations

import logging
import math
import typing as T

import mlflow
import pydantic as pdt

from components.core import cards, metrics, results, search
from components.core.model_refs import ModelRef
from components.io import cards as card_store
from components.io import registries
from components.jobs import base

logger = logging.getLogger(__name__)


class TrialSelectionJob(base.Job, frozen=True):
    """Register the best of a tuning's trials as a new version of the model.

    The trials are ranked as `BestRunFinder` ranks runs (`registries.best_logged_run`): by the
    holdout metric in its own direction, the best that logged a model winning. Its logged model
    is registered as a training registers its own (`registries.register_logged`: the same
    signature, example and task tags), and gets the card a training writes, from the facts the
    trial kept. A retry of the same task keeps the version an earlier attempt registered.

    Args:
        model_name: the registered model name.
        metric: the holdout metric the trials are ranked by, as they logged it (`test_rmse`);
            empty: the task's primary one (`metrics.PRIMARY`), the task read from the metrics
            the first trial logged.
        trial_runs: the trials' MLflow runs.
    """

    KIND: T.Literal["TrialSelectionJob"] = "TrialSelectionJob"
    model_name: registries.ModelName
    metric: str = ""
    trial_runs: list[str] = pdt.Field(default_factory=list)

    @pdt.field_validator("metric")
    @classmethod
    def _known_metric(cls, metric: str) -> str:
        if metric:
            metrics.direction(metric)  # raises ValueError, naming the known ones
        return metric

    def run(self) -> results.SelectionResult:
        """Rank the trials, register the best one's model, write its card, tell people."""
        client = self.mlflow_service.client()
        if not self.trial_runs:
            raise registries.RegistryError("no trial to select from: every trial is missing")
        # Rank the trials as the best run of an experiment is found.
        first = client.get_run(self.trial_runs[0])
        if not self.metric:  # the task's primary metric, the task read from what trials log
            task = metrics.task_of(first.data.metrics, prefix=metrics.HOLDOUT_PREFIX)
            job = self.model_copy(update={"metric": metrics.holdout_metric(task, "")})
            return job.run()
        mode = metrics.direction(self.metric)
        experiment = client.get_experiment(first.info.experiment_id)
        best_run, logged = registries.best_logged_run(
            client, experiment, self.metric, mode, among=self.trial_runs
        )
        ranked = self._ranked(client, mode)
        best = next(trial for trial in ranked if trial.run_id == best_run.info.run_id)
        # Register its logged model, once per task: a retry finds the version it registered.
        model_ref = self._register(client, logged[0].model_uri, best_run.info.run_id)
        mlflow.set_tags(
            {
                "model_name": self.model_name,
                "model_version": model_ref.version,
                "tuning.best_run": best.run_id,
                "tuning.best_trial": "" if best.trial is None else best.trial,
            }
        )
        mlflow.log_metric(f"best_{self.metric}", best.score)
        # The trial's run logged the model: it names the version, as a training's run does.
        client.set_tag(best.run_id, "model_name", self.model_name)
        client.set_tag(best.run_id, "model_version", str(model_ref.version))
        # The version's card, from what the trial's training knew.
        facts = card_store.load_training(client, best.run_id)
        card = None
        if facts is not None:
            card = card_store.publish(
                client,
                model_ref,
                cards.card_of(model_ref, facts),
                self.mlflow_service.tracking_uri,
                experiment.experiment_id,
            )
        result = results.SelectionResult(
            model_ref=model_ref, best=best, metric=self.metric, mode=mode, trials=ranked, card=card
        )
        self.alerter.notify(
            title=f"{self.KIND} succeeded",
            message=f"Registered {model_ref.describe()} from trial {best.trial} of "
            f"{len(ranked)} ({self.metric}={best.score:.4g}).",
        )
        return result

    def _ranked(self, client: T.Any, mode: str) -> list[results.RankedTrial]:
        """Every trial with its score, best first; one that logged no such metric last."""
        ranked = []
        for run_id in self.trial_runs:
            run = client.get_run(run_id)
            tag = run.data.tags.get(search.TRIAL_TAG)
            score = run.data.metrics.get(self.metric, math.nan)
            given = run.data.tags.get("model.params_set", "").split(", ")
            params = {name: run.data.params[name] for name in given if name in run.data.params}
            number = int(tag) if tag else None
            ranked.append(results.RankedTrial(run_id, number, float(score), params))
        sign = 1.0 if mode == "min" else -1.0
        return sorted(ranked, key=lambda t: (math.isnan(t.score), sign * t.score if not
                                             math.isnan(t.score) else 0.0))  # fmt: skip

    def _register(self, client: T.Any, model_uri: str, run_id: str) -> ModelRef:
        """The version registered from the best trial's model (an earlier attempt's, if any)."""
        tags = registries.task_tags(self.run_tags)
        earlier = registries.task_version(client, self.model_name, tags)
        if earlier is not None:
            logger.warning(
                "keeping %s, registered by an earlier attempt of task %s",
                earlier.describe(),
                tags[base.TASK_TAG],
            )
            return earlier
        model_ref = registries.register_logged(
            ModelRef(uri=model_uri, run_id=run_id), self.model_name, tags
        )
        logger.info("registered %s from trial run %s", model_ref.describe(), run_id)
        return model_ref
