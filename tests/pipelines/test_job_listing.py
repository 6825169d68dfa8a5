"""`job list` and `job prune`: the local jobs folder and a cluster's KFP runs, through the CLI.

The job folders are written the way the background runner writes them (job.json, state.json
under the lock, worker.log, outputs/), with times in the past; a running job's worker is a real
process whose command line names its folder, as the runner's worker does. No KFP API server can
run here: the KFP runs are listed by the real kfp.Client from the fake one on 127.0.0.1
(`tests.pipelines.kfp_api_server`).
"""

from __future__ import annotations

import datetime
import json
import os
import pathlib
import subprocess
import sys
import threading

import pytest

from pipelines.cli import main
from pipelines.jobs import futures, listing, management
from pipelines.local import background
from tests.pipelines.kfp_api_server import FakeKfpApiServer, isolate_kfp_client

NOW = datetime.datetime.now(datetime.UTC).replace(microsecond=0)


def ago(days: float = 0, **delta: float) -> datetime.datetime:
    """A moment in the past, to the second."""
    return NOW - datetime.timedelta(days=days, **delta)


@pytest.fixture
def home(tmp_path, monkeypatch) -> pathlib.Path:
    """The default jobs folder: `$LIFECYCLE_HOME/jobs`, as `job status` finds it."""
    monkeypatch.setenv("LIFECYCLE_HOME", str(tmp_path / "lifecycle"))
    return background.jobs_home()


@pytest.fixture
def workers():
    """Real processes standing in for running workers; ended when the test is done."""
    started: list[subprocess.Popen] = []
    yield started
    for worker in started:
        worker.kill()
        worker.wait()


def write_job(
    home: pathlib.Path,
    state: str,
    submitted: datetime.datetime,
    ended: datetime.datetime | None = None,
    pipeline: str = "inference",
    worker: subprocess.Popen | None = None,
    output_bytes: int = 1000,
    error: str | None = None,
    job_id: str | None = None,
) -> background.JobFolder:
    """A job folder as the background runner leaves it, its files last written when it ended.

    Args:
        state: the state its worker recorded last.
        submitted: when it was submitted; its run started a minute later.
        ended: when it reached its final state (None: it has not).
        worker: its worker, still running; None: a pid that no longer runs.
        output_bytes: the size of its outputs (the predictions of a finished run).
        job_id: its id (default: a new one).
    """
    folder = background.JobFolder(home / (job_id or background.new_id()))
    folder.path.mkdir(parents=True)
    started = submitted + datetime.timedelta(minutes=1)
    pid = worker.pid if worker else _dead_pid()
    folder.write_json(
        background.JOB_FILE,
        {"id": folder.id, "pipeline": pipeline, "params": {"data": "rows.parquet"},
         "submitted_at": submitted.isoformat(), "pid": pid},
    )  # fmt: skip
    with folder.locked():
        folder.set_state(background.QUEUED)
        last = (ended or started).isoformat()
        record = {"state": state, "updated_at": last, "started_at": started.isoformat()}
        if ended is not None:
            record |= {"completed_at": ended.isoformat(), "error": error}
        folder.write_json(background.STATE_FILE, record)
    (folder.path / background.LOG_FILE).write_text("kfp.local output\n")
    outputs = folder.path / background.OUTPUTS / "pipeline-root" / "run-1" / "predict"
    outputs.mkdir(parents=True)
    (outputs / "predictions.parquet").write_bytes(b"x" * output_bytes)
    age(folder.path, ended or started)
    return folder


def age(path: pathlib.Path, when: datetime.datetime) -> None:
    """Make a folder and its files look last written at `when`."""
    stamp = when.timestamp()
    for entry in [*path.rglob("*"), path]:
        os.utime(entry, (stamp, stamp))


def _dead_pid() -> int:
    sleeper = subprocess.Popen(["true"])
    sleeper.wait()
    return sleeper.pid


