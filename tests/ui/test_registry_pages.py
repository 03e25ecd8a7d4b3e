"""The registry pages through Django's test client: registry home, model page, version page, history,
compare. Each: full render, htmx partial, 404 for outsiders, 403 for read-only writers, 405 for the
wrong method, and a query count that does not grow with the data."""

from pathlib import Path

import pytest
import yaml
from django.conf import settings

from registry import services
from registry import views as registry_views
from registry.models import ModelVersion, RegisteredModel
from tests import factories
from tests.conftest import count_queries, htmx_tags_without_js
from tests.ui import data
from core import permissions as perms

HTMX = {"HTTP_HX_REQUEST": "true"}


def htmx(target: str) -> dict:
    return {**HTMX, "HTTP_HX_TARGET": target}


# --------------------------------------------------------------------------- data helpers (used by the other UI tests too)

_counter = {"n": 0}


def model_source(*, requirements: str = "scikit-learn==1.6.1\n", inputs: str = '[{"type": "double", "name": "alcohol"}]',
                 run=None) -> str:
    """A tiny MLflow model folder in the test's artifact store (in `run`'s artifact folder, else in the
    shared Default experiment's); returns its mlflow-artifacts: URI."""
    from tests.registry.conftest import ensure_experiment

    _counter["n"] += 1
    ensure_experiment()
    base = run.artifact_uri.split(":/", 1)[1].strip("/") if run is not None else f"0/src{_counter['n']}/artifacts"
    rel = f"{base}/model{_counter['n']}"
    folder = Path(settings.STORAGES["artifacts"]["OPTIONS"]["location"]) / rel
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "MLmodel").write_text(yaml.safe_dump({
        "flavors": {"python_function": {"loader_module": "mlflow.sklearn"}, "sklearn": {"sklearn_version": "1.6"}},
        "signature": {"inputs": inputs, "outputs": '[{"type": "double"}]'},
    }))
    (folder / "model.pkl").write_bytes(b"not really a pickle")
    (folder / "requirements.txt").write_text(requirements)
    return "mlflow-artifacts:/" + rel


def make_version(user, name: str, *, stage: str | None = None, run=None, ready: bool = True, **source_kwargs) -> ModelVersion:
    """A version of `name` (the model is created when missing), registered READY unless `ready=False`."""
    if not RegisteredModel.objects.filter(name=name).exists():
        services.create_registered_model(name=name, user=user)
    mv = services.create_model_version(name=name, source=model_source(run=run, **source_kwargs), user=user,
                                       run_id=run.run_uuid if run is not None else None)
    if ready:
        services.finish_model_version_registration(version_id=mv.pk)
    if stage:
        services.transition_model_version_stage(name=name, version=mv.version, stage=stage, user=user)
    mv.refresh_from_db()
    return mv


@pytest.fixture
def web(client, owner):
    client.force_login(owner)
    return client


def as_user(client, user):
    client.force_login(user)
    return client


@pytest.fixture
def model(owner):
    make_version(owner, "wine", stage="Staging")
    make_version(owner, "wine")
    return RegisteredModel.objects.get(name="wine")


# --------------------------------------------------------------------------- registry home


def test_model_list_renders_latest_per_stage_aliases_and_pending(web, owner, model):
    from approvals import services as gov

    services.set_registered_model_alias(name="wine", alias="champion", version=1, user=owner)
    gov.request_stage_transition(name="wine", version=1, stage="Production", user=owner, comment="ship it")
    html = web.get("/models/").content.decode()
    assert "<html" in html and 'id="model-table"' in html
    assert 'href="/models/wine/"' in html
    assert "Staging: v1" in html and "None: v2" in html
    assert "@champion → v1" in html
    assert '<span class="badge Staging">1</span>' in html  # one pending request


def test_model_list_snippet_without_markdown_production_first_and_tags(web, owner, model):
    services.update_registered_model(name="wine", description="# Wine\n**Predicts** the [quality](https://x.example) score.", user=owner)
    make_version(owner, "wine", stage="Production")
    services.set_registered_model_tag(name="wine", key="task", value="regression", user=owner)
    services.set_registered_model_tag(name="wine", key="mlflow.internal", value="hidden", user=owner)
    html = web.get("/models/").content.decode()
    assert "Wine Predicts the quality score." in html and "**" not in html and "x.example" not in html
    assert html.index("Production: v3") < html.index("Staging: v1") < html.index("None: v2")
    assert "<th>Tags</th>" in html and "task: regression" in html and "mlflow.internal" not in html


