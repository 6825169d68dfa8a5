"""Pipeline parameters: read them from a pipeline spec, convert and validate the values given.

One place for `run --local`, `submit`, `schedule sync` and the model manager's jobs: the
parameters always come from the pipeline's own spec (the in-memory pipeline or its compiled
YAML), never from a list kept here. Values arrive as text from the command line
(`--param KEY=VALUE`) or typed from YAML (a config file, the schedules file); `coerce` turns both
into the type the spec declares, and `validate` then has every step check them as it will
(`pipelines.checks.preflight`) before anything runs.

A run config is YAML with three optional keys, and serves every pipeline of its model:

    pipeline: lifecycle            # the pipeline it is mainly for (`make demo` runs it)
    parameters:                    # values by parameter name; `--param` overrides them
      model_name: bike-sharing
      batch_size: 65536
    model_management: {...}        # finders, trainers... by name (see pipelines.jobs.management)

Each pipeline run with it takes the parameters it declares (`run training --config` takes
training's and leaves `inference_data` to the others); a key that no pipeline declares is refused.
The rows to score are `inference_data` in a config that also trains: a pipeline that only
scores (`inference`: it declares `data` and no `target`) takes them as its `data`, never the
labelled rows that the config's `data` names for the pipelines that train.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pipelines.common.errors import UsageError
from pipelines.dags.catalog import compiled_pipelines

STRING = "STRING"
NUMBER_INTEGER = "NUMBER_INTEGER"
NUMBER_DOUBLE = "NUMBER_DOUBLE"
BOOLEAN = "BOOLEAN"
LIST = "LIST"
STRUCT = "STRUCT"
CONFIG_KEYS = ("pipeline", "parameters", "model_management")
# A run config's name for the rows to score, beside `data`, the rows to train on (see taken_by).
SCORED = "inference_data"
_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})
# What a value of each type looks like, when the parameter's default cannot show it.
_EXAMPLES: dict[str, Any] = {
    STRING: "text",
    NUMBER_INTEGER: 3,
    NUMBER_DOUBLE: 0.5,
    BOOLEAN: True,
    LIST: ["a", "b"],
    STRUCT: {"key": "value"},
}
_EXPECTS = {
    STRING: "a string",
    NUMBER_INTEGER: "an integer",
    NUMBER_DOUBLE: "a number",
    BOOLEAN: "true or false",
    LIST: "a list (a JSON array on the command line)",
    STRUCT: "a mapping (a JSON object on the command line)",
}


class ParameterError(UsageError):
    """A parameter value, name or config file the pipeline does not accept; says which."""


@dataclass(frozen=True)
class Parameter:
    """One input parameter of a pipeline, as its spec declares it.

    Attributes:
        name: the parameter name.
        type: KFP IR parameterType: STRING, NUMBER_INTEGER, NUMBER_DOUBLE, BOOLEAN, LIST, STRUCT.
        default: the default value (already of the declared type), None when there is none.
        description: the description from the pipeline's docstring, "" when there is none.
        optional: whether the spec marks it optional (it has a default, or accepts None).
    """

    name: str
    type: str
    default: Any = None
    description: str = ""
    optional: bool = False

    @property
    def required(self) -> bool:
        """Whether a value must be given: no default and not optional."""
        return self.default is None and not self.optional

    def example(self) -> str:
        """A valid `KEY=VALUE` for this parameter, from its default when that shows one."""
        value = self.default
        if value is None or value == "" or value == [] or value == {}:
            value = _EXAMPLES.get(self.type, "value")
        return f"{self.name}={format_value(value)}"


class PipelineParameters(dict[str, Parameter]):
    """A pipeline's parameters by name, with the spec they were read from.

    Attributes:
        spec: the pipeline spec, whose steps check the values before a run (see
            `pipelines.checks.preflight`); None when the parameters come from elsewhere.
        here: whether the pipeline runs on this machine (kfp.local), where its local inputs
            must then exist; a compiled pipeline runs on a cluster.
    """

    def __init__(
        self,
        parameters: Mapping[str, Parameter] | None = None,
        spec: Mapping[str, Any] | None = None,
        here: bool = False,
    ):
        super().__init__(parameters or {})
        self.spec = spec
        self.here = here


@dataclass(frozen=True)
class Config:
    """A run config file: it serves every pipeline of a model.

    Attributes:
        pipeline: the pipeline the file is mainly for, None when it does not say.
        parameters: values by parameter name, as YAML typed them.
        model_management: the named finders, initializers, trainers and job predictors
            (see `pipelines.jobs.management`); the pipeline commands ignore it.
    """

    pipeline: str | None
    parameters: dict[str, Any]
    model_management: dict[str, Any] = dataclasses.field(default_factory=dict)


def format_value(value: Any) -> str:
    """Write a value as it would be given on the command line (JSON for all but text)."""
    if isinstance(value, str):
        return value
    return json.dumps(value)


def from_spec(spec: Mapping[str, Any], here: bool = False) -> PipelineParameters:
    """Read the input parameters of a compiled pipeline spec.

    Args:
        spec: the pipeline spec as a dict (its `root.inputDefinitions.parameters`).
        here: whether the pipeline runs on this machine (see PipelineParameters).

    Returns:
        The parameters by name, in name order, with the spec.
    """
    root = spec.get("root") or {}
    declared = (root.get("inputDefinitions") or {}).get("parameters") or {}
    parameters = {}
    for name in sorted(declared):
        entry = declared[name] or {}
        kind = str(entry.get("parameterType", STRING))
        parameter = Parameter(
            name=name,
            type=kind,
            default=entry.get("defaultValue"),
            description=str(entry.get("description") or "").strip(),
            optional=bool(entry.get("isOptional", False)),
        )
        if parameter.default is not None:
            try:  # NUMBER_INTEGER defaults are stored as doubles (131072.0)
                default = coerce(parameter, parameter.default)
            except ParameterError:
                default = parameter.default
            parameter = Parameter(name, kind, default, parameter.description, parameter.optional)
        parameters[name] = parameter
    return PipelineParameters(parameters, spec, here)


def of_pipeline(name: str) -> PipelineParameters:
    """Read the parameters of a pipeline built in memory, as `run --local` runs it (here).

    Raises:
        UsageError: no pipeline has this name.
    """
    from google.protobuf import json_format

    from pipelines.dags import catalog

    if name not in catalog.NAMES:
        raise UsageError(
            f"unknown pipeline {name!r}{_suggest(name, catalog.NAMES)}; "
            f"pipelines: {', '.join(catalog.NAMES)}"
        )
    pipeline = catalog.build(name, gpu=False, retries=False)
    return from_spec(json_format.MessageToDict(pipeline.pipeline_spec), here=True)


def of_pipelines() -> dict[str, PipelineParameters]:
    """The parameters of every pipeline of the project, built in memory, by pipeline name."""
    from pipelines.dags import catalog

    return {name: of_pipeline(name) for name in catalog.NAMES}


def of_file(path: Path) -> PipelineParameters:
    """Read the parameters of a compiled pipeline YAML (its first document is the spec).

    Raises:
        ParameterError: the file cannot be read or holds no pipeline spec.
    """
    try:
        spec = next(yaml.safe_load_all(Path(path).read_text()), None)
    except (OSError, yaml.YAMLError) as error:
        message = f"{path}: cannot read compiled pipeline: {_one_line(error)}"
        raise ParameterError(message) from error
    if not isinstance(spec, dict) or not isinstance(spec.get("root"), dict):
        raise ParameterError(f"{path}: not a compiled pipeline (no root in its first document)")
    return from_spec(spec)


def of_folder(folder: Path) -> dict[str, PipelineParameters]:
    """The parameters of every compiled pipeline in a folder (`<name>.yaml`), by name.

    Files that hold no pipeline spec are left out.
    """
    found = {}
    for name in compiled_pipelines(folder):
        try:
            found[name] = of_file(Path(folder) / f"{name}.yaml")
        except ParameterError:
            continue
    return found


def coerce(param: Parameter, value: Any) -> Any:
    """Convert a value to the parameter's declared type.

    Text (from the command line) is parsed by the type; typed values (from YAML) are checked.
    A STRING parameter keeps text as it is (`1` stays "1") and takes a YAML scalar as its text.

    Args:
        param: the parameter.
        value: the value given.

    Returns:
        The value of the declared type.

    Raises:
        ParameterError: the value does not fit the type; names the parameter, its type, the
            value given and a valid example.
    """
    if value is None:
        if param.optional and param.default is None:
            return None  # declared Optional[...] = None
        raise _wrong(param, value)
    convert = _CONVERTERS.get(param.type)
    if convert is None:
        return value  # a type this module does not know: KFP will judge
    try:
        return convert(value)
    except (TypeError, ValueError) as error:
        raise _wrong(param, value) from error


def _to_string(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return str(value)
    raise TypeError(value)


def _to_integer(value: Any) -> int:
    if isinstance(value, bool):
        raise TypeError(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        return int(value.strip())
    raise TypeError(value)


def _to_double(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise TypeError(value)
    number = float(value.strip() if isinstance(value, str) else value)
    if not math.isfinite(number):
        raise ValueError(value)
    return number


def _to_boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise ValueError(value)


def _json_of(kind: type) -> Callable[[Any], Any]:
    def convert(value: Any) -> Any:
        if isinstance(value, str):
            value = json.loads(value)
        if not isinstance(value, kind):
            raise TypeError(value)
        return value

    return convert


_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    STRING: _to_string,
    NUMBER_INTEGER: _to_integer,
    NUMBER_DOUBLE: _to_double,
    BOOLEAN: _to_boolean,
    LIST: _json_of(list),
    STRUCT: _json_of(dict),
}


def _wrong(param: Parameter, value: Any) -> ParameterError:
    expects = _EXPECTS.get(param.type, param.type)
    return ParameterError(
        f"parameter {param.name!r} is {param.type} and expects {expects}; "
        f"got {value!r} (e.g. {param.example()})"
    )


def validate(
    pipeline: str, values: Mapping[str, Any], parameters: Mapping[str, Parameter]
) -> dict[str, Any]:
    """Check names and types of the values given for a pipeline; convert them.

    Args:
        pipeline: the pipeline name, for messages.
        values: parameter values by name (text or typed).
        parameters: the pipeline's parameters (from_spec, of_pipeline, of_file).

    Returns:
        The values converted to their declared types (only those given).

    Raises:
        ParameterError: an unknown name (with close matches), a value of the wrong type, or a
            required parameter missing. What the pipeline's steps refuse is checked on top of
            this by `pipelines.checks.preflight.validate`.
    """
    unknown = [key for key in values if key not in parameters]
    if unknown:
        names = ", ".join(parameters) or "none"
        if len(unknown) == 1:
            raise ParameterError(
                f"unknown parameter {unknown[0]!r} for pipeline {pipeline}"
                f"{_suggest(unknown[0], parameters)}{_scored_hint(unknown[0], parameters)} "
                f"(parameters: {names})"
            )
        found = ", ".join(f"{key!r}{_suggest(key, parameters, '')}" for key in unknown)
        raise ParameterError(
            f"unknown parameters {found} for pipeline {pipeline} (parameters: {names})"
        )
    missing = [name for name, param in parameters.items() if param.required and name not in values]
    if missing:
        needed = ", ".join(f"{name} ({parameters[name].type})" for name in missing)
        raise ParameterError(f"pipeline {pipeline} needs a value for: {needed}")
    return {key: coerce(parameters[key], value) for key, value in values.items()}


def scores_only(parameters: Mapping[str, Any]) -> bool:
    """Whether a pipeline scores its `data` and trains nothing (`inference`): no `target`."""
    return "data" in parameters and "target" not in parameters and SCORED not in parameters


def taken_by(values: Mapping[str, Any], parameters: Mapping[str, Any]) -> dict[str, Any]:
    """The values of a run config's shared set that one pipeline takes.

    Those it declares; and for a pipeline that only scores, the config's `inference_data` as its
    `data`, since the config's `data` are then the rows to train on, not to score.
    """
    taken = {key: value for key, value in values.items() if key in parameters}
    if SCORED in values and scores_only(parameters):
        taken["data"] = values[SCORED]
    return taken


def _scored_hint(key: str, parameters: Mapping[str, Any]) -> str:
    """Where a pipeline that only scores takes the rows that `inference_data` names elsewhere."""
    if key == SCORED and scores_only(parameters):
        return "; this pipeline scores the rows of its `data`: --param data=..."
    return ""


def _suggest(key: str, choices: Any, lead: str = ";") -> str:
    """`; did you mean: a, b?` for close matches of a mistyped name, else ''."""
    close = difflib.get_close_matches(key, list(choices), n=3, cutoff=0.6)
    if not close:
        return ""
    text = f"did you mean: {', '.join(close)}?"
    return f"{lead} {text}" if lead else f" ({text})"


def load_config(path: Path) -> Config:
    """Read a parameters config file: a YAML mapping with `pipeline:` and `parameters:`.

    Raises:
        ParameterError: the file is unreadable, not YAML, not a mapping, has another top-level
            key, or a key of the wrong type; the message names the file.
    """
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as error:
        raise ParameterError(f"{path}: cannot read config: {_one_line(error)}") from error
    allowed = ", ".join(CONFIG_KEYS)
    if not isinstance(data, dict):
        raise ParameterError(f"{path}: a config file is a YAML mapping with keys: {allowed}")
    extra = [str(key) for key in data if key not in CONFIG_KEYS]
    if extra:
        raise ParameterError(
            f"{path}: unknown key {', '.join(map(repr, extra))} in config; allowed keys: {allowed}"
        )
    pipeline = data.get("pipeline")
    if pipeline is not None and not isinstance(pipeline, str):
        raise ParameterError(f"{path}: 'pipeline' must be a pipeline name, got {pipeline!r}")
    parameters = data.get("parameters")
    if parameters is None:
        parameters = {}
    if not isinstance(parameters, dict):
        raise ParameterError(
            f"{path}: 'parameters' must be a mapping of name: value, got {parameters!r}"
        )
    bad = [key for key in parameters if not isinstance(key, str)]
    if bad:
        raise ParameterError(f"{path}: parameter names must be text, got {bad[0]!r}")
    management = data.get("model_management") or {}
    if not isinstance(management, dict):
        raise ParameterError(
            f"{path}: 'model_management' must be a mapping of sections, got {management!r}"
        )
    return Config(pipeline=pipeline, parameters=dict(parameters), model_management=management)


def config_values(
    config: Config,
    pipeline: str,
    parameters: Mapping[str, Parameter],
    pipelines: Mapping[str, Mapping[str, Parameter]],
    path: Path | str,
) -> dict[str, Any]:
    """The values of a run config that one pipeline takes: those it declares.

    A run config serves every pipeline of its model: each takes the parameters it declares and
    leaves the others to the rest (training takes no `inference_data`; inference takes it as its
    `data`: taken_by).

    Args:
        config: the run config.
        pipeline: the pipeline about to run.
        parameters: its parameters.
        pipelines: every pipeline the config may serve, by name (with their parameters).
        path: where the config came from, for messages.

    Raises:
        ParameterError: the config names a pipeline that does not exist, or has a key that no
            pipeline declares.
    """
    known = {**pipelines, pipeline: parameters}
    if config.pipeline is not None and config.pipeline not in known:
        raise ParameterError(
            f"{path}: config is for pipeline {config.pipeline!r}, not {pipeline!r}, and there "
            f"is no pipeline {config.pipeline!r} (pipelines: {', '.join(known)})"
        )
    check_declared(config.parameters, known, path)
    return taken_by(config.parameters, parameters)


def check_declared(
    values: Mapping[str, Any], pipelines: Mapping[str, Mapping[str, Parameter]], source: Path | str
) -> None:
    """Refuse the keys of a run config that no pipeline declares, naming the closest ones.

    Args:
        values: the config's parameter values.
        pipelines: every pipeline the config may serve, by name (with their parameters).
        source: where the values came from, for messages.

    Raises:
        ParameterError: a key that no pipeline declares.
    """
    declared = sorted({name for parameters in pipelines.values() for name in parameters})
    unknown = [key for key in values if key not in declared]
    if not unknown:
        return
    names = ", ".join(pipelines) or "none"
    if len(unknown) == 1:
        raise ParameterError(
            f"{source}: unknown parameter {unknown[0]!r}{_suggest(unknown[0], declared)} "
            f"(no pipeline declares it; pipelines: {names})"
        )
    found = ", ".join(f"{key!r}{_suggest(key, declared, '')}" for key in unknown)
    raise ParameterError(
        f"{source}: unknown parameters {found} (no pipeline declares them; pipelines: {names})"
    )


def merge(config_params: Mapping[str, Any], cli_params: Mapping[str, Any]) -> dict[str, Any]:
    """Combine config values with command-line values; the command line wins."""
    return {**config_params, **cli_params}


def resolve(
    pipeline: str,
    parameters: Mapping[str, Parameter],
    config_path: Path | None = None,
    cli_params: Mapping[str, Any] | None = None,
    pipelines: Mapping[str, Mapping[str, Parameter]] | None = None,
) -> dict[str, Any]:
    """The values to run a pipeline with: a config file's, overridden by `--param`, validated.

    Names and types only: what the steps refuse is checked on top by `pipelines.checks.preflight`.

    The config's values are those the pipeline declares (see config_values); every `--param`
    must be one of its parameters.

    Args:
        pipeline: the pipeline name given on the command line.
        parameters: its parameters.
        config_path: a config file, or None.
        cli_params: `--param` values (text), or None.
        pipelines: every pipeline the config may serve, by name; default: the project's own,
            built in memory (of_pipelines).

    Returns:
        The validated, converted values.

    Raises:
        ParameterError: a bad config file, a key no pipeline declares, or a bad value.
    """
    values: dict[str, Any] = {}
    if config_path is not None:
        config = load_config(config_path)
        every = of_pipelines() if pipelines is None else pipelines
        values = config_values(config, pipeline, parameters, every, config_path)
    return validate(pipeline, merge(values, cli_params or {}), parameters)


def describe(pipeline: str, parameters: Mapping[str, Parameter]) -> str:
    """The parameter list that `run NAME --help` and `submit NAME --help` print."""
    if not parameters:
        return f"pipeline {pipeline} has no parameters\n"
    lines = [f"parameters of pipeline {pipeline} (set with --param KEY=VALUE or --config):"]
    width = max(len(name) for name in parameters)
    for name, param in parameters.items():
        if param.required:
            default = "required"
        elif param.default is None:
            default = "default: none"
        else:
            default = f"default: {format_value(param.default) or repr('')}"
        lines.append(f"  {name:<{width}}  {param.type:<14}  {default}")
        if param.description:
            indent = " " * (width + 4)
            text = " ".join(param.description.split())
            lines.extend(textwrap.wrap(text, 100, initial_indent=indent, subsequent_indent=indent))
    return "\n".join(lines) + "\n"


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())
