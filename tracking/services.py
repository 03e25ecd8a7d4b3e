"""Tracking writes: one function per MLflow tracking-store verb.

Keyword-only, called by the JSON API, the pages and the tests alike. Limits and
error texts are MLflow's (mlflow/utils/validation.py and the SQLAlchemy store).

Locking: every write to a run locks the run row (`select_for_update`) first, so
two writers on one run (log-batch from several threads) keep LatestMetric and
the param "immutable once set" rule consistent.
"""

import io
import json
import math
import random
from dataclasses import dataclass
from urllib.parse import unquote, urlparse

from django.db import IntegrityError, connection, transaction

from core import artifacts
from core.artifacts import ARTIFACT_SCHEME
from core.errors import AlreadyExists, DoesNotExist, InvalidParameter, missing_parameter
from core.sql import execute_all, insert_statement, row_by_pk
from core.validation import check_display_name, check_int64, loads_bounded
from core.validation import check_key as check_mlflow_key
from tracking.models import (
    ACTIVE,
    DELETED,
    Dataset,
    Experiment,
    ExperimentTag,
    LatestMetric,
    LoggedModel,
    LoggedModelParam,
    LoggedModelTag,
    Metric,
    Param,
    Run,
    RunInput,
    RunModelInput,
    RunModelOutput,
    RunTag,
    now_ms,
)

MAX_PARAMS_TAGS_PER_BATCH = 100
MAX_METRICS_PER_BATCH = 1000
MAX_ENTITIES_PER_BATCH = 1000
MAX_ENTITY_KEY_LENGTH = 250
MAX_PARAM_VAL_LENGTH = 6000
MAX_TAG_VAL_LENGTH = 8000
MAX_EXPERIMENT_NAME_LENGTH = 500
MAX_EXPERIMENT_TAG_VAL_LENGTH = 20000
MAX_DATASET_NAME_SIZE = 500
MAX_DATASET_DIGEST_SIZE = 36
MAX_ARTIFACT_LOCATION_LENGTH = 2048  # MLflow's MLFLOW_ARTIFACT_LOCATION_MAX_LENGTH default

RUN_NAME_TAG = "mlflow.runName"
MLFLOW_USER_TAG = "mlflow.user"
_LOGGED_MODEL_NAME_BAD_CHARS = ("/", ":", ".", "%", '"', "'")
LOG_MODEL_HISTORY_TAG = "mlflow.log-model.history"
DATASET_CONTEXT_TAG = "mlflow.data.context"


# --------------------------------------------------------------------------- validation helpers


def _exceeds(path: str, limit: int) -> InvalidParameter:
    return InvalidParameter(f"'{path}' exceeds the maximum length of {limit} characters")


def _check_key(key, path: str = "key") -> str:
    if key is None or key == "":
        raise missing_parameter(path)
    if not isinstance(key, str):
        raise InvalidParameter(f"Invalid value {key!r} for parameter '{path}' supplied: expected a string.")
    if len(key) > MAX_ENTITY_KEY_LENGTH:
        raise _exceeds(path, MAX_ENTITY_KEY_LENGTH)
    # MLflow's characters, and no name a file store would resolve to another (`.`, `a/../b`, `/a`).
    return check_mlflow_key(key, path)


def _check_run_name(name, path: str = "run_name") -> str:
    if len(name) > MAX_ENTITY_KEY_LENGTH:
        raise _exceeds(path, MAX_ENTITY_KEY_LENGTH)
    return check_display_name(name, path)


def _check_value(value, path: str, limit: int) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        value = str(value)
    if len(value) > limit:
        raise _exceeds(path, limit)
    return value


def _check_active_run(run: Run) -> None:
    if run.lifecycle_stage != ACTIVE:
        raise InvalidParameter(
            f"The run {run.run_uuid} must be in the 'active' state. Current state is {run.lifecycle_stage}."
        )


def _check_active_experiment(experiment: Experiment) -> None:
    if experiment.lifecycle_stage != ACTIVE:
        raise InvalidParameter(
            f"The experiment {experiment.experiment_id} must be in the 'active' state. "
            f"Current state is {experiment.lifecycle_stage}."
        )


def _lock_run(run: Run) -> Run:
    """Re-read the run under a row lock; call inside transaction.atomic()."""
    locked = row_by_pk(Run, run.pk, lock=True)
    if locked is None:
        raise DoesNotExist(f"Run with id={run.pk} not found")  # deleted since it was read
    _check_active_run(locked)
    return locked


def _tag_pairs(tags, path: str = "tags", value_limit: int = MAX_TAG_VAL_LENGTH) -> list[tuple[str, str]]:
    pairs = []
    for index, tag in enumerate(tags or []):
        if not isinstance(tag, dict):
            raise InvalidParameter(f"Invalid value {tag!r} for parameter '{path}[{index}]' supplied: expected an object.")
        key = _check_key(tag.get("key"), f"{path}[{index}].key")
        value = _check_value(tag.get("value"), f"{path}[{index}].value", value_limit)
        if key == RUN_NAME_TAG:
            _check_run_name(value, f"{path}[{index}].value")
        pairs.append((key, value))
    return pairs


# --------------------------------------------------------------------------- experiments


