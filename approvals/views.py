"""HTML pages and actions of governance: request a transition, review it, comment, the review inbox,
a model's Permissions tab, and the admins' custom stages and stage policies.

Every action is one call of approvals.services; the buttons a page shows come from the same
`available_actions` rules the API reports (approvals.access), and the service checks again.
Without JavaScript each form posts and redirects; with htmx it swaps the region it changed,
and a refused action comes back as 200 with the error beside the form and the input kept.
"""

import json

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db import IntegrityError, transaction
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.timesince import timesince
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import reswap, retarget

from approvals import access, checks, panels, services
from approvals.comparison import compare_requests
from approvals.models import APPROVER_LEVELS, Comment, StagePolicy, TransitionRequest
from approvals.policy import effective_policy, transition_level
from core import permissions as perms
from core.errors import InvalidParameter, MlflowError, PermissionDenied
from registry import views as registry_views
from registry.models import ModelVersion, Stage
from registry.views import get_model, get_version, ms_to_datetime, version_url

INBOX_LIMIT = 200


# --------------------------------------------------------------------------- the header's counter


def inbox_count(user) -> int:
    """Pending requests this user may decide now (STAGEGATE_REVIEW_INBOX_COUNTER): one COUNT query."""
    return access.reviewable_by(user, access.requests_visible_to(user)).count()


# --------------------------------------------------------------------------- request a transition


def _request_form_context(mv, level, *, stage: str = "", comment: str = "", error: str = "", modal: bool = False) -> dict:
    """The modal's form: target stages, and the chosen stage's policy with its checks evaluated now."""
    from registry.services import stage_names

    stages = [s for s in stage_names() if s != mv.current_stage]
    if stage not in stages:
        stage = "Production" if "Production" in stages else (stages[0] if stages else "")
    policy = effective_policy(model=mv.registered_model, stage=stage) if stage else None
    results = checks.evaluate(policy.checks, mv, stage) if policy else []
    # Databricks' "Transition now": offered when the stage needs no approval and the user's level
    # allows the move (the same rule the registry's guard applies when it is used).
    direct = bool(policy and not policy.requires_approval and perms.at_least(level, transition_level(mv.current_stage, stage)))
    return {
        "mv": mv, "model": mv.registered_model, "stages": stages, "stage": stage, "comment": comment, "error": error,
        "policy": policy, "quorum": services.quorum(policy) if policy else 1, "check_results": results,
        "all_pass": all(r["passed"] for r in results),
        "modal": modal,
        "can_transition": direct,
        "nav_section": "models",
    }


@require_http_methods(["GET", "POST"])
def request_transition(request, name: str, version: int):
    """GET: the Request-transition form (a modal over the version page with htmx, a page without).
    POST: request_stage_transition; on success the version's workflow region (htmx) or PRG."""
    mv, level = get_version(request.user, name, version)
    template = "approvals/request_form.html"
    if request.method == "GET":
        context = _request_form_context(mv, level, stage=request.GET.get("stage", ""), comment=request.GET.get("comment", ""),
                                        modal=bool(request.htmx))
        if registry_views.wants_partial(request) and request.htmx.target == "request-checks":
            return render(request, template + "#request-checks", context)
        return render(request, template + "#request-dialog" if request.htmx else template, context)
    stage, comment = request.POST.get("stage", ""), request.POST.get("comment", "")
    direct = request.POST.get("action") == "transition"
    try:
        if direct:
            req = None
            services.transition_stage_with_comment(
                name=name, version=version, stage=stage, user=request.user, comment=comment,
                archive_existing_versions=request.POST.get("archive_existing_versions") in ("true", "on", "1"),
            )
        else:
            req = services.request_stage_transition(name=name, version=version, stage=stage, user=request.user, comment=comment)
    except MlflowError as exc:
        context = _request_form_context(mv, level, stage=stage, comment=comment, error=exc.message, modal=bool(request.htmx))
        if request.htmx:
            return reswap(retarget(render(request, template + "#request-dialog", context), "#modal"), "innerHTML")
        return render(request, template, context)
    if request.htmx:
        mv, level = registry_views._load_version(request, name, version)
        response = render(request, "registry/model_version_detail.html#version-workflow", registry_views.workflow_context(request, mv, level))
        # The modal closes by an out-of-band swap of its (now empty) container: no script needed.
        response.content += b'<div id="modal" hx-swap-oob="true"></div>'
        return retarget(reswap(response, "outerHTML"), "#version-workflow")
    if req is None:
        messages.success(request, f"Version {version} moved to {stage}.")
        return redirect(version_url(name, version) + "#workflow-h")
    messages.success(request, f"Requested {req.to_stage} for version {version}.")
    return redirect(version_url(name, version) + f"#request-{req.pk}")


