"""Options the commands share: a KFP connection, a pipeline's parameters and its --help."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from pipelines.checks.params import Parameter, describe
from pipelines.cluster.client import TOKEN_ENV
from pipelines.common.errors import UsageError
from pipelines.dags.catalog import COMPILED


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options every cluster-facing command shares.

    Args:
        parser: the sub-command parser to extend.
    """
    host = os.environ.get("KF_PIPELINES_ENDPOINT")
    parser.add_argument(
        "--host",
        default=host,
        required=host is None,
        help="KFP API endpoint, e.g. http://localhost:8080 (default: $KF_PIPELINES_ENDPOINT).",
    )
    parser.add_argument(
        "--namespace",
        default=None,
        help="Kubernetes namespace (profile) on a multi-user KFP; leave out on single-user.",
    )
    parser.add_argument(
        "--token-env",
        default=TOKEN_ENV,
        help=f"environment variable holding a bearer token (default: {TOKEN_ENV}).",
    )
    parser.add_argument(
        "--pipelines-dir",
        type=Path,
        default=COMPILED,
        help="folder of compiled pipeline YAML files (default: the package's compiled/).",
    )


def parse_param(text: str) -> tuple[str, str]:
    """Split `KEY=VALUE`; VALUE stays text until `coerce` converts it by the declared type.

    Raises:
        argparse.ArgumentTypeError: no `=` or an empty key.
    """
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), raw


class CollectParams(argparse.Action):
    """Gather repeated --param KEY=VALUE into one dict; a key given twice is an error."""

    def __call__(self, parser, namespace, values, option_string=None):  # noqa: D102
        params = dict(getattr(namespace, self.dest) or {})
        key, value = values
        if key in params:
            parser.error(f"{option_string} {key} given twice")
        params[key] = value
        setattr(namespace, self.dest, params)


class PipelineHelp(argparse.Action):
    """`-h/--help` that also lists the named pipeline's parameters with types and defaults.

    Args:
        option_strings: the option names.
        lookup: namespace -> (pipeline name, its parameters); may raise UsageError.
        dest: unused (help stores nothing).
        help: the option's help text.
    """

    def __init__(
        self,
        option_strings: list[str],
        lookup: Callable[[argparse.Namespace], tuple[str, Mapping[str, Parameter]]],
        dest: str = argparse.SUPPRESS,
        help: str = "show this help and the pipeline's parameters, then exit",
    ):
        super().__init__(option_strings, dest=dest, default=argparse.SUPPRESS, nargs=0, help=help)
        self.lookup = lookup

    def __call__(self, parser, namespace, values, option_string=None):  # noqa: D102
        text = parser.format_help()
        if getattr(namespace, "name", None) is None:
            text += "\nName the pipeline before --help to list its parameters.\n"
        else:
            try:
                text += "\n" + describe(*self.lookup(namespace))
            except UsageError as error:
                text += f"\nerror: {error}\n"
        sys.stdout.write(text)
        parser.exit()


def pipeline_name(args: argparse.Namespace) -> str:
    """The pipeline a command runs: its NAME argument, else the one its --config names.

    Raises:
        UsageError: neither names one, or the config cannot be read.
    """
    if args.name:
        return str(args.name)
    if args.config is not None:
        from pipelines.checks import params

        named = params.load_config(args.config).pipeline  # its errors are UsageErrors
        if named:
            return named
    from pipelines.dags import catalog

    raise UsageError(
        f"name the pipeline ({', '.join(catalog.NAMES)}) before the options, or set "
        "`pipeline: NAME` in the --config file"
    )


def add_parameter_arguments(
    parser: argparse.ArgumentParser,
    lookup: Callable[[argparse.Namespace], tuple[str, Mapping[str, Parameter]]],
) -> None:
    """Add `--config FILE`, `--param KEY=VALUE`, `--dry-run` and a parameter-listing `--help`.

    Args:
        parser: a sub-command parser made with add_help=False, whose positional is `name`.
        lookup: namespace -> (pipeline name, its parameters), for --help.
    """
    parser.add_argument("-h", "--help", action=PipelineHelp, lookup=lookup)
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        metavar="FILE",
        help="run config: YAML with `parameters: {KEY: VALUE}`; the pipeline takes those it "
        "declares (one file serves every pipeline of a model)",
    )
    parser.add_argument(
        "--param",
        dest="params",
        metavar="KEY=VALUE",
        type=parse_param,
        action=CollectParams,
        default={},
        help="pipeline parameter, converted to its declared type; overrides --config (repeatable)",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="check every parameter as the steps will, print the values and the steps that "
        "would run, and stop: nothing runs, is registered or is written",
    )
