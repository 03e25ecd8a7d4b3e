"""Evidence the server produces itself: reference datasets of a registered model, and evaluations
of its versions on them, run in a confined subprocess (approvals.evaluation_child).

- `attach_evaluation_dataset`: a model manager uploads a CSV/Parquet file; it is stored in the
  artifact store under `evaluation-datasets/<model pk>/<sha256>.<format>`; once an evaluation used
  it, it never changes (a replacement under the same name is refused).
- `request_evaluation` (the API's "run"): RUNNING rows now, `run_evaluation` on the `evaluation`
  queue after commit.
- `on_registry_events` (a registry notification hook, installed by ApprovalsConfig.ready): a
  version that became READY with an MLmodel gets `evaluate_ready_version` on the same queue (each
  dataset of its model, and its signature).
- `run_evaluation`: copies the version's files and the dataset into a scratch folder, runs the
  child with a time limit (its process group is killed at the limit), records the result with an
  event (and so an audit record) in one transaction. A time-out or a crash is a FAILED evaluation;
  the version stays READY.
"""

import hashlib
import io
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile

from django.conf import settings
from django.db import transaction

from approvals import access
from approvals.models import Evaluation, EvaluationDataset
from core import artifacts
from core import permissions as perms
from core.errors import InvalidParameter, InvalidState, missing_parameter
from registry.events import record_event
from tracking.models import now_ms

log = logging.getLogger("stagegate.approvals.evaluation")

METRICS = {
    EvaluationDataset.REGRESSION: ("rmse", "mae", "r2"),
    EvaluationDataset.CLASSIFICATION: ("accuracy", "f1", "roc_auc"),
}
LOWER_IS_BETTER = {"rmse", "mae"}
ALL_METRICS = sorted({m for names in METRICS.values() for m in names})
FORMATS = ("csv", "parquet")
LOG_TAIL = 8000
DATASET_PREFIX = "evaluation-datasets"


def lower_is_better(metric: str) -> bool:
    return metric in LOWER_IS_BETTER


def _actor(user):
    return user if user is not None and getattr(user, "pk", None) else None


# --------------------------------------------------------------------------- datasets


def _read_frame(data: bytes, fmt: str):
    import pandas as pd

    try:
        return pd.read_parquet(io.BytesIO(data)) if fmt == "parquet" else pd.read_csv(io.BytesIO(data))
    except Exception as exc:
        raise InvalidParameter(f"Invalid dataset file: it is not readable as {fmt.upper()} ({type(exc).__name__}: {exc}).") from None


def _format_of(fmt: str | None, filename: str | None) -> str:
    fmt = (fmt or "").lower().lstrip(".")
    if not fmt:
        fmt = (filename.rsplit(".", 1)[-1].lower() if "." in filename else "") if filename else "csv"
    if fmt == "pq":
        fmt = "parquet"
    if fmt not in FORMATS:
        raise InvalidParameter(f"Invalid value {fmt!r} for parameter 'format': use csv or parquet (or a .csv/.parquet file name).")
    return fmt


def validate_dataset_spec(*, name, target, task, metrics) -> tuple[str, str, str, list[str]]:
    if not isinstance(name, str) or not name.strip():
        raise missing_parameter("name")
    name = name.strip()
    if len(name) > 200 or not re.fullmatch(r"[\w.\- ]+", name):
        raise InvalidParameter(f"Invalid value {name!r} for parameter 'name': letters, digits, '.', '-', '_' and spaces, at most 200.")
    if not isinstance(target, str) or not target:
        raise missing_parameter("target")
    if task not in METRICS:
        raise InvalidParameter(f"Invalid value {task!r} for parameter 'task': use regression or classification.")
    if metrics in (None, "", []):
        metrics = list(METRICS[task])
    if isinstance(metrics, str):
        metrics = [m.strip() for m in metrics.split(",") if m.strip()]
    if not isinstance(metrics, list) or not all(isinstance(m, str) for m in metrics):
        raise InvalidParameter("Invalid value for parameter 'metrics': a list of metric names.")
    wrong = [m for m in metrics if m not in METRICS[task]]
    if wrong:
        raise InvalidParameter(f"Invalid metric(s) {', '.join(wrong)} for a {task} dataset: use {', '.join(METRICS[task])}.")
    return name, target, task, list(dict.fromkeys(metrics))


