"""Permission levels on the coarse objects (registered models, experiments) and the queries that enforce them.

Databricks' semantics: levels are ordered (CAN_READ < CAN_EDIT < … < CAN_MANAGE); a user's level on
an object is the highest of
  - CAN_MANAGE for superusers and for the object's owner (its creator),
  - their own grants and their groups' grants (django-guardian direct-FK rows, one row per granted level),
  - the organisation-wide default (STAGEGATE_DEFAULT_PERMISSION: none = private unless shared,
    CAN_READ for an open organisation), and for the shared "Default" experiment (id 0) its own floor.
Versions, aliases, tags, runs and requests inherit the level of their model or experiment.

`core` knows no app: the guardian tables are found from the object's class (guardian resolves the
direct-FK permission models the approvals app declares), and the level tables are keyed by model label.
Tracking and registry `access.py` call `effective_level`, `require_level` and `visible_q`; nothing
else decides who sees what.
"""

import os
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Q

from core.errors import DoesNotExist, InvalidParameter, PermissionDenied

CAN_READ = "CAN_READ"
CAN_EDIT = "CAN_EDIT"
CAN_MANAGE_STAGING_VERSIONS = "CAN_MANAGE_STAGING_VERSIONS"
CAN_MANAGE_PRODUCTION_VERSIONS = "CAN_MANAGE_PRODUCTION_VERSIONS"
CAN_MANAGE = "CAN_MANAGE"

MODEL_LEVELS = [CAN_READ, CAN_EDIT, CAN_MANAGE_STAGING_VERSIONS, CAN_MANAGE_PRODUCTION_VERSIONS, CAN_MANAGE]
EXPERIMENT_LEVELS = [CAN_READ, CAN_EDIT, CAN_MANAGE]
# The global order; an experiment simply has no staging/production rungs.
ORDER = {level: i for i, level in enumerate(MODEL_LEVELS)}

LEVEL_DESCRIPTIONS = {
    CAN_READ: "Can view the object, its versions/runs, requests and activities, and request stage transitions",
    CAN_EDIT: "Can also add versions/runs, edit descriptions and tags",
    CAN_MANAGE_STAGING_VERSIONS: "Can also transition versions between None, Staging and Archived and review such requests",
    CAN_MANAGE_PRODUCTION_VERSIONS: "Can also transition versions into and out of Production (and custom stages) and review such requests",
    CAN_MANAGE: "Can also rename and delete, cancel any request, and manage permissions and per-model stage policies",
}

# What people read: the Permissions tab, the admin, the error pages (the API keeps the codes).
LEVEL_LABELS = {
    CAN_READ: "Can read",
    CAN_EDIT: "Can edit",
    CAN_MANAGE_STAGING_VERSIONS: "Can manage Staging versions",
    CAN_MANAGE_PRODUCTION_VERSIONS: "Can manage Production versions",
    CAN_MANAGE: "Can manage",
}


def level_label(level: str | None) -> str:
    """"Can manage Production versions" for CAN_MANAGE_PRODUCTION_VERSIONS; "No permission" for None."""
    if not level:
        return "No permission"
    return LEVEL_LABELS.get(level, level)


@dataclass(frozen=True)
class Scheme:
    """How one kind of governed object maps levels to guardian permission codenames."""

    label: str  # app_label.modelname
    levels: tuple[str, ...]
    codenames: dict  # level -> codename
    object_type: str  # Databricks' object_type in the permissions API
    path: str  # Databricks' object_id prefix, e.g. "/registered-models/"

    def codename(self, level: str) -> str:
        return self.codenames[level]

    def level_of_codename(self, codename: str) -> str | None:
        for level, code in self.codenames.items():
            if code == codename:
                return level
        return None

    def clamp(self, level: str | None) -> str | None:
        """The highest level of this scheme not above `level` (CAN_MANAGE_STAGING_VERSIONS is CAN_EDIT on an experiment)."""
        if level is None:
            return None
        best = None
        for candidate in self.levels:
            if ORDER[candidate] <= ORDER[level]:
                best = candidate
        return best


SCHEMES = {
    "registry.registeredmodel": Scheme(
        label="registry.registeredmodel",
        levels=tuple(MODEL_LEVELS),
        codenames={
            CAN_READ: "read_registeredmodel",
            CAN_EDIT: "edit_registeredmodel",
            CAN_MANAGE_STAGING_VERSIONS: "manage_staging_versions_registeredmodel",
            CAN_MANAGE_PRODUCTION_VERSIONS: "manage_production_versions_registeredmodel",
            CAN_MANAGE: "manage_registeredmodel",
        },
        object_type="registered-model",
        path="/registered-models/",
    ),
    "tracking.experiment": Scheme(
        label="tracking.experiment",
        levels=tuple(EXPERIMENT_LEVELS),
        codenames={CAN_READ: "read_experiment", CAN_EDIT: "edit_experiment", CAN_MANAGE: "manage_experiment"},
        object_type="mlflowExperiment",
        path="/experiments/",
    ),
}

