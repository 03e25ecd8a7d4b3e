"""The permission matrix: every JSON API endpoint × every persona → the expected status.

Personas hold one level each on the model "gm" and the experiment "gexp" (both created by `owner`):
outsider (nothing), reader, editor, staging manager, production manager, manager, admin (superuser).
Experiments have no staging/production rungs: those two managers are editors there.
Each call runs in a savepoint that is rolled back, so every persona meets the same world.
A second group of tests checks that nothing invisible leaks through search, paging or counts.
"""

import io
import json
from dataclasses import dataclass, field

import pytest
from django.db import transaction

from approvals import services as gov
from core import permissions as perms
from tests.approvals.conftest import grant_all

pytestmark = pytest.mark.django_db

PERSONAS = ["outsider", "reader", "editor", "staging_manager", "production_manager", "manager", "admin"]
MODEL_LEVEL = {
    "outsider": None, "reader": perms.CAN_READ, "editor": perms.CAN_EDIT,
    "staging_manager": perms.CAN_MANAGE_STAGING_VERSIONS, "production_manager": perms.CAN_MANAGE_PRODUCTION_VERSIONS,
    "manager": perms.CAN_MANAGE, "admin": perms.CAN_MANAGE,
}
EXPERIMENT_LEVEL = {
    "outsider": None, "reader": perms.CAN_READ, "editor": perms.CAN_EDIT, "staging_manager": perms.CAN_EDIT,
    "production_manager": perms.CAN_EDIT, "manager": perms.CAN_MANAGE, "admin": perms.CAN_MANAGE,
}


def needs(level: str | None, on: str = "model") -> dict:
    """Statuses for an endpoint on one object: 404 when invisible, 403 below `level`, else 200."""
    table = MODEL_LEVEL if on == "model" else EXPERIMENT_LEVEL
    out = {}
    for persona in PERSONAS:
        have = table[persona]
        out[persona] = 404 if have is None else (200 if level is None or perms.at_least(have, level) else 403)
    return out


EVERYONE = {p: 200 for p in PERSONAS}
ADMIN_ONLY = {**{p: 403 for p in PERSONAS}, "admin": 200}


@dataclass
class Case:
    id: str
    method: str
    path: str
    data: object = None  # dict or callable(world) -> dict
    expect: dict = field(default_factory=dict)
    raw: bytes | None = None


R = perms.CAN_READ
E = perms.CAN_EDIT
S = perms.CAN_MANAGE_STAGING_VERSIONS
P = perms.CAN_MANAGE_PRODUCTION_VERSIONS
M = perms.CAN_MANAGE

