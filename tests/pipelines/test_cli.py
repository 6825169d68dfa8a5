"""CLI conventions: --version, the installed command's name, `run` without --local."""

from __future__ import annotations

import importlib.metadata
import pathlib
import re
import subprocess
import sys

import pytest

from pipelines.cli import main

SCRIPT = pathlib.Path(sys.executable).parent / "kfp-lifecycle"


def test_version_names_the_package_and_the_kfp_and_mlflow_it_runs(capsys):
    with pytest.raises(SystemExit) as exit:
        main(["--version"])
    assert exit.value.code == 0
    out = capsys.readouterr().out.strip()
    version = importlib.metadata.version
    assert out == (
        f"kfp-lifecycle {version('kfp-model-lifecycle')} "
        f"(kfp {version('kfp')}, mlflow {version('mlflow')})"
    )


def test_the_installed_command_prints_its_own_name_in_usage():
    assert SCRIPT.exists(), "the venv lacks the kfp-lifecycle script: make venv"
    done = subprocess.run([str(SCRIPT), "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: kfp-lifecycle ")
    assert "  kfp-lifecycle run NAME --local" in done.stdout
    assert "python -m pipelines run" not in done.stdout
    module = subprocess.run(
        [sys.executable, "-m", "pipelines", "--help"], capture_output=True, text=True, timeout=120
    )
    assert module.stdout.startswith("usage: python -m pipelines ")


def test_run_without_local_says_what_to_add_and_runs_nothing(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("LIFECYCLE_HOME", str(tmp_path))
    code = main(["run", "training", "--param", "target=y", "--param", "model_name=m"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "error: `run` runs a pipeline on this machine: add --local (run training --local ...); "
        "to run it on a KFP cluster, use `submit training --host URL`"
    ]
    assert list(tmp_path.iterdir()) == []


def test_a_config_that_names_its_pipeline_needs_no_name(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("LIFECYCLE_HOME", str(tmp_path / "home"))
    config = tmp_path / "bikes.yaml"
    config.write_text(
        "pipeline: training\n"
        "parameters: {data: demo://bike-sharing/hour.parquet, target: cnt, model_name: bikes}\n"
    )
    assert main(["run", "--local", "--config", str(config), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("pipeline training: every parameter checked")
    assert re.search(r"^  model_name +bikes$", out, flags=re.M)
    # Without a name anywhere: what to add, and nothing runs.
    config.write_text("parameters: {target: cnt}\n")
    for command in (["run", "--local"], ["submit", "--host", "http://127.0.0.1:9"]):
        assert main([*command, "--config", str(config)]) == 2
        assert capsys.readouterr().err.strip() == (
            "error: name the pipeline (training, inference, lifecycle, monitoring, tuning) before "
            "the options, "
            "or set `pipeline: NAME` in the --config file"
        )
    assert not (tmp_path / "home").exists()
