"""The HTML reports render in a real browser and load nothing from the network.

The reports are made by the evaluate and explain components' own functions, run in this process
with local artifact paths against the real MLflow server, then served from 127.0.0.1 to headless
Chromium, which takes a screenshot. The server logs every request: a page that is truly
self-contained asks for nothing but itself (its charts are inline data: URIs). References to
other hosts never reach that server, so the page's markup is also checked for any.
"""

from __future__ import annotations

import base64
import functools
import html.parser
import http.server
import os
import pathlib
import re
import shutil
import subprocess
import threading
import typing as T
import uuid

import pandas as pd
import pytest
from kfp import dsl
from PIL import Image

from components.evaluation import evaluate
from components.explanations import explain
from components.promotion import promote
from components.training import train
from tests.conftest import BIKE_PARQUET, BIKE_SCHEMA

pytestmark = [
    pytest.mark.integration,
    pytest.mark.browser,
    pytest.mark.filterwarnings("ignore::PendingDeprecationWarning"),  # shap's matplotlib use
]

WIDTH, HEIGHT = 1200, 1600
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    f"--window-size={WIDTH},{HEIGHT}",
]
# Chromium asks every site for its icon by itself; the page does not ask for it.
BROWSER_OWN_REQUESTS = {"/favicon.ico"}
# Attributes through which a page loads (or, for href, links to) another resource.
URL_ATTRIBUTES = {"src", "href", "srcset", "poster", "data", "action", "background", "xlink:href"}
# Elements that load a resource or run code whatever their attributes say.
LOADING_ELEMENTS = {"script", "link", "iframe", "frame", "object", "embed", "base", "meta-refresh"}
REMOTE = re.compile(r"^\s*(?:[a-z][a-z0-9+.-]*:)?//", re.IGNORECASE)
# Charts are inline images: PNG (matplotlib) or SVG (components.core.svg).
SVG_IMAGE = "data:image/svg+xml;base64,"
INLINE_IMAGES = ("data:image/png;base64,", SVG_IMAGE)
CSS_URL = re.compile(r"url\(\s*['\"]?(?!data:)|@import", re.IGNORECASE)


def chromium() -> str:
    """The Chromium executable; a failure on CI, where .ci/run installs it, else a skip."""
    for name in ("chromium", "chromium-browser", "/usr/bin/chromium"):
        found = shutil.which(name)
        if found:
            return found
    if os.environ.get("CI"):
        pytest.fail("Chromium is not installed, and CI is set: .ci/run installs it (apt chromium)")
    pytest.skip("Chromium is not installed (Debian package `chromium`); CI installs it")


class LoggingServer:
    """Serve one folder on 127.0.0.1 and record the path of every request."""

    def __init__(self, folder: pathlib.Path):
        self.paths: list[str] = []
        paths = self.paths

        class Handler(http.server.SimpleHTTPRequestHandler):
            def send_head(self):
                paths.append(self.path)
                return super().send_head()

            def log_message(self, format: str, *args: T.Any) -> None:
                pass

        handler = functools.partial(Handler, directory=str(folder))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, name: str) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/{name}"

    def __enter__(self) -> LoggingServer:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def render(page: pathlib.Path, tmp_path: pathlib.Path) -> tuple[pathlib.Path, list[str]]:
    """Open a page in headless Chromium from a local server; return its screenshot and requests."""
    executable = chromium()
    folder = tmp_path / "site"
    folder.mkdir()
    shutil.copy(page, folder / "report.html")
    screenshot = tmp_path / "report.png"
    with LoggingServer(folder) as server:
        command = [
            executable,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={screenshot}",
            server.url("report.html"),
        ]
        result = subprocess.run(command, capture_output=True, text=True, timeout=180)
        requests = list(server.paths)
    assert screenshot.exists(), (
        f"no screenshot (exit {result.returncode}):\n{result.stderr[-3000:]}"
    )
    return screenshot, requests


def assert_not_blank(screenshot: pathlib.Path) -> None:
    """The screenshot shows a page: charts and text in many colours, not a white sheet."""
    with Image.open(screenshot) as image:
        assert image.size == (WIDTH, HEIGHT)
        pixels = image.convert("RGB")
        colours = pixels.getcolors(maxcolors=WIDTH * HEIGHT)
        not_white = sum(count for count, colour in colours if colour != (255, 255, 255))
    assert len(colours) > 50, f"only {len(colours)} colours: is the page blank?"
    assert not_white > 0.005 * WIDTH * HEIGHT, "the page is nearly all white"


