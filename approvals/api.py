"""The governance JSON API: Databricks' workspace-registry endpoints (transition requests, comments,
the Databricks flavours of get-model and transition-stage, the permissions API) and Stagegate's
own stage-policy and review-inbox endpoints.

Paths and shapes follow Databricks' SDK (see the reference in shared/spec/governance-apis.md);
our extra fields (request ids, quorum progress, check evidence, status) are added beside theirs.
Each handler reads parameters, asks approvals.access / approvals.services, and serialises.
"""

from django.urls import path

from approvals import access, evaluation, services
from approvals.models import Activity, Comment, StagePolicy, TransitionRequest
from approvals.policy import effective_policies, effective_policy
from core import permissions as perms
from core.api import Params, api_view, keyset_page
from core.errors import InvalidParameter, missing_parameter

# --------------------------------------------------------------------------- serialisers


def _strip(data: dict) -> dict:
    return {k: v for k, v in data.items() if v not in (None, "")}


def _quorum(req: TransitionRequest, policy) -> dict:
    approvals = sum(1 for r in req.reviews.all() if r.decision == "APPROVED")
    if req.is_pending:
        required = services.quorum(policy)
    else:
        snapshot = req.policy or {}
        required = max(snapshot.get("min_approvals", 1), 1) if snapshot.get("requires_approval") else 1
    return {"approvals": approvals, "required": required}


def request_json(req: TransitionRequest, *, user, level, policy=None, as_activity: bool = False) -> dict:
    """A request as Databricks' TransitionRequest (or, in lists, as its REQUESTED_TRANSITION Activity)."""
    policy = policy or effective_policy(model=req.model, stage=req.to_stage)
    data = {
        "id": str(req.pk),
        "request_id": str(req.pk),
        "activity_type": "REQUESTED_TRANSITION" if as_activity else None,
        "from_stage": req.from_stage,
        "to_stage": req.to_stage,
        "comment": req.comment,
        "user_id": req.requester_name,
        "creation_timestamp": req.creation_timestamp,
        "last_updated_timestamp": req.last_updated_timestamp,
        "available_actions": access.request_actions(user, level, req, policy),
        "status": req.status,
        "model_name": req.model.name,
        "version": str(req.version.version),
        "quorum": _quorum(req, policy),
        "reviews": [
            _strip({"user_id": r.reviewer_name, "decision": r.decision, "comment": r.comment,
                    "creation_timestamp": r.creation_timestamp})
            for r in req.reviews.all()
        ],
        "checks": req.evidence.get("on_approval") or req.evidence.get("on_request") or [],
        "evidence": req.evidence,
        "policy": policy.to_json() if req.is_pending else req.policy,
        "archive_existing_versions": req.archive_existing_versions if not req.is_pending else None,
    }
    out = _strip(data)
    out["available_actions"] = data["available_actions"]
    out["comment"] = req.comment
    return out


def activity_json(activity: Activity) -> dict:
    data = _strip({
        "id": str(activity.pk),
        "activity_type": activity.activity_type,
        "from_stage": activity.from_stage,
        "to_stage": activity.to_stage,
        "comment": activity.comment,
        "system_comment": activity.system_comment,
        "user_id": activity.user_name,
        "creation_timestamp": activity.creation_timestamp,
        "last_updated_timestamp": activity.last_updated_timestamp,
    })
    extra = activity.data or {}
    if "request_id" in extra:
        data["request_id"] = str(extra["request_id"])
    if "approvals" in extra:
        data["quorum"] = {"approvals": extra["approvals"], "required": extra["required"]}
        data["applied"] = extra.get("applied", False)
    if "checks" in extra:
        data["checks"] = extra["checks"]
    return data


def transition_activity_json(row) -> dict:
    """A registry StageTransition as APPLIED_TRANSITION / SYSTEM_TRANSITION."""
    data = _strip({
        "id": f"transition-{row.pk}",
        "activity_type": "SYSTEM_TRANSITION" if row.is_system else "APPLIED_TRANSITION",
        "from_stage": row.from_stage,
        "to_stage": row.to_stage,
        "comment": "" if row.is_system else row.comment,
        "system_comment": row.comment if row.is_system else "",
        "user_id": row.user.username if row.user_id else "",
        "creation_timestamp": row.timestamp,
        "last_updated_timestamp": row.timestamp,
    })
    if row.request_id:
        data["request_id"] = str(row.request_id)
    return data


