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
