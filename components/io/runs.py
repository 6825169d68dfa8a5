"""Runs: which tasks of a pipeline run failed and why, as the orchestrator saw them.

A step that dies before it can record its outcome in MLflow (killed, out of memory, MLflow
unreachable, a crash outside its job) leaves the exit step's alert nothing but KFP's "Task
exit-handler-1 failed.". These readers find the failed tasks and their cause where the
orchestrator keeps them: kfp.local's run folder (each step's outputs and log file), or on a
cluster the KFP API's task details and the Kubernetes API's pod status and log.
"""

from __future__ import annotations

import abc
import dataclasses
import logging
import os
import pathlib
import re
import typing as T

import pydantic as pdt

from components.io import services
from components.utils import secrets

logger = logging.getLogger(__name__)

# kfp.local names the pipeline job of an exit task's final status `local-pipeline-<task>`.
LOCAL_PIPELINE_PREFIX = "local-pipeline-"
# What KFP's executor writes in a task's folder when the task succeeded, and only then.
EXECUTOR_OUTPUT = "executor_output.json"
KILLED = "killed (no output, no log)"
KFP_HOST_VARIABLE = "KFP_API_HOST"
DEFAULT_KFP_HOST = "http://ml-pipeline.kubeflow.svc.cluster.local:8888"
# KFP's audience-bound token (multi-user KFP), when the pod mounts it.
KFP_TOKEN_PATH = "/var/run/secrets/kubeflow/pipelines/token"
# The pod's service account: token, namespace, CA certificate.
SERVICE_ACCOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
# The longest cause an alert shows for one step; the log keeps the rest.
CAUSE_CHARS = 800
# How much of a log file's end is read: the cause is in its last lines.
TAIL_BYTES = 64 * 1024

# A log line in the jobs' format (`LoggerService`) or in KFP's executor format, which is the
# format in a pod's log: `2024-05-01 10:00:00,123 ERROR name: message` or
# `[KFP Executor 2024-05-01 10:00:00,123 ERROR]: message`.
_RECORD = re.compile(
    r"^(?:\[KFP Executor )?\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (?P<level>[A-Z]+)\]?"
    r"(?: [\w.]+)?: (?P<message>.*)$"
)


@dataclasses.dataclass(frozen=True)
class TaskFailure:
    """A failed task of the pipeline run.

    Attributes:
        task: the task's name in the pipeline (train, predict...).
        cause: why it failed, for a human: the error it logged, how it ended, its last log lines.
    """

    task: str
    cause: str


class TaskReader(abc.ABC, pdt.BaseModel, strict=True, frozen=True, extra="forbid"):
    """Read which tasks of the pipeline run failed, and why.

    Implementations never raise: a source that cannot be read is logged as a warning, and the
    alert goes out with what MLflow and KFP's final status say.
    """

    KIND: str

    @abc.abstractmethod
    def failures(self) -> list[TaskFailure]:
        """The failed tasks, in the order they ran when known; [] when none or unreadable."""


class NoTaskReader(TaskReader, frozen=True):
    """Read nothing: outside a pipeline, or where no orchestrator state can be reached."""

    KIND: T.Literal["NoTaskReader"] = "NoTaskReader"

    def failures(self) -> list[TaskFailure]:
        """No failures known."""
        return []


# The folder of one iteration of a ParallelFor in a kfp.local run.
_ITERATION = re.compile(r"for-loop-\d{1,6}-iteration-(\d{1,9})")