CASES = [
    # ---- registry
    Case("rm-create", "POST", "registered-models/create", {"name": "brand-new"}, EVERYONE),
    Case("rm-get", "GET", "registered-models/get", {"name": "gm"}, needs(R)),
    Case("rm-update", "PATCH", "registered-models/update", {"name": "gm", "description": "d"}, needs(E)),
    Case("rm-rename", "POST", "registered-models/rename", {"name": "gm", "new_name": "gm2"}, needs(M)),
    Case("rm-delete", "DELETE", "registered-models/delete", {"name": "gm"}, needs(M)),
    Case("rm-search", "GET", "registered-models/search", {}, EVERYONE),
    Case("rm-latest", "POST", "registered-models/get-latest-versions", {"name": "gm"}, needs(R)),
    Case("rm-set-tag", "POST", "registered-models/set-tag", {"name": "gm", "key": "k", "value": "v"}, needs(E)),
    Case("rm-delete-tag", "DELETE", "registered-models/delete-tag", {"name": "gm", "key": "task"}, needs(E)),
    Case("alias-set", "POST", "registered-models/alias", {"name": "gm", "alias": "best", "version": "2"}, needs(E)),
    Case("alias-get", "GET", "registered-models/alias", {"name": "gm", "alias": "champion"}, needs(R)),
    Case("alias-delete", "DELETE", "registered-models/alias", {"name": "gm", "alias": "champion"}, needs(E)),
    Case("mv-create", "POST", "model-versions/create", lambda w: {"name": "gm", "source": w["source"]}, needs(E)),
    Case("mv-get", "GET", "model-versions/get", {"name": "gm", "version": "1"}, needs(R)),
    Case("mv-update", "PATCH", "model-versions/update", {"name": "gm", "version": "1", "description": "d"}, needs(E)),
    Case("mv-to-staging", "POST", "model-versions/transition-stage",
         {"name": "gm", "version": "1", "stage": "Staging", "archive_existing_versions": False}, needs(S)),
    Case("mv-to-production", "POST", "model-versions/transition-stage",
         {"name": "gm", "version": "2", "stage": "Production", "archive_existing_versions": True}, needs(P)),
    Case("mv-delete", "DELETE", "model-versions/delete", {"name": "gm", "version": "1"}, needs(M)),
    Case("mv-search", "GET", "model-versions/search", {"filter": "name='gm'"}, EVERYONE),
    Case("mv-download-uri", "GET", "model-versions/get-download-uri", {"name": "gm", "version": "1"}, needs(R)),
    Case("mv-set-tag", "POST", "model-versions/set-tag", {"name": "gm", "version": "1", "key": "k", "value": "v"}, needs(E)),
    Case("mv-delete-tag", "DELETE", "model-versions/delete-tag", {"name": "gm", "version": "1", "key": "k"}, needs(E)),
    # ---- governance (Databricks)
    Case("tr-create", "POST", "transition-requests/create", {"name": "gm", "version": "1", "stage": "Staging"}, needs(R)),
    Case("tr-approve", "POST", "transition-requests/approve",
         {"name": "gm", "version": "2", "stage": "Production", "archive_existing_versions": False}, needs(P)),
    Case("tr-reject", "POST", "transition-requests/reject", {"name": "gm", "version": "2", "stage": "Production"}, needs(P)),
    Case("tr-list", "GET", "transition-requests/list", {"name": "gm", "version": "2"}, needs(R)),
    # The requester (editor) or a manager may cancel.
    Case("tr-delete", "DELETE", "transition-requests/delete", {"name": "gm", "version": "2", "stage": "Production"},
         {**needs(M), "editor": 200}),
    Case("comment-create", "POST", "comments/create", {"name": "gm", "version": "1", "comment": "hi"}, needs(R)),
    # Only the author (reader) edits; the author or a manager deletes.
    Case("comment-update", "PATCH", "comments/update", lambda w: {"id": w["comment_id"], "comment": "x"},
         {**needs(R), **{p: 403 for p in PERSONAS[2:]}}),
    Case("comment-delete", "DELETE", "comments/delete", lambda w: {"id": w["comment_id"]}, {**needs(M), "reader": 200}),
    Case("activities", "GET", "activities/list", {"name": "gm", "version": "2"}, needs(R)),
    Case("db-rm-get", "GET", "databricks/registered-models/get", {"name": "gm"}, needs(R)),
    Case("db-transition", "POST", "databricks/model-versions/transition-stage",
         {"name": "gm", "version": "1", "stage": "Archived", "archive_existing_versions": False}, needs(S)),
    Case("perm-get", "GET", lambda w: f"/api/2.0/permissions/registered-models/{w['model_id']}", None, needs(R)),
    Case("perm-levels", "GET", lambda w: f"/api/2.0/permissions/registered-models/{w['model_id']}/permissionLevels", None, needs(R)),
    Case("perm-patch", "PATCH", lambda w: f"/api/2.0/permissions/registered-models/{w['model_id']}",
         {"access_control_list": [{"user_name": "outsider", "permission_level": "CAN_READ"}]}, needs(M)),
    Case("perm-put", "PUT", lambda w: f"/api/2.0/permissions/registered-models/{w['model_id']}",
         {"access_control_list": []}, needs(M)),
    Case("exp-perm-get", "GET", lambda w: f"/api/2.0/permissions/experiments/{w['experiment_id']}", None, needs(R, "experiment")),
    Case("exp-perm-patch", "PATCH", lambda w: f"/api/2.0/permissions/experiments/{w['experiment_id']}",
         {"access_control_list": []}, needs(M, "experiment")),
    Case("policy-get", "GET", "/api/2.0/stagegate/stage-policies", {"model_name": "gm"}, needs(R)),
    Case("policy-put-model", "PUT", "/api/2.0/stagegate/stage-policies",
         {"stage": "Production", "model_name": "gm", "min_approvals": 2}, needs(M)),
    Case("policy-delete-model", "DELETE", "/api/2.0/stagegate/stage-policies", {"stage": "Staging", "model_name": "gm"}, needs(M)),
    Case("policy-put-global", "PUT", "/api/2.0/stagegate/stage-policies", {"stage": "Production", "min_approvals": 2}, ADMIN_ONLY),
    Case("inbox", "GET", "/api/2.0/stagegate/transition-requests", {"reviewable": "true"}, EVERYONE),
    # ---- webhooks (monitoring): a model's webhooks are its managers' business, registry-wide ones admins'.
    Case("db-webhook-create-model", "POST", "registry-webhooks/create",
         {"model_name": "gm", "events": ["MODEL_VERSION_CREATED"], "http_url_spec": {"url": "https://example.com/hook"}}, needs(M)),
    Case("db-webhook-create-global", "POST", "registry-webhooks/create",
         {"events": ["MODEL_VERSION_CREATED"], "http_url_spec": {"url": "https://example.com/hook"}}, ADMIN_ONLY),
    Case("mlflow-webhook-create", "POST", "webhooks",
         {"name": "h", "url": "https://example.com/hook", "events": [{"entity": "MODEL_VERSION", "action": "CREATED"}]}, ADMIN_ONLY),
    Case("db-webhook-list", "GET", "registry-webhooks/list", {}, EVERYONE),
    # ---- tracking
    Case("exp-create", "POST", "experiments/create", {"name": "brand-new"}, EVERYONE),
    Case("exp-get", "GET", "experiments/get", lambda w: {"experiment_id": w["experiment_id"]}, needs(R, "experiment")),
    Case("exp-get-by-name", "GET", "experiments/get-by-name", {"experiment_name": "gexp"}, needs(R, "experiment")),
    Case("exp-search", "POST", "experiments/search", {"max_results": 10}, EVERYONE),
    Case("exp-update", "POST", "experiments/update", lambda w: {"experiment_id": w["experiment_id"], "new_name": "g2"},
         needs(E, "experiment")),
    Case("exp-delete", "POST", "experiments/delete", lambda w: {"experiment_id": w["experiment_id"]}, needs(M, "experiment")),
    Case("exp-restore", "POST", "experiments/restore", lambda w: {"experiment_id": w["deleted_experiment_id"]},
         needs(M, "experiment")),
    Case("exp-set-tag", "POST", "experiments/set-experiment-tag",
         lambda w: {"experiment_id": w["experiment_id"], "key": "k", "value": "v"}, needs(E, "experiment")),
    Case("exp-delete-tag", "POST", "experiments/delete-experiment-tag",
         lambda w: {"experiment_id": w["experiment_id"], "key": "team"}, needs(E, "experiment")),
    Case("run-create", "POST", "runs/create", lambda w: {"experiment_id": w["experiment_id"]}, needs(E, "experiment")),
    Case("run-create-default", "POST", "runs/create", {"experiment_id": "0"}, EVERYONE),
    Case("run-get", "GET", "runs/get", lambda w: {"run_id": w["run_id"]}, needs(R, "experiment")),
    Case("run-update", "POST", "runs/update", lambda w: {"run_id": w["run_id"], "status": "FINISHED"}, needs(E, "experiment")),
    Case("run-delete", "POST", "runs/delete", lambda w: {"run_id": w["run_id"]}, needs(E, "experiment")),
    Case("run-restore", "POST", "runs/restore", lambda w: {"run_id": w["run_id"]}, needs(E, "experiment")),
    Case("run-log-param", "POST", "runs/log-parameter", lambda w: {"run_id": w["run_id"], "key": "p", "value": "1"},
         needs(E, "experiment")),
    Case("run-log-metric", "POST", "runs/log-metric",
         lambda w: {"run_id": w["run_id"], "key": "m", "value": 1.0, "timestamp": 1, "step": 0}, needs(E, "experiment")),
    Case("run-log-batch", "POST", "runs/log-batch", lambda w: {"run_id": w["run_id"], "params": [{"key": "q", "value": "1"}]},
         needs(E, "experiment")),
    Case("run-set-tag", "POST", "runs/set-tag", lambda w: {"run_id": w["run_id"], "key": "t", "value": "1"}, needs(E, "experiment")),
    Case("run-delete-tag", "POST", "runs/delete-tag", lambda w: {"run_id": w["run_id"], "key": "note"},
         needs(E, "experiment")),
    Case("run-log-inputs", "POST", "runs/log-inputs", lambda w: {"run_id": w["run_id"], "datasets": []}, needs(E, "experiment")),
    Case("run-search", "POST", "runs/search", lambda w: {"experiment_ids": [w["experiment_id"]]}, EVERYONE),
    Case("metric-history", "GET", "metrics/get-history", lambda w: {"run_id": w["run_id"], "metric_key": "rmse"},
         needs(R, "experiment")),
    Case("lm-create", "POST", "logged-models", lambda w: {"experiment_id": w["experiment_id"], "name": "lm"}, needs(E, "experiment")),
    Case("lm-get", "GET", lambda w: f"logged-models/{w['logged_model_id']}", None, needs(R, "experiment")),
    Case("lm-delete", "DELETE", lambda w: f"logged-models/{w['logged_model_id']}", None, needs(M, "experiment")),
    Case("lm-set-tags", "PATCH", lambda w: f"logged-models/{w['logged_model_id']}/tags", {"tags": [{"key": "a", "value": "b"}]},
         needs(E, "experiment")),
    Case("lm-search", "POST", "logged-models/search", lambda w: {"experiment_ids": [w["experiment_id"]]}, EVERYONE),
    # ---- artifacts: experiment folders follow the experiment, registry copies the model (and are read-only).
    Case("art-list", "GET", "/api/2.0/mlflow-artifacts/artifacts", lambda w: {"path": w["run_artifacts"]}, needs(R, "experiment")),
    Case("art-get", "GET", lambda w: f"/api/2.0/mlflow-artifacts/artifacts/{w['run_artifacts']}/notes.txt", None,
         needs(R, "experiment")),
    Case("art-put", "PUT", lambda w: f"/api/2.0/mlflow-artifacts/artifacts/{w['run_artifacts']}/new.txt", None,
         needs(E, "experiment"), raw=b"data"),
    Case("art-registry-get", "GET", lambda w: f"/api/2.0/mlflow-artifacts/artifacts/{w['storage_path']}/MLmodel", None, needs(R)),
    Case("art-registry-put", "PUT", lambda w: f"/api/2.0/mlflow-artifacts/artifacts/{w['storage_path']}/MLmodel", None,
         {p: 403 for p in PERSONAS}, raw=b"tampered"),
]


