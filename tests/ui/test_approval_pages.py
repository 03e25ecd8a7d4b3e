"""Governance pages through Django's test client: request a transition (modal and no-JS page), approve,
reject, cancel, comments, the review inbox, the model's Permissions tab. Buttons follow
`available_actions`, and the server refuses what a hidden button would have refused."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from approvals import services as gov
from approvals.models import TransitionRequest
from core import permissions as perms
from registry.models import ModelVersion, RegisteredModel
from tests import factories
from tests.ui.test_registry_pages import HTMX, as_user, htmx, make_version


@pytest.fixture
def governed(owner, data_scientist, reviewer):
    """`wine` v1 in Staging, owned by `owner`; Production needs one approval from a production
    manager; the data scientist may read, the reviewer manages production versions."""
    make_version(owner, "wine", stage="Staging")
    model = RegisteredModel.objects.get(name="wine")
    factories.grant(model, perms.CAN_READ, user=data_scientist)
    factories.grant(model, perms.CAN_MANAGE_PRODUCTION_VERSIONS, user=reviewer)
    gov.set_stage_policy(user=factories.user("admin", is_superuser=True), stage="Production", requires_approval=True,
                         min_approvals=1, checks_spec=[{"type": "version_ready"}])
    return model


# --------------------------------------------------------------------------- request a transition


def test_request_form_is_a_modal_with_the_policy_checks(client, data_scientist, governed):
    web = as_user(client, data_scientist)
    response = web.get("/models/wine/versions/1/request/", **htmx("modal"))
    html = response.content.decode()
    assert html.strip().startswith('<dialog id="request-dialog"') and "<html" not in html
    assert "version is READY" in html and ">pass<" in html and "CAN_MANAGE_PRODUCTION_VERSIONS" in html
    assert 'hx-post="/models/wine/versions/1/request/"' in html
    checks = web.get("/models/wine/versions/1/request/", {"stage": "Archived"}, **htmx("request-checks")).content.decode()
    assert checks.strip().startswith('<div id="request-checks"') and "No approval policy for Archived" in checks
    page = web.get("/models/wine/versions/1/request/").content.decode()  # no JS: a page of its own
    assert "<html" in page and 'action="/models/wine/versions/1/request/"' in page and "hx-post" not in page


def test_request_transition_htmx_swaps_the_workflow_and_closes_the_modal(client, data_scientist, governed):
    web = as_user(client, data_scientist)
    response = web.post("/models/wine/versions/1/request/", {"stage": "Production", "comment": "beats v0"}, **HTMX)
    html = response.content.decode()
    assert response["HX-Retarget"] == "#version-workflow" and response["HX-Reswap"] == "outerHTML"
    assert html.strip().startswith('<section id="version-workflow"') and "beats v0" in html
    assert '<div id="modal" hx-swap-oob="true"></div>' in html
    assert "Approve" not in html  # a reader cannot approve
    req = TransitionRequest.objects.get()
    assert req.requester == data_scientist and req.to_stage == "Production" and req.evidence["on_request"][0]["passed"]


def test_request_transition_error_keeps_the_comment(client, data_scientist, governed):
    web = as_user(client, data_scientist)
    web.post("/models/wine/versions/1/request/", {"stage": "Production", "comment": "first"})
    response = web.post("/models/wine/versions/1/request/", {"stage": "Production", "comment": "typed text"}, **HTMX)
    html = response.content.decode()
    assert response.status_code == 200 and response["HX-Retarget"] == "#modal"
    assert "already exists" in html and "typed text" in html
    response = web.post("/models/wine/versions/1/request/", {"stage": "Staging", "comment": "same stage"})  # no JS
    assert response.status_code == 200 and b"already in stage Staging" in response.content and b"same stage" in response.content


def test_request_transition_no_js_redirects(client, data_scientist, governed):
    response = as_user(client, data_scientist).post("/models/wine/versions/1/request/", {"stage": "Production", "comment": ""})
    req = TransitionRequest.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/models/wine/versions/1/#request-{req.pk}"


def test_request_transition_outsider_404_wrong_method_405(client, outsider, governed):
    web = as_user(client, outsider)
    assert web.get("/models/wine/versions/1/request/").status_code == 404
    assert web.post("/models/wine/versions/1/request/", {"stage": "Production"}).status_code == 404
    assert web.put("/models/wine/versions/1/request/").status_code == 405
    assert not TransitionRequest.objects.exists()


# --------------------------------------------------------------------------- review


def _request(user, comment="please"):
    return gov.request_stage_transition(name="wine", version=1, stage="Production", user=user, comment=comment)


def test_buttons_follow_available_actions(client, data_scientist, reviewer, governed):
    _request(data_scientist)
    own = as_user(client, data_scientist).get("/models/wine/versions/1/").content.decode()
    assert 'value="approve"' not in own and "Cancel request" in own  # the requester cancels, never approves
    assert "separation of duties" in own or "needs CAN_MANAGE_PRODUCTION_VERSIONS" in own
    theirs = as_user(client, reviewer).get("/models/wine/versions/1/").content.decode()
    assert 'value="approve"' in theirs and 'value="reject"' in theirs and "0 of 1" in theirs


def test_approve_htmx_shows_new_stage_and_history(client, data_scientist, reviewer, governed):
    req = _request(data_scientist)
    response = as_user(client, reviewer).post(f"/requests/{req.pk}/review", {"decision": "approve", "comment": "lgtm"}, **htmx("version-workflow"))
    html = response.content.decode()
    assert response.status_code == 200 and html.strip().startswith('<section id="version-workflow"')
    assert 'id="current-stage" class="badge Production"' in html
    assert "Approved request" in html and f"#{req.pk}" in html and "No pending requests" in html
    assert '<span id="inbox-count" class="count" hx-swap-oob="true"' in html  # nothing left to review
    assert ModelVersion.objects.get(registered_model=governed, version=1).current_stage == "Production"


def test_hidden_button_is_not_the_only_guard(client, data_scientist, governed):
    req = _request(data_scientist)
    response = as_user(client, data_scientist).post(f"/requests/{req.pk}/review", {"decision": "approve"}, **HTMX)
    assert response.status_code == 403
    assert TransitionRequest.objects.get(pk=req.pk).status == "PENDING"


def test_outsider_cannot_see_a_request(client, outsider, data_scientist, governed):
    req = _request(data_scientist)
    assert as_user(client, outsider).post(f"/requests/{req.pk}/review", {"decision": "approve"}).status_code == 404
    assert as_user(client, outsider).get(f"/requests/{req.pk}/review").status_code == 405


def test_reject_and_cancel_without_js(client, data_scientist, reviewer, governed):
    req = _request(data_scientist)
    response = as_user(client, reviewer).post(f"/requests/{req.pk}/review", {"decision": "reject", "comment": "not yet"})
    assert response.status_code == 302 and response["Location"].startswith("/models/wine/versions/1/")
    assert TransitionRequest.objects.get(pk=req.pk).status == "REJECTED"
    second = _request(data_scientist, "again")
    as_user(client, data_scientist).post(f"/requests/{second.pk}/review", {"decision": "cancel"})
    assert TransitionRequest.objects.get(pk=second.pk).status == "CANCELLED"


def test_failing_checks_block_approval_with_the_reason_shown(client, data_scientist, reviewer, governed, admin):
    gov.set_stage_policy(user=admin, stage="Production", checks_spec=[{"type": "tag", "key": "validation", "value": "passed"}])
    req = _request(data_scientist)
    response = as_user(client, reviewer).post(f"/requests/{req.pk}/review", {"decision": "approve", "comment": "kept"}, **HTMX)
    html = response.content.decode()
    assert response.status_code == 200 and "Approval blocked" in html and "kept" in html
    assert TransitionRequest.objects.get(pk=req.pk).status == "PENDING"


# --------------------------------------------------------------------------- comments


def test_comments_htmx_and_errors(client, data_scientist, owner, governed):
    web = as_user(client, data_scientist)
    response = web.post("/models/wine/versions/1/comments/", {"comment": "looks good"}, **htmx("version-comments"))
    html = response.content.decode()
    assert html.strip().startswith('<section id="version-comments"') and "looks good" in html and ">Delete<" in html
    response = web.post("/models/wine/versions/1/comments/", {"comment": ""}, **HTMX)
    assert response.status_code == 200 and b'id="comment-error"' in response.content
    comment_id = governed.versions.get(version=1).comments.get().pk
    response = as_user(client, data_scientist).post(f"/comments/{comment_id}/edit", {"comment": "looks great"}, **HTMX)
    assert b"looks great" in response.content and governed.versions.get(version=1).comments.get().text == "looks great"
    other = factories.user("other")
    factories.grant(governed, perms.CAN_READ, user=other)
    other_view = as_user(client, other).get("/models/wine/versions/1/").content.decode()
    assert f"/comments/{comment_id}/edit" not in other_view and f"/comments/{comment_id}/delete" not in other_view
    assert as_user(client, other).post(f"/comments/{comment_id}/edit", {"comment": "mine now"}).status_code == 403
    assert as_user(client, other).post(f"/comments/{comment_id}/delete").status_code == 403
    assert as_user(client, other).get(f"/comments/{comment_id}/edit").status_code == 405
    response = as_user(client, data_scientist).post(f"/comments/{comment_id}/delete")
    assert response.status_code == 302 and not governed.versions.get(version=1).comments.exists()


# --------------------------------------------------------------------------- inbox


def test_inbox_lists_what_i_may_decide_and_my_own(client, data_scientist, reviewer, governed):
    req = _request(data_scientist, "ship")
    inbox = as_user(client, reviewer).get("/reviews/").content.decode()
    assert "wine" in inbox and f"/models/wine/versions/1/#request-{req.pk}" in inbox and "ship" in inbox
    assert 'class="count some"' in inbox  # the header's counter
    mine = as_user(client, data_scientist).get("/reviews/").content.decode()
    assert "Nothing to review" in mine and "pending" in mine
    partial = as_user(client, data_scientist).get("/reviews/", {"status": "APPROVED"}, **htmx("own-requests")).content.decode()
    assert partial.strip().startswith('<div id="own-requests">') and "no approved requests" in partial
    assert client.post("/reviews/").status_code == 405


def test_inbox_counter(data_scientist, reviewer, outsider, governed):
    from approvals.views import inbox_count

    _request(data_scientist)
    assert inbox_count(reviewer) == 1 and inbox_count(data_scientist) == 0 and inbox_count(outsider) == 0


def test_inbox_query_count_is_flat(client, owner, data_scientist, reviewer, admin):
    gov.set_stage_policy(user=admin, stage="Production", requires_approval=True)
    web = as_user(client, reviewer)

    def add(name):
        make_version(owner, name)
        model = RegisteredModel.objects.get(name=name)
        factories.grant(model, perms.CAN_READ, user=data_scientist)
        factories.grant(model, perms.CAN_MANAGE_PRODUCTION_VERSIONS, user=reviewer)
        gov.request_stage_transition(name=name, version=1, stage="Production", user=data_scientist)

    add("m0")
    with CaptureQueriesContext(connection) as one:
        assert web.get("/reviews/").status_code == 200
    for i in range(1, 10):
        add(f"m{i}")
    with CaptureQueriesContext(connection) as many:
        html = web.get("/reviews/").content.decode()
    assert html.count('class="card inbox-row request"') == 10
    assert len(one.captured_queries) == len(many.captured_queries)


# --------------------------------------------------------------------------- permissions tab


def test_permissions_tab_grant_and_revoke_a_group(client, owner, governed):
    from django.contrib.auth.models import Group

    Group.objects.create(name="prod-approvers")
    web = as_user(client, owner)
    page = web.get("/models/wine/permissions/").content.decode()
    assert 'id="permissions-panel"' in page and "data_scientist" in page and "CAN_MANAGE_PRODUCTION_VERSIONS" in page
    response = web.post("/models/wine/permissions/", {"kind": "group", "principal": "prod-approvers",
                                                      "level": "CAN_MANAGE_PRODUCTION_VERSIONS"}, **htmx("permissions-panel"))
    html = response.content.decode()
    assert html.strip().startswith('<section id="permissions-panel"') and 'data-principal="group:prod-approvers"' in html
    member = factories.user("member", groups=["prod-approvers"])
    assert perms.effective_level(member, governed) == perms.CAN_MANAGE_PRODUCTION_VERSIONS
    response = web.post("/models/wine/permissions/", {"action": "revoke", "kind": "group", "principal": "prod-approvers"})
    assert response.status_code == 302
    assert perms.effective_level(member, governed) is None


def test_permissions_tab_errors_keep_the_input(client, owner, governed):
    response = as_user(client, owner).post("/models/wine/permissions/", {"kind": "user", "principal": "ghost", "level": "CAN_READ"}, **HTMX)
    html = response.content.decode()
    assert response.status_code == 200 and "does not exist" in html and 'value="ghost"' in html


def test_permissions_tab_needs_manage(client, outsider, reviewer, governed):
    assert as_user(client, outsider).get("/models/wine/permissions/").status_code == 404
    assert as_user(client, reviewer).get("/models/wine/permissions/").status_code == 403
    response = as_user(client, reviewer).post("/models/wine/permissions/", {"kind": "user", "principal": "reviewer", "level": "CAN_MANAGE"})
    assert response.status_code == 403
    assert perms.effective_level(reviewer, governed) == perms.CAN_MANAGE_PRODUCTION_VERSIONS
    assert as_user(client, reviewer).delete("/models/wine/permissions/").status_code == 405


def test_transition_now_only_where_no_approval_is_needed_and_the_level_allows(client, owner, data_scientist, reviewer, governed):
    checks = as_user(client, reviewer).get("/models/wine/versions/1/request/", {"stage": "Archived"}, **htmx("request-checks")).content.decode()
    assert 'id="transition-now"' in checks  # no policy on Archived; production managers may move out of Staging
    checks = as_user(client, reviewer).get("/models/wine/versions/1/request/", {"stage": "Production"}, **htmx("request-checks")).content.decode()
    assert 'id="transition-now"' not in checks  # Production needs an approved request
    reader = as_user(client, data_scientist)
    assert 'id="transition-now"' not in reader.get("/models/wine/versions/1/request/", {"stage": "Archived"}).content.decode()
    response = reader.post("/models/wine/versions/1/request/", {"stage": "Archived", "action": "transition"}, **HTMX)
    assert response.status_code == 200 and b"needs CAN_MANAGE_STAGING_VERSIONS" in response.content  # the guard refuses
    assert ModelVersion.objects.get(registered_model=governed, version=1).current_stage == "Staging"
    response = as_user(client, reviewer).post("/models/wine/versions/1/request/", {"stage": "Archived", "action": "transition", "comment": "retire"}, **HTMX)
    assert response["HX-Retarget"] == "#version-workflow" and b'class="badge Archived"' in response.content and b"retire" in response.content
    assert ModelVersion.objects.get(registered_model=governed, version=1).current_stage == "Archived"
