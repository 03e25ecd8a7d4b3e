"""Django admin in our terms (issue 15, item 6): guardian's object-permission page lists our levels by
their readable names, plural names read right, epoch-ms timestamps show as dates."""

import pytest

from core import permissions as perms
from registry.models import RegisteredModel
from tests import factories
from tests.ui.test_registry_pages import make_version

pytestmark = pytest.mark.django_db


def test_object_permissions_page_shows_our_levels(client, admin, owner, data_scientist):
    make_version(owner, "wine")
    model = RegisteredModel.objects.get(name="wine")
    factories.grant(model, perms.CAN_MANAGE_STAGING_VERSIONS, user=data_scientist)
    client.force_login(admin)
    html = client.get(f"/admin/registry/registeredmodel/{model.pk}/permissions/").content.decode()
    headers = html.split('id="user-permissions"')[1].split("</thead>")[0]
    assert [label in headers for label in perms.LEVEL_LABELS.values()] == [True] * 5
    assert "Can add" not in headers and "Can delete" not in headers
    assert "admin-object-perms.css" in html
    page = client.get(f"/admin/registry/registeredmodel/{model.pk}/permissions/user-manage/{data_scientist.pk}/").content.decode()
    assert '<option value="manage_staging_versions_registeredmodel" selected>Can manage Staging versions</option>' in page
    response = client.post(f"/admin/registry/registeredmodel/{model.pk}/permissions/user-manage/{data_scientist.pk}/",
                           {"permissions": ["manage_production_versions_registeredmodel"]})
    assert response.status_code == 302
    assert perms.effective_level(data_scientist, model) == perms.CAN_MANAGE_PRODUCTION_VERSIONS


def test_plural_names_and_dates_in_lists(client, admin, owner):
    from monitoring.models import WebhookDelivery
    from registry.models import RegisteredModelAlias

    assert RegisteredModelAlias._meta.verbose_name_plural == "registered model aliases"
    assert WebhookDelivery._meta.verbose_name_plural == "webhook deliveries"
    make_version(owner, "wine")
    client.force_login(admin)
    html = client.get("/admin/registry/registeredmodel/").content.decode()
    created = RegisteredModel.objects.get(name="wine").creation_timestamp
    assert str(created) not in html  # no 13-digit epoch milliseconds
    assert "creation timestamp" in html.lower()
    assert "Webhook deliveries" in client.get("/admin/").content.decode()
