"""Governance in Django admin: guardian's object-permission pages, stage policies validated like the API."""

import pytest
from django.test import Client

from approvals.models import StagePolicy
from core import permissions as perms

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_(admin):
    client = Client()
    client.force_login(admin)
    return client


def test_object_permission_pages_for_models_and_experiments(admin_client_, make_version, owner, data_scientist):
    from tracking.models import Experiment

    model = make_version("gm").registered_model
    page = admin_client_.get(f"/admin/registry/registeredmodel/{model.pk}/permissions/")
    assert page.status_code == 200 and "Object permissions" in page.content.decode()
    # Grant through guardian's user form: the level lands in our direct-FK table and counts.
    response = admin_client_.post(
        f"/admin/registry/registeredmodel/{model.pk}/permissions/user-manage/{data_scientist.pk}/",
        {"permissions": ["edit_registeredmodel"], "submit_manage_user": "submit"},
    )
    assert response.status_code == 302
    assert perms.effective_level(data_scientist, model) == perms.CAN_EDIT
    assert model.user_grants.count() == 1
    experiment = Experiment.objects.get(pk=0)
    assert admin_client_.get(f"/admin/tracking/experiment/{experiment.pk}/permissions/").status_code == 200


def test_stage_policy_admin_validates_checks(admin_client_, admin):
    url = "/admin/approvals/stagepolicy/add/"
    assert admin_client_.get(url).status_code == 200
    bad = {"stage": "production", "min_approvals": 1, "approver_level": "", "requires_approval": "on",
           "checks": '[{"type": "metric", "key": "rmse", "op": "~", "value": 1}]'}
    response = admin_client_.post(url, bad)
    assert response.status_code == 200 and "unknown operator" in response.content.decode()
    good = dict(bad, checks='[{"type": "metric", "key": "rmse", "op": "<=", "value": 0.8}]')
    assert admin_client_.post(url, good).status_code == 302
    policy = StagePolicy.objects.get()
    assert policy.stage == "Production" and policy.model is None and policy.updated_by == admin
    assert admin_client_.get("/admin/approvals/transitionrequest/").status_code == 200
