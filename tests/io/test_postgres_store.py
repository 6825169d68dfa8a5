"""MLflow on PostgreSQL, as the production overlay runs it: a real PostgreSQL, a real server.

A PostgreSQL cluster is created in a temporary folder and listens on 127.0.0.1 only; MLflow's
`mlflow server --backend-store-uri postgresql://... --workers 2` runs on top of it. Then:

- representative registry tests of test_registries.py run again, unchanged, against this server
  (this module's `mlflow_server` replaces the session's sqlite one for them);
- two trainings of one model start at the same moment in two processes, as two pipeline runs
  would: both must finish and register two distinct versions. Several workers on one sqlite
  file meet "database is locked" there, which is why production moves to PostgreSQL.

PostgreSQL comes from the distribution's `postgresql` package (.ci/run installs it). Without its
binaries the module is skipped, except in CI, where that is an error. initdb and pg_ctl refuse to
run as root: as root, the cluster belongs to the `postgres` user and they run through runuser.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import pathlib
import pwd
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator

import mlflow
import psycopg2
import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import ROOT, MlflowServer, free_port

# The registry tests that run again on PostgreSQL, with the fixtures they use. Imported, they
# belong to this module too, so they see this module's `mlflow_server`.
from tests.io.test_registries import (  # noqa: F401 - collected and used by pytest
    registry,
    server,
    test_best_run_finder_picks_the_run_by_metric_direction,
    test_client_of_the_service_talks_to_the_server,
    test_loaders_predict_the_same_values,
    test_registry_finder_lists_what_exists_instead,
    test_registry_finder_resolves_to_a_concrete_version,
    test_saver_registers_increasing_versions,
)

pytestmark = pytest.mark.integration


def postgres_binaries() -> pathlib.Path | None:
    """The folder of the newest installed initdb and pg_ctl (Debian keeps them off PATH)."""
    candidates = [pathlib.Path(path).parent for path in glob.glob("/usr/lib/postgresql/*/bin")]
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(pathlib.Path(on_path).parent)
    usable = [
        path for path in candidates if (path / "initdb").is_file() and (path / "pg_ctl").is_file()
    ]

    def major(path: pathlib.Path) -> int:
        found = re.search(r"/postgresql/(\d+)/", f"{path}/")
        return int(found[1]) if found else 0

    return max(usable, key=major, default=None)


POSTGRES_BIN = postgres_binaries()
if POSTGRES_BIN is None:
    _MISSING = "PostgreSQL's initdb and pg_ctl are not installed (apt-get install postgresql)"
    if os.environ.get("CI"):
        pytest.fail(f"{_MISSING}, and CI must run the PostgreSQL store tests")
    pytest.skip(_MISSING, allow_module_level=True)

# The training each of the two concurrent processes runs: a small model on the bike data.
# It builds the job, says it is ready, waits for the signal, then runs, timing its run.
CONCURRENT_TRAINING = """
import json, pathlib, sys, time
from components.core import models
from components.io import alerts, datasets, services
from components.jobs import training

data, tracking_uri, experiment, model_name, ready, go = sys.argv[1:]
job = training.TrainingJob(
    inputs=datasets.ParquetReader(path=data),
    target="cnt",
    model=models.HistGradientBoostingRegressorModel(params={"max_iter": 10}),
    model_name=model_name,
    exclude=["instant", "dteday", "casual", "registered"],
    categorical=["season", "weathersit"],
    mlflow_service=services.MlflowService(tracking_uri=tracking_uri, experiment_name=experiment),
    alerter=alerts.ConsoleAlerter(),
)
pathlib.Path(ready).touch()
deadline = time.monotonic() + 120
while not pathlib.Path(go).exists():
    if time.monotonic() > deadline:
        sys.exit("the test never gave the signal to start")
    time.sleep(0.01)
started = time.time()
with job:
    result = job.run()
