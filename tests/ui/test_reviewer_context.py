"""The reviewer's context (issue 15, item 5) through Django's test client: the candidate beside the
holder of the target stage (metrics with signed deltas, param and signature differences, evidence),
approve/reject from the inbox, the waiting time, why an empty inbox is empty, archive-on-approval."""

import pytest

from approvals import services as gov
from approvals.models import TransitionRequest
from core import permissions as perms
from registry.models import ModelVersion, RegisteredModel
from tests import factories
from tests.ui import data
from tests.ui.test_registry_pages import HTMX, as_user, htmx, make_version

pytestmark = pytest.mark.django_db

V2_INPUTS = '[{"type": "double", "name": "alcohol"}, {"type": "double", "name": "pH"}]'


def contest(owner, data_scientist, reviewer, admin):
    """`wine` v1 (rmse 0.7, alpha 0.1) holds Production; v2 (rmse 0.6, alpha 0.5, one more input
    column) is in Staging and `data_scientist` asks for Production; `reviewer` manages production."""
    experiment = data.experiment(owner, "wine-quality")
    run1 = data.run(owner, experiment, name="run-a", params={"alpha": "0.1", "solver": "lbfgs"}, metrics={"rmse": [0.8, 0.7], "r2": [0.5]})
    run2 = data.run(owner, experiment, name="run-b", params={"alpha": "0.5", "solver": "lbfgs"}, metrics={"rmse": [0.65, 0.6], "r2": [0.55]})
    make_version(owner, "wine", run=run1, stage="Production")
    make_version(owner, "wine", run=run2, stage="Staging", inputs=V2_INPUTS)
    model = RegisteredModel.objects.get(name="wine")
    factories.grant(model, perms.CAN_READ, user=data_scientist)
    factories.grant(model, perms.CAN_MANAGE_PRODUCTION_VERSIONS, user=reviewer)
    gov.set_stage_policy(user=admin, stage="Production", requires_approval=True, checks_spec=[{"type": "version_ready"}])
    return gov.request_stage_transition(name="wine", version=2, stage="Production", user=data_scientist, comment="v2 is better")


@pytest.fixture
def req(owner, data_scientist, reviewer, admin):
    return contest(owner, data_scientist, reviewer, admin)


def stages():
    return dict(ModelVersion.objects.filter(registered_model__name="wine").values_list("version", "current_stage"))


def test_inbox_shows_the_candidate_beside_the_holder_with_signed_deltas(client, reviewer, req):
    html = as_user(client, reviewer).get("/reviews/").content.decode()
    assert f'id="inbox-request-{req.pk}"' in html and "waiting " in html and "v2 is better" in html
    assert "beside <a href=\"/models/wine/versions/1/\">version 1</a>" in html
    # rmse 0.6 vs 0.7: the signed delta, no guess about which direction is better.
    assert 'data-metric="rmse"><td class="mono">rmse</td><td class="num">0.6</td><td class="num">0.7</td><td class="num delta down">-0.1 (-14.3%)</td>' in html
    assert '<td class="num delta up">+0.05 (+10.0%)</td>' in html  # r2 0.55 vs 0.5
    assert '<td class="mono">alpha</td><td class="val">0.5</td><td class="val">0.1</td>' in html
    assert "solver" not in html.split("compare-params")[1].split("</table>")[0].split("</thead>")[1]  # equal params hidden
    assert "(1 equal, hidden)" in html
    assert '<td class="mono">inputs: pH</td><td class="mono">double</td><td class="mono">absent</td>' in html
    assert "version is READY" in html  # the evidence
    assert "On approval, v1 is archived (stage policy" in html
    assert html.count('name="decision" value="approve"') == 1 and 'value="reject"' in html


def test_approve_from_the_inbox_archives_the_holder(client, reviewer, req):
    response = as_user(client, reviewer).post(f"/requests/{req.pk}/review", {"decision": "approve", "comment": "ok", "next": "inbox"},
                                              **htmx("to-review-list"))
    html = response.content.decode()
    assert response.status_code == 200 and html.strip().startswith('<div id="to-review-list">')
    assert f"Approved request #{req.pk}: wine version 2 → Production." in html and "Nothing to review" in html
    assert '<span id="inbox-count" class="count" hx-swap-oob="true"' in html
    assert stages() == {1: "Archived", 2: "Production"}
    req.refresh_from_db()
    assert req.status == "APPROVED" and req.archive_existing_versions and req.decision_comment == "ok"


