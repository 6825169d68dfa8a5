"""Pre-run check: every step builds its job from the parameters before the first step runs.

A pipeline's spec lists its steps and where each step input comes from: a pipeline parameter, a
constant, or an upstream step's output. Each of the project's steps maps its inputs to the fields
of its job with one function, which its component calls when it runs (`train_fields` in
`components.fields`, and so on); here the same function builds the same job from the
parameters, with stand-ins for what upstream steps will produce. A value is so refused exactly
as its step would refuse it (enum values, ranges, model parameters, thresholds...), in one line
that names the parameter, before anything runs, is registered or is written. On a local run, the
inputs the steps will open (data files, schemas) must exist, too.

`validate` (names and types by `params.validate`, then `check` for every pipeline that comes
with its spec) is what every path that starts a pipeline runs (`run`, `submit`, `schedule sync`,
the model manager's jobs); `describe` is what `--dry-run` prints.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import operator
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from pipelines.checks import params

# Where an artifact that an upstream step will write stands before the run: never opened.
STAND_IN = "upstream://"
# Each project component: the module of its job, the job class, and its inputs -> fields
# mapping (a function of `components.fields`).
STEPS: dict[str, tuple[str, str, str]] = {
    "train": ("components.jobs.training", "TrainingJob", "train_fields"),
    "evaluate": ("components.jobs.evaluation", "EvaluationJob", "evaluate_fields"),
    "promote": ("components.jobs.promotion", "PromotionJob", "promote_fields"),
    "predict": ("components.jobs.inference", "InferenceJob", "predict_fields"),
    "plan_shards": ("components.jobs.planning", "PlanningJob", "plan_shards_fields"),
    "predict_shard": ("components.jobs.inference", "InferenceJob", "predict_shard_fields"),
    "publish_predictions": (
        "components.jobs.publication",
        "PublicationJob",
        "publish_predictions_fields",
    ),
    "explain": ("components.jobs.explanations", "ExplanationsJob", "explain_fields"),
    "monitor": ("components.jobs.monitoring", "MonitoringJob", "monitor_fields"),
    "plan_trials": ("components.jobs.trials", "TrialPlanningJob", "plan_trials_fields"),
    "select_trial": ("components.jobs.selection", "TrialSelectionJob", "select_trial_fields"),
}
# A step input that an upstream step produces: a stand-in of its type.
_STAND_IN_VALUES: dict[str, Any] = {
    params.STRING: "upstream",
    params.NUMBER_INTEGER: 0,
    params.NUMBER_DOUBLE: 0.0,
    params.BOOLEAN: True,
    params.LIST: [],
    params.STRUCT: {},
}
_FINAL = "ALL_UPSTREAM_TASKS_COMPLETED"  # the trigger strategy of an exit handler's step


@dataclasses.dataclass(frozen=True)
class Bound:
    """A step input's value before the run, and where it comes from.

    Attributes:
        value: the value, or a stand-in when an upstream step produces it.
        parameter: the pipeline parameter that sets it, None when none does.
        upstream: the step that will produce it (the value is then a stand-in), else None.
    """

    value: Any
    parameter: str | None = None
    upstream: str | None = None


@dataclasses.dataclass(frozen=True)
class Step:
    """One step of a pipeline, as its spec declares it, with its inputs bound.

    Attributes:
        task: the task's name in the spec (train, predict-2).
        component: the component it runs (train, predict).
        label: what the Kubeflow UI calls it ("Train and register").
        branches: the branches it runs in that only the run decides ("passed").
        loop: the loop it runs once per item of, if any ("shards").
        final: whether it is an exit step, run at the end whatever happened.
        inputs: its parameter inputs, by name.
        artifacts: its input artifacts, by name: the step that produces each (None: unset).
        outputs: the names of its output artifacts.
    """

    task: str
    component: str
    label: str
    branches: tuple[str, ...]
    loop: str | None
    final: bool
    inputs: dict[str, Bound]
    artifacts: dict[str, str | None]
    outputs: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Checked:
    """A pipeline whose steps all accepted their settings.

    Attributes:
        pipeline: the pipeline's name.
        values: every parameter's value: given, or its default.
        given: the parameters given (the others have their default).
        steps: the steps that would run, in order.
        jobs: the job each of the project's steps built, by task.
    """

    pipeline: str
    values: dict[str, Any]
    given: frozenset[str]
    steps: list[Step]
    jobs: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class StandIn:
    """An artifact before it exists: where it will be, and the facts a model artifact carries."""

    path: str
    metadata: Mapping[str, Any] = dataclasses.field(
        default_factory=lambda: {"name": "upstream", "version": 0}
    )

    @property
    def uri(self) -> str:
        """Its URI: the stand-in path."""
        return self.path


class _NotOurs(Exception):
    """A step runs a component of the project's name but not its inputs (a user's own)."""


class _Refused(Exception):
    """A step's mapping or its job refused its settings.

    Args:
        key: what was refused, to tell it from other refusals (the field and the error kind).
        field: the job field refused, or "" for a refusal of the mapping.
        text: the reason, on one line.
    """

    def __init__(self, key: Any, field: str, text: str):
        super().__init__(text)
        self.key, self.field, self.text = key, field, text


def validate(
    pipeline: str, values: Mapping[str, Any], parameters: Mapping[str, params.Parameter]
) -> dict[str, Any]:
    """Check a pipeline's values as every path that starts it does: names, types, then steps.

    `params.validate` checks the names and types; when the parameters come with their spec
    (`params.of_pipeline`, `params.of_file`), every step then builds its job from them (`check`).

    Returns:
        The values converted to their declared types (only those given).

    Raises:
        params.ParameterError: the first mistake, in one line.
    """
    converted = params.validate(pipeline, values, parameters)
    if isinstance(parameters, params.PipelineParameters) and parameters.spec is not None:
        check(pipeline, converted, parameters)
    return converted


def check(
    pipeline: str, given: Mapping[str, Any], parameters: params.PipelineParameters
) -> Checked:
    """Build every step's job from the parameters, as the steps will when they run.

    Steps of a branch the parameters already rule out (e.g. `sharded` when `shards` is 1) are
    not checked; those of a branch that only the run decides (`passed`) are.

    Args:
        pipeline: the pipeline's name, for messages.
        given: the values given, converted to their types (params.validate).
        parameters: the pipeline's parameters, with its spec.

    Returns:
        The steps that would run and the jobs they built.

    Raises:
        params.ParameterError: a step refuses a value, or a local input does not exist; one
            line that names the parameter, its value and what the step accepts.
    """
    if parameters.spec is None:
        raise ValueError(f"the parameters of pipeline {pipeline} come without their spec")
    values = {name: given.get(name, parameter.default) for name, parameter in parameters.items()}
    steps = list(steps_of(parameters.spec, values))
    jobs: dict[str, Any] = {}
    opened: set[str] = set()
    for step in steps:
        if step.component not in STEPS:
            continue  # not one of the project's components (notify builds no settings)
        try:
            jobs[step.task] = job = _build(step, step.inputs)
        except _NotOurs:
            continue
        except _Refused as refused:
            raise _blame(pipeline, step, refused, given, parameters) from None
        _inputs_exist(pipeline, step, job, parameters.here, opened)
    _thresholds_suit_the_model(pipeline, steps, jobs, given)
    _retraining_can_start(pipeline, steps, given, values)
    return Checked(pipeline, values, frozenset(given), steps, jobs)


def describe(pipeline: str, given: Mapping[str, Any], parameters: params.PipelineParameters) -> str:
    """What `--dry-run` prints: every parameter's checked value, then the steps that would run.

    Args:
        pipeline: the pipeline's name.
        given: the values given, already validated (params.resolve).
        parameters: the pipeline's parameters, with its spec.
    """
    from components.utils import secrets

    checked = check(pipeline, given, parameters)
    lines = [f"pipeline {pipeline}: every parameter checked by the steps that take it"]
    width = max((len(name) for name in parameters), default=0)
    for name in parameters:
        value = checked.values[name]
        shown = "''" if value == "" else params.format_value(value)
        origin = "" if name in checked.given else "  (default)"
        # Values are printed where logs keep them: never with the credentials of a URI.
        lines.append(f"  {name:<{width}}  {secrets.redact(shown)}{origin}")
    lines.append("steps that would run, in order:")
    task_width = max((len(step.task) for step in checked.steps), default=0)
    label_width = max((len(step.label) for step in checked.steps), default=0)
    for step in checked.steps:
        job = checked.jobs.get(step.task)
        notes = [job.KIND] if job is not None else []
        if step.branches:
            notes.append(f"in branch {' and '.join(step.branches)}")
        if step.loop:
            notes.append(f"once per item of {step.loop}")
        if step.final:
            notes.append("at the end, whatever happened")
        row = f"  {step.task:<{task_width}}  {step.label:<{label_width}}  {', '.join(notes)}"
        lines.append(row.rstrip())
    lines.append("dry run: nothing was started, registered or written")
    return "\n".join(lines) + "\n"


# %% THE STEPS OF A SPEC


def steps_of(spec: Mapping[str, Any], values: Mapping[str, Any]) -> Iterator[Step]:
    """The steps a pipeline spec runs with these parameter values, in the order they run.

    Args:
        spec: the pipeline spec (IR) as a dict.
        values: every pipeline parameter's value.
    """
    scope = {name: Bound(value, parameter=name) for name, value in values.items()}
    return _walk(spec, spec["root"]["dag"], scope, {}, (), None, False)


def _walk(
    spec: Mapping[str, Any],
    dag: Mapping[str, Any],
    scope: Mapping[str, Bound],
    artifact_scope: Mapping[str, str | None],
    branches: tuple[str, ...],
    loop: str | None,
    final: bool,
) -> Iterator[Step]:
    """The steps of one DAG of the spec (the root, a branch, a loop), nested DAGs included."""
    tasks = dag.get("tasks") or {}
    for name in _in_order(tasks):
        task = tasks[name]
        component = spec["components"][task["componentRef"]["name"]]
        label = str((task.get("taskInfo") or {}).get("name") or name)
        definitions = (component.get("inputDefinitions") or {}).get("parameters") or {}
        wired = (task.get("inputs") or {}).get("parameters") or {}
        inputs = {
            key: _bind(source, scope, (definitions.get(key) or {}).get("parameterType"))
            for key, source in wired.items()
        }
        artifacts = {
            key: _producer(source, artifact_scope)
            for key, source in ((task.get("inputs") or {}).get("artifacts") or {}).items()
        }
        policy = task.get("triggerPolicy") or {}
        here = branches
        if "condition" in policy:
            decided = _decide(policy["condition"], inputs)
            if decided is False:
                continue  # a branch these parameters rule out
            if decided is None:
                here = (*branches, label)
        ends = final or policy.get("strategy") == _FINAL
        within = label if "parameterIterator" in task else loop
        if "dag" in component:
            yield from _walk(spec, component["dag"], inputs, artifacts, here, within, ends)
            continue
        for key, definition in definitions.items():
            if key not in inputs:  # unset: the component's default, or None
                default = definition.get("defaultValue")
                kind = definition.get("parameterType")
                inputs[key] = Bound(None if default is None else _typed(kind, default))
        expected = (component.get("inputDefinitions") or {}).get("artifacts") or {}
        yield Step(
            task=name,
            component=_function(spec, component) or name,
            label=label,
            branches=here,
            loop=within,
            final=ends,
            inputs=inputs,
            artifacts={key: artifacts.get(key) for key in expected},
            outputs=tuple((component.get("outputDefinitions") or {}).get("artifacts") or {}),
        )


def _in_order(tasks: Mapping[str, Any]) -> list[str]:
    """Task names in an order that runs each after those it depends on (else by name)."""
    # Dependencies outside this DAG (the exit step's, on its handler) are met already.
    after = {
        name: set(task.get("dependentTasks") or []) & set(tasks) for name, task in tasks.items()
    }
    ordered: list[str] = []
    while after:
        ready = sorted(name for name, needs in after.items() if not needs & set(after))
        first = ready[0] if ready else sorted(after)[0]  # a cycle does not compile; never hang
        ordered.append(first)
        del after[first]
    return ordered


def _bind(source: Mapping[str, Any], scope: Mapping[str, Bound], kind: str | None) -> Bound:
    """Where one wired input's value comes from, and the value (or a stand-in) it has."""
    if "componentInputParameter" in source:
        found = scope.get(source["componentInputParameter"])
        # Not in scope: a loop's item, known only when the loop runs.
        return found if found is not None else Bound(_stand_in(kind), upstream="loop")
    if "taskOutputParameter" in source:
        producer = source["taskOutputParameter"].get("producerTask", "")
        return Bound(_stand_in(kind), upstream=producer)
    if "runtimeValue" in source:
        return Bound(_typed(kind, source["runtimeValue"].get("constant")))
    if "taskFinalStatus" in source:
        return Bound(None, upstream=source["taskFinalStatus"].get("producerTask", ""))
    return Bound(None)


