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


REGISTRATION_LEASE = timedelta(minutes=15)  # longer than any copy should take; a lapsed claim is retried
REGISTRATION_BATCH = 20


@shared_task(acks_late=True, autoretry_for=(ConnectionError,), retry_backoff=True, max_retries=5)
def register_model_version(version_id: int) -> str | None:
    """Finish one PENDING_REGISTRATION version (copy, check MLmodel, mark READY/FAILED). Idempotent.
    New versions go through `register_pending`; this stays for messages queued before it."""
    from registry.services import finish_model_version_registration

    mv = finish_model_version_registration(version_id=version_id)
    return mv.status if mv is not None else None


def claim_registrations(*, limit: int = REGISTRATION_BATCH) -> list[int]:
    """Take up to `limit` PENDING versions whose registration nobody holds, oldest first (`_claim`):
    a second run, the sweep or a redelivered message gets none of them until the lease lapses."""
    from tracking.models import now_ms

    now = now_ms()
    return _claim(
        ModelVersion, "status = %s AND (registration_claimed_until IS NULL OR registration_claimed_until < %s)",
        [ModelVersion.PENDING, now], "registration_claimed_until = %s", [now + int(REGISTRATION_LEASE.total_seconds() * 1000)], limit,
    )


def _claim(model, free: str, free_params: list, claim: str, claim_params: list, limit: int) -> list[int]:
    """Claim up to `limit` rows of `model` that match `free`, oldest id first, by setting `claim` on
    them, in one statement; returns their ids in order. On PostgreSQL the rows are picked once
    (a MATERIALIZED CTE) with FOR UPDATE SKIP LOCKED: rows another worker is claiming are skipped,
    not waited for, and `free` is re-checked on each row as it is when locked, so a row is never
    claimed twice (as `id IN (…)` PostgreSQL may rescan the locking subquery per row, and a rescan
    skips the rows the statement has just claimed and takes the next ones, past the limit)."""
    table = connection.ops.quote_name(model._meta.db_table)
    skip = " FOR UPDATE SKIP LOCKED" if connection.features.has_select_for_update_skip_locked else ""
    pick = f"SELECT id FROM {table} WHERE {free} ORDER BY id LIMIT %s{skip}"
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"WITH picked AS MATERIALIZED ({pick}) UPDATE {table} SET {claim}"
                f" FROM picked WHERE {table}.id = picked.id RETURNING {table}.id",
                [*free_params, limit, *claim_params],
            )
        else:
            cursor.execute(
                f"UPDATE {table} SET {claim} WHERE {free} AND id IN ({pick}) RETURNING id",
                [*claim_params, *free_params, *free_params, limit],
            )
        return sorted(row[0] for row in cursor.fetchall())


@shared_task(acks_late=True, autoretry_for=(ConnectionError,), retry_backoff=True, max_retries=5)
def register_pending(flag: str | None = None) -> int:
    """Finish every PENDING version nobody is registering, a claimed batch at a time, until a batch
    comes back short. One run serves a burst of creates (`registry.events.request_registration`
    publishes it at most once while one is queued; `flag` comes down before the first claim).
    A run that dies leaves its claims to lapse; the sweep then hands them to another run.
    Returns how many versions this run finished."""
    from registry.services import finish_model_version_registration

    def finish(ids: list[int]) -> int:
        for version_id in ids:
            finish_model_version_registration(version_id=version_id)
        return len(ids)

    return _drain(register_pending, flag, claim_registrations, finish, REGISTRATION_BATCH)


def _drain(task, flag: str | None, claim_batch, handle, size: int) -> int:
    """The loop of a coalesced run (`registry.events.publish_once`): take the flag down, then claim
    and handle batches until one comes back short. Returns the sum of what `handle` returned."""
    if flag is not None:
        events.clear_flag(task.app.conf, flag)
    done = 0
    while True:
        ids = claim_batch()
        if ids:
            done += handle(ids)
        if len(ids) < size:
            return done


def claim(*, limit: int = BATCH) -> list[int]:
    """Take up to `limit` undispatched events whose lease is free, oldest first (`_claim`), so a second
    worker, a retry or a redelivery gets none of them. Returns the claimed ids (in id order)."""
    now = timezone.now()
    stamp = connection.ops.adapt_datetimefield_value(now)
    return _claim(
        Event, "dispatched_at IS NULL AND (claimed_until IS NULL OR claimed_until < %s)", [stamp],
        "claimed_until = %s, attempts = attempts + 1", [connection.ops.adapt_datetimefield_value(now + CLAIM_LEASE)], limit,
    )


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
    def hand_over(ids: list[int]) -> int:
        batch = list(Event.objects.select_related("actor").filter(pk__in=ids).order_by("id"))
        done = [event.pk for event in deliver(batch)]
        if done:
            Event.objects.filter(pk__in=done).update(dispatched_at=timezone.now(), claimed_until=None)
        return len(done)

    return _drain(dispatch_events, flag, claim, hand_over, BATCH)


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
    """Periodic (beat): start a registration run when versions are still PENDING after a minute and
    nobody holds them (a lost message, a crashed worker). Returns how many it found (up to BATCH)."""
    from tracking.models import now_ms

    now = now_ms()
    stale = (
        ModelVersion.objects.filter(status=ModelVersion.PENDING, creation_timestamp__lt=now - int(SWEEP_AGE.total_seconds() * 1000))
        .filter(Q(registration_claimed_until__isnull=True) | Q(registration_claimed_until__lt=now))
        .values_list("id", flat=True)[:BATCH]
    )
    found = len(list(stale))
    if found:
        register_pending.delay()
    return found
