"""Monitoring workflows: webhook configuration, the delivery engine, e-mail digests, watches,
point-in-time history and rollback. One function per business action; the JSON APIs, the
pages, the Celery tasks and the tests all call these."""

import logging
import os
import random
import re
import socket
import time
import uuid
from datetime import datetime, timedelta

import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMessage
from django.db import IntegrityError, transaction
from django.db.models import Min, Q
from django.utils import timezone

from core import links
from core.errors import InvalidParameter, PermissionDenied
from core.validation import check_int64
from monitoring import access, catalog, security
from monitoring.models import AuditRecord, DeliveryAttempt, Notification, Watch, Webhook, WebhookDelivery
from registry import access as registry_access
from registry.models import Event, RegisteredModel
from tracking.models import now_ms

log = logging.getLogger("stagegate.monitoring")

NAME_RE = re.compile(r"^(?=.{1,63}$)[a-zA-Z0-9](?:[a-zA-Z0-9._-]*[a-zA-Z0-9])?$")
EXCERPT = 1024


def _setting(name: str, default):
    return getattr(settings, name, default)


# --------------------------------------------------------------------------- webhook configuration


def _validate_name(name) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise InvalidParameter(
            f"Webhook name {name!r} is invalid. It must start and end with a letter or digit, "
            "be less than 63 characters long, and contain only letters, digits, dots (.), "
            "underscores (_), and hyphens (-)."
        )
    return name


def _validate_events(events, flavor: str) -> list[str]:
    if not events or not isinstance(events, list):
        raise InvalidParameter(f"Webhook events must be a non-empty list of events: {events}.")
    valid = catalog.MLFLOW_EVENT_NAMES if flavor == Webhook.MLFLOW else catalog.DATABRICKS_EVENT_NAMES
    out = []
    for name in events:
        if name not in valid:
            raise InvalidParameter(f"Invalid webhook event {name!r}. Valid events: {', '.join(valid)}.")
        if name not in out:
            out.append(name)
    return out


def _validate_status(status, flavor: str) -> str:
    allowed = (Webhook.ACTIVE, Webhook.DISABLED) if flavor == Webhook.MLFLOW else (Webhook.ACTIVE, Webhook.TEST_MODE, Webhook.DISABLED)
    if status not in allowed:
        raise InvalidParameter(f"Invalid webhook status {status!r}. Valid statuses: {', '.join(allowed)}.")
    return status


@transaction.atomic
def create_webhook(
    *, user, flavor: str, url: str, events: list[str], name: str = "", description: str = "", secret: str | None = None,
    status: str = Webhook.ACTIVE, model_name: str | None = None, authorization: str | None = None,
    enable_ssl_verification: bool = True,
) -> Webhook:
    """Create a webhook. Registry-wide (no model) needs an admin; per-model needs MANAGE on the model.
    Raises InvalidParameter (bad name/url/events/status, refused target), PermissionDenied, DoesNotExist."""
    model = None
    if model_name:
        model = access.get_model_for_webhooks(user, model_name)
    else:
        access.check_registry_wide(user)
    if flavor == Webhook.MLFLOW:
        _validate_name(name)
    events = _validate_events(events, flavor)
    if model is not None and catalog.REGISTRY_WIDE_ONLY & set(events):
        raise InvalidParameter("REGISTERED_MODEL_CREATED is only available for registry-wide webhooks (omit model_name).")
    security.check_url(url)
    ts = now_ms()
    hook = Webhook.objects.create(
        flavor=flavor, name=name or "", description=description or "", url=url, events=events, model=model,
        model_name=model.name if model else "", status=_validate_status(status or Webhook.ACTIVE, flavor),
        secret_encrypted=security.encrypt(secret), authorization_encrypted=security.encrypt(authorization),
        enable_ssl_verification=enable_ssl_verification, creator=user if getattr(user, "pk", None) else None,
        creation_timestamp=ts, last_updated_timestamp=ts,
    )
    _audit_webhook("webhook.created", hook, user)
    return hook