def _producer(source: Mapping[str, Any], scope: Mapping[str, str | None]) -> str | None:
    """The step that produces an input artifact."""
    if "taskOutputArtifact" in source:
        return str(source["taskOutputArtifact"].get("producerTask", ""))
    if "componentInputArtifact" in source:
        return scope.get(source["componentInputArtifact"])
    return None


def _function(spec: Mapping[str, Any], component: Mapping[str, Any]) -> str | None:
    """The Python function a component's executor runs (`--function_to_execute`)."""
    executor = spec.get("deploymentSpec", {}).get("executors", {}).get(component["executorLabel"])
    args = list(((executor or {}).get("container") or {}).get("args") or [])
    if "--function_to_execute" in args[:-1]:
        return str(args[args.index("--function_to_execute") + 1])
    return None


def _stand_in(kind: str | None) -> Any:
    value = _STAND_IN_VALUES.get(kind or params.STRING, "upstream")
    return value.copy() if isinstance(value, list | dict) else value


def _typed(kind: str | None, value: Any) -> Any:
    """A spec's default or constant as the type it declares (integers are stored as doubles)."""
    if value is None or kind is None:
        return value
    try:
        return params.coerce(params.Parameter("value", kind, optional=True), value)
    except params.ParameterError:
        return value


# KFP writes a branch's condition in CEL: `int(inputs.parameter_values['x']) == 1`, `!(...)`.
_CHANNEL = re.compile(r"inputs\.parameter_values\['([^']+)'\]")
_OPERATORS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}
_CASTS: dict[str, Callable[[Any], Any]] = {"int": int, "double": float, "string": str}


