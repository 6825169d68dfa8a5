"""Tests for the SHAP explainers: additivity against the model's own output, shapes and labels."""

from __future__ import annotations

import multiprocessing
import typing as T

import numpy as np
import pandas as pd
import pydantic
import pytest
from sklearn.neighbors import KNeighborsRegressor
from sklearn.pipeline import Pipeline

from components.core import explainers, models
from tests.jobs.helpers import BIKE_CATEGORICAL, BIKE_NUMERICAL

FEATURES = dict(numerical=BIKE_NUMERICAL, categorical=BIKE_CATEGORICAL)
COLUMNS = [*BIKE_NUMERICAL, *BIKE_CATEGORICAL]
TREES = {"max_iter": 30}
CASES = {
    "trees-regressor": (models.HistGradientBoostingRegressorModel(**FEATURES, params=TREES), "cnt"),
    "trees-multiclass": (
        models.HistGradientBoostingClassifierModel(**FEATURES, params=TREES),
        "demand",
    ),
    "trees-binary": (models.HistGradientBoostingClassifierModel(**FEATURES, params=TREES), "busy"),
    "linear-regressor": (models.RidgeModel(**FEATURES), "cnt"),
    "linear-multiclass": (models.LogisticRegressionModel(**FEATURES), "demand"),
    "linear-binary": (models.LogisticRegressionModel(**FEATURES), "busy"),
}


def assert_additive(explained: explainers.Explanations, expected: np.ndarray) -> None:
    """base value + the sum of a row's SHAP values = the explained output, to 1e-6 relative."""
    total = explained.base_values + explained.values.sum(axis=1)
    assert total.shape == expected.shape
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(total, expected, rtol=1e-6, atol=1e-6 * scale)


@pytest.fixture(scope="module")
def data(bike) -> pd.DataFrame:
    rows = bike.iloc[::8].reset_index(drop=True)
    demand = pd.cut(rows["cnt"], [-1, 40, 280, np.inf], labels=["low", "medium", "high"])
    return rows.assign(demand=demand.astype(str), busy=np.where(rows["cnt"] > 150, "yes", "no"))


@pytest.fixture(scope="module")
def fitted(data) -> dict[str, Pipeline]:
    return {
        name: model.build().fit(data[COLUMNS], data[target])
        for name, (model, target) in CASES.items()
    }


@pytest.fixture(scope="module")
def inputs(data) -> pd.DataFrame:
    return data[COLUMNS].iloc[500:520].reset_index(drop=True)


@pytest.fixture(scope="module")
def background(data) -> pd.DataFrame:
    return data[COLUMNS].head(40)


def test_explainer_is_chosen_by_the_final_estimator(fitted, data):
    kinds = {name: type(explainers.explainer_for(model)) for name, model in fitted.items()}
    assert kinds == {
        "trees-regressor": explainers.TreeExplainer,
        "trees-multiclass": explainers.TreeExplainer,
        "trees-binary": explainers.TreeExplainer,
        "linear-regressor": explainers.LinearExplainer,
        "linear-multiclass": explainers.LinearExplainer,
        "linear-binary": explainers.LinearExplainer,
    }
    neighbours = models.RidgeModel(**FEATURES).build()
    neighbours.steps[-1] = ("estimator", KNeighborsRegressor())
    assert isinstance(explainers.explainer_for(neighbours), explainers.PermutationExplainer)


@pytest.mark.parametrize("case", list(CASES))
def test_tree_and_linear_shap_add_up_to_the_raw_output(fitted, inputs, background, case):
    model = fitted[case]
    explained = explainers.explainer_for(model).explain(model, inputs, background)
    names = [str(name) for name in model[:-1].get_feature_names_out()]
    assert explained.features == names  # one-hot columns explained one by one
    classes = [str(label) for label in getattr(model, "classes_", [])]
    expected_outputs = {
        "regressor": ["prediction"],
        "multiclass": classes,
        "binary": classes[1:],  # one margin: the log-odds of the positive class
    }[case.split("-")[1]]
    assert explained.outputs == expected_outputs
    assert explained.values.shape == (len(inputs), len(names), len(expected_outputs))
    assert explained.base_values.shape == (len(inputs), len(expected_outputs))
    # The raw output is the prediction, or the decision function margin for a classifier.
    assert_additive(explained, explainers.raw_output(model, inputs))


