"""Which tasks of a pipeline run failed and why: kfp.local's run folder, a cluster's APIs.

The local reader reads real folders and step logs written by the real LoggerService. The cluster
reader talks over real HTTP to two fakes, because no KFP API server nor Kubernetes API server
can run here: tests/pipelines/kfp_api_server.py answers the run and its task details as the
KFP v2beta1 API does, and tests/io/kubernetes_api_server.py answers pods and pod logs as the
Kubernetes API does.
"""

from __future__ import annotations

import logging
import pathlib
import sys
import time

import pytest

from components.io import runs, services
from tests.conftest import free_port
from tests.io.kubernetes_api_server import terminated_pod
from tests.pipelines.kfp_api_server import failed_step_details

SECRET = "s3cret-pa55"
TOKEN = "service-account-token-0123456789"
NAMESPACE = "ml-lifecycle"
POD = "training-x7k2p-system-container-impl-2718281828"
STEP_LOG = [
    "2024-05-01 10:00:00,001 INFO components.jobs.base: [START] TrainingJob",
    f"2024-05-01 10:00:01,002 INFO components.jobs.base: MLflow run 1 at http://alice:{SECRET}@mlflow",
    "2024-05-01 10:00:02,003 INFO components.jobs.training: fitting 17,379 rows",
]


def write_task(run: pathlib.Path, task: str, log: list[str] | None, succeeded: bool = False):
    folder = run / task
    folder.mkdir(parents=True)
    if log is not None:
        (folder / "step.log").write_text("\n".join(log) + "\n")
    if succeeded:
        (folder / runs.EXECUTOR_OUTPUT).write_text("{}")
    return folder


# kfp.local: the run folder


def test_local_reader_reports_failed_tasks_with_the_error_they_logged(tmp_path):
    error = (
        "2024-05-01 10:00:03,004 ERROR components.jobs.base: [FAILED] EvaluationJob: cannot use "
        f"MLflow at http://alice:{SECRET}@mlflow:5000 in step evaluate: ConnectionError: refused"
    )
    write_task(tmp_path, "train", STEP_LOG, succeeded=True)
    write_task(tmp_path, "evaluate", [*STEP_LOG, error, "Traceback (most recent call last):"])
    write_task(tmp_path, "notify", ["2024-05-01 10:00:04,000 ERROR x: not a step"])
    failures = runs.LocalTaskReader(run_folder=str(tmp_path), own_task="notify").failures()
    assert failures == [
        runs.TaskFailure(
            "evaluate",
            "EvaluationJob: cannot use MLflow at http://alice:***@mlflow:5000 in step evaluate: "
            "ConnectionError: refused",
        )
    ]


def test_local_reader_says_a_task_without_output_nor_error_was_killed(tmp_path):
    write_task(tmp_path, "train", STEP_LOG)
    write_task(tmp_path, "evaluate", None)
    failures = runs.LocalTaskReader(run_folder=str(tmp_path), log_name="step.log").failures()
    assert [failure.task for failure in failures] == ["train", "evaluate"]
    train, evaluate = (failure.cause for failure in failures)
    assert train == (
        "killed (no output, no error logged); last log lines: [START] TrainingJob | "
        "MLflow run 1 at http://alice:***@mlflow | fitting 17,379 rows"
    )
    assert evaluate == "killed (no output, no log)"


def test_local_reader_takes_the_exception_line_of_a_traceback_redacted_and_clipped(tmp_path):
    long = "x" * 5000
    log = [
        *STEP_LOG,
        "Traceback (most recent call last):",
        '  File "component.py", line 3, in train',
        f"    raise ValueError('http://alice:{SECRET}@mlflow {long}')",
        f"ValueError: http://alice:{SECRET}@mlflow {long}",
    ]
    write_task(tmp_path, "train", log)
    [failure] = runs.LocalTaskReader(run_folder=str(tmp_path)).failures()
    assert failure.cause.startswith("ValueError: http://alice:***@mlflow xxx")
    assert SECRET not in failure.cause
    assert len(failure.cause) < runs.CAUSE_CHARS + 40


def test_local_reader_without_its_folder_reports_nothing_and_warns(tmp_path, caplog):
    reader = runs.LocalTaskReader(run_folder=str(tmp_path / "gone"))
    with caplog.at_level(logging.WARNING):
        assert reader.failures() == []
    assert f"cannot read the run's tasks in {tmp_path / 'gone'}" in caplog.text


