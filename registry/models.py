"""Registered models, their versions, tags, aliases, stages, the transition history and the event outbox.

Timestamps are milliseconds since the epoch (as on the MLflow wire). Each
object serialises itself once (`to_mlflow`) for every endpoint that returns it;
callers prefetch `tags` and `aliases` so a list costs a constant number of queries.
"""

from django.conf import settings
from django.db import models

from tracking.models import now_ms

STAGE_NONE, STAGE_STAGING, STAGE_PRODUCTION, STAGE_ARCHIVED = "None", "Staging", "Production", "Archived"
BUILT_IN_STAGES = [STAGE_NONE, STAGE_STAGING, STAGE_PRODUCTION, STAGE_ARCHIVED]


class Stage(models.Model):
    """A lifecycle stage a version can be in. The four MLflow stages are built in; admins may add more."""

    name = models.CharField(max_length=64, unique=True)
    order = models.IntegerField(default=100)
    description = models.TextField(blank=True)
    built_in = models.BooleanField(default=False, editable=False)

    class Meta:
        ordering = ["order", "id"]

    def __str__(self):
        return self.name


class _Fields:
    """A model instance read as a mapping for `mlflow_json` (a deferred column loads, as an attribute does)."""

    __slots__ = ("obj",)

    def __init__(self, obj):
        self.obj = obj

    def __getitem__(self, name):
        return getattr(self.obj, name)


class RegisteredModelQuerySet(models.QuerySet):
    pass


class RegisteredModel(models.Model):
    name = models.CharField(max_length=256, unique=True)
    description = models.TextField(null=True, blank=True)
    creation_timestamp = models.BigIntegerField(default=now_ms)
    last_updated_timestamp = models.BigIntegerField(default=now_ms)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="registered_models"
    )
    # The highest version number ever handed out: numbers are never reused after a delete.
    last_version = models.IntegerField(default=0)

    objects = RegisteredModelQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        indexes = [models.Index(fields=["-last_updated_timestamp", "name"], name="rm_last_updated")]
        permissions = [
            ("read_registeredmodel", "CAN_READ"),
            ("edit_registeredmodel", "CAN_EDIT"),
            ("manage_registeredmodel", "CAN_MANAGE"),
        ]

    def __str__(self):
        return self.name

    def to_mlflow(self, *, latest_versions=()) -> dict:
        """The RM object; `tags` and `aliases` (with `aliases__version`) should be prefetched."""
        return self.mlflow_json(
            _Fields(self),
            tags=[(t.key, t.value) for t in self.tags.all()],
            aliases=[(a.alias, a.version.version) for a in self.aliases.all()],
            latest_versions=[mv.to_mlflow(model_name=self.name) for mv in latest_versions],
        )

    @staticmethod
    def mlflow_json(row, *, tags, aliases, latest_versions) -> dict:
        """The RM object from a row's columns (a mapping), its (key, value) tags, (alias, version number)
        aliases and latest versions' JSON: the one definition, for instances and plain-SQL rows
        (registry.reads) alike."""
        data = {
            "name": row["name"],
            "creation_timestamp": row["creation_timestamp"],
            "last_updated_timestamp": row["last_updated_timestamp"],
        }
        if row["description"] is not None:
            data["description"] = row["description"]
        if latest_versions:
            data["latest_versions"] = latest_versions
        if tags:
            data["tags"] = [{"key": key, "value": value} for key, value in tags]
        if aliases:
            data["aliases"] = [{"alias": alias, "version": str(number)} for alias, number in sorted(aliases)]
        return data


class RegisteredModelTag(models.Model):
    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="tags")
    key = models.CharField(max_length=250)
    value = models.TextField(blank=True)

    class Meta:
        ordering = ["key"]
        constraints = [models.UniqueConstraint(fields=["model", "key"], name="uniq_registered_model_tag")]