def _decide(condition: str, inputs: Mapping[str, Bound]) -> bool | None:
    """Whether a branch runs, when the parameters alone tell; None when only the run can."""
    known: dict[str, Any] = {}

    def name_of(match: re.Match[str]) -> str:
        bound = inputs.get(match[1])
        if bound is None or bound.upstream is not None:
            raise LookupError(match[1])
        known[f"value_{len(known)}"] = bound.value
        return f"value_{len(known) - 1}"

    try:
        text = _CHANNEL.sub(name_of, condition)
    except LookupError:
        return None
    text = text.replace("&&", " and ").replace("||", " or ")
    text = re.sub(r"!(?!=)", " not ", text)
    text = re.sub(r"\btrue\b", "True", re.sub(r"\bfalse\b", "False", text))
    try:
        return bool(_evaluate(ast.parse(text.strip(), mode="eval").body, known))
    except (SyntaxError, ValueError, TypeError):
        return None


def _evaluate(node: ast.AST, known: Mapping[str, Any]) -> Any:
    """Evaluate the few expressions KFP writes in conditions; ValueError for any other."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name) and node.id in known:
        return known[node.id]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return not _evaluate(node.operand, known)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_evaluate(node.operand, known)
    if isinstance(node, ast.BoolOp):
        results = [bool(_evaluate(value, known)) for value in node.values]
        return all(results) if isinstance(node.op, ast.And) else any(results)
    if isinstance(node, ast.Compare) and all(type(op) in _OPERATORS for op in node.ops):
        left = _evaluate(node.left, known)
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            right = _evaluate(right_node, known)
            if not _OPERATORS[type(op)](left, right):
                return False
            left = right
        return True
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _CASTS
        and len(node.args) == 1
    ):
        return _CASTS[node.func.id](_evaluate(node.args[0], known))
    raise ValueError(f"not a condition KFP writes: {ast.dump(node)}")


# %% EACH STEP'S JOB


def _build(step: Step, inputs: Mapping[str, Bound]) -> Any:
    """The job a step would run with these inputs, from its own mapping, as its component does.

    Raises:
        _Refused: the mapping or the job refuses the settings.
        _NotOurs: the step lacks an input the project's component of its name has.
    """
    import pydantic as pdt

    from components import fields as mappings
    from components import steps

    module_name, job_name, fields_name = STEPS[step.component]
    job_class = getattr(importlib.import_module(module_name), job_name)
    to_fields = getattr(mappings, fields_name)
    arguments = {
        name: _argument(step, inputs, name) for name in inspect.signature(to_fields).parameters
    }
    try:
        fields = to_fields(**arguments)
    except ValueError as error:
        raise _Refused(str(error), "", _one_line(error)) from None
    experiment = inputs["experiment"].value if "experiment" in inputs else "model-lifecycle"
    settings = steps.step_settings(str(experiment), "", step.task)
    try:
        return job_class(**settings, **fields)
    except pdt.ValidationError as error:
        first = error.errors()[0]
        # Field names are snake_case; CamelCase parts are union tags (the KIND) pydantic adds.
        where = [str(part) for part in first["loc"] if not str(part)[:1].isupper()]
        message = str(first["msg"]).removeprefix("Value error, ")
        text = f"{'.'.join(where) or 'settings'}: {message}"
        key = (tuple(first["loc"]), first["type"])
        raise _Refused(key, where[0] if where else "", text) from None


def _argument(step: Step, inputs: Mapping[str, Bound], name: str) -> Any:
    """One argument of a step's mapping: an input, an artifact's stand-in, or a plan's."""
    if name in inputs:
        return inputs[name].value
    if name in step.artifacts:
        producer = step.artifacts[name]
        return None if producer is None else StandIn(f"{STAND_IN}{producer}/{name}")
    if name in step.outputs:
        return StandIn(f"{STAND_IN}{step.task}/{name}")
    # What a component reads from its artifacts before mapping: the plan, the shards' reports.
    if name == "the_plan":
        return _stand_in_plan()
    if name in ("shard_reports", "trial_runs"):  # the shards' reports, the trials' runs
        return []
    raise _NotOurs(name)


