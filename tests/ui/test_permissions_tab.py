"""The Permissions tab (issue 15, item 6): readable level names, the level changed in place, user and
group suggestions only for those who manage the model, a header on every column."""

import re

import pytest

from approvals.models import RegisteredModelUserPermission
from core import permissions as perms
from registry.models import RegisteredModel
from tests import factories
from tests.ui.test_registry_pages import as_user, htmx, make_version

pytestmark = pytest.mark.django_db


@pytest.fixture
def model(owner, data_scientist):
    make_version(owner, "wine")
    model = RegisteredModel.objects.get(name="wine")
    factories.grant(model, perms.CAN_READ, user=data_scientist)
    return model


def test_readable_level_names_and_a_header_on_every_column(client, owner, model):
    html = as_user(client, owner).get("/models/wine/permissions/").content.decode()
    headers = re.findall(r"<th scope=\"col\">(.*?)</th>", html.split('id="acl"')[1].split("</thead>")[0])
    assert headers == ["User or group", "Level", "Granted", "Remove"]
    assert '<option value="CAN_MANAGE_PRODUCTION_VERSIONS">Can manage Production versions</option>' in html
    assert '<option value="CAN_READ" selected>Can read</option>' in html  # data_scientist's row
    assert ">Can manage</span>" in html  # the owner's (read-only) row
    assert perms.level_label(None) == "No permission"


def test_change_a_level_in_place(client, owner, data_scientist, model):
    web = as_user(client, owner)
    response = web.post("/models/wine/permissions/", {"kind": "user", "principal": "data_scientist", "level": "CAN_MANAGE_STAGING_VERSIONS"},
                        **htmx("permissions-panel"))
    html = response.content.decode()
    assert html.strip().startswith('<section id="permissions-panel"')
    assert "User data_scientist: Can manage Staging versions." in html
    assert '<option value="CAN_MANAGE_STAGING_VERSIONS" selected>' in html
    assert perms.effective_level(data_scientist, model) == perms.CAN_MANAGE_STAGING_VERSIONS
    assert RegisteredModelUserPermission.objects.filter(content_object=model, user=data_scientist).count() == 1
    # Without JavaScript: POST/redirect/GET with the message.
    response = web.post("/models/wine/permissions/", {"kind": "user", "principal": "data_scientist", "level": "CAN_EDIT"})
    assert response.status_code == 302 and perms.effective_level(data_scientist, model) == perms.CAN_EDIT
    bad = web.post("/models/wine/permissions/", {"kind": "user", "principal": "data_scientist", "level": "CAN_FLY"}, **htmx("permissions-panel"))
    assert bad.status_code == 200 and "must be one of" in bad.content.decode()
    assert perms.effective_level(data_scientist, model) == perms.CAN_EDIT


def test_suggestions_only_for_managers(client, owner, reviewer, outsider, data_scientist, model):
    from django.contrib.auth.models import Group

    Group.objects.create(name="ml-team")
    factories.grant(model, perms.CAN_MANAGE_PRODUCTION_VERSIONS, user=reviewer)
    web = as_user(client, owner)
    users = web.get("/models/wine/permissions/suggest", {"kind": "user", "principal": "data"}).content.decode()
    assert '<option value="data_scientist"' in users and "reviewer" not in users
    groups = web.get("/models/wine/permissions/suggest", {"kind": "group", "principal": "ml"}).content.decode()
    assert '<option value="ml-team"' in groups
    assert as_user(client, reviewer).get("/models/wine/permissions/suggest", {"principal": "a"}).status_code == 403
    assert as_user(client, outsider).get("/models/wine/permissions/suggest", {"principal": "a"}).status_code == 404
