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