def start_worker(workers: list[subprocess.Popen], home: pathlib.Path, job_id: str):
    """A process whose command line names the job's folder, as the runner's worker's does."""
    worker = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(300)", str(home / job_id)]
    )
    workers.append(worker)
    return worker


def running_job(home, workers, submitted, state=background.RUNNING) -> background.JobFolder:
    """A job whose worker really runs (its folder named before the job is written)."""
    job_id = background.new_id()
    worker = start_worker(workers, home, job_id)
    return write_job(home, state, submitted, worker=worker, job_id=job_id)


def unreadable(
    home: pathlib.Path, when: datetime.datetime, text: str = '{"id": "half'
) -> pathlib.Path:
    """A job folder whose job.json was cut off half-way (a full disk, a crash)."""
    path = home / background.new_id()
    path.mkdir(parents=True)
    (path / background.JOB_FILE).write_text(text)
    age(path, when)
    return path


@pytest.fixture
def jobs(home, workers):
    """One job in each state, submitted on different days, and an unreadable folder."""
    no_rows = "step predict: DatasetError: no rows"
    trained = ago(40, minutes=-4, seconds=-12)
    made = {
        "completed": write_job(home, "completed", ago(40), trained, "training"),
        "errored": write_job(home, "errored", ago(35), ago(35, minutes=-2), error=no_rows),
        "canceled": write_job(home, "canceled", ago(3), ago(3, seconds=-30), error="by the user"),
        "running": running_job(home, workers, ago(45)),
        "queued": running_job(home, workers, ago(hours=1), state=background.QUEUED),
    }  # fmt: skip
    broken = unreadable(home, ago(50))
    # Not jobs: what an interrupted prune left aside, and a stray file.
    (home / f"{listing.ASIDE}0123456789abcdef-1234abcd").mkdir()
    (home / "notes.txt").write_text("not a job")
    return made, broken