class ModelVersion(models.Model):
    PENDING, READY, FAILED = "PENDING_REGISTRATION", "READY", "FAILED_REGISTRATION"
    STATUS_CHOICES = [(PENDING, PENDING), (READY, READY), (FAILED, FAILED)]

    # Not called `model`: `model_id` is MLflow's logged-model id field below.
    registered_model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="versions")
    version = models.IntegerField()
    current_stage = models.CharField(max_length=64, default=STAGE_NONE)
    status = models.CharField(max_length=32, choices=STATUS_CHOICES, default=PENDING)
    status_message = models.TextField(blank=True)
    source = models.TextField()
    run_id = models.CharField(max_length=32, null=True, blank=True, db_index=True)
    # The run, when it is known to this server (a version may name a run of another server).
    source_run = models.ForeignKey(
        "tracking.Run", null=True, blank=True, on_delete=models.SET_NULL, related_name="model_versions", db_constraint=False
    )
    model_id = models.CharField(max_length=34, null=True, blank=True, db_index=True)
    run_link = models.TextField(blank=True, default="")
    description = models.TextField(blank=True, default="")
    user_id = models.CharField(max_length=256, blank=True, default="")
    creator = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="model_versions"
    )
    creation_timestamp = models.BigIntegerField(default=now_ms)
    last_updated_timestamp = models.BigIntegerField(default=now_ms)
    # The version's own copy of the model files, relative to the artifact store. Set once at
    # creation from the model's pk (never its name), so a rename never moves files.
    storage_path = models.CharField(max_length=500)
    size_bytes = models.BigIntegerField(null=True, blank=True)
    file_count = models.IntegerField(null=True, blank=True)
    checksum = models.CharField(max_length=128, blank=True)
    # While a registration run copies this version's files (PENDING only): epoch ms when its claim
    # lapses, so a second run or the sweep leaves it alone until then (registry.tasks.register_pending).
    registration_claimed_until = models.BigIntegerField(null=True, blank=True)
    flavors = models.JSONField(default=dict, blank=True)
    signature = models.JSONField(null=True, blank=True)
    # A source outside the server's artifact store (s3://, gs://, …): a reference, READY at creation,
    # never fetched by the server (registry.sources). The download URI is then the source itself.
    is_external = models.BooleanField(default=False)
    # What registration found at the source ("MLflow model: flavors …", "Not an MLflow model: …"):
    # evidence a policy check (`valid_mlflow_model`) can require.
    inspection = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["registered_model_id", "-version"]
        constraints = [models.UniqueConstraint(fields=["registered_model", "version"], name="uniq_model_version")]
        indexes = [
            models.Index(fields=["registered_model", "current_stage", "-version"], name="mv_model_stage_version"),
            models.Index(fields=["-last_updated_timestamp", "id"], name="mv_last_updated"),
            # model-versions/search name='x' in its default order, one page whatever the model's size.
            models.Index(fields=["registered_model", "-last_updated_timestamp", "-version", "id"], name="mv_model_last_updated"),
        ]

    def __str__(self):
        return f"{self.registered_model.name} v{self.version}"

    @property
    def is_ready(self) -> bool:
        return self.status == self.READY

    def download_uri(self) -> str:
        """Where the client downloads the files: the version's own copy once READY."""
        if self.status == self.READY and self.storage_path and not self.is_external:
            return "mlflow-artifacts:/" + self.storage_path.strip("/")
        return self.source

    def to_mlflow(self, *, model_name: str | None = None, include_aliases: bool = True) -> dict:
        """The MV object; `tags` and `aliases` should be prefetched (and `model` selected)."""
        return self.mlflow_json(
            _Fields(self),
            model_name=model_name if model_name is not None else self.registered_model.name,
            tags=[(t.key, t.value) for t in self.tags.all()],
            aliases=[a.alias for a in self.aliases.all()] if include_aliases else (),
        )

    @staticmethod
    def mlflow_json(row, *, model_name: str, tags, aliases) -> dict:
        """The MV object from a row's columns (a mapping), its (key, value) tags and alias names: the
        one definition, for instances and plain-SQL rows (registry.reads) alike."""
        data = {
            "name": model_name,
            "version": str(row["version"]),
            "creation_timestamp": row["creation_timestamp"],
            "last_updated_timestamp": row["last_updated_timestamp"],
            "current_stage": row["current_stage"],
            "description": row["description"] or "",
        }
        if row["user_id"]:
            data["user_id"] = row["user_id"]
        data["source"] = row["source"]
        if row["run_id"]:
            data["run_id"] = row["run_id"]
        data["status"] = row["status"]
        if row["status_message"]:
            data["status_message"] = row["status_message"]
        data["run_link"] = row["run_link"] or ""
        if tags:
            data["tags"] = [{"key": key, "value": value} for key, value in tags]
        if aliases:
            data["aliases"] = sorted(aliases)
        return data


class ModelVersionTag(models.Model):
    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="tags")
    key = models.CharField(max_length=250)
    value = models.TextField(blank=True)

    class Meta:
        ordering = ["key"]
        constraints = [models.UniqueConstraint(fields=["version", "key"], name="uniq_model_version_tag")]


class RegisteredModelAlias(models.Model):
    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="aliases")
    alias = models.CharField(max_length=256)
    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="aliases")

    class Meta:
        verbose_name_plural = "registered model aliases"
        ordering = ["alias"]
        constraints = [models.UniqueConstraint(fields=["model", "alias"], name="uniq_model_alias")]

    def __str__(self):
        return f"{self.alias} -> v{self.version.version}"


class StageTransition(models.Model):
    """One stage change of one version. `is_system` marks the auto-archive side effect."""

    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="transitions")
    from_stage = models.CharField(max_length=64)
    to_stage = models.CharField(max_length=64)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="stage_transitions"
    )
    timestamp = models.BigIntegerField(default=now_ms)
    comment = models.TextField(blank=True)
    is_system = models.BooleanField(default=False)
    # Set when the transition carried out an approved request (approvals app).
    request_id = models.BigIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-timestamp", "-id"]
        indexes = [models.Index(fields=["version", "-timestamp"], name="transition_version_time")]


class Event(models.Model):
    """The outbox: one row per registry change, written in the change's transaction and
    dispatched after commit by `registry.tasks.dispatch_events`."""

    type = models.CharField(max_length=64)
    model = models.ForeignKey(RegisteredModel, null=True, blank=True, on_delete=models.SET_NULL, related_name="events")
    model_name = models.CharField(max_length=256)
    version = models.IntegerField(null=True, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="registry_events"
    )
    created = models.BigIntegerField(default=now_ms)
    payload = models.JSONField(default=dict, blank=True)
    dispatched_at = models.DateTimeField(null=True, blank=True)
    # A worker's lease: another worker may take the event only once the lease ran out.
    claimed_until = models.DateTimeField(null=True, blank=True)
    attempts = models.IntegerField(default=0)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["dispatched_at", "id"], name="event_undispatched"),
            models.Index(fields=["model", "-id"], name="event_model"),
        ]

    def __str__(self):
        return f"{self.type} {self.model_name}" + (f" v{self.version}" if self.version else "")