def comment_json(comment: Comment, *, user, level) -> dict:
    return {
        "id": str(comment.pk),
        "user_id": comment.user_name,
        "comment": comment.text,
        "creation_timestamp": comment.creation_timestamp,
        "last_updated_timestamp": comment.last_updated_timestamp,
        "available_actions": access.comment_actions(user, level, comment),
    }


def requests_json(rows, *, user) -> list[dict]:
    """Many requests, with the caller's level per model and the policy per (model, stage) loaded in
    bulk: a list costs the same number of queries whatever its length."""
    rows = list(rows)
    levels = perms.effective_levels(user, {r.model_id: r.model for r in rows}.values())
    policies = effective_policies({(r.model_id, r.to_stage): (r.model, r.to_stage) for r in rows}.values())
    return [
        request_json(r, user=user, level=levels[r.model_id], policy=policies[(r.model_id, r.to_stage)], as_activity=True)
        for r in rows
    ]


def _open_requests(mv, *, user, level=None) -> list[dict]:
    rows = (
        TransitionRequest.objects.pending().filter(version=mv).select_related("model", "version")
        .prefetch_related("reviews").order_by("creation_timestamp", "id")
    )
    return requests_json(rows, user=user)


def model_version_databricks_json(mv, *, user, level) -> dict:
    data = mv.to_mlflow()
    data["permission_level"] = level
    data["email_subscription_status"] = "DEFAULT"
    data["open_requests"] = _open_requests(mv, user=user, level=level)
    return data


# --------------------------------------------------------------------------- transition requests


def _name_version(params):
    return params.string("name", required=True), params.version()


@api_view("POST")
def create_transition_request(request, params):
    name, version = _name_version(params)
    stage = params.string("stage", required=True)
    req = services.request_stage_transition(
        name=name, version=version, stage=stage, user=request.user, comment=params.string("comment", default="")
    )
    level = access.level_on(request.user, req.model)
    return {"request": request_json(req, user=request.user, level=level)}


@api_view("POST")
def approve_transition_request(request, params):
    name, version = _name_version(params)
    stage = params.string("stage", required=True)
    if not params.has("archive_existing_versions"):
        raise missing_parameter("archive_existing_versions")
    outcome = services.approve_transition_request(
        name=name, version=version, stage=stage, user=request.user,
        archive_existing_versions=params.boolean("archive_existing_versions"),
        comment=params.string("comment", default=""),
    )
    return {"activity": activity_json(outcome.activity)}


@api_view("POST")
def reject_transition_request(request, params):
    name, version = _name_version(params)
    stage = params.string("stage", required=True)
    outcome = services.reject_transition_request(
        name=name, version=version, stage=stage, user=request.user, comment=params.string("comment", default="")
    )
    return {"activity": activity_json(outcome.activity)}


@api_view("GET")
def list_transition_requests(request, params):
    """Open requests of one version (Databricks: `{requests: [Activity]}`)."""
    name, version = _name_version(params)
    mv = access.get_model_version_for_user(request.user, name, version)
    level = access.level_on(request.user, mv.registered_model)
    return {"requests": _open_requests(mv, user=request.user, level=level)}


@api_view("DELETE")
def delete_transition_request(request, params):
    name, version = _name_version(params)
    stage = params.string("stage", required=True)
    services.cancel_transition_request(
        name=name, version=version, stage=stage, user=request.user,
        creator=params.string("creator"), comment=params.string("comment", default=""),
    )
    return {}


@api_view("GET")
def list_activities(request, params):
    """The version's whole feed: requests, reviews, comments and (from the registry) applied and system transitions."""
    from registry.models import StageTransition

    name, version = _name_version(params)
    mv = access.get_model_version_for_user(request.user, name, version)
    feed = [activity_json(a) for a in Activity.objects.filter(version=mv)]
    feed += [transition_activity_json(t) for t in StageTransition.objects.filter(version=mv).select_related("user")]
    feed.sort(key=lambda a: (a["creation_timestamp"], a["activity_type"] in ("APPLIED_TRANSITION", "SYSTEM_TRANSITION")))
    return {"activities": feed}


