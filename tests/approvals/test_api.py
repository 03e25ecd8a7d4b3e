"""The governance REST API: Databricks' shapes and errors, the permissions API, stage policies, the inbox."""

import json

import pytest

from approvals.models import TransitionRequest
from registry.models import ModelVersion
from tests.approvals.conftest import production_policy

pytestmark = pytest.mark.django_db

TR = "transition-requests/"


def body(response, status=200):
    assert response.status_code == status, response.content
    return response.json()


def error(response, status, code):
    data = body(response, status)
    assert data["error_code"] == code, data
    return data["message"]


@pytest.fixture
def apis(api_for, people):
    return {name: api_for(user) for name, user in people.items()}


def test_transition_request_lifecycle_over_rest(governed, apis, admin):
    production_policy(admin, checks_spec=[{"type": "metric", "key": "rmse", "op": "<", "value": 0.8}])
    created = body(apis["editor"].post(TR + "create", {"name": "gm", "version": "1", "stage": "Production", "comment": "please"}))
    req = created["request"]
    assert req["to_stage"] == "Production" and req["from_stage"] == "Staging" and req["user_id"] == "editor"
    assert req["comment"] == "please" and isinstance(req["creation_timestamp"], int)
    assert req["available_actions"] == ["CANCEL_TRANSITION_REQUEST"]
    assert req["status"] == "PENDING" and req["quorum"] == {"approvals": 0, "required": 1}
    assert req["checks"][0]["name"] == "rmse < 0.8" and req["checks"][0]["passed"] is True

    listed = body(apis["production_manager"].get(TR + "list", {"name": "gm", "version": "1"}))["requests"]
    assert len(listed) == 1 and listed[0]["activity_type"] == "REQUESTED_TRANSITION"
    assert listed[0]["available_actions"] == ["APPROVE_TRANSITION_REQUEST", "REJECT_TRANSITION_REQUEST"]
    assert body(apis["manager"].get(TR + "list", {"name": "gm", "version": "1"}))["requests"][0]["available_actions"] == [
        "APPROVE_TRANSITION_REQUEST", "REJECT_TRANSITION_REQUEST", "CANCEL_TRANSITION_REQUEST"]

    message = error(apis["production_manager"].post(TR + "approve", {"name": "gm", "version": "1", "stage": "Production"}),
                    400, "INVALID_PARAMETER_VALUE")
    assert message.startswith("Missing value for required parameter 'archive_existing_versions'")
    approved = body(apis["production_manager"].post(
        TR + "approve", {"name": "gm", "version": "1", "stage": "Production", "archive_existing_versions": True, "comment": "ok"}
    ))["activity"]
    assert approved["activity_type"] == "APPROVED_REQUEST" and approved["user_id"] == "production_manager"
    assert approved["from_stage"] == "Staging" and approved["to_stage"] == "Production" and approved["comment"] == "ok"
    assert approved["quorum"] == {"approvals": 1, "required": 1} and approved["applied"] is True
    assert ModelVersion.objects.get(registered_model__name="gm", version=1).current_stage == "Production"
    assert body(apis["reader"].get(TR + "list", {"name": "gm", "version": "1"}))["requests"] == []

    feed = body(apis["reader"].get("activities/list", {"name": "gm", "version": "1"}))["activities"]
    types = [a["activity_type"] for a in feed]
    assert types[-3:] == ["REQUESTED_TRANSITION", "APPROVED_REQUEST", "APPLIED_TRANSITION"]
    assert feed[-1]["request_id"] == req["id"]


