"""Model cards: what a registered version is, what it learnt from, and how well it does.

A card is filled in three steps, each by the job that knows the facts: training (the data, the
features and the target, the model and its parameters, the holdout metrics, the reference
profile), evaluation (the verdict, and the Champion it was compared with) and explanation (the
top features by mean |SHAP|). Its state is a small pydantic model stored as JSON beside the
model, so that a later step completes it without loading the model; `render` writes it out as
Markdown.

The Markdown is laid out with skops' `Card` (sections, sub-sections, tables, the metrics
table), built with `model=None` and `template=None`. Its model-bound parts (the skops template,
the hyperparameter table from `get_params`, the model diagram) need the fitted estimator, so
the evaluation and explanation steps would have to load the model again only to render a card;
the facts those parts show are in the state already (the estimator's parameters, read at
training). What skops has no notion of (the data's digest, the verdict, the Champion, the
explanations, the reference profile) is written here.
"""

from __future__ import annotations

import typing as T

import numpy as np
import pydantic as pdt

from components.core import metrics, results
from components.core.model_refs import ModelRef

if T.TYPE_CHECKING:
    from skops.card import Card

# The card format, for readers of the stored JSON.
CARD_VERSION = 1
# Top features kept from the explanations.
TOP_FEATURES = 10
# Feature names listed in the Markdown per type; the JSON keeps them all.
LISTED_FEATURES = 50
NOT_EVALUATED = "Not evaluated yet."
NOT_EXPLAINED = "Not explained yet."
NO_PROFILE = "No reference profile was stored with this version."
BRIEF_PROFILE = "Left out here: see the whole card."
# How a threshold applies, by the metric's direction.
_DIRECTION = {"min": "<=", "max": ">="}


class CardError(ValueError):
    """A stored model card cannot be read."""


class _Part(pdt.BaseModel, strict=True, frozen=True, extra="forbid"):
    # NaN metrics (e.g. an undefined ROC AUC) survive the JSON round-trip as NaN, not null.
    model_config = pdt.ConfigDict(ser_json_inf_nan="constants")


class DataFacts(_Part, frozen=True):
    """The training data.

    Args:
        source: where it was read (credentials redacted).
        digest: MLflow's dataset digest of the labelled rows (None when unknown).
        rows: labelled rows read.
        train_rows: rows fitted on.
        test_rows: rows held out.
    """

    source: str
    digest: str | None = None
    rows: int
    train_rows: int
    test_rows: int


class ProfileRow(_Part, frozen=True):
    """One feature (or the prediction) of the reference profile: see `drift.Profile.summary`."""

    feature: str
    kind: str
    missing: float
    summary: str


class TrainingFacts(_Part, frozen=True):
    """What training knows: the data, the features, the model, its holdout metrics.

    Args:
        data: the training data.
        target: the column predicted.
        task: regression or classification.
        numerical: the numerical features.
        categorical: the categorical features.
        model_kind: the model's KIND.
        params: the estimator's parameters as fitted (defaults included).
        params_set: the parameters given explicitly; the others are the defaults.
        scores: the holdout metrics.
        profile: the reference profile's summary, one row per feature and the prediction.
        caveats: what training warned of in the data (rows dropped, a column that looks like
            an identifier, a holdout too small to trust).
    """

    data: DataFacts
    target: str
    task: str
    numerical: list[str]
    categorical: list[str]
    model_kind: str
    params: dict[str, T.Any] = pdt.Field(default_factory=dict)
    params_set: list[str] = pdt.Field(default_factory=list)
    scores: dict[str, float]
    profile: list[ProfileRow] | None = None
    caveats: list[str] = pdt.Field(default_factory=list)


class ChampionFacts(_Part, frozen=True):
    """The Champion a version was compared with, scored on the same rows.

    Args:
        model: its label (e.g. `bike-sharing v3`).
        version: its version.
        uri: its models:/ URI.
        scores: its metrics on the candidate's holdout.
    """

    model: str
    version: int | None = None
    uri: str
    scores: dict[str, float]


class EvaluationFacts(_Part, frozen=True):
    """The evaluation's verdict.

    Args:
        passed: whether the version may be promoted.
        reasons: why not, one line per failed check.
        thresholds: the thresholds applied.
        scores: the version's metrics on the holdout.
        rows: holdout rows scored.
        champion: the Champion compared with (None: there was none).
    """

    passed: bool
    reasons: list[str] = pdt.Field(default_factory=list)
    thresholds: dict[str, float] = pdt.Field(default_factory=dict)
    scores: dict[str, float]
    rows: int
    champion: ChampionFacts | None = None


class Importance(_Part, frozen=True):
    """A feature's mean absolute SHAP value and its rank (1: the most important)."""

    feature: str
    importance: float
    rank: int