class LocalTaskReader(TaskReader, frozen=True):
    """The failed tasks of a kfp.local run, from its folder `<pipeline_root>/<run>/<task>/`.

    kfp.local keeps no state but these folders: a task that succeeded wrote its executor output
    there; one that failed did not, and left at most its outputs and its log (see
    `LoggerService.file`). A task that failed before it made its folder cannot be seen.

    Args:
        run_folder: the run's folder.
        own_task: the folder of the task reading (the exit step), never reported.
        log_name: the steps' log file name (default: $LIFECYCLE_STEP_LOG, else step.log).
    """

    KIND: T.Literal["LocalTaskReader"] = "LocalTaskReader"
    run_folder: str
    own_task: str = ""
    log_name: str = pdt.Field(
        default_factory=lambda: os.environ.get(services.STEP_LOG_VARIABLE) or services.STEP_LOG
    )

    def failures(self) -> list[TaskFailure]:
        """Each task folder without an executor output, with the cause its log tells."""
        try:
            folders = self._task_folders(pathlib.Path(self.run_folder), "")
            folders.sort(key=lambda named: named[1].stat().st_mtime)
        except OSError as error:
            logger.warning("cannot read the run's tasks in %s: %s", self.run_folder, error)
            return []
        return [
            TaskFailure(name, self._cause(folder))
            for name, folder in folders
            if not (folder / EXECUTOR_OUTPUT).exists()
        ]

    def _task_folders(self, parent: pathlib.Path, suffix: str) -> list[tuple[str, pathlib.Path]]:
        """The task folders under a run's (or a loop iteration's) folder, with the task names.

        kfp.local puts the tasks of each `ParallelFor` iteration in a folder of their own,
        `for-loop-<n>-iteration-<i>/<task>/`: such a task is named `<task>-<i>`, as the steps
        of a sharded prediction name themselves (`predict-shard-2`).
        """
        found = []
        for folder in parent.iterdir():
            if not folder.is_dir() or (not suffix and folder.name == self.own_task):
                continue
            iteration = _ITERATION.fullmatch(folder.name)
            if iteration:
                found += self._task_folders(folder, f"{suffix}-{iteration[1]}")
            else:
                found.append((folder.name + suffix, folder))
        return found

    def _cause(self, folder: pathlib.Path) -> str:
        text = read_tail(folder / pathlib.Path(self.log_name).name)
        error = error_in_log(text)
        if error:
            return error
        if not text.strip():
            return KILLED
        # No error logged and no output written: the process was stopped from outside.
        return f"killed (no output, no error logged); {last_lines(text)}"


