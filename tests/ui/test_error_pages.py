"""403/404/500 pages in the app's layout with the reason the server knows and a way back
(DEBUG=False, as in production); the API keeps answering MLflow's JSON errors."""

import pytest
from django.test import override_settings

from core import permissions as perms
from tests import factories
from tests.ui.test_registry_pages import make_version

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("_no_debug")]


@pytest.fixture
def _no_debug():
    with override_settings(DEBUG=False):
        yield


@pytest.fixture
def reader(owner, data_scientist):
    make_version(owner, "wine")
    from registry.models import RegisteredModel

    factories.grant(RegisteredModel.objects.get(name="wine"), perms.CAN_READ, user=data_scientist)
    return data_scientist


def test_403_names_the_level_needed_and_the_level_held(client, reader):
    client.force_login(reader)
    response = client.get("/models/wine/permissions/", HTTP_REFERER="http://testserver/models/wine/")
    assert response.status_code == 403
    html = response.content.decode()
    assert 'class="topbar"' in html and "mainnav" in html  # the app's layout, signed in
    assert "CAN_MANAGE on registered model &#x27;wine&#x27; is needed; you have CAN_READ" in html
    assert 'id="go-back" href="http://testserver/models/wine/"' in html
    # A foreign Referer is no way back.
    foreign = client.get("/models/wine/permissions/", HTTP_REFERER="https://evil.example/x").content.decode()
    assert 'id="go-back"' not in foreign and 'href="/">Go to the home page' in foreign


def test_404_says_what_is_missing_the_same_for_outsiders(client, reader, outsider):
    client.force_login(reader)
    missing = client.get("/models/nope/")
    assert missing.status_code == 404
    assert "nope" in missing.content.decode() and 'class="topbar"' in missing.content.decode()
    client.force_login(outsider)
    hidden = client.get("/models/wine/")
    assert hidden.status_code == 404 and "wine" in hidden.content.decode()
    no_route = client.get("/no/such/page/")
    assert no_route.status_code == 404
    assert "No page at <span class=\"mono\">/no/such/page/</span>" in no_route.content.decode()
    assert "Resolver404" not in no_route.content.decode()


def test_500_renders_without_a_request_context(rf):
    from django.views.defaults import server_error

    response = server_error(rf.get("/boom"))
    assert response.status_code == 500
    html = response.content.decode()
    assert "Something went wrong on the server" in html and "stagegate.css" in html and "mainnav" not in html


def test_the_api_keeps_mlflow_json_errors(api_for, reader):
    api = api_for(reader)
    response = api.get("registered-models/get", {"name": "nope"})
    assert response.status_code == 404 and response.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    denied = api.delete("registered-models/delete", {"name": "wine"})
    assert denied.status_code == 403 and denied.json()["error_code"] == "PERMISSION_DENIED"
