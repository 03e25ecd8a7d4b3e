"""Experiments, runs, their params/metrics/tags/inputs/outputs, and logged models.

Timestamps are milliseconds since the epoch (BigInteger), as on the MLflow wire.
Ids are MLflow's: experiments are integers (shown as strings), runs are 32 hex
characters, logged models `m-` + 32 hex characters.
"""

import json
import math
from collections import defaultdict
import operator
import time
import uuid

from django.conf import settings
from django.db import connection, models

from core.api import json_float
from core.sql import fetch_sets, in_list, in_subquery

ACTIVE = "active"
DELETED = "deleted"
LIFECYCLE_CHOICES = [(ACTIVE, ACTIVE), (DELETED, DELETED)]


def now_ms() -> int:
    return int(time.time() * 1000)


def new_run_id() -> str:
    return uuid.uuid4().hex


def new_logged_model_id() -> str:
    return "m-" + uuid.uuid4().hex


# MLflow's RunInfo from these run columns, in this order (run_info's arguments): one definition for
# Run.info_to_mlflow and for the plain-tuple readers (runs_to_mlflow, run_json).
RUN_INFO_FIELDS = ("run_uuid", "experiment_id", "name", "user_id", "status", "start_time", "end_time", "artifact_uri", "lifecycle_stage")
_run_info_values = operator.attrgetter(*RUN_INFO_FIELDS)


def run_info(run_uuid, experiment_id, name, user_id, status, start_time, end_time, artifact_uri, lifecycle_stage) -> dict:
    info = {
        "run_uuid": run_uuid,
        "run_id": run_uuid,
        "experiment_id": str(experiment_id),
        "run_name": name,
        "user_id": user_id,
        "status": status,
        "start_time": start_time,
        "artifact_uri": artifact_uri,
        "lifecycle_stage": lifecycle_stage,
    }
    if end_time is not None:
        info["end_time"] = end_time
    return info


def metric_value(value: float, is_nan: bool) -> float | str:
    return "NaN" if is_nan else json_float(value)


def metric_json(key: str, value: float, is_nan: bool, timestamp: int, step: int) -> dict:
    """MLflow's Metric JSON (history points and latest values alike)."""
    return {"key": key, "value": metric_value(value, is_nan), "timestamp": timestamp, "step": step}


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

    @property
    def is_active(self) -> bool:
        return self.lifecycle_stage == ACTIVE

    def to_mlflow(self) -> dict:
        """MLflow's Experiment JSON; `tags` (prefetch them) only when there are any."""
        data = {
            "experiment_id": self.experiment_id,
            "name": self.name,
            "artifact_location": self.artifact_location,
            "lifecycle_stage": self.lifecycle_stage,
            "last_update_time": self.last_update_time,
            "creation_time": self.creation_time,
            "workspace": "default",
        }
        tags = [t.to_mlflow() for t in self.tags.all()]
        if tags:
            data["tags"] = tags
        return data


class ExperimentTag(models.Model):
    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="tags")
    key = models.CharField(max_length=250)
    value = models.TextField(blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["experiment", "key"], name="uniq_experiment_tag")]
        ordering = ["key"]

    def to_mlflow(self) -> dict:
        return {"key": self.key, "value": self.value}


