"""Every page as good as the version page (issue 15, items 8-10) in a real browser: the webhooks
form in the app's style, the audit log inside 1,280 px with copyable hashes, the nav highlighting
the section, links on the host the user reached, and the demo's run page opening on a chart."""

import json

import pytest

from approvals.demo import load_governance_demo
from monitoring import services as monitoring
from registry.demo import MODEL_NAME, load_demo

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
NARROW = {"width": 1280, "height": 900}
WIDE = {"width": 1440, "height": 900}


def fits(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth") <= page.viewport_size["width"]


@pytest.fixture
def demo(admin, settings):
    settings.STAGEGATE_WEBHOOK_ALLOWED_HOSTS = ["hooks.example"]
    load_demo(user=admin)
    load_governance_demo(admin=admin)
    hook = monitoring.create_webhook(user=admin, flavor="mlflow", name="ci-hook", url="https://hooks.example/stagegate",
                                     events=["model_version.created", "model_version_alias.created"])
    return {"hook": hook}


def test_webhooks_page_uses_the_app_form_style_and_creates_a_hook(demo, signed_in_page, admin, screenshot):
    page = signed_in_page(admin)
    page.set_viewport_size(NARROW)
    page.goto("/monitoring/webhooks/")
    assert page.locator(".mainnav a[aria-current=page]").inner_text() == "Webhooks"
    legends = page.locator("#webhook-form fieldset.event-group legend").all_inner_texts()
    assert legends == ["MLflow-style", "Databricks-style", "Databricks-style, Stagegate only"]
    assert page.locator("#webhook-form fieldset.event-group .hint").count() == 3
    assert page.locator("#webhook-form ul#id_events").count() == 0, "not Django's default checkbox list"
    assert page.locator("#webhook-form .hint", has_text="Required for MLflow-style webhooks").count() == 1
    assert fits(page)
    page.fill("#id_name", "browser-hook")
    page.fill("#id_url", "https://hooks.example/browser")
    page.check("input[name=events][value='model_version.created']")
    page.click("#webhook-form button[type=submit]")
    page.wait_for_url("**/monitoring/webhooks/*/")
    assert page.locator("h1").inner_text() == "browser-hook"
    assert page.locator("input[name=events][value='model_version.created']").is_checked()
    assert not page.locator("input[name=events][value='registered_model.created']").is_checked()
    assert page.locator(".mainnav a[aria-current=page]").inner_text() == "Webhooks"
    assert fits(page)
    page.set_viewport_size(WIDE)
    screenshot(page, "webhook-detail")
    page.goto("/monitoring/webhooks/")
    screenshot(page, "webhook-list")


def test_audit_log_fits_1280_and_copies_the_full_hash(demo, signed_in_page, admin, screenshot):
    page = signed_in_page(admin)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.set_viewport_size(NARROW)
    page.goto("/monitoring/audit/")
    assert page.locator(".mainnav a[aria-current=page]").inner_text() == "Audit log"
    rows = page.locator(".audit-table tbody tr")
    assert rows.count() > 10
    assert fits(page), page.evaluate("document.documentElement.scrollWidth")
    shown = rows.first.locator("code.hash").inner_text()
    button = rows.first.locator("button.copy")
    full = button.get_attribute("data-copy")
    assert len(full) == 64 and shown == full[:10] + "…"
    button.click()
    page.wait_for_function("() => document.querySelector('.audit-table button.copy').textContent === 'Copied'")
    assert page.evaluate("() => navigator.clipboard.readText()") == full
    page.set_viewport_size(WIDE)
    screenshot(page, "audit-log")


def test_links_use_the_host_the_user_reached(demo, live_server, browser, admin):
    """The same server reached as 127.0.0.1 and as localhost answers with links on each."""
    from core.services import create_api_token

    token = create_api_token(user=admin, name="e2e")[1]
    move = {"name": MODEL_NAME, "version": "2", "stage": "Production", "archive_existing_versions": False}
    port = live_server.url.rsplit(":", 1)[1]
    for host in ("127.0.0.1", "localhost"):
        context = browser.new_context()
        answer = context.request.post(f"http://{host}:{port}/api/2.0/mlflow/model-versions/transition-stage",
                                      data=json.dumps(move), headers={"Authorization": f"Bearer {token}",
                                                                      "Content-Type": "application/json"})
        assert answer.status == 403
        assert f"http://{host}:{port}/models/{MODEL_NAME}/versions/2/" in answer.json()["message"]
        context.close()


def test_the_demo_run_page_opens_on_a_training_curve(demo, signed_in_page, admin, screenshot):
    from tracking.models import Run

    run = Run.objects.get(name="lr-run-3")
    page = signed_in_page(admin)
    page.set_viewport_size(WIDE)
    page.goto(f"/runs/{run.run_uuid}/")
    assert page.get_by_text("train_rmse").count() >= 1
    assert page.locator("svg.chart, canvas").count() >= 1, "a chart, not 'One value: nothing to chart'"
    assert page.get_by_text("nothing to chart").count() == 0
    screenshot(page, "demo-run")


def test_model_pages_have_crumbs_tabs_and_fit(demo, signed_in_page, admin, screenshot):
    """Models list, Compare versions and Point in time: a breadcrumb without a trailing "/", the model's
    tabs with the current one marked, controls on one baseline, no horizontal overflow at 1,280 px."""
    page = signed_in_page(admin)
    page.set_viewport_size(NARROW)
    page.goto("/models/")
    assert page.locator(".mainnav a[aria-current=page]").inner_text() == "Models"
    row = page.locator("tr.model-row", has_text=MODEL_NAME)
    assert row.locator(".badge").first.inner_text().startswith("Production")
    assert "task: regression" in row.inner_text() and "**" not in row.inner_text()
    assert fits(page)
    page.set_viewport_size(WIDE)
    screenshot(page, "model-list")

    page.set_viewport_size(NARROW)
    page.goto(f"/models/{MODEL_NAME}/")
    assert page.locator(".crumbs").inner_text().strip() == "Models"
    assert page.locator("tr.version-row a", has_text="lr-run-2").count() == 1, "run names, not hashes"
    assert page.locator("#versions-table th", has_text="rmse").count() == 1
    assert page.locator("ul.feed code.tagkv", has_text="task=regression").count() == 1
    assert fits(page)
    page.set_viewport_size(WIDE)
    screenshot(page, "model-detail")

    page.set_viewport_size(NARROW)
    page.goto(f"/models/{MODEL_NAME}/versions/1/")
    chip = page.locator(".tag.removable", has_text="@champion")
    text_box, remove_box = chip.bounding_box(), chip.locator("button").bounding_box()
    assert text_box["y"] <= remove_box["y"] and remove_box["y"] + remove_box["height"] <= text_box["y"] + text_box["height"] + 1, \
        "the alias's × stays inside its chip"
    assert fits(page)

    page.set_viewport_size(NARROW)
    page.goto(f"/models/{MODEL_NAME}/compare/")
    assert not page.locator(".crumbs").inner_text().rstrip().endswith("/")
    assert page.locator(".tabs a[aria-current=page]").inner_text() == "Compare versions"
    boxes = page.locator(".version-picker input[type=checkbox]")
    assert boxes.count() == 2, "every version is a tick box"
    boxes.nth(0).check()
    boxes.nth(1).check()
    page.click(".version-picker button[type=submit]")
    page.wait_for_function("() => new URLSearchParams(location.search).getAll('versions').length === 2")
    assert page.locator("table.compare thead th a").count() == 2
    assert fits(page)
    page.set_viewport_size(WIDE)
    screenshot(page, "model-compare")

    page.set_viewport_size(NARROW)
    page.goto(f"/monitoring/models/{MODEL_NAME}/history")
    assert not page.locator(".crumbs").inner_text().rstrip().endswith("/")
    assert page.locator(".tabs a[aria-current=page]").inner_text() == "Point in time"
    form = page.locator("#point-in-time form").first
    bottoms = [round(box["y"] + box["height"]) for box in
               (form.locator(sel).bounding_box() for sel in ("select[name=stage]", "input[name=alias]", "input[name=at]", "button"))]
    assert max(bottoms) - min(bottoms) <= 2, f"controls on one baseline: {bottoms}"
    page.select_option("select[name=stage]", "Production")
    page.fill("input[name=at]", "2100-01-01T00:00")
    page.click("#point-in-time form button[type=submit] >> nth=0")
    page.wait_for_selector("#point-in-time [role=status]")
    assert "Production" in page.locator("#point-in-time [role=status]").inner_text()
    assert fits(page)
    page.set_viewport_size(WIDE)
    screenshot(page, "model-point-in-time")