@transaction.atomic
def update_webhook(
    *, user, webhook_id, flavor: str, name: str | None = None, description: str | None = None, url: str | None = None,
    events: list[str] | None = None, secret: str | None = None, status: str | None = None,
    authorization: str | None = None, enable_ssl_verification: bool | None = None,
) -> Webhook:
    """Change the given fields (None = keep). A secret is replaced, never shown. Locks the webhook."""
    hook = access.get_webhook_for_user(user, webhook_id, flavor=flavor, manage=True, lock=True)
    if name is not None:
        hook.name = _validate_name(name) if flavor == Webhook.MLFLOW else name
    if description is not None:
        hook.description = description
    if url is not None:
        security.check_url(url)
        hook.url = url
    if events is not None:
        hook.events = _validate_events(events, flavor)
        if hook.model_id and catalog.REGISTRY_WIDE_ONLY & set(hook.events):
            raise InvalidParameter("REGISTERED_MODEL_CREATED is only available for registry-wide webhooks (omit model_name).")
    if secret is not None:
        hook.secret_encrypted = security.encrypt(secret)
    if authorization is not None:
        hook.authorization_encrypted = security.encrypt(authorization)
    if enable_ssl_verification is not None:
        hook.enable_ssl_verification = enable_ssl_verification
    if status is not None:
        hook.status = _validate_status(status, flavor)
    hook.last_updated_timestamp = now_ms()
    hook.save()
    _audit_webhook("webhook.updated", hook, user)
    return hook


@transaction.atomic
def delete_webhook(*, user, webhook_id, flavor: str) -> None:
    """Soft delete (the delivery log stays); open deliveries are cancelled."""
    hook = access.get_webhook_for_user(user, webhook_id, flavor=flavor, manage=True, lock=True)
    hook.deleted_timestamp = hook.last_updated_timestamp = now_ms()
    hook.status = Webhook.DISABLED
    hook.save(update_fields=["deleted_timestamp", "last_updated_timestamp", "status"])
    hook.deliveries.filter(status__in=WebhookDelivery.OPEN).update(
        status=WebhookDelivery.CANCELLED, finished_at=timezone.now(), last_error="webhook deleted"
    )
    _audit_webhook("webhook.deleted", hook, user)


def _audit_webhook(type: str, hook: Webhook, user) -> None:
    from monitoring import audit

    audit.append(
        type=type, created=now_ms(), model_id=hook.model_id, model_name=hook.model_name, actor=user,
        payload={"webhook_id": str(hook.id), "flavor": hook.flavor, "url": hook.url, "events": hook.events, "status": hook.status},
    )


# --------------------------------------------------------------------------- fan-out (after commit)


def _event_model_ids(events) -> dict[int, int | None]:
    """Each event's model id, even after the model was deleted (the audit record kept it): one
    query for the batch's events whose model is gone, none when there are none."""
    ids = {event.pk: event.model_id for event in events}
    orphans = [pk for pk, model_id in ids.items() if not model_id]
    if orphans:
        ids.update(AuditRecord.objects.filter(event_id__in=orphans).values_list("event_id", "model_id"))
    return ids


def fan_out(events: list[Event]) -> list[WebhookDelivery]:
    """The after-commit hook, for a batch of events: one delivery per (event, matching webhook) and
    one notification per (recipient, event). The active webhooks are read once per batch and the
    watchers of all the batch's models in one query. Idempotent (unique per (event, webhook) and
    (user, event)), so a re-dispatched event adds nothing. Enqueues the new deliveries."""
    model_ids = _event_model_ids(events)
    wanted = {model_id for model_id in model_ids.values() if model_id}
    hooks = list(
        Webhook.objects.filter(deleted_timestamp__isnull=True, status=Webhook.ACTIVE).filter(
            Q(model__isnull=True) | Q(model_id__in=wanted)
        )
    )
    created = []
    for event in events:
        model_id, enriched = model_ids[event.pk], None
        for hook in hooks:
            if hook.model_id is not None and hook.model_id != model_id:
                continue
            for name in catalog.names_for(event, hook.flavor):
                if name in hook.events:
                    if hook.flavor == Webhook.MLFLOW and enriched is None:
                        enriched = _with_current_fields(event)
                    delivery = _create_delivery(hook, enriched if hook.flavor == Webhook.MLFLOW else event, name)
                    if delivery is not None:
                        created.append(delivery)
                    break
    notify(events=events, model_ids=model_ids)
    for delivery in created:
        _enqueue_delivery(delivery.pk)
    return created


class _EventView:
    """The event with a payload completed from the database (MLflow's payloads carry tags and the
    description, which the registry's outbox row does not repeat)."""

    def __init__(self, event, payload):
        self._event, self.payload = event, payload

    def __getattr__(self, name):
        return getattr(self._event, name)


