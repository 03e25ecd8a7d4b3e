"""The experiments and runs pages in a real browser (headless Chromium)."""

import re

import pytest

from tests import factories
from tests.ui import data

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_sign_in_and_out(page, live_server, owner, screenshot):
    page.goto("/experiments/")
    assert "/login/" in page.url
    screenshot(page, "login")
    page.fill("input[name=username]", "owner")
    page.fill("input[name=password]", "wrong")
    page.click("button[type=submit]")
    assert page.locator(".field-error").is_visible()
    assert page.input_value("input[name=username]") == "owner"
    page.fill("input[name=password]", factories.PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/experiments/$"))
    page.click("details.usermenu summary")
    page.click("text=Sign out")
    page.wait_for_url(re.compile(r"/login/"))


@pytest.fixture
def tracked(owner, _artifact_root):
    """An experiment with a few runs, one with a 10,000-point history and artifacts."""
    import math

    experiment = data.experiment(owner, "wine-quality")
    runs = []
    for i, (alpha, rmse) in enumerate([(0.1, 0.82), (0.5, 0.74), (0.9, 0.69)]):
        runs.append(
            data.run(owner, experiment, name=f"elasticnet-{i}", params={"alpha": str(alpha), "l1_ratio": "0.5"},
                     metrics={"rmse": [rmse + 0.3 * math.exp(-s / 5) for s in range(20)], "r2": [1 - rmse]},
                     tags={"team": "ml"}, start_time=1_700_000_000_000 + i * 60_000)
        )
    long = data.run(owner, experiment, name="long-training", start_time=1_700_000_500_000)
    data.long_history(long, "loss", [math.exp(-s / 3000) + 0.05 * math.sin(s / 20) for s in range(10_000)])
    root = _artifact_root / long.artifact_uri.split(":/", 1)[1]
    (root / "model").mkdir(parents=True)
    (root / "model" / "MLmodel").write_text("flavors:\n  sklearn:\n    sklearn_version: 1.6.1\n")
    (root / "notes.txt").write_text("<script>alert(1)</script> trained on wine data\n")
    return experiment, runs, long


def test_runs_table_filter_sort_compare(signed_in_page, owner, tracked, screenshot):
    experiment, runs, long = tracked
    page = signed_in_page(owner)
    page.goto("/experiments/")
    page.click("text=wine-quality")
    page.wait_for_url(re.compile(rf"/experiments/{experiment.pk}/$"))
    assert page.locator("#runs-table tr.run-row").count() == 4
    screenshot(page, "experiment-runs")

    # A bad filter: MLflow's message under the box, the text kept.
    page.fill("#run-filter", "metrics.rmse <")
    page.press("#run-filter", "Enter")
    page.wait_for_selector("#filter-error:not([hidden])")
    assert page.input_value("#run-filter") == "metrics.rmse <"
    screenshot(page, "experiment-runs-filter-error")

    page.fill("#run-filter", "params.alpha = '0.5'")
    page.press("#run-filter", "Enter")
    page.wait_for_function("() => document.querySelectorAll('#runs-table tr.run-row').length === 1")
    assert "filter=params.alpha" in page.url  # hx-push-url: the filtered table is a shareable URL
    assert page.locator("#runs-table tr.run-row").inner_text().startswith("\telasticnet-1")
    assert page.locator("#filter-error").is_hidden()

    # Back and forward walk the table states, each with the filter text that produced it.
    page.go_back()
    page.wait_for_selector("#filter-error:not([hidden])")
    assert page.input_value("#run-filter") == "metrics.rmse <"
    page.go_back()
    page.wait_for_function("() => document.querySelectorAll('#runs-table tr.run-row').length === 4")
    assert page.input_value("#run-filter") == ""
    page.go_forward()
    page.wait_for_selector("#filter-error:not([hidden])")
    page.go_back()
    page.wait_for_function("() => document.querySelectorAll('#runs-table tr.run-row').length === 4")

    # Compare two runs from the table.
    page.check(f"input[name=runs][value='{runs[0].run_uuid}']")
    page.check(f"input[name=runs][value='{runs[2].run_uuid}']")
    page.click("text=Compare selected")
    page.wait_for_url(re.compile(r"/runs/compare/"))
    assert page.locator("#compare-chart svg.chart").count() == 1
    page.select_option("#compare-metric", "r2")
    page.wait_for_function("() => location.search.includes('metric=r2')")
    assert page.locator("#compare-chart svg.bars").count() == 1
    page.select_option("#scatter-y", "metrics.rmse")
    page.wait_for_function("() => location.search.includes('y=metrics.rmse')")
    assert page.locator("#compare-scatter circle").count() == 2
    screenshot(page, "run-compare")


def test_run_page_chart_and_artifacts(signed_in_page, owner, tracked, screenshot):
    _, _, long = tracked
    page = signed_in_page(owner)
    page.goto(f"/runs/{long.run_uuid}/")
    chart = page.locator("figure.chart-card svg.chart")
    assert chart.count() == 1
    # 10,000 points drawn as a downsampled polyline.
    points = chart.locator("polyline").get_attribute("points").split()
    assert 100 < len(points) <= 400
    page.click("#artifacts >> text=notes.txt")
    page.wait_for_selector("pre.artifact-text")
    assert "<script>alert(1)</script>" in page.inner_text("pre.artifact-text")
    assert "path=notes.txt" in page.url
    page.click("#artifacts >> text=model")
    page.wait_for_selector("#artifacts >> text=MLmodel")
    screenshot(page, "run-detail")
    page.go_back()
    page.wait_for_selector("pre.artifact-text")

    # An htmx POST (CSRF token from <body hx-headers>) swaps only the tags region.
    page.fill("#tag-key", "stage")
    page.fill("#tag-value", "candidate")
    page.click("#run-tags button:has-text('Set tag')")
    page.wait_for_selector("#run-tags >> text=candidate")
    assert "path=notes.txt" in page.url  # no navigation happened
    page.fill("#tag-key", "../escape")  # refused by the service: the error sits under the form, input kept
    page.fill("#tag-value", "typed")
    page.click("#run-tags button:has-text('Set tag')")
    page.wait_for_selector("#tag-error")
    assert "must not resolve to other names" in page.inner_text("#tag-error")
    assert page.input_value("#tag-key") == "../escape" and page.input_value("#tag-value") == "typed"


def test_pages_work_without_javascript(browser, live_server, owner, tracked, screenshot):
    """POST/redirect/GET and plain links: sign in, filter, sort, browse artifacts, compare with JS off."""
    experiment, runs, long = tracked
    context = browser.new_context(base_url=live_server.url, java_script_enabled=False, viewport={"width": 1360, "height": 900})
    page = context.new_page()
    try:
        page.goto("/experiments/")
        page.fill("input[name=username]", "owner")
        page.fill("input[name=password]", factories.PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(re.compile(r"/experiments/$"))
        screenshot(page, "experiments")
        page.click("text=wine-quality")
        page.fill("#run-filter", "metrics.r2 > 0.2")
        page.click("#runs-filter button:has-text('Search')")
        page.wait_for_url(re.compile(r"filter=metrics.r2"))
        assert page.locator("tr.run-row").count() == 2
        page.click("th >> text=rmse")
        page.wait_for_url(re.compile(r"sort=metrics.rmse"))
        assert page.input_value("#run-filter") == "metrics.r2 > 0.2"  # the sort keeps the filter
        page.check(f"input[name=runs][value='{runs[1].run_uuid}']")
        page.check(f"input[name=runs][value='{runs[2].run_uuid}']")
        page.click("text=Compare selected")
        page.wait_for_url(re.compile(r"/runs/compare/"))
        assert page.locator("#compare-chart svg.chart").count() == 1
        page.select_option("#scatter-x", "metrics.r2")
        page.click("button:has-text('Plot')")  # the <noscript> submit button
        page.wait_for_url(re.compile(r"x=metrics.r2"))
        assert page.locator("#compare-scatter circle").count() == 2
        page.goto(f"/runs/{long.run_uuid}/")
        page.click("#artifacts >> text=notes.txt")
        page.wait_for_url(re.compile(r"path=notes.txt"))
        assert "trained on wine data" in page.inner_text("pre.artifact-text")
    finally:
        context.close()


def test_a_run_logged_by_the_real_mlflow_client(mlflow_client, signed_in_page, owner, screenshot):
    """What the mlflow client logs (params, a metric history, a text artifact) shows up on the run page."""
    import mlflow

    mlflow.set_experiment("client-logged")
    with mlflow.start_run(run_name="from-client") as active:
        mlflow.log_params({"alpha": 0.3, "solver": "lbfgs"})
        from mlflow.entities import Metric

        points = [Metric("loss", 1 / (step + 1), 1_700_000_000_000 + step, step) for step in range(50)]
        mlflow_client.log_batch(active.info.run_id, metrics=points)
        mlflow.log_text("rmse went <down>\n", "reports/summary.txt")
    run_id = active.info.run_id

    page = signed_in_page(owner)
    page.goto("/experiments/")
    page.click("text=client-logged")
    page.click("text=from-client")
    page.wait_for_url(re.compile(rf"/runs/{run_id}/$"))
    assert page.locator("figure.chart-card svg.chart polyline").count() == 1
    assert "lbfgs" in page.inner_text("section[aria-labelledby=params-h]")
    page.click("#artifacts >> text=reports")
    page.click("#artifacts >> text=summary.txt")
    page.wait_for_selector("pre.artifact-text")
    assert page.inner_text("pre.artifact-text").strip() == "rmse went <down>"
    download = page.request.get(f"/runs/{run_id}/artifacts/reports/summary.txt")
    assert download.status == 200 and download.body() == b"rmse went <down>\n"
    screenshot(page, "run-from-mlflow-client")
