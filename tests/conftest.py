"""Shared fixtures: a real MLflow tracking server on 127.0.0.1 and the bundled demo data."""

from __future__ import annotations

import os
import pathlib
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pandas as pd
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
BIKE_PARQUET = ROOT / "components" / "demo" / "bike-sharing" / "hour.parquet"
BIKE_SCHEMA = ROOT / "components" / "demo" / "bike-sharing" / "schema.yaml"

# MLflow's telemetry thread sets and unsets a variable in os.environ while requests iterate over
# it (a KeyError '_MLFLOW_TELEMETRY_SESSION_ID' now and then), and it would call the internet.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
# One OpenMP thread: on a small shared machine, sklearn's gradient boosting threads wait for one
# another at every barrier and a 0.2 s fit can take a minute. Set before sklearn is imported.
os.environ.setdefault("OMP_NUM_THREADS", "1")


def free_port() -> int:
    """A TCP port that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MlflowServer:
    """A real `mlflow server` process (served artifacts) on 127.0.0.1.

    Args:
        store: folder of the artifacts and the server's log (and of the sqlite database).
        backend_store_uri: the backend store (default: a sqlite file in `store`).
        workers: server processes; sqlite takes one writer, a database server takes more.
    """

    def __init__(self, store: pathlib.Path, backend_store_uri: str | None = None, workers: int = 1):
        port = free_port()
        mlflow = shutil.which("mlflow", path=os.path.dirname(sys.executable)) or "mlflow"
        command = [
            mlflow, "server",
            "--host", "127.0.0.1",
            "--port", str(port),
            "--backend-store-uri", backend_store_uri or f"sqlite:///{store / 'mlflow.db'}",
            "--artifacts-destination", str(store / "artifacts"),
            "--serve-artifacts",
            "--workers", str(workers),
        ]  # fmt: skip
        self.store, self.url = store, f"http://127.0.0.1:{port}"
        self.log = open(store / "server.log", "wb")  # noqa: SIM115 - closed by stop()
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                log_text = (store / "server.log").read_text()
                raise RuntimeError(f"mlflow server did not start:\n{log_text}")
            time.sleep(0.5)

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL)."""
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory) -> str:
    """Start `mlflow server` (sqlite backend, served artifacts) and yield its URL."""
    server = MlflowServer(tmp_path_factory.mktemp("mlflow-server"))
    yield server.url
    server.stop()


@pytest.fixture
def tracking(mlflow_server, monkeypatch) -> str:
    """Point jobs (and MLflow's own client) at the session's server."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    monkeypatch.delenv("SLACK_WEBHOOK_URL", raising=False)
    return mlflow_server


@pytest.fixture(scope="session")
def bike() -> pd.DataFrame:
    """The bundled bike sharing data."""
    return pd.read_parquet(BIKE_PARQUET)


@pytest.fixture
def kfp_api():
    """A fake KFP API server (none can run here): the runs the exit step reads."""
    from tests.pipelines.kfp_api_server import FakeKfpApiServer

    with FakeKfpApiServer() as server:
        yield server


@pytest.fixture
def kubernetes_api():
    """A fake Kubernetes API server (no cluster here) for the namespace ml-lifecycle."""
    from tests.io.kubernetes_api_server import FakeKubernetesApiServer

    with FakeKubernetesApiServer("ml-lifecycle") as server:
        yield server