def _with_current_fields(event):
    payload = dict(event.payload or {})
    if event.type == "registered_model.created" and event.model_id:
        model = RegisteredModel.objects.filter(pk=event.model_id).first()
        if model is not None:
            payload.setdefault("tags", dict(model.tags.values_list("key", "value")))
            payload.setdefault("description", model.description)
    elif event.type == "model_version.created" and event.model_id and event.version is not None:
        from registry.models import ModelVersion

        mv = ModelVersion.objects.filter(registered_model_id=event.model_id, version=event.version).first()
        if mv is not None:
            payload.setdefault("tags", dict(mv.tags.values_list("key", "value")))
            payload.setdefault("description", mv.description or None)
    return _EventView(event, payload)


def _create_delivery(hook: Webhook, event, name: str, *, is_test: bool = False) -> WebhookDelivery | None:
    delivery_id = uuid.uuid4()
    now = timezone.now()
    try:
        with transaction.atomic():
            return WebhookDelivery.objects.create(
                id=delivery_id, webhook=hook, event=None if is_test else getattr(event, "_event", event), event_name=name,
                model_name=event.model_name, version=event.version, is_test=is_test,
                body=catalog.render_body(event, name, flavor=hook.flavor, webhook_id=hook.id),
                next_attempt_at=now, give_up_at=now + timedelta(hours=_setting("STAGEGATE_WEBHOOK_RETRY_HOURS", 24)),
            )
    except IntegrityError:
        return None  # already fanned out


def _enqueue_delivery(delivery_id, countdown: float | None = None) -> None:
    """Best effort: the database is the source of truth; the sweep re-enqueues what never arrived."""
    from monitoring.tasks import deliver

    try:
        if countdown:
            deliver.apply_async((str(delivery_id),), countdown=countdown)
        else:
            deliver.delay(str(delivery_id))
    except Exception:  # broker down: the sweep picks it up
        log.warning("could not enqueue delivery %s; the sweep will", delivery_id, exc_info=True)


# --------------------------------------------------------------------------- the delivery engine


def _claim(delivery_id) -> WebhookDelivery | None:
    """Take a due delivery with a conditional UPDATE (a lease): a duplicate message, a second worker
    or a sweep racing a retry does nothing."""
    now = timezone.now()
    # Connect timeout + read timeout + grace: a live worker always finishes inside its lease.
    lease = timedelta(seconds=5 + _setting("STAGEGATE_WEBHOOK_TIMEOUT", 10) + _setting("STAGEGATE_WEBHOOK_LEASE_GRACE_SECONDS", 15))
    taken = (
        WebhookDelivery.objects.filter(pk=delivery_id, status__in=WebhookDelivery.OPEN, next_attempt_at__lte=now)
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        .update(lease_until=now + lease)
    )
    if not taken:
        return None
    return WebhookDelivery.objects.select_related("webhook").get(pk=delivery_id)


def _headers(delivery: WebhookDelivery, hook: Webhook, attempt: int) -> dict:
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Stagegate-Webhooks/1.0",
        "X-Stagegate-Delivery-Id": str(delivery.id),
        "X-Stagegate-Attempt": str(attempt),
    }
    secret = security.decrypt(hook.secret_encrypted)
    if hook.flavor == Webhook.MLFLOW:
        ts = str(int(time.time()))
        headers["X-MLflow-Delivery-Id"] = str(delivery.id)
        headers["X-MLflow-Timestamp"] = ts
        if secret:
            headers["X-MLflow-Signature"] = security.mlflow_signature(secret, str(delivery.id), ts, delivery.body)
    else:
        if secret:
            headers["X-Databricks-Signature"] = security.databricks_signature(secret, delivery.body)
        authorization = security.decrypt(hook.authorization_encrypted)
        if authorization:
            headers["Authorization"] = authorization
    return headers


def _retry_after(response) -> float | None:
    value = response.headers.get("Retry-After") if response is not None else None
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        from email.utils import parsedate_to_datetime

        return max(0.0, (parsedate_to_datetime(value) - timezone.now()).total_seconds())
    except (TypeError, ValueError):
        return None


def backoff_seconds(attempt: int) -> float:
    """Exponential backoff with full jitter: base * 2^(n-1), capped, times a random factor in [0.5, 1]."""
    base = float(_setting("STAGEGATE_WEBHOOK_BACKOFF_SECONDS", 10))
    cap = float(_setting("STAGEGATE_WEBHOOK_BACKOFF_MAX_SECONDS", 3600))
    return min(cap, base * (2 ** max(0, attempt - 1))) * random.uniform(0.5, 1.0)