# --------------------------------------------------------------------------- comments


@api_view("POST")
def create_comment(request, params):
    name, version = _name_version(params)
    comment = services.create_comment(name=name, version=version, user=request.user,
                                      comment=params.string("comment", required=True))
    level = access.level_on(request.user, comment.version.registered_model)
    return {"comment": comment_json(comment, user=request.user, level=level)}


@api_view("PATCH")
def update_comment(request, params):
    comment = services.update_comment(comment_id=params.string("id", required=True), user=request.user,
                                      comment=params.string("comment", required=True))
    level = access.level_on(request.user, comment.version.registered_model)
    return {"comment": comment_json(comment, user=request.user, level=level)}


@api_view("DELETE")
def delete_comment(request, params):
    services.delete_comment(comment_id=params.string("id", required=True), user=request.user)
    return {}


# --------------------------------------------------------------------------- Databricks flavours of registry calls


@api_view("GET")
def get_registered_model_databricks(request, params):
    from registry.services import latest_versions_for, registered_model_queryset

    name = params.string("name", required=True)
    model = access.get_registered_model_for_user(request.user, name)
    model = registered_model_queryset().get(pk=model.pk)
    data = model.to_mlflow(latest_versions=latest_versions_for([model.pk]).get(model.pk, []))
    data["id"] = str(model.pk)
    data["permission_level"] = access.level_on(request.user, model)
    if model.owner_id:
        data["user_id"] = model.owner.username
    return {"registered_model_databricks": data}


@api_view("POST")
def transition_stage_databricks(request, params):
    name, version = _name_version(params)
    stage = params.string("stage", required=True)
    if not params.has("archive_existing_versions"):
        raise missing_parameter("archive_existing_versions")
    services.transition_stage_with_comment(
        name=name, version=version, stage=stage, user=request.user,
        archive_existing_versions=params.boolean("archive_existing_versions"), comment=params.string("comment", default=""),
    )
    from registry.access import version_queryset

    mv = version_queryset().get(registered_model__name=name, version=version)
    level = access.level_on(request.user, mv.registered_model)
    return {"model_version_databricks": model_version_databricks_json(mv, user=request.user, level=level)}


# --------------------------------------------------------------------------- Stagegate: stage policies and the review inbox


@api_view(("GET", "PUT", "DELETE"))
def stage_policies(request, params):
    """PUT sets a policy (no `model_name`: the global one), DELETE removes it, GET lists the effective
    policy of every stage for `model_name` (or the global ones)."""
    if request.method == "PUT":
        stage = params.string("stage", required=True)
        model_name = params.string("model_name")
        if not params.is_query and "checks" in params.data and params.data["checks"] is not None and not isinstance(params.data["checks"], list):
            raise InvalidParameter("Invalid value for parameter 'checks': it must be a list of check objects.")
        row = services.set_stage_policy(
            user=request.user, stage=stage, model_name=model_name,
            requires_approval=params.raw("requires_approval", True),
            min_approvals=params.raw("min_approvals", 1),
            approver_level=params.string("approver_level", default=""),
            allow_self_approval=params.raw("allow_self_approval", False),
            checks_spec=params.raw("checks", []),
            archive_existing_on_approval=params.raw("archive_existing_on_approval", None),
        )
        return {"policy": services.policy_json(row)}
    if request.method == "DELETE":
        services.delete_stage_policy(user=request.user, stage=params.string("stage", required=True),
                                     model_name=params.string("model_name"))
        return {}
    from registry.services import stage_names

    model_name = params.string("model_name")
    if model_name:
        model = access.get_registered_model_for_user(request.user, model_name)
        return {"policies": [effective_policy(model=model, stage=s).to_json() for s in stage_names()]}
    rows = {p.stage: p for p in StagePolicy.objects.filter(model__isnull=True)}
    policies = []
    for stage in stage_names():
        if stage in rows:
            policies.append(services.policy_json(rows[stage]))
        else:
            from approvals.models import default_approver_level, default_archive_on_approval

            policies.append({"stage": stage, "requires_approval": False, "min_approvals": 1,
                             "approver_level": default_approver_level(stage), "allow_self_approval": False,
                             "archive_existing_on_approval": default_archive_on_approval(stage),
                             "checks": [], "scope": "default"})
    return {"policies": policies}


