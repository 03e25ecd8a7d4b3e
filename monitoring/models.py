"""Webhooks and their delivery log, e-mail notifications, watches and the tamper-evident audit chain.

One `Webhook` model serves both APIs (MLflow's `/webhooks` and Databricks' `/registry-webhooks`);
`flavor` decides the event vocabulary, the payload shape and the signature. One `WebhookDelivery`
row per (event, webhook) carries the stable delivery id; each HTTP try is a `DeliveryAttempt`.
"""

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from tracking.models import now_ms


class Webhook(models.Model):
    MLFLOW, DATABRICKS = "mlflow", "databricks"
    FLAVORS = [(MLFLOW, "MLflow"), (DATABRICKS, "Databricks")]
    ACTIVE, TEST_MODE, DISABLED = "ACTIVE", "TEST_MODE", "DISABLED"
    STATUSES = [(ACTIVE, "Active"), (TEST_MODE, "Test mode"), (DISABLED, "Disabled")]

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    flavor = models.CharField(max_length=16, choices=FLAVORS, default=MLFLOW)
    name = models.CharField(max_length=63, blank=True)
    description = models.TextField(blank=True)
    url = models.URLField(max_length=2000)
    # Event names in the flavor's own vocabulary ("model_version.created" / "MODEL_VERSION_CREATED").
    events = models.JSONField(default=list)
    # None: registry-wide. No FK constraint and no cascade, so a model's own webhooks still
    # receive its "deleted" event after the row is gone.
    model = models.ForeignKey(
        "registry.RegisteredModel", null=True, blank=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    model_name = models.CharField(max_length=256, blank=True)
    status = models.CharField(max_length=16, choices=STATUSES, default=ACTIVE)
    secret_encrypted = models.TextField(blank=True)
    authorization_encrypted = models.TextField(blank=True)
    enable_ssl_verification = models.BooleanField(default=True)
    creator = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    creation_timestamp = models.BigIntegerField(default=now_ms)
    last_updated_timestamp = models.BigIntegerField(default=now_ms)
    deleted_timestamp = models.BigIntegerField(null=True, blank=True)
    # Health: consecutive failed attempts; `failing_since` flags a webhook that keeps failing.
    consecutive_failures = models.IntegerField(default=0)
    failing_since = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-creation_timestamp", "id"]
        indexes = [models.Index(fields=["flavor", "deleted_timestamp", "-creation_timestamp"], name="webhook_list")]

    def __str__(self):
        return self.name or self.url

    @property
    def has_secret(self) -> bool:
        return bool(self.secret_encrypted)

    @property
    def is_failing(self) -> bool:
        return self.failing_since is not None


class WebhookDelivery(models.Model):
    PENDING, RETRYING, DELIVERED, FAILED, CANCELLED = "PENDING", "RETRYING", "DELIVERED", "FAILED", "CANCELLED"
    STATUSES = [(s, s.title()) for s in (PENDING, RETRYING, DELIVERED, FAILED, CANCELLED)]
    OPEN = (PENDING, RETRYING)

    # The delivery id receivers de-duplicate on: the same on every retry and redelivery.
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    event = models.ForeignKey("registry.Event", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    event_name = models.CharField(max_length=64)
    model_name = models.CharField(max_length=256, blank=True)
    version = models.IntegerField(null=True, blank=True)
    # The exact bytes sent on every attempt (the signature covers them).
    body = models.TextField()
    is_test = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=STATUSES, default=PENDING)
    attempts = models.IntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    # A worker's lease while it posts; another worker takes over only once it ran out.
    lease_until = models.DateTimeField(null=True, blank=True)
    give_up_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.IntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        verbose_name_plural = "webhook deliveries"
        ordering = ["-created_at", "id"]
        constraints = [models.UniqueConstraint(fields=["event", "webhook"], name="uniq_delivery_event_webhook")]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="delivery_due"),
            models.Index(fields=["webhook", "-created_at"], name="delivery_webhook"),
        ]

    def __str__(self):
        return f"{self.event_name} -> {self.webhook_id} ({self.status})"


class DeliveryAttempt(models.Model):
    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.IntegerField()
    started_at = models.DateTimeField(default=timezone.now)
    # Null finished_at: the worker died mid-request (the attempt is kept, shown as interrupted).
    finished_at = models.DateTimeField(null=True, blank=True)
    status_code = models.IntegerField(null=True, blank=True)
    latency_ms = models.IntegerField(null=True, blank=True)
    response_excerpt = models.TextField(blank=True)
    error = models.TextField(blank=True)
    worker = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["delivery_id", "number", "id"]


class Watch(models.Model):
    """A user following every event of one model by e-mail."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="model_watches")
    model = models.ForeignKey("registry.RegisteredModel", on_delete=models.CASCADE, related_name="watches")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "watches"
        constraints = [models.UniqueConstraint(fields=["user", "model"], name="uniq_watch")]


class Notification(models.Model):
    """One line of a future e-mail digest: (recipient, event, reason)."""

    REVIEW, DECISION, WATCH = "review", "decision", "watch"
    REASONS = [(REVIEW, "Review requested"), (DECISION, "Decision on your request"), (WATCH, "Watched model")]

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications")
    event = models.ForeignKey("registry.Event", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    reason = models.CharField(max_length=16, choices=REASONS)
    text = models.TextField()
    link = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)
    batch = models.UUIDField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [models.UniqueConstraint(fields=["user", "event"], name="uniq_notification_user_event")]
        indexes = [models.Index(fields=["sent_at", "user", "created_at"], name="notification_pending")]


class AppendOnlyQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise TypeError("audit records are append-only")

    def delete(self):
        raise TypeError("audit records are append-only")


class AuditRecord(models.Model):
    """One link of the hash chain. Append-only: written once by `monitoring.audit.append`.

    `hash` = sha256(canonical JSON of every other column, `prev_hash` included).
    """

    seq = models.BigIntegerField(db_index=True)
    event_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    type = models.CharField(max_length=64)
    model_id = models.BigIntegerField(null=True, blank=True)
    model_name = models.CharField(max_length=256, blank=True)
    version = models.IntegerField(null=True, blank=True)
    actor_id = models.BigIntegerField(null=True, blank=True)
    actor_name = models.CharField(max_length=150, blank=True)
    created = models.BigIntegerField()
    # Denormalised for the point-in-time questions (they are in the hash like every column).
    alias = models.CharField(max_length=256, blank=True)
    from_stage = models.CharField(max_length=64, blank=True)
    to_stage = models.CharField(max_length=64, blank=True)
    # Canonical JSON text, stored verbatim so the bytes hashed are the bytes kept.
    payload = models.TextField(default="{}")
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        ordering = ["seq", "id"]
        indexes = [
            models.Index(fields=["model_id", "type", "created"], name="audit_model_type_time"),
            models.Index(fields=["created"], name="audit_created"),
        ]

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise TypeError("audit records are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise TypeError("audit records are append-only")


class AuditHead(models.Model):
    """The single row every append locks: the chain's last seq and hash. Appends are serialised
    on it, so the chain is in commit order and has no forks."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    seq = models.BigIntegerField(default=0)
    hash = models.CharField(max_length=64, default="0" * 64)
    # The hash before the last append (the last record's prev_hash): PostgreSQL's one-statement
    # append reads it back from the UPDATE that moved the head (see monitoring.audit).
    prev_hash = models.CharField(max_length=64, default="0" * 64)
