"""Experiments, runs, their params/metrics/tags/inputs/outputs, and logged models.

Timestamps are milliseconds since the epoch (BigInteger), as on the MLflow wire.
Ids are MLflow's: experiments are integers (shown as strings), runs are 32 hex
characters, logged models `m-` + 32 hex characters.
"""

import time
import uuid

from django.conf import settings
from django.db import models

ACTIVE = "active"
DELETED = "deleted"
LIFECYCLE_CHOICES = [(ACTIVE, ACTIVE), (DELETED, DELETED)]


def now_ms() -> int:
    return int(time.time() * 1000)


def new_run_id() -> str:
    return uuid.uuid4().hex


def new_logged_model_id() -> str:
    return "m-" + uuid.uuid4().hex


class ExperimentQuerySet(models.QuerySet):
    def active(self):
        return self.filter(lifecycle_stage=ACTIVE)


class Experiment(models.Model):
    name = models.CharField(max_length=500, unique=True)
    artifact_location = models.CharField(max_length=1000, blank=True)
    lifecycle_stage = models.CharField(max_length=32, choices=LIFECYCLE_CHOICES, default=ACTIVE)
    creation_time = models.BigIntegerField(default=now_ms)
    last_update_time = models.BigIntegerField(default=now_ms)
    deleted_time = models.BigIntegerField(null=True, blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="experiments"
    )

    objects = ExperimentQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        permissions = [
            ("read_experiment", "CAN_READ"),
            ("edit_experiment", "CAN_EDIT"),
            ("manage_experiment", "CAN_MANAGE"),
        ]

    def __str__(self):
        return self.name

    @property
    def experiment_id(self) -> str:
        return str(self.pk)


class ExperimentTag(models.Model):
    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="tags")
    key = models.CharField(max_length=250)
    value = models.TextField(blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["experiment", "key"], name="uniq_experiment_tag")]
        ordering = ["key"]


class RunQuerySet(models.QuerySet):
    def active(self):
        return self.filter(lifecycle_stage=ACTIVE)


class Run(models.Model):
    RUNNING, SCHEDULED, FINISHED, FAILED, KILLED = "RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED"
    STATUSES = [RUNNING, SCHEDULED, FINISHED, FAILED, KILLED]

    run_uuid = models.CharField(max_length=32, primary_key=True, default=new_run_id)
    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="runs")
    name = models.CharField(max_length=250, blank=True)
    user_id = models.CharField(max_length=256, blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="runs"
    )
    status = models.CharField(max_length=20, default=RUNNING)
    start_time = models.BigIntegerField(default=now_ms)
    end_time = models.BigIntegerField(null=True, blank=True)
    artifact_uri = models.CharField(max_length=1000, blank=True)
    lifecycle_stage = models.CharField(max_length=32, choices=LIFECYCLE_CHOICES, default=ACTIVE)
    deleted_time = models.BigIntegerField(null=True, blank=True)

    objects = RunQuerySet.as_manager()

    class Meta:
        indexes = [
            # Default search order (start_time DESC, run_uuid) within an experiment, keyset-paged.
            models.Index(fields=["experiment", "lifecycle_stage", "-start_time", "run_uuid"], name="run_exp_start"),
        ]

    def __str__(self):
        return self.name or self.run_uuid

    @property
    def run_id(self) -> str:
        return self.run_uuid


class Param(models.Model):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="params")
    key = models.CharField(max_length=250)
    value = models.TextField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "key"], name="uniq_run_param")]


