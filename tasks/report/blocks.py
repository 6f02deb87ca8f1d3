"""The run report's building blocks: tables, figures and notes, and the helpers that make them.

A report is a list of :class:`Section` s made of these blocks, independent of the format:
``tasks.report.report`` renders the same sections as HTML (with the figures) and as Markdown (tables
and notes only), so the two never disagree on a number. :func:`format_value` is the one place
a value becomes text. Empty data becomes a visible note, never a missing or broken chart.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tasks.report.plots import EmptyPlotError, Series, bar_chart, line_chart

PROMPT_CHARS = 160
Record = Mapping[str, Any]


@dataclass(frozen=True)
class Table:
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    caption: str = ""


@dataclass(frozen=True)
class Figure:
    """An inline SVG chart; ``plot_id`` names it in the page (``data-plot``) for readers and tests."""

    plot_id: str
    caption: str
    svg: str


@dataclass(frozen=True)
class Note:
    """A sentence shown in place of data: ``kind`` is "note", "warning" or "missing" (no training)."""

    text: str
    kind: str = "note"


@dataclass(frozen=True)
class SideBySide:
    """Blocks shown next to each other (a table and its chart) where the page is wide enough, one
    under the other where it is not; the Markdown summary lists them in order."""

    blocks: tuple[Table | Figure | Note, ...]


Block = Table | Figure | Note | SideBySide


@dataclass(frozen=True)
class Section:
    id: str
    title: str
    blocks: tuple[Block, ...]
    in_summary: bool = True
    """Whether the Markdown summary carries it (long texts, such as prompts, stay in the HTML)."""


def format_value(value: Any) -> str:
    """One cell's text, the same in HTML and Markdown: None as a dash, floats to 3 decimals."""
    if value is None:
        return "\u2013"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if abs(value) >= 1000:
            return f"{value:,.1f}"
        # Three decimals, except for values so small they would all read 0.000 (KL, clip rates).
        return f"{value:.2g}" if 0 < abs(value) < 0.001 else f"{value:.3f}"
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, Mapping):
        return ", ".join(f"{key}: {format_value(item)}" for key, item in value.items()) or "\u2013"
    if isinstance(value, list | tuple):
        return ", ".join(format_value(item) for item in value) or "\u2013"
    return str(value)


def change(before: Any, after: Any) -> str:
    return f"{format_value(before)} \u2192 {format_value(after)}"


def shorten(text: str | None, limit: int = PROMPT_CHARS) -> str | None:
    if text is None:
        return None
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "\u2026"


def records_table(records: Sequence[Record], columns: Mapping[str, str], caption: str = "") -> Table:
    """A table of ``records`` showing ``columns`` (record key -> heading), in that order."""
    return Table(
        tuple(columns.values()),
        tuple(tuple(record.get(key) for key in columns) for record in records),
        caption,
    )


def figure(plot_id: str, caption: str, draw: Callable[[], str]) -> Block:
    """The chart ``draw`` makes, or a note when it has nothing to draw (every value missing)."""
    try:
        return Figure(plot_id, caption, draw())
    except EmptyPlotError:
        return Note(f"No data to plot for: {caption}")


def view_blocks(records: Sequence[Record], empty: str, build: Callable[[], list[Block]]) -> tuple[Block, ...]:
    """``build()`` when the view has rows; otherwise one "no data" note saying why it may be empty."""
    return tuple(build()) if records else (Note(f"No data: {empty}"),)


def rate_bars(
    plot_id: str,
    caption: str,
    categories: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    reference: float | None = None,
) -> Block:
    """Horizontal bars of rates in [0, 1], one row per category and one bar per named series."""
    return figure(
        plot_id,
        caption,
        lambda: bar_chart(
            categories,
            [Series(name, list(enumerate(values))) for name, values in series.items()],
            title=caption,
            value_label="rate",
            domain=(0.0, 1.0),
            reference=reference,
        ),
    )


def curve(
    plot_id: str, caption: str, y_label: str, curves: Mapping[str, Sequence[tuple[float, Any]]]
) -> Block:
    """A line chart of training curves (name -> (step, value) points) against the step."""
    series = [Series(name, [(x, _number(y)) for x, y in points]) for name, points in curves.items()]
    return figure(
        plot_id, caption, lambda: line_chart(series, title=caption, x_label="step", y_label=y_label)
    )


def curve_table(curves: Mapping[str, Sequence[tuple[float, Any]]], caption: str) -> Table:
    """Each curve's length, first, last, lowest and highest value: the plot's numbers in text."""
    rows = []
    for name, points in curves.items():
        values = [v for _, y in points if (v := _number(y)) is not None]
        first, last = (values[0], values[-1]) if values else (None, None)
        low, high = (min(values), max(values)) if values else (None, None)
        rows.append((name, len(points), first, last, low, high))
    return Table(("curve", "steps", "first", "last", "min", "max"), tuple(rows), caption)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None
