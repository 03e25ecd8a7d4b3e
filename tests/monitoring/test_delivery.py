"""The delivery engine against a real HTTP receiver on loopback: signatures byte for byte,
retries, backoff, Retry-After, giving up, health flags, redelivery, idempotent fan-out."""

import base64
import hashlib
import hmac
import json
from datetime import timedelta

import pytest
from django.utils import timezone

from monitoring import services
from monitoring.models import DeliveryAttempt, Webhook, WebhookDelivery
from registry import services as registry
from registry.models import Event
from registry.tasks import dispatch_events

pytestmark = pytest.mark.django_db


def standard_webhooks_verify(secret: str, headers: dict, body: bytes) -> bool:
    """An independent Standard Webhooks verifier (https://www.standardwebhooks.com/):
    signed content = "{msg_id}.{timestamp}.{payload}", HMAC-SHA256, base64, "v1," prefix,
    possibly several space-separated signatures."""
    msg_id = headers["X-Mlflow-Delivery-Id"] if "X-Mlflow-Delivery-Id" in headers else headers["X-MLflow-Delivery-Id"]
    ts = headers.get("X-Mlflow-Timestamp") or headers["X-MLflow-Timestamp"]
    to_sign = msg_id.encode() + b"." + ts.encode() + b"." + body
    expected = base64.b64encode(hmac.new(secret.encode(), to_sign, hashlib.sha256).digest()).decode()
    header = headers.get("X-Mlflow-Signature") or headers["X-MLflow-Signature"]
    for part in header.split(" "):
        version, _, sig = part.partition(",")
        if version == "v1" and hmac.compare_digest(sig, expected):
            return True
    return False


def databricks_verify(secret: str, headers: dict, body: bytes) -> bool:
    expected = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(headers["X-Databricks-Signature"], expected)


def _hook(admin, receiver, **kwargs):
    defaults = {"flavor": Webhook.MLFLOW, "name": "ci-hook", "url": receiver.url, "events": ["model_version.created"], "secret": "s3cr3t-ü"}
    defaults.update(kwargs)
    return services.create_webhook(user=admin, **defaults)


def header(req, name):
    for k, v in req["headers"].items():
        if k.lower() == name.lower():
            return v
    return None


def test_mlflow_signature_is_standard_webhooks_byte_for_byte(admin, owner, receiver, make_version):
    hook = _hook(admin, receiver)
    mv = make_version("churn")
    assert len(receiver.requests) == 1
    req = receiver.requests[0]
    assert standard_webhooks_verify("s3cr3t-ü", req["headers"], req["body"])
    assert not standard_webhooks_verify("wrong", req["headers"], req["body"])
    # One byte changed in the body breaks it.
    assert not standard_webhooks_verify("s3cr3t-ü", req["headers"], req["body"].replace(b"churn", b"churm"))
    envelope = json.loads(req["body"])
    assert envelope["entity"] == "model_version" and envelope["action"] == "created"
    assert envelope["data"]["name"] == "churn" and envelope["data"]["version"] == str(mv.version)
    assert envelope["data"]["source"] == mv.source
    assert envelope["timestamp"].endswith("+00:00")
    delivery = WebhookDelivery.objects.get(webhook=hook)
    assert header(req, "X-MLflow-Delivery-Id") == str(delivery.pk)
    assert header(req, "Content-Type") == "application/json"
    assert int(header(req, "X-MLflow-Timestamp")) > 1_700_000_000
    assert req["body"] == delivery.body.encode()
    assert delivery.status == WebhookDelivery.DELIVERED and delivery.attempts == 1


