"""The experiments and runs pages through Django's test client.

Each page: full render, htmx partial, 404 for missing objects, 405 for the wrong
method, sign-in required, and a query count that does not grow with the data.
"""

import pytest

from tests.conftest import count_queries, htmx_tags_without_js
from tests.ui import data
from tracking import views
from tracking.models import Experiment

HTMX = {"HTTP_HX_REQUEST": "true"}


def htmx(target: str) -> dict:
    return {**HTMX, "HTTP_HX_TARGET": target}


# --------------------------------------------------------------------------- sign-in and header


@pytest.mark.parametrize("url", ["/experiments/", "/experiments/1/", "/runs/" + "a" * 32 + "/", "/runs/compare/?runs=x", "/search/?q=x"])
def test_pages_require_sign_in(client, db, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=")


def test_login_page_and_bad_credentials_keep_the_username(client, owner):
    response = client.get("/login/")
    assert response.status_code == 200
    assert b'name="username"' in response.content
    response = client.post("/login/", {"username": "owner", "password": "nope"})
    assert response.status_code == 200
    assert b"didn't match" in response.content
    assert b'value="owner"' in response.content


def test_sign_in_then_sign_out(client, owner):
    from tests.factories import PASSWORD

    response = client.post("/login/", {"username": "owner", "password": PASSWORD, "next": "/experiments/"})
    assert response.status_code == 302 and response["Location"] == "/experiments/"
    assert client.get("/experiments/").status_code == 200
    assert client.get("/logout/").status_code == 405  # sign-out is a POST (CSRF-protected)
    response = client.post("/logout/")
    assert response.status_code == 302
    assert client.get("/experiments/").status_code == 302


def test_header_has_search_inbox_count_and_user_menu(web, owner):
    html = web.get("/experiments/").content.decode()
    assert 'role="search"' in html and 'action="/search/"' in html
    assert 'class="count"' in html and ">0</span>" in html
    assert "owner" in html and 'action="/logout/"' in html
    assert "/static/django_htmx/htmx-2" in html  # served by the app, no CDN
    assert "cdn" not in html.lower()


def test_inbox_count_comes_from_the_configured_counter(web, settings):
    settings.STAGEGATE_REVIEW_INBOX_COUNTER = "tests.ui.test_tracking_pages.seven_for_everyone"
    html = web.get("/experiments/").content.decode()
    assert 'class="count some"' in html and ">7</span>" in html


def seven_for_everyone(user) -> int:
    return 7


# --------------------------------------------------------------------------- experiments list


def test_experiment_list_renders(web, experiment, run):
    response = web.get("/experiments/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" in html and 'id="experiment-table"' in html
    assert f'href="/experiments/{experiment.pk}/"' in html and "wine-quality" in html


def test_experiment_list_htmx_returns_only_the_table(web, experiment):
    response = web.get("/experiments/", {"q": "wine"}, **htmx("experiment-table"))
    html = response.content.decode()
    assert "<html" not in html and html.strip().startswith('<div id="experiment-table">')
    assert "wine-quality" in html
    response = web.get("/experiments/", {"q": "nomatch"}, **HTMX)
    assert "No experiment matches" in response.content.decode()


def test_experiment_list_wrong_method(web):
    assert web.post("/experiments/").status_code == 405


def test_experiment_list_pages_with_a_keyset_token(web, owner, monkeypatch):
    monkeypatch.setattr(views, "EXPERIMENTS_PER_PAGE", 2)
    for i in range(3):
        data.experiment(owner, f"exp-{i}")
    first = web.get("/experiments/").context
    assert len(first["experiments"]) == 2 and first["next_query"]
    second = web.get("/experiments/?" + first["next_query"]).context
    names = {e.name for e in first["experiments"]} | {e.name for e in second["experiments"]}
    assert names >= {"exp-0", "exp-1", "exp-2"}
    assert web.get("/experiments/?page_token=garbage!").context["page_error"]


def test_experiment_list_query_count_is_flat(web, owner):
    data.experiment(owner, "only-one")
    one = count_queries(web, "/experiments/")
    for i in range(25):
        data.experiment(owner, f"many-{i}")
    assert count_queries(web, "/experiments/") == one


# --------------------------------------------------------------------------- experiment page (runs table)


def test_experiment_page_renders_runs_with_chosen_columns(web, experiment, run):
    response = web.get(f"/experiments/{experiment.pk}/")
    assert response.status_code == 200
    html = response.content.decode()
    assert f'href="/runs/{run.run_uuid}/"' in html and "brave-fox-1" in html
    assert ">rmse" in html and ">alpha" in html and "0.55" in html
    response = web.get(f"/experiments/{experiment.pk}/", {"m_set": "1", "p_set": "1", "m": "r2"})
    row = response.context["rows"][0]
    assert response.context["chosen_metrics"] == ["r2"] and response.context["chosen_params"] == []
    assert row["metrics"] == [{"text": "0.61", "exact": "0.61"}] and row["params"] == []


def test_experiment_page_htmx_returns_only_the_runs_table(web, experiment, run):
    response = web.get(f"/experiments/{experiment.pk}/", {"filter": "params.alpha = '0.5'"}, **htmx("runs-table"))
    html = response.content.decode()
    assert "<html" not in html and html.strip().startswith('<div id="runs-table">')
    assert "brave-fox-1" in html


def test_experiment_page_missing_is_404_and_post_is_405(web, db):
    assert web.get("/experiments/999/").status_code == 404
    assert web.post("/experiments/999/").status_code == 405


def test_bad_filter_shows_mlflows_message_under_the_box_and_keeps_the_text(web, experiment, run):
    response = web.get(f"/experiments/{experiment.pk}/", {"filter": "metrics.rmse <"})
    assert response.status_code == 200
    html = response.content.decode()
    assert "Invalid clause(s) in filter string: metrics.rmse, &lt;" in html
    assert 'value="metrics.rmse &lt;"' in html and 'aria-invalid="true"' in html
    assert response.context["rows"] == []
    partial = web.get(f"/experiments/{experiment.pk}/", {"filter": "foo.bar = 1"}, **htmx("runs-table")).content.decode()
    assert 'id="filter-error"' in partial and "hidden>" not in partial.split('id="filter-error"')[1][:40]


def test_filter_and_sort_use_the_mlflow_search(web, owner, experiment):
    for name, rmse in [("a", 0.3), ("b", 0.1), ("c", 0.2)]:
        data.run(owner, experiment, name=name, metrics={"rmse": [rmse]}, params={"kind": "x" if name != "c" else "y"})
    url = f"/experiments/{experiment.pk}/"
    names = lambda r: [row["run"].name for row in r.context["rows"]]  # noqa: E731
    assert names(web.get(url, {"filter": "params.kind = 'x'", "sort": "metrics.rmse", "dir": "asc"})) == ["b", "a"]
    assert names(web.get(url, {"sort": "metrics.rmse", "dir": "desc"})) == ["a", "c", "b"]
    response = web.get(url, {"sort": "metrics.rmse", "dir": "desc"})
    assert "rmse ↓" in response.content.decode()


def test_runs_table_pages_with_search_tokens(web, owner, experiment, monkeypatch):
    monkeypatch.setattr(views, "RUNS_PER_PAGE", 2)
    for i in range(3):
        data.run(owner, experiment, name=f"r{i}", start_time=1_700_000_000_000 + i)
    url = f"/experiments/{experiment.pk}/"
    first = web.get(url).context
    assert [r["run"].name for r in first["rows"]] == ["r2", "r1"]
    second = web.get(url + "?" + first["next_query"]).context
    assert [r["run"].name for r in second["rows"]] == ["r0"] and not second["next_query"]


def test_experiment_page_query_count_is_flat(web, owner, experiment):
    data.run(owner, experiment, name="one", params={"p": "1"}, metrics={"m": [1.0, 2.0]}, tags={"t": "1"})
    url = f"/experiments/{experiment.pk}/"
    one = count_queries(web, url)
    for i in range(20):
        data.run(owner, experiment, name=f"n{i}", params={"p": str(i), "q": "z"}, metrics={"m": [1.0, 2.0], "k": [3.0]}, tags={"t": "x"})
    assert count_queries(web, url) == one


# --------------------------------------------------------------------------- run page


def test_run_page_renders_everything(web, run, experiment):
    response = web.get(f"/runs/{run.run_uuid}/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "brave-fox-1" in html and run.run_uuid in html
    assert f'href="/experiments/{experiment.pk}/"' in html
    assert ">alpha</th>" in html and ">0.5</td>" in html  # params
    assert ">rmse</a>" in html and 'title="0.55"' in html  # latest metric
    assert ">team</th>" in html  # tags
    assert html.count('<svg class="chart"') == 1  # rmse has a history; r2 is one value
    assert 'id="artifacts"' in html and "No artifacts" in html
    assert "none registered from this run" in html


def test_run_page_missing_is_404_and_post_is_405(web, db):
    assert web.get("/runs/" + "0" * 32 + "/").status_code == 404
    assert web.post("/runs/" + "0" * 32 + "/").status_code == 405


def test_run_page_hidden_from_users_who_cannot_see_the_experiment(web, run, monkeypatch):
    from tracking import access

    monkeypatch.setattr(access, "experiments_visible_to", lambda user: Experiment.objects.none())
    assert web.get(f"/runs/{run.run_uuid}/").status_code == 404
    assert web.get(f"/experiments/{run.experiment_id}/").status_code == 404
    assert web.get(f"/runs/{run.run_uuid}/artifacts/x.txt").status_code == 404
    assert web.get("/runs/compare/", {"runs": run.run_uuid}).status_code == 404


def _write_artifacts(root, run):
    folder = root / run.artifact_uri.split(":/", 1)[1]
    (folder / "model").mkdir(parents=True)
    (folder / "model" / "MLmodel").write_text("flavors: {}\n")
    (folder / "notes.txt").write_text("<script>alert('x')</script>\n")
    (folder / "weights.bin").write_bytes(b"\x00\x01\x02")
    return folder


def test_artifacts_browser_lists_and_previews_text_escaped(web, run, _artifact_root):
    _write_artifacts(_artifact_root, run)
    html = web.get(f"/runs/{run.run_uuid}/").content.decode()
    assert "model" in html and "notes.txt" in html and "weights.bin" in html
    response = web.get(f"/runs/{run.run_uuid}/", {"path": "notes.txt"}, **htmx("artifacts"))
    partial = response.content.decode()
    assert partial.strip().startswith('<div id="artifacts">')
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in partial and "<script>alert" not in partial
    assert f'href="/runs/{run.run_uuid}/artifacts/notes.txt"' in partial
    folder = web.get(f"/runs/{run.run_uuid}/", {"path": "model"}, **htmx("artifacts")).content.decode()
    assert "MLmodel" in folder and "notes.txt" not in folder
    binary = web.get(f"/runs/{run.run_uuid}/", {"path": "weights.bin"}, **htmx("artifacts")).content.decode()
    assert "No preview for this file type" in binary


def test_artifacts_browser_missing_path_is_404_and_traversal_is_refused(web, run, _artifact_root):
    _write_artifacts(_artifact_root, run)
    assert web.get(f"/runs/{run.run_uuid}/", {"path": "nope.txt"}).status_code == 404
    response = web.get(f"/runs/{run.run_uuid}/", {"path": "../../secret"})
    assert response.status_code == 200 and "Invalid path" in response.content.decode()


def test_artifact_download_streams_the_file(web, run, _artifact_root):
    _write_artifacts(_artifact_root, run)
    response = web.get(f"/runs/{run.run_uuid}/artifacts/model/MLmodel")
    assert response.status_code == 200 and response.streaming
    assert b"".join(response.streaming_content) == b"flavors: {}\n"
    assert response["Content-Disposition"].startswith("attachment;")
    response = web.get(f"/runs/{run.run_uuid}/artifacts/notes.txt")
    assert response["Content-Type"].startswith("text/plain") and response["X-Content-Type-Options"] == "nosniff"
    assert web.get(f"/runs/{run.run_uuid}/artifacts/missing.txt").status_code == 404
    assert web.get(f"/runs/{run.run_uuid}/artifacts/%2e%2e/x").status_code == 404
    assert web.post(f"/runs/{run.run_uuid}/artifacts/notes.txt").status_code == 405


def test_run_page_query_count_is_flat(web, owner, experiment):
    small = data.run(owner, experiment, name="small", params={"a": "1"}, metrics={"m": [1.0, 2.0]}, tags={"t": "1"})
    big = data.run(
        owner, experiment, name="big",
        params={f"p{i}": str(i) for i in range(30)},
        metrics={f"m{i}": [float(s) for s in range(50)] for i in range(10)},
        tags={f"t{i}": "v" for i in range(10)},
    )
    assert count_queries(web, f"/runs/{big.run_uuid}/") == count_queries(web, f"/runs/{small.run_uuid}/")


def test_run_page_charts_a_10000_point_history(web, owner, experiment):
    run = data.run(owner, experiment, name="long")
    data.long_history(run, "loss", [1 / (s + 1) for s in range(10_000)])
    html = web.get(f"/runs/{run.run_uuid}/").content.decode()
    points = html.split('points="', 1)[1].split('"', 1)[0].split()
    assert 2 < len(points) <= 400
    assert "10000 points" in html


# --------------------------------------------------------------------------- compare


def test_compare_page_lines_up_params_and_metrics(web, owner, experiment):
    a = data.run(owner, experiment, name="a", params={"alpha": "0.1", "same": "s"}, metrics={"rmse": [0.5, 0.4], "r2": [0.7]})
    b = data.run(owner, experiment, name="b", params={"alpha": "0.9", "same": "s"}, metrics={"rmse": [0.6, 0.3], "r2": [0.8]})
    response = web.get("/runs/compare/", {"runs": [a.run_uuid, b.run_uuid]})
    assert response.status_code == 200
    html = response.content.decode()
    sections = dict(response.context["sections"])
    params = {row["key"]: row for row in sections["Parameters"]}
    assert params["alpha"]["differs"] and not params["same"]["differs"]
    assert response.context["chosen_metric"] == "r2"
    assert '<svg class="chart bars"' in html  # r2: one value per run -> bars
    only_diff = web.get("/runs/compare/", {"runs": [a.run_uuid, b.run_uuid], "diff": "1"}).content.decode()
    assert ">alpha</th>" in only_diff and ">same</th>" not in only_diff


def test_compare_chart_htmx_swaps_only_the_chart(web, owner, experiment):
    a = data.run(owner, experiment, name="a", metrics={"rmse": [0.5, 0.4]})
    b = data.run(owner, experiment, name="b", metrics={"rmse": [0.6, 0.3]})
    response = web.get("/runs/compare/", {"runs": [a.run_uuid, b.run_uuid], "metric": "rmse"}, **htmx("compare-chart"))
    html = response.content.decode()
    assert html.strip().startswith('<div id="compare-chart"') and "<html" not in html
    assert html.count("<polyline") == 2


def test_compare_missing_run_is_404_no_runs_is_a_hint_post_is_405(web, run):
    assert web.get("/runs/compare/", {"runs": [run.run_uuid, "f" * 32]}).status_code == 404
    response = web.get("/runs/compare/")
    assert response.status_code == 200 and "Select two or more runs" in response.content.decode()
    assert web.post("/runs/compare/").status_code == 405


def test_compare_query_count_is_flat(web, owner, experiment):
    runs = [data.run(owner, experiment, name=f"r{i}", params={"p": str(i)}, metrics={"m": [1.0, float(i)]}) for i in range(10)]
    two = count_queries(web, "/runs/compare/?" + "&".join(f"runs={r.run_uuid}" for r in runs[:2]))
    ten = count_queries(web, "/runs/compare/?" + "&".join(f"runs={r.run_uuid}" for r in runs))
    assert two == ten


# --------------------------------------------------------------------------- search


def test_search_finds_experiments_and_runs_and_jumps_to_a_run_id(web, run, experiment):
    response = web.get("/search/", {"q": "wine"})
    assert response.status_code == 200 and "wine-quality" in response.content.decode()
    assert "brave-fox-1" in web.get("/search/", {"q": "brave"}).content.decode()
    response = web.get("/search/", {"q": run.run_uuid})
    assert response.status_code == 302 and response["Location"] == f"/runs/{run.run_uuid}/"
    assert web.post("/search/").status_code == 405


def test_run_page_lists_the_model_versions_registered_from_it(web, owner, run):
    from registry import services as registry_services

    registry_services.create_registered_model(name="wine-model", user=owner)
    one = count_queries(web, f"/runs/{run.run_uuid}/")
    for _ in range(3):
        registry_services.create_model_version(name="wine-model", source=f"runs:/{run.run_uuid}/model", user=owner, run_id=run.run_uuid)
    html = web.get(f"/runs/{run.run_uuid}/").content.decode()
    assert "wine-model" in html and "Version 1" in html and "Version 3" in html
    assert count_queries(web, f"/runs/{run.run_uuid}/") == one


def test_run_page_charts_at_most_max_charts_unless_asked(web, owner, experiment, monkeypatch):
    monkeypatch.setattr(views, "MAX_CHARTS", 2)
    run = data.run(owner, experiment, name="wide", metrics={f"m{i}": [1.0, 2.0] for i in range(4)})
    html = web.get(f"/runs/{run.run_uuid}/").content.decode()
    assert html.count('<svg class="chart"') == 2 and "Show 2 more metrics" in html
    assert web.get(f"/runs/{run.run_uuid}/", {"charts": "all"}).content.decode().count('<svg class="chart"') == 4


def test_every_htmx_link_is_also_a_real_link(web, owner, experiment, _artifact_root):
    """Pages work without JavaScript: each hx-get sits on an <a href> or a <form action> with the same target."""

    a = data.run(owner, experiment, name="a", params={"p": "1"}, metrics={"m": [1.0, 2.0]})
    b = data.run(owner, experiment, name="b", params={"p": "2"}, metrics={"m": [2.0, 1.0]})
    _write_artifacts(_artifact_root, a)
    pages = [
        "/experiments/", f"/experiments/{experiment.pk}/", f"/runs/{a.run_uuid}/", f"/runs/{a.run_uuid}/?path=model",
        f"/runs/compare/?runs={a.run_uuid}&runs={b.run_uuid}", "/search/?q=a",
    ]
    assert htmx_tags_without_js(web, pages) > 10


def test_experiment_page_switches_to_deleted_runs_and_shows_tags(web, owner, experiment):
    from tracking import services

    kept = data.run(owner, experiment, name="kept")
    gone = data.run(owner, experiment, name="gone")
    services.delete_run(run=gone)
    services.set_experiment_tag(experiment=experiment, key="team", value="fraud")
    services.set_experiment_tag(experiment=experiment, key="mlflow.note.content", value="Predicts wine quality.")
    url = f"/experiments/{experiment.pk}/"
    response = web.get(url)
    assert [r["run"].name for r in response.context["rows"]] == ["kept"]
    html = response.content.decode()
    assert "team: fraud" in html and "Predicts wine quality." in html
    deleted = web.get(url, {"show": "deleted"}, **htmx("runs-table"))
    assert [r["run"].name for r in deleted.context["rows"]] == ["gone"]
    assert 'name="show" value="deleted"' in deleted.content.decode()  # a later search stays on deleted runs
    assert kept.run_uuid not in deleted.content.decode()


def test_run_page_links_the_parent_run(web, owner, experiment, run):
    child = data.run(owner, experiment, name="child", tags={"mlflow.parentRunId": run.run_uuid})
    html = web.get(f"/runs/{child.run_uuid}/").content.decode()
    assert f'href="/runs/{run.run_uuid}/"' in html


def test_header_highlights_the_section_of_the_page(web, experiment):
    html = web.get(f"/experiments/{experiment.pk}/").content.decode()
    assert 'href="/experiments/" aria-current="page"' in html
    assert 'href="/models/" aria-current="page"' in web.get("/models/").content.decode()


def test_compare_scatter_plots_a_param_against_a_metric(web, owner, experiment):
    runs = [
        data.run(owner, experiment, name=f"r{i}", params={"alpha": str(a), "solver": "lbfgs"}, metrics={"rmse": [r]})
        for i, (a, r) in enumerate([(0.1, 0.9), (0.5, 0.7), (0.9, 0.6)])
    ]
    query = {"runs": [r.run_uuid for r in runs]}
    response = web.get("/runs/compare/", query)
    assert (response.context["x_axis"], response.context["y_axis"]) == ("params.alpha", "metrics.rmse")
    assert "params.solver" in response.context["axes"]
    assert response.content.decode().count('<circle cx=') >= 3
    partial = web.get("/runs/compare/", {**query, "x": "params.solver", "y": "metrics.rmse"}, **htmx("compare-scatter"))
    html = partial.content.decode()
    assert html.strip().startswith('<div id="compare-scatter">') and "No run has numeric values" in html


def test_run_page_browses_and_downloads_its_logged_models_files(web, owner, experiment, run, _artifact_root):
    from tracking import services

    model = services.create_logged_model(user=owner, experiment=experiment, name="model", source_run=run)
    services.log_outputs(run=run, models=[{"model_id": model.model_id, "step": 0}])
    folder = _artifact_root / model.artifact_location.split(":/", 1)[1]
    folder.mkdir(parents=True)
    (folder / "MLmodel").write_text("artifact_path: model\nflavors: {}\n")
    html = web.get(f"/runs/{run.run_uuid}/").content.decode()
    assert f'href="?model={model.model_id}#artifacts"' in html
    partial = web.get(f"/runs/{run.run_uuid}/", {"model": model.model_id, "path": "MLmodel"}, **htmx("artifacts")).content.decode()
    assert "artifact_path: model" in partial
    assert f'href="/runs/{run.run_uuid}/models/{model.model_id}/artifacts/MLmodel"' in partial
    response = web.get(f"/runs/{run.run_uuid}/models/{model.model_id}/artifacts/MLmodel")
    assert b"".join(response.streaming_content) == b"artifact_path: model\nflavors: {}\n"
    # A model of another run is not reachable through this run.
    other_run = data.run(owner, experiment, name="other")
    assert web.get(f"/runs/{other_run.run_uuid}/", {"model": model.model_id}).status_code == 404
    assert web.get(f"/runs/{other_run.run_uuid}/models/{model.model_id}/artifacts/MLmodel").status_code == 404
    assert web.get(f"/runs/{run.run_uuid}/", {"model": "m-missing"}).status_code == 404


def test_run_page_asks_the_registry_which_versions_the_viewer_may_see(web, owner, run, monkeypatch):
    from registry import access as registry_access
    from registry import services as registry_services
    from registry.models import ModelVersion

    registry_services.create_registered_model(name="private-model", user=owner)
    registry_services.create_model_version(name="private-model", source=f"runs:/{run.run_uuid}/model", user=owner, run_id=run.run_uuid)
    assert "private-model" in web.get(f"/runs/{run.run_uuid}/").content.decode()
    # Which versions a user may see is the registry's decision, never the reverse relation.
    monkeypatch.setattr(registry_access, "model_versions_visible_to", lambda user, **kw: ModelVersion.objects.none())
    html = web.get(f"/runs/{run.run_uuid}/").content.decode()
    assert "private-model" not in html and "none registered from this run" in html


# --------------------------------------------------------------------------- run actions (POST)


def test_set_and_remove_a_tag_without_javascript(web, run):
    url = f"/runs/{run.run_uuid}/tags/"
    response = web.post(url, {"key": "stage", "value": "candidate"})
    assert response.status_code == 302 and response["Location"] == f"/runs/{run.run_uuid}/#tags-h"
    assert run.tags.get(key="stage").value == "candidate"
    response = web.post(f"/runs/{run.run_uuid}/tags/delete/", {"key": "stage"})
    assert response.status_code == 302 and not run.tags.filter(key="stage").exists()
    assert web.get(url).status_code == 405


def test_set_tag_with_htmx_swaps_only_the_tags(web, run):
    response = web.post(f"/runs/{run.run_uuid}/tags/", {"key": "stage", "value": "candidate"}, **htmx("run-tags"))
    html = response.content.decode()
    assert response.status_code == 200 and html.strip().startswith('<div id="run-tags">')
    assert ">stage</th>" in html and ">candidate</td>" in html and "<html" not in html
    response = web.post(f"/runs/{run.run_uuid}/tags/delete/", {"key": "stage"}, **htmx("run-tags"))
    assert ">stage</th>" not in response.content.decode()


def test_a_bad_tag_shows_the_error_next_to_the_form_and_keeps_the_input(web, run):
    response = web.post(f"/runs/{run.run_uuid}/tags/", {"key": "", "value": "kept value"}, **htmx("run-tags"))
    html = response.content.decode()
    assert response.status_code == 200 and 'id="tag-error"' in html and "key" in html.split('id="tag-error"')[1]
    assert 'value="kept value"' in html
    full = web.post(f"/runs/{run.run_uuid}/tags/", {"key": "", "value": "kept value"})
    assert full.status_code == 200 and "<html" in full.content.decode() and 'id="tag-error"' in full.content.decode()
    response = web.post(f"/runs/{run.run_uuid}/tags/delete/", {"key": "nope"}, **htmx("run-tags"))
    assert "No tag with name: nope" in response.content.decode()


def test_delete_and_restore_a_run(web, run):
    response = web.post(f"/runs/{run.run_uuid}/delete/")
    assert response.status_code == 302 and response["Location"] == f"/runs/{run.run_uuid}/"
    run.refresh_from_db()
    assert run.lifecycle_stage == "deleted"
    html = web.get(f"/runs/{run.run_uuid}/").content.decode()
    assert "deleted" in html and f'action="/runs/{run.run_uuid}/restore/"' in html and 'id="tag-key"' not in html
    assert web.post(f"/runs/{run.run_uuid}/restore/").status_code == 302
    run.refresh_from_db()
    assert run.lifecycle_stage == "active"
    assert web.get(f"/runs/{run.run_uuid}/delete/").status_code == 405


def test_read_only_users_get_403_and_no_edit_controls(web, run, monkeypatch):
    from core.errors import PermissionDenied
    from tracking import access

    original = access.get_run_for_user

    def read_only(user, run_id, *, action="read", **kwargs):
        run = original(user, run_id, **kwargs)
        if action != "read":
            raise PermissionDenied("Permission denied for experiment.")
        return run

    monkeypatch.setattr(access, "get_run_for_user", read_only)
    html = web.get(f"/runs/{run.run_uuid}/").content.decode()
    assert 'id="tag-key"' not in html and "Delete run" not in html and "Remove" not in html
    assert web.post(f"/runs/{run.run_uuid}/tags/", {"key": "k", "value": "v"}).status_code == 403
    assert web.post(f"/runs/{run.run_uuid}/delete/").status_code == 403
    assert not run.tags.filter(key="k").exists()


def test_missing_run_actions_are_404(web, db):
    assert web.post("/runs/" + "0" * 32 + "/tags/", {"key": "k", "value": "v"}).status_code == 404
    assert web.post("/runs/" + "0" * 32 + "/delete/").status_code == 404


def test_csv_artifacts_preview_as_a_table_and_images_inline(web, run, _artifact_root):
    folder = _write_artifacts(_artifact_root, run)
    (folder / "predictions.csv").write_text("id,label\n1,<b>red</b>\n2,white\n")
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16
    (folder / "confusion.png").write_bytes(png)
    html = web.get(f"/runs/{run.run_uuid}/", {"path": "predictions.csv"}, **htmx("artifacts")).content.decode()
    assert "<th>id</th><th>label</th>" in html and "&lt;b&gt;red&lt;/b&gt;" in html and "<b>red" not in html
    html = web.get(f"/runs/{run.run_uuid}/", {"path": "confusion.png"}, **htmx("artifacts")).content.decode()
    assert f'<img src="/runs/{run.run_uuid}/artifacts/confusion.png?inline=1"' in html
    response = web.get(f"/runs/{run.run_uuid}/artifacts/confusion.png", {"inline": "1"})
    assert response["Content-Type"] == "image/png" and response["Content-Disposition"].startswith("inline")
    assert b"".join(response.streaming_content) == png


def test_created_header_toggles_the_default_newest_first_order(web, owner, experiment):
    data.run(owner, experiment, name="old", start_time=1_700_000_000_000)
    data.run(owner, experiment, name="new", start_time=1_700_000_100_000)
    url = f"/experiments/{experiment.pk}/"
    response = web.get(url)
    assert [r["run"].name for r in response.context["rows"]] == ["new", "old"]
    link = response.context["columns"]["start_time"]
    assert "dir=asc" in link
    assert [r["run"].name for r in web.get(url + link).context["rows"]] == ["old", "new"]


def test_run_user_id_and_the_account_that_created_it(web, owner, experiment, run):
    """MLflow's user_id is the client's claim; the authenticated creator is shown beside it when they differ."""
    from tracking import services

    claimed = services.create_run(user=owner, experiment=experiment, run_name="claimed", tags=[{"key": "mlflow.user", "value": "ci-bot"}])
    html = web.get(f"/runs/{claimed.run_uuid}/").content.decode()
    assert "ci-bot" in html and "created by owner" in html
    assert "created by" not in web.get(f"/runs/{run.run_uuid}/").content.decode()  # user_id is the owner's name
    table = web.get(f"/experiments/{experiment.pk}/").content.decode()
    assert "ci-bot <span" in table and "(owner)" in table
    assert table.count("(owner)") == 1
