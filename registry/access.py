"""Who may see or touch a registered model and its versions: the one place permissions are decided.

Permissive for now (every authenticated user reads and writes every model); the
governance work plugs django-guardian grants in here and nowhere else. Missing
objects raise MLflow's exact "not found" errors.
"""

from django.db.models import Prefetch

from core.errors import DoesNotExist, PermissionDenied
from registry.models import ModelVersion, RegisteredModel, RegisteredModelAlias

READ, EDIT, MANAGE = "read", "edit", "manage"


def registered_models_visible_to(user):
    """All registered models the user may read, as one queryset (never a per-row check)."""
    if user is None or not user.is_authenticated:
        return RegisteredModel.objects.none()
    return RegisteredModel.objects.all()


def model_versions_visible_to(user):
    if user is None or not user.is_authenticated:
        return ModelVersion.objects.none()
    return ModelVersion.objects.all()


def can(user, model: RegisteredModel, action: str) -> bool:
    return user is not None and user.is_authenticated and user.is_active


def check(user, model: RegisteredModel, action: str) -> None:
    if action != READ and not can(user, model, action):
        raise PermissionDenied(f"Permission denied: you may not {action} registered model '{model.name}'.")


def not_found_model(name: str) -> DoesNotExist:
    return DoesNotExist(f"Registered Model with name={name} not found")


def not_found_version(name: str, version) -> DoesNotExist:
    return DoesNotExist(f"Model Version (name={name}, version={version}) not found")


def get_registered_model_for_user(user, name: str, *, action: str = READ, lock: bool = False, queryset=None) -> RegisteredModel:
    """The model by name. 404 RESOURCE_DOES_NOT_EXIST when missing or invisible; 403 when the
    user can see it but not perform `action`. `lock` takes a row lock (inside a transaction)."""
    qs = queryset if queryset is not None else registered_models_visible_to(user)
    if lock:
        qs = qs.select_for_update()
    model = qs.filter(name=name).first()
    if model is None:
        raise not_found_model(name)
    check(user, model, action)
    return model


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
    check(user, mv.registered_model, action)
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