# The experiment every MLflow client logs to when none is set: shared, not private.
DEFAULT_EXPERIMENT_ID = 0


def scheme_for(obj_or_class) -> Scheme:
    label = obj_or_class._meta.label_lower
    try:
        return SCHEMES[label]
    except KeyError:
        raise ValueError(f"{label} is not a governed object") from None


def rank(level: str | None) -> int:
    return -1 if level is None else ORDER[level]


def at_least(level: str | None, minimum: str) -> bool:
    return rank(level) >= ORDER[minimum]


def higher(a: str | None, b: str | None) -> str | None:
    return a if rank(a) >= rank(b) else b


def parse_level(value, *, scheme: Scheme, name: str = "permission_level") -> str:
    """A level named on the wire; 400 listing the valid ones otherwise."""
    if isinstance(value, str) and value.upper() in scheme.levels:
        return value.upper()
    raise InvalidParameter(
        f"Invalid value {value!r} for parameter '{name}': must be one of {', '.join(scheme.levels)}."
    )


# --------------------------------------------------------------------------- settings


def _setting_level(name: str, default: str) -> str | None:
    raw = getattr(settings, name, None)
    if raw is None:
        raw = os.environ.get(name, default)
    raw = (raw or "").strip().upper()
    if raw in ("", "NONE", "NO_PERMISSIONS"):
        return None
    if raw not in ORDER:
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured(f"{name}={raw!r} is not a permission level (use one of {', '.join(MODEL_LEVELS)} or none)")
    return raw


def default_level() -> str | None:
    """What every signed-in user has on objects they were not granted (STAGEGATE_DEFAULT_PERMISSION)."""
    return _setting_level("STAGEGATE_DEFAULT_PERMISSION", "")


def default_experiment_level() -> str | None:
    """The floor on the shared Default experiment (STAGEGATE_DEFAULT_EXPERIMENT_PERMISSION, CAN_EDIT)."""
    return _setting_level("STAGEGATE_DEFAULT_EXPERIMENT_PERMISSION", CAN_EDIT)


def _floor(scheme: Scheme, obj_pk=None) -> str | None:
    floor = scheme.clamp(default_level())
    if scheme.label == "tracking.experiment" and obj_pk == DEFAULT_EXPERIMENT_ID:
        floor = higher(floor, scheme.clamp(default_experiment_level()))
    return floor


def _restricted(name: str) -> bool:
    raw = getattr(settings, name, None)
    if raw is None:
        raw = os.environ.get(name, "")
    return str(raw).strip().lower() in {"1", "true", "yes", "on"}


def may_create(user, model_class) -> bool:
    """Whether `user` may create a registered model / experiment.

    Every signed-in user by default; with STAGEGATE_RESTRICT_MODEL_CREATION (or
    STAGEGATE_RESTRICT_EXPERIMENT_CREATION) only superusers and the users and groups an admin gave
    Django's `add_<model>` permission (Databricks' CAN_CREATE_REGISTERED_MODEL).
    """
    if not _active(user):
        return False
    scheme = scheme_for(model_class)
    name = "STAGEGATE_RESTRICT_MODEL_CREATION" if scheme.label == "registry.registeredmodel" else "STAGEGATE_RESTRICT_EXPERIMENT_CREATION"
    if not _restricted(name) or user.is_superuser:
        return True
    app_label, model_name = scheme.label.split(".")
    return user.has_perm(f"{app_label}.add_{model_name}")


def require_create(user, model_class) -> None:
    if not may_create(user, model_class):
        what = "registered models" if scheme_for(model_class).label == "registry.registeredmodel" else "experiments"
        raise PermissionDenied(
            f"Permission denied: you may not create {what}. Creation is restricted on this server; "
            "ask an administrator to grant you the permission (Databricks' CAN_CREATE_REGISTERED_MODEL)."
        )


# --------------------------------------------------------------------------- guardian tables


def grant_models(model_class):
    """(user permission model, group permission model) for the class: guardian's direct-FK tables."""
    from guardian.utils import get_group_obj_perms_model, get_user_obj_perms_model

    return get_user_obj_perms_model(model_class), get_group_obj_perms_model(model_class)


def _active(user) -> bool:
    return user is not None and getattr(user, "is_authenticated", False) and getattr(user, "is_active", False)


def granted_level(user, obj) -> str | None:
    """The highest level granted to the user or one of their groups (no owner, default or superuser)."""
    scheme = scheme_for(obj)
    UserPerm, GroupPerm = grant_models(type(obj))
    codes = set(UserPerm.objects.filter(user=user, content_object=obj).values_list("permission__codename", flat=True))
    codes |= set(
        GroupPerm.objects.filter(group__user=user, content_object=obj).values_list("permission__codename", flat=True)
    )
    best = None
    for code in codes:
        best = higher(best, scheme.level_of_codename(code))
    return best


