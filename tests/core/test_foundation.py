import pytest

from core.services import create_api_token, revoke_api_token
from tests.conftest import ApiClient, basic_header


def test_health_is_public_plain_ok(client):
    response = client.get("/health")
    assert response.status_code == 200
    assert response.content == b"OK"
    assert response["Content-Type"].startswith("text/plain")


def test_unknown_api_route_is_json_endpoint_not_found(client):
    response = client.get("/api/2.0/mlflow/registered-models/nope")
    assert response.status_code == 404
    assert response.json()["error_code"] == "ENDPOINT_NOT_FOUND"
    assert client.get("/ajax-api/2.0/whatever").json()["error_code"] == "ENDPOINT_NOT_FOUND"


def test_pages_are_private(client):
    response = client.get("/models/")
    assert response.status_code == 302
    assert "/login/" in response["Location"]


@pytest.mark.django_db
def test_disallowed_host_is_refused(client):
    assert client.get("/health", HTTP_HOST="evil.example.com").status_code == 400


@pytest.mark.parametrize(("required", "outcome"), [(True, pytest.fail.Exception), (False, pytest.skip.Exception)])
def test_a_missing_service_fails_where_it_is_required_and_skips_elsewhere(monkeypatch, required, outcome):
    import tests.conftest as shared

    monkeypatch.setattr(shared, "REQUIRE_SERVICES", required)
    with pytest.raises(outcome, match="redis-server"):
        shared.missing("redis-server is not installed")


@pytest.mark.parametrize(("environ", "required"), [
    ({"CI": "true"}, True), ({"CI": "1"}, True), ({"CI": "yes"}, True), ({"STAGEGATE_REQUIRE_SERVICES": "1"}, True),
    ({}, False), ({"CI": ""}, False), ({"CI": "false"}, False), ({"CI": "0"}, False), ({"STAGEGATE_REQUIRE_SERVICES": "0"}, False),
])
def test_ci_in_the_environment_makes_services_required(environ, required):
    from tests.conftest import services_required

    assert services_required(environ) is required