def test_model_page_shows_run_names_the_key_metric_and_tag_activity(web, owner):
    from tests.ui import data

    experiment = data.experiment(owner, "exp-names")
    run = data.run(owner, experiment, name="gbr-200-trees", metrics={"rmse": [0.9, 0.61], "mae": [0.5]})
    make_version(owner, "named", run=run)
    services.set_registered_model_tag(name="named", key="task", value="regression", user=owner)
    html = web.get("/models/named/").content.decode()
    assert ">gbr-200-trees</a>" in html and f'title="Run {run.run_uuid}"' in html
    assert '<th class="num mono">mae</th>' in html and ">0.5</td>" in html, "first metric alphabetically"
    services.set_registered_model_tag(name="named", key="key_metric", value="rmse", user=owner)
    html = web.get("/models/named/").content.decode()
    assert '<th class="num mono">rmse</th>' in html and ">0.61</td>" in html
    assert "task=regression" in html and "key_metric=rmse" in html, "activity entries name the tag and its value"


def test_model_page_activity_feed_is_paged(web, owner, monkeypatch):
    monkeypatch.setattr(registry_views, "ACTIVITY_ON_PAGE", 3)
    services.create_registered_model(name="busy", user=owner)
    for i in range(6):
        services.set_registered_model_tag(name="busy", key=f"k{i}", value="v", user=owner)
    first = web.get("/models/busy/").context
    assert [e.payload["key"] for e in first["activity"]] == ["k5", "k4", "k3"] and first["activity_older"]
    response = web.get(f"/models/busy/?activity_before={first['activity_older']}", **htmx("activity-feed"))
    html = response.content.decode()
    assert html.strip().startswith('<div id="activity-feed">') and "<html" not in html
    assert "k2=v" in html and "k0=v" in html and "k3=v" not in html and "Older activity" in html and "Newest" in html
    last = web.get(f"/models/busy/?activity_before={response.context['activity_older']}").context
    assert [e.type for e in last["activity"]] == ["registered_model.created"] and last["activity_older"] is None


def test_model_list_live_search_is_an_htmx_partial_with_a_real_url(web, owner, model):
    make_version(owner, "churn")
    response = web.get("/models/", {"q": "chu"}, **htmx("model-table"))
    html = response.content.decode()
    assert "<html" not in html and html.strip().startswith('<div id="model-table">')
    assert "churn" in html and "wine" not in html
    page = web.get("/models/").content.decode()
    assert 'hx-get="/models/"' in page and 'hx-push-url="true"' in page and 'action="/models/"' in page


def test_model_list_sort_and_keyset_paging(web, owner, monkeypatch):
    monkeypatch.setattr(registry_views, "MODELS_PER_PAGE", 2)
    for name in ("a-model", "b-model", "c-model"):
        services.create_registered_model(name=name, user=owner)
    first = web.get("/models/").context
    assert [m.name for m in first["models"]] == ["a-model", "b-model"] and first["next_query"]
    second = web.get("/models/?" + first["next_query"]).context
    assert [m.name for m in second["models"]] == ["c-model"] and not second["next_query"]
    assert "sort=-name" in first["sort_links"]["name"] and "sort=-updated" in first["sort_links"]["updated"]
    assert "sort=name" in web.get("/models/?sort=-name").context["sort_links"]["name"]
    assert "sort=updated" in web.get("/models/?sort=-updated").context["sort_links"]["updated"]
    backwards = web.get("/models/?sort=-name").context
    assert [m.name for m in backwards["models"]] == ["c-model", "b-model"]
    assert web.get("/models/?page_token=garbage!").context["page_error"]


def test_model_list_hides_models_the_user_cannot_read(client, owner, outsider, model):
    html = as_user(client, outsider).get("/models/").content.decode()
    assert "wine" not in html


def test_model_list_wrong_method(web):
    assert web.post("/models/").status_code == 405


def test_model_list_query_count_is_flat(web, owner):
    make_version(owner, "m0", stage="Production")
    one = count_queries(web, "/models/")
    for i in range(1, 12):
        make_version(owner, f"m{i}", stage="Staging")
        services.set_registered_model_alias(name=f"m{i}", alias="c", version=1, user=owner)
    assert count_queries(web, "/models/") == one


# --------------------------------------------------------------------------- model page


