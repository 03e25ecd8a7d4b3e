"""core.wsgi: the API on its short middleware chain, pages on the full one (through the real WSGI callable)."""

import io
import json
import sys

import pytest
from django.conf import settings
from django.test import Client

from config.wsgi import application
from core.services import create_api_token
from registry import services

pytestmark = pytest.mark.django_db(transaction=True)


def wsgi(path: str, *, query: str = "", headers: dict | None = None, method: str = "GET", body: bytes = b""):
    environ = {
        "REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query, "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80",
        "HTTP_HOST": "127.0.0.1", "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body)),
        "wsgi.errors": sys.stderr, "wsgi.multithread": True, "wsgi.multiprocess": True, "wsgi.run_once": False,
        "wsgi.version": (1, 0), "REMOTE_ADDR": "127.0.0.1", **(headers or {}),
    }
    started = {}
    chunks = application(environ, lambda status, response_headers, *a: started.update(status=status, headers=dict(response_headers)))
    content = b"".join(chunks)
    chunks.close()
    return int(started["status"].split()[0]), started["headers"], content


def test_the_api_runs_on_its_own_short_chain(owner):
    services.create_registered_model(name="lane", user=owner)
    _, token = create_api_token(user=owner, name="lane")
    status, headers, content = wsgi("/api/2.0/mlflow/registered-models/get", query="name=lane", headers={"HTTP_AUTHORIZATION": f"Bearer {token}"})
    assert status == 200 and json.loads(content)["registered_model"]["name"] == "lane"
    # Page-only middleware did not run: no X-Frame-Options, no Vary: HX-Request (htmx), no CSRF cookie.
    assert "X-Frame-Options" not in headers and "HX-Request" not in headers.get("Vary", "")
    status, headers, content = wsgi("/ajax-api/2.0/mlflow/registered-models/get", query="name=lane")
    assert status == 401 and json.loads(content)["error_code"] == "UNAUTHENTICATED"
    # Security headers still apply (SecurityMiddleware is first on both chains).
    assert headers.get("X-Content-Type-Options") == "nosniff"
    assert settings.API_MIDDLEWARE[0] == settings.MIDDLEWARE[0] == "django.middleware.security.SecurityMiddleware"


def test_a_signed_in_browser_still_reads_the_api(owner):
    services.create_registered_model(name="lane", user=owner)
    browser = Client()
    browser.force_login(owner)
    cookie = f"{settings.SESSION_COOKIE_NAME}={browser.cookies[settings.SESSION_COOKIE_NAME].value}"
    status, _, content = wsgi("/api/2.0/mlflow/registered-models/get", query="name=lane", headers={"HTTP_COOKIE": cookie})
    assert status == 200 and json.loads(content)["registered_model"]["name"] == "lane"
    # ...and writes still need a credential.
    status, _, content = wsgi("/api/2.0/mlflow/registered-models/create", method="POST", body=b'{"name": "x"}',
                              headers={"HTTP_COOKIE": cookie, "CONTENT_TYPE": "application/json"})
    assert status == 401


def test_pages_keep_the_full_chain(owner):
    status, headers, _ = wsgi("/models/")
    assert status == 302 and headers["Location"].startswith("/login/?next=/models/")  # LoginRequiredMiddleware
    assert headers.get("X-Frame-Options") == "DENY"
