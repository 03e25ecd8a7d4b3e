"""Single sign-on in a real browser: Stagegate's button, the provider's page (oidc-provider-mock on
loopback), back signed in with the groups' grants, a personal token, and a sign-out that ends the
provider's session too."""

import re

import pytest

from registry import services as registry
from tests import factories

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_sso_sign_in_token_and_sign_out(page, live_server, sso, owner, screenshot):
    registry.create_registered_model(name="private-model", user=owner)
    shared = registry.create_registered_model(name="credit-risk", user=owner)
    factories.grant(shared, "CAN_READ", group="analysts")
    sso.put_user("sub-nia", preferred_username="nia", email="nia@example.com", groups=["analysts"])
    # The provider's page asks a CDN for its style sheet: nothing leaves this machine.
    page.context.route(re.compile(r"^https?://(?!localhost[:/]|127\.0\.0\.1[:/])"), lambda route: route.abort())

    page.goto("/models/")
    page.wait_for_url(re.compile(r"/login/\?next=/models/$"))
    screenshot(page, "sso-sign-in")
    page.click("text=Sign in with Acme SSO")
    page.wait_for_url(re.compile("^" + re.escape(sso.issuer) + "/oauth2/authorize"))
    page.fill("#subject-input", "sub-nia")
    page.click("button:has-text('Authorize')")
    page.wait_for_url(re.compile(re.escape(live_server.url) + r"/models/$"))
    assert page.locator("summary", has_text="nia").is_visible()
    assert page.locator("a", has_text="credit-risk").is_visible()  # granted to the group "analysts"
    assert page.locator("a", has_text="private-model").count() == 0

    page.click("details.usermenu summary")
    page.click("text=Settings & API tokens")
    page.fill("#token-name", "notebook")
    page.click("button:has-text('Create token')")
    assert page.input_value("#new-token").startswith("sg_")
    assert page.locator("#token-table .token-row").count() == 1

    page.click("details.usermenu summary")
    page.click("text=Sign out")
    page.wait_for_url(re.compile("^" + re.escape(sso.issuer) + "/oauth2/end_session"))
    page.click("button:has-text('End session')")
    page.wait_for_url(re.compile(re.escape(live_server.url) + r"/login/$"))
    page.goto("/models/")
    page.wait_for_url(re.compile(r"/login/\?next=/models/$"))