def check_artifact_location(*, user, location: str) -> None:
    """An experiment's artifact_location as given on create. Without one the server assigns its own
    (mlflow-artifacts:/<id>). Only superusers may give one (tracking.access), and not one on the server's
    disk or in its store (those belong to the server and to other experiments), with `..`, or that
    equals, holds or lies inside another experiment's location. Raises InvalidParameter."""
    from tracking.access import may_choose_artifact_location

    if not may_choose_artifact_location(user):
        raise InvalidParameter(
            "Only administrators may choose an experiment's artifact_location; leave it out and the server "
            "assigns the experiment its own location."
        )
    if location.startswith("runs:"):  # MLflow's rule and text
        raise InvalidParameter(f"Artifact location cannot be a runs:/ URI. Given: '{location}'")
    if len(location) > MAX_ARTIFACT_LOCATION_LENGTH:
        raise InvalidParameter(
            "Invalid artifact path length. The length of the artifact path cannot be greater than "
            f"{MAX_ARTIFACT_LOCATION_LENGTH} characters."
        )
    parsed = urlparse(location)
    if len(parsed.scheme) < 2 or parsed.scheme in ("file", ARTIFACT_SCHEME):  # "C:" is a drive, not a scheme
        raise InvalidParameter(
            f"Invalid artifact_location '{location}': a path on the server or in its own store "
            f"({ARTIFACT_SCHEME}:) is assigned by the server, never chosen."
        )
    if ".." in unquote(parsed.path).replace("\\", "/").split("/"):
        raise InvalidParameter(f"Invalid artifact_location '{location}': '..' segments are not allowed.")
    mine = location.rstrip("/")
    for other in Experiment.objects.filter(artifact_location__gt="").values_list("artifact_location", flat=True):
        other = other.rstrip("/")
        if mine == other or mine.startswith(other + "/") or other.startswith(mine + "/"):
            raise InvalidParameter(
                f"Invalid artifact_location '{location}': it overlaps another experiment's location."
            )


def create_experiment(*, user, name: str, artifact_location: str | None = None, tags=None) -> Experiment:
    """Create an experiment. Raises AlreadyExists (also for a deleted one of that name), InvalidParameter
    (bad name or tags, an artifact_location the user may not choose: see check_artifact_location)."""
    if not name:
        raise missing_parameter("name")
    if len(name) > MAX_EXPERIMENT_NAME_LENGTH:
        raise _exceeds("name", MAX_EXPERIMENT_NAME_LENGTH)
    check_display_name(name)
    pairs = _tag_pairs(tags, value_limit=MAX_EXPERIMENT_TAG_VAL_LENGTH)
    if artifact_location:
        check_artifact_location(user=user, location=artifact_location)
    if Experiment.objects.filter(name=name).exists():
        raise AlreadyExists(f"Experiment(name={name}) already exists.")
    from tracking.access import check_create_experiment

    check_create_experiment(user)
    try:
        with transaction.atomic():
            now = now_ms()
            experiment = Experiment.objects.create(
                name=name,
                artifact_location=artifact_location or "",
                owner=user,
                creation_time=now,
                last_update_time=now,
            )
            if not artifact_location:
                # The id is only known after the insert: mlflow-artifacts:/<id> makes clients upload via us.
                experiment.artifact_location = f"mlflow-artifacts:/{experiment.pk}"
                experiment.save(update_fields=["artifact_location"])
            ExperimentTag.objects.bulk_create(
                [ExperimentTag(experiment=experiment, key=k, value=v) for k, v in dict(pairs).items()]
            )
    except IntegrityError:
        raise AlreadyExists(f"Experiment(name={name}) already exists.") from None
    return experiment


def rename_experiment(*, experiment: Experiment, new_name: str) -> Experiment:
    """Rename. Raises InvalidParameter (deleted experiment, bad name), AlreadyExists."""
    if not new_name:
        raise missing_parameter("new_name")
    if len(new_name) > MAX_EXPERIMENT_NAME_LENGTH:
        raise _exceeds("new_name", MAX_EXPERIMENT_NAME_LENGTH)
    check_display_name(new_name, "new_name")
    if experiment.lifecycle_stage != ACTIVE:
        raise InvalidParameter("Cannot rename a non-active experiment.")
    if Experiment.objects.filter(name=new_name).exclude(pk=experiment.pk).exists():
        raise AlreadyExists(f"Experiment(name={new_name}) already exists.")
    try:
        with transaction.atomic():
            Experiment.objects.filter(pk=experiment.pk).update(name=new_name, last_update_time=now_ms())
    except IntegrityError:
        raise AlreadyExists(f"Experiment(name={new_name}) already exists.") from None
    experiment.refresh_from_db()
    return experiment


@transaction.atomic
def delete_experiment(*, experiment: Experiment) -> None:
    """Soft-delete the experiment and its runs. The Default experiment (id 0) cannot be deleted."""
    if experiment.pk == 0:
        raise InvalidParameter("Cannot delete the default experiment '0'. This is an internally reserved experiment.")
    if experiment.lifecycle_stage != ACTIVE:
        # MLflow looks the experiment up among active ones only.
        raise DoesNotExist(f"No Experiment with id={experiment.pk} exists")
    now = now_ms()
    Experiment.objects.filter(pk=experiment.pk).update(lifecycle_stage=DELETED, deleted_time=now, last_update_time=now)
    Run.objects.filter(experiment=experiment, lifecycle_stage=ACTIVE).update(lifecycle_stage=DELETED, deleted_time=now)


