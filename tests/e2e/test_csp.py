"""The pages under their Content-Security-Policy in a real browser: no violation on the main pages, a
violation is caught when one happens (the listener works), and htmx still swaps under the policy."""

import pytest

from approvals import services as gov
from tests.ui import data
from tests.ui.test_registry_pages import make_version

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

# Records violations in each document (an init script runs before the page's own and is not subject to its CSP).
LISTEN = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", e => window.__csp.push(e.violatedDirective + " " + (e.blockedURI || "inline")));
"""


def watch(page) -> list[str]:
    console = []
    page.add_init_script(LISTEN)
    page.on("console", lambda msg: console.append(msg.text) if "Content Security Policy" in msg.text or "Refused to" in msg.text else None)
    return console


def violations(page) -> list[str]:
    return page.evaluate("window.__csp")


def test_main_pages_run_without_csp_violations(signed_in_page, admin, owner):
    experiment = data.experiment(owner, "csp")
    run = data.run(owner, experiment, params={"alpha": "0.5"}, metrics={"rmse": [0.7, 0.6]})
    make_version(owner, "wine", run=run, stage="Staging")
    gov.set_stage_policy(user=admin, stage="Production", checks_spec=[{"type": "version_ready"}])
    gov.request_stage_transition(name="wine", version=1, stage="Production", user=owner)
    page = signed_in_page(admin)
    console = watch(page)
    pages = ["/experiments/", f"/experiments/{experiment.pk}/", f"/runs/{run.run_uuid}/", "/models/", "/models/wine/",
             "/models/wine/versions/1/", "/models/wine/policies/", "/reviews/", "/settings/tokens/", "/settings/policies/",
             "/monitoring/webhooks/", "/monitoring/audit/", "/admin/", "/admin/approvals/stagepolicy/1/change/"]
    for url in pages:
        response = page.goto(url)
        assert response.status == 200 and "script-src 'self'" in response.headers["content-security-policy"], url
        page.wait_for_load_state("networkidle")
        assert violations(page) == [], (url, violations(page))
    assert console == []

    # The listener does see a violation: an inline script added now is refused.
    page.evaluate("() => { const s = document.createElement('script'); s.textContent = 'window.__ran = 1'; document.body.append(s); }")
    page.wait_for_function("() => window.__csp.length > 0")
    assert page.evaluate("window.__ran") is None and violations(page)[0].startswith("script-src")


def test_htmx_and_the_moved_handlers_work_under_the_csp(signed_in_page, owner):
    make_version(owner, "wine", stage="Staging")
    page = signed_in_page(owner)
    console = watch(page)
    page.goto("/models/wine/versions/1/")
    page.evaluate("window.__noReload = 'still here'")
    page.click("#request-transition")  # hx-get: the request dialog is swapped in
    dialog = page.locator("#request-dialog")
    dialog.wait_for()
    dialog.locator("[data-close-dialog]").click()  # was an inline onclick, now static/js/stagegate.js
    dialog.wait_for(state="detached")
    assert page.evaluate("window.__noReload") == "still here"

    page.goto("/settings/tokens/")
    page.fill("#tokens-panel input[name=name]", "ci")
    page.click("#tokens-panel button[type=submit]")  # hx-post: the panel is swapped with the new token
    token = page.locator("#new-token")
    token.wait_for()
    token.focus()  # was an inline onfocus: the whole token gets selected
    assert page.evaluate("document.activeElement.selectionStart") == 0
    assert page.evaluate("document.activeElement.selectionEnd") == len(token.input_value()) > 20
    assert violations(page) == [] and console == []
