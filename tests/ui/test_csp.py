"""Every HTML page carries the Content-Security-Policy header and has no inline script: a crawl of the
site as a superuser (every same-site link reachable from the main pages, Django admin included), the
sign-in page, error pages and htmx partials."""

import re
from urllib.parse import urljoin, urlsplit

import pytest

from approvals import services as gov
from monitoring import services as monitoring
from monitoring.models import Webhook
from tests.ui import data
from tests.ui.test_registry_pages import make_version

pytestmark = pytest.mark.django_db

SEEDS = ["/", "/experiments/", "/models/", "/reviews/", "/settings/tokens/", "/settings/stages/", "/settings/policies/",
         "/monitoring/webhooks/", "/monitoring/deliveries/", "/monitoring/audit/", "/monitoring/watches/", "/admin/"]
# Never followed: they act (sign out), download files, or are endless variations of a page.
SKIP = re.compile(r"^/(logout/|static/|api/|ajax-api/)|/artifacts/|/files/|export\.jsonl|^/admin/(logout|password_change|r)/|^/admin/.*\?|[?&](page|page_token|sort|dir|o|q)=")
IDS = re.compile(r"[0-9a-f]{8}-[0-9a-f-]{27}|[0-9a-f]{32}|\d+")


def shape(url: str) -> str:
    """One page per shape: /models/wine/versions/1/ stands for every version page, ?a=1 for every ?a=."""
    path, _, query = url.partition("?")
    # Django admin renders every model with the same few templates: one model per app is enough.
    path = re.sub(r"^/admin/(\w+)/\w+/", r"/admin/\1/M/", path)
    return IDS.sub("N", path) + "?" + "&".join(sorted(p.split("=")[0] for p in query.split("&") if p))
# A data block (`json_script`: type="application/json") is never executed, so the CSP does not govern it.
INLINE_SCRIPT = re.compile(r"<script\b(?![^>]*\b(?:src=|type=\"application/json\"))[^>]*>", re.I)
EVENT_HANDLER = re.compile(r"<[a-z][^>]*\son[a-z]+\s*=", re.I)


def assert_csp_page(response, url: str) -> str:
    policy = response.get("Content-Security-Policy", "")
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";") if d.strip())
    assert directives.get("script-src") == "'self'", f"{url}: {policy!r}"
    assert directives.get("default-src") == "'self'" and directives.get("object-src") == "'none'", url
    html = response.content.decode()
    assert not INLINE_SCRIPT.search(html), f"{url}: inline script {INLINE_SCRIPT.search(html).group(0)}"
    assert not EVENT_HANDLER.search(html), f"{url}: inline event handler {EVENT_HANDLER.search(html).group(0)}"
    assert "javascript:" not in html and "hx-on" not in html, url
    # The crawl also checks a house rule of every page: breadcrumbs never end with a dangling "/".
    for crumbs in re.findall(r'<div class="crumbs">(.*?)</div>', html, re.S):
        assert not re.sub(r"<[^>]+>", "", crumbs).strip().endswith("/"), f"{url}: breadcrumb ends with '/': {crumbs!r}"
    return html


@pytest.fixture
def site(owner, admin, settings):
    settings.STAGEGATE_WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    experiment = data.experiment(owner, "csp")
    run = data.run(owner, experiment, params={"alpha": "0.5"}, metrics={"rmse": [0.7, 0.6]}, tags={"team": "ml"})
    make_version(owner, "wine", run=run, stage="Staging")
    make_version(owner, "wine", run=run)
    gov.set_stage_policy(user=admin, stage="Production", checks_spec=[{"type": "version_ready"}])
    gov.request_stage_transition(name="wine", version=1, stage="Production", user=owner)
    gov.create_comment(name="wine", version=1, user=owner, comment="hello")
    monitoring.create_webhook(user=admin, flavor=Webhook.MLFLOW, name="csp-hook", url="http://127.0.0.1:9/hook",
                              events=["model_version.created"], secret="s3cr3t")
    make_version(owner, "wine")  # a delivery for the deliveries pages
    return experiment, run


def test_every_page_has_the_csp_and_no_inline_script(client, admin, site):
    client.force_login(admin)
    seen, shapes, queue, html_pages = set(), set(), list(SEEDS), 0
    while queue and len(seen) < 250:
        url = queue.pop(0)
        if url in seen or shape(url) in shapes:
            continue
        seen.add(url)
        shapes.add(shape(url))
        response = client.get(url)
        if response.status_code in (301, 302):
            queue.append(response["Location"])
            continue
        if not response.get("Content-Type", "").startswith("text/html"):
            continue
        assert response.status_code == 200, (url, response.status_code)
        html = assert_csp_page(response, url)
        html_pages += 1
        for href in re.findall(r'\bhref="([^"#]+)', html):
            target = urljoin(url, href.replace("&amp;", "&"))
            parts = urlsplit(target)
            if not parts.netloc and not SKIP.search(target) and target not in seen:
                queue.append(target)
    # The main pages of every area were reached, Django admin's included.
    for expected in ("/models/wine/versions/1/", "/models/wine/policies/", "/monitoring/webhooks/", "/admin/approvals/"):
        assert any(u.startswith(expected) for u in seen), expected
    print(f"{html_pages} HTML pages checked")
    assert html_pages > 45, html_pages


def test_sign_in_error_and_partial_pages_have_the_csp(client, owner, site):
    assert_csp_page(client.get("/login/"), "/login/")
    client.force_login(owner)
    missing = client.get("/models/nope/")
    assert missing.status_code == 404 and "Content-Security-Policy" in missing
    partial = client.get("/models/wine/versions/1/request/", headers={"HX-Request": "true"})
    assert partial.status_code == 200
    assert_csp_page(partial, "request dialog partial")
    tokens = client.post("/settings/tokens/", {"name": "ci"})
    assert "data-select-on-focus" in assert_csp_page(tokens, "new token")


def test_django_secure_turns_on_secure_cookies_and_hsts():
    """DJANGO_SECURE=true (behind a TLS proxy): Secure session and CSRF cookies, HSTS, HTTPS redirect."""
    import json
    import os
    import subprocess
    import sys

    from django.conf import settings

    names = ["SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SECURE_HSTS_SECONDS", "SECURE_SSL_REDIRECT", "SECURE_PROXY_SSL_HEADER"]
    probe = f"import json, config.settings as s; print(json.dumps([getattr(s, n, None) for n in {names!r}]))"

    def settings_with(secure: str):
        env = {**os.environ, "DJANGO_SECURE": secure}
        out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, cwd=settings.BASE_DIR, check=True)
        return json.loads(out.stdout)

    assert settings_with("true") == [True, True, 31536000, True, ["HTTP_X_FORWARDED_PROTO", "https"]]
    assert settings_with("false") == [None] * 5  # Django's defaults: no Secure cookies, no HSTS