@transaction.atomic
def restore_experiment(*, experiment: Experiment) -> None:
    """Restore a deleted experiment and all its runs (as MLflow). Raises DoesNotExist when it is active."""
    if experiment.lifecycle_stage == ACTIVE:
        # MLflow looks the experiment up among deleted ones only.
        raise DoesNotExist(f"No Experiment with id={experiment.pk} exists")
    Experiment.objects.filter(pk=experiment.pk).update(lifecycle_stage=ACTIVE, deleted_time=None, last_update_time=now_ms())
    Run.objects.filter(experiment=experiment, lifecycle_stage=DELETED).update(lifecycle_stage=ACTIVE, deleted_time=None)


@transaction.atomic
def set_experiment_tag(*, experiment: Experiment, key: str, value: str) -> None:
    _check_key(key)
    value = _check_value(value, "value", MAX_EXPERIMENT_TAG_VAL_LENGTH)
    _check_active_experiment(experiment)
    ExperimentTag.objects.update_or_create(experiment=experiment, key=key, defaults={"value": value})
    Experiment.objects.filter(pk=experiment.pk).update(last_update_time=now_ms())


@transaction.atomic
def delete_experiment_tag(*, experiment: Experiment, key: str) -> None:
    _check_key(key)
    _check_active_experiment(experiment)
    deleted, _ = ExperimentTag.objects.filter(experiment=experiment, key=key).delete()
    if not deleted:
        raise DoesNotExist(f"No tag with name: {key} in experiment with id {experiment.experiment_id}")
    Experiment.objects.filter(pk=experiment.pk).update(last_update_time=now_ms())


# --------------------------------------------------------------------------- runs

_ADJECTIVES = (
    "able amazing awesome bedecked bemused big bold brave bright calm capable carefree casual caring "
    "clean clever colorful dapper defiant delicate dazzling enchanting entertaining fearless funny gentle "
    "gifted glamorous gregarious handsome honorable illustrious incongruous indecisive inquisitive judicious "
    "kindly learned legendary likeable loud luminous marvelous mercurial nebulous omniscient orderly "
    "overjoyed painted peaceful polite popular powerful puzzled redolent resilient righteous rogue rumbling "
    "salty secretive selective sedate serious shivering skillful sneaky spiffy stately suave thoughtful "
    "traveling trusting unequaled unique upbeat useful valuable victorious vaunted welcoming whimsical wise"
).split()
_NOUNS = (
    "ant ape asp auk bass bat bear bee bird boar bug calf carp cat chimp cod colt conch cow crab crane croc "
    "crow cub deer doe dog dolphin donkey dove duck eel elk fawn finch fish flea fly foal fowl fox frog gnat "
    "gnu goat goose grouse grub gull hare hawk hen hog horse hound jay kit kite koi lamb lark loon lynx mare "
    "midge mink mole moose moth mouse mule newt owl ox panda penguin perch pig pug quail ram rat ray robin "
    "roo rook seal shad shark sheep shoat shrew shrike shrimp skink skunk sloth slug smelt snail snake snipe "
    "sow sponge squid squirrel stag steed stoat stork swan tern toad trout turtle vole wasp whale wolf worm wren yak zebra"
).split()


def generate_run_name() -> str:
    """A name like MLflow's: adjective-animal-123."""
    return f"{random.choice(_ADJECTIVES)}-{random.choice(_NOUNS)}-{random.randint(0, 999)}"


def create_run(*, user, experiment: Experiment, run_name: str | None = None, start_time: int | None = None, tags=None,
               user_id: str | None = None) -> Run:
    """Create a RUNNING run owned by `user`.

    `user_id` is MLflow's: the client's `user_id`, else its `mlflow.user` tag, else the username
    (a raw REST caller that sends neither). The authenticated identity is `owner`, and only it counts
    for permissions and the audit.

    The run name comes from `run_name`, else the mlflow.runName tag, else is generated; the
    tag is always set to it. Raises InvalidParameter (deleted experiment, bad tags).
    """
    _check_active_experiment(experiment)
    pairs = dict(_tag_pairs(tags))
    if run_name and pairs.get(RUN_NAME_TAG) and pairs[RUN_NAME_TAG] != run_name:
        raise InvalidParameter(
            f"Both 'run_name' argument and 'mlflow.runName' tag are specified, but with different values "
            f"(run_name='{run_name}', mlflow.runName='{pairs[RUN_NAME_TAG]}')."
        )
    name = _check_run_name(run_name or pairs.get(RUN_NAME_TAG) or generate_run_name())
    pairs[RUN_NAME_TAG] = name
    with transaction.atomic():
        run = Run(
            experiment=experiment,
            name=name,
            user_id=(user_id or pairs.get(MLFLOW_USER_TAG) or getattr(user, "username", "") or "")[:256],
            owner=user if getattr(user, "pk", None) else None,
            status=Run.RUNNING,
            start_time=start_time if start_time is not None else now_ms(),
        )
        base = experiment.artifact_location.rstrip("/")
        run.artifact_uri = f"{base}/{run.run_uuid}/artifacts"
        run.save(force_insert=True)
        RunTag.objects.bulk_create([RunTag(run=run, key=k, value=v) for k, v in pairs.items()])
    run.created_tags = list(pairs.items())  # in insertion order: the answer needs no read-back
    return run