def attach_evaluation_dataset(*, user, model_name: str, name: str, target: str, task: str, metrics=None,
                              data: bytes, filename: str | None = None, format: str | None = None,
                              description: str = "") -> EvaluationDataset:
    """Attach (or, while unused, replace) the dataset `name` of `model_name`. Needs CAN_MANAGE.

    The file is parsed (the target column must be there) and stored before the transaction, which
    locks the model. Raises InvalidParameter (bad spec or file), InvalidState (a used dataset of
    that name exists: datasets are immutable once used), PermissionDenied, DoesNotExist."""
    name, target, task, metrics = validate_dataset_spec(name=name, target=target, task=task, metrics=metrics)
    model = access.get_registered_model_for_user(user, model_name, min_level=perms.CAN_MANAGE, action="attach evaluation datasets")
    fmt = _format_of(format, filename)
    limit = settings.STAGEGATE_EVALUATION_MAX_DATASET_MB * 1024 * 1024
    if not data:
        raise missing_parameter("file")
    if len(data) > limit:
        raise InvalidParameter(f"Dataset file too large: {len(data)} bytes (limit {limit}).")
    frame = _read_frame(data, fmt)
    columns = [str(c) for c in frame.columns]
    if target not in columns:
        raise InvalidParameter(f"Invalid value {target!r} for parameter 'target': the dataset's columns are {', '.join(columns)}.")
    if len(frame) == 0:
        raise InvalidParameter("Invalid dataset file: it has no rows.")
    digest = hashlib.sha256(data).hexdigest()
    path = artifacts.join(DATASET_PREFIX, str(model.pk), f"{digest}.{fmt}")
    if not artifacts.is_file(path):
        artifacts.save_stream(path, io.BytesIO(data))
    with transaction.atomic():
        model = access.get_registered_model_for_user(user, model_name, min_level=perms.CAN_MANAGE, lock=True,
                                                     action="attach evaluation datasets")
        existing = EvaluationDataset.objects.filter(model=model, name=name).first()
        if existing is not None and existing.evaluations.exists():
            raise InvalidState(f"Evaluation dataset {name!r} of '{model.name}' was used by evaluations and cannot change; "
                               "attach the new data under another name.")
        fields = dict(description=description or "", target=target, task=task, metrics=metrics, format=fmt, digest=digest,
                      storage_path=path, size_bytes=len(data), row_count=len(frame), columns=columns,
                      created_by=_actor(user), creation_timestamp=now_ms())
        if existing is None:
            dataset = EvaluationDataset.objects.create(model=model, name=name, **fields)
        else:
            for key, value in fields.items():
                setattr(existing, key, value)
            existing.save()
            dataset = existing
        record_event(type="evaluation_dataset.attached", model=model, actor=_actor(user),
                     payload={"dataset": name, "digest": digest, "target": target, "task": task, "metrics": metrics,
                              "rows": len(frame), "replaced": existing is not None})
    return dataset


def dataset_json(ds: EvaluationDataset, *, model_name: str | None = None) -> dict:
    return {
        "id": str(ds.pk), "model_name": model_name or ds.model.name, "name": ds.name, "description": ds.description,
        "target": ds.target, "task": ds.task, "metrics": ds.metrics, "format": ds.format, "digest": ds.digest,
        "size_bytes": ds.size_bytes, "rows": ds.row_count, "columns": ds.columns,
        "created_by": ds.created_by.get_username() if ds.created_by_id else "", "creation_timestamp": ds.creation_timestamp,
    }


# --------------------------------------------------------------------------- evaluations


def evaluable(version) -> bool:
    """Only READY versions with an MLmodel (flavors) in their own folder can be loaded."""
    return version.status == version.READY and bool(version.flavors) and bool(version.storage_path)


def evaluation_json(ev: Evaluation) -> dict:
    return {
        "id": str(ev.pk), "model_name": ev.version.registered_model.name, "version": str(ev.version.version),
        "dataset": ev.dataset.name, "dataset_digest": ev.dataset_digest, "status": ev.status, "trigger": ev.trigger,
        "requested_by": ev.requested_by.get_username() if ev.requested_by_id else "",
        "metrics": ev.metrics, "rows": ev.rows, "load_seconds": ev.load_seconds, "latency_ms_per_row": ev.latency_ms_per_row,
        "environment": ev.environment, "model_checksum": ev.model_checksum, "isolation": ev.isolation,
        "message": ev.message, "logs": ev.logs, "creation_timestamp": ev.creation_timestamp,
        "finished_timestamp": ev.finished_timestamp,
    }


def latest_evaluation(version, dataset: EvaluationDataset) -> Evaluation | None:
    """The version's newest SUCCEEDED evaluation on the dataset as it is now (its digest)."""
    return (Evaluation.objects.filter(version=version, dataset=dataset, dataset_digest=dataset.digest,
                                      status=Evaluation.SUCCEEDED).order_by("-id").first())