class RunQuerySet(models.QuerySet):
    def active(self):
        return self.filter(lifecycle_stage=ACTIVE)

    def for_mlflow(self):
        """Everything Run.to_mlflow() reads, in a fixed number of queries whatever the row count."""
        return self.prefetch_related(
            "params", "tags", "latest_metrics", "dataset_inputs__dataset", "model_inputs", "model_outputs"
        )


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

    @property
    def is_active(self) -> bool:
        return self.lifecycle_stage == ACTIVE

    def info_to_mlflow(self) -> dict:
        return run_info(*_run_info_values(self))

    def to_mlflow(self) -> dict:
        """MLflow's Run JSON. Prefetch with `Run.objects.for_mlflow()` to keep it query-free."""
        data = {}
        metrics = sorted(self.latest_metrics.all(), key=lambda m: m.key)
        if metrics:
            data["metrics"] = [m.to_mlflow() for m in metrics]
        params = sorted(self.params.all(), key=lambda p: p.key)
        if params:
            data["params"] = [p.to_mlflow() for p in params]
        tags = sorted(self.tags.all(), key=lambda t: t.pk)
        if tags:
            data["tags"] = [t.to_mlflow() for t in tags]
        inputs = {}
        dataset_inputs = sorted(self.dataset_inputs.all(), key=lambda i: i.pk)
        if dataset_inputs:
            inputs["dataset_inputs"] = [i.to_mlflow() for i in dataset_inputs]
        model_inputs = sorted(self.model_inputs.all(), key=lambda i: i.pk)
        if model_inputs:
            inputs["model_inputs"] = [{"model_id": i.model_id} for i in model_inputs]
        outputs = {}
        model_outputs = sorted(self.model_outputs.all(), key=lambda o: o.pk)
        if model_outputs:
            outputs["model_outputs"] = [{"model_id": o.model_id, "step": o.step} for o in model_outputs]
        return {"info": self.info_to_mlflow(), "data": data, "inputs": inputs, "outputs": outputs}


class Param(models.Model):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="params")
    key = models.CharField(max_length=250)
    value = models.TextField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "key"], name="uniq_run_param")]

    def to_mlflow(self) -> dict:
        return {"key": self.key, "value": self.value}


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

    def to_mlflow(self) -> dict:
        return metric_json(self.key, self.value, self.is_nan, self.timestamp, self.step)

    def to_model_mlflow(self) -> dict:
        """A logged model's metric: the point plus the model and run it belongs to."""
        data = self.to_mlflow()
        data["model_id"] = self.model_id
        data["run_id"] = self.run_id
        if self.dataset_name:
            data["dataset_name"] = self.dataset_name
        if self.dataset_digest:
            data["dataset_digest"] = self.dataset_digest
        return data


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

    def to_mlflow(self) -> dict:
        return metric_json(self.key, self.value, self.is_nan, self.timestamp, self.step)


class RunTag(models.Model):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="tags")
    key = models.CharField(max_length=250)
    value = models.TextField(blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "key"], name="uniq_run_tag")]

    def to_mlflow(self) -> dict:
        return {"key": self.key, "value": self.value}


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

    def to_mlflow(self) -> dict:
        data = {"name": self.name, "digest": self.digest, "source_type": self.source_type, "source": self.source}
        if self.schema:
            data["schema"] = self.schema
        if self.profile:
            data["profile"] = self.profile
        return data


class RunInput(models.Model):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="dataset_inputs")
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="run_inputs")
    tags = models.JSONField(default=list, blank=True)
    # The `mlflow.data.context` input tag ("training", "eval"…), a column so `datasets.context` filters in SQL.
    context = models.CharField(max_length=500, blank=True, default="")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "dataset"], name="uniq_run_input")]

    def to_mlflow(self) -> dict:
        data = {"dataset": self.dataset.to_mlflow()}
        if self.tags:
            data["tags"] = self.tags
        return data


