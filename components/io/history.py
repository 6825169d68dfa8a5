"""Champion history: every move of a serving alias, recorded on the registered model in MLflow.

MLflow moves an alias without keeping its past. Here each move (and each decision on a
candidate awaiting approval) is one tag of the registered model, where the MLflow UI shows it
on the model's page: the key `alias_history.<alias>.<UTC time>.<id>`, the value the entry as
JSON. A tag per entry, under a key no other writer uses, is what keeps two writers at once
from losing either entry, where one list rewritten by both would keep only the last write.
The registered model's description ends with the current Champion's entry, and so does the
Champion version's model card.
"""

from __future__ import annotations

import json
import logging
import re
import typing as T
import uuid

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from components.core import cards, champions
from components.core.model_refs import ModelRef
from components.io import cards as card_store

logger = logging.getLogger(__name__)

PREFIX = "alias_history."
# The registered model's description ends with this section (replaced at each move).
SECTION = card_store.HISTORY_SECTION
DESCRIPTION_LIMIT = card_store.DESCRIPTION_LIMIT
# The entries shown in the description, newest first.
SHOWN = 5


class HistoryError(ValueError):
    """The history cannot be read as asked (no such model)."""


def record(client: MlflowClient, name: str, entry: champions.AliasMove) -> str:
    """Record an entry on the registered model; return its tag's key.

    Args:
        client: the registry.
        name: the registered model.
        entry: what happened.
    """
    stamp = re.sub(r"[^0-9T]", "", entry.at.split("+")[0])  # 20261202T170102123456
    key = f"{PREFIX}{entry.alias}.{stamp}.{uuid.uuid4().hex[:8]}"
    client.set_registered_model_tag(name, key, entry.to_json())
    logger.info("%s history: %s", name, entry.line())
    return key


def add(
    client: MlflowClient,
    name: str,
    tags: T.Mapping[str, str],
    **fields: T.Any,
) -> champions.AliasMove:
    """Record an entry made now, with the figures the version's evaluation compared.

    Args:
        client: the registry.
        name: the registered model.
        tags: the tags of the version the entry is about (its verdict and figures).
        **fields: the entry's alias, action, from_version, to_version, by and reason.
    """
    entry = champions.AliasMove(at=champions.now(), metrics=compared_metrics(tags), **fields)
    record(client, name, entry)
    return entry


def entries(client: MlflowClient, name: str, alias: str | None = None) -> list[champions.AliasMove]:
    """The model's history, oldest first; only the given alias's when one is given.

    Raises:
        HistoryError: no registered model of that name.
    """
    try:
        tags = client.get_registered_model(name).tags or {}
    except MlflowException as error:
        if getattr(error, "error_code", "") == "RESOURCE_DOES_NOT_EXIST":
            raise HistoryError(f"no registered model named '{name}'") from None
        raise
    found = []
    for key, value in tags.items():
        if not key.startswith(PREFIX):
            continue
        try:
            entry = champions.AliasMove.model_validate(json.loads(value))
        except (ValueError, TypeError) as error:  # written by hand, or by a newer version
            logger.warning("history entry %s of %s is not readable: %s", key, name, error)
            continue
        if alias is None or entry.alias == alias:
            found.append((entry.at, key, entry))
    return [entry for _, _, entry in sorted(found)]


def last_move(
    client: MlflowClient, name: str, alias: str, to_version: int | None = None
) -> champions.AliasMove | None:
    """The newest entry that moved the alias (to the given version, when one is given)."""
    moves = [
        entry
        for entry in entries(client, name, alias)
        if entry.moved and (to_version is None or entry.to_version == to_version)
    ]
    return moves[-1] if moves else None


def publish(client: MlflowClient, name: str, entry: champions.AliasMove, served: ModelRef) -> None:
    """Show the alias's current entry in the registered model's description and on its card.

    Best effort: the move is recorded already, and a description or card that cannot be
    written fails nothing (logged as a warning).

    Args:
        client: the registry.
        name: the registered model.
        entry: the entry that moved the alias.
        served: the version the alias serves now.
    """
    try:
        recent = entries(client, name, entry.alias)[-SHOWN:][::-1]
        text = client.get_registered_model(name).description or ""
        client.update_registered_model(name, description=with_history(text, recent))
    except Exception as error:  # noqa: BLE001 - the record matters, not its display
        logger.warning("the description of %s was not updated: %s", name, error)
    try:
        card_store.complete(client, served, lambda card: _serving(card, entry))
    except Exception as error:  # noqa: BLE001
        logger.warning("the model card of %s was not updated: %s", served.describe(), error)


def with_history(description: str, recent: list[champions.AliasMove]) -> str:
    """A description whose last section lists the recent entries (the first is current)."""
    kept = description.split(SECTION)[0].rstrip()
    lines = [SECTION, "", *(f"- {entry.line()}" for entry in recent), ""]
    text = "\n\n".join(part for part in (kept, "\n".join(lines)) if part)
    if len(text) > DESCRIPTION_LIMIT:  # the history gives way: the model's own text stays
        text = text[:DESCRIPTION_LIMIT]
    return text


def _serving(card: cards.ModelCard, entry: champions.AliasMove) -> cards.ModelCard:
    return card.model_copy(update={"serving": cards.ServingFacts(entry=entry.line())})


def verdict(tags: T.Mapping[str, str]) -> str:
    """A version's evaluation verdict, from its tags, as a history entry's reason."""
    # Here: registries loads scikit-learn, which `model history` does not need.
    from components.io import registries

    passed = tags.get(registries.PASSED_TAG)
    if passed is None:
        return "never evaluated"
    champion = tags.get(registries.CHAMPION_TAG, registries.NO_CHAMPION)
    against = f"against v{champion}" if champion.isdigit() else "with no Champion to compare"
    return f"{'passed' if passed == 'true' else 'failed'} its evaluation {against}"


def compared_metrics(tags: T.Mapping[str, str]) -> dict[str, float]:
    """The figures an evaluation compared, from a version's tags: its own and `champion.*`."""
    from components.io import registries

    prefix = registries.METRIC_TAG.format("")
    figures = {}
    for key, value in tags.items():
        if not key.startswith(prefix) or key in (registries.PASSED_TAG, registries.CHAMPION_TAG):
            continue
        try:
            figures[key.removeprefix(prefix)] = float(value)
        except ValueError:  # the verdict's reasons, and other text
            continue
    return dict(sorted(figures.items()))
