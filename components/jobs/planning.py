"""Planning job: split an input into balanced shards from its metadata, and pin the model."""

from __future__ import annotations

import logging
import time
import typing as T

import mlflow
import pydantic as pdt

from components.core import results
from components.io import datasets, registries, shards
from components.jobs import base

logger = logging.getLogger(__name__)


class PlanningJob(base.Job, frozen=True):
    """Plan a sharded prediction: which pieces of the input each shard reads, with which model.

    No row is read: Parquet row groups are listed with their row counts from the files'
    footers, CSV files with their sizes. Shards are contiguous runs of pieces (the input's
    order is kept) with the largest as small as the pieces allow. A row group is never split,
    so a file of one row group is one piece: write inputs with row groups of about 100k rows.

    The model is found once, here: every shard then predicts with the version found, even if
    the alias moves to another version while the shards run.

    Args:
        inputs: the rows to predict (a file or a folder of Parquet or CSV files).
        finder: which model: a registered alias or version, the best run of an experiment, a URI.
        shards: how many shards to make (fewer when the input has fewer pieces).
        output: where the plan (JSON) goes, a local file.
        challenger: a second model every shard scores with for comparison, found once too.
    """

    KIND: T.Literal["PlanningJob"] = "PlanningJob"
    inputs: datasets.ReaderKind
    finder: registries.FinderKind
    shards: int = pdt.Field(default=2, gt=0)
    output: str
    challenger: registries.FinderKind | None = None

    def run(self) -> results.PlanResult:
        """Find the model, list the input's pieces, split them and write the plan."""
        started = time.perf_counter()
        # Find the model once, so that every shard uses the same version.
        client = self.mlflow_service.client()
        model_ref = self.finder.find(client)
        challenger = None
        if self.challenger is not None:
            challenger = registries.pinned_finder(self.challenger.find(client))
        # List the pieces from metadata, and split them into balanced, contiguous shards.
        pieces = self.inputs.list_pieces()
        if not pieces:
            raise datasets.DatasetError(
                f"no rows to predict in {self.inputs.path}: it holds no files with rows"
            )
        runs = shards.split_balanced([piece.weight for piece in pieces], self.shards)
        plan = shards.ShardPlan(
            inputs=self.inputs.model_dump(exclude={"pieces", "columns"}),
            finder=registries.pinned_finder(model_ref),
            model_uri=model_ref.uri,
            model_name=model_ref.name,
            model_version=model_ref.version,
            model_run_id=model_ref.run_id,
            challenger=challenger,
            shards=[shards.merge_adjacent([pieces[index] for index in run]) for run in runs],
        )
        plan.write(self.output)
        seconds = time.perf_counter() - started
        unit = "rows" if plan.rows is not None else "bytes"
        weights = plan.weights()
        logger.info(
            "%d pieces in %d shards of %s %s (largest / mean: %.2f)",
            len(pieces), len(weights), weights, unit, plan.balance(),
        )  # fmt: skip
        mlflow.set_tags({"model_name": model_ref.name, "model_version": model_ref.version})
        mlflow.log_metrics(
            {"shards": len(weights), "pieces": len(pieces), "balance": plan.balance()}
        )
        warnings = []
        if len(weights) < self.shards:
            warnings.append(
                f"{self.shards} shards asked, {len(weights)} made: the input has "
                f"{len(pieces)} piece(s) (Parquet row groups, or CSV files), the smallest unit "
                "a shard reads"
            )
            self.warn(warnings)
        self.alerter.notify(
            title=f"{self.KIND} succeeded",
            message=f"Planned {len(weights)} shards of {self.inputs.path} "
            f"for {model_ref.describe()}."
            + "".join(f"\nWarning: {warning}" for warning in warnings),
            fields={"shards": len(weights), unit: sum(weights), "balance": f"{plan.balance():.2f}"},
        )
        return results.PlanResult(
            model_ref=model_ref,
            shards=len(weights),
            pieces=len(pieces),
            weights=weights,
            unit=unit,
            output=self.output,
            seconds=seconds,
            warnings=warnings,
        )
