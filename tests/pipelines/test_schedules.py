"""`python -m pipelines schedule sync` through the real kfp.Client over real HTTP.

The KFP API server is the in-memory fake of tests/pipelines/kfp_api_server.py: it stands in
for a Kubeflow Pipelines backend because none can run on this machine. Its page size is 2 so
that listing recurring runs has to follow page tokens.
"""

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipelines.__main__ import main
from pipelines.cluster.client import build_client, content_hash
from pipelines.cluster.schedules import (
    ScheduleFileError,
    load_schedule_file,
    ownership_mark,
    read_mark,
)
from tests.pipelines.kfp_api_server import (
    FakeKfpApiServer,
    compile_tiny_pipeline,
    isolate_kfp_client,
)

OWNER = "kfp-model-lifecycle"
EXPERIMENT = "bike-sharing-schedules"
CREATE_RECURRING_RUN = ("POST", "/apis/v2beta1/recurringruns")
UPLOAD_VERSION = ("POST", "/apis/v2beta1/pipelines/upload_version")

NIGHTLY = {
    "name": "nightly-inference",
    "pipeline": "tiny",
    "cron": "0 0 2 * * *",
    "enabled": True,
    "max_concurrency": 1,
    "catchup": False,
    "parameters": {"message": "predict", "repeat": 2},
}
WEEKLY = {
    "name": "weekly-training",
    "pipeline": "tiny",
    "cron": "0 30 3 * * 1",
    "enabled": False,
    "max_concurrency": 2,
    "catchup": True,
    "parameters": {"message": "train"},
}


