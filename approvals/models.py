"""Governance data: object grants, stage policies, transition requests with their reviews, comments
and the activity feed of a model version.

Timestamps are milliseconds since the epoch, as everywhere on the MLflow wire. The guardian
direct-FK grant tables live here so tracking and registry stay unaware of governance; guardian
finds them from the target model (see core.permissions).
"""

from django.conf import settings
from django.db import models
from guardian.models import GroupObjectPermissionBase, UserObjectPermissionBase

from core import permissions as perms
from tracking.models import now_ms

# --------------------------------------------------------------------------- grants (django-guardian, direct FKs)


class RegisteredModelUserPermission(UserObjectPermissionBase):
    content_object = models.ForeignKey("registry.RegisteredModel", on_delete=models.CASCADE, related_name="user_grants")

    class Meta(UserObjectPermissionBase.Meta):
        verbose_name = "registered model user permission"


class RegisteredModelGroupPermission(GroupObjectPermissionBase):
    content_object = models.ForeignKey("registry.RegisteredModel", on_delete=models.CASCADE, related_name="group_grants")

    class Meta(GroupObjectPermissionBase.Meta):
        verbose_name = "registered model group permission"


class ExperimentUserPermission(UserObjectPermissionBase):
    content_object = models.ForeignKey("tracking.Experiment", on_delete=models.CASCADE, related_name="user_grants")

    class Meta(UserObjectPermissionBase.Meta):
        verbose_name = "experiment user permission"


class ExperimentGroupPermission(GroupObjectPermissionBase):
    content_object = models.ForeignKey("tracking.Experiment", on_delete=models.CASCADE, related_name="group_grants")

    class Meta(GroupObjectPermissionBase.Meta):
        verbose_name = "experiment group permission"


# --------------------------------------------------------------------------- stage policies

APPROVER_LEVELS = [
    perms.CAN_EDIT,
    perms.CAN_MANAGE_STAGING_VERSIONS,
    perms.CAN_MANAGE_PRODUCTION_VERSIONS,
    perms.CAN_MANAGE,
]
LOW_STAGES = {"None", "Staging", "Archived"}


def default_approver_level(stage: str) -> str:
    """Databricks' rule: staging managers handle None/Staging/Archived; Production and custom stages need production managers."""
    return perms.CAN_MANAGE_STAGING_VERSIONS if stage in LOW_STAGES else perms.CAN_MANAGE_PRODUCTION_VERSIONS


def default_archive_on_approval(stage: str) -> bool:
    """Production holds one version: approving a move into it archives the previous holder unless a
    policy says otherwise. Other stages keep their versions side by side."""
    return stage == "Production"


class StagePolicy(models.Model):
    """What a change into `stage` needs: global when `model` is null, a per-model override otherwise.

    No row at all means the stage needs no approval (policies are opt-in).
    """

    model = models.ForeignKey(
        "registry.RegisteredModel", null=True, blank=True, on_delete=models.CASCADE, related_name="stage_policies",
        help_text="Leave empty for the global policy of the stage.",
    )
    stage = models.CharField(max_length=64)
    requires_approval = models.BooleanField(default=True)
    min_approvals = models.PositiveSmallIntegerField(default=1)
    # Empty: the default for the stage (default_approver_level).
    approver_level = models.CharField(
        max_length=40, blank=True, default="", choices=[(level, level) for level in APPROVER_LEVELS]
    )
    allow_self_approval = models.BooleanField(
        default=False, help_text="May the requester (or the version's author) approve their own request?"
    )
    # Empty: the default for the stage (default_archive_on_approval: on for Production only).
    archive_existing_on_approval = models.BooleanField(
        null=True, blank=True,
        help_text="Archive the other versions in the stage when an approved request moves a version into it "
                  "(empty: on for Production, off for other stages).",
    )
    checks = models.JSONField(default=list, blank=True, help_text='e.g. [{"type": "metric", "key": "rmse", "op": "<=", "value": 0.8}]')
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    creation_timestamp = models.BigIntegerField(default=now_ms)
    last_updated_timestamp = models.BigIntegerField(default=now_ms)

    class Meta:
        verbose_name_plural = "stage policies"
        ordering = ["model_id", "stage"]
        constraints = [
            models.UniqueConstraint(fields=["stage"], condition=models.Q(model__isnull=True), name="uniq_global_stage_policy"),
            models.UniqueConstraint(fields=["model", "stage"], condition=models.Q(model__isnull=False), name="uniq_model_stage_policy"),
        ]

    def __str__(self):
        scope = self.model.name if self.model_id else "global"
        return f"{self.stage} ({scope})"

    @property
    def effective_approver_level(self) -> str:
        return self.approver_level or default_approver_level(self.stage)

    @property
    def effective_archive_existing_on_approval(self) -> bool:
        if self.archive_existing_on_approval is None:
            return default_archive_on_approval(self.stage)
        return self.archive_existing_on_approval


# --------------------------------------------------------------------------- transition requests


class TransitionRequestQuerySet(models.QuerySet):
    def pending(self):
        return self.filter(status=TransitionRequest.PENDING)