# --------------------------------------------------------------------------- review


def _request_for(user, request_id: int) -> TransitionRequest:
    req = (
        access.requests_visible_to(user).select_related("model", "version", "version__registered_model")
        .filter(pk=request_id).first()
    )
    if req is None:
        raise Http404(f"Transition request {request_id} does not exist.")
    return req


@require_POST
def review_request(request, request_id: int):
    """Approve, reject or cancel a pending request (`decision`), with a comment."""
    req = _request_for(request.user, request_id)
    name, version, stage = req.model.name, req.version.version, req.to_stage
    decision = request.POST.get("decision", "")
    comment = request.POST.get("comment", "")
    error = ""
    try:
        if decision == "approve":
            services.approve_transition_request(
                name=name, version=version, stage=stage, user=request.user, comment=comment,
                archive_existing_versions=request.POST.get("archive_existing_versions") in ("true", "on", "1"),
            )
        elif decision == "reject":
            services.reject_transition_request(name=name, version=version, stage=stage, user=request.user, comment=comment)
        elif decision == "cancel":
            services.cancel_transition_request(name=name, version=version, stage=stage, user=request.user, comment=comment)
        else:
            raise InvalidParameter("Choose approve, reject or cancel.")
    except MlflowError as exc:
        # A hidden button is never the only guard: the service refuses, and so does the page.
        if isinstance(exc, PermissionDenied):
            raise DjangoPermissionDenied(exc.message) from None
        error = exc.message
    if request.POST.get("next") == "inbox":
        return _inbox_after_review(request, req, decision=decision, comment=comment, error=error)
    mv, level = registry_views._load_version(request, name, version)
    form = {"request_id": req.pk, "comment": comment}
    if request.htmx:
        context = registry_views.workflow_context(request, mv, level, error=error, form=form if error else None)
        response = render(request, "registry/model_version_detail.html#version-workflow", context)
        return _with_inbox_count(response, request.user)
    if error:
        messages.error(request, error)
    return redirect(version_url(name, version) + "#workflow-h")


def _with_inbox_count(response, user):
    """The header's inbox count changes with a decision: swap it out of band."""
    count = inbox_count(user)
    response.content += (
        f'<span id="inbox-count" class="count{" some" if count else ""}" hx-swap-oob="true" '
        f'title="Requests waiting for your review">{count}</span>'
    ).encode()
    return response


def _inbox_after_review(request, req, *, decision: str, comment: str, error: str):
    """A decision taken in the inbox: the inbox list again (htmx) or PRG back to the inbox."""
    done = {"approve": "Approved", "reject": "Rejected", "cancel": "Cancelled"}.get(decision, "")
    summary = f"{done} request #{req.pk}: {req.model.name} version {req.version.version} → {req.to_stage}."
    if request.htmx:
        context = _inbox_context(request, error=error, form={"request_id": req.pk, "comment": comment} if error else None,
                                 done="" if error else summary)
        return _with_inbox_count(render(request, "approvals/inbox.html#to-review-list", context), request.user)
    if error:
        messages.error(request, error)
    else:
        messages.success(request, summary)
    return redirect(reverse("approvals:inbox") + "#to-review-h")