class ExplanationFacts(_Part, frozen=True):
    """The explanations' top features.

    Args:
        explainer: the explainer's KIND.
        samples: rows explained.
        features: features explained.
        top: the most important features, most important first.
    """

    explainer: str
    samples: int
    features: int
    top: list[Importance]


class ServingFacts(_Part, frozen=True):
    """How the version came to serve: the Champion history entry that moved the alias to it.

    Args:
        entry: the entry's line (when, from which version, by whom, why).
    """

    entry: str


class ModelCard(_Part, frozen=True):
    """The card of a registered version; sections left None are not filled yet.

    Args:
        card_version: the card format.
        name: the registered model name.
        version: the version.
        uri: its models:/ URI.
        run_id: the MLflow run that logged it (where the card is stored).
        training: filled by training.
        evaluation: filled by evaluation (the latest).
        explanation: filled by explanation (the latest).
        serving: filled when an alias is moved to the version (the latest move).
    """

    card_version: int = CARD_VERSION
    name: str
    version: int
    uri: str
    run_id: str
    training: TrainingFacts
    evaluation: EvaluationFacts | None = None
    explanation: ExplanationFacts | None = None
    serving: ServingFacts | None = None

    def describe(self) -> str:
        """A short human label, e.g. `bike-sharing v3`."""
        return f"{self.name} v{self.version}"

    @classmethod
    def parse(cls, text: str) -> ModelCard:
        """Read a card from its JSON.

        Raises:
            CardError: the text is no card of this format.
        """
        try:
            return cls.model_validate_json(text)
        except pdt.ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "card"
            raise CardError(
                f"not a model card (format {CARD_VERSION}): {error.error_count()} error(s), "
                f"first: {where}: {first['msg']}"
            ) from None


# %% FILLING


def from_training(
    result: results.TrainingResult,
    *,
    target: str,
    source: str,
    digest: str | None,
    params: T.Mapping[str, T.Any],
    params_set: T.Iterable[str] = (),
) -> ModelCard:
    """The card of a version just trained and registered.

    Args:
        result: the training job's result (its `model_ref` is a registered version).
        target: the column predicted.
        source: where the training data was read (credentials redacted).
        digest: MLflow's dataset digest of the training data.
        params: the estimator's parameters as fitted.
        params_set: the parameters given explicitly.

    Raises:
        ValueError: the result's model is not a registered version logged by a run.
    """
    facts = training_facts(
        result, target=target, source=source, digest=digest, params=params, params_set=params_set
    )
    return card_of(result.model_ref, facts)


def card_of(ref: ModelRef, training: TrainingFacts) -> ModelCard:
    """The card of a registered version from its training's facts.

    Args:
        ref: the registered version (logged by a run).
        training: what its training knew (`training_facts`).

    Raises:
        ValueError: the model is not a registered version logged by a run.
    """
    if not (ref.name and ref.version and ref.run_id):
        raise ValueError(f"{ref.describe()} is not a registered version logged by a run")
    return ModelCard(
        name=ref.name, version=ref.version, uri=ref.uri, run_id=ref.run_id, training=training
    )


def training_facts(
    result: results.TrainingResult,
    *,
    target: str,
    source: str,
    digest: str | None,
    params: T.Mapping[str, T.Any],
    params_set: T.Iterable[str] = (),
) -> TrainingFacts:
    """What a training knew of its model: data, features, model, holdout metrics, profile.

    A version's card holds them; a tuning's trial, which registers nothing, keeps them on its
    run until its selection registers it (`card_of`).

    Args: as `from_training`'s; the result's model need not be registered.
    """
    profile = None
    if result.profile is not None:
        profile = [
            ProfileRow(
                feature=str(row.feature),
                kind=str(row.kind),
                missing=float(row.missing),
                summary=str(row.summary),
            )
            for row in result.profile.summary().itertuples(index=False)
        ]
    return TrainingFacts(
        data=DataFacts(
            source=source,
            digest=digest,
            rows=result.rows,
            train_rows=result.train_rows,
            test_rows=result.test_rows,
        ),
        target=target,
        task=result.task,
        numerical=list(result.numerical),
        categorical=list(result.categorical),
        model_kind=result.model_kind,
        params={str(name): _json_value(value) for name, value in params.items()},
        params_set=[name for name in params_set if name in params],
        scores=_floats(result.scores),
        profile=profile,
        caveats=list(result.warnings),
    )