def test_reject_with_a_comment_from_the_inbox_without_js(client, reviewer, req):
    response = as_user(client, reviewer).post(f"/requests/{req.pk}/review", {"decision": "reject", "comment": "rmse on old data", "next": "inbox"})
    assert response.status_code == 302 and response["Location"] == "/reviews/#to-review-h"
    req.refresh_from_db()
    assert req.status == "REJECTED" and req.decision_comment == "rmse on old data"
    assert stages() == {1: "Production", 2: "Staging"}
    assert f"Rejected request #{req.pk}" in client.get("/reviews/").content.decode()


def test_inbox_error_comes_back_in_the_list(client, reviewer, req):
    gov.reject_transition_request(name="wine", version=2, stage="Production", user=factories.user("admin", is_superuser=True))
    response = as_user(client, reviewer).post(f"/requests/{req.pk}/review", {"decision": "approve", "next": "inbox", "comment": "late"},
                                              **htmx("to-review-list"))
    assert response.status_code == 200 and 'id="review-error"' in response.content.decode()


def test_empty_inbox_says_why_open_requests_are_not_yours(client, data_scientist, reviewer, owner, req):
    # The requester with a low level: the approver level is named, and theirs.
    html = as_user(client, data_scientist).get("/reviews/").content.decode()
    assert 'id="empty-inbox"' in html and "1 open request is not yours to decide" in html
    assert "needs CAN_MANAGE_PRODUCTION_VERSIONS on &#x27;wine&#x27;; you have CAN_READ" in html
    # A production manager who asked themselves: separation of duties.
    gov.cancel_transition_request(name="wine", version=2, stage="Production", user=data_scientist)
    gov.request_stage_transition(name="wine", version=2, stage="Production", user=reviewer)
    html = as_user(client, reviewer).get("/reviews/").content.decode()
    assert "Separation of duties: you requested this transition, so someone else must review it." in html
    # Nothing open at all.
    TransitionRequest.objects.all().delete()
    html = as_user(client, reviewer).get("/reviews/").content.decode()
    assert "No open requests on the models you can see." in html


def test_request_compare_partial_page_and_access(client, reviewer, outsider, req):
    web = as_user(client, reviewer)
    partial = web.get(f"/requests/{req.pk}/compare?in=card", **HTMX).content.decode()
    assert partial.strip().startswith(f'<div class="request-compare" id="request-compare-{req.pk}">')
    assert "compare-checks" not in partial  # the card shows the evidence itself
    page = web.get(f"/requests/{req.pk}/compare").content.decode()
    assert 'class="topbar"' in page and "compare-checks" in page and "-0.1" in page
    assert as_user(client, outsider).get(f"/requests/{req.pk}/compare").status_code == 404
    assert web.post(f"/requests/{req.pk}/compare").status_code == 405


def test_version_page_leads_with_the_review_for_an_approver(client, reviewer, data_scientist, req):
    html = as_user(client, reviewer).get("/models/wine/versions/2/").content.decode()
    assert f'<a class="button" id="review-first" href="#request-{req.pk}">Review the Production request</a>' in html
    assert 'class="button secondary" id="request-transition"' in html
    assert f'hx-get="/requests/{req.pk}/compare?in=card" hx-trigger="load"' in html and f'href="/requests/{req.pk}/compare"' in html
    assert "Approving archives the other versions in Production (stage policy)." in html
    html = as_user(client, data_scientist).get("/models/wine/versions/2/").content.decode()
    assert 'id="review-first"' not in html and 'class="button" id="request-transition"' in html


def test_policy_without_archiving_lets_the_approver_choose(client, reviewer, admin, req):
    gov.set_stage_policy(user=admin, stage="Production", requires_approval=True, archive_existing_on_approval=False)
    html = as_user(client, reviewer).get("/reviews/").content.decode()
    assert "stay there unless the approver chooses to archive them" in html and 'name="archive_existing_versions"' in html
    client.post(f"/requests/{req.pk}/review", {"decision": "approve", "next": "inbox"})
    assert stages() == {1: "Production", 2: "Production"}


def test_settings_page_sets_and_shows_the_archive_setting(client, admin, req):
    from approvals.models import StagePolicy

    web = as_user(client, admin)
    page = web.get("/settings/policies/").content.decode()
    assert 'class="archive-setting">archive the others <span class="faint">(default)</span>' in page
    web.post("/settings/policies/", {"stage": "Production", "requires_approval": "on", "min_approvals": "1", "checks": "[]",
                                     "archive_existing_on_approval": "false"})
    policy = StagePolicy.objects.get(model=None, stage="Production")
    assert policy.archive_existing_on_approval is False
    assert 'class="archive-setting">keep the others</td>' in web.get("/settings/policies/").content.decode()