print("RESULT " + json.dumps({
    "version": result.model_ref.version,
    "run_id": result.model_ref.run_id,
    "started": started,
    "ended": time.time(),
}))
"""


class Postgres:
    """A throwaway PostgreSQL cluster on 127.0.0.1 with a password user owning one database."""

    USER = "mlflow"
    DATABASE = "mlflow"

    def __init__(self, bin_dir: pathlib.Path):
        self.bin_dir = bin_dir
        self.port = free_port()
        self.password = secrets.token_hex(16)
        # Not under pytest's tmp_path: as root that folder is root's alone (mode 0700), and the
        # server runs as `postgres`, which must reach its data directory.
        self.home = pathlib.Path(tempfile.mkdtemp(prefix="mlflow-postgres-"))
        self.data = self.home / "data"
        self.log = self.home / "postgres.log"
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                raise RuntimeError(
                    "running as root, PostgreSQL needs the `postgres` user to own its cluster, "
                    "and there is none (the postgresql package creates it)"
                ) from None
            os.chown(self.home, owner.pw_uid, owner.pw_gid)
        # The superuser connects on the socket without a password (trust); every TCP
        # connection, MLflow's, needs one (scram-sha-256).
        self._run(
            "initdb",
            f"--pgdata={self.data}",
            "--username=postgres",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )
        # Speed over durability: a test cluster never survives a crash anyway.
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} "
            f"-c unix_socket_directories={self.home} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run("pg_ctl", f"--pgdata={self.data}", f"--log={self.log}", "--wait",
                  "--timeout=60", f"--options={options}", "start")  # fmt: skip
        with contextlib.closing(self.connect(user="postgres", dbname="postgres")) as connection:
            connection.autocommit = True  # CREATE DATABASE refuses to run in a transaction
            with connection.cursor() as cursor:
                cursor.execute(f"CREATE ROLE {self.USER} LOGIN PASSWORD %s", (self.password,))
                cursor.execute(f"CREATE DATABASE {self.DATABASE} OWNER {self.USER}")

    @property
    def uri(self) -> str:
        """The SQLAlchemy URI MLflow connects with, over TCP and with the password.

        The driver is named as in the production overlay: psycopg2, the project's dependency.
        """
        return f"postgresql+psycopg2://{self.USER}:{self.password}@127.0.0.1:{self.port}/{self.DATABASE}"

    def connect(self, user: str = USER, dbname: str = DATABASE) -> psycopg2.extensions.connection:
        """A connection: the superuser on the socket, anyone else over TCP with the password."""
        if user == "postgres":
            return psycopg2.connect(host=str(self.home), port=self.port, user=user, dbname=dbname)
        return psycopg2.connect(
            host="127.0.0.1", port=self.port, user=user, password=self.password, dbname=dbname
        )

    def query(self, sql: str, *parameters: object) -> list[tuple]:
        """Rows of a query on MLflow's database, as MLflow's user."""
        with contextlib.closing(self.connect()) as connection, connection.cursor() as cursor:
            cursor.execute(sql, parameters)
            return cursor.fetchall()

    def stop(self) -> None:
        """Stop the server (fast: roll back open transactions) and remove the cluster."""
        try:
            self._run("pg_ctl", f"--pgdata={self.data}", "--mode=fast", "--wait", "stop")
        finally:
            shutil.rmtree(self.home, ignore_errors=True)

    def _run(self, program: str, *args: str) -> None:
        command = [str(self.bin_dir / program), *args]
        # initdb and pg_ctl refuse root: run them as the cluster's owner.
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            log = self.log.read_text() if self.log.exists() else "(no server log)"
            raise RuntimeError(
                f"{' '.join(command)} exited {done.returncode}:\n{done.stdout}{done.stderr}\n"
                f"server log:\n{log}"
            )


@contextlib.contextmanager
def restored_mlflow_uris() -> Iterator[None]:
    """Give MLflow's global tracking and registry URIs back as they were.

    `mlflow.set_tracking_uri` (which the jobs and the registry fixture call) also exports
    MLFLOW_TRACKING_URI: left pointing at this module's stopped server, it would send later
    modules' MLflow calls there.
    """
    tracking = mlflow.tracking._tracking_service.utils
    registry_utils = mlflow.tracking._model_registry.utils
    saved = (tracking._tracking_uri, registry_utils._registry_uri)
    environment = {
        name: os.environ.get(name) for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
    }
    try:
        yield
    finally:
        tracking._tracking_uri, registry_utils._registry_uri = saved
        for name, value in environment.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    """A PostgreSQL cluster for this module, stopped and removed at its end."""
    database = Postgres(POSTGRES_BIN)
    yield database
    database.stop()


@pytest.fixture(scope="module")
def mlflow_server(postgres, tmp_path_factory) -> Iterator[str]:
    """`mlflow server` on PostgreSQL with two workers; replaces the session's sqlite server here."""
    with restored_mlflow_uris():
        server = MlflowServer(
            tmp_path_factory.mktemp("mlflow-on-postgres"), backend_store_uri=postgres.uri, workers=2
        )
        try:
            yield server.url
        finally:
            server.stop()