class Resources(html.parser.HTMLParser):
    """Collect what in a page could make a browser load something."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[str] = []
        self.remote: list[str] = []
        self.css: list[str] = []
        self.images: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag in LOADING_ELEMENTS or (tag == "meta" and values.get("http-equiv") == "refresh"):
            self.elements.append(tag)
        for name, value in attrs:
            if value is None:
                continue
            if name in URL_ATTRIBUTES and REMOTE.match(value):
                self.remote.append(f"<{tag} {name}={value[:80]}>")
            if name == "style" and CSS_URL.search(value):
                self.css.append(value[:80])
        if tag == "img":
            self.images.append(values.get("src") or "")
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style and CSS_URL.search(data):
            self.css.append(data[:80])


def assert_self_contained(page: pathlib.Path, requests: list[str]) -> None:
    """Nothing in the page can load a resource, and the browser asked only for the page."""
    resources = Resources()
    resources.feed(page.read_text(encoding="utf-8"))
    assert not resources.elements, f"elements that load or run something: {resources.elements}"
    assert not resources.remote, f"references to other hosts: {resources.remote}"
    assert not resources.css, f"style sheets that load something: {resources.css}"
    assert resources.images, "a report without charts?"
    for src in resources.images:
        assert src.startswith(INLINE_IMAGES), f"an image that is not inline: {src[:80]}"
        if src.startswith(SVG_IMAGE):  # an SVG's own markup could load or run something
            drawing = base64.b64decode(src.removeprefix(SVG_IMAGE)).decode()
            assert not re.search(r"<script|<foreignObject|href=|url\(", drawing), drawing[:300]
    assert [path for path in requests if path not in BROWSER_OWN_REQUESTS] == ["/report.html"]


@pytest.fixture(scope="module")
def reports(mlflow_server, tmp_path_factory) -> dict[str, pathlib.Path]:
    """Train, evaluate, promote and explain with the components' functions; the two reports."""
    folder = tmp_path_factory.mktemp("reports")
    data = folder / "small.parquet"
    pd.read_parquet(BIKE_PARQUET).head(3000).to_parquet(data)
    name = f"browser-{uuid.uuid4().hex[:8]}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
        patch.delenv("SLACK_WEBHOOK_URL", raising=False)
        model = dsl.Model(uri=str(folder / "model"))
        holdout = dsl.Dataset(uri=str(folder / "holdout"))
        [version] = train.python_func(
            target="cnt", model_name=name, data=str(data), holdout=holdout, model=model,
            metrics=dsl.Metrics(uri=str(folder / "train-metrics")),
            summary=dsl.Markdown(uri=str(folder / "train-summary")),
            card=dsl.Markdown(uri=str(folder / "train-card")),
            model_params={"max_iter": 30},
            exclude=["instant", "dteday", "casual", "registered"],
            categorical=["season", "weathersit"], experiment=name,
        )  # fmt: skip
        assert version == 1
        evaluation = dsl.HTML(uri=str(folder / "evaluation"))
        passed = evaluate.python_func(
            target="cnt", holdout=holdout, model=model,
            metrics=dsl.Metrics(uri=str(folder / "evaluate-metrics")),
            classification_metrics=dsl.ClassificationMetrics(uri=str(folder / "classification")),
            report=evaluation, summary=dsl.Markdown(uri=str(folder / "evaluate-summary")),
            card=dsl.Markdown(uri=str(folder / "evaluate-card")),
            champion=str(folder / "champion"), thresholds={"r2": 0.5}, experiment=name,
        )  # fmt: skip
        assert passed is True
        promote.python_func(
            version=version, summary=dsl.Markdown(uri=str(folder / "promote-summary")),
            model_name=name, experiment=name,
        )  # fmt: skip
        explanations = dsl.HTML(uri=str(folder / "explanations"))
        explained = explain.python_func(
            data=str(BIKE_PARQUET),
            models_explanations=dsl.Dataset(uri=str(folder / "models_explanations")),
            samples_explanations=dsl.Dataset(uri=str(folder / "samples_explanations")),
            report=explanations, summary=dsl.Markdown(uri=str(folder / "explain-summary")),
            card=dsl.Markdown(uri=str(folder / "explain-card")),
            model_name=name, max_samples=20, input_schema=str(BIKE_SCHEMA), experiment=name,
        )  # fmt: skip
        assert explained == version
    return {
        "explanations": pathlib.Path(explanations.path),
        "evaluation": pathlib.Path(evaluation.path),
    }


@pytest.mark.parametrize("report", ["explanations", "evaluation"])
def test_report_renders_and_loads_nothing(report, reports, tmp_path):
    page = reports[report]
    screenshot, requests = render(page, tmp_path)
    assert_not_blank(screenshot)
    assert_self_contained(page, requests)


def test_the_checks_see_a_page_that_loads_something(reports, tmp_path):
    """A page with a relative image and a web font: both checks object."""
    page = tmp_path / "leaky.html"
    text = reports["explanations"].read_text(encoding="utf-8")
    page.write_text(
        text.replace(
            "</body>",
            '<img src="chart.png"><link rel="stylesheet" href="https://fonts.example/css"></body>',
        ),
        encoding="utf-8",
    )
    screenshot, requests = render(page, tmp_path)
    assert_not_blank(screenshot)
    assert "/chart.png" in requests
    with pytest.raises(AssertionError, match="elements that load"):
        assert_self_contained(page, requests)
    with pytest.raises(AssertionError, match="report.html"):
        assert_self_contained(reports["explanations"], requests)