def test_model_page_renders_everything(web, owner, model):
    from approvals import services as gov

    services.update_registered_model(name="wine", user=owner, description="**Bold** <script>alert(1)</script>")
    services.set_registered_model_tag(name="wine", key="team", value="ml", user=owner)
    services.set_registered_model_alias(name="wine", alias="champion", version=1, user=owner)
    gov.request_stage_transition(name="wine", version=1, stage="Production", user=owner, comment="ready")
    html = web.get("/models/wine/").content.decode()
    assert "<strong>Bold</strong>" in html and "<script>alert(1)</script>" not in html  # Markdown, sanitised
    assert "team" in html and "@champion" in html
    assert 'href="/models/wine/versions/2/"' in html and 'href="/models/wine/versions/1/"' in html
    assert 'id="versions-table"' in html and "Open transition requests" in html
    assert "Production" in html and 'id="watch-button"' in html
    assert 'href="/models/wine/permissions/"' in html  # the owner manages it
    assert "stage transitioned" in html  # the activity feed


def test_model_page_versions_htmx_filter_by_stage_and_paging(web, owner, model, monkeypatch):
    response = web.get("/models/wine/", {"stage": "Staging"}, **htmx("versions-table"))
    html = response.content.decode()
    assert html.strip().startswith('<div id="versions-table">') and "<html" not in html
    assert "Version 1" in html and "Version 2" not in html
    monkeypatch.setattr(registry_views, "VERSIONS_PER_PAGE", 1)
    first = web.get("/models/wine/").context
    assert [v.version for v in first["versions"]] == [2] and first["next_query"]
    second = web.get("/models/wine/?" + first["next_query"], **htmx("versions-table")).context
    assert [v.version for v in second["versions"]] == [1]


def test_model_page_outsider_404_reader_403_on_edit(client, owner, outsider, data_scientist, model):
    assert as_user(client, outsider).get("/models/wine/").status_code == 404
    assert client.get("/models/nope/").status_code == 404
    factories.grant(model, perms.CAN_READ, user=data_scientist)
    reader = as_user(client, data_scientist)
    html = reader.get("/models/wine/").content.decode()
    assert "Edit description" not in html and "Set tag" not in html and "/permissions/" not in html
    response = reader.post("/models/wine/edit/description", {"description": "hacked"})
    assert response.status_code == 403
    assert RegisteredModel.objects.get(name="wine").description in (None, "")
    assert reader.get("/models/wine/permissions/").status_code == 403


def test_model_page_wrong_method(web, model):
    assert web.post("/models/wine/").status_code == 405
    assert web.get("/models/wine/edit/description").status_code == 405


def test_markdown_is_sanitised():
    html = str(registry_views.render_markdown("[x](javascript:alert(1)) <img src=x onerror=alert(1)> <b>ok</b>"))
    assert "javascript:" not in html and "onerror" not in html and "<b>ok</b>" in html


def test_model_description_edit_htmx_and_no_js(web, owner, model):
    response = web.post("/models/wine/edit/description", {"description": "# Wine\nA *fine* model"}, **htmx("model-meta"))
    html = response.content.decode()
    assert html.strip().startswith('<section id="model-meta"') and "<em>fine</em>" in html
    response = web.post("/models/wine/edit/description", {"description": "plain"})
    assert response.status_code == 302 and response["Location"] == "/models/wine/"
    assert RegisteredModel.objects.get(name="wine").description == "plain"


def test_model_tag_and_alias_errors_keep_the_input(web, owner, model):
    response = web.post("/models/wine/edit/set-alias", {"alias": "v1", "version": "1"}, **htmx("model-meta"))
    html = response.content.decode()
    assert response.status_code == 200 and 'role="alert"' in html and 'value="v1"' in html
    response = web.post("/models/wine/edit/set-alias", {"alias": "champ", "version": "1"})  # no JS: PRG
    assert response.status_code == 302
    assert web.post("/models/wine/edit/delete-alias", {"alias": "champ"}, **HTMX).status_code == 200
    response = web.post("/models/wine/edit/set-tag", {"key": "", "value": "x"})  # no JS: the page with the error
    assert response.status_code == 200 and b'role="alert"' in response.content and b"<html" in response.content
    web.post("/models/wine/edit/set-tag", {"key": "team", "value": "ml"}, **HTMX)
    assert model.tags.filter(key="team", value="ml").exists()
    web.post("/models/wine/edit/delete-tag", {"key": "team"}, **HTMX)
    assert not model.tags.filter(key="team").exists()


