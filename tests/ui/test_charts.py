"""core.charts: LTTB downsampling and the SVG it draws."""

import math
import re

from core import charts


def test_lttb_keeps_small_inputs_unchanged():
    points = [(i, i * 2.0) for i in range(10)]
    assert charts.lttb(points, 400) == points


def test_lttb_reduces_to_threshold_keeping_ends_and_peaks():
    points = [(i, math.sin(i / 50)) for i in range(10_000)]
    points[5_000] = (5_000, 25.0)  # a single spike must survive downsampling
    out = charts.lttb(points, 300)
    assert len(out) == 300
    assert out[0] == points[0] and out[-1] == points[-1]
    assert (5_000, 25.0) in out
    assert [x for x, _ in out] == sorted(x for x, _ in out)


def test_lttb_threshold_below_three_gives_the_ends():
    points = [(i, float(i)) for i in range(10)]
    assert charts.lttb(points, 2) == [points[0], points[-1]]


def test_nice_ticks_are_round_and_cover_the_range():
    assert charts.nice_ticks(0, 1) == [0.0, 0.25, 0.5, 0.75, 1.0]
    ticks = charts.nice_ticks(3, 97)
    assert ticks[0] >= 3 and ticks[-1] <= 97 and ticks == [25, 50, 75]
    assert charts.nice_ticks(5, 5) == [5]


def test_format_number():
    assert charts.format_number(0) == "0"
    assert charts.format_number(0.123456) == "0.1235"
    assert charts.format_number(25_000) == "25k"
    assert charts.format_number(1.5e-6) == "1.50e-6"


def test_line_chart_of_10000_points_is_downsampled():
    svg = charts.line_chart([charts.Series("loss", [(s, 1 / (s + 1)) for s in range(10_000)])], max_points=400)
    polyline = re.search(r'<polyline[^>]* points="([^"]+)"', svg).group(1)
    assert len(polyline.split()) == 400
    assert len(svg) < 20_000


def test_line_chart_skips_non_finite_values_and_escapes_names():
    svg = charts.line_chart([charts.Series("<b>x</b>", [(0, 1.0), (1, float("nan")), (2, float("inf")), (3, 2.0)])])
    assert "<b>" not in svg and "&lt;b&gt;" in svg
    polyline = re.search(r'points="([^"]+)"', svg).group(1)
    assert len(polyline.split()) == 2


def test_line_chart_without_finite_points_says_so():
    svg = charts.line_chart([charts.Series("m", [(0, float("nan"))])])
    assert "No finite values" in svg


def test_line_chart_of_one_point_draws_a_dot():
    svg = charts.line_chart([charts.Series("m", [(0, 3.0)])])
    assert "<circle" in svg and "<polyline" not in svg


def test_bar_chart_has_a_bar_per_finite_value():
    svg = charts.bar_chart([("run-a", 0.5), ("run-b", -0.25), ("run-c", float("nan")), ("run-d", None)], title="r2")
    assert svg.count("<rect") == 2
    assert "run-c" in svg and "nan" in svg and "—" in svg


def test_scatter_chart_draws_numeric_points_only():
    svg = charts.scatter_chart(
        [("a", 0.1, 0.5, "#000"), ("b", 0.9, 0.3, "#111"), ("c", float("nan"), 1.0, "#222")], x_label="alpha", y_label="rmse"
    )
    assert svg.count("<circle") == 2 and "rmse against alpha" in svg
    assert "No run has numeric values" in charts.scatter_chart([], x_label="x", y_label="y")
