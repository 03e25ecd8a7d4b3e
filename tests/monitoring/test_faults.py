"""Fault tests with real Celery workers on Redis and PostgreSQL, each with nothing lost:

- a worker SIGKILLed mid-delivery: another worker completes it with the same delivery id;
- the database dropping the workers' connections during a sweep: the sweep recovers;
- Redis stopped while 100 registry changes are made, then started: all 100 events delivered.

PostgreSQL only (the workers share the pytest-django test database); CI runs them.
"""

import json
import os
import signal
import subprocess
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from monitoring import services
from monitoring.models import Webhook, WebhookDelivery
from registry import services as registry
from registry.models import Event
from tests.celery_routing import reset_producer, set_broker
from tests.conftest import missing, require_postgresql

ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = os.environ.get("STAGEGATE_MONITOR_TEST_REDIS_URL", "redis://127.0.0.1:6379/7")


def wait_for(predicate, timeout=30.0, interval=0.1, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


def reset_pools(app):
    """Drop the app's broker connections and cached routing so the next publish uses the current conf."""
    reset_producer(app)
    app.amqp.__dict__.pop("send_task_message", None)  # it captured task_publish_retry when first used


class Workers:
    """Start real `celery worker` subprocesses against the test database and a broker."""

    def __init__(self, tmp_path, settings):
        from config.celery import app

        self.app = app
        self.tmp_path = tmp_path
        self.settings = settings
        self.procs: list[tuple[subprocess.Popen, Path]] = []
        self.queue = f"sg-mon-{os.getpid()}-{int(time.time() * 1000)}"
        self.broker = REDIS_URL
        self.previous = (app.conf.task_always_eager, app.conf.broker_url, app.conf.task_default_queue,
                         app.conf.task_publish_retry, dict(app.conf.broker_transport_options or {}))

    def use_broker(self, url: str):
        self.broker = url
        set_broker(self.app, url)
        reset_pools(self.app)

    def activate(self):
        self.app.conf.task_always_eager = False
        self.app.conf.task_default_queue = self.queue
        self.use_broker(self.broker)

    def start(self, name: str, **env_extra) -> subprocess.Popen:
        db = connection.settings_dict
        auth = db.get("USER") or "postgres"
        if db.get("PASSWORD"):
            auth += ":" + db["PASSWORD"]
        env = {
            **os.environ,
            "DATABASE_URL": f"postgres://{auth}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}",
            "DATABASE_CONN_MAX_AGE": "60",
            "CELERY_BROKER_URL": self.broker,
            "CELERY_TASK_DEFAULT_QUEUE": self.queue,
            "STAGEGATE_ARTIFACT_ROOT": str(self.settings.STORAGES["artifacts"]["OPTIONS"]["location"]),
            "STAGEGATE_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1/32",
            "STAGEGATE_WEBHOOK_TIMEOUT": "2",
            "STAGEGATE_WEBHOOK_LEASE_GRACE_SECONDS": "0",
            "STAGEGATE_WEBHOOK_BACKOFF_SECONDS": "1",
            "STAGEGATE_MONITOR_SWEEP_AGE_SECONDS": "0",
            "STAGEGATE_EMAIL_BATCH_SECONDS": "0",
            "DJANGO_SETTINGS_MODULE": "config.settings",
            **env_extra,
        }
        log_path = self.tmp_path / f"worker-{name}.log"
        log_file = open(log_path, "w")
        proc = subprocess.Popen(
            [str(ROOT / ".venv/bin/celery"), "-A", "config", "worker", "--pool", "solo", "-Q", self.queue, "-n", f"{name}@%h",
             "--without-heartbeat", "--without-gossip", "--without-mingle", "-l", "INFO"],
            cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT,
        )
        self.procs.append((proc, log_path))
        wait_for(lambda: proc.poll() is not None or "ready." in log_path.read_text(), 30, what=f"worker {name} ready")
        if proc.poll() is not None:
            raise RuntimeError(f"worker {name} exited:\n{log_path.read_text()}")
        return proc

    def log(self, proc) -> str:
        for p, path in self.procs:
            if p is proc:
                return path.read_text()
        return ""

    def stop_all(self):
        for proc, _ in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc, _ in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        app = self.app
        (app.conf.task_always_eager, app.conf.broker_url, app.conf.task_default_queue, app.conf.task_publish_retry,
         app.conf.broker_transport_options) = self.previous
        set_broker(app, app.conf.broker_url)
        app.conf.broker_write_url = app.conf.broker_read_url = None
        reset_pools(app)


@pytest.fixture
def workers(transactional_db, tmp_path, settings):
    require_postgresql("real workers share the test database: PostgreSQL only")
    w = Workers(tmp_path, settings)
    w.activate()
    yield w
    w.stop_all()


def _hook(admin, receiver, events=("registered_model.created",)):
    return services.create_webhook(user=admin, flavor=Webhook.MLFLOW, name="faults", url=receiver.url, events=list(events), secret="k")


def _header(req, name):
    return next((v for k, v in req["headers"].items() if k.lower() == name.lower()), None)


def test_worker_killed_mid_delivery_is_completed_by_another_with_the_same_id(workers, admin, owner, receiver):
    hook = _hook(admin, receiver)
    first = workers.start("a")
    receiver.hold = threading.Event()
    registry.create_registered_model(name="killed", user=owner)
    # The worker took the delivery and is waiting for the receiver's answer...
    assert receiver.arrived.wait(30), workers.log(first)
    delivery = WebhookDelivery.objects.get(webhook=hook)
    assert delivery.attempt_log.count() == 1
    # ... when it is killed outright.
    os.kill(first.pid, signal.SIGKILL)
    first.wait(10)
    receiver.hold.set()
    receiver.hold = None
    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.PENDING and delivery.lease_until is not None
    interrupted = delivery.attempt_log.get()
    assert interrupted.finished_at is None, "the attempt is kept, shown as interrupted"

    workers.start("b")
    # The lease runs out (timeout + grace), and the periodic sweep hands the delivery to the live worker.
    wait_for(lambda: WebhookDelivery.objects.filter(pk=delivery.pk, lease_until__lt=timezone.now()).exists(), 20, what="lease expiry")
    services.sweep()
    wait_for(lambda: WebhookDelivery.objects.filter(pk=delivery.pk, status=WebhookDelivery.DELIVERED).exists(), 30, what="delivery")
    delivery.refresh_from_db()
    assert delivery.attempts == 2
    attempts = list(delivery.attempt_log.order_by("number"))
    assert attempts[1].status_code == 200 and attempts[0].worker != attempts[1].worker
    assert len(receiver.requests) == 2
    assert {_header(r, "X-MLflow-Delivery-Id") for r in receiver.requests} == {str(delivery.pk)}


def test_database_dropping_connections_during_a_sweep_recovers(workers, admin, owner, receiver):
    hook = _hook(admin, receiver)
    receiver.respond(500)
    for i in range(20):
        registry.create_registered_model(name=f"m{i}", user=owner)
    # Make the 20 deliveries (first attempt failed, next one far away) with the eager engine in-process.
    workers.app.conf.task_always_eager = True
    from registry.tasks import dispatch_events

    dispatch_events()
    workers.app.conf.task_always_eager = False
    assert WebhookDelivery.objects.filter(webhook=hook, status=WebhookDelivery.RETRYING).count() == 20
    WebhookDelivery.objects.filter(webhook=hook).update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    receiver.respond(200)
    worker = workers.start("db")
    # Warm the worker's persistent connection, then keep killing every backend but ours while the sweep runs.
    from monitoring.tasks import sweep

    terminated = []
    stop = threading.Event()

    def terminate_backends():
        from django.db import connections

        conn = connections.create_connection("default")
        try:
            while not stop.is_set():
                with conn.cursor() as cursor:
                    cursor.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid() AND pid <> %s",
                        [own_pid],
                    )
                    terminated.extend(row[0] for row in cursor.fetchall() if row[0])
                time.sleep(0.05)
        finally:
            conn.close()

    connection.ensure_connection()
    own_pid = connection.connection.info.backend_pid
    killer = threading.Thread(target=terminate_backends, daemon=True)
    killer.start()
    sweep.delay()
    time.sleep(1.5)
    stop.set()
    killer.join(5)
    assert terminated, "the fault was injected"
    # Whatever the sweep and the deliveries hit, the retries finish the job.
    # Beat keeps sweeping (every 30 s in production; every second here): a delivery whose worker lost
    # its connection after posting is retried, with the same id, once its lease ran out.
    def all_delivered():
        if WebhookDelivery.objects.filter(webhook=hook, status=WebhookDelivery.DELIVERED).count() == 20:
            return True
        sweep.delay()
        time.sleep(1)
        return False

    try:
        wait_for(all_delivered, 60, what="all 20 deliveries after the database dropped connections")
    except AssertionError:
        raise AssertionError(workers.log(worker)[-6000:]) from None
    log = workers.log(worker)
    assert "OperationalError" in log or "InterfaceError" in log or "terminating connection" in log, log[-3000:]
    expected = {str(pk) for pk in WebhookDelivery.objects.filter(webhook=hook).values_list("pk", flat=True)}
    retried = {_header(r, "X-MLflow-Delivery-Id") for r in receiver.requests[20:]}
    assert retried == expected, "every delivery arrived, with its own id on any repeat"