# The step log that the local reader reads: LoggerService's file


@pytest.fixture
def root_logging():
    """Log INFO records, and leave no step log handler or excepthook behind."""
    root = logging.getLogger()
    level, hook = root.level, sys.excepthook
    root.setLevel(logging.INFO)
    yield
    for handler in [h for h in root.handlers if isinstance(h, services.StepLogHandler)]:
        root.removeHandler(handler)
        handler.close()
    root.setLevel(level)
    sys.excepthook = hook


def step_handlers() -> list[services.StepLogHandler]:
    return [h for h in logging.getLogger().handlers if isinstance(h, services.StepLogHandler)]


def test_logger_service_writes_the_log_to_its_file_without_credentials(tmp_path, root_logging):
    log = tmp_path / "train" / "step.log"
    services.LoggerService(file=str(log)).start()
    logging.getLogger("components.jobs.base").info("MLflow at http://alice:%s@mlflow", SECRET)
    logging.getLogger("components.jobs.base").error("[FAILED] TrainingJob: out of cheese")
    text = log.read_text()
    assert "INFO components.jobs.base: MLflow at http://alice:***@mlflow" in text
    assert SECRET not in text
    assert runs.error_in_log(text) == "TrainingJob: out of cheese"


def test_logger_service_keeps_one_file_per_process(tmp_path, root_logging, monkeypatch):
    first, second = tmp_path / "first.log", tmp_path / "second.log"
    services.LoggerService(file=str(first)).start()
    services.LoggerService(file=str(first)).start()
    assert len(step_handlers()) == 1
    services.LoggerService(file=str(second)).start()
    logging.getLogger("test").info("to the second file")
    assert [h.baseFilename for h in step_handlers()] == [str(second)]
    assert "to the second file" not in first.read_text()
    assert "to the second file" in second.read_text()
    # No file asked for (and none from the environment): none written.
    monkeypatch.delenv(services.STEP_LOG_VARIABLE, raising=False)
    services.LoggerService().start()
    assert step_handlers() == []