def update_run(*, run: Run, status: str | None = None, end_time: int | None = None, run_name: str | None = None) -> Run:
    """Set status / end_time / name (renaming also sets the mlflow.runName tag)."""
    if status is not None and status not in Run.STATUSES:
        raise InvalidParameter(
            f"Invalid value {status} for parameter 'status' supplied. It must be one of {', '.join(Run.STATUSES)}."
        )
    if run_name is not None:
        _check_run_name(run_name)
    with transaction.atomic():
        run = _lock_run(run)
        fields = []
        if status is not None:
            run.status = status
            fields.append("status")
        if end_time is not None:
            run.end_time = end_time
            fields.append("end_time")
        if run_name:
            run.name = run_name
            fields.append("name")
            RunTag.objects.update_or_create(run=run, key=RUN_NAME_TAG, defaults={"value": run_name})
        if fields:
            run.save(update_fields=fields)
    return run


@transaction.atomic
def delete_run(*, run: Run) -> None:
    Run.objects.filter(pk=run.pk).update(lifecycle_stage=DELETED, deleted_time=now_ms())


@transaction.atomic
def restore_run(*, run: Run) -> None:
    Run.objects.filter(pk=run.pk).update(lifecycle_stage=ACTIVE, deleted_time=None)


def _promptlab_pairs(items, name: str) -> list[dict]:
    if not isinstance(items, list) or not all(isinstance(i, dict) and isinstance(i.get("key"), str) for i in items):
        raise InvalidParameter(f"Invalid value for parameter '{name}': expected a list of {{key, value}} objects.")
    return [{"key": i["key"], "value": str(i.get("value", ""))} for i in items]


def create_promptlab_run(*, user, experiment: Experiment, prompt_template: str, prompt_parameters, model_route: str,
                         model_input: str, model_output: str | None = None, model_parameters=(),
                         model_output_parameters=(), run_name: str | None = None, tags=None, user_id: str = "unknown",
                         start_time: int | None = None) -> Run:
    """MLflow's prompt-lab run (mlflow.utils.promptlab_utils): a FINISHED run with the route and template
    as params, the evaluation table as `eval_results_table.json`. The prompt-lab model folder MLflow also
    writes needs MLflow's own model code, which this server does not run. Raises InvalidParameter."""
    prompt_parameters = _promptlab_pairs(prompt_parameters, "prompt_parameters")
    model_parameters = _promptlab_pairs(list(model_parameters or []), "model_parameters")
    output_parameters = _promptlab_pairs(list(model_output_parameters or []), "model_output_parameters")
    with transaction.atomic():
        run = create_run(user=user, experiment=experiment, run_name=run_name, start_time=start_time, tags=tags,
                         user_id=user_id)
        log_batch(run=run, params=[*model_parameters, {"key": "model_route", "value": model_route},
                                   {"key": "prompt_template", "value": prompt_template}],
                  tags=[{"key": "mlflow.loggedArtifacts", "value": json.dumps([{"path": "eval_results_table.json", "type": "table"}])},
                        {"key": "mlflow.runSourceType", "value": "PROMPT_ENGINEERING"}])
    table = {
        "columns": [p["key"] for p in prompt_parameters] + ["prompt", "output"] + [p["key"] for p in output_parameters],
        "data": [[p["value"] for p in prompt_parameters] + [model_input, model_output] + [p["value"] for p in output_parameters]],
    }
    status = Run.FINISHED
    try:
        root = artifacts.uri_to_path(run.artifact_uri)
        artifacts.save_stream(artifacts.join(root, "eval_results_table.json"), io.BytesIO(json.dumps(table).encode()))
    except (InvalidParameter, OSError):
        status = Run.FAILED  # as MLflow: a failed artifact write leaves the run FAILED, not the request
    return update_run(run=run, status=status, end_time=now_ms())


@dataclass(frozen=True)
class MetricPoint:
    key: str
    value: float
    timestamp: int
    step: int = 0
    model_id: str | None = None
    dataset_name: str | None = None
    dataset_digest: str | None = None

    @property
    def is_nan(self) -> bool:
        return math.isnan(self.value)

    @property
    def stored_value(self) -> float:
        # MLflow stores NaN as 0 with is_nan set (SQLite cannot hold NaN), and compares it as 0.
        return 0.0 if self.is_nan else self.value


def _to_int(value, path: str, *, required: bool) -> int | None:
    if value is None or value == "":
        if required:
            raise missing_parameter(path)
        return None
    if isinstance(value, bool):
        raise InvalidParameter(f"Invalid value {value} for parameter '{path}' supplied: expected an integer.")
    if isinstance(value, float) and value.is_integer():
        return check_int64(int(value), path)
    try:
        return check_int64(int(value), path)
    except (TypeError, ValueError, OverflowError):
        raise InvalidParameter(f"Invalid value {value} for parameter '{path}' supplied: expected an integer.") from None


def _to_float(value, path: str) -> float:
    if value is None or value == "":
        raise missing_parameter(path)
    if isinstance(value, bool):
        raise InvalidParameter(f"Invalid value {value} for parameter '{path}' supplied: expected a number.")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InvalidParameter(f"Invalid value {value} for parameter '{path}' supplied: expected a number.") from None


