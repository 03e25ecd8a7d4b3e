"""How monitoring plugs into the registry's outbox without the registry importing it.

- in the event's transaction (registry.events.RECORD_HOOKS): one audit record per Event, and the
  e-mail lines of a model's watchers when the model is being deleted (they are gone after commit);
- after commit, per batch of dispatched events (registry.events.NOTIFICATION_HOOKS): webhook
  deliveries and e-mail lines.
"""

from registry import events as registry_events


def audit_event(event) -> None:
    from monitoring import audit, services

    audit.record_event(event)
    services.notify_before_delete(event)


def fan_out(events) -> None:
    from monitoring import services

    services.fan_out(events)


def install() -> None:
    if audit_event not in registry_events.RECORD_HOOKS:
        registry_events.RECORD_HOOKS.append(audit_event)
    registry_events.register_hook(fan_out)