def test_databricks_signature_is_hex_hmac_of_body(admin, owner, receiver, make_version):
    make_version("fraud")
    services.create_webhook(
        user=owner, flavor=Webhook.DATABRICKS, url=receiver.url, model_name="fraud", secret="topsecret",
        events=["MODEL_VERSION_TRANSITIONED_STAGE", "MODEL_VERSION_TRANSITIONED_TO_PRODUCTION"], authorization="Bearer abc",
    )
    registry.transition_model_version_stage(name="fraud", version=1, stage="Production", user=owner)
    assert len(receiver.requests) == 1, "one delivery per (event, webhook), even when two subscribed names match"
    req = receiver.requests[0]
    assert databricks_verify("topsecret", req["headers"], req["body"])
    assert not databricks_verify("topsecre", req["headers"], req["body"])
    assert header(req, "Authorization") == "Bearer abc"
    assert header(req, "X-MLflow-Signature") is None
    payload = json.loads(req["body"])
    assert payload["event"] == "MODEL_VERSION_TRANSITIONED_STAGE"
    assert payload["model_name"] == "fraud" and payload["version"] == "1"
    assert payload["from_stage"] == "None" and payload["to_stage"] == "Production"
    assert payload["text"] == "Registered model 'fraud' version 1 transitioned from None to Production by owner."
    assert isinstance(payload["event_timestamp"], int)
    assert payload["webhook_id"] == str(WebhookDelivery.objects.get().webhook_id)


def test_mlflow_payloads_carry_tags_and_description(admin, owner, receiver, make_version):
    _hook(admin, receiver, events=["registered_model.created", "model_version.created"])
    registry.create_registered_model(name="tagged", user=owner, description="about", tags=[{"key": "team", "value": "risk"}])
    make_version("tagged", tags=[{"key": "validated", "value": "yes"}], description="first")
    by_entity = {b["entity"]: b["data"] for b in receiver.bodies()}
    assert by_entity["registered_model"] == {"name": "tagged", "tags": {"team": "risk"}, "description": "about"}
    mv = by_entity["model_version"]
    assert mv["tags"] == {"validated": "yes"} and mv["description"] == "first" and mv["version"] == "1"


def test_unsigned_without_secret(admin, receiver, make_version):
    _hook(admin, receiver, secret=None)
    make_version("m")
    assert header(receiver.requests[0], "X-MLflow-Signature") is None
    assert header(receiver.requests[0], "X-MLflow-Delivery-Id")


def test_500_three_times_then_200_is_delivered_once_with_four_attempts(admin, receiver, make_version, settings):
    settings.STAGEGATE_WEBHOOK_BACKOFF_SECONDS = 0  # eager mode: each retry runs at once
    receiver.respond((500, {}, b"boom"), (500, {}, b"boom"), (503, {}, b"later"), (200, {}, b"thanks"))
    hook = _hook(admin, receiver)
    make_version("m")
    delivery = WebhookDelivery.objects.get(webhook=hook)
    assert delivery.status == WebhookDelivery.DELIVERED
    assert delivery.attempts == 4
    attempts = list(delivery.attempt_log.order_by("number"))
    assert [a.status_code for a in attempts] == [500, 500, 503, 200]
    assert [a.response_excerpt for a in attempts] == ["boom", "boom", "later", "thanks"]
    assert all(a.finished_at and a.latency_ms is not None for a in attempts)
    assert attempts[0].error == "HTTP 500" and attempts[3].error == ""
    ids = {header(r, "X-MLflow-Delivery-Id") for r in receiver.requests}
    assert ids == {str(delivery.pk)}, "the same delivery id on every retry"
    assert len(receiver.requests) == 4
    assert len({r["body"] for r in receiver.requests}) == 1, "byte-identical body on every retry"
    # Each retry re-signs with its own timestamp, and every signature verifies.
    assert all(standard_webhooks_verify("s3cr3t-ü", r["headers"], r["body"]) for r in receiver.requests)
    hook.refresh_from_db()
    assert hook.consecutive_failures == 0 and hook.last_success_at is not None


def test_retry_is_scheduled_with_backoff_and_jitter(admin, receiver, make_version, settings):
    settings.STAGEGATE_WEBHOOK_BACKOFF_SECONDS = 10
    receiver.respond(502)
    hook = _hook(admin, receiver)
    before = timezone.now()
    make_version("m")
    delivery = WebhookDelivery.objects.get(webhook=hook)
    assert delivery.status == WebhookDelivery.RETRYING and delivery.attempts == 1
    wait = (delivery.next_attempt_at - before).total_seconds()
    assert 5 - 1 <= wait <= 10 + 1
    # Not due: a duplicate message or a sweep does nothing.
    assert services.deliver(delivery_id=delivery.pk) is None
    assert services.sweep()["deliveries"] == 0
    assert len(receiver.requests) == 1
    # The backoff doubles per attempt and is capped.
    assert 40 <= services.backoff_seconds(4) <= 80
    settings.STAGEGATE_WEBHOOK_BACKOFF_MAX_SECONDS = 30
    assert services.backoff_seconds(10) <= 30


