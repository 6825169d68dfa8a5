"""Cards: the model card of each registered version, stored in MLflow and completed step by step.

The card lives among the artifacts of the run that logged the model: `card/card.json` is its
state (what later steps complete), `card/model_card.md` its rendering. The version's description
is the rendering too, so that the MLflow UI shows the card on the version's page.
"""

from __future__ import annotations

import logging
import typing as T
import urllib.parse

from mlflow.tracking import MlflowClient

from components.core import cards
from components.core.model_refs import ModelRef
from components.io import references

logger = logging.getLogger(__name__)

# Where the card goes among the artifacts of the run that logged the model.
STATE_PATH = "card/card.json"
MARKDOWN_PATH = "card/model_card.md"
# A tuning's trial registers no version: it keeps what its training knew here, for the card
# that its selection makes when it registers the best trial.
TRAINING_PATH = "card/training.json"
# A version's description is at most 5000 characters in MLflow's database stores.
DESCRIPTION_LIMIT = 5000
# The registered model's description ends with the Champion history (`io.history`), which a
# new version's description keeps.
HISTORY_SECTION = "### Champion history"


def has_card(model_ref: ModelRef) -> bool:
    """Whether a model may have a card: a registered version logged by a run."""
    return bool(model_ref.name and model_ref.version and model_ref.run_id)


def save(client: MlflowClient, model_ref: ModelRef, card: cards.ModelCard) -> str:
    """Store the card of a version (state and Markdown) and show it as its description.

    Args:
        client: the MLflow client of the tracking server and registry.
        model_ref: the registered version (its `run_id` names the run that logged it).
        card: its card.

    Returns:
        the card's Markdown.

    Raises:
        ValueError: the model is not a registered version logged by a run.
    """
    if not has_card(model_ref):
        raise ValueError(f"{model_ref.describe()} is not a registered version logged by a run")
    markdown = cards.render(card)
    # The state first: the rendering and the description are made from it.
    client.log_text(model_ref.run_id, card.model_dump_json(indent=2), STATE_PATH)
    client.log_text(model_ref.run_id, markdown, MARKDOWN_PATH)
    client.update_model_version(
        model_ref.name, str(model_ref.version), description=description(card, markdown)
    )
    logger.info("model card of %s stored with run %s", model_ref.describe(), model_ref.run_id)
    return markdown


def publish(
    client: MlflowClient,
    model_ref: ModelRef,
    card: cards.ModelCard,
    tracking_uri: str,
    experiment_id: str,
) -> str:
    """Store a new version's card (`save`) and describe the registered model with it.

    What registering a version does for its documentation, a training's or a tuning's.

    Args:
        client: the MLflow client of the tracking server and registry.
        model_ref: the version just registered.
        card: its card.
        tracking_uri: the tracking server, for the link to the card.
        experiment_id: the experiment of the run that logged the version.

    Returns:
        the card's Markdown.
    """
    markdown = save(client, model_ref, card)
    # The registered model's own page says what it predicts, and where the latest card is.
    describe_model(client, card, tracking_uri, experiment_id)
    return markdown


def save_training(client: MlflowClient, run_id: str, facts: cards.TrainingFacts) -> None:
    """Keep a training's facts on its run, for the card of a version registered later.

    Args:
        client: the MLflow client of the tracking server.
        run_id: the run that logged the model.
        facts: what the training knew (`cards.training_facts`).
    """
    client.log_text(run_id, facts.model_dump_json(indent=2), TRAINING_PATH)


def load_training(client: MlflowClient, run_id: str) -> cards.TrainingFacts | None:
    """The training facts a run kept (`save_training`); None when it kept none.

    Raises:
        CardError: they exist but cannot be read.
    """
    text = references.run_text(client, run_id, TRAINING_PATH)
    if text is None:
        return None
    try:
        return cards.TrainingFacts.model_validate_json(text)
    except ValueError as error:
        raise cards.CardError(
            f"the training facts of run {run_id} ({TRAINING_PATH}) cannot be read: "
            f"{' '.join(str(error).split())[:300]}"
        ) from None


