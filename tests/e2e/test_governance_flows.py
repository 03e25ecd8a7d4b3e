"""The governance flows in a real browser (headless Chromium against live_server):
(1) a data scientist goes from an experiment to the best run's registered version and requests Production;
(2) a reviewer approves it from the inbox and the version page updates in place;
(3) an admin grants a group from the Permissions tab and a member of the group approves;
(4) a version registered by the real mlflow client goes PENDING_REGISTRATION -> READY on its open page."""

import re

import pytest

from approvals import services as gov
from approvals.models import TransitionRequest
from core import permissions as perms
from registry.models import ModelVersion, RegisteredModel
from tests import factories
from tests.ui import data
from tests.ui.test_registry_pages import make_version

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _tab(browser, live_server, user):
    """A new browser tab with a session for `user` (several people act in one test)."""
    from django.conf import settings
    from django.test import Client

    client = Client()
    client.force_login(user)
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1360, "height": 900})
    context.set_default_timeout(10_000)
    context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
                          "url": live_server.url}])
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.js_errors = errors
    return page


def _mark_page(page):
    """Tag the window: the mark survives htmx swaps and is gone after any full page load."""
    page.evaluate("window.__noReload = 'still here'")


def _not_reloaded(page) -> bool:
    return page.evaluate("window.__noReload") == "still here"


@pytest.fixture
def governed(owner, data_scientist, reviewer, admin):
    """An experiment with three runs; the best one (lowest rmse) registered as `wine` v1 in Staging.
    Production needs one approval from a production manager, and the version must be READY."""
    experiment = data.experiment(owner, "wine-quality")
    runs = [
        data.run(owner, experiment, name=f"run-{rmse}", params={"alpha": str(alpha)}, metrics={"rmse": [rmse + 0.2, rmse + 0.1, rmse]},
                 start_time=1_700_000_000_000 + i * 60_000)
        for i, (alpha, rmse) in enumerate([(0.1, 0.81), (0.5, 0.62), (0.9, 0.74)])
    ]
    best = runs[1]
    make_version(owner, "wine", run=best, stage="Staging")
    model = RegisteredModel.objects.get(name="wine")
    factories.grant(experiment, perms.CAN_READ, user=data_scientist)
    factories.grant(model, perms.CAN_READ, user=data_scientist)
    factories.grant(model, perms.CAN_MANAGE_PRODUCTION_VERSIONS, user=reviewer)
    gov.set_stage_policy(user=admin, stage="Production", requires_approval=True, min_approvals=1,
                         checks_spec=[{"type": "version_ready"}, {"type": "metric", "key": "rmse", "op": "<=", "value": 0.7}])
    return experiment, best, model


def test_flow1_data_scientist_requests_production_from_the_best_run(browser, live_server, data_scientist, governed, screenshot):
    experiment, best, _ = governed
    page = _tab(browser, live_server, data_scientist)
    page.goto(f"/experiments/{experiment.pk}/")
    assert page.locator("#runs-table tr.run-row").count() == 3
    # Sort by rmse: the first click sorts descending, the second ascending (best first).
    page.click("#runs-table th >> text=rmse")
    page.wait_for_function("() => location.search.includes('sort=metrics.rmse') && location.search.includes('dir=desc')")
    page.click("#runs-table th >> text=rmse")
    page.wait_for_function("() => location.search.includes('dir=asc')")
    first = page.locator("#runs-table tr.run-row").first
    assert "run-0.62" in first.inner_text()
    first.locator("text=run-0.62").click()
    page.wait_for_url(re.compile(rf"/runs/{best.run_uuid}/$"))
    assert page.locator("figure.chart-card svg.chart polyline").count() == 1  # the rmse history chart
    screenshot(page, "governance-best-run")
    page.click("section[aria-labelledby=versions-h] >> text=Version 1")
    page.wait_for_url(re.compile(r"/models/wine/versions/1/$"))
    _mark_page(page)

    page.click("#request-transition")
    dialog = page.locator("#request-dialog")
    dialog.wait_for()
    # htmx wires the swapped-in form's triggers once the swap settles; wait for that before using it.
    page.wait_for_function("() => { const f = document.getElementById('request-preview'); return !!(f && f['htmx-internal-data']); }")
    page.select_option("#request-stage", "Archived")
    page.wait_for_selector("#request-checks >> text=No approval policy for Archived")
    page.select_option("#request-stage", "Production")
    page.wait_for_selector("#request-checks >> text=version is READY")
    assert dialog.locator("li.pass").count() == 2  # READY, and rmse 0.62 <= 0.7: shown before submitting
    page.fill("#request-comment", "Best rmse of the sweep (0.62).")
    screenshot(page, "governance-request-modal")
    page.click("#submit-request")
    page.wait_for_selector("#version-workflow article.request >> text=Best rmse of the sweep (0.62).")
    assert page.locator("#request-dialog").count() == 0  # the modal closed
    assert _not_reloaded(page)
    assert page.locator("#version-workflow button[value=approve]").count() == 0  # never for the requester
    req = TransitionRequest.objects.get()
    assert req.requester == data_scientist and req.to_stage == "Production" and req.comment == "Best rmse of the sweep (0.62)."
    screenshot(page, "governance-version-requested")
    assert not page.js_errors
    page.context.close()