def _stand_in_plan() -> Any:
    """A plan of one empty shard, standing for the one `plan_shards` will write."""
    from components.io import shards

    return shards.ShardPlan(
        inputs={"KIND": "ParquetReader", "path": f"{STAND_IN}plan-shards/inputs"},
        finder={"KIND": "UriFinder", "uri": f"{STAND_IN}plan-shards/model"},
        model_uri=f"{STAND_IN}plan-shards/model",
        shards=[[]],
    )


def _blame(
    pipeline: str,
    step: Step,
    refused: _Refused,
    given: Mapping[str, Any],
    parameters: Mapping[str, params.Parameter],
) -> params.ParameterError:
    """The refusal in one line, naming the parameter at fault when one is.

    The parameter at fault is the given one that, put back to its default, lets the step
    accept what it refused; else one whose value the refusal quotes; else the one that set the
    field of the same name.
    """
    fed = {bound.parameter: name for name, bound in step.inputs.items() if bound.parameter}
    suspects = sorted(
        (p for p in fed if p in given and given[p] != parameters[p].default),
        key=lambda p: fed[p] != refused.field,  # the input named like the field first
    )
    for suspect in suspects:
        if parameters[suspect].required:
            continue  # no default to put back
        default = parameters[suspect].default
        reset = {
            name: Bound(default, parameter=suspect) if bound.parameter == suspect else bound
            for name, bound in step.inputs.items()
        }
        try:
            _build(step, reset)
        except _Refused as again:
            if again.key == refused.key:
                continue
        return _refusal(pipeline, suspect, given[suspect], step, refused.text)
    # Else the one whose value the refusal quotes: a required one has no default to put back,
    # and `model_name` 'team/churn' is refused by the finder built from it, whatever it is.
    quoted = [
        p
        for p in suspects
        if isinstance(given[p], str) and given[p] and repr(given[p]) in refused.text
    ]
    if quoted:
        return _refusal(pipeline, quoted[0], given[quoted[0]], step, refused.text)
    named = [p for p, name in fed.items() if name == refused.field]
    if named:
        value = given.get(named[0], parameters[named[0]].default)
        return _refusal(pipeline, named[0], value, step, refused.text)
    return params.ParameterError(
        f"pipeline {pipeline}: step {step.task} refuses its settings: {refused.text}"
    )