def metric_point(item: dict, path: str = "") -> MetricPoint:
    """Validate one metric from a request (`path` is e.g. "metrics[3]." for error messages)."""
    if not isinstance(item, dict):
        raise InvalidParameter(f"Invalid value {item!r} for parameter '{path.rstrip('.')}' supplied: expected an object.")
    key = _check_key(item.get("key"), f"{path}key")
    value = _to_float(item.get("value"), f"{path}value")
    timestamp = _to_int(item.get("timestamp"), f"{path}timestamp", required=True)
    if timestamp < 0:  # MLflow's _validate_metric rule and text
        raise InvalidParameter(
            f"Invalid value {timestamp} for parameter '{path}timestamp' supplied: metric '{key}' (value={value}). "
            "Timestamp must be a nonnegative long (64-bit integer) "
        )
    step = _to_int(item.get("step"), f"{path}step", required=False) or 0
    model_id = item.get("model_id") or None
    dataset_name = item.get("dataset_name") or None
    dataset_digest = item.get("dataset_digest") or None
    for name, text in (("model_id", model_id), ("dataset_name", dataset_name), ("dataset_digest", dataset_digest)):
        if text is not None and not isinstance(text, str):
            raise InvalidParameter(f"Invalid value {text!r} for parameter '{path}{name}' supplied: expected a string.")
    if dataset_name and len(dataset_name) > MAX_DATASET_NAME_SIZE:
        raise _exceeds(f"{path}dataset_name", MAX_DATASET_NAME_SIZE)
    if dataset_digest and len(dataset_digest) > MAX_DATASET_DIGEST_SIZE:
        raise _exceeds(f"{path}dataset_digest", MAX_DATASET_DIGEST_SIZE)
    return MetricPoint(key, value, timestamp, step, model_id, dataset_name, dataset_digest)


def _write_metrics(run: Run, points: list[MetricPoint]) -> None:
    """Insert history points and bring LatestMetric up to date: a fixed number of queries per call."""
    if not points:
        return
    # Points re-sent by 3.x log_model with a model_id are the run's existing points: tag them
    # with the model instead of duplicating the run's history.
    to_insert = []
    with_model = [p for p in points if p.model_id]
    if with_model:
        existing = {}
        for metric in Metric.objects.filter(
            run=run, key__in={p.key for p in with_model}, model_id__isnull=True, step__in={p.step for p in with_model}
        ):
            existing.setdefault((metric.key, metric.step, metric.timestamp, metric.value, metric.is_nan), []).append(metric)
        to_update = []
        for point in points:
            if point.model_id:
                matches = existing.get((point.key, point.step, point.timestamp, point.stored_value, point.is_nan))
                if matches:
                    metric = matches.pop()
                    metric.model_id = point.model_id
                    metric.dataset_name = point.dataset_name
                    metric.dataset_digest = point.dataset_digest
                    to_update.append(metric)
                    continue
            to_insert.append(point)
        if to_update:
            Metric.objects.bulk_update(to_update, ["model_id", "dataset_name", "dataset_digest"])
    else:
        to_insert = points
    history = [
        Metric(run=run, key=p.key, value=p.stored_value, is_nan=p.is_nan, timestamp=p.timestamp, step=p.step,
               model_id=p.model_id, dataset_name=p.dataset_name, dataset_digest=p.dataset_digest)
        for p in to_insert
    ]
    # The history rows and the latest values: one round trip on PostgreSQL.
    execute_all(([insert_statement(*history)] if history else []) + [_upsert_latest(run, points)])


def _upsert_latest(run: Run, points: list[MetricPoint]) -> tuple[str, list]:
    """The statement that brings LatestMetric up to date: the newest point of the batch per key
    (the first of equals, as one by one would keep), inserted, or written over the stored row only
    where it is newer by MLflow's rule (higher step, then later timestamp, then larger value, NaN
    counting as 0), which the database compares as a row value."""
    newest: dict[str, MetricPoint] = {}
    for point in points:
        current = newest.get(point.key)
        if current is None or (point.step, point.timestamp, point.stored_value) > (current.step, current.timestamp, current.stored_value):
            newest[point.key] = point
    qn = connection.ops.quote_name
    table = qn(LatestMetric._meta.db_table)
    columns = ("run_id", "key", "value", "is_nan", "timestamp", "step")
    order = ", ".join(f"{{0}}.{qn(c)}" for c in ("step", "timestamp", "value"))
    rows = [(run.pk, p.key, p.stored_value, p.is_nan, p.timestamp, p.step) for p in newest.values()]
    return (
        f"INSERT INTO {table} ({', '.join(qn(c) for c in columns)}) VALUES "
        + ", ".join(["(%s, %s, %s, %s, %s, %s)"] * len(rows))
        + f" ON CONFLICT ({qn('run_id')}, {qn('key')}) DO UPDATE SET "
        + ", ".join(f"{qn(c)} = excluded.{qn(c)}" for c in ("value", "is_nan", "timestamp", "step"))
        + f" WHERE ({order.format('excluded')}) > ({order.format(table)})",
        [value for row in rows for value in row],
    )