@pytest.fixture
def own_redis(tmp_path):
    """A private redis-server on its own port (never the shared 6379), which the test stops and starts."""
    import shutil
    import socket

    if not shutil.which("redis-server"):
        missing("redis-server is not installed (the outage test starts and stops its own)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    class Server:
        url = f"redis://127.0.0.1:{port}/0"
        proc = None

        def start(self):
            self.proc = subprocess.Popen(
                ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                 "--daemonize", "no", "--dir", str(tmp_path)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )

            def up():
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.2) as c:
                        c.sendall(b"PING\r\n")
                        return c.recv(16).startswith(b"+PONG")
                except OSError:
                    return False

            wait_for(up, 10, 0.05, what="redis-server up")

        def stop(self):
            self.proc.terminate()
            self.proc.wait(10)

    server = Server()
    server.start()
    yield server
    if server.proc.poll() is None:
        server.stop()


def test_redis_outage_loses_no_event(workers, own_redis, admin, owner, receiver, settings):
    settings.STAGEGATE_MONITOR_SWEEP_AGE_SECONDS = 0
    workers.use_broker(own_redis.url)
    # Production bounds each publish to a few quick reconnects (CELERY_BROKER_TRANSPORT_OPTIONS); here
    # none at all, so 100 changes against a dead broker take seconds. The registry's robust on_commit
    # swallows the failed publish: the changes are committed either way.
    workers.app.conf.task_publish_retry = False
    workers.app.conf.broker_transport_options = {**workers.app.conf.broker_transport_options, "max_retries": 0}
    reset_pools(workers.app)
    hook = _hook(admin, receiver)
    worker = workers.start("r")

    own_redis.stop()
    started = time.time()
    for i in range(100):
        registry.create_registered_model(name=f"outage-{i:03d}", user=owner)
    # Every change and its audit record committed; nothing could be handed to the broker.
    assert Event.objects.filter(type="registered_model.created", dispatched_at__isnull=True).count() == 100
    from monitoring.models import AuditRecord

    assert AuditRecord.objects.filter(type="registered_model.created").count() == 100
    assert receiver.requests == []

    assert time.time() - started < 30, "a dead broker must not make each change hang"
    own_redis.start()
    workers.use_broker(own_redis.url)

    def all_delivered():
        if WebhookDelivery.objects.filter(webhook=hook, status=WebhookDelivery.DELIVERED).count() == 100:
            return True
        services.sweep()  # what beat does every 30 s
        time.sleep(1)
        return False

    try:
        wait_for(all_delivered, 90, what="all 100 events delivered after Redis came back")
    except AssertionError:
        raise AssertionError(workers.log(worker)[-5000:]) from None
    names = sorted(json.loads(r["body"])["data"]["name"] for r in receiver.requests)
    assert sorted(set(names)) == [f"outage-{i:03d}" for i in range(100)]
    assert not Event.objects.filter(dispatched_at__isnull=True).exists()
    ids = {_header(r, "X-MLflow-Delivery-Id") for r in receiver.requests}
    assert len(ids) == 100
