"""The SVG charts: well-formed documents whose marks sit where their values say."""

from __future__ import annotations

import base64
import math
import xml.etree.ElementTree as ET

import pytest

from components.core import svg

NS = {"svg": "http://www.w3.org/2000/svg"}


def parsed(uri: str) -> ET.Element:
    """The SVG document inside a chart's data: URI (parsing fails on malformed markup)."""
    prefix = "data:image/svg+xml;base64,"
    assert uri.startswith(prefix)
    return ET.fromstring(base64.b64decode(uri.removeprefix(prefix)))


def titled(root: ET.Element, tag: str) -> dict[str, ET.Element]:
    """The marks of one tag that carry a tooltip, by its text ("series: value")."""
    found = {}
    for element in root.iter(f"{{{NS['svg']}}}{tag}"):
        title = element.find("svg:title", NS)
        if title is not None:
            found[title.text] = element
    return found


def test_bars_are_as_tall_as_their_values_side_by_side():
    panel = svg.Panel(
        "hr: PSI 0.2",
        ["a", "b", "c"],
        [
            svg.Series("training", [0.1, 0.4, 0.2], "#8c959f"),
            svg.Series("this batch", [0.2, None, 0.4], "#0969da"),
        ],
    )
    root = parsed(svg.chart([panel], width=500))
    assert (root.get("width"), root.get("height")) == ("500", "250")
    bars = titled(root, "rect")
    # One bar per value; the missing one is not drawn.
    assert set(bars) == {
        "training: 0.1",
        "training: 0.4",
        "training: 0.2",
        "this batch: 0.2",
        "this batch: 0.4",
    }
    height = {name: float(bar.get("height")) for name, bar in bars.items()}
    assert height["training: 0.4"] == pytest.approx(4 * height["training: 0.1"], abs=0.2)
    assert height["this batch: 0.2"] == pytest.approx(height["training: 0.2"], abs=0.1)
    # Bars stand on one baseline, and the batch's bar is right of the training's in a slot.
    bottoms = {round(float(b.get("y")) + float(b.get("height"))) for b in bars.values()}
    assert len(bottoms) == 1
    assert float(bars["this batch: 0.2"].get("x")) > float(bars["training: 0.1"].get("x"))
    assert float(bars["this batch: 0.2"].get("x")) < float(bars["training: 0.4"].get("x"))


def test_panels_stack_and_text_is_escaped():
    first = svg.Panel("<b>temp</b> & co", ["x < 1", "x >= 1"], [svg.Series("s", [1, 2], "#000")])
    second = svg.Panel("second", ["r1"], [svg.Series("t", [3], "#111")], height=180)
    root = parsed(svg.chart([first, second]))
    assert root.get("height") == "430"
    texts = [element.text for element in root.iter(f"{{{NS['svg']}}}text")]
    assert "<b>temp</b> & co" in texts and "x < 1" in texts and "second" in texts
    groups = root.findall("svg:g", NS)
    assert [g.get("transform") for g in groups] == ["translate(0,0)", "translate(0,250)"]


def test_lines_join_points_and_points_sit_between_runs():
    runs = ["run 1", "run 2", "run 3"]
    panel = svg.Panel(
        "",
        runs,
        [
            svg.Series("estimated", [10.0, None, 12.0], "#0969da", "line"),
            svg.Series("realized", [11.0], "#cf222e", "points", positions=[1.5]),
        ],
        from_zero=False,
    )
    root = parsed(svg.chart([panel]))
    [line] = root.iter(f"{{{NS['svg']}}}polyline")
    assert len(line.get("points").split()) == 2  # the missing value is skipped
    circles = titled(root, "circle")
    assert set(circles) == {"estimated: 10", "estimated: 12"}
    [square] = [mark for name, mark in titled(root, "rect").items() if name == "realized: 11"]
    middle = float(square.get("x")) + 3.5
    run_2 = float(circles["estimated: 10"].get("cx"))
    run_3 = float(circles["estimated: 12"].get("cx"))
    slot = (run_3 - run_2) / 2
    assert middle == pytest.approx(run_2 + 1.5 * slot, abs=0.2)
    # Not from zero: the axis spans the values, 10 is low and 12 high in the plot.
    assert float(circles["estimated: 10"].get("cy")) > float(circles["estimated: 12"].get("cy"))


@pytest.mark.parametrize(
    ("low", "high"),
    [(0.0, 0.37), (0.0, 1.0), (23.4, 27.9), (-3.0, 8.0), (0.0, 0.0), (5.0, 5.0), (0.0, 1e-7)],
)
def test_ticks_are_round_and_cover_the_range(low, high):
    values = svg.ticks(low, high)
    assert values[0] <= low and values[-1] >= high and 2 <= len(values) <= 12
    steps = {round(b - a, 12) for a, b in zip(values, values[1:], strict=False)}
    assert len(steps) == 1
    [step] = steps
    mantissa = step / 10 ** math.floor(math.log10(step))
    assert round(mantissa, 6) in {1.0, 2.0, 5.0}


def test_ticks_refuse_infinite_bounds():
    with pytest.raises(ValueError, match="finite"):
        svg.ticks(0.0, math.inf)


def test_a_panel_of_no_values_or_non_finite_ones_still_draws():
    panel = svg.Panel(
        "empty", ["a", "b"], [svg.Series("s", [None, math.nan], "#000", "line")], from_zero=False
    )
    root = parsed(svg.chart([panel]))
    assert not titled(root, "circle")
    zeros = svg.Panel("zeros", ["a"], [svg.Series("s", [0.0], "#000")])
    assert titled(parsed(svg.chart([zeros])), "rect")["s: 0"].get("height") == "0.0"


def test_long_category_labels_are_cut():
    label = "a very long category label that goes on"
    root = parsed(svg.chart([svg.Panel("t", [label], [svg.Series("s", [1], "#000")])]))
    texts = [element.text or "" for element in root.iter(f"{{{NS['svg']}}}text")]
    assert label not in texts
    assert any(t.startswith("a very long") and t.endswith("…") for t in texts)