def test_flow2_reviewer_approves_from_the_inbox(browser, live_server, data_scientist, reviewer, governed, screenshot):
    _, _, model = governed
    req = gov.request_stage_transition(name="wine", version=1, stage="Production", user=data_scientist, comment="ship it")

    requester = _tab(browser, live_server, data_scientist)
    requester.goto("/models/wine/versions/1/")
    requester.wait_for_selector(f"#request-{req.pk}")
    assert requester.locator("button[value=approve]").count() == 0
    assert "Cancel request" in requester.inner_text(f"#request-{req.pk}")
    requester.context.close()

    page = _tab(browser, live_server, reviewer)
    page.goto("/models/")
    assert page.inner_text(".mainnav .count") == "1"  # the header's inbox count
    screenshot(page, "governance-model-list")
    page.click(".mainnav >> text=Reviews")
    page.wait_for_url(re.compile(r"/reviews/$"))
    row = page.locator("#to-review .inbox-row")
    assert row.count() == 1 and "ship it" in row.inner_text()
    screenshot(page, "governance-inbox")
    row.locator("text=Version 1").click()
    page.wait_for_url(re.compile(rf"/models/wine/versions/1/#request-{req.pk}$"))
    assert "0 of 1" in page.inner_text(f"#request-{req.pk}")
    assert page.locator(f"#request-{req.pk} li.pass").count() == 2  # the check evidence
    _mark_page(page)
    page.fill(f"#review-comment-{req.pk}", "Metrics look right.")
    page.click(f"#request-{req.pk} button[value=approve]")
    page.wait_for_selector("#current-stage.Production")
    assert _not_reloaded(page)
    history = page.locator("#version-workflow tr.history-row").first.inner_text()
    assert "Production" in history and "reviewer" in history and f"#{req.pk}" in history
    assert page.locator("#no-requests").is_visible()
    assert page.inner_text(".mainnav .count") == "0"  # the header's count follows, out of band
    screenshot(page, "governance-version-approved")
    assert ModelVersion.objects.get(registered_model=model, version=1).current_stage == "Production"
    assert TransitionRequest.objects.get(pk=req.pk).status == "APPROVED"
    assert not page.js_errors
    page.context.close()


def test_flow3_admin_grants_a_group_and_a_member_approves(browser, live_server, admin, data_scientist, governed, screenshot):
    from django.contrib.auth.models import Group

    Group.objects.create(name="prod-approvers")
    member = factories.user("member", groups=["prod-approvers"])
    req = gov.request_stage_transition(name="wine", version=1, stage="Production", user=data_scientist, comment="please")

    page = _tab(browser, live_server, admin)
    page.goto("/models/wine/")
    page.click("nav.tabs >> text=Permissions")
    page.wait_for_url(re.compile(r"/models/wine/permissions/$"))
    _mark_page(page)
    page.select_option("#grant-kind", "group")
    page.fill("#grant-principal", "prod-approvers")
    page.select_option("#grant-level", "CAN_MANAGE_PRODUCTION_VERSIONS")
    page.click("#grant-form button[type=submit]")
    page.wait_for_selector('tr[data-principal="group:prod-approvers"]')
    assert page.locator('tr[data-principal="group:prod-approvers"] select').input_value() == "CAN_MANAGE_PRODUCTION_VERSIONS"
    assert _not_reloaded(page)
    screenshot(page, "governance-permissions")
    page.context.close()

    page = _tab(browser, live_server, member)
    page.goto("/reviews/")
    assert page.locator("#to-review .inbox-row").count() == 1
    page.goto("/models/wine/versions/1/")
    page.click(f"#request-{req.pk} button[value=approve]")
    page.wait_for_selector("#current-stage.Production")
    assert TransitionRequest.objects.get(pk=req.pk).decided_by == member
    assert not page.js_errors
    page.context.close()