def test_reject_and_delete_over_rest(governed, apis, admin):
    production_policy(admin)
    body(apis["editor"].post(TR + "create", {"name": "gm", "version": 1, "stage": "Production"}))
    rejected = body(apis["manager"].post(TR + "reject", {"name": "gm", "version": "1", "stage": "Production", "comment": "no"}))
    assert rejected["activity"]["activity_type"] == "REJECTED_REQUEST"
    body(apis["editor"].post(TR + "create", {"name": "gm", "version": 1, "stage": "Production"}))
    message = error(apis["reader"].delete(TR + "delete", {"name": "gm", "version": "1", "stage": "Production", "creator": "editor"}),
                    403, "PERMISSION_DENIED")
    assert "only the requester" in message
    assert body(apis["editor"].delete(TR + "delete", {"name": "gm", "version": "1", "stage": "Production", "creator": "editor"})) == {}
    assert TransitionRequest.objects.filter(status="CANCELLED").count() == 1
    error(apis["editor"].delete(TR + "delete", {"name": "gm", "version": "1", "stage": "Production", "creator": "editor"}),
          400, "INVALID_STATE")


def test_request_errors(governed, apis):
    assert error(apis["outsider"].post(TR + "create", {"name": "gm", "version": "1", "stage": "Production"}), 404,
                 "RESOURCE_DOES_NOT_EXIST") == "Registered Model with name=gm not found"
    assert error(apis["reader"].post(TR + "create", {"name": "gm", "version": "9", "stage": "Production"}), 404,
                 "RESOURCE_DOES_NOT_EXIST") == "Model Version (name=gm, version=9) not found"
    assert "Invalid Model Version stage: Prod" in error(
        apis["reader"].post(TR + "create", {"name": "gm", "version": "1", "stage": "Prod"}), 400, "INVALID_PARAMETER_VALUE")
    assert error(apis["reader"].post(TR + "create", {"version": "1", "stage": "Production"}), 400,
                 "INVALID_PARAMETER_VALUE").startswith("Missing value for required parameter 'name'")
    body(apis["reader"].post(TR + "create", {"name": "gm", "version": "1", "stage": "Production"}))
    error(apis["editor"].post(TR + "create", {"name": "gm", "version": "1", "stage": "Production"}), 400, "RESOURCE_ALREADY_EXISTS")
    error(apis["reader"].get(TR + "create"), 405, "BAD_REQUEST")
    error(apis["outsider"].get(TR + "list", {"name": "gm", "version": "1"}), 404, "RESOURCE_DOES_NOT_EXIST")


def test_failing_check_over_rest(make_version, people, apis, admin, run_with_metrics):
    from tests.approvals.conftest import grant_all

    mv = make_version("gm", run_id=run_with_metrics(rmse=0.95).run_uuid)
    grant_all(mv.registered_model, people)
    production_policy(admin, checks_spec=[{"type": "metric", "key": "rmse", "op": "<=", "value": 0.8}])
    req = body(apis["editor"].post(TR + "create", {"name": "gm", "version": "1", "stage": "Production"}))["request"]
    assert req["checks"][0]["passed"] is False and "rmse = 0.95 > 0.8" in req["checks"][0]["detail"]
    message = error(apis["production_manager"].post(
        TR + "approve", {"name": "gm", "version": "1", "stage": "Production", "archive_existing_versions": False}), 400, "INVALID_STATE")
    assert "Approval blocked: 1 of 1 policy check(s) failed" in message and "rmse <= 0.8: rmse = 0.95 > 0.8" in message
    listed = body(apis["reader"].get(TR + "list", {"name": "gm", "version": "1"}))["requests"][0]
    assert listed["evidence"]["on_approval"][0]["passed"] is False and listed["quorum"]["approvals"] == 0


def test_comments_over_rest(governed, apis):
    created = body(apis["reader"].post("comments/create", {"name": "gm", "version": "1", "comment": "nice"}))["comment"]
    assert created["user_id"] == "reader" and created["comment"] == "nice"
    assert created["available_actions"] == ["EDIT_COMMENT", "DELETE_COMMENT"]
    updated = body(apis["reader"].patch("comments/update", {"id": created["id"], "comment": "very nice"}))["comment"]
    assert updated["comment"] == "very nice" and updated["last_updated_timestamp"] >= created["last_updated_timestamp"]
    error(apis["editor"].patch("comments/update", {"id": created["id"], "comment": "x"}), 403, "PERMISSION_DENIED")
    error(apis["outsider"].delete("comments/delete", {"id": created["id"]}), 404, "RESOURCE_DOES_NOT_EXIST")
    error(apis["reader"].delete("comments/delete", {"id": "999999"}), 404, "RESOURCE_DOES_NOT_EXIST")
    assert body(apis["manager"].delete("comments/delete", {"id": created["id"]})) == {}
    feed = body(apis["reader"].get("activities/list", {"name": "gm", "version": "1"}))["activities"]
    assert "NEW_COMMENT" not in [a["activity_type"] for a in feed]