class Metric(models.Model):
    """Every logged point of a metric (the history)."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="metric_history")
    key = models.CharField(max_length=250)
    value = models.FloatField()
    is_nan = models.BooleanField(default=False)
    timestamp = models.BigIntegerField()
    step = models.BigIntegerField(default=0)
    # Set when the point was logged for a logged model (3.x log_model copies run metrics onto it).
    model_id = models.CharField(max_length=34, null=True, blank=True, db_index=True)
    dataset_name = models.CharField(max_length=500, null=True, blank=True)
    dataset_digest = models.CharField(max_length=36, null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["run", "key", "step", "timestamp"], name="metric_history")]


class LatestMetric(models.Model):
    """The latest point per (run, key): max step, then max timestamp, then max value (MLflow's rule).

    Kept up to date on every log call so run search and ordering by metrics never scan history.
    """

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="latest_metrics")
    key = models.CharField(max_length=250)
    value = models.FloatField()
    is_nan = models.BooleanField(default=False)
    timestamp = models.BigIntegerField()
    step = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "key"], name="uniq_latest_metric")]
        indexes = [models.Index(fields=["key", "value"], name="latest_metric_key_value")]


class RunTag(models.Model):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="tags")
    key = models.CharField(max_length=250)
    value = models.TextField(blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "key"], name="uniq_run_tag")]


class Dataset(models.Model):
    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="datasets")
    name = models.CharField(max_length=500)
    digest = models.CharField(max_length=36)
    source_type = models.CharField(max_length=36)
    source = models.TextField()
    schema = models.TextField(blank=True)
    profile = models.TextField(blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["experiment", "name", "digest"], name="uniq_dataset"),
        ]


class RunInput(models.Model):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="dataset_inputs")
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="run_inputs")
    tags = models.JSONField(default=list, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "dataset"], name="uniq_run_input")]


class LoggedModelQuerySet(models.QuerySet):
    def active(self):
        return self.filter(lifecycle_stage=ACTIVE)


class LoggedModel(models.Model):
    PENDING, READY, UPLOAD_FAILED = "LOGGED_MODEL_PENDING", "LOGGED_MODEL_READY", "LOGGED_MODEL_UPLOAD_FAILED"
    STATUSES = [PENDING, READY, UPLOAD_FAILED]

    model_id = models.CharField(max_length=34, primary_key=True, default=new_logged_model_id)
    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="logged_models")
    name = models.CharField(max_length=500)
    source_run = models.ForeignKey(
        Run, null=True, blank=True, on_delete=models.SET_NULL, related_name="logged_models"
    )
    status = models.CharField(max_length=40, default=PENDING)
    status_message = models.TextField(blank=True)
    model_type = models.CharField(max_length=500, blank=True)
    artifact_location = models.CharField(max_length=1000)
    creation_timestamp_ms = models.BigIntegerField(default=now_ms)
    last_updated_timestamp_ms = models.BigIntegerField(default=now_ms)
    lifecycle_stage = models.CharField(max_length=32, choices=LIFECYCLE_CHOICES, default=ACTIVE)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="logged_models"
    )

    objects = LoggedModelQuerySet.as_manager()

    class Meta:
        indexes = [
            models.Index(fields=["experiment", "name"], name="logged_model_exp_name"),
            models.Index(fields=["experiment", "-creation_timestamp_ms", "model_id"], name="logged_model_exp_created"),
        ]

    def __str__(self):
        return self.model_id


class LoggedModelTag(models.Model):
    model = models.ForeignKey(LoggedModel, on_delete=models.CASCADE, related_name="tags")
    key = models.CharField(max_length=250)
    value = models.TextField(blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["model", "key"], name="uniq_logged_model_tag")]


class LoggedModelParam(models.Model):
    model = models.ForeignKey(LoggedModel, on_delete=models.CASCADE, related_name="params")
    key = models.CharField(max_length=250)
    value = models.TextField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["model", "key"], name="uniq_logged_model_param")]


class RunModelOutput(models.Model):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="model_outputs")
    model = models.ForeignKey(LoggedModel, on_delete=models.CASCADE, related_name="run_outputs")
    step = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "model"], name="uniq_run_model_output")]


class RunModelInput(models.Model):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="model_inputs")
    model = models.ForeignKey(LoggedModel, on_delete=models.CASCADE, related_name="run_inputs")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "model"], name="uniq_run_model_input")]
