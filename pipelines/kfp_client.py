"""Shared helpers for the cluster-facing commands: a kfp.Client, compiled files, paging."""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kfp
import kfp_server_api
import urllib3
from kfp.client import ServiceAccountTokenVolumeCredentials

COMPILED_DIR = Path(__file__).parent / "compiled"
TOKEN_ENV = "KF_PIPELINES_TOKEN"
# Projected, audience-bound token that multi-user KFP expects; the kubelet rotates it.
KFP_SA_TOKEN_PATH = Path("/var/run/secrets/kubeflow/pipelines/token")
# Plain service account token every pod gets; enough for single-user KFP behind RBAC.
K8S_SA_TOKEN_PATH = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")
# KFP's filter proto operation code for EQUALS.
_EQUALS = 1


class UsageError(ValueError):
    """A mistake the user can fix from the command line (unknown pipeline, bad file)."""


Handler = Callable[[argparse.Namespace], int]


def guarded(handler: Handler) -> Handler:
    """Turn expected failures into one line on stderr and an exit status, not a traceback.

    Exit status 2 for a usage mistake, 1 when KFP refuses or cannot be reached.
    """

    @functools.wraps(handler)
    def wrapper(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except UsageError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        except kfp_server_api.ApiException as error:
            print(
                f"error: KFP answered {error.status} {error.reason}: {error.body}", file=sys.stderr
            )
            return 1
        except urllib3.exceptions.HTTPError as error:
            print(f"error: cannot reach KFP at {args.host}: {error}", file=sys.stderr)
            return 1

    return wrapper


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
        default=COMPILED_DIR,
        help="folder of compiled pipeline YAML files (default: the package's compiled/).",
    )


def build_client(
    host: str,
    namespace: str | None = None,
    token_env: str = TOKEN_ENV,
    kfp_token_path: Path = KFP_SA_TOKEN_PATH,
    k8s_token_path: Path = K8S_SA_TOKEN_PATH,
) -> kfp.Client:
    """Build a kfp.Client for an explicit host, picking the first credentials available.

    Order: a token in the environment, then KFP's projected service account token (refreshed
    on every request, since the kubelet rotates it), then the pod's service account token,
    then none (a port-forward or an open endpoint).

    Args:
        host: KFP API endpoint; passing it stops kfp.Client from probing kube config.
        namespace: user namespace on multi-user KFP.
        token_env: name of the environment variable that may hold a bearer token.
        kfp_token_path: where KFP's audience-bound token is mounted in a pod.
        k8s_token_path: where Kubernetes mounts the service account token in a pod.

    Returns:
        A connected client.
    """
    options: dict[str, Any] = {"host": host, "ui_host": host}
    if namespace:
        # Also spares the healthz probe kfp.Client makes to discover multi-user mode.
        options["namespace"] = namespace
    token = os.environ.get(token_env)
    if token:
        options["existing_token"] = token
    elif kfp_token_path.is_file():
        options["credentials"] = ServiceAccountTokenVolumeCredentials(str(kfp_token_path))
    elif k8s_token_path.is_file():
        options["existing_token"] = k8s_token_path.read_text().strip()
    with warnings.catch_warnings():
        # kfp.Client warns on every construction that it needs KFP >= 2.0.0-beta.2.
        warnings.simplefilter("ignore", FutureWarning)
        return kfp.Client(**options)


def resolve_pipeline_file(
    name: str, file: Path | None = None, pipelines_dir: Path = COMPILED_DIR
) -> Path:
    """Find the compiled YAML of a pipeline.

    Args:
        name: pipeline name; its file is `<pipelines_dir>/<name>.yaml`.
        file: an explicit file that wins over the name lookup.
        pipelines_dir: folder of compiled pipelines.

    Returns:
        The path of an existing file.

    Raises:
        UsageError: the file does not exist; the message lists the pipelines available.
    """
    if file is not None:
        if not Path(file).is_file():
            raise UsageError(f"pipeline file not found: {file}")
        return Path(file)
    path = Path(pipelines_dir) / f"{name}.yaml"
    if not path.is_file():
        available = ", ".join(compiled_pipelines(pipelines_dir)) or "none"
        raise UsageError(
            f"unknown pipeline {name!r}: no {path}. Compiled pipelines available: {available}"
        )
    return path


def compiled_pipelines(pipelines_dir: Path = COMPILED_DIR) -> list[str]:
    """List the names of the compiled pipelines in a folder, sorted."""
    folder = Path(pipelines_dir)
    return sorted(path.stem for path in folder.glob("*.yaml")) if folder.is_dir() else []


def content_hash(path: Path) -> str:
    """Short SHA-256 of a file's bytes; compiled YAML is deterministic, so equal means unchanged."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]


def display_name_filter(name: str) -> str:
    """A KFP list filter (JSON-serialised Filter proto) matching one display name exactly."""
    predicate = {"operation": _EQUALS, "key": "display_name", "stringValue": name}
    return json.dumps({"predicates": [predicate]})


def paginate(list_page: Callable[..., Any], items: str, **kwargs: Any) -> Iterator[Any]:
    """Yield every item of a paged KFP list call, following next_page_token.

    Args:
        list_page: a client list method taking page_token and page_size.
        items: the response attribute holding the page's items, e.g. "recurring_runs".
        **kwargs: other arguments for list_page (filter, experiment_id, ...).

    Yields:
        The items of all pages, in server order.
    """
    token = ""
    while True:
        response = list_page(page_token=token, page_size=100, **kwargs)
        yield from getattr(response, items) or []
        token = response.next_page_token or ""
        if not token:
            return
