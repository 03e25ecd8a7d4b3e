"""Account-level actions: API tokens, single sign-on and the bootstrap admin."""

import logging
import secrets
from datetime import datetime

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction
from django.utils import timezone

from core.api import forget_token
from core.errors import DoesNotExist, PermissionDenied
from core.models import ApiToken, SsoIdentity, hash_token

log = logging.getLogger("stagegate.sso")


def create_api_token(*, user, name: str, expires_at: datetime | None = None) -> tuple[ApiToken, str]:
    """Create a personal API token. Returns the row and the raw token, which is never stored."""
    raw = ApiToken.generate()
    token = ApiToken.objects.create(
        user=user, name=name.strip() or "token", prefix=raw[:10], token_hash=hash_token(raw), expires_at=expires_at
    )
    return token, raw


def revoke_api_token(*, user, token_id: int) -> ApiToken:
    """Revoke one of the user's own tokens. Raises DoesNotExist for anyone else's."""
    token = ApiToken.objects.filter(pk=token_id, user=user).first()
    if token is None:
        raise DoesNotExist(f"API token {token_id} not found")
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
    forget_token(token.token_hash)
    return token


def generate_password() -> str:
    return secrets.token_urlsafe(12)


@transaction.atomic
def ensure_user(*, username: str, password: str | None, email: str = "", is_superuser: bool = False) -> tuple[object, str | None]:
    """Create the user if missing. Returns (user, generated_password_or_None).

    A password is generated (and returned once, to be printed) only when the
    user is created without one; an existing user's password is set only when
    one is given explicitly.
    """
    User = get_user_model()
    user = User.objects.filter(username=username).first()
    generated = None
    if user is None:
        if not password:
            password = generated = generate_password()
        user = User(username=username, email=email, is_staff=is_superuser, is_superuser=is_superuser)
        user.set_password(password)
        user.save()
    elif password and not user.check_password(password):
        user.set_password(password)
        user.save(update_fields=["password"])
    return user, generated


def _sso_username(claims: dict) -> str:
    claim = settings.STAGEGATE_OIDC_USERNAME_CLAIM
    for value in (claims.get(claim), claims.get("email")):
        if isinstance(value, str) and value.strip():
            return value.strip()[:150]
    raise PermissionDenied(
        f"The identity provider sent neither a '{claim}' nor an 'email' claim to name the account: "
        "ask an administrator to add one to the client's claims (scopes 'profile' and 'email')."
    )


def _sso_group_names(claims: dict) -> list[str]:
    value = claims.get(settings.STAGEGATE_OIDC_GROUPS_CLAIM)
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple):
        # No claim: the provider says the user is in no group (access follows the provider, so none is kept).
        return []
    names = {name.strip() for name in value if isinstance(name, str) and name.strip()}
    too_long = {name for name in names if len(name) > 150}
    if too_long:
        log.warning("SSO groups longer than 150 characters ignored: %s", sorted(too_long))
    return sorted(names - too_long)


def _set_groups_from_claims(user, claims: dict) -> None:
    names = _sso_group_names(claims)
    Group.objects.bulk_create([Group(name=name) for name in names], ignore_conflicts=True)
    user.groups.set(Group.objects.filter(name__in=names))


@transaction.atomic
def sign_in_sso_user(*, issuer: str, claims: dict):
    """The user an OpenID Connect sign-in stands for, created at their first sign-in.

    `claims` are the verified ID token's claims merged with the userinfo response. The user is found by
    (issuer, `sub`); at the first sign-in a user named by STAGEGATE_OIDC_USERNAME_CLAIM (else the e-mail) is
    created with no usable password. A local account of that name that no sign-in created is refused, unless
    STAGEGATE_OIDC_LINK_EXISTING is on (never for a superuser). At every sign-in the e-mail and names follow
    the claims and, with STAGEGATE_OIDC_GROUPS_CLAIM set, the user's Django groups become exactly the claim's
    groups (missing ones created), so grants to groups follow the provider.

    Locks the identity row. Raises PermissionDenied (shown on the sign-in page) when refused.
    """
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise PermissionDenied("The identity provider sent no subject ('sub') for this sign-in.")
    User = get_user_model()
    identity = SsoIdentity.objects.select_for_update().select_related("user").filter(issuer=issuer, subject=subject).first()
    if identity is not None:
        user = identity.user
        identity.last_sign_in_at = timezone.now()
        identity.save(update_fields=["last_sign_in_at"])
    else:
        username = _sso_username(claims)
        user = User.objects.filter(username=username).first()
        if user is None:
            user = User.objects.create_user(username=username, email=claims.get("email") or "")
            log.info("SSO: created user %s for %s at %s", username, subject, issuer)
        elif settings.STAGEGATE_OIDC_LINK_EXISTING and not user.is_superuser and not user.sso_identities.filter(issuer=issuer).exists():
            log.info("SSO: linked existing user %s to %s at %s", username, subject, issuer)
        else:
            raise PermissionDenied(
                f"An account named '{username}' already exists in Stagegate and was not created by single sign-on, "
                "so it is not taken over. An administrator can rename or remove it (or set STAGEGATE_OIDC_LINK_EXISTING)."
            )
        SsoIdentity.objects.create(user=user, issuer=issuer, subject=subject)
    if not user.is_active:
        raise PermissionDenied(f"The account '{user.get_username()}' is disabled in Stagegate.")
    profile = {
        field: claims[claim].strip()[:size]
        for field, claim, size in (("email", "email", 254), ("first_name", "given_name", 150), ("last_name", "family_name", 150))
        if isinstance(claims.get(claim), str)
    }
    changed = [field for field, value in profile.items() if getattr(user, field) != value]
    if changed:
        for field in changed:
            setattr(user, field, profile[field])
        user.save(update_fields=changed)
    if settings.STAGEGATE_OIDC_GROUPS_CLAIM:
        _set_groups_from_claims(user, claims)
    return user