def _refusal(
    pipeline: str, parameter: str, value: Any, step: Step, reason: str
) -> params.ParameterError:
    from components.utils import secrets

    shown = secrets.redact(repr(value) if isinstance(value, str) else params.format_value(value))
    return params.ParameterError(
        f"parameter {parameter!r} of pipeline {pipeline}: {shown} refused by step "
        f"{step.task}: {reason}"
    )


def _inputs_exist(pipeline: str, step: Step, job: Any, here: bool, opened: set[str]) -> None:
    """Make sure the inputs a step will open exist: its readers' paths and its schema.

    On a local run every local path (and `demo://` file) must exist; a cluster's steps open
    their paths in their pods, where only the bundled `demo://` files are known from here.

    Raises:
        params.ParameterError: an input does not exist or a schema cannot be loaded.
    """
    from components.core import schemas
    from components.demo import is_demo
    from components.io import datasets

    locations = [
        value.path
        for _, value in job
        if isinstance(value, datasets.Reader) and not value.path.startswith(STAND_IN)
    ]
    for location in locations:
        if location in opened or not (here or is_demo(location)):
            continue
        opened.add(location)
        try:
            _exists(location)
        except (datasets.DatasetError, OSError) as error:
            raise _missing(pipeline, step, location, error) from None
    schema = getattr(job, "input_schema", None)
    if schema and schema not in opened and (here or is_demo(schema)):
        opened.add(schema)
        try:
            schemas.load_schema(schema)
        except Exception as error:  # any reason the step could not load it: refused here
            raise _missing(pipeline, step, schema, error) from None


