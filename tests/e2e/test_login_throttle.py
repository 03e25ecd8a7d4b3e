"""The sign-in page after too many wrong passwords: a clear message, even for the right password."""

import pytest

from tests import factories

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_sign_in_page_shows_the_lockout(page, owner, screenshot):
    page.goto("/login/")
    for password in ["wrong"] * 5 + [factories.PASSWORD]:
        page.fill("input[name=username]", "owner")
        page.fill("input[name=password]", password)
        with page.expect_navigation() as nav:
            page.click("button[type=submit]")
    assert nav.value.status == 429
    assert page.inner_text("#login-error").startswith("Too many failed sign-in attempts for this user or from this address")
    assert page.url.endswith("/login/")  # not signed in
    assert page.input_value("input[name=username]") == "owner"
    screenshot(page, "login-locked-out")
