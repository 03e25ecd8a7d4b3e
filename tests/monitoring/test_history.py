"""Point in time (which version held a stage / an alias at time T) from the audit history, and rollback."""

import pytest

from approvals.models import TransitionRequest
from monitoring import services
from monitoring.models import AuditRecord
from registry import services as registry
from registry.models import RegisteredModel

pytestmark = pytest.mark.django_db


def _ts(type, **filters):
    return AuditRecord.objects.filter(type=type, **filters).order_by("-seq").values_list("created", flat=True).first()


@pytest.fixture
def timeline(owner, make_version):
    make_version("churn")
    make_version("churn")
    make_version("churn")
    registry.transition_model_version_stage(name="churn", version=1, stage="Production", user=owner)
    registry.set_registered_model_alias(name="churn", alias="champion", version=1, user=owner)
    t1 = _ts("alias.set") + 1
    _wait_past(t1)
    registry.transition_model_version_stage(name="churn", version=2, stage="Production", user=owner, archive_existing_versions=True)
    registry.set_registered_model_alias(name="churn", alias="champion", version=2, user=owner)
    t2 = _ts("alias.set", version=2) + 1
    _wait_past(t2)
    registry.delete_registered_model_alias(name="churn", alias="champion", user=owner)
    t3 = _ts("alias.deleted") + 1
    _wait_past(t3)
    return t1, t2, t3


def _wait_past(ts):
    import time

    from tracking.models import now_ms

    while now_ms() <= ts:
        time.sleep(0.002)


def test_stage_at(api, timeline):
    t1, t2, _ = timeline
    r = api.get("/api/2.0/stagegate/registered-models/stage-at", {"name": "churn", "stage": "production", "timestamp": t1})
    assert r.status_code == 200
    body = r.json()
    assert [h["version"] for h in body["model_versions"]] == ["1"] and body["stage"] == "production"
    assert body["model_versions"][0]["by"] == "owner"
    at_t2 = api.get("/api/2.0/stagegate/registered-models/stage-at", {"name": "churn", "stage": "Production", "timestamp": t2}).json()
    assert [h["version"] for h in at_t2["model_versions"]] == ["2"]
    archived = api.get("/api/2.0/stagegate/registered-models/stage-at", {"name": "churn", "stage": "Archived", "timestamp": t2}).json()
    assert [h["version"] for h in archived["model_versions"]] == ["1"]
    before = api.get("/api/2.0/stagegate/registered-models/stage-at", {"name": "churn", "stage": "Production", "timestamp": 1}).json()
    assert before["model_versions"] == []


def test_alias_at(api, timeline):
    t1, t2, t3 = timeline
    get = lambda ts: api.get("/api/2.0/stagegate/registered-models/alias-at", {"name": "churn", "alias": "champion", "timestamp": ts}).json()
    assert get(t1)["version"] == "1" and get(t1)["previous_version"] is None
    assert get(t2)["version"] == "2" and get(t2)["previous_version"] == "1"
    assert "version" not in get(t3), "deleted by then"
    from datetime import UTC, datetime

    iso = datetime.fromtimestamp(t2 / 1000, UTC).isoformat()
    assert get(iso)["version"] in ("1", "2")


def test_history_survives_version_deletion(api, owner, timeline):
    t1, _, _ = timeline
    registry.delete_model_version(name="churn", version=1, user=owner)
    r = api.get("/api/2.0/stagegate/registered-models/stage-at", {"name": "churn", "stage": "Production", "timestamp": t1}).json()
    assert [h["version"] for h in r["model_versions"]] == ["1"], "the history remembers a deleted version"


def test_point_in_time_errors(api, anon_api, outsider, api_for, timeline):
    r = api.get("/api/2.0/stagegate/registered-models/stage-at", {"name": "churn", "stage": "Production"})
    assert r.status_code == 400 and "'timestamp'" in r.json()["message"]
    r = api.get("/api/2.0/stagegate/registered-models/stage-at", {"name": "churn", "stage": "Production", "timestamp": "yesterday"})
    assert r.status_code == 400
    r = api.get("/api/2.0/stagegate/registered-models/alias-at", {"name": "nope", "alias": "a", "timestamp": 1})
    assert r.status_code == 404 and r.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    r = api.get("/api/2.0/stagegate/registered-models/stage-at", {"name": "churn", "stage": "Nowhere", "timestamp": 1})
    assert r.status_code == 400
    assert anon_api.get("/api/2.0/stagegate/registered-models/stage-at", {"name": "churn", "stage": "Production", "timestamp": 1}).status_code == 401
    r = api_for(outsider).get("/api/2.0/stagegate/registered-models/alias-at", {"name": "churn", "alias": "champion", "timestamp": 1})
    assert r.status_code in (200, 404)  # organisation default decides visibility; never a 500


def test_rollback_of_a_stage_files_a_request(api, owner, timeline):
    r = api.post("/api/2.0/stagegate/registered-models/rollback", {"name": "churn", "stage": "Production", "comment": "v2 regressed"})
    assert r.status_code == 200, r.content
    assert r.json()["version"] == "1" and r.json()["stage"] == "Production"
    req = TransitionRequest.objects.get(pk=r.json()["request"])
    assert req.version.version == 1 and req.to_stage == "Production" and req.status == "PENDING"
    assert req.comment == "v2 regressed"
    # The same policies: a second identical request is refused.
    again = api.post("/api/2.0/stagegate/registered-models/rollback", {"name": "churn", "stage": "Production"})
    assert again.status_code == 400 and again.json()["error_code"] == "RESOURCE_ALREADY_EXISTS"


def test_rollback_of_an_alias(api, owner, timeline):
    registry.set_registered_model_alias(name="churn", alias="champion", version=3, user=owner)
    registry.set_registered_model_alias(name="churn", alias="champion", version=2, user=owner)
    r = api.post("/api/2.0/stagegate/registered-models/rollback", {"name": "churn", "alias": "champion"})
    assert r.status_code == 200 and r.json() == {"alias": "champion", "version": "3"}
    model = RegisteredModel.objects.get(name="churn")
    assert model.aliases.get(alias="champion").version.version == 3
    r = api.post("/api/2.0/stagegate/registered-models/rollback", {"name": "churn", "alias": "nobody"})
    assert r.status_code == 400 and "no previous holder" in r.json()["message"]
    r = api.post("/api/2.0/stagegate/registered-models/rollback", {"name": "churn"})
    assert r.status_code == 400


def test_previous_holder_skips_deleted_versions(owner, timeline):
    registry.delete_model_version(name="churn", version=1, user=owner)
    assert services.previous_holder(user=owner, name="churn", stage="Production") is None