def test_databricks_get_model_and_transition(governed, apis, admin):
    model, _ = governed
    data = body(apis["editor"].get("databricks/registered-models/get", {"name": "gm"}))["registered_model_databricks"]
    assert data["id"] == str(model.pk) and data["name"] == "gm" and data["permission_level"] == "CAN_EDIT"
    assert data["user_id"] == "owner" and data["latest_versions"][0]["current_stage"] == "Staging"
    assert body(apis["owner"].get("databricks/registered-models/get", {"name": "gm"}))["registered_model_databricks"]["permission_level"] == "CAN_MANAGE"
    error(apis["outsider"].get("databricks/registered-models/get", {"name": "gm"}), 404, "RESOURCE_DOES_NOT_EXIST")

    moved = body(apis["staging_manager"].post("databricks/model-versions/transition-stage", {
        "name": "gm", "version": "1", "stage": "Archived", "archive_existing_versions": False, "comment": "retire"}))
    mv = moved["model_version_databricks"]
    assert mv["current_stage"] == "Archived" and mv["permission_level"] == "CAN_MANAGE_STAGING_VERSIONS"
    assert mv["open_requests"] == [] and mv["email_subscription_status"] == "DEFAULT"
    production_policy(admin)
    message = error(apis["production_manager"].post("databricks/model-versions/transition-stage", {
        "name": "gm", "version": "1", "stage": "Production", "archive_existing_versions": False}), 403, "PERMISSION_DENIED")
    assert "transition-requests/create" in message


def test_mlflow_transition_endpoint_is_guarded(governed, apis, admin):
    production_policy(admin)
    message = error(apis["admin"].post("model-versions/transition-stage", {
        "name": "gm", "version": "1", "stage": "Production", "archive_existing_versions": False}), 403, "PERMISSION_DENIED")
    assert "need an approved transition request" in message and "/models/gm/versions/1/" in message


# --------------------------------------------------------------------------- permissions API


def test_permissions_api_get_patch_put(governed, apis, people):
    model, _ = governed
    url = f"/api/2.0/permissions/registered-models/{model.pk}"
    data = body(apis["manager"].get(url))
    assert data["object_id"] == f"/registered-models/{model.pk}" and data["object_type"] == "registered-model"
    entries = {e.get("user_name") or e.get("group_name"): e["all_permissions"][0]["permission_level"] for e in data["access_control_list"]}
    assert entries["owner"] == "CAN_MANAGE" and entries["reader"] == "CAN_READ" and entries["staging_manager"] == "CAN_MANAGE_STAGING_VERSIONS"
    assert entries["admins"] == "CAN_MANAGE"

    from tests import factories

    factories.user("newbie", groups=["ml-team"])
    error(apis["production_manager"].patch(url, {"access_control_list": [{"user_name": "newbie", "permission_level": "CAN_READ"}]}),
          403, "PERMISSION_DENIED")
    error(apis["outsider"].patch(url, {"access_control_list": []}), 404, "RESOURCE_DOES_NOT_EXIST")
    patched = body(apis["manager"].patch(url, {"access_control_list": [
        {"group_name": "ml-team", "permission_level": "CAN_EDIT"}, {"user_name": "reader", "permission_level": "CAN_MANAGE_PRODUCTION_VERSIONS"}]}))
    entries = {e.get("user_name") or e.get("group_name"): e["all_permissions"][0]["permission_level"] for e in patched["access_control_list"]}
    assert entries["ml-team"] == "CAN_EDIT" and entries["reader"] == "CAN_MANAGE_PRODUCTION_VERSIONS" and entries["editor"] == "CAN_EDIT"
    from core import permissions as perms

    assert perms.effective_level(factories.user("newbie"), model) == "CAN_EDIT"

    replaced = body(apis["owner"].put(url, data=json.dumps({"access_control_list": [
        {"user_name": "editor", "permission_level": "CAN_READ"}]}), content_type="application/json"))
    names = [e.get("user_name") or e.get("group_name") for e in replaced["access_control_list"]]
    assert names == ["owner", "editor", "admins"]
    assert perms.effective_level(people["manager"], model) is None

    assert "Invalid value 'CAN_FLY'" in error(apis["owner"].patch(url, {"access_control_list": [
        {"user_name": "editor", "permission_level": "CAN_FLY"}]}), 400, "INVALID_PARAMETER_VALUE")
    assert error(apis["owner"].patch(url, {"access_control_list": [
        {"user_name": "ghost", "permission_level": "CAN_READ"}]}), 400, "INVALID_PARAMETER_VALUE") == "User 'ghost' does not exist."
    error(apis["owner"].get("/api/2.0/permissions/registered-models/999999"), 404, "RESOURCE_DOES_NOT_EXIST")
    levels = body(apis["owner"].get(url + "/permissionLevels"))["permission_levels"]
    assert [lv["permission_level"] for lv in levels] == [
        "CAN_READ", "CAN_EDIT", "CAN_MANAGE_STAGING_VERSIONS", "CAN_MANAGE_PRODUCTION_VERSIONS", "CAN_MANAGE"]


