"""The interactive charts (uPlot over the server's JSON), the runs table and MLflow's own links,
in a real browser (headless Chromium)."""

import math
import re

import pytest

from tests.ui import data
from tracking import services as tracking_services

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

RMSE = [[rmse + 0.3 * math.exp(-s / 5) for s in range(20)] for rmse in (0.82, 0.74, 0.69)]


@pytest.fixture
def charted(owner):
    experiment = data.experiment(owner, "wine-quality")
    runs = [
        data.run(owner, experiment, name=f"elasticnet-{i}", params={"alpha": str(alpha), "solver": solver},
                 metrics={"rmse": RMSE[i], "gain": [-0.45 + s * 0.1 for s in range(20)], "r2": [0.4 + i / 10]},
                 start_time=1_700_000_000_000 + i * 60_000)
        for i, (alpha, solver) in enumerate([(0.1, "saga"), (0.5, "saga"), (0.9, "lbfgs")])
    ]
    tracking_services.set_tag(run=runs[1], key="mlflow.note.content",
                              value="Elastic net on the **wine quality** data.\n\n- alpha 0.5\n- `saga` solver")
    return experiment, runs


def _chart(page, selector: str):
    page.wait_for_selector(f"{selector}[data-chart-ready] .u-over")
    return page.locator(selector)


def _hover_step(page, selector: str, step: float) -> None:
    page.locator(selector).scroll_into_view_if_needed()
    box = page.locator(f"{selector} .u-over").bounding_box()
    x = page.evaluate("([sel, step]) => document.querySelector(sel)._uplot.valToPos(step, 'x')", [selector, step])
    page.mouse.move(box["x"] + x, box["y"] + box["height"] / 2)


def _legend(page, selector: str) -> list[tuple[str, str]]:
    rows = page.locator(f"{selector} .u-legend .u-series")
    return [(rows.nth(i).locator(".u-label").inner_text().strip(), rows.nth(i).locator(".u-value").inner_text().strip())
            for i in range(rows.count())]


def _x_range(page, selector: str) -> tuple[float, float]:
    el = page.locator(selector)
    return float(el.get_attribute("data-x-min")), float(el.get_attribute("data-x-max"))


def _no_horizontal_overflow(page) -> None:
    """At 1,280 px nothing sticks out sideways (the page reloaded at that width, as a user there sees it)."""
    page.set_viewport_size({"width": 1280, "height": 900})
    page.reload()
    page.wait_for_load_state("networkidle")
    wide = page.evaluate("""Array.from(document.querySelectorAll('body *')).filter(e => e.getBoundingClientRect().right > 1280)
        .slice(0, 5).map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right))""")
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280, wide