def load(client: MlflowClient, model_ref: ModelRef) -> cards.ModelCard | None:
    """The card of a version, from the run that logged it; None when it has none.

    A model given by a URI, a version registered before cards were kept or by another tool
    have none.

    Args:
        client: the MLflow client of the tracking server.
        model_ref: the model found.

    Raises:
        CardError: the card exists but cannot be read.
    """
    if not has_card(model_ref):
        logger.info("%s is not a registered version: it has no model card", model_ref.describe())
        return None
    text = references.run_text(client, model_ref.run_id, STATE_PATH)
    if text is None:
        logger.info("%s has no model card (%s)", model_ref.describe(), STATE_PATH)
        return None
    try:
        return cards.ModelCard.parse(text)
    except cards.CardError as error:
        raise cards.CardError(
            f"the model card of {model_ref.describe()} ({STATE_PATH} of run "
            f"{model_ref.run_id}) cannot be read: {error}"
        ) from None


def complete(
    client: MlflowClient,
    model_ref: ModelRef,
    fill: T.Callable[[cards.ModelCard], cards.ModelCard],
) -> str | None:
    """Complete the card of a version with a step's facts and store it again.

    A model without a card is left as it is, and so is one whose card cannot be read (logged
    as a warning): the card documents the model, and its absence fails no step.

    Args:
        client: the MLflow client of the tracking server and registry.
        model_ref: the model the step worked on.
        fill: the card completed with the step's facts (`cards.with_evaluation`, ...).

    Returns:
        the completed card's Markdown; None when there is no card to complete.
    """
    try:
        card = load(client, model_ref)
    except cards.CardError as error:
        logger.warning("%s; it is left as it is", error)
        return None
    if card is None:
        logger.info("no model card of %s to complete", model_ref.describe())
        return None
    return save(client, model_ref, fill(card))


def description(card: cards.ModelCard, markdown: str, limit: int = DESCRIPTION_LIMIT) -> str:
    """The card as a version's description, within MLflow's limit on its length.

    The whole card when it fits; else the brief card (no default parameters, no reference
    profile) saying where the whole one is, cut at a line if it is still too long.

    Args:
        card: the card.
        markdown: its whole rendering.
        limit: the most characters.
    """
    if len(markdown) <= limit:
        return markdown
    whole = f"`{MARKDOWN_PATH}` of run `{card.run_id}`"
    text = cards.render(card, brief=True) + f"\n*The whole card: {whole}.*\n"
    if len(text) <= limit:
        return text
    note = f"\n\n*Cut to fit; the whole card: {whole}.*\n"
    kept = text[: limit - len(note)]
    kept = kept[: kept.rfind("\n")] if "\n" in kept else kept
    return kept.rstrip() + note


def card_link(tracking_uri: str, experiment_id: str, card: cards.ModelCard) -> str:
    """Where a version's card is: the MLflow UI's page of the file, when MLflow is a server.

    Args:
        tracking_uri: the tracking server (credentials are left out of the link).
        experiment_id: the experiment of the run that logged the version.
        card: the card.
    """
    path = f"`{MARKDOWN_PATH}` of run `{card.run_id}`"
    parts = urllib.parse.urlsplit(tracking_uri)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return path
    host = parts.hostname + (f":{parts.port}" if parts.port else "")
    base = urllib.parse.urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))
    url = f"{base}/#/experiments/{experiment_id}/runs/{card.run_id}/artifacts/{MARKDOWN_PATH}"
    return f"[{MARKDOWN_PATH}]({url}) ({path})"


def describe_model(
    client: MlflowClient, card: cards.ModelCard, tracking_uri: str, experiment_id: str
) -> str:
    """Set the registered model's own description from its latest version's card.

    The task, the target, the features and a link to the card; the features are left out
    when the whole would pass MLflow's limit on a description's length. The Champion history
    that ends the description is kept.

    Args:
        client: the MLflow client of the tracking server and registry.
        card: the card of the version just registered (the latest).
        tracking_uri: the tracking server, for the link.
        experiment_id: the experiment of the run that logged the version.

    Returns:
        the description.
    """
    link = card_link(tracking_uri, experiment_id, card)
    before = client.get_registered_model(card.name).description or ""
    kept = before[before.index(HISTORY_SECTION) :] if HISTORY_SECTION in before else ""
    text = cards.model_description(card, link)
    if len(text) + len(kept) > DESCRIPTION_LIMIT:
        text = cards.model_description(card, link, listed=False)
    text = "\n\n".join(part for part in (text.rstrip(), kept) if part)
    client.update_registered_model(card.name, description=text[:DESCRIPTION_LIMIT])
    logger.info("description of model %s set from %s", card.name, card.describe())
    return text