@require_GET
def request_compare(request, request_id: int):
    """The candidate beside the current holder of the target stage: loaded into the request card by
    htmx (`hx-trigger="load"`), its own page without JavaScript."""
    req = _request_for(request.user, request_id)
    req = _decorate([req])[0]
    # In the card, the check evidence is already shown beside it.
    context = {"r": req, "cmp": compare_requests([req])[req.pk], "in_card": request.GET.get("in") == "card" and request.htmx,
               "nav_section": "reviews"}
    template = "approvals/request_compare.html"
    return render(request, template + "#request-compare" if request.htmx else template, context)


# --------------------------------------------------------------------------- comments


def _comments_response(request, name, version, *, error: str = "", text: str = ""):
    mv, level = registry_views._load_version(request, name, version)
    if request.htmx:
        return render(request, "registry/model_version_detail.html#version-comments",
                      panels.comments_context(request, mv, level, error=error, text=text))
    if error:
        messages.error(request, error)
    return redirect(version_url(name, version) + "#comments-h")


@require_POST
def create_comment(request, name: str, version: int):
    get_version(request.user, name, version)
    text = request.POST.get("comment", "")
    try:
        services.create_comment(name=name, version=version, user=request.user, comment=text)
    except MlflowError as exc:
        return _comments_response(request, name, version, error=exc.message, text=text)
    return _comments_response(request, name, version)


def _change_comment(request, comment_id: int, change):
    """Run `change()` (a comment service) on a comment of a version the user can see (404 otherwise)
    and answer with the comments panel; the service decides who may change it (403 for others)."""
    comment = Comment.objects.select_related("version__registered_model").filter(pk=comment_id).first()
    if comment is None:
        raise Http404("No such comment")
    mv = comment.version
    get_version(request.user, mv.registered_model.name, mv.version)
    try:
        change()
    except MlflowError as exc:
        if isinstance(exc, PermissionDenied):
            raise DjangoPermissionDenied(exc.message) from None
        return _comments_response(request, mv.registered_model.name, mv.version, error=exc.message)
    return _comments_response(request, mv.registered_model.name, mv.version)


@require_POST
def update_comment(request, comment_id: int):
    """Edit one's own comment (EDIT_COMMENT); the service refuses anyone else."""
    return _change_comment(request, comment_id, lambda: services.update_comment(
        comment_id=comment_id, user=request.user, comment=request.POST.get("comment", "")))


@require_POST
def delete_comment(request, comment_id: int):
    return _change_comment(request, comment_id, lambda: services.delete_comment(comment_id=comment_id, user=request.user))


# --------------------------------------------------------------------------- review inbox


def _decorate(rows):
    now = timezone.now()
    for req in rows:
        req.created = ms_to_datetime(req.creation_timestamp)
        req.waiting = timesince(req.created, now, depth=1) if req.created else ""
        if req.waiting.startswith("0\xa0"):
            req.waiting = "less than a minute"
        req.url = version_url(req.model.name, req.version.version) + f"#request-{req.pk}"
        req.approvals = sum(1 for r in req.reviews.all() if r.decision == "APPROVED")
        snapshot = req.policy or {}
        req.required = max(snapshot.get("min_approvals", 1), 1) if snapshot.get("requires_approval") else 1
        results = (req.evidence or {}).get("on_approval") or (req.evidence or {}).get("on_request") or []
        req.failed_checks = sum(1 for r in results if not r.get("passed"))
        req.check_count = len(results)
        # The server's own evidence (evaluations, signatures), shown beside the counts.
        req.verdicts = [r for r in results if (r.get("check") or {}).get("type") in checks.EVIDENCE_TYPES]
    return rows