def test_run_chart_readout_zoom_reset_and_log(signed_in_page, owner, charted, screenshot):
    experiment, runs = charted
    page = signed_in_page(owner)
    page.set_viewport_size({"width": 1440, "height": 900})
    page.goto(f"/runs/{runs[1].run_uuid}/")
    chart = "#chart-rmse"
    _chart(page, chart)
    # The SVG fallback gives way to the uPlot chart; a single value is a tile, not an empty chart.
    assert page.locator(f"{chart} .chart-fallback").is_hidden()
    assert page.locator("#chart-r2.tile").inner_text().startswith("r2\n0.5")
    assert "nothing to chart" not in page.content()
    assert page.locator(".description strong").inner_text() == "wine quality"  # mlflow.note.content as Markdown

    assert page.evaluate(f"document.querySelector('{chart}')._uplot.axes[1].font[0]").startswith("12px")
    _hover_step(page, chart, 7)
    legend = _legend(page, chart)
    assert legend[0] == ("Step", "7")
    assert legend[1] == ("elasticnet-1", f"{RMSE[1][7]:.6g}")
    screenshot(page, "run-charts-1440")

    # The y axis ends on a tick above the highest point; 0 is a tick when the range holds it.
    axis = "(u => [u.scales.y.max, Math.max(...u.data[1].filter(v => v != null)), u.axes[1]._splits])"
    top, highest, splits = page.evaluate(f"{axis}(document.querySelector('{chart}')._uplot)")
    assert highest <= top and splits[-1] == pytest.approx(top)
    assert 0 in page.evaluate(f"{axis}(document.querySelector('#chart-gain')._uplot)")[2]

    # Drag to zoom on x, double-click to reset.
    assert _x_range(page, chart) == (0, 19)
    page.locator(chart).scroll_into_view_if_needed()
    box = page.locator(f"{chart} .u-over").bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.25, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.6, y, steps=5)
    page.mouse.up()
    lo, hi = _x_range(page, chart)
    assert 3 < lo < 6 and 10 < hi < 13
    page.mouse.dblclick(box["x"] + box["width"] / 2, y)
    assert _x_range(page, chart) == (0, 19)

    # Log y: the y scale switches to a log distribution; the readout still reads the logged value.
    page.check("input[name=chart-log]")
    assert page.locator(chart).get_attribute("data-y-log") == "1"
    assert page.evaluate(f"document.querySelector('{chart}')._uplot.scales.y.distr") == 3
    _hover_step(page, chart, 3)
    assert _legend(page, chart)[1] == ("elasticnet-1", f"{RMSE[1][3]:.6g}")

    # x by relative time; smoothing changes the drawn values but not the data.
    page.select_option("select[name=chart-x]", "relative")
    assert page.locator(chart).get_attribute("data-x-mode") == "relative"
    assert "Relative time" in page.locator(f"{chart} .u-legend").inner_text()
    page.select_option("select[name=chart-x]", "wall")
    assert page.evaluate(f"document.querySelector('{chart}')._uplot.scales.x.min") == pytest.approx(1_700_000_000, abs=1)
    page.select_option("select[name=chart-x]", "step")
    page.fill("input[name=chart-smoothing]", "0.9")
    page.dispatch_event("input[name=chart-smoothing]", "input")
    _hover_step(page, chart, 7)
    assert _legend(page, chart)[1][1] != f"{RMSE[1][7]:.6g}"

    _no_horizontal_overflow(page)


def test_compare_chart_reads_every_run_at_a_step(signed_in_page, owner, charted, screenshot):
    experiment, runs = charted
    page = signed_in_page(owner)
    page.set_viewport_size({"width": 1440, "height": 900})
    page.goto("/runs/compare/?" + "&".join(f"runs={r.run_uuid}" for r in runs) + "&metric=rmse")
    chart = "#compare-chart [data-chart]"
    _chart(page, chart)
    _hover_step(page, chart, 12)
    legend = dict(_legend(page, chart))
    assert legend["Step"] == "12"
    for i, run in enumerate(runs):
        assert legend[run.name] == f"{RMSE[i][12]:.6g}"
    # The chart fills its card.
    card = page.locator("#compare-chart").bounding_box()
    canvas = page.locator(f"{chart} canvas").bounding_box()
    assert canvas["width"] >= 0.9 * card["width"]
    # One type scale: the compare chart's axes use the run page's font.
    assert page.evaluate(f"document.querySelector('{chart}')._uplot.axes[1].font[0]").startswith("12px")
    page.locator("#compare-scatter circle").first.hover()
    assert page.locator("#compare-scatter .chart-readout").inner_text().startswith("elasticnet-0: params.alpha=0.1, metrics.")
    screenshot(page, "compare-runs-1440")
    _no_horizontal_overflow(page)