class TransitionRequest(models.Model):
    PENDING, APPROVED, REJECTED, CANCELLED, SUPERSEDED = "PENDING", "APPROVED", "REJECTED", "CANCELLED", "SUPERSEDED"
    STATUS_CHOICES = [(s, s) for s in (PENDING, APPROVED, REJECTED, CANCELLED, SUPERSEDED)]

    # The model is denormalised from the version: it is the row every workflow step locks first.
    model = models.ForeignKey("registry.RegisteredModel", on_delete=models.CASCADE, related_name="transition_requests")
    version = models.ForeignKey("registry.ModelVersion", on_delete=models.CASCADE, related_name="transition_requests")
    from_stage = models.CharField(max_length=64)
    to_stage = models.CharField(max_length=64)
    requester = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="transition_requests"
    )
    requester_name = models.CharField(max_length=150, blank=True)
    comment = models.TextField(blank=True)
    status = models.CharField(max_length=16, choices=STATUS_CHOICES, default=PENDING)
    # Decided by the approver who completes the quorum.
    archive_existing_versions = models.BooleanField(default=False)
    # Check results: {"on_request": [...], "on_approval": [...]} (see approvals.checks.evaluate).
    evidence = models.JSONField(default=dict, blank=True)
    # The effective policy the final decision was taken under.
    policy = models.JSONField(default=dict, blank=True)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    decision_comment = models.TextField(blank=True)
    creation_timestamp = models.BigIntegerField(default=now_ms)
    last_updated_timestamp = models.BigIntegerField(default=now_ms)
    decided_timestamp = models.BigIntegerField(null=True, blank=True)

    objects = TransitionRequestQuerySet.as_manager()

    class Meta:
        ordering = ["-creation_timestamp", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["version", "to_stage"], condition=models.Q(status="PENDING"), name="one_pending_request_per_stage"
            ),
        ]
        indexes = [
            models.Index(fields=["status", "model"], name="request_status_model"),
            models.Index(fields=["version", "status"], name="request_version_status"),
        ]

    def __str__(self):
        return f"#{self.pk} {self.model.name} v{self.version.version} → {self.to_stage} ({self.status})"

    @property
    def is_pending(self) -> bool:
        return self.status == self.PENDING


class Review(models.Model):
    APPROVED, REJECTED = "APPROVED", "REJECTED"

    request = models.ForeignKey(TransitionRequest, on_delete=models.CASCADE, related_name="reviews")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    reviewer_name = models.CharField(max_length=150, blank=True)
    decision = models.CharField(max_length=16, choices=[(APPROVED, APPROVED), (REJECTED, REJECTED)])
    comment = models.TextField(blank=True)
    creation_timestamp = models.BigIntegerField(default=now_ms)

    class Meta:
        ordering = ["creation_timestamp", "id"]
        constraints = [models.UniqueConstraint(fields=["request", "reviewer"], name="one_review_per_reviewer")]


class Comment(models.Model):
    """A comment on a model version (by a user or by automation: test results, deployment errors)."""

    version = models.ForeignKey("registry.ModelVersion", on_delete=models.CASCADE, related_name="comments")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    user_name = models.CharField(max_length=150, blank=True)
    text = models.TextField()
    creation_timestamp = models.BigIntegerField(default=now_ms)
    last_updated_timestamp = models.BigIntegerField(default=now_ms)

    class Meta:
        ordering = ["creation_timestamp", "id"]


class Activity(models.Model):
    """One entry of a version's activity feed (Databricks' Activity). Stage changes themselves are
    registry.StageTransition rows, merged into the feed as APPLIED_TRANSITION / SYSTEM_TRANSITION."""

    REQUESTED_TRANSITION = "REQUESTED_TRANSITION"
    APPROVED_REQUEST = "APPROVED_REQUEST"
    REJECTED_REQUEST = "REJECTED_REQUEST"
    CANCELLED_REQUEST = "CANCELLED_REQUEST"
    SUPERSEDED_REQUEST = "SUPERSEDED_REQUEST"  # ours: Databricks has no supersession
    NEW_COMMENT = "NEW_COMMENT"
    APPLIED_TRANSITION = "APPLIED_TRANSITION"
    SYSTEM_TRANSITION = "SYSTEM_TRANSITION"
    TYPES = [
        REQUESTED_TRANSITION, APPROVED_REQUEST, REJECTED_REQUEST, CANCELLED_REQUEST, SUPERSEDED_REQUEST, NEW_COMMENT,
    ]

    version = models.ForeignKey("registry.ModelVersion", on_delete=models.CASCADE, related_name="activities")
    activity_type = models.CharField(max_length=32, choices=[(t, t) for t in TYPES])
    request = models.ForeignKey(TransitionRequest, null=True, blank=True, on_delete=models.CASCADE, related_name="activities")
    comment_obj = models.ForeignKey(Comment, null=True, blank=True, on_delete=models.SET_NULL, related_name="activities")
    from_stage = models.CharField(max_length=64, blank=True)
    to_stage = models.CharField(max_length=64, blank=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    user_name = models.CharField(max_length=150, blank=True)
    comment = models.TextField(blank=True)
    system_comment = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True)
    creation_timestamp = models.BigIntegerField(default=now_ms)
    last_updated_timestamp = models.BigIntegerField(default=now_ms)

    class Meta:
        verbose_name_plural = "activities"
        ordering = ["creation_timestamp", "id"]
        indexes = [models.Index(fields=["version", "creation_timestamp"], name="activity_version_time")]