def _post(delivery: WebhookDelivery, hook: Webhook, number: int):
    """One HTTP try. Returns (status_code, excerpt, error, retryable, retry_after, latency_ms)."""
    started = time.monotonic()
    try:
        headers = _headers(delivery, hook, number)
    except RuntimeError as exc:  # the secret cannot be decrypted (key changed): never send unsigned
        return None, "", str(exc), False, None, 0
    try:
        security.check_url(hook.url)
        response = requests.post(
            hook.url,
            data=delivery.body.encode("utf-8"),
            headers=headers,
            timeout=(5, _setting("STAGEGATE_WEBHOOK_TIMEOUT", 10)),
            allow_redirects=False,
            verify=hook.enable_ssl_verification,
            stream=True,
        )
    except InvalidParameter as exc:  # the target became private/unresolvable: not worth retrying blind
        return None, "", str(exc), True, None, int((time.monotonic() - started) * 1000)
    except requests.RequestException as exc:
        return None, "", f"{type(exc).__name__}: {exc}", True, None, int((time.monotonic() - started) * 1000)
    try:
        raw = response.raw.read(EXCERPT, decode_content=True) or b""
    except Exception:
        raw = b""
    finally:
        response.close()
    latency = int((time.monotonic() - started) * 1000)
    code = response.status_code
    excerpt = raw.decode("utf-8", "replace")
    if 200 <= code < 300:
        return code, excerpt, "", False, None, latency
    retryable = code in (408, 429) or code >= 500
    return code, excerpt, f"HTTP {code}", retryable, _retry_after(response) if retryable else None, latency


def deliver(*, delivery_id) -> WebhookDelivery | None:
    """Make one attempt of a due delivery and schedule the next on a retryable failure.

    Claims the row (lease) first; keeps the attempt (time, status, latency, first KB, error);
    DELIVERED on 2xx; RETRYING with exponential backoff + jitter (or Retry-After) on network
    errors, 408, 429 and 5xx until `give_up_at`, then FAILED; FAILED at once on other statuses.
    Updates the webhook's health (flagged after N consecutive failures)."""
    delivery = _claim(delivery_id)
    if delivery is None:
        return None
    hook = delivery.webhook
    if not delivery.is_test and (hook.deleted_timestamp or hook.status != Webhook.ACTIVE):
        # Switched off after the event: do not send; a manual redelivery can still send it later.
        WebhookDelivery.objects.filter(pk=delivery.pk).update(
            status=WebhookDelivery.CANCELLED, finished_at=timezone.now(), lease_until=None,
            last_error=f"webhook {'deleted' if hook.deleted_timestamp else hook.status.lower()} before delivery",
        )
        delivery.refresh_from_db()
        return delivery
    number = delivery.attempts + 1
    attempt = DeliveryAttempt.objects.create(
        delivery=delivery, number=number, worker=f"{socket.gethostname()}:{os.getpid()}"
    )
    WebhookDelivery.objects.filter(pk=delivery.pk).update(attempts=number)
    code, excerpt, error, retryable, retry_after, latency = _post(delivery, hook, number)
    now = timezone.now()
    DeliveryAttempt.objects.filter(pk=attempt.pk).update(
        finished_at=now, status_code=code, latency_ms=latency, response_excerpt=excerpt, error=error[:2000]
    )
    fields = {"attempts": number, "last_status_code": code, "last_error": error[:2000], "lease_until": None}
    countdown = None
    if not error:
        fields.update(status=WebhookDelivery.DELIVERED, finished_at=now)
    elif retryable:
        wait = retry_after if retry_after is not None else backoff_seconds(number)
        if now + timedelta(seconds=wait) > delivery.give_up_at:
            fields.update(status=WebhookDelivery.FAILED, finished_at=now)
        else:
            fields.update(status=WebhookDelivery.RETRYING, next_attempt_at=now + timedelta(seconds=wait))
            countdown = wait
    else:
        fields.update(status=WebhookDelivery.FAILED, finished_at=now)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(**fields)
    if not delivery.is_test:
        _record_health(hook, ok=not error)
    if countdown is not None:
        _enqueue_delivery(delivery.pk, countdown=countdown)
    delivery.refresh_from_db()
    return delivery


