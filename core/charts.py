"""Server-rendered SVG line charts, downsampled so 10,000 points stay readable and light.

No JavaScript and no CDN: the page gets a small inline <svg>. Each series is
reduced with Largest-Triangle-Three-Buckets (Steinarsson, 2013), which keeps the
visual shape (peaks and dips) of a long history in a few hundred points.
"""

import math
import operator
from dataclasses import dataclass, field

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

# Enough points to look smooth at ~800 px wide without shipping every point.
DEFAULT_MAX_POINTS = 400

# Colour-blind-friendly palette (Okabe-Ito, darkened blue first).
# Groups past the palette share this grey ("other").
OTHER_COLOR = "#9aa3b2"
PALETTE = ["#2457d6", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#6b4fbb", "#b7791f", "#1d2330", "#c0392b"]


@dataclass
class Series:
    name: str
    points: list[tuple[float, float]]
    color: str = ""
    href: str = ""
    extra: dict = field(default_factory=dict)


def finite_points(points) -> list[tuple]:
    """Drop NaN/±Inf points: they cannot be drawn (MLflow's charts skip them too).
    Points are (x, y) or (x, y, timestamp): what follows y is kept as it is."""
    isfinite = math.isfinite  # a hot loop: 10,000-point histories
    return [p for p in points if isfinite(p[0]) and isfinite(p[1])]


_by_x = operator.itemgetter(0)


def downsampled(series: list[Series], max_points: int = DEFAULT_MAX_POINTS) -> list[Series]:
    """The series with their finite points sorted by x (a stable sort: ties keep their order) and
    reduced by LTTB: computed once, then drawn both as the SVG fallback (line_chart) and by
    static/js/charts.js (line_data)."""
    return [
        Series(s.name, lttb(sorted(finite_points(s.points), key=_by_x), max_points), s.color or PALETTE[i % len(PALETTE)], s.href, s.extra)
        for i, s in enumerate(series)
    ]


def line_data(series: list[Series], *, y_label: str) -> dict:
    """The JSON static/js/charts.js draws with uPlot: per series its name, colour, steps, values and
    timestamps (ms, for the wall/relative time axes). Give it `downsampled` series."""
    return {
        "kind": "line",
        "y_label": y_label,
        "series": [
            {
                "name": s.name,
                "color": s.color,
                "step": [p[0] for p in s.points],
                "value": [p[1] for p in s.points],
                "time": [p[2] if len(p) > 2 else None for p in s.points],
                **s.extra,
            }
            for s in series
        ],
    }


def lttb(points: list[tuple], threshold: int) -> list[tuple]:
    """Largest-Triangle-Three-Buckets downsampling of points sorted by x.

    Keeps the first and last point, and from each of `threshold - 2` buckets the
    point forming the largest triangle with the previous kept point and the next
    bucket's average. Returns the input unchanged when it is already small enough.
    Points are (x, y, …): only x and y choose, the rest (a timestamp) rides along.
    """
    n = len(points)
    if n <= max(threshold, 2):
        return list(points)
    if threshold < 3:
        return [points[0], points[-1]]
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    sampled = [points[0]]
    every = (n - 2) / (threshold - 2)
    a = 0
    for i in range(threshold - 2):
        # Average of the next bucket (the third vertex of the triangle).
        next_start = int(math.floor((i + 1) * every)) + 1
        next_end = min(int(math.floor((i + 2) * every)) + 1, n)
        if next_start >= next_end:
            next_start, next_end = n - 1, n
        size = next_end - next_start
        avg_x = sum(xs[next_start:next_end]) / size
        avg_y = sum(ys[next_start:next_end]) / size
        start = int(math.floor(i * every)) + 1
        end = int(math.floor((i + 1) * every)) + 1
        ax, ay = xs[a], ys[a]
        best, best_area = start, -1.0
        for j in range(start, end):
            area = abs((ax - avg_x) * (ys[j] - ay) - (ax - xs[j]) * (avg_y - ay))
            if area > best_area:
                best, best_area = j, area
        sampled.append(points[best])
        a = best
    sampled.append(points[-1])
    return sampled


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values (1, 2, 2.5, 5 × 10^k) covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return []
    if hi == lo:
        return [lo]
    raw = (hi - lo) / max(count - 1, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks = []
    value = first
    while value <= hi + step * 1e-9 and len(ticks) < 50:
        ticks.append(0.0 if abs(value) < step * 1e-9 else value)
        value += step
    return ticks


def format_number(value: float) -> str:
    """Short label for axes and tooltips: 0.1235, 12.5k, 1.2e-05."""
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 1e6 or magnitude < 1e-3:
        return f"{value:.2e}".replace("e+0", "e").replace("e-0", "e-")
    if magnitude >= 1e4:
        return f"{value / 1e3:.4g}k"
    return f"{value:.4g}"


def line_chart(
    series: list[Series],
    *,
    width: int = 520,
    height: int = 210,
    max_points: int = DEFAULT_MAX_POINTS,
    x_label: str = "step",
    y_label: str = "",
    title: str = "",
) -> SafeString:
    """An accessible SVG line chart of one or more series (x = step, y = value).

    The y range ends on ticks, so no curve rises above the top tick, and 0 is a tick when in range."""
    pad_left, pad_right, pad_top, pad_bottom = 70 if y_label else 56, 12, 12, 30
    plot_w, plot_h = width - pad_left - pad_right, height - pad_top - pad_bottom
    drawn = []
    for index, s in enumerate(series):
        pts = [(p[0], p[1]) for p in lttb(sorted(finite_points(s.points)), max_points)]
        if pts:
            drawn.append((s, pts, s.color or PALETTE[index % len(PALETTE)]))
    label = escape(title or ", ".join(s.name for s in series))
    if not drawn:
        return mark_safe(
            f'<svg class="chart empty" role="img" aria-label="{label}" viewBox="0 0 {width} {height}" '
            f'width="100%" preserveAspectRatio="xMidYMid meet"><text x="{width / 2}" y="{height / 2}" '
            f'text-anchor="middle" class="chart-note">No finite values to plot</text></svg>'
        )
    xs = [p[0] for _, pts, _ in drawn for p in pts]
    ys = [p[1] for _, pts, _ in drawn for p in pts]
    x_lo, x_hi, y_lo, y_hi = min(xs), max(xs), min(ys), max(ys)
    if y_lo == y_hi:
        pad = abs(y_lo) * 0.1 or 1.0
        y_lo, y_hi = y_lo - pad, y_hi + pad
    if x_lo == x_hi:
        x_lo, x_hi = x_lo - 1, x_hi + 1
    y_ticks = nice_ticks(y_lo, y_hi)
    if len(y_ticks) > 1:
        step = y_ticks[1] - y_ticks[0]
        y_lo, y_hi = math.floor(y_lo / step + 1e-9) * step, math.ceil(y_hi / step - 1e-9) * step
        y_ticks = nice_ticks(y_lo, y_hi)

    def sx(x):
        return pad_left + (x - x_lo) / (x_hi - x_lo) * plot_w

    def sy(y):
        return pad_top + (1 - (y - y_lo) / (y_hi - y_lo)) * plot_h

    out = [
        f'<svg class="chart" role="img" aria-label="{label}" viewBox="0 0 {width} {height}" width="100%" '
        f'preserveAspectRatio="xMidYMid meet" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{label}</title>",
    ]
    if y_label:
        out.append(
            f'<text class="axis-label" x="12" y="{pad_top + plot_h / 2:.1f}" text-anchor="middle" '
            f'transform="rotate(-90 12 {pad_top + plot_h / 2:.1f})">{escape(y_label)}</text>'
        )
    for tick in y_ticks:
        y = sy(tick)
        out.append(
            f'<line class="grid" x1="{pad_left}" x2="{width - pad_right}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="tick" x="{pad_left - 6}" y="{y + 4:.1f}" text-anchor="end">{format_number(tick)}</text>'
        )
    for tick in nice_ticks(x_lo, x_hi, 6):
        x = sx(tick)
        out.append(
            f'<text class="tick" x="{x:.1f}" y="{height - pad_bottom + 16}" text-anchor="middle">{format_number(tick)}</text>'
        )
    out.append(
        f'<line class="axis" x1="{pad_left}" x2="{width - pad_right}" y1="{pad_top + plot_h}" y2="{pad_top + plot_h}"/>'
        f'<text class="axis-label" x="{width - pad_right}" y="{height - 2}" text-anchor="end">{escape(x_label)}</text>'
    )
    for s, pts, color in drawn:
        name = escape(s.name)
        out.append(f'<g class="series" data-series="{name}">')
        if len(pts) == 1:
            x, y = pts[0]
            out.append(
                f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3.5" fill="{color}"><title>{name}: '
                f"{format_number(y)} at {escape(x_label)} {format_number(x)}</title></circle>"
            )
        else:
            path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in pts)
            out.append(
                f'<polyline fill="none" stroke="{color}" stroke-width="1.6" stroke-linejoin="round" points="{path}">'
                f"<title>{name}</title></polyline>"
            )
            if len(pts) <= 60:
                for x, y in pts:
                    out.append(
                        f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.2" fill="{color}"><title>{name}: '
                        f"{format_number(y)} at {escape(x_label)} {format_number(x)}</title></circle>"
                    )
        out.append("</g>")
    out.append("</svg>")
    return mark_safe("".join(out))


def bar_chart(items: list[tuple[str, float]], *, width: int = 640, title: str = "", colors: list[str] | None = None) -> SafeString:
    """Horizontal bars, one per (label, value): a metric's latest value across runs.

    Non-finite values get a labelled empty row so the reader sees the run was not forgotten.
    """
    row_h, pad_left, pad_right, pad_top = 22, 170, 70, 6
    height = pad_top * 2 + row_h * max(len(items), 1)
    label = escape(title)
    values = [v for _, v in items if v is not None and math.isfinite(v)]
    lo, hi = min(values + [0.0]), max(values + [0.0])
    if lo == hi:
        hi = lo + 1
    plot_w = width - pad_left - pad_right

    def sx(v):
        return pad_left + (v - lo) / (hi - lo) * plot_w

    out = [
        f'<svg class="chart bars" role="img" aria-label="{label}" viewBox="0 0 {width} {height}" width="100%" '
        f'preserveAspectRatio="xMidYMid meet" xmlns="http://www.w3.org/2000/svg"><title>{label}</title>',
        f'<line class="axis" x1="{sx(0):.1f}" x2="{sx(0):.1f}" y1="0" y2="{height}"/>',
    ]
    for i, (name, value) in enumerate(items):
        y = pad_top + i * row_h
        short = name if len(name) <= 24 else name[:23] + "…"
        out.append(
            f'<text class="bar-label" x="{pad_left - 8}" y="{y + 15}" text-anchor="end">{escape(short)}'
            f"<title>{escape(name)}</title></text>"
        )
        if value is None or not math.isfinite(value):
            text = "—" if value is None else escape(str(value))
            out.append(f'<text class="bar-value" x="{sx(0) + 6:.1f}" y="{y + 15}">{text}</text>')
            continue
        color = (colors or PALETTE)[i % len(colors or PALETTE)]
        x0, x1 = sorted((sx(0), sx(value)))
        out.append(
            f'<rect x="{x0:.1f}" y="{y + 4}" width="{max(x1 - x0, 1):.1f}" height="{row_h - 8}" rx="2" fill="{color}">'
            f"<title>{escape(name)}: {value!r}</title></rect>"
            f'<text class="bar-value" x="{x1 + 6:.1f}" y="{y + 15}">{format_number(value)}</text>'
        )
    out.append("</svg>")
    return mark_safe("".join(out))


def scatter_chart(
    points: list[tuple], *, x_label: str, y_label: str, width: int = 640, height: int = 300,
    x_categories: list[str] | None = None,
) -> SafeString:
    """One dot per (label, x, y, colour[, href]): a parameter or metric against a metric across runs.

    With `x_categories`, x is an index into them (a parameter with text values): ticks name them."""
    drawn = [(p[0], float(p[1]), float(p[2]), p[3], p[4] if len(p) > 4 else "") for p in points
             if math.isfinite(p[1]) and math.isfinite(p[2])]
    label = escape(f"{y_label} against {x_label}")
    if not drawn:
        return mark_safe(
            f'<svg class="chart scatter empty" role="img" aria-label="{label}" viewBox="0 0 {width} {height}" width="100%">'
            f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" class="chart-note">No run has numeric values for both</text></svg>'
        )
    pad_left, pad_right, pad_top, pad_bottom = 60, 16, 14, 40
    plot_w, plot_h = width - pad_left - pad_right, height - pad_top - pad_bottom
    xs, ys = [p[1] for p in drawn], [p[2] for p in drawn]
    x_lo, x_hi, y_lo, y_hi = min(xs), max(xs), min(ys), max(ys)
    if x_categories:
        x_lo, x_hi = -0.5, len(x_categories) - 0.5
    if x_lo == x_hi:
        x_lo, x_hi = x_lo - (abs(x_lo) * 0.1 or 1), x_hi + (abs(x_hi) * 0.1 or 1)
    if y_lo == y_hi:
        y_lo, y_hi = y_lo - (abs(y_lo) * 0.1 or 1), y_hi + (abs(y_hi) * 0.1 or 1)
    # A little air so dots on the edge are not cut.
    x_pad, y_pad = 0 if x_categories else (x_hi - x_lo) * 0.05, (y_hi - y_lo) * 0.05
    x_lo, x_hi, y_lo, y_hi = x_lo - x_pad, x_hi + x_pad, y_lo - y_pad, y_hi + y_pad

    def sx(v):
        return pad_left + (v - x_lo) / (x_hi - x_lo) * plot_w

    def sy(v):
        return pad_top + (1 - (v - y_lo) / (y_hi - y_lo)) * plot_h

    out = [
        f'<svg class="chart scatter" role="img" aria-label="{label}" viewBox="0 0 {width} {height}" width="100%" '
        f'preserveAspectRatio="xMidYMid meet" xmlns="http://www.w3.org/2000/svg"><title>{label}</title>'
    ]
    for tick in nice_ticks(y_lo, y_hi):
        out.append(
            f'<line class="grid" x1="{pad_left}" x2="{width - pad_right}" y1="{sy(tick):.1f}" y2="{sy(tick):.1f}"/>'
            f'<text class="tick" x="{pad_left - 6}" y="{sy(tick) + 4:.1f}" text-anchor="end">{format_number(tick)}</text>'
        )
    x_ticks = [(i, name if len(name) <= 14 else name[:13] + "…") for i, name in enumerate(x_categories)] if x_categories else [
        (tick, format_number(tick)) for tick in nice_ticks(x_lo, x_hi, 6)
    ]
    for tick, text in x_ticks:
        out.append(
            f'<line class="grid" x1="{sx(tick):.1f}" x2="{sx(tick):.1f}" y1="{pad_top}" y2="{pad_top + plot_h}"/>'
            f'<text class="tick" x="{sx(tick):.1f}" y="{pad_top + plot_h + 16}" text-anchor="middle">{escape(text)}</text>'
        )
    out.append(
        f'<text class="axis-label" x="{pad_left + plot_w / 2}" y="{height - 4}" text-anchor="middle">{escape(x_label)}</text>'
        f'<text class="axis-label" x="12" y="{pad_top + plot_h / 2}" text-anchor="middle" '
        f'transform="rotate(-90 12 {pad_top + plot_h / 2})">{escape(y_label)}</text>'
    )
    for name, x, y, color, href in drawn:
        x_text = x_categories[int(x)] if x_categories else format_number(x)
        dot = (
            f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="5" fill="{color}" fill-opacity="0.85" stroke="#fff">'
            f"<title>{escape(name)}: {escape(x_label)}={escape(x_text)}, {escape(y_label)}={format_number(y)}</title></circle>"
        )
        out.append(f'<a href="{escape(href)}">{dot}</a>' if href else dot)
    out.append("</svg>")
    return mark_safe("".join(out))
