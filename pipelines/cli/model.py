"""`model history|rollback|approve|reject|reference`: operate a registered model's versions.

The first four move its serving alias; `reference` gives a version trained elsewhere what predict
checks drift and performance against.

Usage:
    python -m pipelines model history bikes                   # every move of Champion, newest first
    python -m pipelines model rollback bikes --reason "v7 over-predicts weekends"
    python -m pipelines model rollback bikes --to 5 --reason "..."  [--force]
    python -m pipelines model approve bikes 8 [--reason "signed off by risk"]
    python -m pipelines model reject bikes 8 --reason "fails the fairness review"
    python -m pipelines model reference churn --data validation.parquet --target churned

The registry is MLflow's at $MLFLOW_TRACKING_URI (else the local store that local runs use).
Each command that moves or decides records a Champion history entry on the registered model
and alerts (Slack when SLACK_WEBHOOK_URL is set); one that is refused changes nothing.
`reference` gives a version trained elsewhere the profile and estimator that `predict` checks
each batch's drift and performance against (`components.jobs.reference`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import typing as T

from pipelines.cli.guard import guarded


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `model` sub-commands, each with its own arguments."""
    actions = parser.add_subparsers(dest="model_command", required=True)
    history = actions.add_parser("history", help="Print the Champion history, newest first.")
    history.add_argument("--json", action="store_true", help="print the entries as JSON")
    history.add_argument("--limit", type=int, default=None, help="print the newest N only")
    rollback = actions.add_parser(
        "rollback", help="Serve an earlier version again (the previous Champion by default)."
    )
    rollback.add_argument(
        "--to", type=int, default=None, metavar="VERSION", help="version to serve"
    )
    rollback.add_argument(
        "--force",
        action="store_true",
        help="serve a version that failed evaluation or was rejected",
    )
    approve = actions.add_parser("approve", help="Promote a version awaiting approval.")
    reject = actions.add_parser("reject", help="Refuse a version awaiting approval.")
    reference = actions.add_parser(
        "reference",
        help="Store what predict checks drift and performance against, for a version trained "
        "elsewhere.",
    )
    reference.add_argument(
        "--data",
        required=True,
        help="labelled rows, ideally not trained on (a validation set): Parquet or CSV",
    )
    reference.add_argument(
        "--target",
        default=None,
        help="the column of the true values: also fits the performance estimator",
    )
    reference.add_argument(
        "--version", type=int, default=None, help="the version (default: the one --alias names)"
    )
    reference.add_argument(
        "--replace", action="store_true", help="store over the reference the version has"
    )
    for sub in (history, rollback, approve, reject, reference):
        sub.add_argument("name", help="registered model name")
    for sub in (approve, reject):
        sub.add_argument("version", type=int, help="the version awaiting approval")
    for sub in (rollback, approve, reject):
        sub.add_argument(
            "--reason", required=sub is not approve, default=None, help="why, for the history"
        )
        sub.add_argument("--by", default=None, help="who decides (default: $LIFECYCLE_USER, login)")
    for sub in (history, rollback, approve, reject, reference):
        sub.add_argument("--alias", default="Champion", help="the serving alias (default Champion)")
        sub.set_defaults(handler=model_command)


@guarded
def model_command(args: argparse.Namespace) -> int:
    """Run the sub-command; a refusal is one line on stderr and exit status 2."""
    # Here, not at the top: they load MLflow, which every other command would wait for.
    from mlflow.exceptions import MlflowException

    from components.core import drift, features, schemas
    from components.io import datasets, history, registries, services
    from components.jobs import promotion, reference, rejection, rollback

    refusals = (
        history.HistoryError,
        registries.RegistryError,
        rollback.RollbackError,
        rejection.RejectionError,
        promotion.PromotionError,
        reference.ReferenceError,
        datasets.DatasetError,
        schemas.ValidationError,
        features.FeatureError,
        drift.DriftError,
    )
    try:
        return _COMMANDS[args.model_command](args)
    except refusals as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except MlflowException as error:
        from components.utils import secrets

        print(f"error: MLflow: {secrets.redact(str(error))}", file=sys.stderr)
        return 1
    except services.MlflowUnavailableError as error:  # a job's: its message is redacted
        print(f"error: {error}", file=sys.stderr)
        return 1