def _record_health(hook: Webhook, *, ok: bool) -> None:
    from django.db.models import F

    if ok:
        Webhook.objects.filter(pk=hook.pk).update(consecutive_failures=0, failing_since=None, last_success_at=timezone.now())
        return
    Webhook.objects.filter(pk=hook.pk).update(consecutive_failures=F("consecutive_failures") + 1)
    threshold = _setting("STAGEGATE_WEBHOOK_FAILING_AFTER", 5)
    Webhook.objects.filter(pk=hook.pk, failing_since__isnull=True, consecutive_failures__gte=threshold).update(
        failing_since=timezone.now()
    )


@transaction.atomic
def redeliver(*, user, delivery_id) -> WebhookDelivery:
    """Send a finished (or stuck) delivery again with the same delivery id and body; enqueued after commit."""
    delivery = access.get_delivery_for_user(user, delivery_id, manage=True, lock=True)
    now = timezone.now()
    delivery.status = WebhookDelivery.PENDING
    delivery.next_attempt_at = now
    delivery.lease_until = None
    delivery.finished_at = None
    delivery.give_up_at = now + timedelta(hours=_setting("STAGEGATE_WEBHOOK_RETRY_HOURS", 24))
    delivery.save(update_fields=["status", "next_attempt_at", "lease_until", "finished_at", "give_up_at"])
    transaction.on_commit(lambda: _enqueue_delivery(delivery.pk))
    return delivery


def send_test_event(*, user, webhook_id, flavor: str | None = None, event_name: str | None = None) -> WebhookDelivery:
    """Send an example event now (synchronously, one attempt), also to TEST_MODE and DISABLED webhooks.
    The attempt is logged like any delivery (is_test)."""
    hook = access.get_webhook_for_user(user, webhook_id, flavor=flavor, manage=True)
    name = event_name or (hook.events[0] if hook.events else None)
    if name is None:
        raise InvalidParameter("The webhook has no events to test.")
    _validate_events([name], hook.flavor)
    event = catalog.ExampleEvent(name, flavor=hook.flavor, model_name=hook.model_name or "example_model")
    delivery = _create_delivery(hook, event, name, is_test=True)
    # One attempt now; a test is not retried.
    delivery = deliver(delivery_id=delivery.pk)
    if delivery.status == WebhookDelivery.RETRYING:
        WebhookDelivery.objects.filter(pk=delivery.pk).update(status=WebhookDelivery.FAILED, finished_at=timezone.now())
        delivery.refresh_from_db()
    return delivery


# --------------------------------------------------------------------------- the sweep


def sweep(*, limit: int = 500) -> dict:
    """Periodic: re-enqueue due or stuck deliveries (lease run out), kick the registry's dispatch for
    events the broker lost, and send e-mail digests that are due. Safe to run anywhere, any time."""
    now = timezone.now()
    due = list(
        WebhookDelivery.objects.filter(status__in=WebhookDelivery.OPEN, next_attempt_at__lte=now)
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        .order_by("next_attempt_at")
        .values_list("id", flat=True)[:limit]
    )
    # Past their give-up time and not even claimable: close them.
    WebhookDelivery.objects.filter(status__in=WebhookDelivery.OPEN, give_up_at__lt=now).filter(
        Q(lease_until__isnull=True) | Q(lease_until__lt=now)
    ).update(status=WebhookDelivery.FAILED, finished_at=now, last_error="gave up: retry period over")
    for delivery_id in due:
        _enqueue_delivery(delivery_id)
    age = _setting("STAGEGATE_MONITOR_SWEEP_AGE_SECONDS", 60)
    cutoff = now_ms() - age * 1000
    stale_events = Event.objects.filter(dispatched_at__isnull=True, created__lte=cutoff).filter(
        Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)
    ).exists()
    if stale_events:
        from registry.tasks import dispatch_events

        try:
            dispatch_events.delay()
        except Exception:
            log.warning("could not enqueue the registry dispatch", exc_info=True)
    users = due_digest_users()
    for user_id in users:
        _enqueue_digest(user_id)
    return {"deliveries": len(due), "dispatch": stale_events, "digests": len(users)}


# --------------------------------------------------------------------------- e-mail