class ClusterTaskReader(TaskReader, frozen=True):
    """The failed tasks of a run on a cluster: KFP's task details, then each pod's status and log.

    The KFP API gives the run's tasks, their state and error, and their pods; the Kubernetes API
    gives each pod's container termination (OOMKilled, Error, exit code, memory limit) and the
    last lines of its log. The run's service account needs `get` on `pods` and `pods/log` in its
    namespace; without them, or without either API, the reader says less, never fails.

    Args:
        run_id: the KFP run id.
        kfp_host: the KFP API (default: $KFP_API_HOST, else the in-cluster ml-pipeline service).
        namespace: the run's namespace (default: $POD_NAMESPACE, else the service account's).
        kubernetes_host: the Kubernetes API; empty for the in-cluster configuration.
        service_account_path: the folder of the pod's service account token and namespace.
        kfp_token_path: KFP's audience-bound token, used for the KFP API when present.
        container: the container that runs the step in a KFP pod.
        tail_lines: how many lines of a pod's log to read.
        timeout_s: the limit of each API call, so that the alert goes out in bounded time.
    """

    KIND: T.Literal["ClusterTaskReader"] = "ClusterTaskReader"
    run_id: str
    kfp_host: str = pdt.Field(
        default_factory=lambda: os.environ.get(KFP_HOST_VARIABLE) or DEFAULT_KFP_HOST
    )
    namespace: str = pdt.Field(default_factory=lambda: pod_namespace(SERVICE_ACCOUNT_PATH))
    kubernetes_host: str = ""
    service_account_path: str = SERVICE_ACCOUNT_PATH
    kfp_token_path: str = KFP_TOKEN_PATH
    container: str = "main"
    tail_lines: int = pdt.Field(default=20, gt=0)
    timeout_s: float = pdt.Field(default=10.0, gt=0)

    def failures(self) -> list[TaskFailure]:
        """Each failed task that holds no other failed task, with its pod's cause."""
        try:
            tasks = self._task_details()
        except Exception as error:  # the alert matters more than its details
            where = secrets.redact(self.kfp_host)
            logger.warning("cannot read the run's tasks from KFP at %s: %s", where, _short(error))
            return []
        pods = self._pods_api()
        return [
            TaskFailure(task.display_name or task.task_id or "?", self._cause(task, pods))
            for task in innermost_failed(tasks)
        ]

    def _task_details(self) -> list[T.Any]:
        """The run's task details, as the KFP API's own client reads them."""
        import kfp_server_api

        configuration = kfp_server_api.Configuration(host=self.kfp_host)
        token = _read(self.kfp_token_path) or _read(f"{self.service_account_path}/token")
        if token:
            configuration.api_key["authorization"] = token
            configuration.api_key_prefix["authorization"] = "Bearer"
        with kfp_server_api.ApiClient(configuration) as client:
            run = kfp_server_api.RunServiceApi(client).run_service_get_run(
                run_id=self.run_id, _request_timeout=self.timeout_s
            )
        return list((run.run_details and run.run_details.task_details) or [])

    def _pods_api(self) -> T.Any:
        """A Kubernetes core API client, or None when it cannot be configured."""
        from kubernetes import client, config

        configuration = client.Configuration()
        try:
            if self.kubernetes_host:
                configuration.host = self.kubernetes_host
                token = _read(f"{self.service_account_path}/token")
                if token:
                    configuration.api_key = {"authorization": f"Bearer {token}"}
            else:
                config.load_incluster_config(client_configuration=configuration)
        except Exception as error:
            logger.warning("cannot reach the Kubernetes API: %s", _short(error))
            return None
        return client.CoreV1Api(client.ApiClient(configuration))

    def _cause(self, task: T.Any, pods: T.Any) -> str:
        """What the task's pods say, else the error KFP recorded."""
        recorded = getattr(task.error, "message", "") if task.error else ""
        for name in pod_names(task):
            described = self._describe_pod(pods, name) if pods is not None else ""
            if described:
                return described
        if recorded:
            return secrets.clip(recorded, CAUSE_CHARS)
        return "failed; neither KFP nor its pod said why"

    def _describe_pod(self, pods: T.Any, name: str) -> str:
        """`OOMKilled (exit code 137, memory limit 1Gi); last log lines: ...`, or "" if unknown."""
        try:
            pod = pods.read_namespaced_pod(name, self.namespace, _request_timeout=self.timeout_s)
        except Exception as error:  # a pod gone with its node, or no right to read it
            logger.warning("cannot read pod %s in %s: %s", name, self.namespace, _short(error))
            return ""
        ending = self._ending(pod)
        try:
            log = pods.read_namespaced_pod_log(
                name,
                self.namespace,
                container=self.container,
                tail_lines=self.tail_lines,
                _request_timeout=self.timeout_s,
            )
        except Exception as error:
            logger.warning("cannot read the log of pod %s: %s", name, _short(error))
            log = ""
        told = error_in_log(log) or (last_lines(log) if log.strip() else "")
        return secrets.clip("; ".join(part for part in (ending, told) if part), CAUSE_CHARS)

    def _ending(self, pod: T.Any) -> str:
        """How the step's container ended, e.g. `OOMKilled (exit code 137, memory limit 1Gi)`."""
        status = pod.status
        containers = list(getattr(status, "container_statuses", None) or [])
        ours = [c for c in containers if c.name == self.container] or containers
        for container in ours:
            state = container.state.terminated if container.state else None
            if state is None and container.last_state:
                state = container.last_state.terminated
            if state is None or (state.exit_code == 0 and state.reason != "OOMKilled"):
                continue
            facts = [f"exit code {state.exit_code}"]
            limit = _memory_limit(pod, container.name)
            if state.reason == "OOMKilled" and limit:
                facts.append(f"memory limit {limit}")
            text = f"{state.reason or 'terminated'} ({', '.join(facts)})"
            return f"{text}: {state.message}" if state.message else text
        if getattr(status, "reason", None):  # evicted, or lost with its node
            return f"{status.reason}: {status.message}" if status.message else status.reason
        return ""


TaskReaderKind = NoTaskReader | LocalTaskReader | ClusterTaskReader


def default_reader(pipeline_job: str = "", run_id: str = "") -> TaskReaderKind:
    """The reader for where the exit step runs: kfp.local's run folder, the cluster, or none.

    Args:
        pipeline_job: the pipeline job of the exit task's final status (`local-pipeline-...`
            under kfp.local).
        run_id: the KFP run id.
    """
    folder = services.kfp_task_folder()
    if pipeline_job.startswith(LOCAL_PIPELINE_PREFIX) and folder is not None:
        return LocalTaskReader(run_folder=str(folder.parent), own_task=folder.name)
    if os.environ.get("KUBERNETES_SERVICE_HOST") and run_id:
        return ClusterTaskReader(run_id=run_id)
    return NoTaskReader()


