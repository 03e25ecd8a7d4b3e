"""The registry's outbox: `record_event` writes the row in the caller's transaction and
asks for one `dispatch_events` run after commit; `NOTIFICATION_HOOKS` are the targets
dispatched events are handed to, a batch at a time (the monitoring work adds webhooks and e-mail here).

Publishing a task costs the request ~1 ms of CPU and the worker several more, so a burst of
writes shares one run: the first writer after a run started raises a flag in the broker's Redis
(`SET NX`) and publishes; the writers after it see the flag and publish nothing, which is safe
because the queued run takes the flag down before its first claim, that is after their commits.
A lost message leaves the flag up for at most `FLAG_TTL` (and the beat sweep runs anyway).
New versions' registrations are requested the same way (`request_registration`).
"""

import atexit
import logging
import os
import threading
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from django.conf import settings
from django.db import connection, transaction

from core.sql import insert_statement
from registry.models import Event

log = logging.getLogger("stagegate.registry.events")

EVENT_TYPES = {
    "registered_model.created",
    "registered_model.renamed",
    "registered_model.deleted",
    "registered_model.description_changed",
    "registered_model_tag.set",
    "registered_model_tag.deleted",
    "model_version.created",
    "model_version.ready",
    "model_version.failed",
    "model_version.deleted",
    "model_version.description_changed",
    "model_version.stage_transitioned",
    "model_version_tag.set",
    "model_version_tag.deleted",
    "alias.set",
    "alias.deleted",
}

# Each hook is called as hook(events) with a batch of claimed events (oldest first), so it can
# look things up once per batch. When it raises, it is called again with one event at a time (so a
# hook must be idempotent, as a re-dispatched event already requires); an event it still fails on is
# left undispatched and the sweep retries it once the claim lease runs out.
NOTIFICATION_HOOKS: list[Callable[[list[Event]], None]] = []

# Each hook is called as hook(event) inside record_event, in the change's own transaction, right
# after the row is written (monitoring appends the audit record here); an exception rolls the
# change back.
RECORD_HOOKS: list[Callable[[Event], None]] = []


def log_events(batch: list[Event]) -> None:
    if log.isEnabledFor(logging.INFO):
        for event in batch:
            log.info("registry event %s id=%s model=%s version=%s", event.type, event.pk, event.model_name, event.version)


NOTIFICATION_HOOKS.append(log_events)


def register_hook(hook: Callable[[list[Event]], None]) -> Callable[[list[Event]], None]:
    if hook not in NOTIFICATION_HOOKS:
        NOTIFICATION_HOOKS.append(hook)
    return hook


def record_event(*, type: str, model, actor=None, version: int | None = None, payload: dict | None = None) -> Event:
    """Write one outbox row inside the current transaction and make sure a dispatch runs after commit.

    `model` is the RegisteredModel (its name is copied so the row outlives a delete).
    """
    if type not in EVENT_TYPES:
        raise ValueError(f"unknown registry event type {type!r}")
    event = Event(
        type=type,
        model=model if model is not None and model.pk is not None else None,
        model_name=model.name if model is not None else "",
        version=version,
        actor=actor if actor is not None and getattr(actor, "pk", None) else None,
        payload=payload or {},
    )
    _insert(event)
    for hook in list(RECORD_HOOKS):
        hook(event)
    _schedule_dispatch()
    return event


def _insert(event: Event) -> None:
    """INSERT … RETURNING id (the outbox row is written by every registry change: no query compiled)."""
    sql, params = insert_statement(event, returning=Event._meta.pk.column)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        event.pk = cursor.fetchone()[0]
    event._state.adding, event._state.db = False, connection.alias


def _schedule_dispatch() -> None:
    """One dispatch request per transaction, however many events it wrote."""
    _schedule_once(request_dispatch)


def _schedule_once(request) -> None:
    connection = transaction.get_connection()
    if connection.in_atomic_block:
        for entry in connection.run_on_commit:
            if entry[1] is request:
                return
    # robust: a broker outage must not fail the committed change; the beat sweeps catch up.
    transaction.on_commit(request, robust=True)


FLAG_TTL = 60  # seconds; only matters when a published run never starts (a lost message)
_redis_clients: dict = {}