def eligible_reviewers(*, model_id: int | None, to_stage: str | None, exclude_user_id=None):
    """Who may decide a transition request to `to_stage`: active users whose level on the model
    reaches the stage policy's approver level (admins, the owner, user and group grants, or everyone
    when the organisation default is high enough), never the requester. Asks approvals when it
    offers `eligible_reviewers(model=, stage=)`."""
    from core import permissions as perms

    User = get_user_model()
    model = RegisteredModel.objects.filter(pk=model_id).first() if model_id else None
    if model is None:
        return []
    try:
        from approvals import services as approvals_services

        finder = getattr(approvals_services, "eligible_reviewers", None)
    except ImportError:
        finder = None
    if finder is not None:
        users = list(finder(model=model, stage=to_stage))
    else:
        level = perms.CAN_MANAGE
        try:
            from approvals.policy import effective_policy

            level = effective_policy(model=model, stage=to_stage).approver_level or perms.CAN_MANAGE
        except Exception:  # no policy machinery: managers review
            log.debug("no stage policy for %s/%s", model.name, to_stage, exc_info=True)
        if perms.at_least(perms.default_level(), level):
            q = Q()
        else:
            scheme = perms.scheme_for(model)
            codenames = [scheme.codename(lv) for lv in scheme.levels if perms.at_least(lv, level)]
            UserPerm, GroupPerm = perms.grant_models(RegisteredModel)
            q = (
                Q(is_superuser=True)
                | Q(pk__in=UserPerm.objects.filter(content_object=model, permission__codename__in=codenames).values("user_id"))
                | Q(groups__in=GroupPerm.objects.filter(content_object=model, permission__codename__in=codenames).values("group_id"))
            )
            if model.owner_id:
                q |= Q(pk=model.owner_id)
        users = list(User.objects.filter(q, is_active=True).distinct())
    return [u for u in users if u.pk != exclude_user_id and u.email]


def _requester_id(event) -> int | None:
    p = event.payload or {}
    for key in ("requester_id", "requested_by_id", "creator_id", "user_id"):
        if isinstance(p.get(key), int):
            return p[key]
    request_id = p.get("request_id")
    if request_id:
        try:
            from approvals.models import TransitionRequest

            return TransitionRequest.objects.filter(pk=request_id).values_list("requester_id", flat=True).first()
        except Exception:
            return None
    return None


def _recipients(event, model_id: int | None, watchers: list[int]) -> dict[int, str]:
    """{user id: reason} for one event: reviewers of a new request, the requester of a decision,
    and the model's watchers, never the actor."""
    lines: dict[int, str] = {}
    action = catalog._request_type(event.type)
    p = event.payload or {}
    if action == "created":
        for user in eligible_reviewers(model_id=model_id, to_stage=p.get("to_stage") or p.get("stage"), exclude_user_id=event.actor_id):
            lines[user.pk] = Notification.REVIEW
    elif action in ("approved", "rejected", "cancelled"):
        requester = _requester_id(event)
        if requester and requester != event.actor_id:
            lines[requester] = Notification.DECISION
    for user_id in watchers:
        if user_id != event.actor_id:
            lines.setdefault(user_id, Notification.WATCH)
    return lines


def notify(*, events: list[Event], model_ids: dict[int, int | None]) -> int:
    """Queue digest lines for a batch of events (`model_ids`: event id -> model id). The watchers of
    all the batch's models come in one query; each recipient's digest is enqueued once per batch.
    Returns how many lines were queued."""
    watchers: dict[int, list[int]] = {}
    wanted = {model_id for model_id in model_ids.values() if model_id}
    if wanted:
        for model_id, user_id in Watch.objects.filter(model_id__in=wanted).values_list("model_id", "user_id"):
            watchers.setdefault(model_id, []).append(user_id)
    rows, recipients = [], set()
    for event in events:
        model_id = model_ids.get(event.pk)
        lines = _recipients(event, model_id, watchers.get(model_id, []))
        if not lines:
            continue
        text = catalog.text_for(event)
        link = _model_link(event.model_name) if event.model_name and event.type != "registered_model.deleted" else ""
        rows += [Notification(user_id=uid, event=event, reason=reason, text=text, link=link) for uid, reason in lines.items()]
        recipients.update(lines)
    if not rows:
        return 0
    Notification.objects.bulk_create(rows, ignore_conflicts=True)
    batch = _setting("STAGEGATE_EMAIL_BATCH_SECONDS", 60)

    def enqueue():
        for user_id in sorted(recipients):
            _enqueue_digest(user_id, countdown=batch)

    transaction.on_commit(enqueue)  # at once outside a transaction
    return len(rows)


def _model_link(name: str) -> str:
    from django.urls import NoReverseMatch, reverse

    try:
        return reverse("registry:model_detail", args=[name])
    except NoReverseMatch:
        return ""


def notify_before_delete(event: Event) -> None:
    """In the deleting transaction: a model's watchers are gone after commit, so queue their lines now."""
    if event.type == "registered_model.deleted" and event.model_id:
        notify(events=[event], model_ids={event.pk: event.model_id})


