"""Who may see or touch experiments, runs and logged models: decided here and only here.

Every tracking API view and page fetches its object through these helpers. Levels are
Databricks' (core.permissions): CAN_READ to see an experiment, its runs and logged models,
CAN_EDIT to log and change them, CAN_MANAGE to rename/delete the experiment and manage grants.
Runs and logged models inherit their experiment's level. Invisible objects are "not found".

Missing objects raise DoesNotExist with MLflow's own messages, so the client's
"create if missing" flows (set_experiment) keep working.
"""

from django.db.models import QuerySet

from core import permissions as perms
from core.errors import DoesNotExist, InvalidParameter
from tracking.models import Experiment, LoggedModel, Run

ACTIONS = {"read": perms.CAN_READ, "edit": perms.CAN_EDIT, "manage": perms.CAN_MANAGE}


def _check_action(user, experiment: Experiment, action: str) -> None:
    """403 when the user (who can see the experiment) lacks the level `action` needs."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    if action == "read":
        return
    perms.require_level(
        user, experiment, ACTIONS[action], not_found=DoesNotExist(f"No Experiment with id={experiment.pk} exists"),
        action=f"{action} it",
    )


def check_create_experiment(user) -> None:
    """Who may create experiments (every signed-in user unless an admin restricted it)."""
    perms.require_create(user, Experiment)


def parse_experiment_id(value) -> int:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        raise InvalidParameter(
            f"Invalid experiment ID '{value}'. Experiment ID must be a valid integer."
        ) from None


def experiments_visible_to(user) -> QuerySet:
    """The experiments `user` may read, as one filterable QuerySet (no per-row checks)."""
    return perms.filter_visible(user, Experiment.objects.all())


def get_experiment_for_user(user, experiment_id, *, action: str = "read") -> Experiment:
    """The experiment by id. Raises InvalidParameter (not an integer), DoesNotExist, PermissionDenied."""
    pk = parse_experiment_id(experiment_id)
    experiment = experiments_visible_to(user).filter(pk=pk).first()
    if experiment is None:
        raise DoesNotExist(f"No Experiment with id={pk} exists")
    _check_action(user, experiment, action)
    return experiment


def get_experiment_by_name_for_user(user, name: str, *, action: str = "read") -> Experiment:
    """The experiment by name (deleted ones too, as MLflow). Raises DoesNotExist, PermissionDenied."""
    experiment = experiments_visible_to(user).filter(name=name).first()
    if experiment is None:
        raise DoesNotExist(f"Could not find experiment with name '{name}'")
    _check_action(user, experiment, action)
    return experiment


def get_run_for_user(user, run_id: str, *, action: str = "read", queryset: QuerySet | None = None) -> Run:
    """The run by id (with its experiment). Raises DoesNotExist, PermissionDenied.

    Lifecycle (a deleted run refusing writes) is the service's business, not access.
    """
    qs = queryset if queryset is not None else Run.objects.all()
    run = (
        qs.select_related("experiment")
        .filter(pk=run_id, experiment__in=experiments_visible_to(user))
        .first()
    )
    if run is None:
        raise DoesNotExist(f"Run with id={run_id} not found")
    _check_action(user, run.experiment, action)
    return run


def get_logged_model_for_user(user, model_id: str, *, action: str = "read") -> LoggedModel:
    """An active logged model by id. Raises DoesNotExist (also for deleted ones), PermissionDenied."""
    model = (
        LoggedModel.objects.active()
        .select_related("experiment")
        .filter(pk=model_id, experiment__in=experiments_visible_to(user))
        .first()
    )
    if model is None:
        raise DoesNotExist(f"Logged model with ID '{model_id}' not found.")
    _check_action(user, model.experiment, action)
    return model