def test_429_honours_retry_after(admin, receiver, make_version):
    receiver.respond((429, {"Retry-After": "120"}, b"slow down"))
    hook = _hook(admin, receiver)
    before = timezone.now()
    make_version("m")
    delivery = WebhookDelivery.objects.get(webhook=hook)
    assert delivery.status == WebhookDelivery.RETRYING
    assert 119 <= (delivery.next_attempt_at - before).total_seconds() <= 122


def test_408_and_network_errors_are_retried_but_400_is_not(admin, receiver, make_version):
    receiver.respond(408)
    hook = _hook(admin, receiver)
    make_version("a")
    assert WebhookDelivery.objects.get(webhook=hook).status == WebhookDelivery.RETRYING

    receiver.respond((400, {}, b"bad payload"))
    make_version("b")
    failed = WebhookDelivery.objects.get(webhook=hook, model_name="b")
    assert failed.status == WebhookDelivery.FAILED and failed.attempts == 1
    assert failed.attempt_log.get().response_excerpt == "bad payload"

    # Nothing listens on this port: a connection error, retried.
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    services.update_webhook(user=hook.creator, webhook_id=hook.pk, flavor=Webhook.MLFLOW, url=f"http://127.0.0.1:{port}/x")
    make_version("c")
    down = WebhookDelivery.objects.get(webhook=hook, model_name="c")
    assert down.status == WebhookDelivery.RETRYING
    attempt = down.attempt_log.get()
    assert attempt.status_code is None and "ConnectionError" in attempt.error


def test_response_excerpt_is_the_first_kilobyte(admin, receiver, make_version):
    receiver.respond((500, {}, b"x" * 5000))
    hook = _hook(admin, receiver)
    make_version("m")
    assert len(DeliveryAttempt.objects.get(delivery__webhook=hook).response_excerpt) == 1024


def test_gives_up_after_the_retry_period(admin, receiver, make_version, settings):
    settings.STAGEGATE_WEBHOOK_RETRY_HOURS = 0
    receiver.respond(500)
    hook = _hook(admin, receiver)
    make_version("m")
    delivery = WebhookDelivery.objects.get(webhook=hook)
    assert delivery.status == WebhookDelivery.FAILED and delivery.attempts == 1


def test_sweep_retries_due_deliveries_and_health_flag(admin, receiver, make_version, settings):
    settings.STAGEGATE_WEBHOOK_FAILING_AFTER = 3
    receiver.respond(500)
    hook = _hook(admin, receiver)
    make_version("m")
    delivery = WebhookDelivery.objects.get(webhook=hook)
    for _ in range(2):
        WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))
        assert services.sweep()["deliveries"] == 1
    delivery.refresh_from_db()
    hook.refresh_from_db()
    assert delivery.attempts == 3 and delivery.status == WebhookDelivery.RETRYING
    assert hook.consecutive_failures == 3 and hook.is_failing, "flagged, not dropped"
    assert hook.status == Webhook.ACTIVE
    receiver.respond(200)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    services.sweep()
    hook.refresh_from_db()
    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.DELIVERED and delivery.attempts == 4
    assert not hook.is_failing and hook.consecutive_failures == 0


def test_sweep_takes_over_an_expired_lease(admin, receiver, make_version):
    receiver.respond(500)
    hook = _hook(admin, receiver)
    make_version("m")
    delivery = WebhookDelivery.objects.get(webhook=hook)
    # A worker claimed it and died: the lease is live, so nobody else may take it ...
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        next_attempt_at=timezone.now() - timedelta(seconds=1), lease_until=timezone.now() + timedelta(minutes=1)
    )
    assert services.sweep()["deliveries"] == 0
    # ... until the lease runs out.
    receiver.respond(200)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(lease_until=timezone.now() - timedelta(seconds=1))
    assert services.sweep()["deliveries"] == 1
    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.DELIVERED
    assert {header(r, "X-MLflow-Delivery-Id") for r in receiver.requests} == {str(delivery.pk)}


