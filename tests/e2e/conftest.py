"""Browser fixtures: headless Debian Chromium driven by Playwright, against live_server.

Reuse them in any flow: `page` is a fresh tab, `signed_in_page(user)` a tab with a
session for `user`, `screenshot(page, name)` saves var/screenshots/<name>.png (kept by CI).

The pages run under a Content-Security-Policy without 'unsafe-eval': give `wait_for_function` a
function (`"() => location.search.includes('x')"`), not a bare expression, which Playwright evals
inside the page (refused by the CSP). `page.evaluate` of an expression is not affected.
"""

import os
from pathlib import Path

import pytest
from django.conf import settings

CHROMIUM = os.environ.get("STAGEGATE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(settings.BASE_DIR) / "var" / "screenshots"

@pytest.fixture
def browser(monkeypatch):
    """One Chromium per test: Playwright's sync API keeps an asyncio loop running in this
    thread while it is open, so it must not outlive the test (Django's ORM refuses to run
    inside a running loop unless DJANGO_ALLOW_ASYNC_UNSAFE is set, which we allow only here)."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM} (set STAGEGATE_CHROMIUM)")
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1360, "height": 900})
    context.set_default_timeout(10_000)
    tab = context.new_page()
    errors = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    yield tab
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


@pytest.fixture
def signed_in_page(page, live_server):
    """signed_in_page(user) -> the `page` tab carrying a session cookie for `user`."""
    from django.test import Client

    def sign_in(user):
        client = Client()
        client.force_login(user)
        cookie = client.cookies[settings.SESSION_COOKIE_NAME]
        page.context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": cookie.value, "url": live_server.url}])
        return page

    return sign_in


@pytest.fixture
def screenshot():
    def save(page, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return save
