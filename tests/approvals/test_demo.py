"""The governance demo: two people, a Production policy and a request waiting in the reviewer's inbox."""

import pytest

from approvals import services as gov
from approvals.demo import load_governance_demo
from approvals.models import StagePolicy, TransitionRequest
from core import permissions as perms
from core.errors import PermissionDenied
from registry.demo import MODEL_NAME, load_demo
from registry.models import ModelVersion

pytestmark = pytest.mark.django_db


def test_governance_demo(admin, api_for):
    from django.contrib.auth import get_user_model

    load_demo(user=admin)
    result = load_governance_demo(admin=admin)
    assert set(result["passwords"]) == {"scientist", "reviewer"}
    User = get_user_model()
    scientist, reviewer = User.objects.get(username="scientist"), User.objects.get(username="reviewer")
    assert scientist.check_password(result["passwords"]["scientist"]) and not scientist.is_superuser
    model = ModelVersion.objects.get(registered_model__name=MODEL_NAME, version=2).registered_model
    assert perms.effective_level(scientist, model) == "CAN_EDIT"
    assert perms.effective_level(reviewer, model) == "CAN_MANAGE_PRODUCTION_VERSIONS"
    policy = StagePolicy.objects.get(model=model, stage="Production")
    assert policy.min_approvals == 1 and not policy.allow_self_approval
    req = result["request"]
    assert (req.requester, req.to_stage, req.status, req.version.version) == (scientist, "Production", "PENDING", 2)
    assert all(check["passed"] for check in req.evidence["on_request"])

    # Running it again changes nothing and prints no new password.
    again = load_governance_demo(admin=admin)
    assert again["passwords"] == {} and again["request"].pk == req.pk and TransitionRequest.objects.count() == 1

    inbox = api_for(reviewer).get("/api/2.0/stagegate/transition-requests", {"reviewable": "true"}).json()["requests"]
    assert [(r["model_name"], r["version"], r["to_stage"], r["user_id"]) for r in inbox] == [(MODEL_NAME, "2", "Production", "scientist")]
    with pytest.raises(PermissionDenied):
        gov.approve_transition_request(name=MODEL_NAME, version=2, stage="Production", user=scientist)
    # The reviewer only approves: the Production policy archives v1 (archive_existing_on_approval, on for Production),
    # so the demo ends with one version in Production.
    assert StagePolicy.objects.get(model=model, stage="Production").effective_archive_existing_on_approval
    gov.approve_transition_request(name=MODEL_NAME, version=2, stage="Production", user=reviewer)
    assert dict(model.versions.values_list("version", "current_stage")) == {1: "Archived", 2: "Production"}


def test_seed_demo_loads_governance_and_prints_passwords_once(admin, capsys):
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    call_command("seed_demo", "--if-empty", "--user", "admin")
    out = capsys.readouterr().out
    for name in ("scientist", "reviewer"):
        line = next(x for x in out.splitlines() if f"Created demo user '{name}' with password: " in x)
        assert get_user_model().objects.get(username=name).check_password(line.rsplit(": ", 1)[1].strip())
    assert "waiting in 'reviewer''s inbox" in out
    assert TransitionRequest.objects.get().is_pending
    call_command("seed_demo", "--user", "admin")  # again: no new users, no new password printed
    assert "password" not in capsys.readouterr().out