def test_manual_redelivery_keeps_the_delivery_id(admin, receiver, make_version):
    hook = _hook(admin, receiver)
    make_version("m")
    delivery = WebhookDelivery.objects.get(webhook=hook)
    assert delivery.status == WebhookDelivery.DELIVERED
    services.redeliver(user=admin, delivery_id=delivery.pk)
    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.DELIVERED and delivery.attempts == 2
    assert [header(r, "X-MLflow-Delivery-Id") for r in receiver.requests] == [str(delivery.pk)] * 2
    assert receiver.requests[0]["body"] == receiver.requests[1]["body"]


def test_fan_out_is_idempotent(admin, receiver, make_version):
    hook = _hook(admin, receiver)
    make_version("m")
    event = Event.objects.get(type="model_version.created")
    # The dispatcher hands the same event over again (a crashed worker's claim ran out).
    assert services.fan_out([event]) == []
    Event.objects.filter(pk=event.pk).update(dispatched_at=None, claimed_until=None)
    dispatch_events()
    assert WebhookDelivery.objects.filter(webhook=hook).count() == 1
    assert len(receiver.requests) == 1


def test_scope_status_and_event_filters(admin, owner, receiver, make_version):
    make_version("a")
    make_version("b")
    per_model = services.create_webhook(user=owner, flavor=Webhook.DATABRICKS, url=receiver.url, model_name="a",
                                        events=["MODEL_VERSION_CREATED"])
    disabled = _hook(admin, receiver, name="off", status=Webhook.DISABLED)
    test_mode = services.create_webhook(user=admin, flavor=Webhook.DATABRICKS, url=receiver.url, status=Webhook.TEST_MODE,
                                        events=["MODEL_VERSION_CREATED"])
    other_event = _hook(admin, receiver, name="tags-only", events=["model_version_tag.set"])
    make_version("a")
    make_version("b")
    assert WebhookDelivery.objects.filter(webhook=per_model).count() == 1
    assert WebhookDelivery.objects.get(webhook=per_model).model_name == "a"
    assert not WebhookDelivery.objects.filter(webhook__in=[disabled, test_mode, other_event]).exists()
    # TEST_MODE fires only through "send test event".
    delivery = services.send_test_event(user=admin, webhook_id=test_mode.pk)
    assert delivery.is_test and delivery.status == WebhookDelivery.DELIVERED


def test_new_events_deletions_and_alias_moves(admin, owner, receiver, make_version):
    make_version("m")
    make_version("m")
    services.create_webhook(
        user=owner, flavor=Webhook.DATABRICKS, url=receiver.url, model_name="m",
        events=["MODEL_VERSION_ALIAS_SET", "MODEL_VERSION_DELETED", "REGISTERED_MODEL_DELETED"],
    )
    mlflow_hook = _hook(admin, receiver, events=["model_version_alias.created"])
    registry.set_registered_model_alias(name="m", alias="champion", version=1, user=owner)
    registry.set_registered_model_alias(name="m", alias="champion", version=2, user=owner)
    registry.delete_model_version(name="m", version=1, user=owner)
    registry.delete_registered_model(name="m", user=owner)
    by_event = {}
    for body in receiver.bodies():
        by_event.setdefault(body.get("event") or f"{body['entity']}.{body['action']}", []).append(body)
    moved = by_event["MODEL_VERSION_ALIAS_SET"][1]
    assert moved["alias"] == "champion" and moved["version"] == "2" and moved["previous_version"] == "1"
    assert "previously version 1" in moved["text"]
    mlflow_moved = by_event["model_version_alias.created"][1]["data"]
    assert mlflow_moved == {"name": "m", "alias": "champion", "version": "2", "previous_version": "1"}
    assert by_event["MODEL_VERSION_DELETED"][0]["version"] == "1"
    # The model's own webhook still hears about its deletion.
    assert by_event["REGISTERED_MODEL_DELETED"][0]["model_name"] == "m"
    assert WebhookDelivery.objects.filter(webhook=mlflow_hook).count() == 2