def test_model_page_query_count_is_flat(web, owner, monkeypatch):
    from approvals import services as gov

    make_version(owner, "big")
    gov.request_stage_transition(name="big", version=1, stage="Staging", user=owner)
    one = count_queries(web, "/models/big/")
    for i in range(2, 14):
        make_version(owner, "big", stage="Staging" if i % 2 else None)
        services.set_registered_model_alias(name="big", alias=f"a{i}", version=i, user=owner)
        if i % 3 == 0:
            gov.request_stage_transition(name="big", version=i, stage="Production", user=owner)
    assert count_queries(web, "/models/big/") == one


# --------------------------------------------------------------------------- version page


def test_version_page_renders(web, owner, model):
    experiment = data.experiment(owner, "wine-exp")
    run = data.run(owner, experiment, name="best-run", metrics={"rmse": [0.5]})
    mv = make_version(owner, "wine", run=run)
    services.update_model_version(name="wine", version=mv.version, user=owner, description="_tuned_")
    services.set_model_version_tag(name="wine", version=mv.version, key="validation", value="passed", user=owner)
    html = web.get(f"/models/wine/versions/{mv.version}/").content.decode()
    assert "<em>tuned</em>" in html and "validation" in html
    assert f'href="/runs/{run.run_uuid}/"' in html and "best-run" in html
    assert "alcohol" in html  # the signature
    assert "MLmodel" in html and f"/models/wine/versions/{mv.version}/files/requirements.txt" in html
    assert 'id="version-workflow"' in html and 'id="request-transition"' in html
    assert 'hx-trigger="every 2s"' not in html  # READY: nothing polls


def test_pending_version_polls_until_ready(web, owner):
    mv = make_version(owner, "slow", ready=False)
    html = web.get("/models/slow/versions/1/").content.decode()
    assert "PENDING_REGISTRATION" in html and 'hx-trigger="every 2s"' in html
    poll = web.get("/models/slow/versions/1/", **htmx("version-status")).content.decode()
    assert poll.strip().startswith('<span id="version-status"') and "every 2s" in poll
    services.finish_model_version_registration(version_id=mv.pk)
    poll = web.get("/models/slow/versions/1/", **htmx("version-status")).content.decode()
    assert "READY" in poll and "every 2s" not in poll and "<html" not in poll
    assert '<div id="version-files" hx-swap-oob="true">' in poll and "MLmodel" in poll  # the files appear too


def test_version_page_outsider_404_reader_403(client, owner, outsider, data_scientist, model):
    assert as_user(client, outsider).get("/models/wine/versions/1/").status_code == 404
    assert as_user(client, outsider).get("/models/wine/versions/1/history/").status_code == 404
    assert as_user(client, outsider).get("/models/wine/versions/1/files/MLmodel").status_code == 404
    factories.grant(model, perms.CAN_READ, user=data_scientist)
    reader = as_user(client, data_scientist)
    assert reader.get("/models/wine/versions/1/").status_code == 200
    assert reader.get("/models/wine/versions/99/").status_code == 404
    assert reader.post("/models/wine/versions/1/edit/set-tag", {"key": "k", "value": "v"}).status_code == 403
    assert not ModelVersion.objects.get(registered_model=model, version=1).tags.exists()


def test_version_page_wrong_method(web, model):
    assert web.post("/models/wine/versions/1/").status_code == 405
    assert web.post("/models/wine/versions/1/history/").status_code == 405
    assert web.get("/models/wine/versions/1/edit/description").status_code == 405


def test_version_edits_htmx_and_no_js(web, owner, model):
    response = web.post("/models/wine/versions/1/edit/description", {"description": "**v1**"}, **htmx("version-meta"))
    assert response.content.decode().strip().startswith('<section id="version-meta"') and b"<strong>v1</strong>" in response.content
    response = web.post("/models/wine/versions/1/edit/set-tag", {"key": "k", "value": "v"})
    assert response.status_code == 302 and response["Location"] == "/models/wine/versions/1/"
    response = web.post("/models/wine/versions/1/edit/set-alias", {"alias": "latest"}, **HTMX)
    assert response.status_code == 200 and b'role="alert"' in response.content and b'value="latest"' in response.content
    web.post("/models/wine/versions/1/edit/set-alias", {"alias": "prod"}, **HTMX)
    assert model.aliases.filter(alias="prod", version__version=1).exists()