def _not_yours(user, visible, limit: int = 20) -> list:
    """Open requests the user can see but not decide, each with the reason (separation of duties,
    approver level, already reviewed): what an empty inbox explains. A constant number of queries."""
    from approvals.policy import effective_policies

    rows = list(visible.pending().order_by("creation_timestamp", "id")[:limit])
    if not rows:
        return []
    levels = perms.effective_levels(user, {r.model_id: r.model for r in rows}.values())
    policies = effective_policies({(r.model_id, r.to_stage): (r.model, r.to_stage) for r in rows}.values())
    for req in rows:
        refusal = access.review_refusal(user, levels.get(req.model_id), req, policies[(req.model_id, req.to_stage)])
        if refusal is None and any(r.reviewer_id == user.pk for r in req.reviews.all()):
            refusal = "you already reviewed it; each reviewer counts once"
        req.reason = refusal or "you may review it"
    return _decorate(rows)


def _inbox_context(request, *, error: str = "", form: dict | None = None, done: str = "") -> dict:
    visible = access.requests_visible_to(request.user).select_related("model", "version").prefetch_related("reviews")
    to_review = _decorate(list(access.reviewable_by(request.user, visible).order_by("creation_timestamp", "id")[:INBOX_LIMIT]))
    comparisons = compare_requests(to_review)
    for req in to_review:
        req.cmp = comparisons[req.pk]
    return {
        "to_review": to_review, "not_yours": [] if to_review else _not_yours(request.user, visible),
        "review_error": error, "review_form": form or {}, "review_done": done, "nav_section": "reviews",
    }


@require_GET
def inbox(request):
    """The pending requests this user may decide (each beside the current holder of its target stage,
    with approve/reject forms), why the others are not theirs, and their own requests."""
    if registry_views.wants_partial(request, "own-requests") and request.htmx.target == "own-requests":
        return render(request, "approvals/inbox.html#own-requests", _own_requests_context(request))
    return render(request, "approvals/inbox.html", {**_inbox_context(request), **_own_requests_context(request)})


def _own_requests_context(request) -> dict:
    visible = access.requests_visible_to(request.user).select_related("model", "version").prefetch_related("reviews")
    status = request.GET.get("status", "")
    mine = visible.filter(requester=request.user)
    if status in dict(TransitionRequest.STATUS_CHOICES):
        mine = mine.filter(status=status)
    own = _decorate(list(mine.order_by("-creation_timestamp", "-id")[:INBOX_LIMIT]))
    return {"own": own, "status": status, "statuses": [s for s, _ in TransitionRequest.STATUS_CHOICES]}


# --------------------------------------------------------------------------- permissions tab


def _permissions_context(model, *, error: str = "", form: dict | None = None, done: str = "") -> dict:
    acl = services.access_control_list(model)
    rows = []
    for entry in acl:
        level = entry["all_permissions"][0]["permission_level"]
        inherited = entry["all_permissions"][0].get("inherited", False)
        kind = "user" if "user_name" in entry else "group"
        rows.append({"kind": kind, "name": entry.get("user_name") or entry.get("group_name"), "level": level,
                     "inherited": inherited, "is_owner": entry.get("is_owner", False)})
    return {
        "model": model, "acl": rows, "levels": perms.MODEL_LEVELS, "level_help": perms.LEVEL_DESCRIPTIONS,
        "level_choices": [(level, perms.level_label(level)) for level in perms.MODEL_LEVELS],
        "perm_error": error, "perm_form": form or {}, "perm_done": done, "can_manage": True, "tab": "permissions",
        "nav_section": "models",
        "groups": list(Group.objects.order_by("name").values_list("name", flat=True)[:200]),
    }