def cli(capsys, *argv: str) -> tuple[int, list[str], list[str]]:
    """Run the CLI in this process: exit status, stdout lines, stderr lines."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out.splitlines(), err.splitlines()


def ids(lines: list[str]) -> list[str]:
    return [line.split()[0] for line in lines[1:]]


# %% LIST


def test_list_shows_every_job_newest_first_with_its_times(home, jobs, capsys):
    made, broken = jobs
    code, out, err = cli(capsys, "job", "list")
    assert code == 0, err
    assert out[0].split() == [
        "ID", "PIPELINE", "STATE", "SUBMITTED", "(UTC)", "FINISHED", "(UTC)", "DURATION",
    ]  # fmt: skip
    order = ["queued", "canceled", "errored", "completed", "running"]
    assert ids(out) == [f"local:{made[name].id}" for name in order] + [f"local:{broken.name}"]
    rows = {line.split()[0]: line for line in out[1:]}
    completed = rows[f"local:{made['completed'].id}"].split()
    # id, pipeline, state, submitted (day, time), finished (day, time), duration from the start
    assert completed[1:3] == ["training", "completed"]
    assert completed[3:5] == ago(40).strftime("%Y-%m-%d %H:%M:%S").split()
    assert completed[7] == "3m12s"
    running = rows[f"local:{made['running'].id}"].split()
    assert running[1:3] == ["inference", "running"]
    assert running[5:] == ["-", "-"]  # not finished: no end, no duration
    # The columns line up: each starts where its header does.
    at = out[0].index("PIPELINE")
    assert at == len("local:") + 16 + 2
    assert [line[at:].split()[0] for line in out[1:]] == [
        "inference", "inference", "inference", "training", "inference", "-",
    ]  # fmt: skip


def test_an_unreadable_folder_is_listed_as_such_with_what_is_wrong(home, jobs, capsys):
    _, broken = jobs
    missing_state = home / background.new_id()
    missing_state.mkdir()
    (missing_state / background.JOB_FILE).write_text(
        json.dumps({"id": missing_state.name, "pipeline": "training", "submitted_at": None})
    )
    code, out, err = cli(capsys, "job", "list")
    assert code == 0 and err == []
    rows = {line.split()[0]: line for line in out[1:]}
    line = rows[f"local:{broken.name}"]
    assert line.split()[1:3] == ["-", "unreadable"]
    assert "(job.json: Unterminated string" in line
    assert f"last changed {ago(50).strftime('%Y-%m-%d %H:%M:%S')})" in line
    other = rows[f"local:{missing_state.name}"]
    assert other.split()[1:3] == ["training", "unreadable"]
    assert other.endswith(")") and "(no state.json;" in other
    # The same in JSON, and the leftovers of a prune and stray files are no jobs.
    code, out, _ = cli(capsys, "job", "list", "--json")
    listed = {job["id"]: job for job in json.loads("\n".join(out))}
    assert listed[f"local:{broken.name}"]["state"] == "unreadable"
    assert listed[f"local:{broken.name}"]["changed_at"] == ago(50).isoformat()
    assert all(key.startswith("local:") and len(key) == 22 for key in listed)
    assert len(listed) == 7
    # `job status` on it says so in one line.
    code, out, err = cli(capsys, "job", "status", f"local:{broken.name}")
    assert (code, out) == (2, [])
    assert err == [
        f"error: local job {broken.name} in {home} cannot be read (JSONDecodeError: "
        "Unterminated string starting at: line 1 column 8 (char 7)); `job prune` removes it "
        "once it is old"
    ]


def test_state_filters_and_a_bad_state_is_refused_with_the_allowed_ones(home, jobs, capsys):
    made, _ = jobs
    code, out, _ = cli(capsys, "job", "list", "--state", "errored")
    assert code == 0
    assert ids(out) == [f"local:{made['errored'].id}"]
    code, out, _ = cli(capsys, "job", "list", "--state", "errored", "--json")
    [errored] = json.loads("\n".join(out))
    assert errored["error"] == "step predict: DatasetError: no rows"
    assert errored["duration_s"] == 60.0  # started a minute after submission, ended at +2 min
    code, out, err = cli(capsys, "job", "list", "--state", "done")
    assert code == 2 and out == []
    assert err == [
        "error: state 'done' is not allowed; states: queued, running, completed, errored, canceled"
    ]


def test_a_dead_worker_is_listed_errored_ended_when_it_last_wrote(home, capsys):
    dead = write_job(home, background.RUNNING, ago(20))  # last wrote 1 minute after submission
    code, out, _ = cli(capsys, "job", "list", "--json")
    [job] = json.loads("\n".join(out))
    assert job["state"] == "errored"
    assert "ended without recording an outcome" in job["error"]
    assert job["completed_at"] == (ago(20) + datetime.timedelta(minutes=1)).isoformat()
    assert management.get_future(f"local:{dead.id}").status().state == "errored"


def test_list_with_no_jobs_folder_prints_the_header_only(home, capsys):
    assert not home.exists()
    code, out, _ = cli(capsys, "job", "list")
    assert code == 0 and len(out) == 1 and out[0].startswith("ID")


def test_list_reads_the_jobs_folder_of_the_config(home, tmp_path, capsys):
    elsewhere = tmp_path / "team-jobs"
    job = write_job(elsewhere, "completed", ago(1), ago(1, seconds=-90))
    default = write_job(home, "completed", ago(2), ago(2, seconds=-90))
    config = tmp_path / "run.yaml"
    local = f"{{home: {elsewhere}}}"
    config.write_text(
        "model_management:\n"
        f"  job_predictors:\n    default: {{type: LocalJobPredictor, config: {local}}}\n"
        f"  trainers:\n    default: {{type: LocalTrainer, config: {local}}}\n"
    )
    code, out, err = cli(capsys, "job", "list", "--config", str(config))
    assert code == 0, err
    assert ids(out) == [f"local:{job.id}"]
    # From code, the same manager lists the same; the default one lists the default folder.
    configured = management.ModelManager.from_file(config)
    assert [j.id for j in configured.list_jobs()] == [f"local:{job.id}"]
    assert [j.id for j in management.ModelManager().list_jobs(state="completed")] == [
        f"local:{default.id}"
    ]


# %% PRUNE


def folders(home: pathlib.Path) -> set[str]:
    return {path.name for path in home.iterdir()} if home.exists() else set()


def test_prune_removes_only_the_jobs_that_ended_long_enough_ago(home, jobs, capsys):
    made, broken = jobs
    freed = sum(listing._size(made[name].path) for name in ("errored", "completed"))
    freed += listing._size(broken)
    code, out, err = cli(capsys, "job", "prune", "--older-than", "30")
    assert code == 0, err
    # Ended 35 and 40 days ago, and the folder unreadable for 50 days; not the one that ended
    # 3 days ago, nor the running one submitted 45 days ago, nor the queued one.
    gone = [made["errored"], made["completed"]]
    assert [line.split()[:5] for line in out[:-1]] == [
        ["removed", f"local:{made['errored'].id}", "inference", "errored", "ended"],
        ["removed", f"local:{made['completed'].id}", "training", "completed", "ended"],
        ["removed", f"local:{broken.name}", "-", "unreadable", "ended"],
    ]
    assert out[-1] == f"removed 3 jobs, freed {listing.size_text(freed)}"
    left = folders(home)
    assert {folder.id for folder in gone} & left == set()
    assert broken.name not in left
    assert {made[name].id for name in ("canceled", "running", "queued")} <= left
    assert not any(name.startswith(listing.ASIDE) for name in left)  # leftovers cleaned too
    assert "notes.txt" in left  # not a job: not touched
    assert freed > 2000  # their outputs went with them


def test_prune_reports_the_space_freed(home, capsys):
    mib = 1024**2
    old = [
        write_job(home, "completed", ago(10 + n), ago(10 + n), output_bytes=3 * mib) for n in (0, 1)
    ]
    total = sum(listing._size(folder.path) for folder in old)
    report = management.ModelManager().prune_jobs(older_than=5, dry_run=True)
    assert report.dry_run and report.bytes_freed == total
    assert [pruned.job.id for pruned in report.removed] == [f"local:{f.id}" for f in old]
    assert folders(home) == {folder.id for folder in old}  # a dry run removes nothing
    code, out, _ = cli(capsys, "job", "prune", "--older-than", "5")
    assert code == 0
    assert out[-1] == f"removed 2 jobs, freed {listing.size_text(total)}"
    assert listing.size_text(total) == "6.0 MiB"
    assert folders(home) == set()


def test_dry_run_removes_nothing_and_says_what_it_would(home, jobs, capsys):
    made, broken = jobs
    before = folders(home)
    code, out, _ = cli(capsys, "job", "prune", "--older-than", "1", "--dry-run")
    assert code == 0
    assert [line.split()[2] for line in out[:-1]] == [
        f"local:{made['canceled'].id}",
        f"local:{made['errored'].id}",
        f"local:{made['completed'].id}",
        f"local:{broken.name}",
    ]
    assert all(line.startswith("would remove local:") for line in out[:-1])
    assert out[-1].startswith("would remove 4 jobs, would free ")
    assert out[-1].endswith("(dry run: nothing removed)")
    assert folders(home) == before


def test_a_running_job_is_never_removed(home, workers, capsys):
    # Its state says it ended long ago, yet its worker still runs: it stays.
    job_id = background.new_id()
    worker = start_worker(workers, home, job_id)
    write_job(home, "completed", ago(90), ago(90), worker=worker, job_id=job_id)
    running = running_job(home, workers, ago(90))
    code, out, _ = cli(capsys, "job", "prune", "--older-than", "0")
    assert code == 0
    assert out == ["removed 0 jobs, freed 0 B"]
    assert folders(home) == {job_id, running.id}
    assert management.get_future(f"local:{running.id}").status().state == "running"


def test_prune_by_state_and_the_unreadable_stay(home, jobs, capsys):
    made, broken = jobs
    code, out, _ = cli(capsys, "job", "prune", "--older-than", "0", "--state", "canceled")
    assert code == 0
    assert [line.split()[1] for line in out[:-1]] == [f"local:{made['canceled'].id}"]
    left = folders(home)
    assert made["canceled"].id not in left
    assert {made["errored"].id, made["completed"].id, broken.name} <= left


def test_a_dead_worker_is_pruned_by_when_it_last_wrote(home, capsys):
    dead = write_job(home, background.RUNNING, ago(40))
    recent = write_job(home, background.RUNNING, ago(2))
    code, out, _ = cli(capsys, "job", "prune", "--older-than", "30")
    assert code == 0
    assert [line.split()[1:4] for line in out[:-1]] == [
        [f"local:{dead.id}", "inference", "errored"]
    ]
    assert folders(home) == {recent.id}


def test_a_young_unreadable_folder_may_be_a_job_being_submitted(home, capsys):
    # A minute before now (NOW is the module's import time, minutes ago in a long session).
    young = unreadable(home, datetime.datetime.now(datetime.UTC).replace(microsecond=0)
                       - datetime.timedelta(minutes=1), text="")  # fmt: skip
    code, out, _ = cli(capsys, "job", "prune", "--older-than", "0")
    assert code == 0 and out == ["removed 0 jobs, freed 0 B"]
    assert folders(home) == {young.name}


def test_bad_prune_input_is_refused_and_nothing_is_removed(home, jobs, capsys):
    before = folders(home)
    code, out, err = cli(capsys, "job", "prune", "--older-than", "a month")
    assert (code, out) == (2, [])
    assert err == ["error: older_than 'a month' is not allowed; a number of days, 0 or more"]
    code, out, err = cli(capsys, "job", "prune", "--older-than", "-1")
    assert code == 2
    assert err == ["error: older_than '-1' is not allowed; a number of days, 0 or more"]
    code, out, err = cli(capsys, "job", "prune", "--older-than", "1", "--state", "running")
    assert (code, out) == (2, [])
    assert err == [
        "error: state 'running' is not allowed; states a job ends in: completed, errored, canceled"
    ]
    assert folders(home) == before


def test_job_status_meanwhile_finds_a_job_whole_or_not_at_all(home):
    """A `job status` racing a prune gets a status or "not found", never a half-gone folder."""
    made = [write_job(home, "completed", ago(10), ago(10)) for _ in range(30)]
    seen: list[str] = []
    done = threading.Event()

    def follow() -> None:
        while not done.is_set():
            for folder in made:
                try:
                    seen.append(management.get_future(f"local:{folder.id}").status().state)
                except futures.FutureNotFound:
                    seen.append("gone")
                except Exception as error:  # what the test is about
                    seen.append(f"{type(error).__name__}: {error}")

    reader = threading.Thread(target=follow)
    reader.start()
    try:
        report = listing.prune(home, older_than=1)
    finally:
        done.set()
        reader.join()
    assert len(report.removed) == 30
    assert set(seen) <= {"completed", "gone"}, set(seen) - {"completed", "gone"}
    with pytest.raises(futures.FutureNotFound, match=f"no local job {made[0].id}"):
        management.get_future(f"local:{made[0].id}")


def test_help_says_kfp_runs_are_never_pruned_and_lists_the_states(capsys):
    with pytest.raises(SystemExit):
        main(["job", "prune", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "KFP runs are never pruned" in text
    assert "--state STATE only the jobs that ended so: completed, errored, canceled" in text
    with pytest.raises(SystemExit):
        main(["job", "list", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"only the jobs in this state: {', '.join(listing.STATES)}" in text
    assert set(listing.STATES) == futures.FINAL_STATES | {futures.QUEUED, futures.RUNNING}


# %% KFP


@pytest.fixture
def kfp(monkeypatch, tmp_path):
    """The fake KFP API server, two runs a page, with kfp.Client kept hermetic."""
    isolate_kfp_client(monkeypatch, tmp_path)
    with FakeKfpApiServer(max_page_size=2) as server:
        yield server


def rfc3339(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_host_lists_the_kfp_runs_too_page_by_page(home, kfp, capsys):
    local = write_job(home, "completed", ago(5), ago(5, minutes=-3))
    kfp.pipelines["p-training"] = {"pipeline_id": "p-training", "display_name": "training"}
    kfp.pipelines["p-other"] = {"pipeline_id": "p-other", "display_name": "someone-elses"}
    finished = rfc3339(ago(1, minutes=-20))
    trained = kfp.add_run("SUCCEEDED", "nightly", rfc3339(ago(1)), finished, "p-training")
    again = kfp.add_run("RUNNING", "retrain", rfc3339(ago(hours=2)), pipeline_id="p-training")
    scored = kfp.add_run("FAILED", "inference-20260101-100000", rfc3339(ago(10)), rfc3339(ago(10)))
    kfp.add_run("SUCCEEDED", "theirs", rfc3339(ago(hours=1)), rfc3339(ago(0)), "p-other")
    code, out, err = cli(capsys, "job", "list", "--host", kfp.url)
    assert code == 0, err
    assert ids(out) == [
        f"kfp:{again['run_id']}", f"kfp:{trained['run_id']}", f"local:{local.id}",
        f"kfp:{scored['run_id']}",
    ]  # fmt: skip
    rows = {line.split()[0]: line.split() for line in out[1:]}
    assert rows[f"kfp:{trained['run_id']}"][1:3] == ["training", "completed"]
    assert rows[f"kfp:{trained['run_id']}"][-1] == "20m00s"
    assert rows[f"kfp:{again['run_id']}"][1:3] == ["training", "running"]
    assert rows[f"kfp:{scored['run_id']}"][1:3] == ["inference", "errored"]
    # Four runs, two a page: two pages; each pipeline asked for once.
    assert kfp.count_requests("GET", "/apis/v2beta1/runs") == 2
    assert kfp.count_requests("GET", "/apis/v2beta1/pipelines/p-training") == 1
    code, out, _ = cli(capsys, "job", "list", "--host", kfp.url, "--state", "errored")
    assert ids(out) == [f"kfp:{scored['run_id']}"]
    # A listed run is followed by its id.
    code, out, _ = cli(capsys, "job", "status", f"kfp:{trained['run_id']}", "--host", kfp.url)
    assert json.loads("\n".join(out))["state"] == "completed"


def test_the_configs_kfp_backend_is_listed_and_never_pruned(home, kfp, tmp_path, capsys):
    long_ago = rfc3339(ago(400))
    run = kfp.add_run("SUCCEEDED", "training-20250101-000000", long_ago, long_ago)
    config = tmp_path / "run.yaml"
    cluster = f"{{type: KFPTrainer, config: {{host: '{kfp.url}'}}}}"
    config.write_text(f"model_management:\n  trainers:\n    cluster: {cluster}\n")
    manager = management.ModelManager.from_file(config)
    assert [job.id for job in manager.list_jobs()] == [f"kfp:{run['run_id']}"]
    code, out, _ = cli(capsys, "job", "prune", "--older-than", "0", "--config", str(config))
    assert code == 0 and out == ["removed 0 jobs, freed 0 B"]
    assert kfp.count_requests("DELETE", f"/apis/v2beta1/runs/{run['run_id']}") == 0
    assert list(kfp.runs) == [run["run_id"]]
