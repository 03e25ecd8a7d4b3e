"""How monitoring plugs into the registry's outbox without the registry importing it.

- in the event's transaction: one audit record per Event (registry.events.RECORD_HOOKS when the
  registry offers it; a post_save receiver on Event otherwise, which runs at the same point);
- after commit, per dispatched event: webhook deliveries and e-mail lines (NOTIFICATION_HOOKS).
"""

from registry import events as registry_events


def audit_event(event) -> None:
    from monitoring import audit, services

    audit.record_event(event)
    services.notify_before_delete(event)


def fan_out(event) -> None:
    from monitoring import services

    services.fan_out(event)


def _on_event_saved(sender, instance, created, raw=False, **kwargs):
    if created and not raw:
        audit_event(instance)


def install() -> None:
    in_transaction = getattr(registry_events, "RECORD_HOOKS", None)
    if in_transaction is not None:
        if audit_event not in in_transaction:
            in_transaction.append(audit_event)
    else:
        from django.db.models.signals import post_save

        from registry.models import Event

        post_save.connect(_on_event_saved, sender=Event, dispatch_uid="monitoring-audit-event")
    registry_events.register_hook(fan_out)