class LoggedModelQuerySet(models.QuerySet):
    def active(self):
        return self.filter(lifecycle_stage=ACTIVE)

    def for_mlflow(self):
        return self.prefetch_related("tags", "params")


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

    def to_mlflow(self, metrics: list | None = None) -> dict:
        """MLflow's LoggedModel JSON. `metrics` are its Metric rows (see attach_model_metrics)."""
        info = {
            "model_id": self.model_id,
            "experiment_id": str(self.experiment_id),
            "name": self.name,
            "creation_timestamp_ms": self.creation_timestamp_ms,
            "last_updated_timestamp_ms": self.last_updated_timestamp_ms,
            "artifact_uri": self.artifact_location,
            "status": self.status,
            "model_type": self.model_type,
        }
        if self.source_run_id:
            info["source_run_id"] = self.source_run_id
        if self.status_message:
            info["status_message"] = self.status_message
        tags = sorted(self.tags.all(), key=lambda t: t.key)
        if tags:
            info["tags"] = [{"key": t.key, "value": t.value} for t in tags]
        data = {}
        params = sorted(self.params.all(), key=lambda p: p.key)
        if params:
            data["params"] = [{"key": p.key, "value": p.value} for p in params]
        if metrics is None:
            metrics = getattr(self, "_model_metrics", None)
        if metrics is None:
            metrics = list(Metric.objects.filter(model_id=self.model_id).order_by("key", "step", "timestamp", "pk"))
        if metrics:
            data["metrics"] = [m.to_model_mlflow() for m in metrics]
        return {"info": info, "data": data}


def attach_model_metrics(logged_models: list) -> list:
    """Load the metrics of several logged models in one query (they reference models by id, not FK)."""
    by_model = {m.model_id: [] for m in logged_models}
    if by_model:
        for metric in Metric.objects.filter(model_id__in=list(by_model)).order_by("key", "step", "timestamp", "pk"):
            by_model[metric.model_id].append(metric)
    for model in logged_models:
        model._model_metrics = by_model[model.model_id]
    return logged_models


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


# --------------------------------------------------------------------------- run JSON from plain rows

# A condition or statement as (sql, params); the readers take their runs as a function of a column
# name that returns the condition "column is one of the runs" (run_ids, or `= %s` for one run).
Condition = tuple[str, list]
_by_key = operator.itemgetter(1)


def run_ids(ids: list[str]):
    """`column is one of these run ids`. On PostgreSQL one text parameter, an array literal (psycopg
    dumps a Python list of 100 strings element by element in Python, ~0.35 ms per statement of a
    batch; a string in one go), unnested in an InitPlan: the planner then cannot see 100 ids and
    probes the run_id index, where with the array in view it filters a sequential scan of the whole
    child table (3 ms of PostgreSQL CPU per search page at 2k runs, growing with the table)."""
    if connection.vendor != "postgresql":
        return lambda column: in_list(column, ids)
    literal = "{" + ",".join('"' + i.replace("\\", "\\\\").replace('"', '\\"') + '"' for i in ids) + "}"
    return lambda column: (in_subquery(column, "SELECT unnest(CAST(%s AS varchar[]))"), [literal])


def run_child_statements(runs) -> list[Condition]:
    """The SELECTs of everything a run's JSON holds besides its own columns, for the runs `runs(column)`
    selects (tags; then latest metrics, params, dataset inputs, model inputs, model outputs), for
    core.sql.fetch_sets."""
    def select(model, columns: str, order: str = "", join: str = "") -> Condition:
        where, params = runs('t."run_id"')
        return f"SELECT {columns} FROM {model._meta.db_table} t{join} WHERE {where}{order}", params

    return [
        select(RunTag, 't."run_id", t."key", t."value"', ' ORDER BY t."id"'),
        select(LatestMetric, 't."run_id", t."key", t."value", t."is_nan", t."timestamp", t."step"'),
        select(Param, 't."run_id", t."key", t."value"'),
        select(RunInput, 't."run_id", t."tags", d."name", d."digest", d."source_type", d."source", d."schema", d."profile"',
               ' ORDER BY t."id"', f' JOIN {Dataset._meta.db_table} d ON d."id" = t."dataset_id"'),
        select(RunModelInput, 't."run_id", t."model_id"', ' ORDER BY t."id"'),
        select(RunModelOutput, 't."run_id", t."model_id", t."step"', ' ORDER BY t."id"'),
    ]


