"""Who may see or change webhooks, deliveries and the audit log.

Registry-wide webhooks and the audit log: admins (superusers). Per-model webhooks: users with
CAN_MANAGE on the model (core.permissions decides levels; registry.access decides visibility).
404 for what a user may not see, 403 for what they see but may not change.
"""

import uuid

from core import permissions as perms
from core.errors import DoesNotExist, PermissionDenied
from monitoring.models import Webhook, WebhookDelivery
from registry import access as registry_access


def is_admin(user) -> bool:
    return bool(user is not None and user.is_authenticated and user.is_active and user.is_superuser)


def check_registry_wide(user) -> None:
    if not is_admin(user):
        raise PermissionDenied("Permission denied: only administrators may manage registry-wide webhooks.")


def can_manage_model(user, model) -> bool:
    """CAN_MANAGE on the model (owner, admin or granted), as core.permissions decides it."""
    return perms.at_least(perms.effective_level(user, model), perms.CAN_MANAGE)


def get_model_for_webhooks(user, name: str):
    model = registry_access.get_registered_model_for_user(user, name)
    level = perms.effective_level(user, model)
    if level is None:
        raise registry_access.not_found_model(name)
    if not perms.at_least(level, perms.CAN_MANAGE):
        raise PermissionDenied(f"Permission denied: CAN_MANAGE on registered model '{name}' is needed to manage its webhooks; you have {level}.")
    return model


def webhooks_visible_to(user):
    """One query: admins see every webhook, others the per-model webhooks of models they manage."""
    from registry.models import RegisteredModel

    qs = Webhook.objects.filter(deleted_timestamp__isnull=True)
    if is_admin(user):
        return qs
    if user is None or not user.is_authenticated:
        return qs.none()
    managed = perms.filter_visible(user, RegisteredModel.objects.all(), min_level=perms.CAN_MANAGE).values("pk")
    return qs.filter(model_id__in=managed)


def _not_found(webhook_id) -> DoesNotExist:
    return DoesNotExist(f"Webhook with ID {webhook_id} not found.")


def get_webhook_for_user(user, webhook_id, *, flavor: str | None = None, manage: bool = False, lock: bool = False) -> Webhook:
    try:
        uuid.UUID(str(webhook_id))
    except ValueError:
        raise _not_found(webhook_id) from None
    qs = Webhook.objects.filter(deleted_timestamp__isnull=True)
    if flavor:
        qs = qs.filter(flavor=flavor)
    if lock:
        qs = qs.select_for_update()
    hook = qs.filter(pk=webhook_id).first()
    if hook is None:
        raise _not_found(webhook_id)
    if hook.model_id is None:
        if not is_admin(user):
            # Registry-wide webhooks are an admin matter; others do not learn they exist.
            raise _not_found(webhook_id)
        return hook
    from registry.models import RegisteredModel

    model = RegisteredModel.objects.filter(pk=hook.model_id).first()
    if model is None:
        if is_admin(user):
            return hook
        raise _not_found(webhook_id)
    if not can_manage_model(user, model):
        raise _not_found(webhook_id)
    return hook


def get_delivery_for_user(user, delivery_id, *, manage: bool = False, lock: bool = False) -> WebhookDelivery:
    try:
        uuid.UUID(str(delivery_id))
    except ValueError:
        raise DoesNotExist(f"Delivery {delivery_id} not found.") from None
    qs = WebhookDelivery.objects.select_related("webhook")
    if lock:
        qs = qs.select_for_update(of=("self",))
    delivery = qs.filter(pk=delivery_id).first()
    if delivery is None:
        raise DoesNotExist(f"Delivery {delivery_id} not found.")
    try:
        get_webhook_for_user(user, delivery.webhook_id, manage=manage)
    except DoesNotExist:
        if not (is_admin(user) and delivery.webhook.deleted_timestamp):
            raise DoesNotExist(f"Delivery {delivery_id} not found.") from None
    return delivery


def check_audit(user) -> None:
    if not is_admin(user):
        raise PermissionDenied("Permission denied: only administrators may read the audit log.")
