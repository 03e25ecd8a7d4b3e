"""Who may see or touch a registered model and its versions: the one place registry permissions are decided.

Levels are Databricks' (core.permissions, django-guardian grants): CAN_READ to see a model and
its versions, CAN_EDIT to add versions and edit descriptions, tags and aliases, CAN_MANAGE to
rename, delete and manage grants; stage moves are judged by approvals.policy (called by the
transition service) with the staging/production levels. Versions, aliases, tags and the
registry's artifact copies inherit the model's level. Invisible objects raise MLflow's exact
"not found" errors (404), forbidden actions 403; lists filter in the query, never per row.
"""

from django.db.models import Prefetch

from core import permissions as perms
from core.errors import DoesNotExist, PermissionDenied
from registry.models import ModelVersion, RegisteredModel, RegisteredModelAlias

READ, EDIT, MANAGE = "read", "edit", "manage"
# The level each action will need once levels are enforced here (Databricks' table).
LEVEL_FOR_ACTION = {READ: perms.CAN_READ, EDIT: perms.CAN_EDIT, MANAGE: perms.CAN_MANAGE}


def _active(user) -> bool:
    return user is not None and getattr(user, "is_authenticated", False) and getattr(user, "is_active", False)


def _level(action: str) -> str:
    return LEVEL_FOR_ACTION.get(action, action)


def registered_models_visible_to(user, *, action: str = READ, queryset=None):
    """The registered models the user may read (or act on), as one queryset (never a per-row check)."""
    qs = queryset if queryset is not None else RegisteredModel.objects.all()
    return perms.filter_visible(user, qs, min_level=_level(action), model_class=RegisteredModel)


def model_versions_visible_to(user, *, action: str = READ, queryset=None):
    """The versions of the models the user may read (or act on), as one queryset."""
    qs = queryset if queryset is not None else ModelVersion.objects.all()
    return perms.filter_visible(user, qs, min_level=_level(action), prefix="registered_model__", model_class=RegisteredModel)


def level(user, model: RegisteredModel) -> str | None:
    """The user's permission level on the model (None: they cannot see it)."""
    return perms.effective_level(user, model)


def can(user, model: RegisteredModel, action: str) -> bool:
    return perms.at_least(perms.effective_level(user, model), _level(action))


def check(user, model: RegisteredModel, action: str, *, not_found: Exception | None = None) -> None:
    """404 (`not_found`) when the user cannot see the model, 403 when they may not perform `action`
    (read/edit/manage or a CAN_* level)."""
    if not _active(user):
        raise not_found or not_found_model(model.name)
    perms.require_level(user, model, _level(action), not_found=not_found or not_found_model(model.name), action=f"{action} it")


def require_create(user) -> None:
    """403 unless the user may create registered models (STAGEGATE_RESTRICT_MODEL_CREATION)."""
    perms.require_create(user, RegisteredModel)


def not_found_model(name: str) -> DoesNotExist:
    return DoesNotExist(f"Registered Model with name={name} not found")


def not_found_version(name: str, version) -> DoesNotExist:
    return DoesNotExist(f"Model Version (name={name}, version={version}) not found")


def get_registered_model_for_user(user, name: str, *, action: str = READ, lock: bool = False, queryset=None) -> RegisteredModel:
    """The model by name. 404 RESOURCE_DOES_NOT_EXIST when missing or invisible; 403 when the
    user can see it but not perform `action`. `lock` takes a row lock (inside a transaction)."""
    qs = registered_models_visible_to(user, queryset=queryset)
    if lock:
        qs = qs.select_for_update()
    model = qs.filter(name=name).first()
    if model is None:
        raise not_found_model(name)
    if action != READ:
        check(user, model, action)
    return model


