"""Single sign-on with OpenID Connect, through mozilla-django-oidc.

The library takes its endpoints from settings; Stagegate takes one issuer and reads the rest from its
discovery document (`<issuer>/.well-known/openid-configuration`) on first use, cached for an hour, so a
provider that is down when the server starts does not stop it (the sign-in page says what went wrong).
The library checks state and nonce, sends PKCE and verifies the ID token's RS256 signature with the
provider's JWKS; this module also checks the token's issuer and audience. Who the user is, and their
groups, is decided by `core.services.sign_in_sso_user`.
"""

import logging
import time
from urllib.parse import urlencode

import jwt
import requests
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import BaseBackend, ModelBackend
from django.core.exceptions import SuspiciousOperation
from django.http import Http404
from django.shortcuts import redirect
from django.urls import reverse
from django.views.generic import View
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.utils import import_from_settings
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

from core import services
from core.errors import MlflowError

log = logging.getLogger("stagegate.sso")

DISCOVERY_TTL_SECONDS = 3600
TIMEOUT_SECONDS = 10
# Claims about the token itself, not the user: not passed on with the user's claims.
TOKEN_CLAIMS = {"iss", "aud", "exp", "iat", "nbf", "nonce", "at_hash", "c_hash", "auth_time", "azp", "jti", "sid", "acr", "amr"}

_discovered: dict[str, tuple[float, dict]] = {}


class DiscoveryError(Exception):
    """The issuer's discovery document could not be read, or does not describe that issuer."""


def enabled() -> bool:
    return bool(settings.STAGEGATE_OIDC_ISSUER)


def provider() -> dict:
    """The issuer's discovery document (cached per process). Raises DiscoveryError."""
    issuer = settings.STAGEGATE_OIDC_ISSUER
    cached = _discovered.get(issuer)
    if cached is not None and time.monotonic() - cached[0] < DISCOVERY_TTL_SECONDS:
        return cached[1]
    url = issuer + "/.well-known/openid-configuration"
    try:
        response = requests.get(url, timeout=TIMEOUT_SECONDS)
        response.raise_for_status()
        document = response.json()
    except (requests.RequestException, ValueError) as exc:
        raise DiscoveryError(f"the identity provider's discovery document {url} could not be read ({exc})") from exc
    if not isinstance(document, dict) or str(document.get("issuer", "")).rstrip("/") != issuer:
        found = document.get("issuer") if isinstance(document, dict) else None
        raise DiscoveryError(f"{url} describes the issuer {found!r}, not {issuer!r} (check STAGEGATE_OIDC_ISSUER)")
    missing = [key for key in ("authorization_endpoint", "token_endpoint", "jwks_uri") if not document.get(key)]
    if missing:
        raise DiscoveryError(f"{url} names no {', '.join(missing)}")
    _discovered[issuer] = (time.monotonic(), document)
    return document


def forget_provider() -> None:
    _discovered.clear()


def _token_auth_is_basic() -> bool:
    # client_secret_basic is OAuth's default, which every server must support; POST only where it is the sole choice.
    methods = provider().get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
    return "client_secret_basic" in methods or "client_secret_post" not in methods


# mozilla-django-oidc's settings, answered from Stagegate's settings and the discovery document.
_SETTINGS = {
    "OIDC_RP_CLIENT_ID": lambda: settings.STAGEGATE_OIDC_CLIENT_ID,
    "OIDC_RP_CLIENT_SECRET": lambda: settings.STAGEGATE_OIDC_CLIENT_SECRET,
    "OIDC_RP_SCOPES": lambda: settings.STAGEGATE_OIDC_SCOPES,
    "OIDC_RP_SIGN_ALGO": lambda: "RS256",
    "OIDC_RP_IDP_SIGN_KEY": lambda: None,
    "OIDC_OP_AUTHORIZATION_ENDPOINT": lambda: provider()["authorization_endpoint"],
    "OIDC_OP_TOKEN_ENDPOINT": lambda: provider()["token_endpoint"],
    "OIDC_OP_USER_ENDPOINT": lambda: provider().get("userinfo_endpoint"),
    "OIDC_OP_JWKS_ENDPOINT": lambda: provider()["jwks_uri"],
    "OIDC_TOKEN_USE_BASIC_AUTH": _token_auth_is_basic,
    "OIDC_USE_NONCE": lambda: True,
    "OIDC_USE_PKCE": lambda: True,
    "OIDC_STORE_ID_TOKEN": lambda: True,  # the id_token_hint of the provider's sign-out
    "OIDC_ALLOW_UNSECURED_JWT": lambda: False,
    "OIDC_TIMEOUT": lambda: TIMEOUT_SECONDS,
    "OIDC_AUTHENTICATION_CALLBACK_URL": lambda: "sso_callback",
}


def library_setting(name: str, *default):
    if name in _SETTINGS:
        return _SETTINGS[name]()
    return import_from_settings(name, *default)


