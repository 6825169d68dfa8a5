"""The predict component's drift report, of a shifted batch, renders in Chromium with its findings.

A model is trained on the real bike rows against the session's real MLflow server (its reference
profile stored with it); the predict component's own function then scores a batch shifted on
three features, in this process, with local artifact paths. The HTML report it writes is served
from 127.0.0.1 to headless Chromium: the rendered DOM's text must name what drifted, and the page
must load nothing but itself.
"""

from __future__ import annotations

import html.parser
import pathlib
import subprocess
import uuid

import numpy as np
import pandas as pd
import pytest
from kfp import dsl
from PIL import Image

from components.core import models
from components.inference import predict
from components.io import datasets
from components.jobs import promotion, training
from tests.components.test_report_browser import (
    CHROMIUM_FLAGS,
    LoggingServer,
    assert_not_blank,
    assert_self_contained,
    chromium,
    render,
)
from tests.conftest import BIKE_PARQUET
from tests.jobs.helpers import BIKE_EXCLUDE, run, settings

pytestmark = [
    pytest.mark.integration,
    pytest.mark.browser,
    pytest.mark.filterwarnings("ignore::PendingDeprecationWarning"),
]

# The colour of the batch's bars in the drift charts (components.core.reports).
BATCH_BLUE = (0x09, 0x69, 0xDA)


class Text(html.parser.HTMLParser):
    """The text of a document, outside <style>."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = False

    def handle_starttag(self, tag, attrs) -> None:
        self._skip = tag in {"style", "script"}

    def handle_endtag(self, tag) -> None:
        self._skip = False

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)

    @property
    def text(self) -> str:
        return " ".join(" ".join(self.parts).split())


def rendered_text(page: pathlib.Path, tmp_path: pathlib.Path) -> str:
    """The text of the page's DOM once Chromium has loaded and laid it out (`--dump-dom`)."""
    folder = tmp_path / "dom"
    folder.mkdir()
    (folder / "report.html").write_bytes(page.read_bytes())
    with LoggingServer(folder) as server:
        command = [
            chromium(),
            *CHROMIUM_FLAGS,
            f"--user-data-dir={tmp_path / 'dom-profile'}",
            "--dump-dom",
            server.url("report.html"),
        ]
        result = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    parser = Text()
    parser.feed(result.stdout)
    return parser.text


@pytest.fixture(scope="module")
def report(mlflow_server, bike, tmp_path_factory) -> dict[str, pathlib.Path]:
    """Train and promote a model, then predict a shifted batch with the predict component."""
    folder = tmp_path_factory.mktemp("drift-report")
    name = f"drift-browser-{uuid.uuid4().hex[:8]}"
    common = settings(mlflow_server, name)
    shifted = bike.sample(4000, random_state=3).reset_index(drop=True)
    shifted["temp"] = shifted["temp"] + 0.4
    shifted.loc[shifted.index % 4 == 0, "windspeed"] = np.nan
    data = folder / "shifted.parquet"
    shifted.to_parquet(data, index=False)
    outputs = {key: folder / key for key in ("metrics", "table", "report")}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
        patch.delenv("SLACK_WEBHOOK_URL", raising=False)
        run(
            training.TrainingJob(
                inputs=datasets.ParquetReader(path=str(BIKE_PARQUET)),
                target="cnt",
                model=models.HistGradientBoostingRegressorModel(params={"max_iter": 30}),
                model_name=name,
                exclude=BIKE_EXCLUDE,
                categorical=["season", "weathersit"],
                **common,
            )
        )
        run(promotion.PromotionJob(model_name=name, version=1, settle_seconds=0, **common))
        metrics = dsl.Metrics(uri=str(outputs["metrics"]))
        rows, version = predict.python_func(
            predictions=dsl.Dataset(uri=str(folder / "predictions")),
            summary=dsl.Markdown(uri=str(folder / "summary")),
            drift_metrics=metrics,
            drift_table=dsl.Dataset(uri=str(outputs["table"])),
            drift_report=dsl.HTML(uri=str(outputs["report"])),
            data=str(data),
            model_name=name,
            experiment=name,
        )
    assert (rows, version) == (4000, 1)
    return {**outputs, "metrics_object": metrics}


def test_the_drift_report_renders_and_names_what_drifted(report, tmp_path):
    page = report["report"]
    text = rendered_text(page, tmp_path)
    assert "Monitoring: " in text and " v1" in text
    assert "2 of 12 features drifted." in text
    assert "temp (Wasserstein" in text and "outside the training range" in text
    assert "windspeed (missing 25% (training 0%))" in text
    # The performance estimated before the labels, with its band, next to the holdout's.
    assert "Estimated performance (before the labels)" in text and "rmse" in text
    screenshot, requests = render(page, tmp_path)
    assert_not_blank(screenshot)
    assert_self_contained(page, requests)
    # Chromium drew the SVG charts: the batch's bars are on the screen in their colour.
    with Image.open(screenshot) as image:
        colours = dict((colour, count) for count, colour in image.convert("RGB").getcolors(10**7))
    assert colours.get(BATCH_BLUE, 0) > 2000, "no bar of the batch's shares was drawn"


def test_the_drift_table_and_metrics_hold_the_scores(report):
    table = pd.read_parquet(report["table"])
    drifted = table.loc[table["status"] == "drift", "column"].tolist()
    # Warmer hours rent more bikes: the predictions moved with temp, against the training
    # rows' own predictions.
    assert sorted(drifted) == ["(prediction)", "temp", "windspeed"]
    assert table["column"].iloc[-1] == "(prediction)"
    scores = report["metrics_object"].metadata
    assert scores["drift_drifted_features"] == 2 and scores["drift_dataset_drift"] == 1
    temp = table.set_index("column").loc["temp"]
    assert temp["statistic"] == "Wasserstein" and temp["value"] >= temp["limit"]
    assert scores["drift_psi.temp"] == pytest.approx(temp["psi"])
    assert scores["drift_distance.temp"] == pytest.approx(temp["value"])