def _exists(location: str) -> None:
    """Refuse a local input that does not exist, as a reader would.

    A remote one (s3://, gs://...) is left to the step: looking at it from here would call the
    network, with credentials that may be the pod's only.

    Raises:
        DatasetError: a `demo://` name no bundled file has, or a local path that is missing.
    """
    from pyarrow import fs as pafs

    from components import demo
    from components.io import datasets

    try:
        resolved = demo.resolve(location)
    except FileNotFoundError as error:
        raise datasets.DatasetError(str(error)) from None
    if "://" in resolved and not resolved.startswith("file://"):
        return
    filesystem, path = datasets.resolve(resolved)
    if filesystem.get_file_info(path).type == pafs.FileType.NotFound:
        raise datasets.not_found(location)


def _missing(pipeline: str, step: Step, location: str, error: Exception) -> params.ParameterError:
    """An input that cannot be opened, in one line naming the parameter that gave it."""
    reason = _one_line(error)
    for bound in step.inputs.values():
        if bound.parameter and bound.value == location:
            return params.ParameterError(
                f"parameter {bound.parameter!r} of pipeline {pipeline}: {reason} "
                f"(step {step.task} reads it)"
            )
    return params.ParameterError(f"pipeline {pipeline}: step {step.task}: {reason}")