def _history(args: argparse.Namespace) -> int:
    from components.io import history, services

    client = services.MlflowService().client()
    entries = history.entries(client, args.name, args.alias)[::-1][: args.limit]
    if args.json:
        print(json.dumps([entry.model_dump() for entry in entries], indent=2))
        return 0
    if not entries:
        print(f"{args.name}: no {args.alias} history recorded yet")
        return 0
    serving = client.get_registered_model(args.name).aliases.get(args.alias)
    print(f"{args.name}@{args.alias}: v{serving}" if serving else f"{args.name}: no {args.alias}")
    for entry in entries:
        print(entry.line())
    return 0


def _rollback(args: argparse.Namespace) -> int:
    from components.jobs.rollback import RollbackJob

    job = RollbackJob(
        model_name=args.name,
        alias=args.alias,
        to_version=args.to,
        reason=args.reason,
        force=args.force,
        by=args.by,
    )
    return _done(job.run().entry.line())


def _approve(args: argparse.Namespace) -> int:
    # The candidate's held-out rows, where the promotion that held it left them: with them, a
    # Champion promoted since its evaluation is compared with it again instead of refusing.
    from mlflow.exceptions import MlflowException

    from components.core import champions
    from components.io import services
    from components.jobs import promotion

    try:
        client = services.MlflowService().client()
        tags = client.get_model_version(args.name, str(args.version)).tags or {}
    except MlflowException:  # no such version: the promotion says so, listing what exists
        tags = None
    if tags is not None:  # refused before it starts: nothing recorded, nothing alerted
        promotion.check_awaiting(f"{args.name} v{args.version}", tags)
    tags = tags or {}
    holdout = tags.get(champions.APPROVAL_HOLDOUT_TAG)
    target = tags.get(champions.APPROVAL_TARGET_TAG)
    rows: dict[str, T.Any] = {}
    if holdout and target and (os.path.exists(holdout) or "://" in holdout):
        rows = {"inputs": {"KIND": "ParquetReader", "path": holdout}, "target": target}
    job = promotion.PromotionJob(
        model_name=args.name,
        version=args.version,
        alias=args.alias,
        approved_by=champions.user(args.by),
        reason=args.reason,
        **rows,
    )
    with job:
        result = job.run()
    if not result.promoted:  # a Champion promoted since its evaluation beat it
        print(f"error: v{args.version} not promoted: {result.reason}", file=sys.stderr)
        return 1
    return _done(f"{args.name}@{args.alias}: v{result.previous or 'none'} -> v{args.version}")


def _reject(args: argparse.Namespace) -> int:
    from components.jobs.rejection import RejectionJob

    job = RejectionJob(
        model_name=args.name, version=args.version, alias=args.alias, reason=args.reason, by=args.by
    )
    return _done(job.run().entry.line())


def _reference(args: argparse.Namespace) -> int:
    from components.io import datasets
    from components.jobs.reference import ReferenceJob

    job = ReferenceJob(
        inputs=datasets.reader_for(args.data),
        model_name=args.name,
        alias_or_version=args.version if args.version is not None else args.alias,
        target=args.target,
        replace=args.replace,
    )
    with job:
        return _done(job.run().describe())


def _done(line: str) -> int:
    print(line)
    return 0


_COMMANDS: dict[str, T.Callable[[argparse.Namespace], int]] = {
    "history": _history,
    "rollback": _rollback,
    "approve": _approve,
    "reject": _reject,
    "reference": _reference,
}