def test_experiment_permissions_api(apis, people, owner):
    from tracking import services as tracking

    experiment = tracking.create_experiment(user=owner, name="exp")
    url = f"/api/2.0/permissions/experiments/{experiment.pk}"
    error(apis["reader"].get(url), 404, "RESOURCE_DOES_NOT_EXIST")
    data = body(apis["owner"].patch(url, {"access_control_list": [{"user_name": "reader", "permission_level": "CAN_READ"}]}))
    assert data["object_type"] == "mlflowExperiment" and data["object_id"] == f"/experiments/{experiment.pk}"
    assert body(apis["reader"].get(url))["access_control_list"][1] == {
        "user_name": "reader", "all_permissions": [{"permission_level": "CAN_READ", "inherited": False}]}
    error(apis["reader"].patch(url, {"access_control_list": []}), 403, "PERMISSION_DENIED")
    error(apis["owner"].patch(url, {"access_control_list": [{"user_name": "reader", "permission_level": "CAN_MANAGE_STAGING_VERSIONS"}]}),
          400, "INVALID_PARAMETER_VALUE")
    levels = body(apis["reader"].get(url + "/permissionLevels"))["permission_levels"]
    assert [lv["permission_level"] for lv in levels] == ["CAN_READ", "CAN_EDIT", "CAN_MANAGE"]


# --------------------------------------------------------------------------- stage policies API and inbox