def _write_params(run: Run, params: list[tuple[str, str]]) -> None:
    """Insert the new params in one statement (`ON CONFLICT DO NOTHING … RETURNING key`); only keys
    that were there already are read back, to refuse a changed value as MLflow does (the caller's
    transaction then rolls the batch back)."""
    if not params:
        return
    qn = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {qn(Param._meta.db_table)} ({qn('run_id')}, {qn('key')}, {qn('value')}) VALUES "
            + ", ".join(["(%s, %s, %s)"] * len(params))
            + f" ON CONFLICT ({qn('run_id')}, {qn('key')}) DO NOTHING RETURNING {qn('key')}",
            [value for key, val in params for value in (run.pk, key, val)],
        )
        inserted = {row[0] for row in cursor.fetchall()}
    known = [(k, v) for k, v in params if k not in inserted]
    if not known:
        return
    existing = dict(Param.objects.filter(run=run, key__in=[k for k, _ in known]).values_list("key", "value"))
    conflicts = [(k, existing[k], v) for k, v in known if existing.get(k, v) != v]
    if len(conflicts) == 1 and len(params) == 1:
        key, old, new = conflicts[0]
        raise InvalidParameter(
            f"Changing param values is not allowed. Param with key='{key}' was already logged "
            f"with value='{old}' for run ID='{run.run_uuid}'. Attempted logging new value '{new}'."
        )
    if conflicts:
        described = [{"key": k, "old_value": old, "new_value": new} for k, old, new in conflicts]
        raise InvalidParameter(
            f"Changing param values is not allowed. Params were already logged='{described}' for run ID='{run.run_uuid}'."
        )


def _write_tags(run: Run, tags: list[tuple[str, str]]) -> None:
    if not tags:
        return
    final = dict(tags)  # the last value of a repeated key wins
    existing = {t.key: t for t in RunTag.objects.filter(run=run, key__in=list(final))}
    changed = []
    for key, value in final.items():
        if key in existing:
            if existing[key].value != value:
                existing[key].value = value
                changed.append(existing[key])
    RunTag.objects.bulk_create([RunTag(run=run, key=k, value=v) for k, v in final.items() if k not in existing])
    if changed:
        RunTag.objects.bulk_update(changed, ["value"])
    if RUN_NAME_TAG in final and final[RUN_NAME_TAG] != run.name:
        run.name = final[RUN_NAME_TAG][:MAX_ENTITY_KEY_LENGTH]
        run.save(update_fields=["name"])


def _run_tag(key, value) -> tuple[str, str]:
    pair = (_check_key(key), _check_value(value, "value", MAX_TAG_VAL_LENGTH))
    if pair[0] == RUN_NAME_TAG:
        _check_run_name(pair[1], "value")
    return pair


def log_batch(*, run: Run, metrics=(), params=(), tags=()) -> None:
    """Log metrics, params and tags in one transaction, one bulk query per kind.

    Raises InvalidParameter for MLflow's batch limits, bad items, changed param values or a deleted run.
    """
    metrics, params, tags = list(metrics or []), list(params or []), list(tags or [])
    for name, limit, items in (
        ("metrics", MAX_METRICS_PER_BATCH, metrics),
        ("params", MAX_PARAMS_TAGS_PER_BATCH, params),
        ("tags", MAX_PARAMS_TAGS_PER_BATCH, tags),
        ("metrics, params, and tags", MAX_ENTITIES_PER_BATCH, metrics + params + tags),
    ):
        if len(items) > limit:
            raise InvalidParameter(
                f"A batch logging request can contain at most {limit} {name}. Got {len(items)} {name}. "
                f"Please split up {name} across multiple requests and try again."
            )
    points = [m if isinstance(m, MetricPoint) else metric_point(m, f"metrics[{i}].") for i, m in enumerate(metrics)]
    param_pairs = []
    for index, item in enumerate(params):
        if isinstance(item, tuple):
            key, value = item
        elif isinstance(item, dict):
            key, value = item.get("key"), item.get("value")
        else:
            raise InvalidParameter(f"Invalid value {item!r} for parameter 'params[{index}]' supplied: expected an object.")
        param_pairs.append(
            (_check_key(key, f"params[{index}].key"), _check_value(value, f"params[{index}].value", MAX_PARAM_VAL_LENGTH))
        )
    keys = [k for k, _ in param_pairs]
    dupes = sorted({k for k in keys if keys.count(k) > 1})
    if dupes:
        raise InvalidParameter(
            f"Duplicate parameter keys have been submitted: {dupes}. Please ensure the request contains only "
            "one param value per param key."
        )
    tag_pairs = [t if isinstance(t, tuple) else None for t in tags]
    if None in tag_pairs:
        tag_pairs = _tag_pairs(tags)
    else:
        tag_pairs = [_run_tag(k, v) for k, v in tag_pairs]
    with transaction.atomic():
        run = _lock_run(run)
        _write_params(run, param_pairs)
        _write_tags(run, tag_pairs)
        _write_metrics(run, points)


def log_metric(*, run: Run, key: str, value: float, timestamp: int, step: int = 0, model_id=None, dataset_name=None, dataset_digest=None) -> None:
    point = metric_point(
        {"key": key, "value": value, "timestamp": timestamp, "step": step, "model_id": model_id,
         "dataset_name": dataset_name, "dataset_digest": dataset_digest}
    )
    with transaction.atomic():
        run = _lock_run(run)
        _write_metrics(run, [point])