def _enqueue_digest(user_id: int, countdown: float | None = None) -> None:
    from monitoring.tasks import send_digest

    try:
        if countdown:
            send_digest.apply_async((user_id,), countdown=countdown)
        else:
            send_digest.delay(user_id)
    except Exception:
        log.warning("could not enqueue the digest of user %s; the sweep will", user_id, exc_info=True)


def due_digest_users() -> list[int]:
    cutoff = timezone.now() - timedelta(seconds=_setting("STAGEGATE_EMAIL_BATCH_SECONDS", 60))
    return list(
        Notification.objects.filter(sent_at__isnull=True).values("user_id").annotate(oldest=Min("created_at"))
        .filter(oldest__lte=cutoff).values_list("user_id", flat=True)
    )


def send_digest(*, user_id: int) -> int:
    """Send one e-mail listing every pending line of this user, once the oldest has waited the batch
    window (so a burst of events becomes one mail, and a user gets at most one mail per window).
    Claims the lines with a conditional UPDATE; returns how many lines were mailed."""
    now = timezone.now()
    window = timedelta(seconds=_setting("STAGEGATE_EMAIL_BATCH_SECONDS", 60))
    pending = Notification.objects.filter(user_id=user_id, sent_at__isnull=True)
    oldest = pending.aggregate(oldest=Min("created_at"))["oldest"]
    if oldest is None or oldest > now - window:
        return 0
    last_sent = Notification.objects.filter(user_id=user_id, sent_at__isnull=False).order_by("-sent_at").values_list("sent_at", flat=True).first()
    if last_sent is not None and last_sent > now - window:
        return 0
    batch = uuid.uuid4()
    claimed = pending.filter(created_at__lte=now).update(sent_at=now, batch=batch)
    if not claimed:
        return 0
    user = get_user_model().objects.filter(pk=user_id).first()
    lines = list(Notification.objects.filter(batch=batch).order_by("created_at", "id"))
    if user is None or not user.email:
        return 0
    base = links.base_url()
    reasons = dict(Notification.REASONS)
    body = [f"Hello {user.get_username()},", "", f"{len(lines)} change(s) in the Stagegate model registry:", ""]
    for line in lines:
        body.append(f"- [{reasons.get(line.reason, line.reason)}] {line.text}")
        if line.link:
            body.append(f"  {base}{line.link}")
    body += ["", f"Manage what you watch: {base}/monitoring/watches/"]
    subject = f"[Stagegate] {lines[0].text}" if len(lines) == 1 else f"[Stagegate] {len(lines)} registry changes"
    try:
        EmailMessage(subject[:200], "\n".join(body), settings.DEFAULT_FROM_EMAIL, [user.email]).send()
    except Exception:
        # Hand the lines back for the next digest.
        Notification.objects.filter(batch=batch).update(sent_at=None, batch=None)
        raise
    return len(lines)


@transaction.atomic
def watch_model(*, user, name: str) -> Watch:
    """Follow every event of a model by e-mail (any reader may watch)."""
    model = registry_access.get_registered_model_for_user(user, name)
    watch, _ = Watch.objects.get_or_create(user=user, model=model)
    return watch


@transaction.atomic
def unwatch_model(*, user, name: str) -> None:
    model = registry_access.get_registered_model_for_user(user, name)
    Watch.objects.filter(user=user, model=model).delete()


def is_watching(*, user, model) -> bool:
    return Watch.objects.filter(user=user, model=model).exists()


# --------------------------------------------------------------------------- point in time


def _history_model(user, name: str) -> RegisteredModel:
    return registry_access.get_registered_model_for_user(user, name)


def stage_at(*, user, name: str, stage: str, timestamp: int) -> list[dict]:
    """Which versions of model `name` were in `stage` at `timestamp` (ms), from the audit history.

    For every version, its last stage transition at or before the time decides; versions deleted
    before the time are left out. Returns [{version, since, by}] ordered by version (desc)."""
    from registry.services import canonical_stage

    model = _history_model(user, name)
    stage = canonical_stage(stage)
    records = AuditRecord.objects.filter(
        model_id=model.pk, type__in=["model_version.stage_transitioned", "model_version.deleted", "model_version.created"],
        created__lte=timestamp,
    ).order_by("seq").values("type", "version", "to_stage", "created", "actor_name")
    state: dict[int, dict | None] = {}
    for r in records:
        if r["type"] == "model_version.stage_transitioned":
            state[r["version"]] = {"stage": r["to_stage"], "since": r["created"], "by": r["actor_name"]}
        elif r["type"] == "model_version.deleted":
            state[r["version"]] = None
        elif r["type"] == "model_version.created":
            state[r["version"]] = {"stage": "None", "since": r["created"], "by": r["actor_name"]}
    holders = [
        {"version": str(v), "since": s["since"], "by": s["by"]} for v, s in state.items() if s and s["stage"] == stage
    ]
    return sorted(holders, key=lambda h: -int(h["version"]))


