"""Account-level actions: API tokens and the bootstrap admin."""

import secrets
from datetime import datetime

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from core.api import forget_token
from core.errors import DoesNotExist
from core.models import ApiToken, hash_token


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