def log_param(*, run: Run, key: str, value: str) -> None:
    pair = (_check_key(key), _check_value(value, "value", MAX_PARAM_VAL_LENGTH))
    with transaction.atomic():
        run = _lock_run(run)
        _write_params(run, [pair])


def set_tag(*, run: Run, key: str, value: str) -> None:
    """Set a run tag; setting mlflow.runName renames the run."""
    pair = _run_tag(key, value)
    with transaction.atomic():
        run = _lock_run(run)
        _write_tags(run, [pair])


def delete_tag(*, run: Run, key: str) -> None:
    """Raises DoesNotExist when the run has no such tag (MLflow's text)."""
    _check_key(key)
    with transaction.atomic():
        run = _lock_run(run)
        deleted, _ = RunTag.objects.filter(run=run, key=key).delete()
        if not deleted:
            raise DoesNotExist(f"No tag with name: {key} in run with id {run.run_uuid}")


def log_model(*, run: Run, model_json: str) -> None:
    """2.x `runs/log-model`: append the MLmodel dict to the run's mlflow.log-model.history tag."""
    if not model_json:
        raise missing_parameter("model_json")
    try:
        model = loads_bounded(model_json)
    except ValueError:
        raise InvalidParameter(f"Invalid value {model_json} for parameter 'model_json' supplied: not JSON.") from None
    if not isinstance(model, dict):
        raise InvalidParameter("Invalid value for parameter 'model_json' supplied: expected a JSON object.")
    with transaction.atomic():
        run = _lock_run(run)
        tag = RunTag.objects.filter(run=run, key=LOG_MODEL_HISTORY_TAG).first()
        history = []
        if tag is not None:
            try:
                history = loads_bounded(tag.value)
            except ValueError:
                history = []
            if not isinstance(history, list):
                history = []
        history.append(model)
        RunTag.objects.update_or_create(run=run, key=LOG_MODEL_HISTORY_TAG, defaults={"value": json.dumps(history)})


def log_inputs(*, run: Run, datasets=(), models=()) -> None:
    """Record dataset inputs (creating each Dataset once per experiment) and logged-model inputs."""
    parsed = []
    for index, item in enumerate(datasets or []):
        if not isinstance(item, dict) or not isinstance(item.get("dataset"), dict):
            raise missing_parameter(f"datasets[{index}].dataset")
        ds = item["dataset"]
        fields = {}
        for name, limit, required in (
            ("name", MAX_DATASET_NAME_SIZE, True),
            ("digest", MAX_DATASET_DIGEST_SIZE, True),
            ("source_type", 36, True),
            ("source", 65535, True),
            ("schema", 1048575, False),
            ("profile", 16777215, False),
        ):
            value = ds.get(name)
            if value in (None, ""):
                if required:
                    raise missing_parameter(f"datasets[{index}].dataset.{name}")
                value = ""
            if not isinstance(value, str):
                raise InvalidParameter(f"Invalid value {value!r} for parameter 'datasets[{index}].dataset.{name}' supplied: expected a string.")
            if len(value) > limit:
                raise _exceeds(f"datasets[{index}].dataset.{name}", limit)
            fields[name] = value
        input_tags = [{"key": k, "value": v} for k, v in _tag_pairs(item.get("tags"), f"datasets[{index}].tags", 500)]
        context = next((t["value"] for t in input_tags if t["key"] == DATASET_CONTEXT_TAG), "")
        parsed.append((fields, input_tags, context))
    model_ids = []
    for index, item in enumerate(models or []):
        model_id = item.get("model_id") if isinstance(item, dict) else None
        if not model_id:
            raise missing_parameter(f"models[{index}].model_id")
        model_ids.append(model_id)
    with transaction.atomic():
        run = _lock_run(run)
        for fields, input_tags, context in parsed:
            dataset, _ = Dataset.objects.get_or_create(
                experiment_id=run.experiment_id, name=fields["name"], digest=fields["digest"],
                defaults={k: fields[k] for k in ("source_type", "source", "schema", "profile")},
            )
            RunInput.objects.update_or_create(run=run, dataset=dataset, defaults={"tags": input_tags, "context": context})
        if model_ids:
            found = set(LoggedModel.objects.filter(pk__in=model_ids).values_list("pk", flat=True))
            missing = [m for m in model_ids if m not in found]
            if missing:
                raise DoesNotExist(f"Logged model with ID '{missing[0]}' not found.")
            have = set(RunModelInput.objects.filter(run=run, model_id__in=model_ids).values_list("model_id", flat=True))
            RunModelInput.objects.bulk_create([RunModelInput(run=run, model_id=m) for m in dict.fromkeys(model_ids) if m not in have])


def log_outputs(*, run: Run, models=()) -> None:
    """3.x `runs/outputs`: the logged models this run produced, with the step they were logged at."""
    items = []
    for index, item in enumerate(models or []):
        model_id = item.get("model_id") if isinstance(item, dict) else None
        if not model_id:
            raise missing_parameter(f"models[{index}].model_id")
        items.append((model_id, _to_int(item.get("step"), f"models[{index}].step", required=False) or 0))
    with transaction.atomic():
        run = _lock_run(run)
        found = set(LoggedModel.objects.filter(pk__in=[m for m, _ in items]).values_list("pk", flat=True))
        for model_id, step in items:
            if model_id not in found:
                raise DoesNotExist(f"Logged model with ID '{model_id}' not found.")
            RunModelOutput.objects.update_or_create(run=run, model_id=model_id, defaults={"step": step})