STATUSES = [s for s, _ in TransitionRequest.STATUS_CHOICES]


@api_view("GET")
def search_transition_requests(request, params):
    """The caller's view of requests across models: `status` (default PENDING), `model_name`,
    `reviewable=true` (the review inbox: those the caller may approve now), `mine=true`. Keyset-paged;
    only models the caller can read ever appear, in counts and pages alike."""
    status = (params.string("status") or TransitionRequest.PENDING).upper()
    if status not in STATUSES + ["ALL"]:
        raise InvalidParameter(f"Invalid value {status!r} for parameter 'status': must be one of {', '.join(STATUSES)} or ALL.")
    max_results = params.max_results(default=100, maximum=1000)
    qs = access.requests_visible_to(request.user)
    if status != "ALL":
        qs = qs.filter(status=status)
    if params.string("model_name"):
        qs = qs.filter(model__name=params.string("model_name"))
    if params.boolean("mine"):
        qs = qs.filter(requester=request.user)
    if params.boolean("reviewable"):
        qs = access.reviewable_by(request.user, qs)
    rows, token = keyset_page(
        qs.select_related("model", "version").prefetch_related("reviews"),
        order=[("creation_timestamp", True), ("id", True)], max_results=max_results,
        page_token=params.string("page_token"), kind="transition-requests",
    )
    result = {"requests": requests_json(rows, user=request.user)}
    if token:
        result["next_page_token"] = token
    return result


# --------------------------------------------------------------------------- Stagegate: evaluation datasets and evaluations


def _dataset_upload(request, params) -> tuple[Params, bytes, str | None]:
    """A multipart form (`file` plus fields) or JSON (`content` as text, or `content_base64`)."""
    import base64
    import binascii

    content_type = request.META.get("CONTENT_TYPE", "").split(";", 1)[0].strip().lower()
    if content_type == "multipart/form-data":
        upload = request.FILES.get("file")
        if upload is None:
            raise missing_parameter("file")
        return Params(request.POST, is_query=True), upload.read(), upload.name
    if content_type != "application/json":
        raise InvalidParameter("Bad Request. Content-Type must be one of ['application/json', 'multipart/form-data'].")
    body = Params.from_request(request)
    if body.is_query:
        raise missing_parameter("name")
    if body.has("content_base64"):
        try:
            data = base64.b64decode(body.string("content_base64"), validate=True)
        except (binascii.Error, ValueError):
            raise InvalidParameter("Invalid value for parameter 'content_base64': it is not base64.") from None
    else:
        data = (body.string("content") or "").encode()
    return body, data, body.string("filename")


@api_view(("GET", "POST"), body="raw")
def evaluation_datasets(request, params):
    """GET lists a model's datasets (CAN_READ); POST attaches one (CAN_MANAGE)."""
    if request.method == "GET":
        model = access.get_registered_model_for_user(request.user, params.string("name", required=True))
        return {"datasets": [evaluation.dataset_json(d, model_name=model.name) for d in model.evaluation_datasets.all()]}
    body, data, filename = _dataset_upload(request, params)
    metrics = body.raw("metrics")
    ds = evaluation.attach_evaluation_dataset(
        user=request.user, model_name=body.string("name", required=True), name=body.string("dataset", required=True),
        target=body.string("target", required=True), task=body.string("task", required=True),
        metrics=body.data.getlist("metrics") if body.is_query and hasattr(body.data, "getlist") else metrics,
        data=data, filename=filename, format=body.string("format"), description=body.string("description") or "",
    )
    return {"dataset": evaluation.dataset_json(ds)}


