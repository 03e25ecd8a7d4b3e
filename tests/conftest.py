"""Shared fixtures: personas, API clients, the real mlflow client against live_server."""

import base64
import os

import pytest
from django.conf import settings
from django.db import connection

from tests import factories

def services_required(environ) -> bool:
    """CI (CI set to anything but "", 0, false) and .ci/run (STAGEGATE_REQUIRE_SERVICES=1) have every
    service and tool this suite uses."""
    return environ.get("STAGEGATE_REQUIRE_SERVICES") == "1" or environ.get("CI", "").strip().lower() not in ("", "0", "false")


REQUIRE_SERVICES = services_required(os.environ)


def missing(what: str):
    """What a test needs (a service, a tool, PostgreSQL) is not here: a failure where it must be
    (REQUIRE_SERVICES), a skip on a developer's machine without it."""
    if REQUIRE_SERVICES:
        pytest.fail(f"{what}; it must be available here (CI or STAGEGATE_REQUIRE_SERVICES=1)")
    pytest.skip(what)


def require_postgresql(why: str = "row locks need PostgreSQL (SQLite serialises writers)") -> None:
    if connection.vendor != "postgresql":
        missing(why)


def count_queries(client, url, **extra) -> int:
    """SQL queries of one page view, in the steady state: a first view warms the process-wide caches
    (content types, permission rows, sessions) that would otherwise make the count depend on test order."""
    from django.test.utils import CaptureQueriesContext

    client.get(url, **extra)
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url, **extra)
    assert response.status_code == 200, response.content[:800]
    return len(ctx.captured_queries)


def htmx_tags_without_js(web, pages: list[str]) -> int:
    """Every hx-get/hx-post element on `pages` also works without JavaScript: a real href/action to the
    same place, and POST forms for hx-post. Returns how many elements were checked."""
    import re

    checked = 0
    for url in pages:
        html = web.get(url).content.decode()
        for tag in re.findall(r"<(?:a|form|button|input|select|textarea)\b[^>]*\bhx-(?:get|post)=[^>]*>", html):
            checked += 1
            href = re.search(r'\b(?:href|action)="([^"]*)"', tag)
            assert href, f"{url}: {tag} has hx-get/hx-post but no href/action"
            if "hx-post" in tag:
                assert 'method="post"' in tag, f"{url}: {tag} must also POST without JavaScript"
            hx = re.search(r'\bhx-(?:get|post)="([^"]*)"', tag).group(1)
            assert href.group(1).split("#")[0] == hx.split("#")[0], f"{url}: {tag} links somewhere else than it swaps"
    return checked


def run_together(work, n: int, timeout: float = 60) -> list[Exception]:
    """Run work(i) for i in range(n) in n threads released at once, each on its own connection
    (closed at the end); returns what they raised."""
    import threading

    errors, barrier = [], threading.Barrier(n)

    def run(i):
        try:
            barrier.wait()
            work(i)
        except Exception as exc:  # reported to the test
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    return errors


def pytest_sessionstart(session):
    # In CI the services are there: a missing one is a failure, never a skip.
    if REQUIRE_SERVICES:
        engine = settings.DATABASES["default"]["ENGINE"]
        if "postgresql" not in engine:
            pytest.exit(f"CI must run on PostgreSQL (DATABASE_URL), got {engine}", returncode=1)
        if not settings.CELERY_BROKER_URL.startswith("redis"):
            pytest.exit("CI must have CELERY_BROKER_URL pointing at Redis", returncode=1)


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # PBKDF2 at Django 6's cost makes every persona take half a second; tests don't need it.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _eager_celery_by_default(settings):
    """Tasks run inline unless a test asks for the real worker (fixture `celery_worker`)."""
    from config.celery import app

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous


@pytest.fixture(autouse=True)
def _artifact_root(tmp_path, settings):
    """Each test gets its own artifact folder."""
    from django.core.files.storage import storages

    root = tmp_path / "artifacts"
    settings.STORAGES = {
        **settings.STORAGES,
        "artifacts": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(root), "allow_overwrite": True},
        },
    }
    storages._storages.pop("artifacts", None)
    storages.backends = settings.STORAGES
    yield root
    storages._storages.pop("artifacts", None)


