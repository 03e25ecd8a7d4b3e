"""Throttled password guessing (django-axes) on every path that takes a password: the sign-in form,
Django admin's login (both through `authenticate()`, so through `LockoutBackend`) and HTTP Basic on
the API (core.api calls `refuse_if_locked_out` / `record_failed_password` itself: it verifies the
password without `authenticate()` so that it can cache the verification).

A user name or a client address with STAGEGATE_LOGIN_FAILURE_LIMIT failures within
STAGEGATE_LOGIN_COOLOFF_MINUTES is locked out until that long after its last counted failure. API
tokens never go through here: a lockout does not stop automation that uses them.
"""

from django.conf import settings
from django.shortcuts import render

from axes.backends import AxesStandaloneBackend
from axes.handlers.proxy import AxesProxyHandler
from core.errors import PermissionDenied


class LockoutBackend(AxesStandaloneBackend):
    """Axes' gate as the first authentication backend. A call without a request (the test client's
    login(), a management command) is no network guess: it is let through to the next backend instead
    of failing as axes' own backend does."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


def cooloff_minutes() -> int:
    return int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)


def lockout_message() -> str:
    return (f"Too many failed sign-in attempts for this user or from this address: signing in is locked for "
            f"{cooloff_minutes()} minutes. Try again later, or ask an administrator to unlock it.")


class LockedOut(PermissionDenied):
    """403 PERMISSION_DENIED rather than 429: the MLflow client retries a 429 for minutes, then reports
    "too many 429 error responses" instead of this message."""

    def __init__(self):
        super().__init__(lockout_message())
        self.headers = {"Retry-After": str(cooloff_minutes() * 60)}


def refuse_if_locked_out(request, username: str) -> None:
    """Raise LockedOut when the user name or the caller's address is locked out.

    Asked on every Basic request, so first one EXISTS query for any failure of this name or address
    within the cool-off (none: nothing to count, the usual case); only then axes' own count (one
    query per lockout parameter). Sound while every AXES_LOCKOUT_PARAMETERS entry includes the user
    name or the address."""
    from axes.helpers import get_cool_off
    from axes.models import AccessAttempt
    from django.db.models import Q

    AxesProxyHandler.update_request(request)
    since = request.axes_attempt_time - get_cool_off(request)
    recent = AccessAttempt.objects.filter(Q(username=username) | Q(ip_address=request.axes_ip_address), attempt_time__gte=since)
    if recent.exists() and not AxesProxyHandler.is_allowed(request, {"username": username}):
        raise LockedOut()


def record_failed_password(request, username: str) -> None:
    """Count a wrong password as axes counts the sign-in form's (Django's user_login_failed signal);
    raise LockedOut when this failure reached the limit."""
    from django.contrib.auth.signals import user_login_failed

    AxesProxyHandler.update_request(request)
    user_login_failed.send(sender=__name__, credentials={"username": username}, request=request)
    if request.axes_locked_out:
        raise LockedOut()


def client_ip(request) -> str | None:
    """The client's address: REMOTE_ADDR, or behind STAGEGATE_TRUSTED_PROXIES reverse proxies the
    address the outermost of them saw (counted from the right of X-Forwarded-For, which a client
    can prepend to but not append to)."""
    proxies = settings.STAGEGATE_TRUSTED_PROXIES
    if proxies:
        hops = [h.strip() for h in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if h.strip()]
        if len(hops) >= proxies:
            return hops[-proxies]
    return request.META.get("REMOTE_ADDR")


def lockout_response(request, original_response=None, credentials=None):
    """What a locked-out sign-in gets (AXES_LOCKOUT_CALLABLE): the sign-in page with the message and
    429; MLflow's error JSON on an API path (reached only when the API runs on the page middleware)."""
    if request.path.startswith(("/api/", "/ajax-api/")):
        from core.api import error_response

        return error_response(LockedOut())
    from django.contrib.auth.forms import AuthenticationForm

    form = AuthenticationForm(request, initial={"username": request.POST.get("username", "")})
    from core import oidc

    context = {"form": form, "locked_out": lockout_message(), "next": request.POST.get("next", ""),
               "sso_name": settings.STAGEGATE_OIDC_NAME if oidc.enabled() else ""}
    response = render(request, "registration/login.html", context, status=429)
    response["Retry-After"] = str(cooloff_minutes() * 60)
    return response
