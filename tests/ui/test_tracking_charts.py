"""The tracking pages' second round: chart JSON beside the SVG, metric tiles, the run's Markdown
description, collapsed empty panes, and MLflow UI links mapped to Stagegate pages."""

import json
import re
from urllib.parse import quote

import pytest

from core import charts
from tests.conftest import count_queries
from tests.ui import data
from tracking import services as tracking_services
from tracking import views

pytestmark = pytest.mark.django_db


def _json_blocks(html: str) -> list[dict]:
    return [json.loads(m) for m in re.findall(r'<script type="application/json"[^>]*>(.*?)</script>', html, re.S)]


def test_run_page_embeds_the_downsampled_history_as_json_and_no_inline_script(web, owner, experiment):
    run = data.run(owner, experiment, name="long", metrics={"loss": [1 / (s + 1) for s in range(1000)], "r2": [0.7]})
    html = web.get(f"/runs/{run.run_uuid}/").content.decode()
    (payload,) = _json_blocks(html)
    assert payload["kind"] == "line" and payload["y_label"] == "loss"
    (series,) = payload["series"]
    assert series["name"] == "long" and len(series["step"]) == charts.DEFAULT_MAX_POINTS
    assert series["step"][0] == 0 and series["value"][0] == 1.0 and series["time"][0] == 1_700_000_000_000
    assert series["step"][-1] == 999
    # The SVG fallback stays; every script is a file or a JSON data block (a CSP without 'unsafe-inline').
    assert html.count('<svg class="chart"') == 1
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html, re.S)
    assert all("src=" in attrs or 'type="application/json"' in attrs for attrs, _ in scripts)
    assert "vendor/uplot/uPlot.iife.min.js" in html
    # One value: a tile, never "nothing to chart".
    assert 'class="tile" id="chart-r2"' in html and "nothing to chart" not in html


def test_svg_fallback_ends_its_y_range_on_a_tick_and_titles_the_axis():
    svg = charts.line_chart([charts.Series("m", [(0, 0.03), (1, 1.07)])], y_label="rmse")
    ys = [float(y) for y in re.findall(r'<line class="grid"[^>]* y1="([\d.]+)"', svg)]
    points = [float(p.split(",")[1]) for p in re.search(r'points="([^"]+)"', svg).group(1).split()]
    assert min(points) >= min(ys)  # the top of the curve is at or below the top tick
    assert ">0</text>" in svg and ">rmse</text>" in svg


def test_run_description_is_markdown_rendered_safely(web, run):
    tracking_services.set_tag(run=run, key="mlflow.note.content", value="**Tuned** alpha <script>alert(1)</script>")
    html = web.get(f"/runs/{run.run_uuid}/").content.decode()
    assert "<strong>Tuned</strong>" in html and "<script>alert(1)" not in html


def test_run_page_collapses_empty_panes(web, run):
    html = web.get(f"/runs/{run.run_uuid}/").content.decode()
    assert 'class="empty-pane">Inputs' in html and 'class="empty-pane">Logged models' in html
    assert "No artifacts: nothing was logged" in html and '<nav class="tree"' not in html


@pytest.fixture
def linked(owner, experiment, run):
    from registry import services as registry_services

    registry_services.create_registered_model(name="team/wine", user=owner)
    registry_services.create_model_version(name="team/wine", source=f"runs:/{run.run_uuid}/model", user=owner, run_id=run.run_uuid)
    model = tracking_services.create_logged_model(user=owner, experiment=experiment, name="model", source_run=run)
    return run, model


