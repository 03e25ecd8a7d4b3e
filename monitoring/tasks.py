"""Celery entry points of monitoring: each takes ids and calls a service."""

from celery import shared_task
from django.db import InterfaceError, OperationalError

from monitoring import services

# A dropped database connection (a restart, a failover, pg_terminate_backend) fails the task;
# Celery's Django fix-up closes the broken connection, and the retry opens a fresh one.
DB_ERRORS = (OperationalError, InterfaceError)


@shared_task(acks_late=True, autoretry_for=DB_ERRORS, retry_backoff=1, retry_backoff_max=30, max_retries=10)
def deliver(delivery_id: str) -> str | None:
    """One attempt of one delivery (a no-op unless it is due and unclaimed)."""
    delivery = services.deliver(delivery_id=delivery_id)
    return delivery.status if delivery is not None else None


@shared_task(acks_late=True, autoretry_for=DB_ERRORS, retry_backoff=1, retry_backoff_max=30, max_retries=10)
def sweep() -> dict:
    """Periodic (beat): re-enqueue due/stuck deliveries and lost dispatches; send due digests."""
    return services.sweep()


@shared_task(acks_late=True, autoretry_for=DB_ERRORS, retry_backoff=1, retry_backoff_max=30, max_retries=10)
def send_digest(user_id: int) -> int:
    return services.send_digest(user_id=user_id)