def test_version_file_download_and_browse(web, owner, model):
    response = web.get("/models/wine/versions/1/files/requirements.txt")
    assert response.status_code == 200 and b"scikit-learn" in b"".join(response.streaming_content)
    assert "attachment" in response["Content-Disposition"]
    assert web.get("/models/wine/versions/1/files/nope.txt").status_code == 404
    assert web.get("/models/wine/versions/1/files/../../etc/passwd").status_code == 404
    partial = web.get("/models/wine/versions/1/", {"path": ""}, **htmx("version-files")).content.decode()
    assert partial.strip().startswith('<div id="version-files">') and "model.pkl" in partial


def test_history_page_and_side_effects(web, owner, model):
    services.transition_model_version_stage(name="wine", version=2, stage="Staging", user=owner,
                                            archive_existing_versions=True, comment="replace v1")
    html = web.get("/models/wine/versions/2/history/").content.decode()
    assert "replace v1" in html and 'href="/models/wine/versions/1/"' in html and "Archived" in html
    partial = web.get("/models/wine/versions/2/history/", **htmx("history-table")).content.decode()
    assert partial.strip().startswith('<div id="history-table">')
    version_page = web.get("/models/wine/versions/2/").content.decode()
    assert "replace v1" in version_page and "/models/wine/versions/2/history/" in version_page


def test_version_page_query_count_is_flat(web, owner):
    from approvals import services as gov

    make_version(owner, "q")
    # One of each row kind first (a request, a comment, a tag, a transition), then many.
    gov.create_comment(name="q", version=1, user=owner, comment="first")
    services.set_model_version_tag(name="q", version=1, key="first", value="x", user=owner)
    services.transition_model_version_stage(name="q", version=1, stage="Staging", user=owner)
    services.transition_model_version_stage(name="q", version=1, stage="None", user=owner)
    gov.request_stage_transition(name="q", version=1, stage="Staging", user=owner)
    one = count_queries(web, "/models/q/versions/1/")
    for i in range(6):
        gov.create_comment(name="q", version=1, user=owner, comment=f"c{i}")
        services.set_model_version_tag(name="q", version=1, key=f"t{i}", value="x", user=owner)
        services.transition_model_version_stage(name="q", version=1, stage="Archived" if i % 2 == 0 else "None", user=owner)
    for stage in ("Production", "Archived"):
        gov.request_stage_transition(name="q", version=1, stage=stage, user=owner)
    assert count_queries(web, "/models/q/versions/1/") == one


# --------------------------------------------------------------------------- compare


def test_compare_versions_side_by_side_and_only_differences(web, owner):
    experiment = data.experiment(owner, "cmp")
    r1 = data.run(owner, experiment, params={"alpha": "0.1", "l1": "0.5"}, metrics={"rmse": [0.8]})
    r2 = data.run(owner, experiment, params={"alpha": "0.9", "l1": "0.5"}, metrics={"rmse": [0.6]})
    make_version(owner, "cmp", run=r1, requirements="scikit-learn==1.5\n")
    make_version(owner, "cmp", run=r2, requirements="scikit-learn==1.6\n")
    html = web.get("/models/cmp/compare/?versions=1&versions=2").content.decode()
    assert "alpha" in html and "0.9" in html and "l1" in html and "scikit-learn==1.6" in html and "rmse" in html
    diff = web.get("/models/cmp/compare/?versions=1&versions=2&diff=1", **htmx("compare-table")).content.decode()
    assert diff.strip().startswith('<div id="compare-table">') and "alpha" in diff and ">l1<" not in diff
    assert web.get("/models/cmp/compare/?versions=1&versions=7").status_code == 404
    assert web.post("/models/cmp/compare/").status_code == 405


def test_compare_outsider_404(client, owner, outsider, model):
    assert as_user(client, outsider).get("/models/wine/compare/?versions=1&versions=2").status_code == 404


def test_run_page_links_to_the_registered_version(web, owner):
    experiment = data.experiment(owner, "linked")
    run = data.run(owner, experiment, metrics={"rmse": [0.5]})
    make_version(owner, "linked-model", run=run)
    html = web.get(f"/runs/{run.run_uuid}/").content.decode()
    assert 'href="/models/linked-model/versions/1/"' in html


def test_pages_require_sign_in(client, db):
    for url in ("/models/", "/models/x/", "/models/x/versions/1/", "/models/x/compare/", "/models/x/versions/1/history/"):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/login/"), url