def with_evaluation(card: ModelCard, result: results.EvaluationResult) -> ModelCard:
    """The card completed with an evaluation's verdict (replacing an earlier one)."""
    champion = None
    if result.champion_ref is not None:
        ref = result.champion_ref
        champion = ChampionFacts(
            model=ref.describe(),
            version=ref.version,
            uri=ref.uri,
            scores=_floats(result.champion_scores),
        )
    evaluation = EvaluationFacts(
        passed=bool(result.passed),
        reasons=list(result.reasons),
        thresholds=_floats(result.thresholds),
        scores=_floats(result.scores),
        rows=int(result.rows),
        champion=champion,
    )
    return card.model_copy(update={"evaluation": evaluation})


def with_explanations(
    card: ModelCard, result: results.ExplanationsResult, top: int = TOP_FEATURES
) -> ModelCard:
    """The card completed with the top features of an explanation (replacing an earlier one).

    Args:
        card: the version's card.
        result: the explanations job's result (`importances`: feature, importance, rank).
        top: how many features to keep.
    """
    ranked = result.importances.sort_values("rank").head(top)
    explanation = ExplanationFacts(
        explainer=result.explainer,
        samples=int(result.samples),
        features=len(result.importances),
        top=[
            Importance(
                feature=str(row.feature), importance=float(row.importance), rank=int(row.rank)
            )
            for row in ranked.itertuples(index=False)
        ],
    )
    return card.model_copy(update={"explanation": explanation})


def missing(model_ref: ModelRef, why: str | None = None) -> str:
    """The Markdown written where a step has no card to show, saying why.

    Args:
        model_ref: the model the step worked on.
        why: the reason, when known better than from the reference.
    """
    if why is None:
        if model_ref.name and model_ref.version:
            why = (
                "this version has none in MLflow: it was registered before model cards were "
                "kept, or by another tool"
            )
        else:
            why = "the model is not a registered version, and only versions have cards"
    return f"# No model card\n\n{model_ref.describe()}: {why}.\n"


# %% RENDERING


def model_description(card: ModelCard, card_link: str, listed: bool = True) -> str:
    """The registered model's description: what it predicts, from what, and its latest card.

    Args:
        card: the card of the latest version.
        card_link: where that card is (a URL of the MLflow UI, or the run's artifact path).
        listed: name the features (else only count them, for a description's length limit).
    """
    training = card.training
    numerical, categorical = training.numerical, training.categorical
    features = [
        _feature_line("numerical", numerical) if listed else f"- numerical: {len(numerical)}",
        _feature_line("categorical", categorical)
        if listed
        else f"- categorical: {len(categorical)}",
    ]
    return _lines(
        f"Predicts `{training.target}` ({training.task}, {training.model_kind}).",
        "",
        f"Features ({len(numerical) + len(categorical)}):",
        *features,
        "",
        f"Latest version: {card.version}; its model card: {card_link}",
        "",
    )


def render(card: ModelCard, brief: bool = False) -> str:
    """The card as Markdown: one title, then a section per part, unfilled ones saying so.

    Args:
        card: the card.
        brief: leave out the parameters at their defaults and the reference profile (for
            where the length is limited, e.g. a version's description).
    """
    root = _key(f"Model card: {card.describe()}")
    # Imported here: skops (with sklearn's test utilities) is a second of start-up.
    from skops.card import Card

    training = card.training
    page = Card(model=None, template=None)
    page.add(
        **{
            root: _lines(
                f"A {training.model_kind} model ({training.task}) predicting "
                f"`{training.target}`, registered as `{card.uri}` by MLflow run "
                f"`{card.run_id}`."
            )
        }
    )
    # The model kind and its parameters.
    model_key = f"{root}/Model"
    page.add(**{model_key: f"Kind: **{training.model_kind}**; task: {training.task}."})
    given = set(training.params_set)
    shown = [name for name in training.params if name in given or not brief]
    if shown:
        _table(
            page,
            f"{model_key}/Parameters",
            {
                "parameter": shown,
                "value": [_cell(repr(training.params[name])) for name in shown],
                "set": ["given" if name in given else "default" for name in shown],
            },
            f"{len(training.params) - len(shown)} more at their defaults." if brief else "",
        )
    # The data, its features and the target.
    data = training.data
    page.add(
        **{
            f"{root}/Data": _lines(
                f"- Source: `{data.source}`",
                f"- Digest: `{data.digest or 'unknown'}` (MLflow dataset digest)",
                f"- Rows: {data.rows:,} ({data.train_rows:,} to train, "
                f"{data.test_rows:,} held out)",
                f"- Target: `{training.target}`",
            ),
            f"{root}/Data/Features": _lines(
                _feature_line("Numerical", training.numerical),
                _feature_line("Categorical", training.categorical),
            ),
        }
    )
    if training.caveats:
        page.add(
            **{
                f"{root}/Data/Caveats": _lines(
                    "What training warned of:", *(f"- {_cell(c)}" for c in training.caveats)
                )
            }
        )
    # The holdout metrics, as measured at training.
    page.add_metrics(
        section=f"{root}/Holdout metrics",
        description=f"Measured on the rows held out at training ({data.test_rows:,}).",
        **{name: _number(value) for name, value in training.scores.items()},
    )
    _evaluation(page, f"{root}/Evaluation", card.evaluation)
    _explanation(page, f"{root}/Top features", card.explanation)
    if card.serving is not None:
        page.add(
            **{f"{root}/Serving": f"Latest move of an alias to this version: {card.serving.entry}"}
        )
    if brief and training.profile:
        page.add(**{f"{root}/Reference profile": BRIEF_PROFILE})
    else:
        _profile(page, f"{root}/Reference profile", training.profile)
    return page.render().strip() + "\n"


