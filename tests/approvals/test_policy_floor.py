"""The global policy of a stage is a floor: a model's own policy may tighten it, never lower it (unless a
superuser sets it), and a model policy that a later tightening of the global one outgrew is raised to it."""

import json

import pytest

from approvals import services as gov
from approvals.models import StagePolicy
from approvals.policy import covers, effective_policy
from core.errors import PermissionDenied
from registry import services as registry
from registry.models import Event, ModelVersion
from tests.approvals.conftest import production_policy

pytestmark = pytest.mark.django_db

URL = "/api/2.0/stagegate/stage-policies"
RMSE = {"type": "metric", "key": "rmse", "op": "<=", "value": 0.8}
STRICT = dict(stage="Production", model_name="gm", requires_approval=True, min_approvals=2,
              approver_level="CAN_MANAGE_PRODUCTION_VERSIONS", allow_self_approval=False, checks=[RMSE])


def put(api, **spec):
    return api.put(URL, data=json.dumps(spec), content_type="application/json")


@pytest.fixture
def strict_global(admin):
    return production_policy(admin, min_approvals=2, checks_spec=[RMSE])


@pytest.mark.parametrize("loosen, rule", [
    ({"requires_approval": False}, "requires approval"),
    ({"allow_self_approval": True}, "forbids self-approval"),
    ({"min_approvals": 1}, "needs 2 approvals"),
    ({"approver_level": "CAN_MANAGE_STAGING_VERSIONS"}, "needs approvers with CAN_MANAGE_PRODUCTION_VERSIONS"),
    ({"checks": []}, "checks rmse <= 0.8"),
    ({"checks": [{"type": "metric", "key": "rmse", "op": "<=", "value": 0.9}]}, "checks rmse <= 0.8"),
])
def test_owner_cannot_lower_the_global_policy(governed, api_for, owner, strict_global, loosen, rule):
    events = Event.objects.count()
    response = put(api_for(owner), **{**STRICT, **loosen})
    assert response.status_code == 403, response.content
    assert response.json() == {
        "error_code": "PERMISSION_DENIED",
        "message": f"The global policy for Production {rule}; only a superuser can lower it for one model.",
    }
    assert not StagePolicy.objects.filter(model=governed[0]).exists() and Event.objects.count() == events


def test_the_message_names_every_lowered_rule(governed, api_for, owner, strict_global):
    response = put(api_for(owner), **{**STRICT, "requires_approval": False, "allow_self_approval": True})
    assert response.json()["message"] == ("The global policy for Production requires approval and forbids self-approval; "
                                          "only a superuser can lower it for one model.")


def test_owner_may_tighten(governed, api_for, owner, strict_global):
    tighter = {**STRICT, "min_approvals": 3, "approver_level": "CAN_MANAGE",
               "checks": [{"type": "metric", "key": "rmse", "op": "<", "value": 0.75}, {"type": "version_ready"}]}
    response = put(api_for(owner), **tighter)
    assert response.status_code == 200, response.content
    assert response.json()["policy"]["exempt_from_global"] is False
    policy = effective_policy(model=governed[0], stage="Production")
    assert (policy.scope, policy.min_approvals, policy.approver_level) == ("model", 3, "CAN_MANAGE")
    # The stricter rmse bound covers the global one: it is not added a second time.
    assert policy.checks == tighter["checks"]


def test_superuser_may_lower_it_for_one_model(governed, api_for, client, admin, owner, strict_global):
    response = put(api_for(admin), **{**STRICT, "requires_approval": False})
    assert response.status_code == 200, response.content
    assert response.json()["policy"]["exempt_from_global"] is True
    assert effective_policy(model=governed[0], stage="Production").requires_approval is False
    client.force_login(admin)
    assert "(exempt from the global policy)" in client.get("/settings/policies/").content.decode()
    registry.transition_model_version_stage(name="gm", version=1, stage="Production", user=owner)
    assert ModelVersion.objects.get(pk=governed[1].pk).current_stage == "Production"
    # The owner editing the exception again is held to the floor once more.
    assert put(api_for(owner), **{**STRICT, "requires_approval": False}).status_code == 403
    assert put(api_for(owner), **STRICT).json()["policy"]["exempt_from_global"] is False