class OidcBackend(OIDCAuthenticationBackend):
    """Signs in the user of an SSO callback; any other credentials are left to the other backends."""

    get_settings = staticmethod(library_setting)

    def __init__(self, *args, **kwargs):
        # Django builds its backends for every sign-in (passwords too): read no endpoint here.
        self.UserModel = get_user_model()

    def __getattr__(self, name: str):
        # The library reads its settings as attributes (self.OIDC_OP_TOKEN_ENDPOINT): answer them on use.
        if name.startswith("OIDC_"):
            return library_setting(name, None)
        raise AttributeError(name)

    # Permissions are ModelBackend's to answer (the user is an ordinary Django user); not twice.
    get_user_permissions = BaseBackend.get_user_permissions
    get_group_permissions = BaseBackend.get_group_permissions
    get_all_permissions = BaseBackend.get_all_permissions
    has_perm = BaseBackend.has_perm

    def has_module_perms(self, user_obj, app_label):
        return False

    # ModelBackend's: a disabled user's session stops working.
    get_user = ModelBackend.get_user

    def authenticate(self, request, **kwargs):
        # Only the callback view passes exactly these; password, token and Basic sign-ins never do.
        if not enabled() or request is None or set(kwargs) != {"nonce", "code_verifier"}:
            return None
        return super().authenticate(request, **kwargs)

    def verify_token(self, token, **kwargs):
        payload = super().verify_token(token, **kwargs)
        if "nonce" not in kwargs:  # a signed userinfo response, not the ID token
            return payload
        if str(payload.get("iss", "")).rstrip("/") != settings.STAGEGATE_OIDC_ISSUER:
            raise SuspiciousOperation(f"ID token issued by {payload.get('iss')!r}")
        audience = payload.get("aud")
        audiences = [audience] if isinstance(audience, str) else list(audience or [])
        client_id = settings.STAGEGATE_OIDC_CLIENT_ID
        if client_id not in audiences or (len(audiences) > 1 and payload.get("azp") != client_id):
            raise SuspiciousOperation(f"ID token for {audiences!r}, not this client")
        return payload

    def get_userinfo(self, access_token, id_token, payload):
        """The ID token's user claims with the userinfo response over them (Entra sends groups only in the token)."""
        claims = {key: value for key, value in payload.items() if key not in TOKEN_CLAIMS}
        if self.OIDC_OP_USER_ENDPOINT:
            userinfo = super().get_userinfo(access_token, id_token, payload)
            if not isinstance(userinfo, dict) or userinfo.get("sub") != payload.get("sub"):
                raise SuspiciousOperation("the userinfo response is about another subject")
            claims.update(userinfo)
        return claims

    def get_or_create_user(self, access_token, id_token, payload):
        claims = self.get_userinfo(access_token, id_token, payload)
        return services.sign_in_sso_user(issuer=settings.STAGEGATE_OIDC_ISSUER, claims=claims)


def _sign_in_failed(request, why: str):
    messages.error(request, f"{settings.STAGEGATE_OIDC_NAME} sign-in failed: {why}")
    return redirect("login")


class StartView(OIDCAuthenticationRequestView):
    """GET /login/sso/?next=…: to the provider's authorization page (state, nonce and PKCE kept in the session)."""

    get_settings = staticmethod(library_setting)

    def __init__(self, **kwargs):
        View.__init__(self, **kwargs)  # the endpoints are read per request, from the discovery document

    @property
    def OIDC_OP_AUTH_ENDPOINT(self):
        return library_setting("OIDC_OP_AUTHORIZATION_ENDPOINT")

    @property
    def OIDC_RP_CLIENT_ID(self):
        return settings.STAGEGATE_OIDC_CLIENT_ID

    def get(self, request):
        if not enabled():
            raise Http404("Single sign-on is not configured")
        try:
            provider()
        except DiscoveryError as exc:
            log.error("SSO unavailable: %s", exc)
            return _sign_in_failed(request, f"the identity provider cannot be reached: {exc}")
        # The library keeps `next` only when it is a URL of this site.
        return super().get(request)


class CallbackView(OIDCAuthenticationCallbackView):
    """GET /login/sso/callback/: the provider's answer; signs the user in, or back to the sign-in page with why."""

    get_settings = staticmethod(library_setting)

    def get(self, request):
        if not enabled():
            raise Http404("Single sign-on is not configured")
        try:
            return super().get(request)
        except MlflowError as exc:  # refused by sign_in_sso_user
            log.warning("SSO sign-in refused: %s", exc.message)
            return _sign_in_failed(request, exc.message)
        except (DiscoveryError, requests.RequestException) as exc:
            log.error("SSO sign-in failed: %s", exc)
            return _sign_in_failed(request, "the identity provider could not be reached; please try again later.")
        except (SuspiciousOperation, jwt.PyJWTError) as exc:
            log.warning("SSO sign-in rejected: %s", exc)
            return _sign_in_failed(request, "the answer of the identity provider could not be verified; please try again.")

    def login_failure(self):
        error = self.request.GET.get("error_description") or self.request.GET.get("error")
        return _sign_in_failed(self.request, f"the identity provider answered “{error}”." if error else "it did not complete; please try again.")


def end_session_url(request) -> str | None:
    """Where to send a signing-out SSO user so the provider's session ends too (RP-initiated logout),
    when the provider offers it; read before the local session is flushed."""
    id_token = request.session.get("oidc_id_token")
    if not (enabled() and id_token):
        return None
    try:
        endpoint = provider().get("end_session_endpoint")
    except DiscoveryError as exc:
        log.warning("SSO sign-out only local: %s", exc)
        return None
    if not endpoint:
        return None
    params = {
        "id_token_hint": id_token,
        "client_id": settings.STAGEGATE_OIDC_CLIENT_ID,
        "post_logout_redirect_uri": request.build_absolute_uri(reverse("login")),
    }
    return endpoint + ("&" if "?" in endpoint else "?") + urlencode(params)