# --------------------------------------------------------------------------- logged models


def create_logged_model(*, user, experiment: Experiment, name: str | None = None, source_run: Run | None = None,
                        model_type: str | None = None, params=None, tags=None) -> LoggedModel:
    """A PENDING logged model whose artifacts live under `<experiment location>/models/<id>/artifacts`."""
    _check_active_experiment(experiment)
    if source_run is not None and source_run.experiment_id != experiment.pk:
        raise InvalidParameter(
            f"Run '{source_run.run_uuid}' belongs to experiment {source_run.experiment_id}, "
            f"not to experiment {experiment.experiment_id}."
        )
    if name and any(c in name for c in _LOGGED_MODEL_NAME_BAD_CHARS):
        raise InvalidParameter(  # MLflow's _validate_logged_model_name
            f"Invalid model name ({name!r}) provided. Model name must be a non-empty string "
            f"and cannot contain the following characters: {_LOGGED_MODEL_NAME_BAD_CHARS}"
        )
    param_pairs = dict(_tag_pairs(params, "params", MAX_PARAM_VAL_LENGTH))
    tag_pairs = dict(_tag_pairs(tags, "tags"))
    name = check_display_name(name or generate_run_name())
    with transaction.atomic():
        now = now_ms()
        model = LoggedModel(
            experiment=experiment, name=name, source_run=source_run, model_type=model_type or "",
            status=LoggedModel.PENDING, creation_timestamp_ms=now, last_updated_timestamp_ms=now,
            owner=user if getattr(user, "pk", None) else None,
        )
        model.artifact_location = f"{experiment.artifact_location.rstrip('/')}/models/{model.model_id}/artifacts"
        model.save(force_insert=True)
        LoggedModelParam.objects.bulk_create([LoggedModelParam(model=model, key=k, value=v) for k, v in param_pairs.items()])
        LoggedModelTag.objects.bulk_create([LoggedModelTag(model=model, key=k, value=v) for k, v in tag_pairs.items()])
    return model


def finalize_logged_model(*, model: LoggedModel, status: str) -> LoggedModel:
    """PATCH logged-models/<id>: READY after the uploads, or UPLOAD_FAILED."""
    if status not in (LoggedModel.READY, LoggedModel.UPLOAD_FAILED):
        raise InvalidParameter(
            f"Invalid value {status} for parameter 'status' supplied. It must be "
            f"{LoggedModel.READY} or {LoggedModel.UPLOAD_FAILED}."
        )
    LoggedModel.objects.filter(pk=model.pk).update(status=status, last_updated_timestamp_ms=now_ms())
    model.refresh_from_db()
    return model


def delete_logged_model(*, model: LoggedModel) -> None:
    LoggedModel.objects.filter(pk=model.pk).update(lifecycle_stage=DELETED, last_updated_timestamp_ms=now_ms())


@transaction.atomic
def log_logged_model_params(*, model: LoggedModel, params) -> None:
    """Add params to a logged model; re-logging a value is a no-op, changing one is refused."""
    pairs = _tag_pairs(params, "params", MAX_PARAM_VAL_LENGTH)
    existing = dict(LoggedModelParam.objects.filter(model=model, key__in=[k for k, _ in pairs]).values_list("key", "value"))
    new = {}
    for key, value in pairs:
        old = existing.get(key, new.get(key))
        if old is not None and old != value:
            raise InvalidParameter(
                f"Changing param values is not allowed. Param with key='{key}' was already logged "
                f"with value='{old}' for logged model ID='{model.model_id}'. Attempted logging new value '{value}'."
            )
        if key not in existing:
            new[key] = value
    LoggedModelParam.objects.bulk_create([LoggedModelParam(model=model, key=k, value=v) for k, v in new.items()])
    LoggedModel.objects.filter(pk=model.pk).update(last_updated_timestamp_ms=now_ms())


@transaction.atomic
def set_logged_model_tags(*, model: LoggedModel, tags) -> None:
    pairs = dict(_tag_pairs(tags))
    existing = {t.key: t for t in LoggedModelTag.objects.filter(model=model, key__in=list(pairs))}
    for tag in existing.values():
        tag.value = pairs[tag.key]
    if existing:
        LoggedModelTag.objects.bulk_update(list(existing.values()), ["value"])
    LoggedModelTag.objects.bulk_create([LoggedModelTag(model=model, key=k, value=v) for k, v in pairs.items() if k not in existing])
    LoggedModel.objects.filter(pk=model.pk).update(last_updated_timestamp_ms=now_ms())


@transaction.atomic
def delete_logged_model_tag(*, model: LoggedModel, key: str) -> None:
    deleted, _ = LoggedModelTag.objects.filter(model=model, key=key).delete()
    if not deleted:
        raise DoesNotExist(f"No tag with key '{key}' found for logged model with ID '{model.model_id}'.")
    LoggedModel.objects.filter(pk=model.pk).update(last_updated_timestamp_ms=now_ms())
