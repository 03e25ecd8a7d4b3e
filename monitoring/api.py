"""JSON APIs: MLflow's `/webhooks`, Databricks' `/registry-webhooks/*` (both over one Webhook model
and one delivery engine), and Stagegate's own monitoring endpoints (point in time, rollback,
watches, deliveries, audit export)."""

import uuid

from django.db.models import Q
from django.http import StreamingHttpResponse
from django.urls import path

from core.api import Params, api_view, decode_page_token, encode_page_token
from core.errors import InvalidParameter, missing_parameter
from monitoring import access, audit, catalog, services
from monitoring.models import AuditRecord, Webhook, WebhookDelivery


# --------------------------------------------------------------------------- serialisers


def mlflow_webhook(hook: Webhook) -> dict:
    data = {
        "webhook_id": str(hook.id),
        "name": hook.name,
        "url": hook.url,
        "events": [catalog.mlflow_event_to_wire(e) for e in hook.events],
        "status": hook.status if hook.status != Webhook.TEST_MODE else Webhook.DISABLED,
        "creation_timestamp": hook.creation_timestamp,
        "last_updated_timestamp": hook.last_updated_timestamp,
    }
    if hook.description:
        data["description"] = hook.description
    return data


def databricks_webhook(hook: Webhook) -> dict:
    data = {
        "id": str(hook.id),
        "events": list(hook.events),
        "status": hook.status,
        "http_url_spec": {"url": hook.url, "enable_ssl_verification": hook.enable_ssl_verification},
        "creation_timestamp": hook.creation_timestamp,
        "last_updated_timestamp": hook.last_updated_timestamp,
    }
    if hook.description:
        data["description"] = hook.description
    if hook.model_id:
        data["model_name"] = hook.model_name
    return data


def delivery_json(d: WebhookDelivery, *, attempts: bool = False) -> dict:
    data = {
        "delivery_id": str(d.id), "webhook_id": str(d.webhook_id), "event": d.event_name, "model_name": d.model_name,
        "version": str(d.version) if d.version is not None else None, "status": d.status, "attempts": d.attempts,
        "is_test": d.is_test, "created_at": d.created_at.isoformat(), "next_attempt_at": d.next_attempt_at.isoformat(),
        "finished_at": d.finished_at.isoformat() if d.finished_at else None, "last_status_code": d.last_status_code,
        "last_error": d.last_error,
    }
    if attempts:
        data["attempt_log"] = [
            {"number": a.number, "started_at": a.started_at.isoformat(),
             "finished_at": a.finished_at.isoformat() if a.finished_at else None, "status_code": a.status_code,
             "latency_ms": a.latency_ms, "response_excerpt": a.response_excerpt, "error": a.error, "worker": a.worker}
            for a in d.attempt_log.all()
        ]
    return data


def _page(queryset, *, max_results: int, page_token: str | None, kind: str):
    """Newest first by (creation_timestamp, id); the token carries the last row's key."""
    token = decode_page_token(page_token)
    if token is not None:
        after = token.get("after")
        if token.get("kind") != kind or not isinstance(after, list) or len(after) != 2:
            raise InvalidParameter("Invalid page token, it does not belong to this listing")
        try:
            ts, last_id = int(after[0]), uuid.UUID(str(after[1]))
        except (TypeError, ValueError):
            raise InvalidParameter("Invalid page token, could not base64-decode") from None
        queryset = queryset.filter(Q(creation_timestamp__lt=ts) | Q(creation_timestamp=ts, id__lt=last_id))
    rows = list(queryset.order_by("-creation_timestamp", "-id")[: max_results + 1])
    token = None
    if len(rows) > max_results:
        rows = rows[:max_results]
        token = encode_page_token({"kind": kind, "after": [rows[-1].creation_timestamp, str(rows[-1].id)]})
    return rows, token