def test_runs_table_models_count_and_chart_view(signed_in_page, owner, charted, screenshot):
    from registry import services as registry_services

    experiment, runs = charted
    registry_services.create_registered_model(name="wine-model", user=owner)
    registry_services.create_model_version(name="wine-model", source=f"runs:/{runs[2].run_uuid}/model", user=owner, run_id=runs[2].run_uuid)
    page = signed_in_page(owner)
    page.set_viewport_size({"width": 1440, "height": 900})
    page.goto(f"/experiments/{experiment.pk}/")
    assert page.locator("#run-count").inner_text().startswith("3 runs")
    row = page.locator("#runs-table tr.run-row", has_text="elasticnet-2")
    row.locator("td.models a").click()
    page.wait_for_url(re.compile(r"/models/wine-model/versions/1/$"))
    page.go_back()
    page.fill("#run-filter", "params.solver = 'saga'")
    page.press("#run-filter", "Enter")
    page.wait_for_function("() => document.querySelector('#run-count').innerText.startsWith('2 matching runs')")
    screenshot(page, "experiment-runs-1440")
    _no_horizontal_overflow(page)

    # The chart view keeps the filter: the two matching runs, rmse against alpha; a dot reads out its run.
    page.click(".segmented >> text=Chart")
    page.wait_for_selector("#runs-chart svg.chart.scatter")
    assert "view=chart" in page.url and page.locator("#runs-chart circle").count() == 2
    page.select_option("#chart-y", "metrics.r2")
    page.wait_for_url(re.compile(r"y=metrics.r2"))
    page.select_option("#chart-group", "params.solver")
    page.wait_for_selector("#runs-chart .legend")
    page.locator("#runs-chart circle").first.hover()
    readout = page.locator("#runs-chart .chart-readout").inner_text()
    assert re.match(r"elasticnet-[01] \(params.solver=saga\): params.alpha=0.[15], metrics.r2=0.[45]$", readout)
    _no_horizontal_overflow(page)
    page.set_viewport_size({"width": 1440, "height": 900})
    screenshot(page, "experiment-runs-chart-1440")


def test_every_mlflow_link_form_redirects_to_its_page(signed_in_page, owner, live_server, charted):
    from registry import services as registry_services

    from tests.ui.test_tracking_charts import _routes

    experiment, runs = charted
    run = runs[0]
    registry_services.create_registered_model(name="team/wine", user=owner)
    registry_services.create_model_version(name="team/wine", source=f"runs:/{run.run_uuid}/model", user=owner, run_id=run.run_uuid)
    model = tracking_services.create_logged_model(user=owner, experiment=experiment, name="model", source_run=run)
    page = signed_in_page(owner)
    for route, expected in _routes(experiment, run, model).items():
        # What the client prints ("View run at <tracking uri>/#/experiments/…") and what users bookmark.
        page.goto(f"{live_server.url}/#{route}")
        page.wait_for_url(lambda url: url == live_server.url + expected)


def test_without_javascript_the_svg_charts_stay(browser, live_server, owner, charted):
    from django.conf import settings
    from django.test import Client

    experiment, runs = charted
    client = Client()
    client.force_login(owner)
    context = browser.new_context(base_url=live_server.url, java_script_enabled=False, viewport={"width": 1280, "height": 900})
    context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": client.cookies[settings.SESSION_COOKIE_NAME].value, "url": live_server.url}])
    page = context.new_page()
    page.goto(f"/runs/{runs[0].run_uuid}/")
    assert page.locator("#chart-rmse .chart-fallback svg.chart").is_visible()
    assert page.locator(".chart-tools").count() == 0
    context.close()


def test_the_view_run_link_the_client_prints_opens_the_run_after_sign_in(mlflow_client, page, owner, capsys):
    """`🏃 View run … at: <tracking uri>/#/experiments/<id>/runs/<run_id>`: followed signed out, it
    goes through the sign-in page and lands on the run (the fragment survives both redirects)."""
    import mlflow

    from tests import factories

    mlflow.set_experiment("client-linked")
    with mlflow.start_run(run_name="printed") as active:
        mlflow.log_metric("loss", 0.5)
    url = re.search(r"View run printed at: (\S+)", capsys.readouterr().out).group(1)
    assert f"/#/experiments/{active.info.experiment_id}/runs/{active.info.run_id}" in url
    page.goto(url)
    page.wait_for_url(re.compile(r"/login/"))
    page.fill("input[name=username]", "owner")
    page.fill("input[name=password]", factories.PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(rf"/runs/{active.info.run_id}/$"))
    assert "printed" in page.locator("h1").inner_text()
