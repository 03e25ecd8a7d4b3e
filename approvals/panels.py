"""What governance adds to the registry's pages: pending requests with the caller's actions,
comments, every request of a version, and the models list's pending count.

Registered on the registry's page hooks (registry.views.PAGE_CONTEXT, MODEL_LIST_ANNOTATIONS) from
ApprovalsConfig.ready(): the registry renders them in its templates without importing approvals.
Every provider runs a constant number of queries whatever the number of rows.
"""

from django.db.models import Count, IntegerField, OuterRef, Subquery
from django.db.models.functions import Coalesce

from approvals import access as gov
from approvals import services as gov_services
from approvals.models import Comment, TransitionRequest
from approvals.policy import effective_policies
from core.pages import ms_to_datetime
from registry import views as registry_views

OPEN_REQUESTS_ON_PAGE = 50
COMMENTS_ON_PAGE = 200
REQUESTS_ON_HISTORY = 100


def pending_count():
    """The models list's `pending_requests` annotation: one subquery."""
    counts = (
        TransitionRequest.objects.filter(model=OuterRef("pk"), status=TransitionRequest.PENDING)
        .order_by().values("model").annotate(n=Count("pk")).values("n")
    )
    return Coalesce(Subquery(counts, output_field=IntegerField()), 0)


def open_requests(user, level, *, model=None, version=None) -> list:
    """Pending requests (of a model or one version) with their quorum and the caller's actions,
    in a constant number of queries."""
    rows = TransitionRequest.objects.pending().select_related("model", "version", "version__registered_model").prefetch_related("reviews")
    rows = rows.filter(version=version) if version is not None else rows.filter(model=model)
    rows = list(rows.order_by("creation_timestamp", "id")[:OPEN_REQUESTS_ON_PAGE])
    policies = effective_policies({(r.model_id, r.to_stage): (r.model, r.to_stage) for r in rows}.values())
    for req in rows:
        policy = policies[(req.model_id, req.to_stage)]
        req.actions = gov.request_actions(user, level, req, policy)
        req.can_approve = "APPROVE_TRANSITION_REQUEST" in req.actions
        req.can_cancel = "CANCEL_TRANSITION_REQUEST" in req.actions
        req.approvals = sum(1 for r in req.reviews.all() if r.decision == "APPROVED")
        req.required = gov_services.quorum(policy)
        req.policy_now = policy
        req.refusal = gov.review_refusal(user, level, req, policy)
        req.checks = (req.evidence or {}).get("on_approval") or (req.evidence or {}).get("on_request") or []
        req.created = ms_to_datetime(req.creation_timestamp)
        req.version_url = registry_views.version_url(req.model.name, req.version.version)
    return rows


def comments(user, level, mv) -> list:
    # The newest COMMENTS_ON_PAGE, oldest first (a page never loads an unbounded thread).
    rows = list(Comment.objects.filter(version=mv).order_by("-creation_timestamp", "-id")[:COMMENTS_ON_PAGE])[::-1]
    for c in rows:
        c.actions = gov.comment_actions(user, level, c)
        c.when = ms_to_datetime(c.creation_timestamp)
    return rows


def comments_context(request, mv, level, *, error: str = "", text: str = "") -> dict:
    """The version page's #comments region."""
    return {"mv": mv, "model": mv.registered_model, "comments": comments(request.user, level, mv),
            "comment_error": error, "comment_text": text}


def model_detail_context(request, *, model, level) -> dict:
    return {"open_requests": open_requests(request.user, level, model=model)}


def version_workflow_context(request, *, mv, level) -> dict:
    requests = open_requests(request.user, level, version=mv)
    # The first request this viewer may decide: the page leads with reviewing it, not with a new request.
    return {"requests": requests, "can_review": next((r for r in requests if r.can_approve), None)}


def version_detail_context(request, *, mv, level) -> dict:
    return comments_context(request, mv, level)


def version_history_context(request, *, mv) -> dict:
    requests = list(
        TransitionRequest.objects.filter(version=mv).select_related("decided_by").order_by("-creation_timestamp", "-id")[:REQUESTS_ON_HISTORY]
    )
    for req in requests:
        req.created = ms_to_datetime(req.creation_timestamp)
        req.decided = ms_to_datetime(req.decided_timestamp)
    return {"all_requests": requests}


def register() -> None:
    registry_views.register_model_list_annotation("pending_requests", pending_count)
    registry_views.register_page_context("model_detail", model_detail_context)
    registry_views.register_page_context("version_workflow", version_workflow_context)
    registry_views.register_page_context("version_detail", version_detail_context)
    registry_views.register_page_context("version_history", version_history_context)