def _status(params: Params, name: str = "status"):
    value = params.raw(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidParameter(f"Invalid webhook status {value!r}.")
    return value.upper()


# --------------------------------------------------------------------------- MLflow's webhook API


def _mlflow_events(params: Params, required: bool) -> list[str] | None:
    raw = params.raw("events")
    if raw is None or raw == [] or raw == "":
        if required:
            raise missing_parameter("events")
        return None
    if params.is_query:
        raw = params.data.getlist("events")
    if not isinstance(raw, list):
        raise InvalidParameter(f"Webhook events must be a non-empty list of events: {raw}.")
    names = []
    for item in raw:
        name = catalog.mlflow_event_from_wire(item)
        if name is None:
            raise InvalidParameter(
                f"Invalid webhook event {item!r}. Valid events: "
                + ", ".join(f"{catalog.mlflow_event_to_wire(n)}" for n in catalog.MLFLOW_EVENT_NAMES)
            )
        names.append(name)
    return names


@api_view(("GET", "POST"))
def mlflow_webhooks(request, params: Params):
    if request.method == "GET":
        access.check_registry_wide(request.user)
        max_results = params.integer("max_results", default=100) or 100
        if max_results < 1 or max_results > 1000:
            raise InvalidParameter("max_results must be between 1 and 1000.")
        qs = access.webhooks_visible_to(request.user).filter(flavor=Webhook.MLFLOW)
        rows, token = _page(qs, max_results=max_results, page_token=params.string("page_token"), kind="mlflow-webhooks")
        data = {"webhooks": [mlflow_webhook(h) for h in rows]}
        if token:
            data["next_page_token"] = token
        return data
    hook = services.create_webhook(
        user=request.user, flavor=Webhook.MLFLOW,
        name=params.string("name", required=True), url=params.string("url", required=True),
        events=_mlflow_events(params, required=True), description=params.string("description") or "",
        secret=params.string("secret"), status=_status(params) or Webhook.ACTIVE,
    )
    return {"webhook": mlflow_webhook(hook)}


@api_view(("GET", "PATCH", "DELETE"))
def mlflow_webhook_detail(request, params: Params, webhook_id: str):
    if request.method == "GET":
        return {"webhook": mlflow_webhook(access.get_webhook_for_user(request.user, webhook_id, flavor=Webhook.MLFLOW))}
    if request.method == "DELETE":
        services.delete_webhook(user=request.user, webhook_id=webhook_id, flavor=Webhook.MLFLOW)
        return {}
    hook = services.update_webhook(
        user=request.user, webhook_id=webhook_id, flavor=Webhook.MLFLOW,
        name=params.string("name") or None, description=params.string("description"),
        url=params.string("url") or None, events=_mlflow_events(params, required=False),
        secret=params.string("secret"), status=_status(params),
    )
    return {"webhook": mlflow_webhook(hook)}


@api_view("POST")
def mlflow_webhook_test(request, params: Params, webhook_id: str):
    event = params.raw("event")
    name = None
    if event:
        name = catalog.mlflow_event_from_wire(event)
        if name is None:
            raise InvalidParameter(f"Invalid webhook event {event!r}.")
    delivery = services.send_test_event(user=request.user, webhook_id=webhook_id, flavor=Webhook.MLFLOW, event_name=name)
    attempt = delivery.attempt_log.order_by("-number").first()
    result = {"success": delivery.status == WebhookDelivery.DELIVERED}
    if attempt is not None and attempt.status_code is not None:
        result["response_status"] = attempt.status_code
        result["response_body"] = attempt.response_excerpt
    if attempt is not None and attempt.error and attempt.status_code is None:
        result["error_message"] = f"Failed to test webhook: {attempt.error}"
    return {"result": result}


# --------------------------------------------------------------------------- Databricks' registry-webhooks API


def _db_events(params: Params, required: bool) -> list[str] | None:
    events = params.string_list("events")
    if not events:
        if required:
            raise missing_parameter("events")
        return None
    return events


def _http_url_spec(params: Params, required: bool) -> dict | None:
    spec = params.raw("http_url_spec")
    if spec is None:
        if params.raw("job_spec") is not None:
            raise InvalidParameter("Job webhooks (job_spec) are not supported; use http_url_spec.")
        if required:
            raise missing_parameter("http_url_spec")
        return None
    if not isinstance(spec, dict):
        raise InvalidParameter(f"Invalid value {spec} for parameter 'http_url_spec' supplied: it must be an object.")
    if required and not spec.get("url"):
        raise missing_parameter("http_url_spec.url")
    for key in ("url", "secret", "authorization"):
        if spec.get(key) is not None and not isinstance(spec[key], str):
            raise InvalidParameter(f"Invalid value for parameter 'http_url_spec.{key}': it must be a string.")
    if "enable_ssl_verification" in spec and not isinstance(spec["enable_ssl_verification"], bool):
        raise InvalidParameter("Invalid value for parameter 'http_url_spec.enable_ssl_verification': it must be a boolean.")
    return spec


@api_view("POST")
def databricks_create(request, params: Params):
    spec = _http_url_spec(params, required=True)
    hook = services.create_webhook(
        user=request.user, flavor=Webhook.DATABRICKS, url=spec["url"], events=_db_events(params, required=True),
        description=params.string("description") or "", secret=spec.get("secret"), status=_status(params) or Webhook.ACTIVE,
        model_name=params.string("model_name"), authorization=spec.get("authorization"),
        enable_ssl_verification=spec.get("enable_ssl_verification", True),
    )
    return {"webhook": databricks_webhook(hook)}


@api_view("PATCH")
def databricks_update(request, params: Params):
    webhook_id = params.string("id", required=True)
    spec = _http_url_spec(params, required=False) or {}
    hook = services.update_webhook(
        user=request.user, webhook_id=webhook_id, flavor=Webhook.DATABRICKS, description=params.string("description"),
        events=_db_events(params, required=False), status=_status(params), url=spec.get("url"), secret=spec.get("secret"),
        authorization=spec.get("authorization"), enable_ssl_verification=spec.get("enable_ssl_verification"),
    )
    return {"webhook": databricks_webhook(hook)}


@api_view("GET")
def databricks_list(request, params: Params):
    max_results = params.integer("max_results", default=100) or 100
    if max_results < 1 or max_results > 1000:
        raise InvalidParameter("max_results must be between 1 and 1000.")
    qs = access.webhooks_visible_to(request.user).filter(flavor=Webhook.DATABRICKS)
    model_name = params.string("model_name")
    if model_name:
        qs = qs.filter(model_name=model_name)
    events = params.string_list("events")
    if events:
        # A webhook matches when it subscribes to any of the events (a JSON list: filtered here, then paged).
        wanted = set(events)
        qs = qs.filter(pk__in=[pk for pk, subscribed in qs.values_list("pk", "events") if wanted & set(subscribed)])
    rows, token = _page(qs, max_results=max_results, page_token=params.string("page_token"), kind="registry-webhooks")
    data = {"webhooks": [databricks_webhook(h) for h in rows]}
    if token:
        data["next_page_token"] = token
    return data


@api_view("DELETE")
def databricks_delete(request, params: Params):
    services.delete_webhook(user=request.user, webhook_id=params.string("id", required=True), flavor=Webhook.DATABRICKS)
    return {}


@api_view("POST")
def databricks_test(request, params: Params):
    delivery = services.send_test_event(
        user=request.user, webhook_id=params.string("id", required=True), flavor=Webhook.DATABRICKS,
        event_name=params.string("event"),
    )
    attempt = delivery.attempt_log.order_by("-number").first()
    data = {"status_code": attempt.status_code if attempt and attempt.status_code is not None else 0,
            "body": attempt.response_excerpt if attempt else ""}
    if attempt is not None and attempt.error and attempt.status_code is None:
        data["error"] = attempt.error
    return data


# --------------------------------------------------------------------------- Stagegate's own


@api_view("GET")
def stage_at(request, params: Params):
    name = params.string("name", required=True)
    stage = params.string("stage", required=True)
    ts = services.parse_timestamp(params.raw("timestamp"))
    holders = services.stage_at(user=request.user, name=name, stage=stage, timestamp=ts)
    return {"name": name, "stage": stage, "timestamp": ts, "model_versions": holders}


@api_view("GET")
def alias_at(request, params: Params):
    name = params.string("name", required=True)
    alias = params.string("alias", required=True)
    ts = services.parse_timestamp(params.raw("timestamp"))
    holder = services.alias_at(user=request.user, name=name, alias=alias, timestamp=ts)
    data = {"name": name, "alias": alias, "timestamp": ts}
    if holder:
        data.update(holder)
    return data


@api_view("POST")
def rollback(request, params: Params):
    result = services.request_rollback(
        user=request.user, name=params.string("name", required=True), stage=params.string("stage"),
        alias=params.string("alias"), comment=params.string("comment") or "",
    )
    return result


@api_view("POST")
def watch(request, params: Params):
    services.watch_model(user=request.user, name=params.string("name", required=True))
    return {"watching": True}


@api_view("POST")
def unwatch(request, params: Params):
    services.unwatch_model(user=request.user, name=params.string("name", required=True))
    return {"watching": False}


@api_view("GET")
def deliveries(request, params: Params):
    webhook_id = params.string("webhook_id", required=True)
    hook = access.get_webhook_for_user(request.user, webhook_id)
    max_results = params.max_results(default=100, maximum=1000)
    qs = hook.deliveries.prefetch_related("attempt_log")
    status = params.string("status")
    if status:
        qs = qs.filter(status=status.upper())
    rows = list(qs.order_by("-created_at", "-id")[:max_results])
    return {"deliveries": [delivery_json(d, attempts=True) for d in rows]}


@api_view("POST")
def redeliver(request, params: Params):
    delivery = services.redeliver(user=request.user, delivery_id=params.string("delivery_id", required=True))
    return {"delivery": delivery_json(delivery)}


@api_view("GET")
def audit_export(request, params: Params):
    access.check_audit(request.user)
    qs = filter_audit(AuditRecord.objects.all(), params)
    response = StreamingHttpResponse(audit.export_lines(qs), content_type="application/x-ndjson")
    response["Content-Disposition"] = 'attachment; filename="stagegate-audit.jsonl"'
    return response


@api_view("GET")
def audit_verify(request, params: Params):
    access.check_audit(request.user)
    verdict = audit.verify()
    return {"ok": verdict.ok, "checked": verdict.checked, "head_seq": verdict.head_seq, "message": str(verdict),
            "seq": verdict.seq, "kind": verdict.kind}


def filter_audit(qs, params):
    """Filters shared by the audit page and the export: model, user, type, time range (ms or ISO)."""
    get = params.string if hasattr(params, "string") else params.get
    model = get("model")
    if model:
        qs = qs.filter(model_name=model)
    user = get("user")
    if user:
        qs = qs.filter(actor_name=user)
    type_ = get("type")
    if type_:
        qs = qs.filter(type__startswith=type_)
    since = get("since")
    if since:
        qs = qs.filter(created__gte=services.parse_timestamp(since))
    until = get("until")
    if until:
        qs = qs.filter(created__lte=services.parse_timestamp(until))
    return qs


# Mounted under /api/2.0/mlflow/ (and /ajax-api/2.0/mlflow/).
urlpatterns = [
    path("webhooks", mlflow_webhooks),
    path("webhooks/<str:webhook_id>", mlflow_webhook_detail),
    path("webhooks/<str:webhook_id>/test", mlflow_webhook_test),
    path("registry-webhooks/create", databricks_create),
    path("registry-webhooks/update", databricks_update),
    path("registry-webhooks/list", databricks_list),
    path("registry-webhooks/delete", databricks_delete),
    path("registry-webhooks/test", databricks_test),
]

# Mounted under /api/2.0/stagegate/.
stagegate_urlpatterns = [
    path("registered-models/stage-at", stage_at),
    path("registered-models/alias-at", alias_at),
    path("registered-models/rollback", rollback),
    path("registered-models/watch", watch),
    path("registered-models/unwatch", unwatch),
    path("webhooks/deliveries", deliveries),
    path("webhooks/deliveries/redeliver", redeliver),
    path("audit/export", audit_export),
    path("audit/verify", audit_verify),
]