@pytest.fixture
def world(people, make_version, run_with_metrics, model_files):
    """gm (v1 None, v2 Staging, alias champion, tag task, a pending request from editor for v2 → Production,
    a comment by reader), gexp (a run with rmse and an artifact, a logged model), every persona granted."""
    from core import artifacts
    from registry import services as registry
    from tracking import services as tracking
    from tracking.models import Experiment

    owner = people["owner"]
    run = run_with_metrics(rmse=0.5)
    experiment = Experiment.objects.get(name="gov-exp")
    tracking.rename_experiment(experiment=experiment, new_name="gexp")
    tracking.set_experiment_tag(experiment=experiment, key="team", value="ml")
    tracking.set_tag(run=run, key="note", value="n")
    v1 = make_version("gm", run_id=run.run_uuid)
    make_version("gm", run_id=run.run_uuid, stage="Staging")
    model = v1.registered_model
    registry.set_registered_model_alias(name="gm", alias="champion", version=1, user=owner)
    registry.set_registered_model_tag(name="gm", key="task", value="r", user=owner)
    grant_all(model, people)
    deleted = tracking.create_experiment(user=owner, name="gone")
    for persona, level in EXPERIMENT_LEVEL.items():
        if level and persona != "admin":
            gov.grant_permission(obj=experiment, level=level, user=people[persona])
            gov.grant_permission(obj=deleted, level=level, user=people[persona])
    tracking.delete_experiment(experiment=deleted)
    gov.request_stage_transition(name="gm", version=2, stage="Production", user=people["editor"])
    comment = gov.create_comment(name="gm", version=1, user=people["reader"], comment="by reader")
    logged = tracking.create_logged_model(user=owner, experiment=experiment, name="lm0", source_run=run)
    run_artifacts = artifacts.uri_to_path(run.artifact_uri)
    artifacts.save_stream(f"{run_artifacts}/notes.txt", io.BytesIO(b"notes"))
    v1.refresh_from_db()
    return {
        "model_id": model.pk, "experiment_id": str(experiment.pk), "deleted_experiment_id": str(deleted.pk), "run_id": run.run_uuid, "comment_id": str(comment.pk),
        "logged_model_id": logged.model_id, "source": model_files("0/src/artifacts/model"), "run_artifacts": run_artifacts,
        "storage_path": v1.storage_path,
    }