@require_http_methods(["GET", "POST"])
def model_permissions(request, name: str):
    """The Permissions tab (CAN_MANAGE): grant a level to a user or group, or revoke it."""
    model, _ = get_model(request.user, name, perms.CAN_MANAGE)
    template = "approvals/model_permissions.html"
    if request.method == "GET":
        return render(request, template, _permissions_context(model))
    post = request.POST
    kind = post.get("kind", "user")
    principal = post.get("principal", "").strip()
    level = post.get("level", "")
    form = {"kind": kind, "principal": principal, "level": level}
    error = done = ""
    try:
        if not principal:
            raise InvalidParameter("Name the user or group to grant.")
        key = "group_name" if kind == "group" else "user_name"
        if post.get("action") == "revoke":
            User = get_user_model()
            user = User.objects.filter(username=principal).first() if kind == "user" else None
            group = Group.objects.filter(name=principal).first() if kind == "group" else None
            if user is None and group is None:
                raise InvalidParameter(f"{kind.capitalize()} '{principal}' does not exist.")
            with transaction.atomic():
                perms.require_level(request.user, model, perms.CAN_MANAGE, not_found=Http404(), action="change its permissions")
                services.grant_permission(obj=model, level=None, user=user, group=group)
            form = {}
            done = f"Revoked the grant of {kind} {principal}."
        else:
            # A grant is one row per principal: granting again changes the level in place.
            services.set_permissions(actor=request.user, obj=model, replace=False,
                                     access_control_list=[{key: principal, "permission_level": level}])
            form = {}
            done = f"{kind.capitalize()} {principal}: {perms.level_label(level.upper())}."
    except MlflowError as exc:
        error = exc.message
    context = _permissions_context(model, error=error, form=form, done="" if error else done)
    if request.htmx:
        return render(request, template + "#permissions-panel", context)
    if error:
        return render(request, template, context)
    messages.success(request, done)
    return redirect(reverse("approvals:model_permissions", args=[model.name]))


SUGGESTIONS = 20


@require_GET
def permission_suggestions(request, name: str):
    """`<option>`s for the grant form's datalist: users (by username or name) or groups matching `q`.
    Only those who may manage the model's permissions (CAN_MANAGE) may list users and groups."""
    from django.db.models import Q

    get_model(request.user, name, perms.CAN_MANAGE)
    query = request.GET.get("principal", request.GET.get("q", "")).strip()
    if request.GET.get("kind") == "group":
        names = Group.objects.filter(name__icontains=query).order_by("name").values_list("name", "name")
    else:
        users = get_user_model().objects.filter(is_active=True)
        if query:
            users = users.filter(Q(username__icontains=query) | Q(first_name__icontains=query) | Q(last_name__icontains=query)
                                 | Q(email__icontains=query))
        names = [(u.username, u.get_full_name() or u.email) for u in users.order_by("username")[:SUGGESTIONS]]
    return render(request, "approvals/_principal_options.html", {"options": list(names[:SUGGESTIONS])})


# --------------------------------------------------------------------------- settings: stages and policies


def _require_admin(request):
    if not request.user.is_superuser:
        raise DjangoPermissionDenied("Only administrators manage stages and stage policies.")


def _stages_context(*, error: str = "", form: dict | None = None) -> dict:
    stages = list(Stage.objects.order_by("order", "id"))
    used = set(ModelVersion.objects.filter(current_stage__in=[s.name for s in stages]).values_list("current_stage", flat=True).distinct())
    for s in stages:
        s.in_use = s.name in used
    return {"stages": stages, "stage_error": error, "stage_form": form or {}, "settings_tab": "stages", "nav_section": ""}