def test_request_decisions_are_published(admin, owner, reviewer, receiver, make_version):
    from approvals import services as approvals
    make_version("m")
    services.create_webhook(
        user=admin, flavor=Webhook.DATABRICKS, url=receiver.url,
        events=["TRANSITION_REQUEST_CREATED", "TRANSITION_REQUEST_TO_STAGING_CREATED", "TRANSITION_REQUEST_CANCELLED",
                "TRANSITION_REQUEST_REJECTED", "TRANSITION_REQUEST_APPROVED"],
    )
    approvals.request_stage_transition(name="m", version=1, stage="Staging", user=owner, comment="please")
    approvals.cancel_transition_request(name="m", version=1, stage="Staging", user=owner)
    events = [b["event"] for b in receiver.bodies()]
    assert events == ["TRANSITION_REQUEST_CREATED", "TRANSITION_REQUEST_CANCELLED"]
    created = receiver.bodies()[0]
    assert created["to_stage"] == "Staging" and created["comment"] == "please"


def test_private_targets_are_refused_unless_allowed(admin, settings):
    from core.errors import InvalidParameter

    settings.STAGEGATE_WEBHOOK_ALLOWED_HOSTS = []
    for url in ["http://127.0.0.1:9/x", "http://10.1.2.3/x", "http://169.254.169.254/latest", "http://[::1]/x", "http://localhost/x"]:
        with pytest.raises(InvalidParameter, match="private, loopback or link-local|does not resolve"):
            services.create_webhook(user=admin, flavor=Webhook.MLFLOW, name="x", url=url, events=["model_version.created"])
    with pytest.raises(InvalidParameter, match="scheme"):
        services.create_webhook(user=admin, flavor=Webhook.MLFLOW, name="x", url="ftp://example.com/", events=["model_version.created"])
    settings.STAGEGATE_WEBHOOK_ALLOWED_HOSTS = ["10.0.0.0/8", "localhost"]
    services.create_webhook(user=admin, flavor=Webhook.MLFLOW, name="x", url="http://10.1.2.3/x", events=["model_version.created"])
    services.create_webhook(user=admin, flavor=Webhook.MLFLOW, name="y", url="http://localhost:8080/x", events=["model_version.created"])


def test_a_target_that_became_private_is_not_contacted(admin, receiver, make_version, settings):
    hook = _hook(admin, receiver)
    settings.STAGEGATE_WEBHOOK_ALLOWED_HOSTS = []
    make_version("m")
    delivery = WebhookDelivery.objects.get(webhook=hook)
    assert receiver.requests == []
    assert "loopback" in delivery.attempt_log.get().error


def test_secret_is_encrypted_at_rest(admin, receiver):
    hook = _hook(admin, receiver, secret="very-secret-value")
    raw = Webhook.objects.filter(pk=hook.pk).values_list("secret_encrypted", flat=True).get()
    assert raw and "very-secret-value" not in raw
    from monitoring import security

    assert security.decrypt(raw) == "very-secret-value"


def test_a_webhook_switched_off_after_the_event_does_not_send(admin, receiver, make_version, settings):
    receiver.respond(500)
    hook = _hook(admin, receiver)
    make_version("m")
    delivery = WebhookDelivery.objects.get(webhook=hook)
    services.update_webhook(user=admin, webhook_id=hook.pk, flavor=Webhook.MLFLOW, status=Webhook.DISABLED)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    services.sweep()
    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.CANCELLED and "disabled" in delivery.last_error
    assert len(receiver.requests) == 1


def test_an_undecryptable_secret_fails_instead_of_sending_unsigned(admin, receiver, make_version, settings):
    hook = _hook(admin, receiver)
    settings.STAGEGATE_WEBHOOK_SECRET_KEY = "a different key"
    make_version("m")
    delivery = WebhookDelivery.objects.get(webhook=hook)
    assert delivery.status == WebhookDelivery.FAILED and "cannot be decrypted" in delivery.last_error
    assert receiver.requests == []
