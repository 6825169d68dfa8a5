"""Factories: build a strategy (finder, loader, trainer...) by its KIND or a user's own class.

Every pluggable strategy is a pydantic model with a `KIND`. A factory knows the project's kinds
of one role and builds any of them from a config, in any of three spellings of one thing:

    {"KIND": "BestRunFinder", "metric": "test_r2", "mode": "max"}      # a pipeline parameter
    {"type": "BestRunFinder", "config": {"metric": "test_r2", "mode": "max"}}   # a YAML config
    "PermutationExplainer"                                   # a KIND alone: default options

`KIND` (or `type`) is a registered kind, or the import path of a user's class,
`package.module:Class`, which must subclass the role's base class. A user's class is built the
same way (pydantic validates its fields), and keeps its import path as its KIND when it declares
none, so that a step on a cluster builds it again from the same config.
"""

from __future__ import annotations

import difflib
import importlib
import re
import typing as T

import pydantic as pdt
import pydantic_core

# `package.module:Class`: dotted Python names, bounded so that a long mistyped value stays cheap.
_IMPORT_PATH = re.compile(r"[A-Za-z_][\w.]{0,200}:[A-Za-z_]\w{0,100}")
SPEC_KEYS = ("type", "config")

Base = T.TypeVar("Base", bound=pdt.BaseModel)


class FactoryError(ValueError):
    """A config no kind of the role can be built from; says why and what is allowed."""


class Factory(T.Generic[Base]):
    """Build the strategies of one role (finder, loader...) from their configs.

    Args:
        role: what the strategies are, for messages ("finder").
        base: the base class every kind of the role subclasses.
        kinds: the project's own kinds, each with a `KIND` literal default.
        fallback: the kind `choose` gives when no kind says it is chosen for the facts.
    """

    def __init__(
        self,
        role: str,
        base: type,  # abstract, as a role's base is: `type[Base]` would refuse it
        kinds: T.Sequence[type[Base]],
        fallback: type[Base] | None = None,
    ):
        self.role = role
        self.base = base
        self.kinds: dict[str, type[Base]] = {kind_of(kind): kind for kind in kinds}
        self.fallback = fallback

    def choose(self, *facts: T.Any) -> type[Base]:
        """The kind to use when none is named: the first whose `chosen_for(*facts)` says so.

        Each kind declares how it is chosen by default (a reader by its file extensions, an
        alerter by an environment variable); no caller branches on kinds.

        Raises:
            FactoryError: no kind is chosen for the facts, and the role has no fallback.
        """
        for kind in self.kinds.values():
            chosen_for = getattr(kind, "chosen_for", None)
            if chosen_for is not None and chosen_for(*facts):
                return kind
        if self.fallback is None:
            raise FactoryError(f"no {self.role} is chosen for {facts!r}; {self.allowed()}")
        return self.fallback

    @property
    def names(self) -> tuple[str, ...]:
        """The registered kinds, in the order given."""
        return tuple(self.kinds)

    def allowed(self) -> str:
        """What a KIND may be, for messages."""
        return (
            f"allowed: {', '.join(repr(name) for name in self.kinds)}, or the import path "
            f"package.module:Class of a subclass of {qualified(self.base)}"
        )

    def listing(self) -> str:
        """The kinds for a help text or a description: "'A', 'B' or the import path ..."."""
        names = [repr(name) for name in self.kinds]
        head = ", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else "".join(names)
        path = f"the import path package.module:Class of a subclass of {qualified(self.base)}"
        return f"{head}, or {path}" if head else path

    def resolve(self, kind: T.Any) -> type[Base]:
        """The class named by a KIND: a registered kind or a user's class by import path.

        Raises:
            FactoryError: the name is unknown, cannot be imported, or is not a subclass of the
                role's base class; the message lists what is allowed.
        """
        if isinstance(kind, str) and kind in self.kinds:
            return self.kinds[kind]
        if not isinstance(kind, str) or not _IMPORT_PATH.fullmatch(kind):
            close = difflib.get_close_matches(str(kind), list(self.kinds), n=2, cutoff=0.75)
            hint = f" (did you mean: {', '.join(close)}?)" if close else ""
            raise FactoryError(f"unknown {self.role} type {kind!r}{hint}; {self.allowed()}")
        module_name, _, name = kind.partition(":")
        try:
            module = importlib.import_module(module_name)
        except Exception as error:  # a user's module may fail to import in any way
            cause = str(error) if isinstance(error, ImportError) else _described(error)
            raise FactoryError(
                f"{self.role} type {kind!r}: cannot import module {module_name!r} ({cause})"
            ) from None
        found = getattr(module, name, None)
        if found is None:
            raise FactoryError(f"{self.role} type {kind!r}: module {module_name!r} has no {name!r}")
        if not isinstance(found, type) or not issubclass(found, self.base):
            raise FactoryError(
                f"{self.role} type {kind!r} is not a subclass of {qualified(self.base)}; "
                f"{self.allowed()}"
            )
        return T.cast(type[Base], found)  # a subclass of the role's base, checked above

    def coerce(self, value: T.Any) -> T.Any:
        """Turn a KIND, or a config with one, into an instance; leave anything else to pydantic.

        For a field's `BeforeValidator`: field errors of the kind surface as the field's own
        validation errors (`finder.name: Field required`).
        """
        if isinstance(value, str):  # a KIND alone: the kind with its default options
            value = {"KIND": value}
        if isinstance(value, T.Mapping):
            spec = dict(value)
            if "KIND" not in spec and set(spec) <= set(SPEC_KEYS) and "type" in spec:
                spec = self._flatten(spec)
            if "KIND" not in spec:
                raise FactoryError(f"a {self.role} config needs a KIND; {self.allowed()}")
            kind = self.resolve(spec["KIND"])
            if kind not in self.kinds.values() and not _open(kind):
                del spec["KIND"]  # a user's class named by its path keeps the KIND it declares
            try:
                return kind.model_validate(spec)
            except pdt.ValidationError as error:
                raise with_option_hints(error, kind) from None
        return value

    def config_of(self, instance: Base) -> dict[str, T.Any]:
        """The config that builds this instance again, where it runs (a pipeline step).

        A user's class is named by its import path, which any process can resolve.
        """
        kind = type(instance)
        name = instance.KIND if kind in self.kinds.values() else qualified(kind)
        return {**instance.model_dump(mode="json"), "KIND": name}

    def build(self, spec: T.Mapping[str, T.Any]) -> Base:
        """Build an instance from `{type, config}` or from a config with a KIND.

        Args:
            spec: `{"type": NAME, "config": {...}}`, or `{"KIND": NAME, ...options}`.

        Raises:
            FactoryError: an unknown or wrong type, or an invalid option; one line that names
                the type, each field and its rule.
        """
        if not isinstance(spec, T.Mapping):
            raise FactoryError(
                f"a {self.role} is given as {{type: NAME, config: {{...}}}}, got {spec!r}"
            )
        try:
            built = self.coerce(spec)
        except pdt.ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(map(str, item['loc'])) or self.role}: {item['msg']}"
                for item in error.errors()
            )
            raise FactoryError(f"invalid {error.title}: {problems}") from None
        if not isinstance(built, self.base):
            raise FactoryError(f"not a {self.role}: {spec!r}")
        return T.cast(Base, built)

    def _flatten(self, spec: dict[str, T.Any]) -> dict[str, T.Any]:
        """`{type, config}` as the one config with a KIND that it means."""
        config = spec.get("config")
        if config is None:
            config = {}
        if not isinstance(config, T.Mapping):
            raise FactoryError(
                f"{self.role} {spec['type']!r}: 'config' must be a mapping of options, "
                f"got {config!r}"
            )
        if "KIND" in config:
            raise FactoryError(f"{self.role} {spec['type']!r}: give the kind as 'type' only")
        return {"KIND": spec["type"], **config}