def _thresholds_suit_the_model(
    pipeline: str, steps: list[Step], jobs: Mapping[str, Any], given: Mapping[str, Any]
) -> None:
    """Refuse thresholds on metrics that the model the evaluation will load is not scored on.

    An evaluation learns its model's task from the model it loads, when it runs; before the
    run, the step that trains that model knows it. The check is the evaluation's own
    (`metrics.check_thresholds`).

    Raises:
        params.ParameterError: a threshold on a metric of the other task.
    """
    from components.core import metrics
    from components.jobs.evaluation import EvaluationJob

    for step in steps:
        job = jobs.get(step.task)
        if not isinstance(job, EvaluationJob) or not job.thresholds:
            continue
        model = getattr(jobs.get(step.artifacts.get("model") or ""), "model", None)
        if model is None:
            continue
        try:
            metrics.check_thresholds(model.TASK, job.thresholds)
        except ValueError as error:
            reason = f"{_one_line(error)} (model_kind {model.kind_name})"
            bound = step.inputs.get("thresholds")
            if bound is not None and bound.parameter:
                value = given.get(bound.parameter, bound.value)
                raise _refusal(pipeline, bound.parameter, value, step, reason) from None
            raise params.ParameterError(
                f"pipeline {pipeline}: step {step.task}: {reason}"
            ) from None


def _retraining_can_start(
    pipeline: str,
    steps: list[Step],
    given: Mapping[str, Any],
    values: Mapping[str, Any],
) -> None:
    """Refuse a retraining policy that is invalid, or whose trainer would not start training.

    The policy acts in the alert step, at the end of a run, maybe weeks after it was written
    (there, a policy it cannot apply is a line of the alert, never a failed alert): its fields,
    its trainer and the training pipeline's parameters are checked now, as the trainer will
    check them (unknown names, types, the training steps' own rules).

    Raises:
        params.ParameterError: naming the parameter that holds the policy and what is wrong.
    """
    import pydantic as pdt

    from components.io import retraining
    from components.jobs.base import describe_errors
    from components.utils.factories import FactoryError

    for step in steps:
        bound = step.inputs.get("retraining")
        if step.component != "notify" or bound is None or not bound.value:
            continue
        parameter = bound.parameter or "retraining"
        value = given.get(parameter, bound.value)
        model_name = str(values.get("model_name") or "") or "model"
        try:
            policy = retraining.RetrainingPolicy.model_validate(bound.value)
            trainer = policy.build_trainer()
            training = policy.training_values(model_name, str(values.get("experiment")))
            validate("training", training, trainer.declared("training"))
        except pdt.ValidationError as error:
            reason = describe_errors("retraining", error)
            raise _refusal(pipeline, parameter, value, step, reason) from None
        except FactoryError as error:
            reason = f"trainer: {_one_line(error)}"
            raise _refusal(pipeline, parameter, value, step, reason) from None
        except params.ParameterError as error:
            reason = f"parameters (of the training it starts): {_one_line(error)}"
            raise _refusal(pipeline, parameter, value, step, reason) from None


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())
