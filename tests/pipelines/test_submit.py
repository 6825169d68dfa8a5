"""`python -m pipelines submit` through the real kfp.Client over real HTTP.

The KFP API server is the in-memory fake of tests/pipelines/kfp_api_server.py: it stands in
for a Kubeflow Pipelines backend because none can run on this machine.
"""

import argparse
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipelines.__main__ import main
from pipelines.cli.options import parse_param
from pipelines.cluster.client import build_client, content_hash
from pipelines.cluster.submit import wait_for_run
from tests.pipelines.kfp_api_server import (
    FakeKfpApiServer,
    compile_tiny_pipeline,
    isolate_kfp_client,
)

UPLOAD = ("POST", "/apis/v2beta1/pipelines/upload")
UPLOAD_VERSION = ("POST", "/apis/v2beta1/pipelines/upload_version")


@pytest.fixture(autouse=True)
def _isolated_kfp_client(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_kfp_client(monkeypatch, tmp_path)


@pytest.fixture
def server() -> Iterator[FakeKfpApiServer]:
    with FakeKfpApiServer() as fake:
        yield fake


@pytest.fixture
def compiled(tmp_path: Path) -> Path:
    """A pipelines dir holding tiny.yaml."""
    compile_tiny_pipeline(tmp_path / "compiled" / "tiny.yaml")
    return tmp_path / "compiled"


def submit(server: FakeKfpApiServer, compiled: Path, *extra: str) -> int:
    argv = ["submit", "tiny", "--host", server.url, "--pipelines-dir", str(compiled)]
    return main([*argv, "--poll-seconds", "0.01", *extra])


def run_version_id(run: dict) -> str:
    return run["pipeline_version_reference"]["pipeline_version_id"]


def test_first_submit_uploads_the_pipeline_and_prints_the_run_link(
    server: FakeKfpApiServer, compiled: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = submit(
        server, compiled, "--param", "message=hi", "--param", "repeat=3", "--experiment", "demo"
    )

    assert status == 0
    digest = content_hash(compiled / "tiny.yaml")
    [run] = server.runs.values()
    [version] = [v for v in server.versions_of("tiny") if v["display_name"] == f"tiny-{digest}"]
    assert run_version_id(run) == version["pipeline_version_id"]
    assert version["content"] == (compiled / "tiny.yaml").read_bytes()
    assert run["runtime_config"]["parameters"] == {"message": "hi", "repeat": 3}
    assert run["experiment_id"] == server.experiment_named("demo")["experiment_id"]
    assert f"{server.url}/#/runs/details/{run['run_id']}" in capsys.readouterr().out


def test_unchanged_yaml_reuses_its_version(
    server: FakeKfpApiServer, compiled: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert submit(server, compiled) == 0
    versions_before = len(server.versions_of("tiny"))

    assert submit(server, compiled) == 0

    assert len(server.versions_of("tiny")) == versions_before
    assert server.count_requests(*UPLOAD) == 1
    assert server.count_requests(*UPLOAD_VERSION) == 1
    first, second = server.runs.values()
    assert run_version_id(first) == run_version_id(second)
    assert "reusing unchanged pipeline version" in capsys.readouterr().out


def test_changed_yaml_adds_one_version_and_runs_it(
    server: FakeKfpApiServer, compiled: Path
) -> None:
    path = compiled / "tiny.yaml"
    assert submit(server, compiled) == 0
    versions_before = len(server.versions_of("tiny"))

    compile_tiny_pipeline(path, greeting="bonjour")
    assert submit(server, compiled) == 0

    versions = server.versions_of("tiny")
    assert len(versions) == versions_before + 1
    assert versions[-1]["display_name"] == f"tiny-{content_hash(path)}"
    assert run_version_id(list(server.runs.values())[-1]) == versions[-1]["pipeline_version_id"]
    assert len(server.pipelines) == 1


def test_file_option_submits_a_file_outside_the_pipelines_dir(
    server: FakeKfpApiServer, tmp_path: Path
) -> None:
    path = compile_tiny_pipeline(tmp_path / "elsewhere" / "custom.yaml")

    status = main(["submit", "custom", "--host", server.url, "--file", str(path)])

    assert status == 0
    assert f"custom-{content_hash(path)}" in [
        v["display_name"] for v in server.versions_of("custom")
    ]


@pytest.mark.parametrize(("final_state", "expected_status"), [("SUCCEEDED", 0), ("FAILED", 1)])
def test_wait_exits_by_the_final_state(
    compiled: Path, capsys: pytest.CaptureFixture[str], final_state: str, expected_status: int
) -> None:
    with FakeKfpApiServer(run_final_state=final_state, polls_before_final=3) as server:
        status = submit(server, compiled, "--wait", "--timeout", "30")

        assert status == expected_status
        [run] = server.runs.values()
        assert run["state"] == final_state
    assert f"finished: {final_state}" in capsys.readouterr().out


def test_wait_gives_up_after_the_timeout(
    compiled: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with FakeKfpApiServer(polls_before_final=10**9) as server:
        status = submit(server, compiled, "--wait", "--timeout", "0.2")

    assert status == 1
    assert "still RUNNING after 0.2s" in capsys.readouterr().err


@pytest.mark.parametrize("bad", ["oops", "=3"])
def test_malformed_param_is_an_argparse_error(
    server: FakeKfpApiServer, compiled: Path, capsys: pytest.CaptureFixture[str], bad: str
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        submit(server, compiled, "--param", bad)

    assert exit_info.value.code == 2
    assert f"expected KEY=VALUE, got {bad!r}" in capsys.readouterr().err
    assert server.requests == []


def test_repeated_param_is_an_argparse_error(
    server: FakeKfpApiServer, compiled: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        submit(server, compiled, "--param", "repeat=1", "--param", "repeat=2")

    assert "repeat given twice" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("repeat=3", ("repeat", "3")),
        ("items=[1, 2]", ("items", "[1, 2]")),
        ("name=Champion", ("name", "Champion")),
        ("empty=", ("empty", "")),
        ("uri=s3://b/k?a=b", ("uri", "s3://b/k?a=b")),
    ],
)
def test_param_values_stay_text_until_the_declared_type_converts_them(
    text: str, expected: tuple
) -> None:
    assert parse_param(text) == expected


def test_param_values_are_converted_by_the_compiled_types(
    server: FakeKfpApiServer, compiled: Path
) -> None:
    # `message` is a str: "3" stays text; `repeat` is an int: "4" becomes 4.
    assert submit(server, compiled, "--param", "message=3", "--param", "repeat=4") == 0

    [run] = server.runs.values()
    assert run["runtime_config"]["parameters"] == {"message": "3", "repeat": 4}


@pytest.mark.parametrize(
    ("param", "message"),
    [
        ("mesage=hi", "unknown parameter 'mesage' for pipeline tiny; did you mean: message?"),
        ("repeat=lots", "parameter 'repeat' is NUMBER_INTEGER and expects an integer; got 'lots'"),
    ],
    ids=["unknown-key", "wrong-type"],
)
def test_a_bad_param_is_one_line_before_any_request(
    server: FakeKfpApiServer,
    compiled: Path,
    capsys: pytest.CaptureFixture[str],
    param: str,
    message: str,
) -> None:
    assert submit(server, compiled, "--param", param) == 2

    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1
    assert server.requests == []


def test_config_file_values_are_merged_under_the_command_line(
    server: FakeKfpApiServer, compiled: Path, tmp_path: Path
) -> None:
    config = tmp_path / "tiny.yaml"
    config.write_text("pipeline: tiny\nparameters:\n  message: 42\n  repeat: 2\n")

    assert submit(server, compiled, "--config", str(config), "--param", "repeat=5") == 0

    [run] = server.runs.values()
    assert run["runtime_config"]["parameters"] == {"message": "42", "repeat": 5}


def test_a_config_for_another_pipeline_is_refused(
    server: FakeKfpApiServer, compiled: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "other.yaml"
    config.write_text("pipeline: training\nparameters: {message: hi}\n")

    assert submit(server, compiled, "--config", str(config)) == 2

    assert "config is for pipeline 'training', not 'tiny'" in capsys.readouterr().err
    assert server.requests == []


def test_help_lists_the_compiled_parameters(
    compiled: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["submit", "tiny", "--pipelines-dir", str(compiled), "--help"])

    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "parameters of pipeline tiny" in out
    assert "message  STRING          default: hello" in out
    assert "repeat   NUMBER_INTEGER  default: 1" in out


def test_parse_param_rejects_text_without_equals() -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="expected KEY=VALUE"):
        parse_param("repeat")


def test_unknown_pipeline_lists_the_compiled_ones(
    server: FakeKfpApiServer, compiled: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["submit", "nope", "--host", server.url, "--pipelines-dir", str(compiled)]

    assert main(argv) == 2

    err = capsys.readouterr().err
    assert "unknown pipeline 'nope'" in err
    assert "Compiled pipelines available: tiny" in err
    assert server.requests == []


def test_a_file_that_is_no_pipeline_is_a_usage_error(
    server: FakeKfpApiServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("pipelineInfo: [unclosed\n")

    assert main(["submit", "broken", "--host", server.url, "--file", str(broken)]) == 2

    assert "cannot read compiled pipeline" in capsys.readouterr().err
    assert server.requests == []


def test_api_refusal_is_one_line_and_exit_1(
    server: FakeKfpApiServer, compiled: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The fake server, like KFP, refuses an experiment without a name.
    assert submit(server, compiled, "--experiment", "") == 1

    err = capsys.readouterr().err
    assert "error: KFP answered 400" in err
    assert err.count("\n") == 1


def test_unreachable_host_is_one_line_and_exit_1(
    compiled: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["submit", "tiny", "--host", "http://127.0.0.1:9", "--pipelines-dir", str(compiled)]

    assert main(argv) == 1

    assert "error: cannot reach KFP at http://127.0.0.1:9" in capsys.readouterr().err


def test_wait_for_run_returns_the_final_state(server: FakeKfpApiServer, compiled: Path) -> None:
    assert submit(server, compiled) == 0
    [run_id] = server.runs

    assert wait_for_run(build_client(server.url), run_id, timeout_s=10, poll_s=0.01) == "SUCCEEDED"


def test_token_from_the_environment_is_sent_as_bearer(
    server: FakeKfpApiServer, compiled: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MY_KFP_TOKEN", "t0ken")

    assert submit(server, compiled, "--token-env", "MY_KFP_TOKEN") == 0

    assert set(server.authorizations) == {"Bearer t0ken"}


def test_in_cluster_tokens_are_used_when_no_token_is_given(
    server: FakeKfpApiServer, tmp_path: Path
) -> None:
    kfp_token, k8s_token = tmp_path / "kfp-token", tmp_path / "k8s-token"
    k8s_token.write_text("pod-token\n")

    build_client(server.url, kfp_token_path=kfp_token, k8s_token_path=k8s_token).get_kfp_healthz()
    kfp_token.write_text("projected-token")
    build_client(server.url, kfp_token_path=kfp_token, k8s_token_path=k8s_token).get_kfp_healthz()

    assert server.authorizations[-1] == "Bearer projected-token"
    assert "Bearer pod-token" in server.authorizations