@pytest.fixture
def clients(api_for, people):
    return {p: api_for(people[p]) for p in PERSONAS}


def _call(client, case: Case, world):
    path = case.path(world) if callable(case.path) else case.path
    data = case.data(world) if callable(case.data) else (case.data or {})
    if case.raw is not None:
        return client.put(path, data=case.raw)
    if case.method == "GET":
        return client.get(path, data)
    if case.method == "PUT":
        return client.put(path, data=json.dumps(data), content_type="application/json")
    return getattr(client, case.method.lower())(path, data)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_endpoint_permissions(case, world, clients, settings):
    settings.STAGEGATE_WEBHOOK_ALLOWED_HOSTS = ["example.com"]  # no DNS in tests
    got = {}
    for persona in PERSONAS:
        with transaction.atomic():
            response = _call(clients[persona], case, world)
            got[persona] = response.status_code
            if response.status_code in (403, 404):
                code = response.json()["error_code"]
                assert code == ("PERMISSION_DENIED" if response.status_code == 403 else "RESOURCE_DOES_NOT_EXIST"), (persona, response.json())
            transaction.set_rollback(True)
    assert got == case.expect


# --------------------------------------------------------------------------- nothing leaks


@pytest.fixture
def many(people, make_version, owner):
    """10 models by owner; the reader may see 4 of them (direct grant, group grant)."""
    from django.contrib.auth.models import Group

    from registry.models import RegisteredModel

    team = Group.objects.create(name="team")
    people["reader"].groups.add(team)
    for i in range(10):
        make_version(f"model-{i:02d}")
    for i in (1, 3):
        gov.grant_permission(obj=RegisteredModel.objects.get(name=f"model-{i:02d}"), level="CAN_READ", user=people["reader"])
    for i in (5, 7):
        gov.grant_permission(obj=RegisteredModel.objects.get(name=f"model-{i:02d}"), level="CAN_EDIT", group=team)
    return ["model-01", "model-03", "model-05", "model-07"]