@require_http_methods(["GET", "POST"])
def settings_stages(request):
    """Custom stages (admins): add one, or delete an unused custom one."""
    _require_admin(request)
    template = "approvals/settings_stages.html"
    if request.method == "GET":
        return render(request, template, _stages_context())
    post = request.POST
    form = {"name": post.get("name", "").strip(), "order": post.get("order", "").strip(), "description": post.get("description", "")}
    error = ""
    try:
        if post.get("action") == "delete":
            stage = Stage.objects.filter(pk=post.get("stage_id") or 0).first()
            if stage is None:
                raise InvalidParameter("No such stage.")
            if stage.built_in:
                raise InvalidParameter(f"{stage.name} is a built-in MLflow stage and cannot be deleted.")
            if ModelVersion.objects.filter(current_stage=stage.name).exists():
                raise InvalidParameter(f"Versions are in {stage.name}; move them out before deleting the stage.")
            stage.delete()
            form = {}
        else:
            name = form["name"]
            if not name or len(name) > 64 or not all(c.isalnum() or c in " -_" for c in name):
                raise InvalidParameter("A stage name is 1 to 64 letters, digits, spaces, '-' or '_'.")
            if Stage.objects.filter(name__iexact=name).exists():
                raise InvalidParameter(f"Stage {name} already exists.")
            order = int(form["order"]) if form["order"].lstrip("-").isdigit() else 100
            if not -(2**31) <= order < 2**31:  # the column is a 32-bit integer
                raise InvalidParameter("The order is a whole number between -2147483648 and 2147483647.")
            try:
                with transaction.atomic():
                    Stage.objects.create(name=name, order=order, description=form["description"])
            except IntegrityError:
                raise InvalidParameter(f"Stage {name} already exists.") from None
            form = {}
    except MlflowError as exc:
        error = exc.message
    context = _stages_context(error=error, form=form)
    if request.htmx:
        return render(request, template + "#stages-panel", context)
    if error:
        return render(request, template, context)
    messages.success(request, "Stages updated.")
    return redirect("approvals:settings_stages")


def _policies_context(*, error: str = "", form: dict | None = None) -> dict:
    from registry.services import stage_names

    rows = list(StagePolicy.objects.select_related("model", "updated_by").order_by("model__name", "stage"))
    for row in rows:
        row.checks_text = ", ".join(checks.describe(c) for c in row.checks or []) or "—"
    return {
        "policies": rows, "stages": stage_names(), "approver_levels": APPROVER_LEVELS, "policy_error": error,
        "policy_form": form or {"requires_approval": True, "min_approvals": "1", "checks": "[]"}, "settings_tab": "policies",
        "nav_section": "",
    }


def _policy_form(post, *, model_name: str = "") -> dict:
    return {
        "stage": post.get("stage", ""), "model_name": model_name or post.get("model_name", "").strip(),
        "requires_approval": post.get("requires_approval") in ("on", "true", "1"),
        "min_approvals": post.get("min_approvals", "1"), "approver_level": post.get("approver_level", ""),
        "allow_self_approval": post.get("allow_self_approval") in ("on", "true", "1"), "checks": post.get("checks", "[]"),
        "archive_existing_on_approval": post.get("archive_existing_on_approval", ""),
    }


def _save_policy(request, form: dict) -> str:
    """Set or delete the policy the form names (one service call); the refusal's message, or ""."""
    try:
        if request.POST.get("action") == "delete":
            services.delete_stage_policy(user=request.user, stage=form["stage"], model_name=form["model_name"] or None)
            return ""
        try:
            spec = json.loads(form["checks"] or "[]")
        except ValueError as exc:
            raise InvalidParameter(f"Checks must be a JSON list: {exc}") from None
        if not form["min_approvals"].strip().isdigit():
            raise InvalidParameter("Minimum approvals must be a whole number from 1 to 20.")
        services.set_stage_policy(
            user=request.user, stage=form["stage"], model_name=form["model_name"] or None,
            requires_approval=form["requires_approval"], min_approvals=int(form["min_approvals"]),
            approver_level=form["approver_level"], allow_self_approval=form["allow_self_approval"], checks_spec=spec,
            archive_existing_on_approval={"true": True, "false": False}.get(form["archive_existing_on_approval"]),
        )
    except MlflowError as exc:
        return exc.message
    return ""


@require_http_methods(["GET", "POST"])
def settings_policies(request):
    """Stage policies (admins): set the global policy of a stage or a model's override; delete one."""
    _require_admin(request)
    template = "approvals/settings_policies.html"
    if request.method == "GET":
        return render(request, template, _policies_context())
    form = _policy_form(request.POST)
    error = _save_policy(request, form)
    context = _policies_context(error=error, form=form if error else None)
    if request.htmx:
        return render(request, template + "#policies-panel", context)
    if error:
        return render(request, template, context)
    messages.success(request, "Stage policies updated.")
    return redirect("approvals:settings_policies")


