"""Issue 15, items 5-7 in a real browser (headless Chromium against live_server): the reviewer's
context (candidate beside the Production holder with deltas, approve and reject from the inbox, the
empty-inbox explanation), a permission level changed in place with suggestions, error pages with the
reason. Every page fits 1,280 px; screenshots at 1,440 px go to var/screenshots/."""

import re

import pytest

from approvals.models import TransitionRequest
from core import permissions as perms
from registry.models import ModelVersion, RegisteredModel
from tests.e2e.test_governance_flows import _mark_page, _not_reloaded, _tab
from tests.ui.test_reviewer_context import contest

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def fits(page, width: int = 1280) -> None:
    """No horizontal overflow at `width` px."""
    page.set_viewport_size({"width": width, "height": 900})
    scroll = page.evaluate("document.documentElement.scrollWidth")
    assert scroll <= width, f"{page.url} overflows: scrollWidth {scroll} > {width}"


def shot(page, screenshot, name: str) -> None:
    page.set_viewport_size({"width": 1440, "height": 900})
    screenshot(page, name)


def stages():
    return dict(ModelVersion.objects.filter(registered_model__name="wine").values_list("version", "current_stage"))


@pytest.fixture
def req(owner, data_scientist, reviewer, admin):
    return contest(owner, data_scientist, reviewer, admin)


def test_reviewer_compares_on_the_card_and_approves_from_the_inbox(browser, live_server, reviewer, req, screenshot):
    page = _tab(browser, live_server, reviewer)
    page.goto("/models/wine/versions/2/")
    # The page leads with the review, and the card loads the comparison from the approvals app.
    assert page.inner_text("#review-first") == "Review the Production request"
    card = page.locator(f"#request-{req.pk}")
    card.locator(f"#request-compare-{req.pk}").wait_for()
    assert card.locator('tr[data-metric="rmse"] td.delta').inner_text() == "-0.1 (-14.3%)"
    assert "version 1" in card.locator(".compare-head").inner_text()
    assert "Approving archives the other versions in Production" in card.inner_text()
    fits(page)
    shot(page, screenshot, "reviewer-version-card-compare")

    page.click(".mainnav >> text=Reviews")
    page.wait_for_url(re.compile(r"/reviews/$"))
    row = page.locator(f"#inbox-request-{req.pk}")
    assert "waiting" in row.locator(".waiting").inner_text()
    assert row.locator('tr[data-metric="r2"] td.delta').inner_text() == "+0.05 (+10.0%)"
    assert "inputs: pH" in row.locator(".compare-signature").inner_text()
    fits(page)
    shot(page, screenshot, "reviewer-inbox")
    _mark_page(page)
    page.fill(f"#inbox-comment-{req.pk}", "Better rmse; pH input checked.")
    row.locator("button[value=approve]").click()
    page.wait_for_selector("#review-done")
    assert f"Approved request #{req.pk}" in page.inner_text("#review-done")
    assert _not_reloaded(page)
    assert page.inner_text(".mainnav .count") == "0"
    assert page.locator("#empty-inbox").is_visible()
    assert stages() == {1: "Archived", 2: "Production"}  # one version in Production
    assert TransitionRequest.objects.get(pk=req.pk).decision_comment == "Better rmse; pH input checked."
    assert not page.js_errors
    page.context.close()


def test_reject_with_a_comment_and_the_empty_inbox_explains(browser, live_server, reviewer, data_scientist, req, screenshot):
    page = _tab(browser, live_server, data_scientist)
    page.goto("/reviews/")
    empty = page.locator("#empty-inbox")
    assert "1 open request is not yours to decide" in empty.inner_text()
    assert "needs CAN_MANAGE_PRODUCTION_VERSIONS on 'wine'; you have CAN_READ" in empty.inner_text()
    fits(page)
    shot(page, screenshot, "reviewer-inbox-empty-explained")
    page.context.close()

    page = _tab(browser, live_server, reviewer)
    page.goto("/reviews/")
    _mark_page(page)
    page.fill(f"#inbox-comment-{req.pk}", "Evaluate on the 2025 data first.")
    page.click(f"#inbox-request-{req.pk} button[value=reject]")
    page.wait_for_selector("#review-done")
    assert f"Rejected request #{req.pk}" in page.inner_text("#review-done") and _not_reloaded(page)
    req.refresh_from_db()
    assert req.status == "REJECTED" and req.decision_comment == "Evaluate on the 2025 data first."
    assert stages() == {1: "Production", 2: "Staging"}
    assert not page.js_errors
    page.context.close()


def test_admin_changes_a_level_in_place_with_suggestions(browser, live_server, owner, admin, data_scientist, req, screenshot):
    model = RegisteredModel.objects.get(name="wine")
    page = _tab(browser, live_server, owner)
    page.goto("/models/wine/permissions/")
    _mark_page(page)
    row = page.locator('tr[data-principal="user:data_scientist"]')
    assert row.locator("select option:checked").inner_text() == "Can read"
    row.locator("select").select_option("CAN_MANAGE_STAGING_VERSIONS")
    page.wait_for_selector("#perm-done")
    assert page.inner_text("#perm-done") == "User data_scientist: Can manage Staging versions."
    assert _not_reloaded(page)
    assert perms.effective_level(data_scientist, model) == perms.CAN_MANAGE_STAGING_VERSIONS
    assert page.locator('tr[data-principal="user:data_scientist"] select option:checked').inner_text() == "Can manage Staging versions"
    # Suggestions as you type: the server fills the datalist.
    page.click("#grant-principal")
    page.keyboard.type("revi")
    page.wait_for_selector('#principal-suggestions option[value="reviewer"]', state="attached")
    fits(page)
    shot(page, screenshot, "permissions-tab")
    assert not page.js_errors
    page.context.close()

    page = _tab(browser, live_server, admin)
    page.goto(f"/admin/registry/registeredmodel/{model.pk}/permissions/")
    assert "Can manage Production versions" in page.text_content("#user-permissions thead")  # (admin CSS upper-cases it)
    fits(page)
    shot(page, screenshot, "admin-object-permissions")
    page.goto("/admin/registry/registeredmodel/")
    fits(page)
    shot(page, screenshot, "admin-registered-models")
    page.context.close()


def test_error_pages_carry_the_reason_and_a_way_back(browser, live_server, data_scientist, req, screenshot):
    page = _tab(browser, live_server, data_scientist)
    page.goto("/models/wine/")
    response = page.goto("/models/wine/permissions/", referer=f"{live_server.url}/models/wine/")
    assert response.status == 403
    assert page.inner_text("#error-reason") == (
        "Permission denied: CAN_MANAGE on registered model 'wine' is needed; you have CAN_READ.")
    assert page.get_attribute("#go-back", "href") == f"{live_server.url}/models/wine/"
    fits(page)
    shot(page, screenshot, "error-403")
    page.click("#go-back")
    page.wait_for_url(re.compile(r"/models/wine/$"))
    response = page.goto("/models/nope/versions/3/")
    assert response.status == 404 and "nope" in page.inner_text("#error-reason")
    assert page.locator(".topbar .mainnav").is_visible()  # the app's layout
    fits(page)
    shot(page, screenshot, "error-404")
    assert not page.js_errors
    page.context.close()