def _pages(client, path, params, key, method="GET"):
    names, token, pages = [], None, 0
    while True:
        query = {**params, **({"page_token": token} if token else {})}
        data = (client.get(path, query) if method == "GET" else client.post(path, query)).json()
        pages += 1
        names += [row["name"] for row in data.get(key, [])]
        token = data.get("next_page_token")
        if not token:
            return names, pages


def test_registered_model_search_paging_shows_only_visible(many, clients, api_for, people):
    reader = clients["reader"]
    names, pages = _pages(reader, "registered-models/search", {"max_results": 1}, "registered_models")
    assert names == many and pages == 4  # no empty trailing page, no hidden row counted
    names, _ = _pages(reader, "registered-models/search", {"max_results": 3, "filter": "name LIKE 'model-%'"}, "registered_models")
    assert names == many
    assert _pages(clients["outsider"], "registered-models/search", {"max_results": 5}, "registered_models") == ([], 1)
    assert len(_pages(clients["admin"], "registered-models/search", {"max_results": 100}, "registered_models")[0]) == 10
    assert len(_pages(api_for(people["owner"]), "registered-models/search", {"max_results": 100}, "registered_models")[0]) == 10


def test_model_version_search_shows_only_visible(many, clients):
    names, pages = _pages(clients["reader"], "model-versions/search", {"max_results": 1}, "model_versions")
    assert names == sorted(many, reverse=False) or sorted(names) == many
    assert pages == 4
    assert clients["outsider"].get("model-versions/search", {"filter": "name='model-00'"}).json() == {}


