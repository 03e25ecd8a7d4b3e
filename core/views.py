from datetime import timedelta

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST, require_safe

from core import oidc, services
from core.errors import DoesNotExist
from core.models import ApiToken

MAX_TOKEN_DAYS = 3650

STAGEGATE_VERSION = "0.1.0"
# The MLflow server version we speak the protocol of.
MLFLOW_PROTOCOL_VERSION = "3.18.0"


@login_not_required
@require_safe  # HEAD too, as MLflow's server: load balancers probe with it
def health(request):
    return HttpResponse("OK", content_type="text/plain")


@login_not_required
@require_safe
def version(request):
    return HttpResponse(MLFLOW_PROTOCOL_VERSION, content_type="text/plain")


class LoginView(auth_views.LoginView):
    """The sign-in page: the password form, and the single sign-on button when SSO is on.

    With STAGEGATE_OIDC_ONLY the form is gone and a password POST here is refused; staff keep
    Django admin's own password sign-in (/admin/login/) for when the provider is down.
    """

    def sso_only(self) -> bool:
        return oidc.enabled() and settings.STAGEGATE_OIDC_ONLY

    def get_context_data(self, **kwargs):
        return super().get_context_data(
            **kwargs, sso_name=settings.STAGEGATE_OIDC_NAME if oidc.enabled() else "", sso_only=self.sso_only()
        )

    def post(self, request, *args, **kwargs):
        if self.sso_only():
            messages.error(request, f"Password sign-in is turned off: sign in with {settings.STAGEGATE_OIDC_NAME}.")
            return self.render_to_response(self.get_context_data(), status=403)
        return super().post(request, *args, **kwargs)


class LogoutView(auth_views.LogoutView):
    """Sign-out (POST): ends the session, and the identity provider's too when the user came by SSO."""

    def post(self, request, *args, **kwargs):
        provider_sign_out = oidc.end_session_url(request)
        response = super().post(request, *args, **kwargs)
        return HttpResponseRedirect(provider_sign_out) if provider_sign_out else response


@require_GET
def home(request):
    return redirect("registry:model_list")


@require_GET
def settings_home(request):
    return redirect("settings_tokens")


def _tokens_context(request, *, error: str = "", form: dict | None = None, created: str = "", created_token=None) -> dict:
    return {
        "tokens": list(ApiToken.objects.filter(user=request.user).order_by("-created_at")[:200]),
        "token_error": error,
        "token_form": form or {},
        "new_token": created,
        "new_token_row": created_token,
        "settings_tab": "tokens",
        "now": timezone.now(),
    }


@require_http_methods(["GET", "POST"])
def token_list(request):
    """Personal API tokens: the list, and a form that creates one and shows it once.

    The new token is rendered in the POST response itself (never stored, never redirected to):
    reloading the page cannot show it again.
    """
    template = "core/settings_tokens.html"
    if request.method == "GET":
        return render(request, template, _tokens_context(request))
    name = request.POST.get("name", "").strip()
    days = request.POST.get("expires_days", "").strip()
    form = {"name": name, "expires_days": days}
    error = ""
    if not name:
        error = "Give the token a name, e.g. the machine or job that will use it."
    elif len(name) > 100:
        error = "A token name is at most 100 characters."
    elif days and (not days.isdigit() or not 1 <= int(days) <= MAX_TOKEN_DAYS):
        error = f"Expiry is a number of days from 1 to {MAX_TOKEN_DAYS}, or empty for no expiry."
    if error:
        context = _tokens_context(request, error=error, form=form)
        return render(request, template + "#tokens-panel" if request.htmx else template, context)
    expires = timezone.now() + timedelta(days=int(days)) if days else None
    token, raw = services.create_api_token(user=request.user, name=name, expires_at=expires)
    context = _tokens_context(request, created=raw, created_token=token)
    return render(request, template + "#tokens-panel" if request.htmx else template, context)


@require_POST
def token_revoke(request, token_id: int):
    try:
        token = services.revoke_api_token(user=request.user, token_id=token_id)
    except DoesNotExist as exc:
        raise Http404(exc.message) from None
    if request.htmx:
        return render(request, "core/settings_tokens.html#tokens-panel", _tokens_context(request))
    messages.success(request, f"Token “{token.name}” revoked.")
    return redirect("settings_tokens")