def _evaluation(page: Card, key: str, evaluation: EvaluationFacts | None) -> None:
    if evaluation is None:
        page.add(**{key: NOT_EVALUATED})
        return
    verdict = "**passed**: it may be promoted" if evaluation.passed else "**failed**"
    lines = [f"Verdict: {verdict} ({evaluation.rows:,} holdout rows)."]
    if evaluation.reasons:
        lines += ["", *(f"- {reason}" for reason in evaluation.reasons)]
    thresholds = ", ".join(
        f"{name} {_DIRECTION.get(metrics.DIRECTIONS.get(name), '')} {_number(limit)}"
        for name, limit in evaluation.thresholds.items()
    )
    lines += ["", f"Thresholds: {thresholds or 'none'}."]
    champion = evaluation.champion
    if champion is None:
        lines += ["", "Champion: none to compare with."]
    else:
        lines += ["", f"Champion compared with: **{champion.model}** (`{champion.uri}`)."]
    page.add(**{key: _lines(*lines)})
    names = list(dict.fromkeys([*evaluation.scores, *(champion.scores if champion else {})]))
    table = {
        "metric": names,
        "this version": [_number(evaluation.scores.get(name)) for name in names],
    }
    if champion is not None:
        table["Champion"] = [_number(champion.scores.get(name)) for name in names]
    if names:
        _table(page, f"{key}/Metrics", table)


def _explanation(page: Card, key: str, explanation: ExplanationFacts | None) -> None:
    if explanation is None:
        page.add(**{key: NOT_EXPLAINED})
        return
    description = (
        f"By mean |SHAP| over {explanation.samples:,} samples ({explanation.explainer}); "
        f"{len(explanation.top)} of {explanation.features} features."
    )
    if not explanation.top:
        page.add(**{key: description})
        return
    table = {
        "rank": [item.rank for item in explanation.top],
        "feature": [_cell(item.feature) for item in explanation.top],
        "mean abs SHAP": [_number(item.importance) for item in explanation.top],
    }
    _table(page, key, table, description)


def _profile(page: Card, key: str, profile: list[ProfileRow] | None) -> None:
    if not profile:
        page.add(**{key: NO_PROFILE})
        return
    table = {
        "feature": [_cell(row.feature) for row in profile],
        "kind": [row.kind for row in profile],
        "missing": [f"{row.missing:.1%}" for row in profile],
        "summary": [_cell(row.summary) for row in profile],
    }
    description = "The training data that inference batches are compared with for drift."
    _table(page, key, table, description)


def _table(page: Card, key: str, table: dict[str, list[T.Any]], description: str = "") -> None:
    """Add a table section; skops titles it with the whole key, so it gets its own name back."""
    page.add_table(description=description or None, **{key: table})
    page.select(key).title = _title(key)


def _key(title: str) -> str:
    """A section title as a skops key: a slash in it is no sub-section."""
    return title.replace("/", "\\/")


def _title(key: str) -> str:
    parts = key.replace("\\/", "\0").split("/")
    return parts[-1].replace("\0", "/")


def _lines(*lines: str) -> str:
    return "\n".join(lines)


def _feature_line(kind: str, names: list[str]) -> str:
    if not names:
        return f"- {kind}: none"
    shown = ", ".join(f"`{name}`" for name in names[:LISTED_FEATURES])
    more = f" and {len(names) - LISTED_FEATURES} more" if len(names) > LISTED_FEATURES else ""
    return f"- {kind} ({len(names)}): {shown}{more}"


def _cell(text: T.Any) -> str:
    """Text safe in a Markdown table cell: a pipe would start another column."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _floats(values: T.Mapping[str, T.Any]) -> dict[str, float]:
    return {str(name): float(value) for name, value in values.items()}


def _json_value(value: T.Any) -> T.Any:
    """A parameter as a JSON value: containers kept, objects (a callable, a dtype) as text."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_json_value(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _json_value(item) for key, item in value.items()}
    if isinstance(value, np.generic):
        return _json_value(value.item())
    return str(value)
