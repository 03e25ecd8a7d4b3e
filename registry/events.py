"""The registry's outbox: `record_event` writes the row in the caller's transaction and
schedules one `dispatch_events` run after commit; `NOTIFICATION_HOOKS` are the targets
a dispatched event is handed to (the monitoring work adds webhooks and e-mail here)."""

import logging
from collections.abc import Callable

from django.db import transaction

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

# Each hook is called as hook(event) for every dispatched event; an exception leaves the
# event undispatched so the sweep retries it once the claim lease runs out.
NOTIFICATION_HOOKS: list[Callable[[Event], None]] = []

# Each hook is called as hook(event) inside record_event, in the change's own transaction, right
# after the row is written (monitoring appends the audit record here); an exception rolls the
# change back.
RECORD_HOOKS: list[Callable[[Event], None]] = []


def log_event(event: Event) -> None:
    log.info("registry event %s id=%s model=%s version=%s", event.type, event.pk, event.model_name, event.version)


NOTIFICATION_HOOKS.append(log_event)


def register_hook(hook: Callable[[Event], None]) -> Callable[[Event], None]:
    if hook not in NOTIFICATION_HOOKS:
        NOTIFICATION_HOOKS.append(hook)
    return hook


def record_event(*, type: str, model, actor=None, version: int | None = None, payload: dict | None = None) -> Event:
    """Write one outbox row inside the current transaction and make sure a dispatch runs after commit.

    `model` is the RegisteredModel (its name is copied so the row outlives a delete).
    """
    if type not in EVENT_TYPES:
        raise ValueError(f"unknown registry event type {type!r}")
    event = Event.objects.create(
        type=type,
        model=model if model is not None and model.pk is not None else None,
        model_name=model.name if model is not None else "",
        version=version,
        actor=actor if actor is not None and getattr(actor, "pk", None) else None,
        payload=payload or {},
    )
    for hook in list(RECORD_HOOKS):
        hook(event)
    _schedule_dispatch()
    return event


def _schedule_dispatch() -> None:
    """One dispatch per transaction, however many events it wrote."""
    connection = transaction.get_connection()
    if connection.in_atomic_block:
        for entry in connection.run_on_commit:
            if getattr(entry[1], "_stagegate_dispatch", False):
                return

    def enqueue():
        from registry.tasks import dispatch_events

        dispatch_events.delay()

    enqueue._stagegate_dispatch = True
    # robust: a broker outage must not fail the committed change; the beat sweep catches up.
    transaction.on_commit(enqueue, robust=True)