def test_stage_policies_api(governed, apis):
    url = "/api/2.0/stagegate/stage-policies"
    spec = {"stage": "Production", "requires_approval": True, "min_approvals": 2, "allow_self_approval": False,
            "checks": [{"type": "metric", "key": "rmse", "op": "<=", "value": 0.8}]}
    error(apis["manager"].put(url, data=json.dumps(spec), content_type="application/json"), 403, "PERMISSION_DENIED")
    put = body(apis["admin"].put(url, data=json.dumps(spec), content_type="application/json"))["policy"]
    # archive_existing_on_approval left out: Production's default (on).
    assert put == {**spec, "approver_level": "CAN_MANAGE_PRODUCTION_VERSIONS", "scope": "global", "archive_existing_on_approval": True}
    override = dict(spec, model_name="gm", min_approvals=3, approver_level="CAN_MANAGE")
    assert body(apis["manager"].put(url, data=json.dumps(override), content_type="application/json"))["policy"]["scope"] == "model"
    error(apis["production_manager"].put(url, data=json.dumps(override), content_type="application/json"), 403, "PERMISSION_DENIED")
    error(apis["outsider"].put(url, data=json.dumps(override), content_type="application/json"), 404, "RESOURCE_DOES_NOT_EXIST")
    bad = dict(spec, checks=[{"type": "metric", "key": "rmse", "op": "<=", "value": "low"}])
    assert "numeric threshold" in error(apis["admin"].put(url, data=json.dumps(bad), content_type="application/json"),
                                        400, "INVALID_PARAMETER_VALUE")

    effective = {p["stage"]: p for p in body(apis["reader"].get(url, {"model_name": "gm"}))["policies"]}
    assert effective["Production"]["scope"] == "model" and effective["Production"]["approver_level"] == "CAN_MANAGE"
    assert effective["Staging"] == {"stage": "Staging", "scope": "default", "model_name": "gm", "requires_approval": False,
                                    "min_approvals": 1, "approver_level": "CAN_MANAGE_STAGING_VERSIONS",
                                    "allow_self_approval": False, "archive_existing_on_approval": False, "checks": []}
    global_ = {p["stage"]: p for p in body(apis["reader"].get(url))["policies"]}
    assert global_["Production"]["min_approvals"] == 2 and global_["None"]["scope"] == "default"
    assert body(apis["manager"].delete(url, {"stage": "Production", "model_name": "gm"})) == {}
    assert {p["stage"]: p for p in body(apis["reader"].get(url, {"model_name": "gm"}))["policies"]}["Production"]["scope"] == "global"
    error(apis["outsider"].get(url, {"model_name": "gm"}), 404, "RESOURCE_DOES_NOT_EXIST")


def test_review_inbox(governed, apis, people, admin, make_version):
    production_policy(admin)
    body(apis["editor"].post(TR + "create", {"name": "gm", "version": "1", "stage": "Production"}))
    body(apis["editor"].post(TR + "create", {"name": "gm", "version": "1", "stage": "Archived"}))
    # A request on a model the production manager cannot see.
    make_version("hidden", user=admin)
    body(apis["admin"].post(TR + "create", {"name": "hidden", "version": "1", "stage": "Production"}))
    url = "/api/2.0/stagegate/transition-requests"
    inbox = body(apis["production_manager"].get(url, {"reviewable": "true"}))["requests"]
    assert sorted(r["to_stage"] for r in inbox) == ["Archived", "Production"]
    assert [r["to_stage"] for r in body(apis["staging_manager"].get(url, {"reviewable": "true"}))["requests"]] == ["Archived"]
    assert body(apis["editor"].get(url, {"reviewable": "true"}))["requests"] == []  # their own requests
    assert len(body(apis["editor"].get(url, {"mine": "true"}))["requests"]) == 2
    assert len(body(apis["admin"].get(url, {"reviewable": "true"}))["requests"]) == 2  # not their own
    assert body(apis["outsider"].get(url))["requests"] == []
    page = body(apis["reader"].get(url, {"max_results": 1}))
    assert len(page["requests"]) == 1 and "next_page_token" in page
    rest = body(apis["reader"].get(url, {"max_results": 1, "page_token": page["next_page_token"]}))
    assert len(rest["requests"]) == 1 and "next_page_token" not in rest  # "hidden" never shows, not even as a page


def test_request_lists_cost_a_flat_number_of_queries(make_version, people, apis, admin, owner):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from approvals import services as gov

    def count():
        with CaptureQueriesContext(connection) as ctx:
            body(apis["admin"].get("/api/2.0/stagegate/transition-requests", {"status": "ALL"}))
        return len(ctx.captured_queries)

    make_version("m0", user=owner)
    gov.request_stage_transition(name="m0", version=1, stage="Production", user=owner)
    count()  # the token's first use is recorded once
    one = count()
    for i in range(1, 6):
        make_version(f"m{i}", user=owner)
        gov.request_stage_transition(name=f"m{i}", version=1, stage="Staging", user=owner)
        gov.create_comment(name=f"m{i}", version=1, user=owner, comment="x")
    production_policy(admin, min_approvals=2)
    gov.approve_transition_request(name="m0", version=1, stage="Production", user=admin, archive_existing_versions=False)
    assert count() == one
