"""The registry's Django admin: every page renders; history and outbox are read-only; built-in stages stay."""

import pytest

from registry import services
from registry.models import Event, ModelVersion, RegisteredModel, Stage, StageTransition

pytestmark = pytest.mark.django_db


@pytest.fixture
def seeded(owner, make_version):
    make_version("m", stage="Production")
    services.set_registered_model_alias(name="m", alias="champion", version=1, user=owner)


@pytest.mark.parametrize("model", [RegisteredModel, ModelVersion, Stage, StageTransition, Event])
def test_changelist_and_change_pages_render(client, admin, seeded, model):
    client.force_login(admin)
    opts = model._meta
    assert client.get(f"/admin/{opts.app_label}/{opts.model_name}/").status_code == 200
    obj = model.objects.first()
    assert client.get(f"/admin/{opts.app_label}/{opts.model_name}/{obj.pk}/change/").status_code == 200


def test_history_and_outbox_are_read_only(client, admin, seeded):
    client.force_login(admin)
    assert client.get("/admin/registry/event/add/").status_code == 403
    assert client.get("/admin/registry/stagetransition/add/").status_code == 403
    event = Event.objects.first()
    r = client.post(f"/admin/registry/event/{event.pk}/delete/", {"post": "yes"})
    assert r.status_code == 403 and Event.objects.filter(pk=event.pk).exists()


def test_admin_adds_a_custom_stage_but_cannot_delete_built_ins(client, admin):
    client.force_login(admin)
    r = client.post("/admin/registry/stage/add/", {"name": "Shadow", "order": 25, "description": "mirrors traffic"})
    assert r.status_code == 302
    assert list(Stage.objects.values_list("name", flat=True)) == ["None", "Staging", "Production", "Shadow", "Archived"]
    assert services.canonical_stage("shadow") == "Shadow"
    none = Stage.objects.get(name="None")
    assert client.post(f"/admin/registry/stage/{none.pk}/delete/", {"post": "yes"}).status_code == 403


def test_non_staff_cannot_open_the_admin(client, owner):
    client.force_login(owner)
    r = client.get("/admin/registry/registeredmodel/")
    assert r.status_code == 302 and "/admin/login" in r["Location"]