def visible_model_sql(user, name: str) -> tuple[str, list]:
    """A subquery (sql, params) giving the id of the model `name` when the user may read it, and no
    row otherwise: the same rule as get_registered_model_for_user, for the plain-SQL readers of
    registry.reads. Written by hand when nothing narrows it (no ORM compile on the hot path)."""
    if not _active(user):
        return f"SELECT id FROM {RegisteredModel._meta.db_table} WHERE 1 = 0", []
    condition = perms.visible_q(user, RegisteredModel)
    if condition is None:
        return f"SELECT id FROM {RegisteredModel._meta.db_table} WHERE name = %s", [name]
    return RegisteredModel.objects.filter(condition, name=name).order_by().values("id").query.sql_with_params()


def version_queryset():
    """Versions with what `to_mlflow` reads, in a constant number of queries."""
    return ModelVersion.objects.select_related("registered_model").prefetch_related(
        "tags", Prefetch("aliases", queryset=RegisteredModelAlias.objects.only("id", "alias", "version_id"))
    )


def get_model_version_for_user(user, name: str, version: int, *, action: str = READ, lock: bool = False) -> ModelVersion:
    """The version by model name and number; MLflow's "Model Version (name=…, version=…) not found"
    when the model or the version is missing or invisible."""
    qs = model_versions_visible_to(user)
    if lock:
        qs = qs.select_for_update(of=("self",))
    else:
        qs = qs.select_related("registered_model").prefetch_related("tags", "aliases")
    mv = qs.filter(registered_model__name=name, version=version).first()
    if mv is None:
        raise not_found_version(name, version)
    # Do not tell an outsider whether the model exists.
    if action != READ:
        check(user, mv.registered_model, action, not_found=not_found_version(name, version))
    return mv


def artifact_rule(user, relative: str, *, write: bool) -> None:
    """Who may touch `registry/<model pk>/<version>/…` through the artifact proxy.

    The registry writes those copies itself (never through the proxy), so writes are refused
    for everyone; reads need read access to the model (404 for a model the user cannot see).
    """
    if write:
        raise PermissionDenied("Permission denied: registered model versions are read-only.")
    parts = relative.split("/")
    if len(parts) < 2 or not parts[1].isdigit():
        if getattr(user, "is_superuser", False):
            return
        raise PermissionDenied("Permission denied: list a registered model version's folder, not the registry root.")
    pk = int(parts[1])
    # A folder with no model row (an orphan left by a failed delete) is served like any missing
    # path; a model the user cannot see answers 404 as if it had no files.
    model = RegisteredModel.objects.filter(pk=pk).first()
    if model is not None and not registered_models_visible_to(user).filter(pk=pk).exists():
        raise DoesNotExist(f"No such artifact: '{relative}'")


def get_registered_model_at_level(user, name: str, *, min_level: str = perms.CAN_READ, lock: bool = False, action: str = ""):
    """The model by name with the caller's level checked against a level (the stage levels too:
    CAN_MANAGE_STAGING_VERSIONS, …): 404 when invisible, 403 below `min_level`. `lock` takes the row
    lock (inside a transaction): the first lock of every workflow step."""
    if not name:
        from core.errors import missing_parameter

        raise missing_parameter("name")
    qs = RegisteredModel.objects.all()
    if lock:
        qs = qs.select_for_update()
    model = qs.filter(name=name).first()
    if model is None:
        raise not_found_model(name)
    perms.require_level(user, model, min_level, not_found=not_found_model(name), action=action)
    return model


def get_model_version_at_level(user, name: str, version: int, *, min_level: str = perms.CAN_READ, action: str = ""):
    """The version (with its model) by name and number; 404 when either is missing or invisible,
    403 below `min_level`."""
    mv = ModelVersion.objects.select_related("registered_model").filter(registered_model__name=name, version=version).first()
    if mv is None:
        # Do not tell an outsider whether the model exists.
        raise not_found_version(name, version)
    perms.require_level(user, mv.registered_model, min_level, not_found=not_found_version(name, version), action=action)
    return mv