def test_the_registry_lives_in_postgresql(registry, postgres):  # noqa: F811 - the fixture
    """What the registry tests wrote is in PostgreSQL's tables, not in some local store."""
    rows = postgres.query(
        "SELECT version FROM model_versions WHERE name = %s ORDER BY version", registry["name"]
    )
    assert rows == [(1,), (2,)]
    [(alias_version,)] = postgres.query(
        "SELECT version FROM registered_model_aliases WHERE name = %s AND alias = 'Champion'",
        registry["name"],
    )
    assert alias_version == 1


def test_two_concurrent_trainings_register_two_versions(mlflow_server, postgres, bike, tmp_path):
    """Two pipeline runs training one model at the same moment: both succeed, v1 and v2."""
    data = tmp_path / "bike.parquet"
    bike.head(2000).to_parquet(data, index=False)
    model_name = f"concurrent-{uuid.uuid4().hex[:8]}"
    experiment = f"concurrent-{uuid.uuid4().hex[:8]}"
    go = tmp_path / "go"
    env = {key: value for key, value in os.environ.items() if key != "SLACK_WEBHOOK_URL"}
    processes = []
    for index in range(2):
        ready = tmp_path / f"ready-{index}"
        args = [str(data), mlflow_server, experiment, model_name, str(ready), str(go)]
        process = subprocess.Popen(
            [sys.executable, "-c", CONCURRENT_TRAINING, *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        processes.append((ready, process))
    try:
        # Both have imported everything and built their job: start them together.
        deadline = time.monotonic() + 180
        while not all(ready.exists() for ready, _ in processes):
            failed = [p for _, p in processes if p.poll() is not None]
            assert not failed, f"a training exited before starting:\n{failed[0].communicate()}"
            assert time.monotonic() < deadline, "the trainings did not get ready in 180 s"
            time.sleep(0.05)
        go.touch()
        outputs = [process.communicate(timeout=300) for _, process in processes]
    finally:
        for _, process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    results = []
    for (_, process), (stdout, stderr) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, f"a training failed:\n{stdout}\n{stderr}"
        [line] = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
        results.append(json.loads(line.removeprefix("RESULT ")))

    # They did overlap: each started before the other ended.
    assert max(r["started"] for r in results) < min(r["ended"] for r in results), results
    assert sorted(r["version"] for r in results) == [1, 2], "two distinct versions, no gap"
    client = MlflowClient(tracking_uri=mlflow_server, registry_uri=mlflow_server)
    run_ids = {r["run_id"] for r in results}
    assert len(run_ids) == 2
    for run_id in run_ids:
        run = client.get_run(run_id)
        assert run.info.status == "FINISHED", run.info
        assert run.data.tags["job.kind"] == "TrainingJob"
    versions = client.search_model_versions(f"name = '{model_name}'")
    assert {(int(v.version), v.run_id) for v in versions} == {
        (r["version"], r["run_id"]) for r in results
    }
    assert all(v.status == "READY" for v in versions)
    rows = postgres.query("SELECT version FROM model_versions WHERE name = %s", model_name)
    assert sorted(rows) == [(1,), (2,)]