@pytest.mark.parametrize("case", ["linear-regressor", "linear-multiclass", "linear-binary"])
def test_permutation_shap_adds_up_to_predict_or_predict_proba(fitted, inputs, background, case):
    model = fitted[case]
    explainer = explainers.PermutationExplainer(max_evals=1)  # raised to one full permutation
    explained = explainer.explain(model, inputs.head(5), background)
    assert explained.features == COLUMNS  # raw input columns, before preprocessing
    if case == "linear-regressor":
        assert explained.outputs == ["prediction"]
        expected = model.predict(inputs.head(5)).reshape(-1, 1)
    else:
        assert explained.outputs == [str(label) for label in model.classes_]
        expected = model.predict_proba(inputs.head(5))
    assert_additive(explained, expected)


def test_additivity_check_can_fail(fitted, inputs, background):
    """The helper itself notices a SHAP vector that does not add up."""
    model = fitted["trees-regressor"]
    explained = explainers.TreeExplainer().explain(model, inputs, background)
    with pytest.raises(AssertionError):
        assert_additive(explained, explainers.raw_output(model, inputs) + 1e-3)


def test_frame_has_one_row_per_sample_and_output(fitted, inputs, background):
    model = fitted["trees-multiclass"]
    explained = explainers.TreeExplainer().explain(model, inputs, background)
    frame = explained.frame()
    k = len(explained.outputs)
    assert len(frame) == len(inputs) * k
    assert list(frame.columns[:2]) == ["output", "base_value"]
    assert list(frame.columns[2:]) == [f"shap_{name}" for name in explained.features]
    assert frame["output"].tolist() == explained.outputs * len(inputs)
    row = 3 * k + 2  # sample 3, third class
    np.testing.assert_array_equal(frame.iloc[row, 2:].to_numpy(float), explained.values[3, :, 2])
    assert frame["base_value"].iloc[row] == explained.base_values[3, 2]


def test_importances_rank_features_by_mean_absolute_shap():
    values = np.array([[[1.0], [-4.0], [0.5]], [[-3.0], [2.0], [0.5]]])  # 2 samples, 3 features
    frame = explainers.importances(values, ["a", "b", "c"])
    assert frame["feature"].tolist() == ["b", "a", "c"]
    assert frame["importance"].tolist() == [3.0, 2.0, 0.5]
    assert frame["rank"].tolist() == [1, 2, 3]


class PoolSpy:
    """The explainers module's view of multiprocessing, recording the pools' start methods."""

    def __init__(self) -> None:
        self.started: list[str] = []

    def __getattr__(self, name: str) -> T.Any:
        return getattr(multiprocessing, name)

    def get_context(self, method: str) -> T.Any:
        self.started.append(method)
        return multiprocessing.get_context(method)


@pytest.fixture
def forks(monkeypatch) -> list[str]:
    """The start methods of the pools that the explainers create (joblib's are not counted)."""
    spy = PoolSpy()
    monkeypatch.setattr(explainers, "multiprocessing", spy)
    return spy.started


@pytest.mark.parametrize("case", ["trees-regressor", "trees-multiclass"])
def test_tree_shap_on_two_processes_equals_one(fitted, data, background, forks, case):
    model, rows = fitted[case], data[COLUMNS].head(1000)
    alone = explainers.TreeExplainer(workers=1).explain(model, rows, background)
    assert forks == []  # one worker: explained in this process
    pooled = explainers.TreeExplainer(workers=2).explain(model, rows, background)
    assert forks == ["fork"]
    # Each row's values depend on that row alone: the chunks, put back in order, are identical.
    np.testing.assert_array_equal(pooled.values, alone.values)
    np.testing.assert_array_equal(pooled.base_values, alone.base_values)
    assert (pooled.features, pooled.outputs) == (alone.features, alone.outputs)
    assert multiprocessing.active_children() == []  # the pool is gone


def test_small_inputs_are_explained_in_this_process(fitted, inputs, background, forks):
    explainer = explainers.TreeExplainer(workers=4)
    rows = 2 * explainers.MIN_ROWS_PER_PROCESS - 1
    assert explainer.processes(rows) == 1  # too few rows for two processes to pay
    assert explainer.processes(2 * explainers.MIN_ROWS_PER_PROCESS) == 2
    assert explainer.processes(100 * explainers.MIN_ROWS_PER_PROCESS) == 4  # at most workers
    explained = explainer.explain(fitted["trees-regressor"], inputs, background)
    assert forks == []
    assert explained.values.shape[0] == len(inputs)


def test_workers_default_to_the_cpus_this_process_may_use(monkeypatch):
    monkeypatch.setattr(explainers.cpus, "available_cpus", lambda: 3)
    rows = 10 * explainers.MIN_ROWS_PER_PROCESS
    assert explainers.TreeExplainer().processes(rows) == 3
    assert explainers.TreeExplainer(workers=1).processes(rows) == 1