def kind_of(cls: type[pdt.BaseModel]) -> str:
    """The KIND a class declares as its default (a registered kind always declares one)."""
    field = cls.model_fields.get("KIND")
    if field is None or not isinstance(field.default, str):
        raise TypeError(f"{qualified(cls)} declares no KIND default")
    return field.default


def _open(cls: type[pdt.BaseModel]) -> bool:
    """Whether a class takes any KIND (a user's class that declares none of its own)."""
    field = cls.model_fields.get("KIND")
    return field is not None and not isinstance(field.default, str)


def _described(error: BaseException) -> str:
    """An error as `Type: message`, on one line."""
    return f"{type(error).__name__}: {' '.join(str(error).split())}"


def qualified(cls: type) -> str:
    """A class's import path, `package.module:Class`."""
    return f"{cls.__module__}:{cls.__qualname__}"


def with_option_hints(error: pdt.ValidationError, kind: type[pdt.BaseModel]) -> pdt.ValidationError:
    """The same errors, where an unknown option names the options it may have meant.

    pydantic says only "Extra inputs are not permitted" of `delimeter`; this says `unknown
    option (did you mean: delimiter?); its options: ...`. Every other error is kept as is.
    """
    items = error.errors()
    if not any(item["type"] == "extra_forbidden" and len(item["loc"]) == 1 for item in items):
        return error
    options = [name for name in kind.model_fields if name != "KIND"]
    details: list[T.Any] = []
    for item in items:
        detail = {"type": item["type"], "loc": item["loc"], "input": item["input"]}
        if "ctx" in item:
            detail["ctx"] = item["ctx"]
        if item["type"] == "extra_forbidden" and len(item["loc"]) == 1:
            key = str(item["loc"][0])
            close = difflib.get_close_matches(key, options, n=2, cutoff=0.6)
            close += [name for name in options if name.startswith(key) and name not in close]
            hint = f" (did you mean: {', '.join(close)}?)" if close else ""
            message = f"unknown option{hint}; its options: {', '.join(options) or 'none'}"
            detail["type"] = pydantic_core.PydanticCustomError("extra_forbidden", message)
            detail.pop("ctx", None)
        details.append(detail)
    return pdt.ValidationError.from_exception_data(error.title, details)
