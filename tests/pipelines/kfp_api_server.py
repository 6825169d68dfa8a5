"""A fake KFP v2beta1 REST API server on 127.0.0.1 that the real kfp.Client talks to.

It stands in for a Kubeflow Pipelines API server because none can run on this machine (no
Kubernetes cluster, no KFP backend). It implements only the endpoints that `submit` and
`schedule sync` reach through kfp.Client, the run (with its task details) that the exit
step's ClusterTaskReader reads, what a job future asks of a run (get, terminate) and the
runs `job list` lists (paged); it keeps its state in memory, and answers in the JSON shapes
kfp_server_api deserialises. It is strict where the real server is (duplicate pipeline and
version names, unknown ids, max_concurrency range) so that client mistakes show up as HTTP
errors, as they would against a cluster. Runs finish in a scripted state.
"""

import json
import re
import threading
import uuid
from datetime import UTC, datetime
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

from tests.local_http import LocalHttpServer

API = "/apis/v2beta1"
_FINAL_STATES = {"SUCCEEDED", "FAILED", "SKIPPED", "CANCELED"}
# google.rpc.Code values the KFP API server puts in its error bodies.
_RPC_CODES = {400: 3, 404: 5, 409: 6}


class ApiError(Exception):
    """An error answer: HTTP status and message, sent as a google.rpc.Status body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _new_id() -> str:
    return str(uuid.uuid4())


class FakeKfpApiServer(LocalHttpServer):
    """In-memory KFP API state served over HTTP on a free port of 127.0.0.1.

    Args:
        run_final_state: the state every run reaches (SUCCEEDED, FAILED, ...).
        polls_before_final: how many GETs of a run answer RUNNING before the final state.
        max_page_size: cap on list page sizes, small in tests to exercise page tokens.

    Attributes:
        pipelines, versions, experiments, runs, recurring_runs: state keyed by id, in
            creation order; versions keep the uploaded bytes under "content".
        requests: (method, path) of every request received, for assertions.
        authorizations: the Authorization header of every request (None when absent).
    """

    def __init__(
        self,
        run_final_state: str = "SUCCEEDED",
        polls_before_final: int = 1,
        max_page_size: int = 100,
    ) -> None:
        self.run_final_state = run_final_state
        self.polls_before_final = polls_before_final
        self.max_page_size = max_page_size
        self.pipelines: dict[str, dict[str, Any]] = {}
        self.versions: dict[str, dict[str, Any]] = {}
        self.experiments: dict[str, dict[str, Any]] = {}
        self.runs: dict[str, dict[str, Any]] = {}
        self.recurring_runs: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str]] = []
        self.authorizations: list[str | None] = []
        self._run_polls: dict[str, int] = {}
        self.terminated: list[str] = []
        self._lock = threading.Lock()

    # -- lifecycle -------------------------------------------------------------------------

    # -- helpers for tests -----------------------------------------------------------------

    def pipeline_named(self, name: str) -> dict[str, Any] | None:
        """The pipeline with this display name, if any."""
        return next((p for p in self.pipelines.values() if p["display_name"] == name), None)

    def versions_of(self, pipeline_name: str) -> list[dict[str, Any]]:
        """Versions of a pipeline, oldest first."""
        pipeline = self.pipeline_named(pipeline_name)
        if pipeline is None:
            return []
        return [v for v in self.versions.values() if v["pipeline_id"] == pipeline["pipeline_id"]]

    def experiment_named(self, name: str) -> dict[str, Any] | None:
        """The experiment with this display name, if any."""
        return next((e for e in self.experiments.values() if e["display_name"] == name), None)

    def count_requests(self, method: str, path: str) -> int:
        """How many requests hit this method and path (no query string)."""
        return sum(1 for seen in self.requests if seen == (method, path))

    # -- pipelines -------------------------------------------------------------------------

    def upload_pipeline(self, query: dict[str, str], content: bytes) -> dict[str, Any]:
        name = query.get("display_name") or query.get("name")
        if not name:
            raise ApiError(400, "pipeline name is required")
        if self.pipeline_named(name) is not None:
            raise ApiError(409, f"pipeline with name {name!r} already exists")
        pipeline = {
            "pipeline_id": _new_id(),
            "name": query.get("name", name),
            "display_name": name,
            "description": query.get("description", ""),
            "namespace": query.get("namespace", ""),
            "created_at": _now(),
        }
        self.pipelines[pipeline["pipeline_id"]] = pipeline
        # As the real server does, the first upload also creates a version named after it.
        self._add_version(pipeline["pipeline_id"], name, pipeline["description"], content)
        return pipeline

    def upload_version(self, query: dict[str, str], content: bytes) -> dict[str, Any]:
        pipeline_id = query.get("pipelineid", "")
        if pipeline_id not in self.pipelines:
            raise ApiError(404, f"pipeline {pipeline_id!r} not found")
        name = query.get("display_name") or query.get("name")
        if not name:
            raise ApiError(400, "pipeline version name is required")
        if any(v["display_name"] == name for v in self._versions_by_id(pipeline_id)):
            raise ApiError(409, f"pipeline version {name!r} already exists")
        return self._add_version(pipeline_id, name, query.get("description", ""), content)

    def _add_version(
        self, pipeline_id: str, name: str, description: str, content: bytes
    ) -> dict[str, Any]:
        try:
            spec = next(yaml.safe_load_all(content))
        except (yaml.YAMLError, StopIteration) as error:
            raise ApiError(400, f"invalid pipeline spec: {error}") from error
        version = {
            "pipeline_id": pipeline_id,
            "pipeline_version_id": _new_id(),
            "name": name,
            "display_name": name,
            "description": description,
            "created_at": _now(),
            "pipeline_spec": spec,
            "content": content,
        }
        self.versions[version["pipeline_version_id"]] = version
        return version

    def _versions_by_id(self, pipeline_id: str) -> list[dict[str, Any]]:
        return [v for v in self.versions.values() if v["pipeline_id"] == pipeline_id]

    def _check_version_reference(self, body: dict[str, Any]) -> dict[str, Any]:
        reference = body.get("pipeline_version_reference") or {}
        version = self.versions.get(reference.get("pipeline_version_id", ""))
        if version is None or version["pipeline_id"] != reference.get("pipeline_id"):
            raise ApiError(404, f"pipeline version reference {reference} not found")
        return reference

    def _check_experiment(self, body: dict[str, Any]) -> str:
        experiment_id = body.get("experiment_id", "")
        if experiment_id not in self.experiments:
            raise ApiError(404, f"experiment {experiment_id!r} not found")
        return experiment_id

    # -- experiments -----------------------------------------------------------------------

    def create_experiment(self, body: dict[str, Any]) -> dict[str, Any]:
        name = body.get("display_name")
        if not name:
            raise ApiError(400, "experiment display_name is required")
        if self.experiment_named(name) is not None:
            raise ApiError(409, f"experiment {name!r} already exists")
        experiment = {
            "experiment_id": _new_id(),
            "display_name": name,
            "description": body.get("description") or "",
            "namespace": body.get("namespace") or "",
            "created_at": _now(),
            "storage_state": "AVAILABLE",
        }
        self.experiments[experiment["experiment_id"]] = experiment
        return experiment

    # -- runs ------------------------------------------------------------------------------

    def create_run(self, body: dict[str, Any]) -> dict[str, Any]:
        experiment_id = self._check_experiment(body)
        run = {
            "run_id": _new_id(),
            "experiment_id": experiment_id,
            "display_name": body.get("display_name", ""),
            "pipeline_version_reference": self._check_version_reference(body),
            "runtime_config": body.get("runtime_config") or {},
            "storage_state": "AVAILABLE",
            "state": "PENDING",
            "created_at": _now(),
        }
        self.runs[run["run_id"]] = run
        self._run_polls[run["run_id"]] = 0
        return run

    def add_finished_run(
        self, state: str, task_details: list[dict[str, Any]], run_id: str | None = None
    ) -> dict[str, Any]:
        """Record a run that already ended, with the task details the API shows for it.

        Args:
            state: the run's final state.
            task_details: `run_details.task_details` as the v2beta1 API answers them:
                display_name, task_id, state, error {code, message}, pod_name, child_tasks
                [{task_id or pod_name}].
            run_id: the run's id (default: a new one).
        """
        run = {
            "run_id": run_id or _new_id(),
            "display_name": "finished",
            "storage_state": "AVAILABLE",
            "state": state,
            "created_at": _now(),
            "finished_at": _now(),
            "run_details": {"task_details": task_details},
        }
        self.runs[run["run_id"]] = run
        self._run_polls[run["run_id"]] = 0
        return run

    def add_run(
        self,
        state: str,
        display_name: str,
        created_at: str,
        finished_at: str | None = None,
        pipeline_id: str | None = None,
    ) -> dict[str, Any]:
        """Record a run as `list_runs` shows it, in a given state, created at a given time.

        Args:
            state: its state (RUNNING, SUCCEEDED, FAILED...); it stays in it.
            display_name: the run's name (`<pipeline>-<time>` for the project's own runs).
            created_at, finished_at: its times, RFC 3339.
            pipeline_id: the pipeline its version reference names, if any.
        """
        run = {
            "run_id": _new_id(),
            "display_name": display_name,
            "storage_state": "AVAILABLE",
            "state": state,
            "created_at": created_at,
            "finished_at": finished_at or "1970-01-01T00:00:00Z",
        }
        if pipeline_id:
            run["pipeline_version_reference"] = {
                "pipeline_id": pipeline_id,
                "pipeline_version_id": _new_id(),
            }
        self.runs[run["run_id"]] = run
        self._run_polls[run["run_id"]] = 0
        return run

    def get_run(self, run_id: str) -> dict[str, Any]:
        run = self._get(self.runs, run_id, "run")
        self._run_polls[run_id] += 1
        if run["state"] not in _FINAL_STATES:
            over = self._run_polls[run_id] > self.polls_before_final
            run["state"] = self.run_final_state if over else "RUNNING"
            if over:
                run["finished_at"] = _now()
        return run

    def terminate_run(self, run_id: str) -> dict[str, Any]:
        """Stop a run, as KFP does when asked: a run still going ends CANCELED."""
        run = self._get(self.runs, run_id, "run")
        if run["state"] not in _FINAL_STATES:
            run["state"] = "CANCELED"
            run["finished_at"] = _now()
        self.terminated.append(run_id)
        return {}

    # -- recurring runs --------------------------------------------------------------------

    def create_recurring_run(self, body: dict[str, Any]) -> dict[str, Any]:
        experiment_id = self._check_experiment(body)
        reference = self._check_version_reference(body)
        cron = ((body.get("trigger") or {}).get("cron_schedule") or {}).get("cron")
        if not cron or len(cron.split()) != 6:
            raise ApiError(400, f"invalid cron schedule {cron!r}: 6 fields expected")
        concurrency = int(body.get("max_concurrency") or 1)
        if not 1 <= concurrency <= 10:
            raise ApiError(400, "max concurrency of the recurring run should be in [1, 10]")
        enabled = body.get("mode", "ENABLE") == "ENABLE"
        recurring_run = {
            "recurring_run_id": _new_id(),
            "display_name": body.get("display_name", ""),
            "description": body.get("description") or "",
            "experiment_id": experiment_id,
            "pipeline_version_reference": reference,
            "runtime_config": body.get("runtime_config") or {},
            "trigger": {"cron_schedule": {"cron": cron}},
            # int64 fields travel as strings in protobuf JSON.
            "max_concurrency": str(concurrency),
            "no_catchup": bool(body.get("no_catchup")),
            "namespace": "",
            "created_at": _now(),
            "updated_at": _now(),
        }
        self._set_mode(recurring_run, enabled)
        self.recurring_runs[recurring_run["recurring_run_id"]] = recurring_run
        return recurring_run

    def set_recurring_run_enabled(self, recurring_run_id: str, enabled: bool) -> dict[str, Any]:
        self._set_mode(self._get(self.recurring_runs, recurring_run_id, "recurring run"), enabled)
        return {}

    def delete_recurring_run(self, recurring_run_id: str) -> dict[str, Any]:
        self._get(self.recurring_runs, recurring_run_id, "recurring run")
        del self.recurring_runs[recurring_run_id]
        return {}

    @staticmethod
    def _set_mode(recurring_run: dict[str, Any], enabled: bool) -> None:
        recurring_run["mode"] = "ENABLE" if enabled else "DISABLE"
        recurring_run["status"] = "ENABLED" if enabled else "DISABLED"
        recurring_run["updated_at"] = _now()

    # -- shared ----------------------------------------------------------------------------

    @staticmethod
    def _get(table: dict[str, dict[str, Any]], key: str, kind: str) -> dict[str, Any]:
        if key not in table:
            raise ApiError(404, f"{kind} {key!r} not found")
        return table[key]

    def page(
        self, items: list[dict[str, Any]], query: dict[str, str], field: str
    ) -> dict[str, Any]:
        """One page of a filtered list, with a next_page_token when more remain."""
        items = [item for item in items if _matches(item, query.get("filter"))]
        start = int(query.get("page_token") or 0)
        size = min(int(query.get("page_size") or self.max_page_size), self.max_page_size)
        chosen = items[start : start + size]
        answer: dict[str, Any] = {field: [_public(item) for item in chosen]}
        answer["total_size"] = len(items)
        if start + size < len(items):
            answer["next_page_token"] = str(start + size)
        return answer


def _public(item: dict[str, Any]) -> dict[str, Any]:
    """The item as the API shows it: without the raw bytes kept for tests."""
    return {key: value for key, value in item.items() if key != "content"}


def _matches(item: dict[str, Any], raw_filter: str | None) -> bool:
    """Apply a JSON Filter proto; only EQUALS on string fields, as kfp.Client sends."""
    if not raw_filter:
        return True
    for predicate in json.loads(raw_filter).get("predicates", []):
        if predicate.get("operation") not in (1, "EQUALS"):
            raise ApiError(400, f"unsupported filter operation in {predicate}")
        value = predicate.get("stringValue", predicate.get("string_value"))
        if item.get(predicate["key"]) != value:
            return False
    return True


def _in_namespace(item: dict[str, Any], query: dict[str, str]) -> bool:
    namespace = query.get("namespace")
    return not namespace or item.get("namespace") == namespace


class _Handler(BaseHTTPRequestHandler):
    """Routes requests to the FakeKfpApiServer set as the class attribute `fake`."""

    fake: FakeKfpApiServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        # Keep pytest output clean; requests are recorded in fake.requests instead.
        pass

    def do_GET(self) -> None:  # noqa: N802
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        parts = urlsplit(self.path)
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        fake = self.fake
        with fake._lock:
            fake.requests.append((method, parts.path))
            fake.authorizations.append(self.headers.get("Authorization"))
            try:
                status, answer = 200, self._route(method, parts.path, query, body)
            except ApiError as error:
                status = error.status
                code = _RPC_CODES.get(status, 2)
                answer = {"code": code, "message": error.message, "details": []}
        payload = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _route(self, method: str, path: str, query: dict[str, str], body: bytes) -> Any:
        for route_method, pattern, action in _ROUTES:
            match = re.fullmatch(API + pattern, path)
            if match and route_method == method:
                return action(self, *match.groups(), query=query, body=body)
        raise ApiError(404, f"no fake route for {method} {path}")

    # Route actions: each takes path groups, then query and raw body.

    def healthz(self, query: dict[str, str], body: bytes) -> Any:
        return {"multi_user": False, "pipeline_store": "fake"}

    def list_pipelines(self, query: dict[str, str], body: bytes) -> Any:
        pipelines = [p for p in self.fake.pipelines.values() if _in_namespace(p, query)]
        return self.fake.page(pipelines, query, "pipelines")

    def get_pipeline(self, pipeline_id: str, query: dict[str, str], body: bytes) -> Any:
        return self.fake._get(self.fake.pipelines, pipeline_id, "pipeline")

    def upload_pipeline(self, query: dict[str, str], body: bytes) -> Any:
        return self.fake.upload_pipeline(query, self._uploaded_file(body))

    def upload_version(self, query: dict[str, str], body: bytes) -> Any:
        return _public(self.fake.upload_version(query, self._uploaded_file(body)))

    def list_versions(self, pipeline_id: str, query: dict[str, str], body: bytes) -> Any:
        self.fake._get(self.fake.pipelines, pipeline_id, "pipeline")
        return self.fake.page(self.fake._versions_by_id(pipeline_id), query, "pipeline_versions")

    def get_version(self, pipeline_id: str, version_id: str, query: dict, body: bytes) -> Any:
        version = self.fake._get(self.fake.versions, version_id, "pipeline version")
        if version["pipeline_id"] != pipeline_id:
            raise ApiError(404, f"pipeline version {version_id!r} not in {pipeline_id!r}")
        return _public(version)

    def create_experiment(self, query: dict[str, str], body: bytes) -> Any:
        return self.fake.create_experiment(json.loads(body))

    def list_experiments(self, query: dict[str, str], body: bytes) -> Any:
        experiments = [e for e in self.fake.experiments.values() if _in_namespace(e, query)]
        return self.fake.page(experiments, query, "experiments")

    def get_experiment(self, experiment_id: str, query: dict[str, str], body: bytes) -> Any:
        return self.fake._get(self.fake.experiments, experiment_id, "experiment")

    def create_run(self, query: dict[str, str], body: bytes) -> Any:
        return self.fake.create_run(json.loads(body))

    def get_run(self, run_id: str, query: dict[str, str], body: bytes) -> Any:
        return self.fake.get_run(run_id)

    def list_runs(self, query: dict[str, str], body: bytes) -> Any:
        experiment_id = query.get("experiment_id")
        runs = [
            r
            for r in self.fake.runs.values()
            if _in_namespace(r, query)
            and (not experiment_id or r["experiment_id"] == experiment_id)
        ]
        return self.fake.page(runs, query, "runs")

    def terminate_run(self, run_id: str, query: dict[str, str], body: bytes) -> Any:
        return self.fake.terminate_run(run_id)

    def create_recurring_run(self, query: dict[str, str], body: bytes) -> Any:
        return self.fake.create_recurring_run(json.loads(body))

    def list_recurring_runs(self, query: dict[str, str], body: bytes) -> Any:
        experiment_id = query.get("experiment_id")
        recurring_runs = [
            r
            for r in self.fake.recurring_runs.values()
            if not experiment_id or r["experiment_id"] == experiment_id
        ]
        # The v2beta1 proto names this one field in camelCase, so its JSON key is too.
        return self.fake.page(recurring_runs, query, "recurringRuns")

    def get_recurring_run(self, run_id: str, query: dict[str, str], body: bytes) -> Any:
        return self.fake._get(self.fake.recurring_runs, run_id, "recurring run")

    def enable_recurring_run(self, run_id: str, query: dict[str, str], body: bytes) -> Any:
        return self.fake.set_recurring_run_enabled(run_id, True)

    def disable_recurring_run(self, run_id: str, query: dict[str, str], body: bytes) -> Any:
        return self.fake.set_recurring_run_enabled(run_id, False)

    def delete_recurring_run(self, run_id: str, query: dict[str, str], body: bytes) -> Any:
        return self.fake.delete_recurring_run(run_id)

    def _uploaded_file(self, body: bytes) -> bytes:
        """The `uploadfile` part of a multipart/form-data body, as kfp_server_api sends it."""
        content_type = self.headers.get("Content-Type", "")
        message = BytesParser(policy=HTTP).parsebytes(
            b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body
        )
        if not message.is_multipart():
            raise ApiError(400, "expected a multipart/form-data upload")
        for part in message.iter_parts():
            if part.get_param("name", header="content-disposition") == "uploadfile":
                return part.get_payload(decode=True)
        raise ApiError(400, "multipart upload has no 'uploadfile' part")


_ID = "([^/:]+)"
_ROUTES = [
    ("GET", "/healthz", _Handler.healthz),
    ("GET", "/pipelines", _Handler.list_pipelines),
    ("POST", "/pipelines/upload", _Handler.upload_pipeline),
    ("POST", "/pipelines/upload_version", _Handler.upload_version),
    ("GET", f"/pipelines/{_ID}", _Handler.get_pipeline),
    ("GET", f"/pipelines/{_ID}/versions", _Handler.list_versions),
    ("GET", f"/pipelines/{_ID}/versions/{_ID}", _Handler.get_version),
    ("POST", "/experiments", _Handler.create_experiment),
    ("GET", "/experiments", _Handler.list_experiments),
    ("GET", f"/experiments/{_ID}", _Handler.get_experiment),
    ("POST", "/runs", _Handler.create_run),
    ("GET", "/runs", _Handler.list_runs),
    ("GET", f"/runs/{_ID}", _Handler.get_run),
    ("POST", f"/runs/{_ID}:terminate", _Handler.terminate_run),
    ("POST", "/recurringruns", _Handler.create_recurring_run),
    ("GET", "/recurringruns", _Handler.list_recurring_runs),
    ("GET", f"/recurringruns/{_ID}", _Handler.get_recurring_run),
    ("POST", f"/recurringruns/{_ID}:enable", _Handler.enable_recurring_run),
    ("POST", f"/recurringruns/{_ID}:disable", _Handler.disable_recurring_run),
    ("DELETE", f"/recurringruns/{_ID}", _Handler.delete_recurring_run),
]


def failed_step_details(step: str, pod: str, error: str = "") -> list[dict[str, Any]]:
    """The task details of a run whose `step` failed in `pod`, in the v2beta1 API's shape.

    The run's root DAG and the exit handler's DAG fail with the step and list it among their
    children; the exit task (notify) is still running, as it is while it reads them.

    Args:
        step: the failed task's name.
        pod: the pod it ran in.
        error: the error KFP recorded for it, if any.
    """
    return [
        {
            "task_id": "root",
            "display_name": "pipeline-x7k2p",
            "state": "FAILED",
            "child_tasks": [{"task_id": "exit-handler"}, {"task_id": "notify"}],
        },
        {
            "task_id": "exit-handler",
            "display_name": "exit-handler-1",
            "state": "FAILED",
            "child_tasks": [{"task_id": step}],
        },
        {
            "task_id": step,
            "display_name": step,
            "state": "FAILED",
            "error": {"code": 2, "message": error} if error else None,
            "child_tasks": [{"pod_name": pod}],
        },
        {"task_id": "notify", "display_name": "notify", "state": "RUNNING", "child_tasks": []},
    ]


def compile_tiny_pipeline(path: Path, greeting: str = "hello") -> Path:
    """Compile a one-step pipeline to upload, so tests need none of the project's pipelines.

    Args:
        path: where to write the YAML.
        greeting: default of the `message` parameter; change it to change the file.

    Returns:
        The path written.
    """
    from kfp import compiler, dsl

    @dsl.component(base_image="python:3.11-slim")
    def shout(message: str, repeat: int) -> str:
        return message.upper() * repeat

    @dsl.pipeline(name="tiny")
    def tiny(message: str = greeting, repeat: int = 1) -> None:
        shout(message=message, repeat=repeat)

    path.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(tiny, str(path))
    return path


def isolate_kfp_client(monkeypatch: Any, tmp_path: Path) -> None:
    """Keep the real kfp.Client hermetic: no user context file, KFP env vars or pod tokens.

    Args:
        monkeypatch: pytest's monkeypatch fixture.
        tmp_path: a scratch folder for the redirected paths.
    """
    from kfp.client import client as kfp_client_module

    from pipelines.cluster import client as kfp_client

    context = str(tmp_path / "kfp-context.json")
    monkeypatch.setattr(kfp_client_module.Client, "_LOCAL_KFP_CONTEXT", context)
    for name in ("KF_PIPELINES_TOKEN", "KF_PIPELINES_ENDPOINT", "KF_PIPELINES_UI_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    # Tests may run in a pod: its service account tokens must not leak into requests.
    monkeypatch.setattr(kfp_client, "KFP_SA_TOKEN_PATH", tmp_path / "no-kfp-token")
    monkeypatch.setattr(kfp_client, "K8S_SA_TOKEN_PATH", tmp_path / "no-k8s-token")


FakeKfpApiServer.HANDLER = _Handler  # the handler is defined after the server it routes to
