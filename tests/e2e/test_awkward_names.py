"""In a real browser: a model with an awkward but valid name, and one stored with a newline before the
input rules existed, are listed on /models/ and their links open their own pages."""

import pytest

from registry.models import RegisteredModel
from tests.ui.test_registry_pages import make_version

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

AWKWARD = "team/churn 100%? #1 模型"


def test_awkward_and_legacy_names_open_their_pages(signed_in_page, owner, screenshot):
    make_version(owner, AWKWARD)
    make_version(owner, "legacy")
    RegisteredModel.objects.filter(name="legacy").update(name="legacy\nname")  # as an older server stored it
    page = signed_in_page(owner)

    page.goto("/models/")
    page.locator("#model-table a", has_text="模型").click()
    page.wait_for_load_state()
    assert page.locator("main h1").inner_text() == AWKWARD
    assert page.url.endswith("/models/team/churn%20100%25%3F%20%231%20%E6%A8%A1%E5%9E%8B/")
    page.locator("a[href$='/versions/1/']").first.click()
    page.wait_for_load_state()
    assert "/versions/1/" in page.url and AWKWARD in page.locator("main").inner_text()
    screenshot(page, "awkward-name-version")

    page.goto("/models/")
    page.locator("#model-table a", has_text="legacy").first.click()
    page.wait_for_load_state()
    assert page.url.endswith("/models/legacy%0Aname/")
    assert page.locator("main h1").inner_text().split() == ["legacy", "name"]