def pod_namespace(service_account_path: str = SERVICE_ACCOUNT_PATH) -> str:
    """This pod's namespace: $POD_NAMESPACE, else its service account's, else ""."""
    return os.environ.get("POD_NAMESPACE") or _read(f"{service_account_path}/namespace")


def innermost_failed(tasks: T.Sequence[T.Any]) -> list[T.Any]:
    """The failed tasks that contain no other failed task: the steps, not their DAGs.

    A step that fails fails its DAG (`exit-handler-1`) and the run's root too; these list it
    among their children, by task id or pod name.
    """
    failed = [task for task in tasks if str(task.state) == "FAILED"]
    names = {name for task in failed for name in (task.task_id, task.pod_name) if name}
    return [
        task
        for task in failed
        if not any(
            name in names for child in task.child_tasks or [] for name in _child_names(child)
        )
    ]


def pod_names(task: T.Any) -> list[str]:
    """The pods a task ran in: its own, then its children's."""
    found = [task.pod_name] if task.pod_name else []
    found += [child.pod_name for child in task.child_tasks or [] if child.pod_name]
    return list(dict.fromkeys(found))


def read_tail(path: pathlib.Path, limit: int = TAIL_BYTES) -> str:
    """The end of a text file, "" when it is missing or unreadable."""
    try:
        with open(path, "rb") as file:
            file.seek(0, os.SEEK_END)
            file.seek(max(0, file.tell() - limit))
            return file.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def error_in_log(text: str) -> str:
    """The first error a log tells, redacted and clipped; "" when none.

    That is its first ERROR record (a job's `[FAILED] ...` line), else the exception line that
    ends its last traceback.
    """
    lines = text.splitlines()
    for index, line in enumerate(lines):
        record = _RECORD.match(line)
        if record and record["level"] in ("ERROR", "CRITICAL"):
            rest = continued(lines, index)
            message = " ".join([record["message"].removeprefix("[FAILED] "), *rest]).strip()
            return secrets.clip(message, CAUSE_CHARS)
    tracebacks = [i for i, line in enumerate(lines) if line.startswith("Traceback")]
    if tracebacks:
        after = lines[tracebacks[-1] + 1 :]
        exception = next((line for line in after if line and not line[0].isspace()), "")
        return secrets.clip(exception.strip(), CAUSE_CHARS)
    return ""


def continued(lines: list[str], index: int) -> list[str]:
    """The lines that go on the log record at `index`, stripped.

    A message of many lines (an input validation's broken rules, one per line) goes on until
    the next record or traceback.
    """
    rest = []
    for more in lines[index + 1 :]:
        if _RECORD.match(more) or more.startswith("Traceback"):
            break
        if more.strip():
            rest.append(more.strip())
    return rest


def last_lines(text: str, count: int = 3) -> str:
    """`last log lines: a | b | c`, redacted and clipped."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    messages = []
    for line in lines[-count:]:
        record = _RECORD.match(line)
        messages.append(record["message"] if record else line)
    return secrets.clip("last log lines: " + " | ".join(messages), CAUSE_CHARS)


def _child_names(child: T.Any) -> list[str]:
    return [name for name in (child.task_id, child.pod_name) if name]


def _memory_limit(pod: T.Any, container: str) -> str:
    for spec in getattr(pod.spec, "containers", None) or []:
        if spec.name == container and spec.resources and spec.resources.limits:
            return spec.resources.limits.get("memory", "")
    return ""


def _read(path: str) -> str:
    """A small file's stripped text (a token, a namespace), "" when absent."""
    try:
        return pathlib.Path(path).read_text().strip()
    except OSError:
        return ""


def _short(error: BaseException) -> str:
    """An API error in one clipped, redacted line (an HTTP answer can be a whole page)."""
    text = " ".join(f"{type(error).__name__}: {error}".split())
    return secrets.clip(text, 300)
