"""Small inline-SVG charts for the run report: line charts, horizontal bar charts, reliability diagrams.

Hand-written SVG rather than a plotting library: the report must be one self-contained file
that opens offline (no JavaScript, no CDN, no images to ship), and three chart kinds do not
justify a dependency. Every function returns an ``<svg>`` string whose data marks carry
classes (``series``, ``marker``, ``bar``, ``bin``) so a browser test can count what it drew.
All text is escaped here, so callers may pass labels straight from the store.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

# Okabe-Ito: distinguishable with the common colour-vision deficiencies.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
LABEL_CHARS = 26


class EmptyPlotError(ValueError):
    """Nothing to draw: the caller shows a "no data" note instead of an empty chart."""


@dataclass(frozen=True)
class LinearScale:
    """Maps the data interval ``domain`` linearly onto the pixel interval ``pixels``.

    ``pixels`` may run backwards (a y axis: SVG's y grows downwards, data grows upwards).
    """

    domain: tuple[float, float]
    pixels: tuple[float, float]

    def __post_init__(self) -> None:
        if self.domain[0] == self.domain[1]:
            raise ValueError(f"a scale needs a domain of non-zero width, not {self.domain}")

    def __call__(self, value: float) -> float:
        (lo, hi), (start, end) = self.domain, self.pixels
        return start + (value - lo) / (hi - lo) * (end - start)


@dataclass(frozen=True)
class Axis:
    """A data interval widened to round tick values, with those ticks."""

    lo: float
    hi: float
    ticks: tuple[float, ...]
    step: float

    def label(self, value: float) -> str:
        """A tick label with as many decimals as the tick step needs (0.25 -> 2, 50 -> 0)."""
        decimals = max(0, -math.floor(math.log10(self.step) + 1e-9))
        return f"{value:.{decimals}f}"


def nice_axis(lo: float, hi: float, count: int = 5) -> Axis:
    """About ``count`` ticks at 1, 2 or 5 times a power of ten, covering ``[lo, hi]``.

    A zero-width interval (one point, a flat curve) is widened so it still has a scale.
    """
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"axis bounds must be finite, not ({lo}, {hi})")
    lo, hi = min(lo, hi), max(lo, hi)
    if lo == hi:
        pad = abs(lo) * 0.1 or 0.5
        lo, hi = lo - pad, hi + pad
    raw = (hi - lo) / max(count, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if raw <= m * magnitude * (1 + 1e-9))
    start, stop = math.floor(lo / step + 1e-9) * step, math.ceil(hi / step - 1e-9) * step
    ticks = tuple(round(start + i * step, 12) for i in range(round((stop - start) / step) + 1))
    return Axis(ticks[0], ticks[-1], ticks, step)


@dataclass(frozen=True)
class Frame:
    """An SVG canvas and the plot area inside its margins."""

    width: int = 560
    height: int = 260
    left: int = 56
    right: int = 16
    top: int = 24
    bottom: int = 44

    def x_scale(self, axis: Axis) -> LinearScale:
        return LinearScale((axis.lo, axis.hi), (self.left, self.width - self.right))

    def y_scale(self, axis: Axis) -> LinearScale:
        return LinearScale((axis.lo, axis.hi), (self.height - self.bottom, self.top))


@dataclass(frozen=True)
class Series:
    """One named line: ``points`` are (x, y); a None or non-finite y is a gap, not a zero."""

    name: str
    points: Sequence[tuple[float, float | None]]

    def finite(self) -> list[tuple[float, float]]:
        return [(x, y) for x, y in self.points if y is not None and math.isfinite(y) and math.isfinite(x)]


@dataclass(frozen=True)
class ReliabilityBin:
    """One non-empty confidence bin: mean confidence, the share that was right, and its size."""

    confidence: float
    accuracy: float
    count: int


def _fmt(value: float) -> str:
    """A pixel coordinate, short enough to keep the markup small."""
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _short(text: str, limit: int = LABEL_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _svg(frame: Frame, title: str, body: list[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {frame.width} {frame.height}" '
        f'width="{frame.width}" height="{frame.height}" role="img" aria-label="{escape(title)}">'
        f"<title>{escape(title)}</title>{''.join(body)}</svg>"
    )


def _text(x: float, y: float, text: str, cls: str, anchor: str = "middle", extra: str = "") -> str:
    return (
        f'<text class="{cls}" x="{_fmt(x)}" y="{_fmt(y)}" text-anchor="{anchor}"{extra}>{escape(text)}</text>'
    )


def _axes(frame: Frame, x: Axis | None, y: Axis, x_label: str, y_label: str) -> list[str]:
    """Horizontal grid lines with y tick labels; x ticks when ``x`` is numeric; both axis titles."""
    xs, ys = (frame.x_scale(x) if x else None), frame.y_scale(y)
    right = frame.width - frame.right
    parts = []
    for tick in y.ticks:
        py = _fmt(ys(tick))
        parts.append(f'<line class="grid" x1="{frame.left}" y1="{py}" x2="{right}" y2="{py}"/>')
        parts.append(_text(frame.left - 6, ys(tick) + 4, y.label(tick), "tick", "end"))
    if x is not None and xs is not None:
        for tick in x.ticks:
            parts.append(_text(xs(tick), frame.height - frame.bottom + 16, x.label(tick), "tick"))
    base = _fmt(frame.height - frame.bottom)
    parts.append(f'<line class="axis" x1="{frame.left}" y1="{base}" x2="{right}" y2="{base}"/>')
    parts.append(_text((frame.left + right) / 2, frame.height - 8, x_label, "axis-label"))
    middle = (frame.top + frame.height - frame.bottom) / 2
    parts.append(
        _text(14, middle, y_label, "axis-label", extra=f' transform="rotate(-90 14 {_fmt(middle)})"')
    )
    return parts


def _legend(names: Sequence[str]) -> list[str]:
    """Colour swatches along the top edge, from the left (bar charts' labels leave the plot area
    narrow); nothing for a single series, which the caption names."""
    if len(names) < 2:
        return []
    parts, x = [], 8.0
    for index, name in enumerate(names):
        colour = PALETTE[index % len(PALETTE)]
        parts.append(f'<rect class="swatch" x="{_fmt(x)}" y="6" width="10" height="10" fill="{colour}"/>')
        parts.append(_text(x + 14, 15, _short(name), "legend", "start"))
        x += 24 + 7 * len(_short(name))
    return parts


def _reference_line(frame: Frame, xs: LinearScale, y0: float, y1: float, value: float) -> str:
    """A dashed vertical line at ``value`` on a horizontal value axis (chance, overall mean)."""
    px = _fmt(xs(value))
    return f'<line class="reference" x1="{px}" y1="{_fmt(y0)}" x2="{px}" y2="{_fmt(y1)}"/>'


def _marker(x: float, y: float, colour: str, cls: str, radius: float, series: str, tip: str) -> str:
    return (
        f'<circle class="{cls}" data-series="{escape(series)}" cx="{_fmt(x)}" cy="{_fmt(y)}" '
        f'r="{_fmt(radius)}" fill="{colour}"><title>{escape(tip)}</title></circle>'
    )


def line_chart(series: Sequence[Series], *, title: str, x_label: str, y_label: str) -> str:
    """One polyline per series (class ``series``, ``data-series`` its name) over shared axes.

    Each point also gets a small marker, so a one-step curve is still visible.
    """
    drawn = [(s, s.finite()) for s in series]
    points = [p for _, finite in drawn for p in finite]
    if not points:
        raise EmptyPlotError(f"{title}: no finite points to plot")
    frame = Frame()
    x_axis = nice_axis(min(x for x, _ in points), max(x for x, _ in points))
    y_axis = nice_axis(min(y for _, y in points), max(y for _, y in points))
    xs, ys = frame.x_scale(x_axis), frame.y_scale(y_axis)
    body = _axes(frame, x_axis, y_axis, x_label, y_label)
    for index, (one, finite) in enumerate(drawn):
        colour = PALETTE[index % len(PALETTE)]
        coordinates = " ".join(f"{_fmt(xs(x))},{_fmt(ys(y))}" for x, y in finite)
        body.append(
            f'<polyline class="series" data-series="{escape(one.name)}" fill="none" stroke="{colour}" '
            f'stroke-width="2" points="{coordinates}"/>'
        )
        for x, y in finite:
            body.append(_marker(xs(x), ys(y), colour, "marker", 2.5, one.name, f"{one.name}: {x:g}, {y:.4g}"))
    body.extend(_legend([s.name for s in series]))
    return _svg(frame, title, body)


def bar_chart(
    categories: Sequence[str],
    series: Sequence[Series],
    *,
    title: str,
    value_label: str,
    domain: tuple[float, float] | None = None,
    reference: float | None = None,
) -> str:
    """Horizontal bars: one row per category (long labels fit on the left), one bar per series.

    ``series[i].points`` are (category index, value); a None value draws no bar and says "n/a".
    ``domain`` fixes the value axis (rates: (0, 1)); ``reference`` adds a dashed line (chance).
    """
    values = [v for s in series for _, v in s.finite()]
    if not categories or not values:
        raise EmptyPlotError(f"{title}: no values to plot")
    lo, hi = domain or (min(0.0, *values), max(0.0, *values))
    row_height = 10 + 14 * len(series)
    frame = Frame(left=8 + 7 * LABEL_CHARS, right=48, height=24 + 44 + row_height * len(categories))
    axis = nice_axis(lo, hi)
    xs = frame.x_scale(axis)
    body = [_text((frame.left + frame.width - frame.right) / 2, frame.height - 8, value_label, "axis-label")]
    bottom = frame.height - frame.bottom
    for tick in axis.ticks:
        px = _fmt(xs(tick))
        body.append(f'<line class="grid" x1="{px}" y1="{frame.top}" x2="{px}" y2="{_fmt(bottom)}"/>')
        body.append(_text(xs(tick), bottom + 16, axis.label(tick), "tick"))
    for row, category in enumerate(categories):
        top = frame.top + row * row_height + 5
        body.append(_text(frame.left - 6, top + row_height / 2, _short(category), "tick", "end"))
        for index, one in enumerate(series):
            value = dict(one.points).get(row)
            y = top + index * 14
            if value is None or not math.isfinite(value):
                body.append(_text(xs(max(lo, 0.0)) + 4, y + 10, "n/a", "value", "start"))
                continue
            start, end = sorted((xs(max(lo, 0.0)), xs(value)))
            body.append(
                f'<rect class="bar" data-series="{escape(one.name)}" data-value="{value:.6g}" '
                f'x="{_fmt(start)}" y="{_fmt(y)}" width="{_fmt(max(end - start, 1.0))}" height="12" '
                f'fill="{PALETTE[index % len(PALETTE)]}"><title>{escape(f"{category}: {value:.4g}")}</title>'
                "</rect>"
            )
            body.append(_text(end + 4, y + 10, f"{value:.3g}", "value", "start"))
    if reference is not None:
        body.append(_reference_line(frame, xs, frame.top, bottom, reference))
    body.extend(_legend([s.name for s in series]))
    return _svg(frame, title, body)


def reliability_diagram(series: Sequence[tuple[str, Sequence[ReliabilityBin]]], *, title: str) -> str:
    """Accuracy against mean confidence, one marker (class ``bin``) per non-empty bin, and the
    diagonal a calibrated model lies on. Marker area grows with the bin's count.

    Top-label confidences lie in [0.5, 1], so that is the x range unless a bin lies lower.
    """
    bins = [b for _, group in series for b in group]
    if not bins:
        raise EmptyPlotError(f"{title}: no bins to plot")
    frame = Frame(height=300)
    x_axis = nice_axis(min(0.5, *(b.confidence for b in bins)), 1.0)
    y_axis = nice_axis(0.0, 1.0)
    xs, ys = frame.x_scale(x_axis), frame.y_scale(y_axis)
    body = _axes(frame, x_axis, y_axis, "mean confidence", "accuracy")
    body.append(
        f'<line class="diagonal" x1="{_fmt(xs(x_axis.lo))}" y1="{_fmt(ys(x_axis.lo))}" '
        f'x2="{_fmt(xs(1.0))}" y2="{_fmt(ys(1.0))}"/>'
    )
    largest = max(b.count for b in bins)
    for index, (name, group) in enumerate(series):
        colour = PALETTE[index % len(PALETTE)]
        ordered = sorted(group, key=lambda b: b.confidence)
        coordinates = " ".join(f"{_fmt(xs(b.confidence))},{_fmt(ys(b.accuracy))}" for b in ordered)
        body.append(
            f'<polyline class="series" data-series="{escape(name)}" fill="none" stroke="{colour}" '
            f'stroke-width="1.5" points="{coordinates}"/>'
        )
        for b in ordered:
            tip = f"{name}: confidence {b.confidence:.3f}, accuracy {b.accuracy:.3f}, {b.count} labels"
            radius = 3 + 6 * math.sqrt(b.count / largest)
            body.append(_marker(xs(b.confidence), ys(b.accuracy), colour, "bin", radius, name, tip))
    body.extend(_legend([name for name, _ in series]))
    return _svg(frame, title, body)