def _model_policies_context(model, *, error: str = "", form: dict | None = None) -> dict:
    from registry.services import stage_names

    stages = stage_names()
    rows = {p.stage: p for p in StagePolicy.objects.filter(model=model)}
    globals_ = {p.stage: p for p in StagePolicy.objects.filter(model__isnull=True)}
    effective = []
    for stage in stages:
        policy = effective_policy(model=model, stage=stage)
        policy.checks_text = ", ".join(checks.describe(c) for c in policy.checks) or "—"
        policy.own, policy.floor = rows.get(stage), globals_.get(stage)
        effective.append(policy)
    return {
        "model": model, "effective": effective, "stages": stages, "approver_levels": APPROVER_LEVELS,
        "policy_error": error, "policy_form": form or {"requires_approval": True, "min_approvals": "1", "checks": "[]"},
        "can_manage": True, "tab": "policies", "nav_section": "models",
    }


@require_http_methods(["GET", "POST"])
def model_policies(request, name: str):
    """A model's Stage policies tab (CAN_MANAGE): tighten the global policy of a stage for this model.
    Lowering it is refused (200 with the message beside the form, nothing saved) unless a superuser does it."""
    model, _ = get_model(request.user, name, perms.CAN_MANAGE)
    template = "approvals/model_policies.html"
    if request.method == "GET":
        return render(request, template, _model_policies_context(model))
    form = _policy_form(request.POST, model_name=model.name)
    error = _save_policy(request, form)
    context = _model_policies_context(model, error=error, form=form if error else None)
    if request.htmx:
        return render(request, template + "#model-policies-panel", context)
    if error:
        return render(request, template, context)
    messages.success(request, "Stage policies updated.")
    return redirect(reverse("approvals:model_policies", args=[model.name]))


# --------------------------------------------------------------------------- evaluation panel and datasets


def _metric_rows(ev, holder_ev, metrics) -> list[dict]:
    from approvals.evaluation import lower_is_better

    rows = []
    for name in metrics:
        mine = (ev.metrics or {}).get(name) if ev else None
        theirs = (holder_ev.metrics or {}).get(name) if holder_ev else None
        row = {"name": name, "value": mine, "holder": theirs, "direction": "lower" if lower_is_better(name) else "higher"}
        if mine is not None and theirs is not None:
            row["delta"] = mine - theirs
            row["better"] = (mine <= theirs) if lower_is_better(name) else (mine >= theirs)
        rows.append(row)
    return rows


def _evaluation_context(request, mv, level, *, error: str = "") -> dict:
    from approvals.evaluation import evaluable, stage_holder
    from approvals.models import Evaluation, VersionSignature

    model = mv.registered_model
    stage = "Production"
    holder = stage_holder(mv, stage)
    datasets = list(model.evaluation_datasets.all())
    latest = {}
    for ev in Evaluation.objects.filter(version__in=[v for v in (mv, holder) if v], dataset__in=datasets).order_by("id"):
        latest[(ev.version_id, ev.dataset_id)] = ev  # the newest wins
    panels = []
    for ds in datasets:
        ev = latest.get((mv.pk, ds.pk))
        holder_ev = latest.get((holder.pk, ds.pk)) if holder else None
        holder_ev = holder_ev if holder_ev and holder_ev.status == "SUCCEEDED" and holder_ev.dataset_digest == ds.digest else None
        panels.append({"dataset": ds, "evaluation": ev, "holder_evaluation": holder_ev,
                       "metrics": _metric_rows(ev if ev and ev.status == "SUCCEEDED" else None, holder_ev, ds.metrics),
                       "finished": ms_to_datetime(ev.finished_timestamp) if ev and ev.finished_timestamp else None})
    return {
        "model": model, "mv": mv, "holder": holder, "holder_stage": stage, "panels": panels,
        "signature_check": VersionSignature.objects.filter(version=mv).first(),
        "running": any(p["evaluation"] and p["evaluation"].status == "RUNNING" for p in panels),
        "can_run": perms.at_least(level, perms.CAN_EDIT) and evaluable(mv) and bool(datasets),
        "evaluable": evaluable(mv), "error": error, "nav_section": "models",
    }


