"""Throttled password guessing (django-axes, core/auth.py) on the sign-in form, the admin's login and
HTTP Basic on the API: a user name or an address is locked out after STAGEGATE_LOGIN_FAILURE_LIMIT
failures for STAGEGATE_LOGIN_COOLOFF_MINUTES; tokens are unaffected; each lockout is audited once."""

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.db.models import F

from core.services import create_api_token
from monitoring.models import AuditRecord
from tests import factories
from tests.conftest import basic_header

pytestmark = pytest.mark.django_db

API = "/api/2.0/mlflow/experiments/search?max_results=1"
LOCKED = "Too many failed sign-in attempts for this user or from this address: signing in is locked for 15 minutes."


def sign_in(client, path, username, password=factories.PASSWORD, address="127.0.0.1"):
    return client.post(path, {"username": username, "password": password, "next": "/"}, REMOTE_ADDR=address)


def basic(client, username, password=factories.PASSWORD, address="127.0.0.1"):
    return client.get(API, HTTP_AUTHORIZATION=basic_header(username, password), REMOTE_ADDR=address)


def signed_in(client) -> bool:
    return settings.SESSION_COOKIE_NAME in client.cookies and client.get("/settings/tokens/").status_code == 200


def cool_off():
    """Time travel: every counted failure happened a cool-off (and a minute) ago."""
    AccessAttempt.objects.update(attempt_time=F("attempt_time") - settings.AXES_COOLOFF_TIME - timedelta(minutes=1))


def lockouts():
    return list(AuditRecord.objects.filter(type="auth.locked_out").values_list("payload", flat=True))


@pytest.mark.parametrize("path", ["/login/", "/admin/login/"])
def test_25_wrong_passwords_lock_the_sign_in_form(client, admin, path):
    statuses = [sign_in(client, path, "admin", "wrong").status_code for _ in range(25)]
    assert statuses[:4] == [200] * 4 and set(statuses[4:]) == {429}
    refused = sign_in(client, path, "admin")
    assert refused.status_code == 429 and refused["Retry-After"] == "900"
    assert LOCKED in refused.content.decode() and 'id="login-error"' in refused.content.decode()
    assert not signed_in(client)
    [payload] = lockouts()
    assert '"username":"admin"' in payload and '"ip_address":"127.0.0.1"' in payload and '"failures":5' in payload
    cool_off()
    assert sign_in(client, path, "admin").status_code == 302 and signed_in(client)


def test_25_wrong_passwords_lock_http_basic_but_not_tokens(client, owner):
    token = create_api_token(user=owner, name="ci")[1]
    assert basic(client, "owner").status_code == 200  # now cached as verified
    statuses = [basic(client, "owner", "wrong").status_code for _ in range(25)]
    assert statuses[:4] == [401] * 4 and set(statuses[4:]) == {403}
    for response in (basic(client, "owner"), basic(client, "owner", address="10.9.9.9")):
        # The right password, even the one verified and cached before the lockout, from anywhere: refused.
        assert response.status_code == 403 and response["Retry-After"] == "900"
        assert response.json() == {"error_code": "PERMISSION_DENIED", "message": LOCKED + " Try again later, or ask an administrator to unlock it."}
    assert client.get(API, HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200
    assert len(lockouts()) == 1 and '"path":"/api/2.0/mlflow/experiments/search"' in lockouts()[0]
    cool_off()
    assert basic(client, "owner").status_code == 200


def test_lock_by_user_name_from_any_address(client, owner, outsider):
    for i in range(5):
        assert sign_in(client, "/login/", "owner", "wrong", address=f"10.0.0.{i}").status_code in (200, 429)
    assert sign_in(client, "/login/", "owner", address="10.0.1.1").status_code == 429
    assert basic(client, "owner", address="10.0.1.2").status_code == 403
    # Another user from a fresh address is not affected.
    assert basic(client, "outsider", address="10.0.1.3").status_code == 200


def test_lock_by_address_for_any_user_name(client, owner, outsider):
    for name in ("a", "b", "c", "d", "e"):
        basic(client, name, "wrong", address="10.0.2.1")
    assert basic(client, "owner", address="10.0.2.1").status_code == 403
    assert sign_in(client, "/login/", "outsider", address="10.0.2.1").status_code == 429
    assert basic(client, "owner", address="10.0.2.2").status_code == 200


def test_a_success_resets_the_count(client, owner):
    for _ in range(3):
        basic(client, "owner", "wrong")
    assert sign_in(client, "/login/", "owner").status_code == 302
    for _ in range(4):
        assert sign_in(client, "/login/", "owner", "wrong").status_code == 200
    assert lockouts() == []


def test_a_cached_basic_call_costs_one_lockout_query(client, owner, django_assert_num_queries):
    """The lockout check runs on every Basic call (cached verification or not): one EXISTS query while
    the name and address have no recent failure, then the user row, then the endpoint's own queries."""
    basic(client, "owner")
    with django_assert_num_queries(4) as ctx:  # lockout EXISTS, user, experiments, their tags
        assert basic(client, "owner").status_code == 200
    assert "axes_accessattempt" in ctx.captured_queries[0]["sql"]


@pytest.mark.client
@pytest.mark.django_db(transaction=True)
def test_the_mlflow_client_shows_the_lockout_at_once(mlflow_client, monkeypatch):
    """The real client with MLFLOW_TRACKING_USERNAME/PASSWORD: a 403 is not retried, so the user sees why."""
    import os

    import mlflow
    from mlflow.exceptions import RestException

    token = os.environ["MLFLOW_TRACKING_TOKEN"]
    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN")
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "owner")
    for password in ["wrong"] * 5 + [factories.PASSWORD]:
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)
        with pytest.raises(RestException) as refused:
            mlflow.search_experiments()
    assert refused.value.error_code == "PERMISSION_DENIED" and LOCKED in refused.value.message
    # The same user's API token still works.
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME")
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD")
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", token)
    experiment_id = mlflow_client.create_experiment("after-lockout")
    assert mlflow_client.get_experiment(experiment_id).name == "after-lockout"


def test_client_address_behind_trusted_proxies(settings, rf):
    from core.auth import client_ip

    request = rf.get("/", REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.7")
    assert client_ip(request) == "10.0.0.1"  # no trusted proxy: a client-sent header is ignored
    settings.STAGEGATE_TRUSTED_PROXIES = 1
    assert client_ip(request) == "203.0.113.7"  # what our proxy appended, not what the client prepended
    settings.STAGEGATE_TRUSTED_PROXIES = 3
    assert client_ip(request) == "10.0.0.1"  # fewer hops than proxies: not trusted