@pytest.fixture(autouse=True)
def _isolated_kfp_client(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_kfp_client(monkeypatch, tmp_path)


@pytest.fixture
def server() -> Iterator[FakeKfpApiServer]:
    with FakeKfpApiServer(max_page_size=2) as fake:
        yield fake


@pytest.fixture
def compiled(tmp_path: Path) -> Path:
    """A pipelines dir holding tiny.yaml."""
    compile_tiny_pipeline(tmp_path / "compiled" / "tiny.yaml")
    return tmp_path / "compiled"


@pytest.fixture
def schedules_file(tmp_path: Path) -> Path:
    return write_schedules(tmp_path / "schedules.yaml", [NIGHTLY, WEEKLY])


def write_schedules(path: Path, schedules: list[dict[str, Any]], **top: Any) -> Path:
    document = {"owner": OWNER, "experiment": EXPERIMENT, "schedules": schedules, **top}
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def sync(server: FakeKfpApiServer, compiled: Path, schedules: Path, *extra: str) -> int:
    argv = ["schedule", "sync", "--file", str(schedules), "--host", server.url]
    return main([*argv, "--pipelines-dir", str(compiled), *extra])


def owned(server: FakeKfpApiServer) -> dict[str, dict[str, Any]]:
    """Recurring runs carrying this file's mark, by name (fails on duplicates)."""
    runs = [
        run
        for run in server.recurring_runs.values()
        if (read_mark(run["description"]) or ("", ""))[0] == OWNER
    ]
    by_name = {run["display_name"]: run for run in runs}
    assert len(by_name) == len(runs), "two owned recurring runs share a name"
    return by_name


def add_foreign_recurring_runs(server: FakeKfpApiServer, pipeline: Path) -> list[str]:
    """Recurring runs made by hand in the same experiment: unmarked, and marked by another owner.

    One is deliberately named like a managed schedule, to show names alone never claim it.
    """
    client = build_client(server.url)
    experiment_id = client.create_experiment(EXPERIMENT).experiment_id
    pipeline_id = client.upload_pipeline(str(pipeline), pipeline_name="hand-made").pipeline_id
    version_id = client.list_pipeline_versions(pipeline_id).pipeline_versions[0].pipeline_version_id
    descriptions = {
        "nightly-inference": "made by hand",
        "team-b": ownership_mark("team-b", "0" * 12),
    }
    return [
        client.create_recurring_run(
            experiment_id=experiment_id,
            job_name=name,
            description=description,
            cron_expression="0 0 5 * * *",
            pipeline_id=pipeline_id,
            version_id=version_id,
        ).recurring_run_id
        for name, description in descriptions.items()
    ]


def foreign_snapshot(server: FakeKfpApiServer, ids: list[str]) -> list[dict[str, Any]]:
    return [copy.deepcopy(server.recurring_runs[recurring_run_id]) for recurring_run_id in ids]


def test_first_sync_creates_every_schedule_as_declared(
    server: FakeKfpApiServer,
    compiled: Path,
    schedules_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert sync(server, compiled, schedules_file) == 0

    out = capsys.readouterr().out
    assert "create   nightly-inference" in out
    assert "create   weekly-training" in out
    runs = owned(server)
    assert set(runs) == {"nightly-inference", "weekly-training"}
    nightly, weekly = runs["nightly-inference"], runs["weekly-training"]
    assert nightly["trigger"]["cron_schedule"]["cron"] == "0 0 2 * * *"
    assert nightly["runtime_config"]["parameters"] == {"message": "predict", "repeat": 2}
    assert (nightly["mode"], nightly["no_catchup"], nightly["max_concurrency"]) == (
        "ENABLE",
        True,
        "1",
    )
    assert (weekly["mode"], weekly["no_catchup"], weekly["max_concurrency"]) == (
        "DISABLE",
        False,
        "2",
    )
    experiment = server.experiment_named(EXPERIMENT)
    assert {run["experiment_id"] for run in runs.values()} == {experiment["experiment_id"]}
    version = server.versions[nightly["pipeline_version_reference"]["pipeline_version_id"]]
    assert version["display_name"] == f"tiny-{content_hash(compiled / 'tiny.yaml')}"


def test_second_sync_is_a_no_op(
    server: FakeKfpApiServer,
    compiled: Path,
    schedules_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert sync(server, compiled, schedules_file) == 0
    before = copy.deepcopy(server.recurring_runs)
    versions_before = len(server.versions)
    capsys.readouterr()

    assert sync(server, compiled, schedules_file) == 0

    out = capsys.readouterr().out
    assert "keep     nightly-inference" in out
    assert "keep     weekly-training" in out
    assert "create" not in out.split("summary")[0]
    assert server.recurring_runs == before
    assert len(server.versions) == versions_before
    assert server.count_requests(*CREATE_RECURRING_RUN) == 2


@pytest.mark.parametrize(
    "edit",
    [
        {"cron": "0 15 2 * * *"},
        {"parameters": {"message": "predict", "repeat": 3}},
        {"max_concurrency": 3},
        {"catchup": True},
    ],
    ids=["cron", "parameter", "max_concurrency", "catchup"],
)
def test_an_edit_replaces_the_recurring_run(
    server: FakeKfpApiServer,
    compiled: Path,
    schedules_file: Path,
    capsys: pytest.CaptureFixture[str],
    edit: dict[str, Any],
) -> None:
    assert sync(server, compiled, schedules_file) == 0
    old = owned(server)
    write_schedules(schedules_file, [{**NIGHTLY, **edit}, WEEKLY])
    capsys.readouterr()

    assert sync(server, compiled, schedules_file) == 0

    out = capsys.readouterr().out
    new = owned(server)
    old_id = old["nightly-inference"]["recurring_run_id"]
    assert f"replaces {old_id}" in out
    assert new["nightly-inference"]["recurring_run_id"] != old_id
    assert old_id not in server.recurring_runs
    assert new["nightly-inference"]["mode"] == "ENABLE"
    assert new["weekly-training"] == old["weekly-training"]
    # Only the schedule changed, not the pipeline: no new version upload.
    assert server.count_requests(*UPLOAD_VERSION) == 1


def test_a_changed_pipeline_uploads_a_version_and_replaces_its_schedules(
    server: FakeKfpApiServer, compiled: Path, schedules_file: Path
) -> None:
    assert sync(server, compiled, schedules_file) == 0
    old_ids = {run["recurring_run_id"] for run in owned(server).values()}

    compile_tiny_pipeline(compiled / "tiny.yaml", greeting="changed")
    assert sync(server, compiled, schedules_file) == 0

    runs = owned(server).values()
    assert not old_ids & {run["recurring_run_id"] for run in runs}
    new_version = f"tiny-{content_hash(compiled / 'tiny.yaml')}"
    for run in runs:
        version_id = run["pipeline_version_reference"]["pipeline_version_id"]
        assert server.versions[version_id]["display_name"] == new_version
    assert server.count_requests(*UPLOAD_VERSION) == 2


def test_a_removed_schedule_is_deleted(
    server: FakeKfpApiServer,
    compiled: Path,
    schedules_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert sync(server, compiled, schedules_file) == 0
    before = owned(server)
    write_schedules(schedules_file, [NIGHTLY])
    capsys.readouterr()

    assert sync(server, compiled, schedules_file) == 0

    weekly_id = before["weekly-training"]["recurring_run_id"]
    assert f"delete   weekly-training  id {weekly_id}" in capsys.readouterr().out
    assert owned(server) == {"nightly-inference": before["nightly-inference"]}
    assert server.count_requests("POST", f"/apis/v2beta1/recurringruns/{weekly_id}:disable") == 1


def test_foreign_recurring_runs_are_never_touched(
    server: FakeKfpApiServer,
    compiled: Path,
    schedules_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    foreign_ids = add_foreign_recurring_runs(server, compiled / "tiny.yaml")
    foreign = foreign_snapshot(server, foreign_ids)

    assert sync(server, compiled, schedules_file) == 0
    write_schedules(schedules_file, [{**NIGHTLY, "cron": "0 0 4 * * *"}])
    assert sync(server, compiled, schedules_file) == 0
    write_schedules(schedules_file, [])
    assert sync(server, compiled, schedules_file) == 0

    assert foreign_snapshot(server, foreign_ids) == foreign
    assert owned(server) == {}
    assert (
        "2 recurring run(s) not owned by kfp-model-lifecycle left alone" in capsys.readouterr().out
    )
    for recurring_run_id in foreign_ids:
        assert ("DELETE", f"/apis/v2beta1/recurringruns/{recurring_run_id}") not in server.requests


def test_dry_run_prints_the_plan_and_changes_nothing(
    server: FakeKfpApiServer,
    compiled: Path,
    schedules_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert sync(server, compiled, schedules_file, "--dry-run") == 0

    out = capsys.readouterr().out
    assert "dry run" in out
    assert "create   nightly-inference" in out
    assert (server.pipelines, server.experiments, server.recurring_runs) == ({}, {}, {})

    assert sync(server, compiled, schedules_file) == 0
    before = copy.deepcopy(server.recurring_runs)
    write_schedules(schedules_file, [{**NIGHTLY, "cron": "0 0 6 * * *"}])
    requests_before = len(server.requests)
    capsys.readouterr()

    assert sync(server, compiled, schedules_file, "--dry-run") == 0

    out = capsys.readouterr().out
    assert "replace  nightly-inference" in out
    assert "delete   weekly-training" in out
    assert server.recurring_runs == before
    assert {method for method, _ in server.requests[requests_before:]} == {"GET"}


def test_a_run_paused_by_hand_is_replaced_by_an_enabled_one(
    server: FakeKfpApiServer, compiled: Path, schedules_file: Path
) -> None:
    assert sync(server, compiled, schedules_file) == 0
    paused_id = owned(server)["nightly-inference"]["recurring_run_id"]
    build_client(server.url).disable_recurring_run(paused_id)

    assert sync(server, compiled, schedules_file) == 0

    nightly = owned(server)["nightly-inference"]
    assert nightly["recurring_run_id"] != paused_id
    assert nightly["mode"] == "ENABLE"


def test_a_leftover_of_an_interrupted_replace_is_deleted(
    server: FakeKfpApiServer, compiled: Path, schedules_file: Path
) -> None:
    assert sync(server, compiled, schedules_file) == 0
    kept = owned(server)["nightly-inference"]
    client = build_client(server.url)
    reference = kept["pipeline_version_reference"]
    leftover = client.create_recurring_run(
        experiment_id=kept["experiment_id"],
        job_name="nightly-inference",
        description=ownership_mark(OWNER, "0" * 12),
        cron_expression="0 0 1 * * *",
        pipeline_id=reference["pipeline_id"],
        version_id=reference["pipeline_version_id"],
    ).recurring_run_id

    assert sync(server, compiled, schedules_file) == 0

    assert leftover not in server.recurring_runs
    assert owned(server)["nightly-inference"] == kept


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (
            {"schedules": [{**NIGHTLY, "cron": "0 2 * * *"}]},
            "schedules[0] (nightly-inference).cron: Value error, cron '0 2 * * *' has 5 fields",
        ),
        ({"schedules": [{**NIGHTLY, "crons": "x"}]}, "schedules[0] (nightly-inference).crons"),
        ({"schedules": [{**NIGHTLY, "enabled": "yes"}]}, "(nightly-inference).enabled"),
        ({"schedules": [{**NIGHTLY, "max_concurrency": 11}]}, "max_concurrency"),
        ({"schedules": [NIGHTLY, NIGHTLY]}, "repeated: nightly-inference"),
        ({"schedules": [{**WEEKLY, "name": None}]}, "schedules[0].name"),
        ({"owner": None}, "owner: Input should be a valid string"),
        ({"team": "x"}, "team: Extra inputs are not permitted"),
    ],
    ids=[
        "cron-5-fields",
        "unknown-field",
        "not-strict",
        "range",
        "dupes",
        "no-name",
        "owner",
        "extra",
    ],
)
def test_a_malformed_file_is_a_clear_error(
    server: FakeKfpApiServer,
    compiled: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    document: dict[str, Any],
    message: str,
) -> None:
    document = {"owner": OWNER, "experiment": EXPERIMENT, "schedules": [NIGHTLY], **document}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(document))

    assert sync(server, compiled, path) == 2

    assert message in capsys.readouterr().err
    assert server.requests == []


def test_load_schedule_file_rejects_broken_yaml(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("owner: [unclosed\n")

    with pytest.raises(ScheduleFileError, match="cannot read schedules"):
        load_schedule_file(path)


def test_an_unknown_pipeline_is_an_error_before_any_change(
    server: FakeKfpApiServer,
    compiled: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = write_schedules(tmp_path / "s.yaml", [NIGHTLY, {**WEEKLY, "pipeline": "missing"}])

    assert sync(server, compiled, path) == 2

    assert "unknown pipeline 'missing'" in capsys.readouterr().err
    assert server.requests == []


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        (
            {"mesage": "predict"},
            "schedule 'nightly-inference': unknown parameter 'mesage' for pipeline tiny; "
            "did you mean: message? (parameters: message, repeat)",
        ),
        (
            {"repeat": "twice"},
            "schedule 'nightly-inference': parameter 'repeat' is NUMBER_INTEGER and expects an "
            "integer; got 'twice'",
        ),
        (
            {"message": ["a", "list"]},
            "schedule 'nightly-inference': parameter 'message' is STRING",
        ),
    ],
    ids=["unknown-key", "wrong-type", "list-for-string"],
)
@pytest.mark.parametrize("dry_run", [False, True], ids=["sync", "dry-run"])
def test_bad_parameters_are_an_error_before_any_change(
    server: FakeKfpApiServer,
    compiled: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    parameters: dict[str, Any],
    message: str,
    dry_run: bool,
) -> None:
    path = write_schedules(tmp_path / "s.yaml", [{**NIGHTLY, "parameters": parameters}, WEEKLY])

    assert sync(server, compiled, path, *(["--dry-run"] if dry_run else [])) == 2

    assert message in capsys.readouterr().err
    assert server.requests == []


def write_config(path: Path, document: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(document))
    return path


def test_a_config_file_is_merged_under_the_inline_parameters(
    server: FakeKfpApiServer, compiled: Path, tmp_path: Path
) -> None:
    # Relative to the schedules file, not to the working directory.
    write_config(
        tmp_path / "deploy" / "configs" / "nightly.yaml",
        {"pipeline": "tiny", "parameters": {"message": "from-config", "repeat": 4}},
    )
    nightly = {**NIGHTLY, "config": "configs/nightly.yaml", "parameters": {"message": 7}}
    path = write_schedules(tmp_path / "deploy" / "s.yaml", [nightly])

    assert sync(server, compiled, path) == 0

    [run] = owned(server).values()
    # Inline wins over the config; a YAML scalar for a str parameter becomes its text.
    assert run["runtime_config"]["parameters"] == {"message": "7", "repeat": 4}


def test_a_changed_config_file_replaces_the_recurring_run(
    server: FakeKfpApiServer,
    compiled: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = write_config(tmp_path / "nightly.yaml", {"parameters": {"repeat": 2}})
    nightly = {**NIGHTLY, "config": "nightly.yaml", "parameters": {}}
    path = write_schedules(tmp_path / "s.yaml", [nightly])
    assert sync(server, compiled, path) == 0
    old_id = owned(server)["nightly-inference"]["recurring_run_id"]
    assert sync(server, compiled, path) == 0
    assert owned(server)["nightly-inference"]["recurring_run_id"] == old_id
    capsys.readouterr()

    write_config(config, {"parameters": {"repeat": 3}})
    assert sync(server, compiled, path) == 0

    assert f"replaces {old_id}" in capsys.readouterr().out
    [run] = owned(server).values()
    assert run["runtime_config"]["parameters"] == {"repeat": 3}


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (None, "cannot read config"),
        ({"pipeline": "training"}, "config is for pipeline 'training', not 'tiny'"),
        ({"params": {"repeat": 2}}, "unknown key 'params' in config; allowed keys: pipeline"),
        ({"parameters": {"repeat": "x"}}, "parameter 'repeat' is NUMBER_INTEGER"),
        ({"parameters": {"mesage": "x"}}, "did you mean: message?"),
    ],
    ids=["missing", "other-pipeline", "unknown-top-key", "wrong-type", "unknown-key"],
)
def test_a_bad_config_file_is_an_error_before_any_change(
    server: FakeKfpApiServer,
    compiled: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    config: dict[str, Any] | None,
    message: str,
) -> None:
    if config is not None:
        write_config(tmp_path / "nightly.yaml", config)
    nightly = {**NIGHTLY, "config": "nightly.yaml", "parameters": {}}
    path = write_schedules(tmp_path / "s.yaml", [nightly, WEEKLY])

    assert sync(server, compiled, path, "--dry-run") == 2

    err = capsys.readouterr().err
    assert "schedule 'nightly-inference'" in err
    assert message in err
    assert server.requests == []


def test_the_committed_schedules_validate_against_the_committed_pipelines() -> None:
    """manifests/schedules/schedules.yaml names parameters the compiled pipelines accept."""
    from pipelines.cluster.schedules import DEFAULT_FILE, resolve_parameters
    from pipelines.dags.catalog import COMPILED

    root = Path(__file__).resolve().parents[2]
    config = load_schedule_file(root / DEFAULT_FILE)
    files = {s.pipeline: COMPILED / f"{s.pipeline}.yaml" for s in config.schedules}
    resolved = resolve_parameters(config, files)
    assert {s.name for s in resolved.schedules} == {"nightly-inference", "weekly-training"}
    weekly = next(s for s in resolved.schedules if s.name == "weekly-training")
    assert weekly.parameters["target"] == "cnt"