def test_flow4_version_from_the_mlflow_client_turns_ready_on_the_open_page(mlflow_client, browser, live_server, owner,
                                                                          monkeypatch, screenshot):
    """The registration task is held back (as if the worker were busy) so the open page sees
    PENDING_REGISTRATION; finishing it, as the worker would, turns the page READY without a reload."""
    from registry import services, tasks
    from tests.ui.test_registry_pages import model_source

    held = []
    monkeypatch.setattr(tasks.register_pending, "delay", lambda *args: held.extend(tasks.claim_registrations()))
    source = model_source()
    mlflow_client.create_registered_model("client-model")
    created = mlflow_client.create_model_version("client-model", source, await_creation_for=0)
    assert created.status == "PENDING_REGISTRATION" and held

    page = _tab(browser, live_server, owner)
    page.goto("/models/client-model/versions/1/")
    assert page.inner_text("#version-status [data-status]") == "PENDING_REGISTRATION"
    screenshot(page, "governance-version-pending")
    _mark_page(page)
    services.finish_model_version_registration(version_id=held[0])
    page.wait_for_selector("#version-status [data-status=READY]", timeout=8_000)
    assert _not_reloaded(page)
    assert page.locator("#version-status[hx-trigger]").count() == 0  # polling stopped
    page.wait_for_selector("#version-files >> text=MLmodel")  # the files list followed, out of band
    assert mlflow_client.get_model_version("client-model", "1").status == "READY"
    screenshot(page, "governance-version-ready")
    assert not page.js_errors
    page.context.close()


def test_governance_without_javascript(browser, live_server, data_scientist, reviewer, governed, screenshot):
    """POST/redirect/GET all the way: request on its own page, approve with a plain form post."""
    from django.conf import settings
    from django.test import Client

    def no_js_tab(user):
        client = Client()
        client.force_login(user)
        context = browser.new_context(base_url=live_server.url, java_script_enabled=False, viewport={"width": 1360, "height": 900})
        context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
                              "url": live_server.url}])
        return context.new_page()

    page = no_js_tab(data_scientist)
    page.goto("/models/wine/versions/1/")
    page.click("#request-transition")
    page.wait_for_url(re.compile(r"/models/wine/versions/1/request/$"))
    page.click("a[href$='?stage=Archived']")  # the <noscript> links preview another stage's checks
    page.wait_for_url(re.compile(r"stage=Archived"))
    assert "No approval policy for Archived" in page.inner_text("#request-checks")
    page.select_option("#request-stage", "Production")
    page.fill("#request-comment", "no-JS request")
    page.click("#submit-request")
    page.wait_for_url(re.compile(r"/models/wine/versions/1/#request-\d+$"))
    assert "no-JS request" in page.inner_text("#version-workflow")
    page.context.close()

    page = no_js_tab(reviewer)
    page.goto("/reviews/")
    page.click("#to-review >> text=Version 1")
    page.fill("#version-workflow textarea[name=comment]", "fine")
    page.click("#version-workflow button[value=approve]")
    page.wait_for_url(re.compile(r"/models/wine/versions/1/#workflow-h$"))
    assert page.inner_text("#current-stage") == "Production"
    page.goto("/models/wine/")
    screenshot(page, "governance-model-page")
    page.goto("/models/wine/compare/?versions=1")
    page.context.close()


def test_screenshots_of_the_settings_and_compare_pages(browser, live_server, owner, admin, governed, screenshot):
    from tests.ui.test_registry_pages import make_version as add_version

    _, best, _ = governed
    add_version(owner, "wine", run=best, requirements="scikit-learn==1.7\n")
    page = _tab(browser, live_server, owner)
    page.goto("/models/wine/compare/?versions=1&versions=2")
    page.click("#only-differences")
    page.wait_for_function("() => location.search.includes('diff=1')")
    assert "scikit-learn==1.7" in page.inner_text("#compare-table")
    screenshot(page, "governance-compare")
    page.goto("/models/wine/versions/1/history/")
    screenshot(page, "governance-history")
    page.goto("/settings/tokens/")
    page.fill("#token-name", "laptop")
    page.click("#tokens-panel button[type=submit]")
    page.wait_for_selector("#new-token")
    assert page.input_value("#new-token").startswith("sg_")
    screenshot(page, "settings-tokens")
    page.context.close()
    page = _tab(browser, live_server, admin)
    page.goto("/settings/policies/")
    screenshot(page, "settings-policies")
    page.goto("/settings/stages/")
    screenshot(page, "settings-stages")
    assert not page.js_errors
    page.context.close()


def test_registry_home_live_search_sort_and_history(browser, live_server, owner, screenshot):
    for name in ("churn", "wine-quality", "fraud"):
        make_version(owner, name)
    page = _tab(browser, live_server, owner)
    page.goto("/models/")
    assert page.locator("#model-table tr.model-row").count() == 3
    _mark_page(page)
    page.fill("#model-q", "wi")  # live search as you type
    page.wait_for_function("() => document.querySelectorAll('#model-table tr.model-row').length === 1")
    page.wait_for_function("() => location.search.includes('q=wi')")  # kept in the address bar
    page.click("#model-table th >> text=Name")
    page.wait_for_function("() => location.search.includes('sort=-name')")
    page.go_back()
    page.wait_for_function("() => !location.search.includes('sort=-name') && location.search.includes('q=wi')")
    assert page.locator("#model-table tr.model-row").count() == 1
    page.go_back()
    page.wait_for_function("() => document.querySelectorAll('#model-table tr.model-row').length === 3")
    assert _not_reloaded(page)
    screenshot(page, "models")
    assert not page.js_errors
    page.context.close()
