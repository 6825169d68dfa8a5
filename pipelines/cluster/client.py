"""The KFP API client: credentials, compiled files, list filters and paging."""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kfp
from kfp.client import ServiceAccountTokenVolumeCredentials

from pipelines.common.errors import UsageError
from pipelines.dags.catalog import COMPILED, compiled_pipelines

TOKEN_ENV = "KF_PIPELINES_TOKEN"
# Projected, audience-bound token that multi-user KFP expects; the kubelet rotates it.
KFP_SA_TOKEN_PATH = Path("/var/run/secrets/kubeflow/pipelines/token")
# Plain service account token every pod gets; enough for single-user KFP behind RBAC.
K8S_SA_TOKEN_PATH = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")
# KFP's filter proto operation code for EQUALS.
_EQUALS = 1


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
    name: str, file: Path | None = None, pipelines_dir: Path = COMPILED
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