def stage_holder(version, stage: str):
    """The version now holding `stage` for the same model (the newest one if several do), not `version` itself."""
    from registry.models import ModelVersion

    return (ModelVersion.objects.filter(registered_model_id=version.registered_model_id, current_stage=stage)
            .exclude(pk=version.pk).order_by("-version").first())


def request_evaluation(*, user, name: str, version: int, dataset: str | None = None) -> list[Evaluation]:
    """Evaluate `version` of `name` again, on one dataset or all of the model's. Needs CAN_EDIT.

    Creates RUNNING evaluations and enqueues `run_evaluation` for each after commit. Raises
    InvalidState (the version is not READY with an MLmodel), InvalidParameter (no such dataset, or
    the model has none), PermissionDenied, DoesNotExist."""
    from approvals.tasks import run_evaluation

    with transaction.atomic():
        model = access.get_registered_model_for_user(user, name, min_level=perms.CAN_EDIT, lock=True, action="run evaluations")
        from registry.access import not_found_version

        mv = model.versions.filter(version=version).first()
        if mv is None:
            raise not_found_version(model.name, version)
        if not evaluable(mv):
            raise InvalidState(f"Version {version} of '{model.name}' cannot be evaluated: it is {mv.status}"
                               + ("" if mv.flavors else " and its folder has no MLmodel") + ".")
        datasets = list(model.evaluation_datasets.all())
        if dataset:
            datasets = [d for d in datasets if d.name == dataset]
            if not datasets:
                raise InvalidParameter(f"Model '{model.name}' has no evaluation dataset named {dataset!r}.")
        if not datasets:
            raise InvalidParameter(f"Model '{model.name}' has no evaluation datasets; attach one first.")
        created = [Evaluation.objects.create(version=mv, dataset=d, dataset_digest=d.digest, trigger="manual",
                                             requested_by=_actor(user)) for d in datasets]
        for ev in created:
            transaction.on_commit(lambda pk=ev.pk: _enqueue(run_evaluation, pk), robust=True)
    return created


def _enqueue(task, *args) -> None:
    task.delay(*args)


def on_registry_events(batch) -> None:
    """Registry notification hook: each `model_version.ready` of a model with datasets, or whose folder
    holds a signature file, gets one `evaluate_ready_version` on the evaluation queue. Idempotent
    downstream: the task skips what it already evaluated."""
    from approvals.signing import signature_file
    from approvals.tasks import evaluate_ready_version
    from registry.models import ModelVersion

    ready = [(e.model_id, e.version) for e in batch if e.type == "model_version.ready" and e.model_id and e.version]
    if not ready:
        return
    with_datasets = set(EvaluationDataset.objects.filter(model_id__in={m for m, _ in ready}).values_list("model_id", flat=True))
    for model_id, number in ready:
        mv = ModelVersion.objects.filter(registered_model_id=model_id, version=number).only(
            "id", "status", "storage_path", "flavors").first()
        if mv is None or not evaluable(mv):
            continue
        if model_id in with_datasets or artifacts.is_file(artifacts.join(mv.storage_path, signature_file())):
            evaluate_ready_version.delay(mv.pk)


def evaluate_ready_version(*, version_id: int) -> list[Evaluation]:
    """For a version that became READY: verify its signature, then evaluate it on each dataset of its
    model it has no evaluation for yet (so a redelivered message does nothing twice)."""
    from approvals.signing import verify_model_version_signature
    from registry.models import ModelVersion

    mv = ModelVersion.objects.select_related("registered_model").filter(pk=version_id).first()
    if mv is None or not evaluable(mv):
        return []
    verify_model_version_signature(version=mv)
    done = []
    for dataset in mv.registered_model.evaluation_datasets.all():
        if Evaluation.objects.filter(version=mv, dataset=dataset, dataset_digest=dataset.digest).exists():
            continue
        ev = Evaluation.objects.create(version=mv, dataset=dataset, dataset_digest=dataset.digest, trigger="ready")
        done.append(run_evaluation(evaluation_id=ev.pk))
    return done