@api_view("GET")
def list_evaluations(request, params):
    """The evaluations of `name` (and `version`), newest first, with the version's signature status."""
    from approvals.models import Evaluation, VersionSignature

    model = access.get_registered_model_for_user(request.user, params.string("name", required=True))
    qs = Evaluation.objects.filter(version__registered_model=model).select_related("version", "dataset", "requested_by")
    result = {}
    version = params.integer("version")
    if version is not None:
        mv = access.get_model_version_for_user(request.user, model.name, version)
        qs = qs.filter(version=mv)
        sig = VersionSignature.objects.filter(version=mv).first()
        result["signature"] = ({"status": sig.status, "signer": sig.signer, "method": sig.method, "detail": sig.detail,
                                "verified_timestamp": sig.verified_timestamp} if sig else {"status": "UNKNOWN"})
    rows = list(qs.order_by("-id")[: params.max_results(default=100, maximum=1000)])
    for ev in rows:
        ev.version.registered_model = model
    result["evaluations"] = [evaluation.evaluation_json(ev) for ev in rows]
    return result


@api_view("POST")
def run_evaluations(request, params):
    """Evaluate a version again (CAN_EDIT): all its model's datasets, or `dataset`."""
    created = evaluation.request_evaluation(user=request.user, name=params.string("name", required=True),
                                            version=params.integer("version", required=True), dataset=params.string("dataset"))
    for ev in created:
        ev.refresh_from_db()
    return {"evaluations": [evaluation.evaluation_json(ev) for ev in created]}


# --------------------------------------------------------------------------- Databricks' permissions API


def _permissions_view(getter):
    @api_view(("GET", "PATCH", "PUT"))
    def view(request, params, object_id):
        if request.method == "GET":
            obj = getter(request.user, object_id)
            return services.permissions_json(obj)
        obj = getter(request.user, object_id, min_level=perms.CAN_MANAGE, action="change its permissions")
        acl = params.raw("access_control_list", [])
        services.set_permissions(actor=request.user, obj=obj, access_control_list=acl, replace=request.method == "PUT")
        return services.permissions_json(obj)

    return view


def _levels_view(getter, levels):
    @api_view("GET")
    def view(request, params, object_id):
        getter(request.user, object_id)
        return {"permission_levels": [{"permission_level": lvl, "description": perms.LEVEL_DESCRIPTIONS[lvl]} for lvl in levels]}

    return view


registered_model_permissions = _permissions_view(access.get_registered_model_by_id_for_user)
experiment_permissions = _permissions_view(access.get_experiment_by_id_for_user)
registered_model_permission_levels = _levels_view(access.get_registered_model_by_id_for_user, perms.MODEL_LEVELS)
experiment_permission_levels = _levels_view(access.get_experiment_by_id_for_user, perms.EXPERIMENT_LEVELS)


# Under /api/2.0/mlflow/ and /ajax-api/2.0/mlflow/ (config.urls adds them to mlflow_api).
urlpatterns = [
    path("transition-requests/create", create_transition_request),
    path("transition-requests/approve", approve_transition_request),
    path("transition-requests/reject", reject_transition_request),
    path("transition-requests/list", list_transition_requests),
    path("transition-requests/delete", delete_transition_request),
    path("comments/create", create_comment),
    path("comments/update", update_comment),
    path("comments/delete", delete_comment),
    path("activities/list", list_activities),
    path("databricks/registered-models/get", get_registered_model_databricks),
    path("databricks/model-versions/transition-stage", transition_stage_databricks),
]

# Under /api/2.0/permissions/.
permissions_urlpatterns = [
    path("registered-models/<str:object_id>", registered_model_permissions),
    path("registered-models/<str:object_id>/permissionLevels", registered_model_permission_levels),
    path("experiments/<str:object_id>", experiment_permissions),
    path("experiments/<str:object_id>/permissionLevels", experiment_permission_levels),
]

# Under /api/2.0/stagegate/.
stagegate_urlpatterns = [
    path("stage-policies", stage_policies),
    path("transition-requests", search_transition_requests),
    path("evaluation-datasets", evaluation_datasets),
    path("evaluations", list_evaluations),
    path("evaluations/run", run_evaluations),
]

