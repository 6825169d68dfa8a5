"""A fake Kubernetes API server on 127.0.0.1: the few pod endpoints the exit step reads.

It stands in for a cluster's API server because none can run on this machine. It answers
`GET /api/v1/namespaces/{namespace}/pods/{name}` with a pod in the JSON shape the `kubernetes`
client deserialises, and `.../pods/{name}/log` with the last `tailLines` lines of the chosen
container's log as text, as the real server does; an unknown pod or container gets the real
server's 404 or 400 Status body, and a forbidden endpoint its 403.
"""

from __future__ import annotations

import json
import re
import typing as T
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

from tests.local_http import LocalHttpServer

_POD = re.compile(r"/api/v1/namespaces/([^/]+)/pods/([^/]+)(/log)?")


def terminated_pod(
    name: str,
    reason: str,
    exit_code: int,
    memory_limit: str = "1Gi",
    message: str | None = None,
) -> dict[str, T.Any]:
    """A KFP step's pod whose `main` container ended, as `kubectl get pod -o json` shows it.

    Args:
        name: the pod's name.
        reason: the container's termination reason (OOMKilled, Error...).
        exit_code: its exit code.
        memory_limit: the container's memory limit.
        message: the termination message, if any.
    """
    terminated = {
        "exitCode": exit_code,
        "reason": reason,
        "startedAt": "2024-05-01T10:00:00Z",
        "finishedAt": "2024-05-01T10:05:00Z",
        "containerID": "containerd://0123",
    }
    if message:
        terminated["message"] = message
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "", "labels": {}},
        "spec": {
            "containers": [
                {"name": "wait", "image": "argoexec"},
                {
                    "name": "main",
                    "image": "ghcr.io/example/lifecycle:1",
                    "resources": {"limits": {"cpu": "1", "memory": memory_limit}},
                },
            ]
        },
        "status": {
            "phase": "Failed",
            "containerStatuses": [
                {
                    "name": "main",
                    "image": "ghcr.io/example/lifecycle:1",
                    "imageID": "",
                    "ready": False,
                    "restartCount": 0,
                    "state": {"terminated": terminated},
                    "lastState": {},
                },
                {
                    "name": "wait",
                    "image": "argoexec",
                    "imageID": "",
                    "ready": False,
                    "restartCount": 0,
                    "state": {"terminated": {"exitCode": 0, "reason": "Completed"}},
                    "lastState": {},
                },
            ],
        },
    }


class FakeKubernetesApiServer(LocalHttpServer):
    """Pods and their logs in memory, served over HTTP on a free port of 127.0.0.1.

    Args:
        namespace: the only namespace that holds pods.

    Attributes:
        pods: pod JSON by name.
        logs: the `main` container's log text by pod name.
        forbidden: paths' kinds ("pod", "log") answered 403, as without RBAC rights.
        requests: (path, query) of every request received.
        authorizations: the Authorization header of every request (None when absent).
    """

    def __init__(self, namespace: str = "ml-lifecycle") -> None:
        self.namespace = namespace
        self.pods: dict[str, dict[str, T.Any]] = {}
        self.logs: dict[str, str] = {}
        self.forbidden: set[str] = set()
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.authorizations: list[str | None] = []

    def add_pod(self, pod: dict[str, T.Any], log: str = "") -> None:
        """Serve a pod, and the log of its `main` container."""
        pod["metadata"]["namespace"] = self.namespace
        self.pods[pod["metadata"]["name"]] = pod
        self.logs[pod["metadata"]["name"]] = log

    def answer(self, path: str, query: dict[str, str]) -> tuple[int, str, str]:
        """(status, content type, body) for a GET, as the real API server answers it."""
        match = _POD.fullmatch(path)
        if match is None:
            return _status(404, "NotFound", f"the server could not find {path}")
        namespace, name, log = match.groups()
        kind = "log" if log else "pod"
        if kind in self.forbidden:
            resource = "pods/log" if log else "pods"
            return _status(403, "Forbidden", f'{resource} "{name}" is forbidden')
        if namespace != self.namespace or name not in self.pods:
            return _status(404, "NotFound", f'pods "{name}" not found')
        if not log:
            return 200, "application/json", json.dumps(self.pods[name])
        container = query.get("container", "main")
        names = [c["name"] for c in self.pods[name]["spec"]["containers"]]
        if container not in names:
            message = f"container {container} is not valid for pod {name}"
            return _status(400, "BadRequest", message)
        lines = self.logs[name].splitlines(keepends=True) if container == "main" else []
        tail = int(query.get("tailLines") or len(lines))
        return 200, "text/plain", "".join(lines[-tail:] if tail else [])


def _status(code: int, reason: str, message: str) -> tuple[int, str, str]:
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    return code, "application/json", json.dumps(body)


class _Handler(BaseHTTPRequestHandler):
    """Routes GETs to the FakeKubernetesApiServer set as the class attribute `fake`."""

    fake: FakeKubernetesApiServer

    def log_message(self, format: str, *args: T.Any) -> None:  # noqa: A002
        pass  # requests are recorded in fake.requests instead

    def do_GET(self) -> None:  # noqa: N802
        parts = urlsplit(self.path)
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        self.fake.requests.append((parts.path, query))
        self.fake.authorizations.append(self.headers.get("Authorization"))
        status, content_type, body = self.fake.answer(parts.path, query)
        payload = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


FakeKubernetesApiServer.HANDLER = _Handler  # the handler is defined after the server
