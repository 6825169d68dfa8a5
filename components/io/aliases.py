"""Serving aliases: who holds one, and moving it while other writers may be moving it too.

MLflow's registry has no conditional alias update. Every writer of an alias (a promotion, a
rollback, an approval) therefore marks itself in flight on the registered model before its
first read of the alias, and removes the mark at its end. A writer that sees another's mark
after its write waits longer than any writer's read-to-write gap, then reads the alias again:
a concurrent write that read the alias before this one and wrote after it shows up there. A
writer that sees no mark knows every other one read the alias after its write. A lone writer,
the common case, moves the alias without waiting.
"""

from __future__ import annotations

import contextlib
import logging
import time
import typing as T
import uuid

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

logger = logging.getLogger(__name__)

# Tag on a version a promotion moved the alias to: the version it pointed to before (for a
# retry's report, and a rollback's default when no history names it).
PREVIOUS_TAG = "promotion.previous"
# Tags on the registered model, one per writer in flight: the key holds the writer's id, the
# value the time it started (seconds since the epoch).
IN_FLIGHT_PREFIX = "promotion.in_flight."
# A mark older than this belongs to a writer that died without removing it: ignored, and
# removed by the next writer.
IN_FLIGHT_STALE_SECONDS = 3600.0


def holder(client: MlflowClient, name: str, alias: str) -> str | None:
    """The version the alias points to, as text (a local store answers an int); None: unset."""
    version = client.get_registered_model(name).aliases.get(alias)
    return None if version is None else str(version)


@contextlib.contextmanager
def in_flight(client: MlflowClient, name: str) -> T.Iterator[str]:
    """Mark a writer of the model's aliases in flight for the block; yield the mark's key."""
    mark = IN_FLIGHT_PREFIX + uuid.uuid4().hex[:16]
    client.set_registered_model_tag(name, mark, f"{time.time():.3f}")
    try:
        yield mark
    finally:
        unmark(client, name, mark)


def others_in_flight(client: MlflowClient, name: str, mark: str) -> list[str]:
    """The marks of the other writers in flight (stale ones removed, not counted)."""
    tags = client.get_registered_model(name).tags or {}
    others = []
    for key, value in tags.items():
        if not key.startswith(IN_FLIGHT_PREFIX) or key == mark:
            continue
        try:
            age = time.time() - float(value)
        except ValueError:  # not ours to read: count it, to be safe
            age = 0.0
        if age > IN_FLIGHT_STALE_SECONDS:
            unmark(client, name, key)
        else:
            others.append(key)
    return others


def unmark(client: MlflowClient, name: str, mark: str) -> None:
    """Remove a mark; one already gone (a concurrent clean-up) is fine."""
    try:
        client.delete_registered_model_tag(name, mark)
    except MlflowException as error:
        logger.debug("in-flight mark %s not removed: %s", mark, error)


def move(
    client: MlflowClient, name: str, alias: str, version: str, mark: str, settle_seconds: float
) -> str | None:
    """Point the alias at a version, then return who holds it once no other write can land.

    Args:
        client: the registry.
        name: the registered model.
        alias: the alias.
        version: the version to point it at.
        mark: this writer's in-flight mark (from `in_flight`).
        settle_seconds: how long to wait, when another writer is in flight, before reading
            the alias again (longer than any writer's read-to-write gap).

    Returns:
        The version the alias points to afterwards: `version`, or another writer's.
    """
    client.set_registered_model_alias(name, alias, version)
    others = others_in_flight(client, name, mark)
    if others:
        logger.info(
            "%d other writer(s) of %s in flight: checking %s again in %.1f s",
            len(others),
            name,
            alias,
            settle_seconds,
        )
        time.sleep(settle_seconds)
    return holder(client, name, alias)
