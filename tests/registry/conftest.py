"""Registry fixtures: commit callbacks that run as in production, model files on disk, a real Celery worker."""

import logging
import os
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from django.db import connection, transaction

from registry import services
from tests.celery_routing import restore_producer, route_producer
from tests.conftest import require_postgresql

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _run_commit_callbacks(request, monkeypatch):
    """Inside a pytest-django test transaction, commit callbacks never run. Run them when the
    service's own outermost atomic block exits (as a real commit would), so the eager
    registration and dispatch tasks behave as in production. Tests that inspect the callbacks
    themselves ask for `manual_on_commit`."""
    if "manual_on_commit" in request.fixturenames or "transactional_db" in request.fixturenames or "live_server" in request.fixturenames:
        yield
        return
    request.getfixturevalue("db")
    base_depth = len(connection.atomic_blocks)
    original_exit = transaction.Atomic.__exit__

    def exit_and_run(self, exc_type, exc_value, traceback):
        result = original_exit(self, exc_type, exc_value, traceback)
        conn = transaction.get_connection(self.using)
        if len(conn.atomic_blocks) <= base_depth and conn.run_on_commit:
            while conn.run_on_commit:
                _, callback, robust = conn.run_on_commit.pop(0)
                if robust:  # as Django does: log and go on
                    try:
                        callback()
                    except Exception:
                        logging.getLogger("django.db.backends.base").exception("robust on_commit callback failed")
                else:
                    callback()
        return result

    monkeypatch.setattr(transaction.Atomic, "__exit__", exit_and_run)
    yield


@pytest.fixture
def manual_on_commit():
    """Marker fixture: commit callbacks stay queued (use django_capture_on_commit_callbacks)."""
    return None


def write_model_dir(root: Path, relpath: str, *, with_mlmodel: bool = True, extra: dict | None = None) -> str:
    """Write a tiny MLflow model (MLmodel + a payload file) at <artifact root>/<relpath>."""
    folder = root / relpath
    folder.mkdir(parents=True, exist_ok=True)
    if with_mlmodel:
        (folder / "MLmodel").write_text(
            yaml.safe_dump(
                {
                    "flavors": {
                        "python_function": {"loader_module": "mlflow.sklearn", "model_path": "model.pkl", "python_version": "3.12"},
                        "sklearn": {"pickled_model": "model.pkl", "serialization_format": "pickle", "sklearn_version": "1.6"},
                    },
                    "signature": {"inputs": '[{"type": "double", "name": "alcohol"}]', "outputs": '[{"type": "double"}]'},
                }
            )
        )
    (folder / "model.pkl").write_bytes(b"not really a pickle")
    for name, content in (extra or {}).items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(content)
    return relpath


def ensure_experiment(experiment_id: int = 0):
    """The experiment (the shared Default one, id 0, everyone may read): transactional tests flush
    the row its data migration made."""
    from tracking.models import Experiment

    return Experiment.objects.get_or_create(
        pk=experiment_id, defaults={"name": "Default", "artifact_location": f"mlflow-artifacts:/{experiment_id}"}
    )[0]


def ensure_run(run_id: str, experiment_id: int = 0):
    """A run with this id in the Default experiment (a version's run_id must name a run the caller reads)."""
    from tracking.models import Run

    experiment = ensure_experiment(experiment_id)
    return Run.objects.get_or_create(
        run_uuid=run_id, defaults={"experiment": experiment, "artifact_uri": f"mlflow-artifacts:/{experiment.pk}/{run_id}/artifacts"}
    )[0]


@pytest.fixture
def model_files(_artifact_root):
    """model_files("0/run/artifacts/model") -> the mlflow-artifacts: URI of a fresh model folder
    (in the Default experiment's folder unless told otherwise, so every persona may register it)."""

    def make(relpath: str = "0/abc/artifacts/model", **kwargs) -> str:
        ensure_experiment()
        write_model_dir(_artifact_root, relpath, **kwargs)
        return "mlflow-artifacts:/" + relpath

    return make