def test_a_model_policy_the_global_one_outgrew_is_raised_to_it(governed, admin, owner):
    """The admin tightens the global policy after the owner set a looser model policy (or a row predates
    the floor): evaluation takes the stricter value of each field, so the old row opens no direct path."""
    gov.set_stage_policy(user=owner, model_name="gm", stage="Production", requires_approval=False, allow_self_approval=True)
    StagePolicy.objects.create(model=None, stage="Production", requires_approval=True, min_approvals=2, checks=[RMSE])
    policy = effective_policy(model=governed[0], stage="Production")
    assert (policy.scope, policy.requires_approval, policy.min_approvals, policy.allow_self_approval, policy.checks) == (
        "model", True, 2, False, [RMSE])
    with pytest.raises(PermissionDenied, match="need an approved transition request"):
        registry.transition_model_version_stage(name="gm", version=1, stage="Production", user=owner)
    assert ModelVersion.objects.get(pk=governed[1].pk).current_stage == "Staging"


def test_the_stale_row_raised_in_the_api_and_the_batch_lookup(governed, api_for, admin, owner):
    StagePolicy.objects.create(model=governed[0], stage="Production", requires_approval=False)
    production_policy(admin, min_approvals=2)
    effective = {p["stage"]: p for p in api_for(owner).get(URL, {"model_name": "gm"}).json()["policies"]}
    assert effective["Production"]["requires_approval"] is True and effective["Production"]["min_approvals"] == 2
    from approvals.policy import effective_policies

    assert effective_policies([(governed[0], "Production")])[(governed[0].pk, "Production")].requires_approval is True


def test_covers():
    assert covers({"type": "metric", "key": "rmse", "op": "<", "value": 0.8}, RMSE)
    assert not covers(RMSE, {"type": "metric", "key": "rmse", "op": "<", "value": 0.8})
    assert covers({"type": "metric", "key": "acc", "op": ">=", "value": 0.95}, {"type": "metric", "key": "acc", "op": ">", "value": 0.9})
    assert not covers({"type": "metric", "key": "acc", "op": "<=", "value": 0.95}, {"type": "metric", "key": "acc", "op": ">", "value": 0.9})
    assert covers({"type": "min_hours_in_stage", "stage": "Staging", "hours": 48}, {"type": "min_hours_in_stage", "stage": "Staging", "hours": 24})
    assert not covers({"type": "tag", "key": "v", "value": "a"}, {"type": "tag", "key": "v", "value": "b"})


def test_model_policies_page_refuses_a_lowering(governed, client, owner, strict_global):
    client.force_login(owner)
    url = f"/models/gm/policies/"
    page = client.get(url)
    assert page.status_code == 200 and b"at least the global policy" not in page.content
    form = {"stage": "Production", "min_approvals": "2", "checks": json.dumps([RMSE])}  # requires_approval unticked
    response = client.post(url, form)
    assert response.status_code == 200
    assert b"The global policy for Production requires approval; only a superuser can lower it for one model." in response.content
    assert not StagePolicy.objects.filter(model=governed[0]).exists()
    htmx = client.post(url, form, headers={"HX-Request": "true"})
    assert htmx.status_code == 200 and htmx.content.lstrip().startswith(b'<section id="model-policies-panel"')
    saved = client.post(url, {**form, "requires_approval": "on", "min_approvals": "3"})
    assert saved.status_code == 302 and StagePolicy.objects.get(model=governed[0]).min_approvals == 3


def test_model_policies_page_access(governed, client, people):
    client.force_login(people["production_manager"])
    assert client.get("/models/gm/policies/").status_code == 403
    client.force_login(people["outsider"])
    assert client.get("/models/gm/policies/").status_code == 404
    client.force_login(people["manager"])
    assert client.put("/models/gm/policies/").status_code == 405
