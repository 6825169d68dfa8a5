"""Small charts drawn as SVG text: bars, lines and points on a shared category axis.

The predict step draws its drift charts on every run, and matplotlib cost it about a second
there (its import, the figure, the PNG encoding) for a few bar panels. These charts are drawn in
milliseconds with no library. They go into the reports as `data:` URIs in `<img>` tags, as the
PNG charts do, so the pages still load nothing and run nothing (an SVG shown by `<img>` runs
no script).
"""

from __future__ import annotations

import base64
import dataclasses
import html
import math
import typing as T

FONT = "system-ui, sans-serif"
GRID = "#d0d7de"
INK = "#1f2328"
# A panel's margins: the y labels on the left, the title on top, the slanted x labels below.
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 44, 64
TICKS = 5


@dataclasses.dataclass(frozen=True)
class Series:
    """One series of a panel.

    Args:
        name: its legend entry.
        values: one value per category (None: no value there).
        color: its fill or stroke.
        style: "bar" (side by side with the panel's other bars), "line" (joined points), or
            "points" (squares, unjoined).
        positions: where each value sits on the category axis, as fractional category indices
            (a value between two runs); the categories' own positions if None.
    """

    name: str
    values: T.Sequence[float | None]
    color: str
    style: T.Literal["bar", "line", "points"] = "bar"
    positions: T.Sequence[float] | None = None


@dataclasses.dataclass(frozen=True)
class Panel:
    """One chart: a title, the categories along x, and the series drawn over them.

    Args:
        title: shown above the panel.
        categories: the x axis' labels, in order.
        series: what is drawn.
        y_label: the y axis' name.
        from_zero: the y axis starts at 0 (shares, counts); else it spans the values.
        height: the panel's height in pixels, margins included.
    """

    title: str
    categories: T.Sequence[str]
    series: T.Sequence[Series]
    y_label: str = ""
    from_zero: bool = True
    height: int = 250


def chart(panels: T.Sequence[Panel], width: int = 640) -> str:
    """The panels stacked top to bottom, as one SVG image's `data:` URI."""
    offsets = [sum(panel.height for panel in panels[:index]) for index in range(len(panels))]
    body = "".join(
        f'<g transform="translate(0,{offset})">{_panel(panel, width)}</g>'
        for panel, offset in zip(panels, offsets, strict=True)
    )
    height = sum(panel.height for panel in panels)
    document = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="{FONT}" fill="{INK}">'
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>{body}</svg>'
    )
    return "data:image/svg+xml;base64," + base64.b64encode(document.encode()).decode("ascii")


def ticks(low: float, high: float, count: int = TICKS) -> list[float]:
    """Round tick values from at or below `low` to at or above `high` (1, 2 or 5 times 10^k)."""
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"ticks need finite bounds, got {low} and {high}")
    if high <= low:  # one value: a unit-wide range around it
        low, high = low - 0.5, high + 0.5
    rough = (high - low) / max(count - 1, 1)
    power = 10 ** math.floor(math.log10(rough))
    step = next(f * power for f in (1, 2, 5, 10) if f * power >= rough)
    first = math.floor(low / step + 1e-9) * step
    values = [first]
    while values[-1] < high - 1e-9 * step:
        values.append(values[-1] + step)
    return [round(value, 12) for value in values]


def _label(value: float) -> str:
    return f"{value:.3g}"


def _short(text: str, limit: int = 24) -> str:
    """A category label cut to fit under its slot (the full one is in the report's tables)."""
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _panel(panel: Panel, width: int) -> str:
    """One panel's SVG elements, in a box of `width` by `panel.height` pixels at 0, 0."""
    plot_width = width - LEFT - RIGHT
    plot_height = panel.height - TOP - BOTTOM
    values = [v for s in panel.series for v in s.values if v is not None and math.isfinite(v)]
    low = min([*values, 0.0] if panel.from_zero else values or [0.0])
    high = max([*values, 0.0] if panel.from_zero else values or [1.0])
    scale = ticks(low, high)
    bottom, top = scale[0], scale[-1]
    slots = max(len(panel.categories), 1)
    slot = plot_width / slots

    def x(position: float) -> float:
        return LEFT + (position + 0.5) * slot

    def y(value: float) -> float:
        return TOP + plot_height * (top - value) / (top - bottom)

    parts = [
        f'<text x="{LEFT}" y="16" font-size="12">{html.escape(panel.title)}</text>',
        f'<text transform="translate(14,{TOP + plot_height / 2:.1f}) rotate(-90)" '
        f'font-size="10" text-anchor="middle">{html.escape(panel.y_label)}</text>',
    ]
    for tick in scale:
        at = y(tick)
        parts.append(
            f'<line x1="{LEFT}" x2="{LEFT + plot_width}" y1="{at:.1f}" y2="{at:.1f}" '
            f'stroke="{GRID}" stroke-width="1"/>'
            f'<text x="{LEFT - 6}" y="{at + 3:.1f}" font-size="9" text-anchor="end">'
            f"{_label(tick)}</text>"
        )
    for index, category in enumerate(panel.categories):
        at = x(index)
        parts.append(
            f'<text transform="translate({at:.1f},{TOP + plot_height + 12}) rotate(-30)" '
            f'font-size="9" text-anchor="end">{html.escape(_short(str(category)))}</text>'
        )
    bars = [s for s in panel.series if s.style == "bar"]
    bar_width = slot * 0.8 / max(len(bars), 1)
    baseline = y(0.0 if bottom < 0 < top else bottom)
    for series in panel.series:
        positions = series.positions or range(len(series.values))
        points = [
            (position, value)
            for position, value in zip(positions, series.values, strict=True)
            if value is not None and math.isfinite(value)
        ]
        if series.style == "bar":
            shift = (bars.index(series) - len(bars) / 2) * bar_width
            for position, value in points:
                y_top, y_end = sorted((y(value), baseline))
                parts.append(
                    f'<rect x="{x(position) + shift:.1f}" y="{y_top:.1f}" '
                    f'width="{bar_width:.1f}" height="{y_end - y_top:.1f}" '
                    f'fill="{series.color}"><title>{html.escape(series.name)}: '
                    f"{_label(value)}</title></rect>"
                )
            continue
        if series.style == "line" and len(points) > 1:
            joined = " ".join(f"{x(p):.1f},{y(v):.1f}" for p, v in points)
            parts.append(
                f'<polyline points="{joined}" fill="none" stroke="{series.color}" '
                'stroke-width="2"/>'
            )
        for position, value in points:
            cx, cy = x(position), y(value)
            mark = (
                f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="3.5"'
                if series.style == "line"
                else f'<rect x="{cx - 3.5:.1f}" y="{cy - 3.5:.1f}" width="7" height="7"'
            )
            parts.append(
                f'{mark} fill="{series.color}"><title>{html.escape(series.name)}: '
                f"{_label(value)}</title>{'</circle>' if series.style == 'line' else '</rect>'}"
            )
    parts.append(_legend(panel.series, LEFT + plot_width))
    return "".join(parts)


def _legend(series: T.Sequence[Series], right: float) -> str:
    """The series' names and colours, in a row ending at `right`, between title and plot."""
    entries, at = [], right
    for one in reversed(series):
        at -= 7 * len(one.name) + 22
        entries.append(
            f'<rect x="{at:.1f}" y="{TOP - 21}" width="10" height="10" fill="{one.color}"/>'
            f'<text x="{at + 14:.1f}" y="{TOP - 12}" font-size="10">{html.escape(one.name)}</text>'
        )
    return "".join(entries)