def test_invisible_and_missing_look_the_same(many, clients):
    hidden = clients["reader"].get("registered-models/get", {"name": "model-00"})
    missing = clients["reader"].get("registered-models/get", {"name": "model-99"})
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["message"].replace("model-00", "X") == missing.json()["message"].replace("model-99", "X")
    assert clients["reader"].get("model-versions/get", {"name": "model-00", "version": "1"}).json()["message"] == (
        "Model Version (name=model-00, version=1) not found")


def test_experiment_and_run_searches_show_only_visible(people, clients, run_with_metrics, owner):
    from tracking import services as tracking

    hidden = tracking.create_experiment(user=owner, name="hidden")
    tracking.create_run(user=owner, experiment=hidden)
    shared = tracking.create_experiment(user=owner, name="shared")
    tracking.create_run(user=owner, experiment=shared)
    gov.grant_permission(obj=shared, level="CAN_READ", user=people["reader"])
    names, _ = _pages(clients["reader"], "experiments/search", {"max_results": 1}, "experiments", method="POST")
    assert sorted(names) == ["Default", "shared"]
    runs = clients["reader"].post("runs/search", {"experiment_ids": [str(hidden.pk), str(shared.pk)]}).json()["runs"]
    assert [r["info"]["experiment_id"] for r in runs] == [str(shared.pk)]
    assert clients["outsider"].post("runs/search", {"experiment_ids": [str(hidden.pk), str(shared.pk)]}).json() == {}
    assert clients["outsider"].get("experiments/get-by-name", {"experiment_name": "hidden"}).status_code == 404


def test_inbox_and_requests_never_show_invisible_models(many, people, clients, owner):
    for name in ("model-00", "model-01"):
        gov.request_stage_transition(name=name, version=1, stage="Staging", user=owner)
    rows = clients["reader"].get("/api/2.0/stagegate/transition-requests", {"max_results": 1}).json()
    assert [r["model_name"] for r in rows["requests"]] == ["model-01"] and "next_page_token" not in rows
    assert clients["outsider"].get("/api/2.0/stagegate/transition-requests").json() == {"requests": []}


def test_default_permission_opens_the_organisation(many, clients, settings):
    settings.STAGEGATE_DEFAULT_PERMISSION = "CAN_READ"
    names, _ = _pages(clients["outsider"], "registered-models/search", {"max_results": 100}, "registered_models")
    assert len(names) == 10
    response = clients["outsider"].post("registered-models/set-tag", {"name": "model-00", "key": "k", "value": "v"})
    assert response.status_code == 403 and response.json()["error_code"] == "PERMISSION_DENIED"


def test_creation_can_be_restricted(people, clients, settings):
    from django.contrib.auth.models import Group, Permission

    settings.STAGEGATE_RESTRICT_MODEL_CREATION = True
    settings.STAGEGATE_RESTRICT_EXPERIMENT_CREATION = True
    response = clients["editor"].post("registered-models/create", {"name": "nope"})
    assert response.status_code == 403 and "Creation is restricted" in response.json()["message"]
    assert clients["editor"].post("experiments/create", {"name": "nope"}).status_code == 403
    creators = Group.objects.create(name="creators")
    creators.permissions.add(Permission.objects.get(codename="add_registeredmodel"))
    people["editor"].groups.add(creators)
    from tests.conftest import ApiClient  # noqa: F401  (fresh user object per request: perms cache)

    assert clients["editor"].post("registered-models/create", {"name": "yes"}).status_code == 200
    assert clients["admin"].post("experiments/create", {"name": "yes"}).status_code == 200
    # The creator manages what they created.
    from registry.models import RegisteredModel

    assert perms.effective_level(people["editor"], RegisteredModel.objects.get(name="yes")) == perms.CAN_MANAGE