@pytest.fixture(autouse=True)
def _clear_cache():
    from django.core.cache import cache

    cache.clear()
    yield


# --------------------------------------------------------------------------- personas


@pytest.fixture
def admin(db):
    return factories.user("admin", is_superuser=True)


@pytest.fixture
def owner(db):
    return factories.user("owner")


@pytest.fixture
def data_scientist(db):
    return factories.user("data_scientist")


@pytest.fixture
def reviewer(db):
    return factories.user("reviewer")


@pytest.fixture
def outsider(db):
    return factories.user("outsider")


# --------------------------------------------------------------------------- API clients


class ApiClient:
    """Django test client speaking the MLflow wire conventions (JSON bodies, auth header)."""

    def __init__(self, client, auth_header: str | None):
        self.client = client
        self.headers = {"HTTP_AUTHORIZATION": auth_header} if auth_header else {}

    def _url(self, path: str) -> str:
        return path if path.startswith("/") else "/api/2.0/mlflow/" + path

    def get(self, path, params=None, **extra):
        return self.client.get(self._url(path), params or {}, **self.headers, **extra)

    def post(self, path, body=None, **extra):
        return self.client.post(self._url(path), body if body is not None else {}, content_type="application/json", **self.headers, **extra)

    def patch(self, path, body=None, **extra):
        return self.client.patch(self._url(path), body if body is not None else {}, content_type="application/json", **self.headers, **extra)

    def delete(self, path, body=None, **extra):
        return self.client.delete(self._url(path), body if body is not None else {}, content_type="application/json", **self.headers, **extra)

    def put(self, path, data=b"", content_type="application/octet-stream", **extra):
        return self.client.generic("PUT", self._url(path), data, content_type=content_type, **self.headers, **extra)


def basic_header(username: str, password: str = factories.PASSWORD) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


@pytest.fixture
def api_for(client):
    """api_for(user) -> an ApiClient authenticated as that user with a personal token."""

    def make(user):
        from django.test import Client

        from core.services import create_api_token

        _, raw = create_api_token(user=user, name="tests")
        return ApiClient(Client(), f"Bearer {raw}")

    return make


@pytest.fixture
def api(api_for, owner):
    return api_for(owner)


@pytest.fixture
def anon_api(client):
    return ApiClient(client, None)


# --------------------------------------------------------------------------- the real mlflow client


@pytest.fixture
def mlflow_client(live_server, owner, monkeypatch):
    """The real `mlflow` client pointed at live_server, authenticated as `owner`."""
    import mlflow

    from core.services import create_api_token

    _, raw = create_api_token(user=owner, name="mlflow")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", live_server.url)
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", raw)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "60")
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    mlflow.set_tracking_uri(live_server.url)
    mlflow.set_registry_uri(live_server.url)
    yield mlflow.MlflowClient(tracking_uri=live_server.url, registry_uri=live_server.url)
    while mlflow.active_run():
        mlflow.end_run()


def db_vendor() -> str:
    return connection.vendor


# --------------------------------------------------------------------------- single sign-on


class OidcProvider:
    """A real OpenID Connect provider (oidc-provider-mock) on loopback: any client id and secret are
    accepted; its authorization page signs in whichever subject is submitted, with the claims last PUT."""

    def __init__(self, issuer: str):
        self.issuer = issuer

    def put_user(self, sub: str, **claims) -> None:
        import requests

        response = requests.put(f"{self.issuer}/users/{sub}", json=claims, timeout=10)
        assert response.status_code == 204, response.text


@pytest.fixture(scope="session")
def oidc_provider():
    from oidc_provider_mock import run_server_in_thread

    with run_server_in_thread(port=0, require_nonce=True) as server:
        yield OidcProvider(f"http://localhost:{server.server_port}")


@pytest.fixture
def sso(oidc_provider, settings):
    """Single sign-on turned on against `oidc_provider` (the discovery document read afresh)."""
    from core import oidc

    settings.STAGEGATE_OIDC_ISSUER = oidc_provider.issuer
    settings.STAGEGATE_OIDC_CLIENT_ID = "stagegate"
    settings.STAGEGATE_OIDC_CLIENT_SECRET = "client-secret"
    settings.STAGEGATE_OIDC_NAME = "Acme SSO"
    oidc.forget_provider()
    yield oidc_provider
    oidc.forget_provider()
