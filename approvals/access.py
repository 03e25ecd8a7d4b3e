"""Who may see and act on governance objects: decided here for the API and (later) the pages alike.

Requests, reviews, comments and activities inherit the permission level of their registered model;
grants are managed by CAN_MANAGE users, global stage policies by admins. Invisible objects raise
404 RESOURCE_DOES_NOT_EXIST with MLflow's texts, visible-but-not-allowed 403 PERMISSION_DENIED.
The business rules (quorum, separation of duties) live in approvals.services; the booleans here
only mirror them so the server can tell a caller which actions are open to them.
"""

from core import permissions as perms
from core.errors import DoesNotExist, PermissionDenied
from registry.access import (  # noqa: F401  (the pages and the API of approvals fetch through these)
    get_model_version_at_level as get_model_version_for_user,
)
from registry.access import get_registered_model_at_level as get_registered_model_for_user  # noqa: F401
from registry.access import not_found_model, not_found_version  # noqa: F401


def get_registered_model_by_id_for_user(user, model_id, *, min_level: str = perms.CAN_READ, action: str = ""):
    from registry.models import RegisteredModel

    model = None
    if str(model_id).isdigit():
        model = RegisteredModel.objects.filter(pk=int(model_id)).first()
    missing = DoesNotExist(f"Registered model with id {model_id} does not exist.")
    if model is None:
        raise missing
    perms.require_level(user, model, min_level, not_found=missing, action=action)
    return model


def get_experiment_by_id_for_user(user, experiment_id, *, min_level: str = perms.CAN_READ, action: str = ""):
    from tracking.models import Experiment

    experiment = None
    if str(experiment_id).isdigit():
        experiment = Experiment.objects.filter(pk=int(experiment_id)).first()
    missing = DoesNotExist(f"No Experiment with id={experiment_id} exists")
    if experiment is None:
        raise missing
    perms.require_level(user, experiment, min_level, not_found=missing, action=action)
    return experiment


def level_on(user, obj) -> str | None:
    return perms.effective_level(user, obj)


def is_author(user, request) -> bool:
    """The requester, or the author of the version the request would move."""
    if user is None or not getattr(user, "pk", None):
        return False
    return request.requester_id == user.pk or request.version.creator_id == user.pk


def review_refusal(user, level: str | None, request, policy) -> str | None:
    """Why `user` may not approve/reject the request (None: they may)."""
    if not perms.at_least(level, policy.approver_level):
        return (
            f"reviewing a request to move into {request.to_stage} needs {policy.approver_level} on "
            f"'{request.model.name}'; you have {level or 'no permission'}"
        )
    if not policy.allow_self_approval and is_author(user, request):
        who = "requested this transition" if request.requester_id == user.pk else "created this version"
        return f"separation of duties: you {who}, so someone else must review it"
    return None


def can_cancel(user, level: str | None, request) -> bool:
    return request.requester_id == getattr(user, "pk", None) or perms.at_least(level, perms.CAN_MANAGE)


def require_cancel(user, level: str | None, request) -> None:
    if not can_cancel(user, level, request):
        raise PermissionDenied(
            f"Permission denied: only the requester or a user with CAN_MANAGE on '{request.model.name}' may cancel this request."
        )


def request_actions(user, level: str | None, request, policy) -> list[str]:
    """Databricks' `available_actions` of a request for this caller."""
    if not request.is_pending:
        return []
    actions = []
    # `reviews` is prefetched by every list: no query per row.
    reviewed = any(r.reviewer_id == getattr(user, "pk", None) for r in request.reviews.all())
    if review_refusal(user, level, request, policy) is None and not reviewed:
        actions += ["APPROVE_TRANSITION_REQUEST", "REJECT_TRANSITION_REQUEST"]
    if can_cancel(user, level, request):
        actions.append("CANCEL_TRANSITION_REQUEST")
    return actions


def comment_actions(user, level: str | None, comment) -> list[str]:
    actions = []
    own = comment.user_id is not None and comment.user_id == getattr(user, "pk", None)
    if own:
        actions.append("EDIT_COMMENT")
    if own or perms.at_least(level, perms.CAN_MANAGE):
        actions.append("DELETE_COMMENT")
    return actions


def require_policy_floor(user, *, stage: str, loosened: list[str]) -> None:
    """A model's policy may tighten the global policy of its stage; only a superuser may lower it."""
    if loosened and not (user is not None and getattr(user, "is_superuser", False)):
        raise PermissionDenied(
            f"The global policy for {stage} {' and '.join(loosened)}; only a superuser can lower it for one model."
        )


def require_admin(user, what: str) -> None:
    if not (user is not None and getattr(user, "is_superuser", False)):
        raise PermissionDenied(f"Permission denied: only administrators may {what}.")


def requests_visible_to(user):
    """Transition requests on models the user can read, as one queryset (never a per-row check)."""
    from approvals.models import TransitionRequest
    from registry.models import RegisteredModel

    return perms.filter_visible(user, TransitionRequest.objects.all(), prefix="model__", model_class=RegisteredModel)


def reviewable_by(user, queryset):
    """The pending requests of `queryset` the user may approve now (the review inbox), in SQL: their
    level reaches the approver level the request was filed under, separation of duties holds, and
    they have not reviewed it yet."""
    from django.db.models import Q

    from approvals.models import APPROVER_LEVELS
    from registry.models import RegisteredModel

    allowed = Q(pk__in=[])
    for level in APPROVER_LEVELS:
        condition = perms.visible_q(user, RegisteredModel, min_level=level, prefix="model__")
        allowed |= Q(policy__approver_level=level) & (condition if condition is not None else Q())
    own = Q(requester=user) | Q(version__creator=user)
    return (
        queryset.filter(status="PENDING")
        .filter(allowed)
        .exclude(own & ~Q(policy__allow_self_approval=True))
        .exclude(reviews__reviewer=user)
    )