def broken_slice(bounds: tuple[int, int]) -> T.NoReturn:
    """A worker's task that fails (module level: the pool sends it to the workers by name)."""
    raise ValueError(f"no SHAP for rows {bounds[0]} to {bounds[1]}")


def test_a_workers_error_reaches_the_caller(fitted, data, background, monkeypatch):
    monkeypatch.setattr(explainers, "_tree_shap_slice", broken_slice)
    with pytest.raises(ValueError, match=r"no SHAP for rows \d+ to \d+"):
        explainers.TreeExplainer(workers=2).explain(
            fitted["trees-regressor"], data[COLUMNS].head(1000), background
        )
    assert multiprocessing.active_children() == []


def test_explainer_kinds_validate_the_workers():
    kinds = pydantic.TypeAdapter(explainers.ExplainerKind)
    assert kinds.validate_python({"KIND": "TreeExplainer"}) == explainers.TreeExplainer()
    assert kinds.validate_python({"KIND": "TreeExplainer", "workers": 2}).workers == 2
    with pytest.raises(pydantic.ValidationError, match="workers"):
        kinds.validate_python({"KIND": "TreeExplainer", "workers": 0})


# %% THE REGISTRY OF EXPLAINERS


def test_an_unknown_explainer_is_refused_in_one_line_listing_the_kinds():
    with pytest.raises(pydantic.ValidationError) as caught:
        pydantic.TypeAdapter(explainers.ExplainerKind).validate_python({"KIND": "Kernel"})
    (error,) = caught.value.errors()
    message = error["msg"]
    assert "\n" not in message
    assert "unknown explainer type 'Kernel'; allowed: 'XGBoostExplainer', " in message
    assert "'LightGBMExplainer', 'CatBoostExplainer', 'TreeExplainer', " in message
    assert "'LinearExplainer', 'PermutationExplainer', or the import path" in message


def test_a_class_that_is_not_an_explainer_is_refused():
    with pytest.raises(ValueError, match="is not a subclass of components.core.explainers:Expl"):
        explainers.EXPLAINERS.build({"type": "tests.user_models:NotAKind"})


def test_a_users_explainer_is_built_by_its_import_path(fitted, inputs, background):
    from tests import user_models

    path = "tests.user_models:OcclusionExplainer"
    built = pydantic.TypeAdapter(explainers.ExplainerKind).validate_python({"KIND": path})
    assert type(built) is user_models.OcclusionExplainer and path == built.KIND
    explained = built.explain(fitted["linear-regressor"], inputs.head(3), background)
    assert explained.features == COLUMNS and explained.values.shape == (3, len(COLUMNS), 1)
    # Chosen only when named: the registry's choice for the same model is Linear SHAP.
    assert type(explainers.explainer_for(fitted["linear-regressor"])) is explainers.LinearExplainer


def test_a_model_kind_that_declares_a_tree_ensemble_is_explained_with_tree_shap(data, inputs):
    """sklearn's list does not name GradientBoostingClassifier: the user's kind says it is one."""
    from tests import user_models

    model = user_models.BoostedClassifierModel(**FEATURES)
    assert not isinstance(model.estimator(), explainers.SKLEARN_TREES)
    pipeline = model.build().fit(data[COLUMNS], data["busy"])
    explainer = explainers.explainer_for(pipeline)
    assert type(explainer) is explainers.TreeExplainer
    explained = explainer.explain(pipeline, inputs, inputs)
    assert explained.outputs == ["yes"]
    assert_additive(explained, explainers.raw_output(pipeline, inputs))


def _sigterm_in_a_worker(explainer: T.Any, sent: T.Any) -> None:
    """In a forked child: set up as a pool's worker, then report its SIGTERM handling."""
    import signal

    explainers._install_worker(explainer, np.zeros((1, 1)))
    sent.send(signal.getsignal(signal.SIGTERM) == signal.SIG_DFL)


def test_a_pools_worker_dies_on_sigterm_whatever_the_step_set():
    # A worker inherited the step's SIGTERM handler (`stop_on_sigterm`); one that held the
    # signal kept the pool's terminate, after a worker's error, waiting for it forever (a CI
    # run hung on the error test above).
    import signal

    from components.jobs import base

    before = signal.getsignal(signal.SIGTERM)
    base.stop_on_sigterm()  # as every step does
    try:
        context = multiprocessing.get_context("fork")
        received, sent = context.Pipe(duplex=False)
        child = context.Process(target=_sigterm_in_a_worker, args=(None, sent))
        child.start()
        child.join(timeout=60)
        assert received.poll(5) and received.recv() is True
    finally:
        signal.signal(signal.SIGTERM, before)