def _flag_store(conf, *, write: bool):
    """A Redis client on the broker Celery publishes to (`write`) or consumes from, or None when
    tasks run eagerly or the broker is not Redis."""
    url = (conf.broker_write_url if write else conf.broker_read_url) or conf.broker_url
    if conf.task_always_eager or not url or urlsplit(url).scheme not in ("redis", "rediss"):
        return None
    client = _redis_clients.get(url)
    if client is None:
        import redis

        client = _redis_clients[url] = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    return client


def _flag_key(conf, name: str = "dispatch") -> str:
    """One flag per job, database and queue: deployments (or test runs) sharing a Redis never share it."""
    return f"stagegate:{name}-queued:{connection.settings_dict['NAME']}:{conf.task_default_queue}"


def publish_once(task, name: str) -> None:
    """After commit: see that a run of `task` (which takes the flag key and clears it before its first
    claim) will see this transaction's rows. With a Redis broker the request is handed to this
    process's publisher (`_Publisher`), which checks the flag and publishes a moment later for every
    request of the moment at once; with STAGEGATE_PUBLISH_DELAY_MS = 0, or eager tasks, right here."""
    conf = task.app.conf
    client = _flag_store(conf, write=True)
    if client is None:
        task.delay()
        return
    delay = getattr(settings, "STAGEGATE_PUBLISH_DELAY_MS", 0)
    if delay > 0:
        _publisher.request(task, name, delay / 1000)
        return
    _publish_flagged(client, task, name)


def _publish_flagged(client, task, name: str) -> None:
    """Raise the flag and publish, unless the flag is up. Raises only when the publish itself fails."""
    conf = task.app.conf
    key = _flag_key(conf, name)
    try:
        if not client.set(key, "1", nx=True, ex=FLAG_TTL):
            return
    except Exception:
        log.warning("could not check the %s flag; publishing anyway", name, exc_info=True)
        task.delay()
        return
    try:
        task.delay(key)
    except Exception:
        # Nothing was queued: the next writer must publish.
        clear_flag(conf, key)
        raise


class _Publisher:
    """One thread per process that turns the requests of a short moment into one flag check (and at
    most one publish) per job: the flag's Redis round trip had cost every registry write ~0.2 ms of
    CPU after its commit, ahead of its answer. A request is at most the delay late; one lost with
    its process (killed before the moment ended) is caught up by the beat sweeps, as a publish lost
    to a broker outage is. Started lazily, again in a forked child; flushed at exit."""

    def __init__(self):
        self.lock = threading.Lock()
        self.pending: dict[str, object] = {}
        self.wake = threading.Event()
        self.pid = None
        self.delay = 0.0

    def request(self, task, name: str, delay: float) -> None:
        with self.lock:
            self.pending[name] = task
            self.delay = delay
            if self.pid != os.getpid():
                self.pid, self.wake = os.getpid(), threading.Event()
                threading.Thread(target=self._run, name="stagegate-publisher", daemon=True).start()
                atexit.register(self.flush)
        self.wake.set()

    def _run(self) -> None:
        while True:
            self.wake.wait()
            time.sleep(self.delay)
            self.wake.clear()
            self.flush()

    def flush(self) -> None:
        with self.lock:
            jobs, self.pending = self.pending, {}
        for name, task in jobs.items():
            try:
                client = _flag_store(task.app.conf, write=True)
                if client is None:
                    task.delay()
                else:
                    _publish_flagged(client, task, name)
            except Exception:
                log.warning("could not publish the %s run; the beat sweep will", name, exc_info=True)


_publisher = _Publisher()


def request_dispatch() -> None:
    """After commit: make sure a `dispatch_events` run will see this transaction's events."""
    from registry.tasks import dispatch_events

    publish_once(dispatch_events, "dispatch")


def request_registration() -> None:
    """After commit: make sure a `register_pending` run will see this transaction's new versions."""
    from registry.tasks import register_pending

    publish_once(register_pending, "registration")


def schedule_registration() -> None:
    """One registration request per transaction, however many versions it created."""
    _schedule_once(request_registration)


def clear_flag(conf, key: str) -> None:
    """Called by the run the flag announced, before its first claim. Never fails the run: a flag
    left up runs out after FLAG_TTL."""
    client = _flag_store(conf, write=False)
    if client is None:
        return
    try:
        client.delete(key)
    except Exception:
        log.warning("could not clear the flag %s", key, exc_info=True)
