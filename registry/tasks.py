"""Celery entry points of the registry: each takes ids and calls a service (or the outbox)."""

import logging
from datetime import timedelta

from celery import shared_task
from django.db import connection
from django.db.models import Q
from django.utils import timezone

from registry import events
from registry.models import Event, ModelVersion

log = logging.getLogger("stagegate.registry.tasks")

CLAIM_LEASE = timedelta(minutes=5)
SWEEP_AGE = timedelta(minutes=1)
BATCH = 200


@shared_task(acks_late=True, autoretry_for=(ConnectionError,), retry_backoff=True, max_retries=5)
def register_model_version(version_id: int) -> str | None:
    """Finish a PENDING_REGISTRATION version (copy, check MLmodel, mark READY/FAILED). Idempotent."""
    from registry.services import finish_model_version_registration

    mv = finish_model_version_registration(version_id=version_id)
    return mv.status if mv is not None else None


def claim(*, limit: int = BATCH) -> list[int]:
    """Take up to `limit` events, oldest first, with one conditional UPDATE … RETURNING: only
    undispatched rows whose lease is free, so a second worker, a retry or a redelivery gets
    none of them. Returns the claimed ids (in id order)."""
    table = connection.ops.quote_name(Event._meta.db_table)
    # PostgreSQL: rows another worker is claiming right now are skipped, not waited for; the outer
    # conditions are re-checked on the row as it is when locked, so a row is never claimed twice.
    skip = " FOR UPDATE SKIP LOCKED" if connection.features.has_select_for_update_skip_locked else ""
    free = "dispatched_at IS NULL AND (claimed_until IS NULL OR claimed_until < %s)"
    now = timezone.now()
    stamp = connection.ops.adapt_datetimefield_value(now)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET claimed_until = %s, attempts = attempts + 1"
            f" WHERE {free} AND id IN (SELECT id FROM {table} WHERE {free} ORDER BY id LIMIT %s{skip})"
            " RETURNING id",
            [connection.ops.adapt_datetimefield_value(now + CLAIM_LEASE), stamp, stamp, limit],
        )
        return sorted(row[0] for row in cursor.fetchall())


def deliver(batch: list[Event]) -> list[Event]:
    """Hand a batch to every notification hook; returns the events every hook took.

    A hook sees the whole batch once (one lookup per batch, not per event). When it raises, it
    is called again per event, so only the events it fails on are held back (they stay claimed
    and the sweep retries them once the lease runs out)."""
    for hook in list(events.NOTIFICATION_HOOKS):
        if not batch:
            break
        try:
            hook(batch)
            continue
        except Exception:
            if len(batch) == 1:
                log.exception("delivering registry event %s failed", batch[0].pk)
                return []
        kept = []
        for event in batch:
            try:
                hook([event])
            except Exception:
                log.exception("delivering registry event %s failed", event.pk)
                continue
            kept.append(event)
        batch = kept
    return batch


@shared_task(acks_late=True)
def dispatch_events(flag: str | None = None) -> int:
    """Hand every undispatched event to the notification hooks, each at most once, in batches
    (one claim, one load, one pass of each hook, one mark per batch) until a batch comes back short.

    `flag` is the "a dispatch is queued" marker of the request that published this run
    (`registry.events.request_dispatch`); it comes down before the first claim, so an event whose
    writer saw it up, and therefore published nothing, is committed before that claim and taken here.
    Safe to run twice or on two workers at once: each event is claimed first.
    Returns how many events this run delivered."""
    if flag is not None:
        events.clear_dispatch_flag(dispatch_events.app.conf, flag)
    delivered = 0
    while True:
        ids = claim()
        if ids:
            batch = list(Event.objects.select_related("actor").filter(pk__in=ids).order_by("id"))
            done = [event.pk for event in deliver(batch)]
            if done:
                Event.objects.filter(pk__in=done).update(dispatched_at=timezone.now(), claimed_until=None)
            delivered += len(done)
        if len(ids) < BATCH:
            return delivered


@shared_task(acks_late=True)
def sweep_events() -> bool:
    """Periodic (beat): re-enqueue dispatch when events sat undispatched for over a minute
    (a lost broker message, a crashed worker)."""
    cutoff = timezone.now() - SWEEP_AGE
    created_cutoff = int(cutoff.timestamp() * 1000)
    stale = (
        Event.objects.filter(dispatched_at__isnull=True, created__lt=created_cutoff)
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=timezone.now()))
        .exists()
    )
    if stale:
        dispatch_events.delay()
    return stale


@shared_task(acks_late=True)
def sweep_pending_registrations() -> int:
    """Periodic (beat): re-enqueue registrations still PENDING after a minute (lost task)."""
    from tracking.models import now_ms

    cutoff = now_ms() - int(SWEEP_AGE.total_seconds() * 1000)
    ids = list(
        ModelVersion.objects.filter(status=ModelVersion.PENDING, creation_timestamp__lt=cutoff).values_list("id", flat=True)[:BATCH]
    )
    for version_id in ids:
        register_model_version.delay(version_id)
    return len(ids)
