"""How monitoring plugs into the registry's outbox without the registry importing it.

- in the event's transaction (registry.events.RECORD_HOOKS): one audit record per Event, and the
  e-mail lines of a model's watchers when the model is being deleted (they are gone after commit);
- after commit, per batch of dispatched events (registry.events.NOTIFICATION_HOOKS): webhook
  deliveries and e-mail lines;
- django-axes' user_locked_out signal: an audit record of the lockout (core/auth.py throttles sign-ins).
"""

from registry import events as registry_events


def audit_event(event) -> None:
    from monitoring import audit, services

    audit.record_event(event)
    services.notify_before_delete(event)


def fan_out(events) -> None:
    from monitoring import services

    services.fan_out(events)


def record_lockout(sender, request, username, ip_address, **kwargs) -> None:
    """axes' user_locked_out: one audit record when a user name or an address gets locked out (the
    failure that reached the limit; attempts refused during the lockout add none, so a guesser cannot
    flood the chain)."""
    from axes.helpers import get_failure_limit
    from monitoring import audit
    from tracking.models import now_ms

    if getattr(request, "axes_failures_since_start", None) != get_failure_limit(request, None):
        return
    audit.append(type="auth.locked_out", created=now_ms(), payload={
        "username": username or "", "ip_address": ip_address or "", "path": request.path,
        "failures": request.axes_failures_since_start,
    })


def install() -> None:
    from axes.signals import user_locked_out

    if audit_event not in registry_events.RECORD_HOOKS:
        registry_events.RECORD_HOOKS.append(audit_event)
    registry_events.register_hook(fan_out)
    user_locked_out.connect(record_lockout, dispatch_uid="monitoring.record_lockout")
    # The model page's Watch button.
    from registry import views as registry_views

    registry_views.register_page_context("model_detail", watching_context)


def watching_context(request, *, model, level) -> dict:
    from monitoring import services

    return {"watching": services.is_watching(user=request.user, model=model)}