def effective_level(user, obj) -> str | None:
    """The user's level on a registered model or experiment; None = no permission (the object is invisible)."""
    if not _active(user):
        return None
    scheme = scheme_for(obj)
    if user.is_superuser or (getattr(obj, "owner_id", None) is not None and obj.owner_id == user.pk):
        return CAN_MANAGE
    level = higher(_floor(scheme, obj.pk), granted_level(user, obj))
    return scheme.clamp(level)


def effective_levels(user, objs) -> dict:
    """{pk: level} for many objects of one kind in two queries (lists must not ask per row)."""
    objs = list(objs)
    if not objs:
        return {}
    scheme = scheme_for(objs[0])
    if not _active(user):
        return {o.pk: None for o in objs}
    UserPerm, GroupPerm = grant_models(type(objs[0]))
    pks = [o.pk for o in objs]
    granted: dict = {}
    rows = list(UserPerm.objects.filter(user=user, content_object__in=pks).values_list("content_object_id", "permission__codename"))
    rows += list(GroupPerm.objects.filter(group__user=user, content_object__in=pks).values_list("content_object_id", "permission__codename"))
    for pk, code in rows:
        granted[pk] = higher(granted.get(pk), scheme.level_of_codename(code))
    out = {}
    for o in objs:
        if user.is_superuser or (getattr(o, "owner_id", None) is not None and o.owner_id == user.pk):
            out[o.pk] = CAN_MANAGE
        else:
            out[o.pk] = scheme.clamp(higher(_floor(scheme, o.pk), granted.get(o.pk)))
    return out


def require_level(user, obj, minimum: str, *, not_found: Exception, action: str = "") -> str:
    """The user's level, checked: `not_found` (404) when the object is invisible to them, 403 when
    they see it but their level is below `minimum`."""
    level = effective_level(user, obj)
    if level is None:
        raise not_found
    if not at_least(level, minimum):
        scheme = scheme_for(obj)
        what = "registered model" if scheme.label == "registry.registeredmodel" else "experiment"
        name = getattr(obj, "name", obj.pk)
        doing = f" to {action}" if action else ""
        raise PermissionDenied(
            f"Permission denied: {minimum} on {what} '{name}' is needed{doing}; you have {level}."
        )
    return level


def visible_q(user, model_class, *, min_level: str = CAN_READ, prefix: str = "") -> Q | None:
    """A filter for the rows (of `model_class`, or of a queryset reaching it through `prefix`, e.g.
    "registered_model__") the user holds at least `min_level` on; None when they see them all.

    One SQL condition with two subqueries on the guardian tables: never a per-row check, so
    counts and paging only ever see visible rows.
    """
    scheme = scheme_for(model_class)
    if not _active(user):
        return Q(pk__in=[])
    if user.is_superuser:
        return None
    if at_least(_floor(scheme), min_level):
        return None
    codenames = [scheme.codename(level) for level in scheme.levels if at_least(level, min_level)]
    UserPerm, GroupPerm = grant_models(model_class)
    user_rows = UserPerm.objects.filter(user=user, permission__codename__in=codenames).values("content_object_id")
    group_rows = GroupPerm.objects.filter(group__user=user, permission__codename__in=codenames).values("content_object_id")
    condition = Q(**{f"{prefix}owner": user}) | Q(**{f"{prefix}pk__in": user_rows}) | Q(**{f"{prefix}pk__in": group_rows})
    if scheme.label == "tracking.experiment" and at_least(_floor(scheme, DEFAULT_EXPERIMENT_ID), min_level):
        condition |= Q(**{f"{prefix}pk": DEFAULT_EXPERIMENT_ID})
    return condition


def filter_visible(user, queryset, *, min_level: str = CAN_READ, prefix: str = "", model_class=None):
    """`queryset` narrowed to what the user may see (at `min_level`), in the database."""
    target = model_class or queryset.model
    condition = visible_q(user, target, min_level=min_level, prefix=prefix)
    return queryset if condition is None else queryset.filter(condition)


def permission_for(scheme: Scheme, level: str):
    """The auth Permission row of a level (created on first use: the staging/production codenames
    are not declared on the registry model)."""
    from django.contrib.auth.models import Permission
    from django.contrib.contenttypes.models import ContentType

    app_label, model_name = scheme.label.split(".")
    content_type = ContentType.objects.get_by_natural_key(app_label, model_name)
    permission, _ = Permission.objects.get_or_create(
        content_type=content_type, codename=scheme.codename(level), defaults={"name": level}
    )
    return permission