@pytest.fixture
def make_version(owner, model_files):
    """make_version(name, stage=None) -> a READY version (the model is created when missing)."""
    counter = {"n": 0}

    def make(name: str = "m", *, stage: str | None = None, user=None, **kwargs):
        user = user or owner
        from registry.models import RegisteredModel

        if not RegisteredModel.objects.filter(name=name).exists():
            services.create_registered_model(name=name, user=user)
        counter["n"] += 1
        source = kwargs.pop("source", None)
        if source is None and kwargs.get("run_id"):
            # The version's run: a real one, with the model in its artifact folder (MLflow's rule).
            run = ensure_run(kwargs["run_id"])
            source = model_files(f"{run.artifact_uri.split(':/', 1)[1].strip('/')}/model{counter['n']}")
        source = source or model_files(f"0/run{counter['n']}/artifacts/model")
        mv = services.create_model_version(name=name, source=source, user=user, **kwargs)
        if stage:
            services.transition_model_version_stage(name=name, version=mv.version, stage=stage, user=user)
        mv.refresh_from_db()
        return mv

    return make


# --------------------------------------------------------------------------- a real Celery worker


def _redis_url() -> str:
    """The registry tests' own Redis DB (4), on the broker's host when one is configured (CI)."""
    if os.environ.get("STAGEGATE_TEST_REDIS_URL"):
        return os.environ["STAGEGATE_TEST_REDIS_URL"]
    from urllib.parse import urlsplit, urlunsplit

    from django.conf import settings

    broker = settings.CELERY_BROKER_URL or ""
    if broker.startswith("redis"):
        parts = urlsplit(broker)
        return urlunsplit((parts.scheme, parts.netloc, "/4", "", ""))
    return "redis://127.0.0.1:6379/4"


@pytest.fixture
def celery_worker(transactional_db, settings):
    """A real `celery worker` subprocess on Redis, reading the pytest-django test database.

    Tasks go to a queue of the test's own on the registry tests' Redis DB (4); eager mode is
    switched off for the test. PostgreSQL only (the worker must see the test database): skipped on
    SQLite unless STAGEGATE_REQUIRE_SERVICES=1, where it fails instead.
    """
    with running_worker(settings) as proc:
        yield proc


@contextmanager
def running_worker(settings, *, queues: dict[str, str] | None = None, env: dict | None = None):
    """Start the worker (the `celery_worker` fixture). `queues` maps routed queues (CELERY_TASK_ROUTES)
    to queues of this run's own, which the same worker serves; `env` adds variables for it."""
    from config.celery import app

    db = connection.settings_dict
    require_postgresql("the real worker shares the test database: PostgreSQL only")
    # A queue of this run's own: concurrent test runs on one Redis never take each other's tasks.
    queue = f"sg-reg-{os.getpid()}-{time.monotonic_ns()}"
    user = db.get("USER") or "postgres"
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    password = db.get("PASSWORD") or ""
    auth = f"{user}:{password}@" if password else f"{user}@"
    env_extra, env = env, {
        **os.environ,
        "DATABASE_URL": f"postgres://{auth}{host}:{port}/{db['NAME']}",
        "CELERY_BROKER_URL": _redis_url(),
        "CELERY_TASK_DEFAULT_QUEUE": queue,
        "STAGEGATE_VAR_DIR": os.environ.get("STAGEGATE_VAR_DIR", str(ROOT / "var")),
        "STAGEGATE_ARTIFACT_ROOT": str(settings.STORAGES["artifacts"]["OPTIONS"]["location"]),
        "DJANGO_SETTINGS_MODULE": "config.settings",
    }
    env.update(env_extra or {})
    served = [queue, *(queues or {}).values()]
    routes = app.conf.task_routes
    log_path = Path(settings.STORAGES["artifacts"]["OPTIONS"]["location"]).parent / "celery-worker.log"
    log_file = open(log_path, "w")
    proc = subprocess.Popen(
        [str(ROOT / ".venv/bin/celery"), "-A", "config", "worker", "--pool", "threads", "-c", "2", "-Q", ",".join(served),
         "--without-heartbeat", "--without-gossip", "--without-mingle", "-l", "INFO"],
        cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT,
    )
    previous = None
    try:
        # Wait until the worker listens (it logs "ready.").
        deadline = time.time() + 30
        while "ready." not in log_path.read_text():
            if proc.poll() is not None:
                raise RuntimeError("celery worker exited:\n" + log_path.read_text())
            if time.time() > deadline:
                raise RuntimeError("celery worker did not start:\n" + log_path.read_text())
            time.sleep(0.2)
        if queues:
            app.conf.task_routes = {name: {"queue": queues.get(route["queue"], route["queue"])}
                                    for name, route in (routes or {}).items()}
        previous = route_producer(app, broker_url=_redis_url(), queue=queue)
        yield proc
    finally:
        app.conf.task_routes = routes
        if previous is not None:
            restore_producer(app, previous)
        proc.terminate()  # warm shutdown: running tasks finish
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log_file.close()