def alias_at(*, user, name: str, alias: str, timestamp: int) -> dict | None:
    """Which version alias `alias` of model `name` pointed at at `timestamp` (ms), from the audit
    history: {version, since, by, previous_version} or None."""
    model = _history_model(user, name)
    last = (
        AuditRecord.objects.filter(model_id=model.pk, type__in=["alias.set", "alias.deleted"], alias=alias, created__lte=timestamp)
        .order_by("-seq").values("type", "version", "created", "actor_name", "payload").first()
    )
    if last is None or last["type"] == "alias.deleted":
        return None
    import json

    previous = json.loads(last["payload"] or "{}").get("previous_version")
    return {"version": str(last["version"]), "since": last["created"], "by": last["actor_name"],
            "previous_version": str(previous) if previous is not None else None}


def previous_holder(*, user, name: str, stage: str | None = None, alias: str | None = None) -> dict | None:
    """The holder before the current one: for an alias, the version it pointed at before its last
    move; for a stage, the version that most recently left it (other than the current holders)."""
    model = _history_model(user, name)
    if alias:
        current = alias_at(user=user, name=name, alias=alias, timestamp=now_ms())
        if current and current["previous_version"]:
            return {"version": current["previous_version"]}
        return None
    from registry.services import canonical_stage

    stage = canonical_stage(stage)
    holders = {h["version"] for h in stage_at(user=user, name=name, stage=stage, timestamp=now_ms())}
    left = AuditRecord.objects.filter(model_id=model.pk, type="model_version.stage_transitioned", from_stage=stage).order_by("-seq")
    live = set(str(v) for v in model.versions.values_list("version", flat=True))
    for r in left.values("version", "created"):
        v = str(r["version"])
        if v not in holders and v in live:
            return {"version": v, "left_at": r["created"]}
    return None


def request_rollback(*, user, name: str, stage: str | None = None, alias: str | None = None, comment: str = ""):
    """Ask (through approvals' request service and its policies) to move `stage` or `alias` back to the
    previous holder. For a stage, files a transition request for the previous version; for an alias,
    sets it back when the user may edit the model (aliases have no approval flow).
    Raises InvalidParameter when there is no previous holder."""
    if bool(stage) == bool(alias):
        raise InvalidParameter("Give exactly one of 'stage' or 'alias' to roll back.")
    target = previous_holder(user=user, name=name, stage=stage, alias=alias)
    if target is None:
        raise InvalidParameter(f"There is no previous holder of {'stage ' + stage if stage else 'alias ' + alias} to roll back to.")
    version = int(target["version"])
    note = comment or f"Rollback of {'stage ' + stage if stage else 'alias ' + alias} to version {version}"
    if alias:
        from registry.services import set_registered_model_alias

        set_registered_model_alias(name=name, alias=alias, version=version, user=user)
        return {"alias": alias, "version": str(version)}
    from registry.services import canonical_stage

    stage = canonical_stage(stage)
    try:
        from approvals import services as approvals_services

        request_fn = approvals_services.request_stage_transition
    except (ImportError, AttributeError):
        request_fn = None
    if request_fn is None:
        raise PermissionDenied("Rollback needs the approvals service (transition requests), which is not available.")
    result = request_fn(name=name, version=version, stage=stage, user=user, comment=note)
    return {"stage": stage, "version": str(version), "request": getattr(result, "pk", None)}


def parse_timestamp(value) -> int:
    """ms since the epoch, or an ISO-8601 date-time."""
    if value is None or value == "":
        raise InvalidParameter("Missing value for required parameter 'timestamp'. See the API docs for more information about request parameters.")
    if isinstance(value, int) or (isinstance(value, str) and value.lstrip("-").isdigit()):
        return check_int64(int(value), "timestamp")
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise InvalidParameter(f"Invalid value {value} for parameter 'timestamp': use milliseconds since the epoch or ISO-8601.") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.get_current_timezone())
    return int(parsed.timestamp() * 1000)