def _render_evaluation(request, mv, level, *, error: str = ""):
    template = "approvals/evaluation_panel.html"
    partial = registry_views.wants_partial(request, "evaluation-panel")
    return render(request, template + "#evaluation-panel" if partial else template, _evaluation_context(request, mv, level, error=error))


@require_GET
def evaluation_panel(request, name: str, version: int):
    """The version page's Evaluation panel (loaded there by htmx; a page of its own without JS)."""
    mv, level = get_version(request.user, name, version)
    return _render_evaluation(request, mv, level)


@require_POST
def run_evaluation(request, name: str, version: int):
    """Re-run the version's evaluations (CAN_EDIT): approvals.evaluation.request_evaluation."""
    from approvals.evaluation import request_evaluation

    mv, level = get_version(request.user, name, version)
    try:
        request_evaluation(user=request.user, name=mv.registered_model.name, version=mv.version,
                           dataset=request.POST.get("dataset") or None)
    except PermissionDenied as error:
        raise DjangoPermissionDenied(error.message) from None
    except MlflowError as error:
        return _render_evaluation(request, mv, level, error=error.message)
    if request.htmx:
        return _render_evaluation(request, mv, level)
    messages.success(request, "Evaluation queued.")
    return redirect(reverse("approvals:evaluation_panel", args=[mv.registered_model.name, mv.version]))


def _datasets_context(model, level, *, error: str = "", form: dict | None = None) -> dict:
    from approvals.evaluation import METRICS

    datasets = list(model.evaluation_datasets.select_related("created_by"))
    for ds in datasets:
        ds.created = ms_to_datetime(ds.creation_timestamp)
    return {"model": model, "datasets": datasets, "can_manage": perms.at_least(level, perms.CAN_MANAGE), "error": error,
            "form": form or {"task": "regression"}, "task_metrics": METRICS, "nav_section": "models"}


@require_http_methods(["GET", "POST"])
def model_datasets(request, name: str):
    """The model page's evaluation datasets (htmx-loaded there); managers attach CSV/Parquet files."""
    from approvals.evaluation import attach_evaluation_dataset

    model, level = get_model(request.user, name)
    template = "approvals/model_datasets.html"
    partial = template + "#model-datasets"
    if request.method == "POST":
        form = {k: request.POST.get(k, "") for k in ("dataset", "target", "task", "description")}
        upload = request.FILES.get("file")
        try:
            if not perms.at_least(level, perms.CAN_MANAGE):
                raise PermissionDenied("Permission denied: attaching evaluation datasets needs CAN_MANAGE.")
            if upload is None:
                raise InvalidParameter("Choose a CSV or Parquet file.")
            attach_evaluation_dataset(user=request.user, model_name=model.name, name=form["dataset"], target=form["target"],
                                      task=form["task"], metrics=request.POST.getlist("metrics"), data=upload.read(),
                                      filename=upload.name, description=form["description"])
        except PermissionDenied as error:
            raise DjangoPermissionDenied(error.message) from None
        except MlflowError as error:
            return render(request, partial if request.htmx else template,
                          _datasets_context(model, level, error=error.message, form=form))
        if not request.htmx:
            messages.success(request, "Dataset attached.")
            return redirect(reverse("approvals:model_datasets", args=[model.name]))
    wants = registry_views.wants_partial(request, "model-datasets") or request.method == "POST"
    return render(request, partial if wants else template, _datasets_context(model, level))