def _routes(experiment, run, model):
    e, r = experiment.pk, run.run_uuid
    name = quote("team/wine", safe="")
    return {
        f"/experiments/{e}/runs/{r}": f"/runs/{r}/",
        f"/experiments/{e}/runs/{r}/overview": f"/runs/{r}/",
        f"/experiments/{e}/runs/{r}/model-metrics": f"/runs/{r}/#charts-h",
        f"/experiments/{e}/runs/{r}/artifacts/model/MLmodel": f"/runs/{r}/?path=model%2FMLmodel#artifacts",
        f"/experiments/{e}/runs/{r}/artifactPath/model": f"/runs/{r}/?path=model#artifacts",
        f"/experiments/{e}/evaluation-runs/{r}": f"/runs/{r}/",
        f"/runs/{r}": f"/runs/{r}/",
        f"/experiments/{e}": f"/experiments/{e}/",
        f"/experiments/{e}/runs": f"/experiments/{e}/",
        f"/experiments/{e}/traces": f"/experiments/{e}/",
        f"/experiments/{e}/s?searchFilter=metrics.rmse%20%3C%201&lifecycleFilter=Deleted": f"/experiments/{e}/?filter=metrics.rmse+%3C+1&show=deleted",
        f"/experiments/{e}/models": f"/experiments/{e}/",
        f"/experiments/{e}/models/{model.model_id}": f"/runs/{r}/?model={model.model_id}#artifacts",
        f"/experiments/{e}/models/{model.model_id}/artifacts": f"/runs/{r}/?model={model.model_id}#artifacts",
        "/experiments": "/experiments/",
        "/": "/experiments/",
        "/compare-experiments/s?experiments=[\"1\"]": "/experiments/",
        f'/compare-runs?runs=["{r}"]&experiments=["{e}"]': f"/runs/compare/?runs={r}",
        f'/metric/rmse?runs=["{r}"]&experiments=["{e}"]': f"/runs/compare/?runs={r}&metric=rmse",
        f'/metric/?runs=["{r}"]&metric=%22rmse%22&experiments=["{e}"]&x_axis=step': f"/runs/compare/?runs={r}&metric=rmse",
        "/models": "/models/",
        f"/models/{name}": "/models/team/wine/",
        f"/models/{name}/versions/1": "/models/team/wine/versions/1/",
        f"/models/{name}/serving": "/models/team/wine/",
        f'/compare-model-versions?name=%22{name}%22&runs={{"1":"{r}"}}': "/models/team/wine/compare/?versions=1",
    }


def test_every_mlflow_ui_route_maps_to_its_stagegate_page(web, experiment, linked):
    run, model = linked
    for route, expected in _routes(experiment, run, model).items():
        response = web.get("/mlflow-link/", {"route": route})
        assert response.status_code == 302, route
        assert response["Location"] == expected, route
        if "path=" not in expected:  # (no such artifact in this test: that page would be a 404)
            assert web.get(expected.split("#")[0]).status_code == 200, (route, expected)


def test_unknown_mlflow_routes_land_home_with_a_note(web):
    response = web.get("/mlflow-link/", {"route": "/gateway/endpoints/x"}, follow=True)
    assert response.redirect_chain[0] == ("/", 302)
    assert "has no page for MLflow" in response.content.decode()


def test_mlflow_link_never_redirects_off_site(web):
    for route in ("//evil.example/x", "/models/..%2F..%2Fevil", "/runs/https:%2F%2Fevil.example"):
        location = web.get("/mlflow-link/", {"route": route})["Location"]
        assert location.startswith("/") and not location.startswith("//"), route


def test_mlflow_link_requires_sign_in_and_keeps_the_route(client, db):
    response = client.get("/mlflow-link/", {"route": "/experiments/1"})
    assert response.status_code == 302 and response["Location"].startswith("/login/?next=/mlflow-link/")


def test_every_page_carries_the_mlflow_link_script(web, client, experiment):
    for html in (web.get(f"/experiments/{experiment.pk}/").content.decode(), client.get("/login/").content.decode()):
        assert re.search(r'<script src="[^"]*js/mlflow-links.js" data-target="/mlflow-link/"></script>', html)


def test_run_page_query_count_does_not_grow_with_charts(web, owner, experiment):
    small = data.run(owner, experiment, name="a", metrics={"m0": [1.0, 2.0]})
    big = data.run(owner, experiment, name="b", metrics={f"m{i}": [float(s) for s in range(50)] for i in range(6)})
    assert count_queries(web, f"/runs/{small.run_uuid}/") == count_queries(web, f"/runs/{big.run_uuid}/")
    assert views.MAX_CHARTS >= 6