def _dataset_input_json(input_tags, name, digest, source_type, source, schema, profile) -> dict:
    dataset = {"name": name, "digest": digest, "source_type": source_type, "source": source}
    if schema:
        dataset["schema"] = schema
    if profile:
        dataset["profile"] = profile
    entry = {"dataset": dataset}
    if isinstance(input_tags, str):
        input_tags = json.loads(input_tags)
    if input_tags:
        entry["tags"] = input_tags
    return entry


def runs_json(runs: list[tuple], tag_rows, metric_rows=(), param_rows=(), dataset_rows=(), model_input_rows=(),
              model_output_rows=()) -> list[dict]:
    """Run JSON from rows: `runs` are RUN_INFO_FIELDS tuples, the rest the result sets of
    run_child_statements, in their order. Exactly Run.to_mlflow() (tests/perf/test_fast_paths.py)."""
    isfinite = math.isfinite
    metrics, params, tags, datasets, model_inputs, model_outputs = (defaultdict(list) for _ in range(6))
    # Metrics and params by key, as Run.to_mlflow: one (stable) sort of all rows, then grouped.
    # metric_json inlined (a call per value shows on a 500-metric page); non-finite values take its path.
    for run_id, key, value, is_nan, timestamp, step in sorted(metric_rows, key=_by_key):
        if is_nan or not isfinite(value):
            value = metric_value(value, is_nan)
        metrics[run_id].append({"key": key, "value": value, "timestamp": timestamp, "step": step})
    for run_id, key, value in sorted(param_rows, key=_by_key):
        params[run_id].append({"key": key, "value": value})
    for run_id, key, value in tag_rows:
        tags[run_id].append({"key": key, "value": value})
    for run_id, *row in dataset_rows:
        datasets[run_id].append(_dataset_input_json(*row))
    for run_id, model_id in model_input_rows:
        model_inputs[run_id].append({"model_id": model_id})
    for run_id, model_id, step in model_output_rows:
        model_outputs[run_id].append({"model_id": model_id, "step": step})
    result = []
    for run in runs:
        rid = run[0]
        data = {}
        if rid in metrics:
            data["metrics"] = metrics[rid]
        if rid in params:
            data["params"] = params[rid]
        if rid in tags:
            data["tags"] = tags[rid]
        inputs = {}
        if rid in datasets:
            inputs["dataset_inputs"] = datasets[rid]
        if rid in model_inputs:
            inputs["model_inputs"] = model_inputs[rid]
        result.append({"info": run_info(*run), "data": data, "inputs": inputs,
                       "outputs": {"model_outputs": model_outputs[rid]} if rid in model_outputs else {}})
    return result


def runs_to_mlflow(runs: list) -> list[dict]:
    """`[run.to_mlflow() for run in runs]` for Run instances or rows with the RUN_INFO_FIELDS
    attributes (tracking.search.search_runs(prefetch=False)), without a model instance (or an ORM
    query) per param, tag and metric: plain SELECTs of tuples whatever the page size, in one round
    trip on PostgreSQL (core.sql.fetch_sets). The search hot path; tested to return exactly what
    Run.to_mlflow() returns."""
    if not runs:
        return []
    rows = [_run_info_values(run) for run in runs]
    return runs_json(rows, *fetch_sets(run_child_statements(run_ids([row[0] for row in rows]))))


def new_run_json(run: "Run", tags: list[tuple[str, str]]) -> dict:
    """The JSON of a run just created with `tags` (in the order they were inserted), its only
    children yet: what runs_to_mlflow([run]) would read back, without reading it."""
    return runs_json([_run_info_values(run)], [(run.run_uuid, key, value) for key, value in tags])[0]


def run_json(run: Condition, run_id: str) -> dict | None:
    """The JSON of the run that the statement `run` (tracking.access.visible_run_sql: its
    RUN_INFO_FIELDS, no row when the caller may not see it) finds, or None; one round trip. The
    child rows are selected by `run_id` alone and dropped unless the run row came back."""
    found, *sets = fetch_sets([run, *run_child_statements(lambda column: (f"{column} = %s", [run_id]))])
    return runs_json(found, *sets)[0] if found else None