def _prepare_scratch(mv, dataset: EvaluationDataset) -> tuple[str, dict, dict]:
    """A fresh scratch folder: model/ (a read-only copy), data.<format> (read-only), spec.json and
    tmp/ (the child's only writable places are below it: approvals.evaluation_child). Returns (scratch, spec, copied tree info)."""
    base = str(settings.STAGEGATE_EVALUATION_SCRATCH)
    os.makedirs(base, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix="eval-", dir=base)
    model_dir = os.path.join(scratch, "model")
    copied = artifacts.download_tree(mv.storage_path, model_dir)
    data_path = os.path.join(scratch, f"data.{dataset.format}")
    with artifacts.open_file(dataset.storage_path) as src, open(data_path, "wb") as out:
        shutil.copyfileobj(src, out)
    for folder, dirs, files in os.walk(model_dir):
        for f in files:
            os.chmod(os.path.join(folder, f), 0o444)
        os.chmod(folder, 0o555)
    os.chmod(data_path, 0o444)
    tmp = os.path.join(scratch, "tmp")
    os.mkdir(tmp, 0o700)
    spec = {"scratch": scratch, "model_dir": model_dir, "dataset": data_path, "format": dataset.format,
            "target": dataset.target, "task": dataset.task, "metrics": dataset.metrics,
            "memory_mb": settings.STAGEGATE_EVALUATION_MEMORY_MB}
    spec_path = os.path.join(scratch, "spec.json")
    with open(spec_path, "w") as f:
        json.dump(spec, f)
    os.chmod(spec_path, 0o444)
    return scratch, spec, copied


def _run_child(scratch: str) -> dict:
    """Run the child in its own process group; kill the group at the time limit."""
    timeout = settings.STAGEGATE_EVALUATION_TIMEOUT
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": scratch, "TMPDIR": os.path.join(scratch, "tmp"),
           "PYTHONPATH": str(settings.BASE_DIR), "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1",
           "MLFLOW_TRACKING_URI": "file://" + os.path.join(scratch, "tmp", "mlruns")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "approvals.evaluation_child", os.path.join(scratch, "spec.json")],
        cwd=scratch, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, err = proc.communicate()
        return {"outcome": "FAILED", "message": f"killed at the time limit ({timeout:g} s)",
                "logs": err.decode(errors="replace"), "timed_out": True}
    logs = err.decode(errors="replace")
    try:
        result = json.loads(out.decode() or "null")
    except ValueError:
        result = None
    if not isinstance(result, dict):
        return {"outcome": "FAILED", "message": f"the evaluation process exited with code {proc.returncode} without a result",
                "logs": logs}
    result["logs"] = logs
    return result


def run_evaluation(*, evaluation_id: int) -> Evaluation | None:
    """Run the RUNNING evaluation `evaluation_id` (anything else: already done, returned as is) and
    record its outcome, metrics and logs, with an `evaluation.completed`/`evaluation.failed` event
    (and so an audit record) in one transaction that locks the model."""
    from registry.models import RegisteredModel

    ev = Evaluation.objects.select_related("version__registered_model", "dataset").filter(pk=evaluation_id).first()
    if ev is None or ev.status != Evaluation.RUNNING:
        return ev
    mv, dataset = ev.version, ev.dataset
    scratch, result, checksum = None, None, ""
    try:
        if not evaluable(mv):
            result = {"outcome": "FAILED", "message": f"version is {mv.status} without an MLmodel: nothing to load"}
        else:
            scratch, _spec, copied = _prepare_scratch(mv, dataset)
            checksum = copied["checksum"]
            result = _run_child(scratch)
    except Exception as exc:  # storage trouble: a failed evaluation, never a stuck RUNNING one
        log.exception("evaluation %s could not run", evaluation_id)
        result = {"outcome": "FAILED", "message": f"could not run: {type(exc).__name__}: {exc}"}
    finally:
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)
    with transaction.atomic():
        model = RegisteredModel.objects.select_for_update().filter(pk=mv.registered_model_id).first()
        ev = Evaluation.objects.select_for_update().filter(pk=evaluation_id).first()
        if ev is None or model is None or ev.status != Evaluation.RUNNING:
            return ev
        ev.status = Evaluation.SUCCEEDED if result.get("outcome") == "SUCCEEDED" else Evaluation.FAILED
        ev.metrics = result.get("metrics") or {}
        ev.rows = result.get("rows")
        ev.load_seconds = result.get("load_seconds")
        ev.latency_ms_per_row = result.get("latency_ms_per_row")
        ev.environment = result.get("environment") or {}
        ev.isolation = result.get("isolation") or []
        ev.model_checksum = checksum
        ev.message = result.get("message") or ""
        ev.logs = (result.get("logs") or "")[-LOG_TAIL:]
        ev.finished_timestamp = now_ms()
        ev.save()
        record_event(
            type="evaluation.completed" if ev.status == Evaluation.SUCCEEDED else "evaluation.failed",
            model=model, version=mv.version, actor=ev.requested_by,
            payload={"evaluation_id": ev.pk, "dataset": dataset.name, "dataset_digest": ev.dataset_digest,
                     "status": ev.status, "metrics": ev.metrics, "message": ev.message, "model_checksum": checksum},
        )
    ev.version, ev.dataset = mv, dataset
    return ev
