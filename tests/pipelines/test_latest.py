"""`latest/`: the run's HTML reports open as pages in a real browser, at the paths printed.

KFP names an HTML artifact `report`, with no extension; a browser shows a symlink to such a
file as plain text. The reports are copied to `latest/*.html` instead, and this renders the
exact path that `run --local` prints in headless Chromium.
"""

from __future__ import annotations

import pathlib
import subprocess

import pytest

from pipelines.local import runner as local
from tests.components.test_report_browser import CHROMIUM_FLAGS, chromium

pytestmark = pytest.mark.browser

PAGE = (
    "<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title></head>"
    "<body><h1 id='heading'>{title} heading</h1><p>ok</p></body></html>"
)


def dump_dom(path: pathlib.Path, profile: pathlib.Path) -> str:
    """The DOM that Chromium builds from a local file."""
    command = [
        chromium(),
        *CHROMIUM_FLAGS,
        f"--user-data-dir={profile}",
        "--dump-dom",
        path.as_uri(),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.fixture
def run_dir(tmp_path: pathlib.Path) -> pathlib.Path:
    """A run folder as kfp.local leaves it: task folders, artifacts named after the output."""
    run = tmp_path / "runs" / "pipeline-root" / "lifecycle-2024-01-01-00-00-00-000000"
    for task, title in (("explain-1a2b", "Explanations"), ("evaluate-3c4d", "Evaluation")):
        (run / task).mkdir(parents=True)
        (run / task / "report").write_text(PAGE.format(title=title))
    (run / "predict-5e6f").mkdir()
    (run / "predict-5e6f" / "predictions").write_bytes(b"PAR1...PAR1")
    return run


def printed_paths(out: str) -> dict[str, pathlib.Path]:
    """`  task/artifact   /abs/path  (model vN)` lines of the printed outputs, by task/artifact."""
    found = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and "/" in parts[0] and parts[1].startswith("/"):
            found[parts[0]] = pathlib.Path(parts[1])
    return found


def test_printed_html_reports_render_as_pages(
    run_dir: pathlib.Path,
    tmp_path: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path / "runs")  # printed paths must not be relative to this
    returned = local.print_outputs(run_dir.relative_to(tmp_path / "runs"))

    paths = printed_paths(capsys.readouterr().out)
    assert paths == returned
    assert set(paths) == {"explain/report", "evaluate/report", "predict/predictions"}
    for path in paths.values():
        assert path.is_absolute()
        assert path.parent == tmp_path / "runs" / "latest"
    explanations = paths["explain/report"]
    assert explanations.name == "explanations.html"
    assert not explanations.is_symlink()
    # Parquet stays a link to the artifact.
    assert paths["predict/predictions"].resolve() == run_dir / "predict-5e6f" / "predictions"

    for key, title in (("explain/report", "Explanations"), ("evaluate/report", "Evaluation")):
        dom = dump_dom(paths[key], tmp_path / f"profile-{title}")
        # Parsed as HTML: the heading is an element, not escaped text inside a <pre>.
        assert f'<h1 id="heading">{title} heading</h1>' in dom
        assert "&lt;h1" not in dom
        assert "<pre" not in dom


def test_a_new_run_replaces_latest(run_dir: pathlib.Path) -> None:
    local.outputs(run_dir)
    newer = run_dir.parent / "inference-2024-01-02"
    (newer / "explain-9z").mkdir(parents=True)
    (newer / "explain-9z" / "report").write_text(PAGE.format(title="Newer"))

    found = local.outputs(newer)

    assert set(found) == {"explain/report"}
    latest = run_dir.parent.parent / "latest"
    assert sorted(p.name for p in latest.iterdir()) == ["explanations.html"]
    assert "Newer heading" in (latest / "explanations.html").read_text()


@pytest.mark.parametrize(
    ("writer", "name"),
    [
        ({"KIND": "CSVWriter"}, "predictions.csv"),
        ({"KIND": "ParquetWriter"}, "predictions.parquet"),
    ],
)
def test_predictions_are_named_by_the_format_the_writer_wrote(
    tmp_path: pathlib.Path, writer: dict, name: str
) -> None:
    # `writer: {KIND: CSVWriter}` left CSV at latest/predictions.parquet, which pandas refuses.
    import pandas as pd

    from components.io import datasets

    run = tmp_path / "runs" / "pipeline-root" / "inference-2024-01-01-00-00-00-000000"
    (run / "predict").mkdir(parents=True)
    output = datasets.writer_for(str(run / "predict" / "predictions"), **writer)
    output.write(pd.DataFrame({"prediction": [1.5, 2.5]}))

    found = local.outputs(run)

    assert found["predict/predictions"].name == name
    reader = datasets.reader_for(str(found["predict/predictions"]))
    assert reader.read()["prediction"].tolist() == [1.5, 2.5]
