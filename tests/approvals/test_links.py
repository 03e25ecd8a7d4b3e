"""Links use the address the user reached: pages and API answers take the request's host,
mails (no request) take STAGEGATE_BASE_URL."""

import json

import pytest
from django.core import mail

from approvals import services as gov
from core.errors import PermissionDenied
from monitoring import services as monitoring
from registry import services as registry
from tests.approvals.conftest import production_policy

pytestmark = pytest.mark.django_db
REFUSED = "/api/2.0/mlflow/model-versions/transition-stage"
MOVE = {"name": "gm", "version": "1", "stage": "Production", "archive_existing_versions": False}


@pytest.fixture
def token(admin):
    from core.services import create_api_token

    return f"Bearer {create_api_token(user=admin, name='links')[1]}"


def refusal(client, token, **headers) -> str:
    response = client.post(REFUSED, json.dumps(MOVE), content_type="application/json", HTTP_AUTHORIZATION=token, **headers)
    assert response.status_code == 403, response.content
    return response.json()["message"]


def test_an_api_answer_links_to_the_host_the_client_reached(governed, admin, client, token, settings):
    settings.ALLOWED_HOSTS = ["registry.example", "127.0.0.1", "testserver"]
    settings.STAGEGATE_BASE_URL = "https://mail.example"
    production_policy(admin)
    message = refusal(client, token, HTTP_HOST="registry.example:9000")
    assert "http://registry.example:9000/models/gm/versions/1/" in message
    assert "mail.example" not in message and ":8000" not in message
    assert "http://127.0.0.1:9100/models/gm/versions/1/" in refusal(client, token, HTTP_HOST="127.0.0.1:9100")


def test_a_forwarded_host_counts_only_when_configured(governed, admin, client, token, settings):
    settings.ALLOWED_HOSTS = ["public.example", "internal", "testserver"]
    production_policy(admin)
    forwarded = {"HTTP_HOST": "internal", "HTTP_X_FORWARDED_HOST": "public.example"}
    settings.USE_X_FORWARDED_HOST = False
    assert "http://internal/models/gm/versions/1/" in refusal(client, token, **forwarded)
    settings.USE_X_FORWARDED_HOST = True
    assert "http://public.example/models/gm/versions/1/" in refusal(client, token, **forwarded)


def test_without_a_request_and_in_mails_links_use_the_base_url(governed, admin, people, settings):
    settings.STAGEGATE_BASE_URL = "https://registry.example/"
    settings.STAGEGATE_EMAIL_BATCH_SECONDS = 0
    production_policy(admin)
    with pytest.raises(PermissionDenied) as refused:
        registry.transition_model_version_stage(name="gm", version=1, stage="Production", user=admin)
    assert "https://registry.example/models/gm/versions/1/" in refused.value.message
    monitoring.watch_model(user=people["reader"], name="gm")
    mail.outbox.clear()
    gov.request_stage_transition(name="gm", version=1, stage="Production", user=people["editor"], comment="go")
    monitoring.sweep()
    bodies = "\n".join(m.body for m in mail.outbox)
    assert "https://registry.example/models/gm/" in bodies and "http://testserver" not in bodies