@pytest.fixture
def table(owner, experiment):
    from registry import services as registry_services

    runs = [
        data.run(owner, experiment, name=f"run-{i}", params={"alpha": str(a), "solver": s, **({"features": "x"} if i == 9 else {})},
                 metrics={"rmse": [1.0 - a]})
        for i, (a, s) in enumerate([(0.1, "saga"), (0.5, "saga"), (0.9, "lbfgs")] + [(0.3, "adam")] * 7)
    ]
    registry_services.create_registered_model(name="wine", user=owner)
    registry_services.create_model_version(name="wine", source=f"runs:/{runs[1].run_uuid}/model", user=owner, run_id=runs[1].run_uuid)
    return runs


def test_runs_table_has_models_count_relative_times_and_says_which_columns_are_hidden(web, experiment, table):
    html = web.get(f"/experiments/{experiment.pk}/", {"m_set": "1", "p_set": "1", "m": "rmse", "p": ["alpha", "features"]}).content.decode()
    assert re.search(r'<strong>10</strong> runs', html)
    row = re.search(r'<tr class="run-row">(?:(?!</tr>).)*run-1</a>.*?</tr>', html, re.S).group(0)
    assert 'href="/models/wine/versions/1/"' in row and "wine v1" in row
    assert re.search(r'<time datetime="[^"]+" title="\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [^"]*">(just now|\d+\xa0\w+ ago)</time>', row)
    # solver is hidden (named, with how to show it); features is chosen but empty on this page (run-9 is on it:
    # 10 runs, one page), so it is kept; an all-empty chosen column is dropped and named instead.
    assert "Hidden columns: 1 parameter (solver)" in html and "<strong>Columns</strong>" in html
    filtered = web.get(f"/experiments/{experiment.pk}/", {"filter": "params.solver = 'saga'", "p_set": "1", "p": ["alpha", "features"], "m_set": "1"})
    html = filtered.content.decode()
    assert re.search(r"<strong>2</strong> matching runs", html)
    assert "Empty for these runs: features" in html and ">features</a></th>" not in html


def test_runs_count_is_capped(web, experiment, table, monkeypatch):
    monkeypatch.setattr(views, "COUNT_LIMIT", 5)
    assert "<strong>5+</strong> runs" in web.get(f"/experiments/{experiment.pk}/").content.decode()


def test_runs_chart_view_plots_a_metric_against_a_param_coloured_by_a_param(web, experiment, table):
    response = web.get(f"/experiments/{experiment.pk}/", {"view": "chart", "x": "params.solver", "y": "metrics.rmse", "group": "params.solver"})
    html = response.content.decode()
    svg = re.search(r'<svg class="chart scatter".*?</svg>', html, re.S).group(0)
    assert svg.count("<circle") == 10 and svg.count('<a href="/runs/') == 10
    assert ">adam</text>" in svg and ">lbfgs</text>" in svg  # text values become categories on x
    assert re.search(r'<span><i style="background:#[0-9a-f]{6}"></i>adam <span class="faint">\(7\)</span>', html)
    assert "10 of 10 runs have both values" in html
    # The chart follows the filter; htmx swaps only the runs region.
    partial = web.get(f"/experiments/{experiment.pk}/", {"view": "chart", "filter": "params.solver = 'saga'", "x": "params.alpha"},
                      HTTP_HX_REQUEST="true", HTTP_HX_TARGET="runs-table").content.decode()
    assert partial.strip().startswith('<div id="runs-table"') and partial.count("<circle") == 2


def test_runs_chart_view_query_count_is_flat(web, owner, experiment, table):
    url = f"/experiments/{experiment.pk}/?view=chart&group=params.solver"
    few = count_queries(web, url)
    for i in range(5):
        data.run(owner, experiment, name=f"more-{i}", params={"alpha": "0.2", "solver": "sgd"}, metrics={"rmse": [0.5]})
    assert count_queries(web, url) == few
