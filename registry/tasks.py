"""Celery entry points of the registry: each takes ids and calls a service (or the outbox)."""

import logging
from datetime import timedelta

from celery import shared_task
from django.db.models import F, Q
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


def claim(event_id: int) -> bool:
    """Take one event with a conditional UPDATE: only one worker wins, and only while undispatched
    and not leased by someone else."""
    now = timezone.now()
    return bool(
        Event.objects.filter(pk=event_id, dispatched_at__isnull=True)
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
        .update(claimed_until=now + CLAIM_LEASE, attempts=F("attempts") + 1)
    )




def deliver(event: Event) -> None:
    for hook in list(events.NOTIFICATION_HOOKS):
        hook(event)


@shared_task(acks_late=True)
def dispatch_events() -> int:
    """Hand every undispatched event to the notification hooks, each at most once.

    Safe to run twice or on two workers at once: each event is claimed first.
    Returns how many events this run delivered.
    """
    delivered = 0
    now = timezone.now()
    ids = list(
        Event.objects.filter(dispatched_at__isnull=True)
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
        .order_by("id")
        .values_list("id", flat=True)[:BATCH]
    )
    for event_id in ids:
        if not claim(event_id):
            continue
        event = Event.objects.select_related("actor").get(pk=event_id)
        try:
            deliver(event)
        except Exception:
            # Left claimed: the sweep retries it once the lease runs out.
            log.exception("delivering registry event %s failed", event_id)
            continue
        Event.objects.filter(pk=event_id).update(dispatched_at=timezone.now(), claimed_until=None)
        delivered += 1
    if len(ids) == BATCH:
        dispatch_events.delay()
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
