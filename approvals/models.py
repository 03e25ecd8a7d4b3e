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
    # A model policy is raised to the global one field by field when evaluated (approvals.policy), unless
    # a superuser set it below the global policy on purpose: then it stands as set.
    exempt_from_global = models.BooleanField(
        default=False, help_text="Set by a superuser below the global policy of the stage: used as is, not raised to it.",
    )
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


# --------------------------------------------------------------------------- evidence the server produced itself


class EvaluationDataset(models.Model):
    """A reference dataset attached to a registered model, evaluated against each of its versions.

    The file lives in the artifact store under `storage_path`; `digest` (sha256 of its bytes) names
    it in every evaluation. Immutable once an evaluation used it (approvals.evaluation)."""

    REGRESSION, CLASSIFICATION = "regression", "classification"
    TASK_CHOICES = [(REGRESSION, REGRESSION), (CLASSIFICATION, CLASSIFICATION)]

    model = models.ForeignKey("registry.RegisteredModel", on_delete=models.CASCADE, related_name="evaluation_datasets")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    target = models.CharField(max_length=250)
    task = models.CharField(max_length=16, choices=TASK_CHOICES)
    metrics = models.JSONField(default=list)
    format = models.CharField(max_length=8)  # csv | parquet
    digest = models.CharField(max_length=64)
    storage_path = models.CharField(max_length=500)
    size_bytes = models.BigIntegerField(default=0)
    row_count = models.IntegerField(default=0)
    columns = models.JSONField(default=list)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    creation_timestamp = models.BigIntegerField(default=now_ms)

    class Meta:
        ordering = ["model_id", "name"]
        constraints = [models.UniqueConstraint(fields=["model", "name"], name="uniq_evaluation_dataset_name")]

    def __str__(self):
        return f"{self.name} ({self.digest[:12]})"


class Evaluation(models.Model):
    """One run of one version on one dataset, in a sandboxed subprocess (approvals.evaluation)."""

    RUNNING, SUCCEEDED, FAILED = "RUNNING", "SUCCEEDED", "FAILED"
    STATUS_CHOICES = [(s, s) for s in (RUNNING, SUCCEEDED, FAILED)]

    version = models.ForeignKey("registry.ModelVersion", on_delete=models.CASCADE, related_name="evaluations")
    dataset = models.ForeignKey(EvaluationDataset, on_delete=models.CASCADE, related_name="evaluations")
    dataset_digest = models.CharField(max_length=64)
    status = models.CharField(max_length=16, choices=STATUS_CHOICES, default=RUNNING)
    trigger = models.CharField(max_length=16, default="manual")  # ready | manual
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    metrics = models.JSONField(default=dict, blank=True)
    rows = models.IntegerField(null=True, blank=True)
    load_seconds = models.FloatField(null=True, blank=True)
    latency_ms_per_row = models.FloatField(null=True, blank=True)
    environment = models.JSONField(default=dict, blank=True)  # python / mlflow / scikit-learn versions
    model_checksum = models.CharField(max_length=128, blank=True)
    isolation = models.JSONField(default=list, blank=True)  # how the child was confined, and what was not
    message = models.TextField(blank=True)
    logs = models.TextField(blank=True)
    creation_timestamp = models.BigIntegerField(default=now_ms)
    finished_timestamp = models.BigIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-creation_timestamp", "-id"]
        indexes = [models.Index(fields=["version", "dataset", "-id"], name="evaluation_version_dataset")]

    def __str__(self):
        return f"evaluation #{self.pk} ({self.status})"


class SigningIdentity(models.Model):
    """A signer admins trust for OpenSSF model signatures: a public key, a CA certificate chain, or a
    keyless Sigstore identity (verified offline only with a local trust root)."""

    KEY, CERTIFICATE, SIGSTORE = "key", "certificate", "sigstore"
    KIND_CHOICES = [(KEY, "public key"), (CERTIFICATE, "certificate chain (CA)"), (SIGSTORE, "Sigstore identity")]

    name = models.CharField(max_length=200, unique=True, help_text="What signed_by checks list, for a key.")
    kind = models.CharField(max_length=16, choices=KIND_CHOICES, default=KEY)
    pem = models.TextField(blank=True, help_text="The PEM public key, or the PEM CA certificate chain.")
    identity = models.CharField(max_length=300, blank=True, help_text="Sigstore: the signer's e-mail or URI.")
    oidc_issuer = models.CharField(max_length=300, blank=True, help_text="Sigstore: the OIDC issuer.")
    enabled = models.BooleanField(default=True)
    creation_timestamp = models.BigIntegerField(default=now_ms)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "signing identities"

    def __str__(self):
        return f"{self.name} ({self.kind})"


class VersionSignature(models.Model):
    """The result of verifying a version's OpenSSF model signature (approvals.signing)."""

    UNSIGNED, VERIFIED, INVALID, UNVERIFIABLE = "UNSIGNED", "VERIFIED", "INVALID", "UNVERIFIABLE"
    STATUS_CHOICES = [(s, s) for s in (UNSIGNED, VERIFIED, INVALID, UNVERIFIABLE)]

    version = models.OneToOneField("registry.ModelVersion", on_delete=models.CASCADE, related_name="model_signing")
    status = models.CharField(max_length=16, choices=STATUS_CHOICES)
    signer = models.CharField(max_length=300, blank=True)  # the trusted key's name, or the certificate's identity
    method = models.CharField(max_length=16, blank=True)
    detail = models.TextField(blank=True)
    checksum = models.CharField(max_length=128, blank=True)  # the version's checksum when verified
    verified_timestamp = models.BigIntegerField(default=now_ms)