def test_a_relative_step_log_is_only_written_inside_a_kfp_task(tmp_path, root_logging, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(services.STEP_LOG_VARIABLE, "step.log")
    assert services.kfp_task_folder() is None
    assert services.LoggerService().log_file() is None
    services.LoggerService().start()
    assert step_handlers() == []
    assert list(tmp_path.iterdir()) == []


def test_an_uncaught_exception_reaches_the_step_log_redacted(tmp_path, root_logging, capsys):
    log = tmp_path / "step.log"
    services.LoggerService(file=str(log)).start()
    try:
        raise KeyError(f"http://alice:{SECRET}@mlflow")
    except KeyError as error:
        sys.excepthook(type(error), error, error.__traceback__)
    assert "Traceback" in capsys.readouterr().err  # Python's own report still comes
    assert runs.error_in_log(log.read_text()) == "KeyError: 'http://alice:***@mlflow'"


# A cluster: the KFP API, then the Kubernetes API


def task_details(pod: str = POD, error: str = "") -> list[dict]:
    """A run whose `train` step failed in `pod`."""
    return failed_step_details("train", pod, error)


@pytest.fixture
def service_account(tmp_path) -> pathlib.Path:
    folder = tmp_path / "serviceaccount"
    folder.mkdir()
    (folder / "token").write_text(TOKEN + "\n")
    (folder / "namespace").write_text(NAMESPACE)
    return folder


def reader(run_id: str, kfp: str, kubernetes: str, account: pathlib.Path, **fields):
    return runs.ClusterTaskReader(
        run_id=run_id,
        kfp_host=kfp,
        kubernetes_host=kubernetes,
        service_account_path=str(account),
        kfp_token_path=str(account / "no-kfp-token"),
        namespace=NAMESPACE,
        **fields,
    )


OOM_LOG = "".join(
    f"[KFP Executor 2024-05-01 10:00:{second:02d},000 INFO]: scored batch {second}\n"
    for second in range(30)
)


def test_an_oom_killed_step_is_named_with_its_limit_and_last_log_lines(
    kfp_api, kubernetes_api, service_account
):
    run = kfp_api.add_finished_run("FAILED", task_details())
    kubernetes_api.add_pod(terminated_pod(POD, "OOMKilled", 137, "2Gi"), OOM_LOG)
    failures = reader(run["run_id"], kfp_api.url, kubernetes_api.url, service_account).failures()
    assert failures == [
        runs.TaskFailure(
            "train",
            "OOMKilled (exit code 137, memory limit 2Gi); "
            "last log lines: scored batch 27 | scored batch 28 | scored batch 29",
        )
    ]
    # The pod's own log, its last lines only, each API with the service account's token.
    assert (
        f"/api/v1/namespaces/{NAMESPACE}/pods/{POD}/log",
        {"container": "main", "tailLines": "20"},
    ) in kubernetes_api.requests
    assert set(kubernetes_api.authorizations) == {f"Bearer {TOKEN}"}
    assert kfp_api.authorizations == [f"Bearer {TOKEN}"]


def test_a_failed_step_is_named_with_the_error_its_log_tells(
    kfp_api, kubernetes_api, service_account
):
    log = (
        "[KFP Executor 2024-05-01 10:00:00,000 INFO]: [START] TrainingJob\n"
        "[KFP Executor 2024-05-01 10:00:01,000 ERROR]: [FAILED] TrainingJob: cannot use MLflow "
        f"at http://alice:{SECRET}@mlflow:5000 in step train: ConnectionError: refused\n"
        "Traceback (most recent call last):\n"
        "components.io.services.MlflowUnavailableError: cannot use MLflow at ...\n"
    )
    run = kfp_api.add_finished_run("FAILED", task_details())
    kubernetes_api.add_pod(terminated_pod(POD, "Error", 1), log)
    [failure] = reader(run["run_id"], kfp_api.url, kubernetes_api.url, service_account).failures()
    assert failure.cause == (
        "Error (exit code 1); TrainingJob: cannot use MLflow at http://alice:***@mlflow:5000 "
        "in step train: ConnectionError: refused"
    )


def test_a_step_whose_pod_is_gone_is_named_with_the_error_kfp_kept(
    kfp_api, kubernetes_api, service_account, caplog
):
    error = f"failed to pull http://bob:{SECRET}@registry/lifecycle:1"
    run = kfp_api.add_finished_run("FAILED", task_details(error=error))
    with caplog.at_level(logging.WARNING):
        failures = reader(
            run["run_id"], kfp_api.url, kubernetes_api.url, service_account
        ).failures()
    assert failures == [
        runs.TaskFailure("train", "failed to pull http://bob:***@registry/lifecycle:1")
    ]
    assert f"cannot read pod {POD} in {NAMESPACE}: ApiException: (404)" in caplog.text


def test_without_rights_on_pod_logs_the_pod_status_still_tells(
    kfp_api, kubernetes_api, service_account, caplog
):
    run = kfp_api.add_finished_run("FAILED", task_details())
    kubernetes_api.add_pod(terminated_pod(POD, "OOMKilled", 137), OOM_LOG)
    kubernetes_api.forbidden.add("log")
    with caplog.at_level(logging.WARNING):
        [failure] = reader(
            run["run_id"], kfp_api.url, kubernetes_api.url, service_account
        ).failures()
    assert failure.cause == "OOMKilled (exit code 137, memory limit 1Gi)"
    assert f"cannot read the log of pod {POD}: ApiException: (403)" in caplog.text


def test_an_unreachable_kfp_api_gives_no_failures_and_a_warning_in_bounded_time(
    kubernetes_api, service_account, caplog
):
    down = f"http://alice:{SECRET}@127.0.0.1:{free_port()}"
    started = time.monotonic()
    with caplog.at_level(logging.WARNING):
        failures = reader("run-1", down, kubernetes_api.url, service_account).failures()
    assert failures == []
    assert time.monotonic() - started < 30
    assert "cannot read the run's tasks from KFP at http://alice:***@127.0.0.1:" in caplog.text
    assert SECRET not in caplog.text
    assert kubernetes_api.requests == []


def test_an_unreachable_kubernetes_api_leaves_kfps_error(kfp_api, service_account, caplog):
    run = kfp_api.add_finished_run("FAILED", task_details(error="pod deleted"))
    down = f"http://127.0.0.1:{free_port()}"
    with caplog.at_level(logging.WARNING):
        failures = reader(
            run["run_id"], kfp_api.url, down, service_account, timeout_s=2.0
        ).failures()
    assert failures == [runs.TaskFailure("train", "pod deleted")]
    assert f"cannot read pod {POD} in {NAMESPACE}" in caplog.text


def test_the_namespace_and_hosts_come_from_the_pod(monkeypatch, service_account):
    monkeypatch.delenv("POD_NAMESPACE", raising=False)
    assert runs.pod_namespace(str(service_account)) == NAMESPACE
    monkeypatch.setenv("POD_NAMESPACE", "team-a")
    assert runs.pod_namespace(str(service_account)) == "team-a"
    monkeypatch.delenv(runs.KFP_HOST_VARIABLE, raising=False)
    assert runs.ClusterTaskReader(run_id="r").kfp_host == runs.DEFAULT_KFP_HOST
    monkeypatch.setenv(runs.KFP_HOST_VARIABLE, "http://kfp:8888")
    assert runs.ClusterTaskReader(run_id="r").kfp_host == "http://kfp:8888"


def test_the_default_reader_follows_where_the_exit_step_runs(monkeypatch):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    # Outside a KFP task (here), even a local pipeline job name gives no run folder to read.
    assert isinstance(runs.default_reader("local-pipeline-exit-handler-1", "1"), runs.NoTaskReader)
    assert isinstance(runs.default_reader("training-x7k2p", "run-1"), runs.NoTaskReader)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    cluster = runs.default_reader("training-x7k2p", "run-1")
    assert isinstance(cluster, runs.ClusterTaskReader) and cluster.run_id == "run-1"
    assert isinstance(runs.default_reader("training-x7k2p", ""), runs.NoTaskReader)


# kfp.local: the tasks of a ParallelFor's iterations


SHARD_ERROR = (
    "2024-05-01 10:00:03,004 ERROR components.jobs.base: [FAILED] InferenceJob: cannot read "
    "ParquetReader input s3://bucket/rows (file bucket/rows/part-3.parquet): corrupt footer"
)


def test_local_reader_names_a_failed_loop_task_after_its_iteration(tmp_path):
    write_task(tmp_path, "plan-shards", STEP_LOG, succeeded=True)
    write_task(tmp_path / "for-loop-5-iteration-0", "predict-shard", STEP_LOG, succeeded=True)
    write_task(tmp_path / "for-loop-5-iteration-1", "predict-shard", [*STEP_LOG, SHARD_ERROR])
    write_task(tmp_path, "notify", None)
    failures = runs.LocalTaskReader(run_folder=str(tmp_path), own_task="notify").failures()
    assert failures == [
        runs.TaskFailure(
            "predict-shard-1",
            "InferenceJob: cannot read ParquetReader input s3://bucket/rows "
            "(file bucket/rows/part-3.parquet): corrupt footer",
        )
    ]


def test_local_reader_never_reports_a_loop_iteration_folder_as_a_task(tmp_path):
    # An iteration whose task never made its folder, and one whose task was killed.
    (tmp_path / "for-loop-2-iteration-0").mkdir()
    write_task(tmp_path / "for-loop-2-iteration-1", "predict-shard", None)
    write_task(tmp_path / "for-loop-2-iteration-12", "predict-shard", STEP_LOG, succeeded=True)
    failures = runs.LocalTaskReader(run_folder=str(tmp_path)).failures()
    assert failures == [runs.TaskFailure("predict-shard-1", runs.KILLED)]


def test_local_reader_names_tasks_of_nested_loops_after_each_iteration(tmp_path):
    inner = tmp_path / "for-loop-2-iteration-3" / "for-loop-4-iteration-0"
    write_task(inner, "predict-shard", [*STEP_LOG, SHARD_ERROR])
    write_task(tmp_path / "for-loop-2-iteration-3", "plan-shards", STEP_LOG, succeeded=True)
    # A task folder that only looks like an iteration is a task of its own.
    write_task(tmp_path, "for-loop-2-iteration-x", None)
    failures = runs.LocalTaskReader(run_folder=str(tmp_path)).failures()
    assert sorted(failure.task for failure in failures) == [
        "for-loop-2-iteration-x",
        "predict-shard-3-0",
    ]