def test_every_htmx_element_is_also_a_real_link_or_form(client, owner, admin):
    """Pages work without JavaScript: each hx-get/hx-post sits on an <a href> or a <form action>
    with the same URL, and every hx-post form also posts."""

    from approvals import services as gov

    experiment = data.experiment(owner, "parity")
    run = data.run(owner, experiment, metrics={"rmse": [0.5]})
    make_version(owner, "wine", run=run, stage="Staging")
    make_version(owner, "wine", run=run)
    gov.request_stage_transition(name="wine", version=1, stage="Production", user=owner)
    gov.create_comment(name="wine", version=1, user=owner, comment="hello")
    pages = [
        "/models/", "/models/wine/", "/models/wine/versions/1/", "/models/wine/versions/1/history/",
        "/models/wine/compare/?versions=1&versions=2", "/models/wine/versions/1/request/", "/reviews/",
        "/models/wine/permissions/", "/settings/tokens/", "/settings/stages/", "/settings/policies/",
    ]
    web = as_user(client, admin)
    assert htmx_tags_without_js(web, pages) > 20


def test_history_and_compare_query_counts_are_flat(web, owner):
    from approvals import services as gov

    experiment = data.experiment(owner, "flat")
    runs = [data.run(owner, experiment, params={"a": str(i), "b": "x"}, metrics={"m": [i / 10]}) for i in range(6)]
    make_version(owner, "h", run=runs[0])
    make_version(owner, "h", run=runs[1])
    services.transition_model_version_stage(name="h", version=1, stage="Staging", user=owner)
    services.transition_model_version_stage(name="h", version=2, stage="Staging", user=owner, archive_existing_versions=True)
    gov.request_stage_transition(name="h", version=2, stage="Production", user=owner)
    history_one = count_queries(web, "/models/h/versions/2/history/")
    compare_two = count_queries(web, "/models/h/compare/?versions=1&versions=2")
    for i in range(2, 6):
        make_version(owner, "h", run=runs[i])
        services.set_model_version_tag(name="h", version=i + 1, key=f"k{i}", value="v", user=owner)
        services.transition_model_version_stage(name="h", version=i + 1, stage="Staging", user=owner, archive_existing_versions=True)
        services.transition_model_version_stage(name="h", version=2, stage="Staging" if i % 2 else "None", user=owner)
    assert count_queries(web, "/models/h/versions/2/history/") == history_one
    assert count_queries(web, "/models/h/compare/?versions=1&versions=2&versions=3&versions=4&versions=5&versions=6") == compare_two


def test_model_names_with_slashes_and_spaces(web, owner):
    make_version(owner, "team/churn model")
    html = web.get("/models/").content.decode()
    assert 'href="/models/team/churn%20model/"' in html
    assert web.get("/models/team/churn%20model/").status_code == 200
    assert web.get("/models/team/churn%20model/versions/1/").status_code == 200
    assert web.get("/models/team/churn%20model/versions/1/history/").status_code == 200
    assert web.get("/models/team/churn%20model/permissions/").status_code == 200
    assert web.get("/models/team/churn%20model/versions/1/request/").status_code == 200
    assert web.get("/models/team/churn%20model/compare/?versions=1").status_code == 200
    assert web.get("/models/team/").status_code == 404


def test_failed_registration_shows_why_and_stops_polling(web, owner, monkeypatch):
    from core import artifacts

    def broken(src, dst):
        raise OSError("bucket unreachable")

    monkeypatch.setattr(artifacts, "copy_tree", broken)
    services.create_registered_model(name="broken", user=owner)
    mv = services.create_model_version(name="broken", source=model_source(), user=owner)
    services.finish_model_version_registration(version_id=mv.pk)
    html = web.get("/models/broken/versions/1/").content.decode()
    assert "FAILED_REGISTRATION" in html and "bucket unreachable" in html and "every 2s" not in html
    assert "Files appear once registration is READY." in html


def test_external_and_non_model_sources_say_what_they_are(web, owner):
    services.create_registered_model(name="refs", user=owner)
    services.create_model_version(name="refs", source="s3://bucket/team/model", user=owner)
    html = web.get("/models/refs/versions/1/").content.decode()
    assert "external source, not copied" in html and "s3://bucket/team/model" in html
    assert "External source, not copied: the files stay at s3://bucket/team/model." in html
    assert web.get("/models/refs/versions/1/files/MLmodel").status_code == 404
    empty = services.create_model_version(name="refs", source="mlflow-artifacts:/0/nothing/here", user=owner)
    services.finish_model_version_registration(version_id=empty.pk)
    html = web.get("/models/refs/versions/2/").content.decode()
    assert "READY" in html and "Nothing at the source" in html
