"""Who may see or touch experiments, runs and logged models: decided here and only here.

Every tracking API view and page fetches its object through these helpers. Levels are
Databricks' (core.permissions): CAN_READ to see an experiment, its runs and logged models,
CAN_EDIT to log and change them, CAN_MANAGE to rename/delete the experiment and manage grants.
Runs and logged models inherit their experiment's level. Invisible objects are "not found".

Missing objects raise DoesNotExist with MLflow's own messages, so the client's
"create if missing" flows (set_experiment) keep working.
"""

from django.core.exceptions import EmptyResultSet
from django.db.models import Q, QuerySet

from core import permissions as perms
from core.errors import DoesNotExist, InvalidParameter
from core.sql import fetch_sets, instance, row_by_pk, select_plain
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


def may_choose_artifact_location(user) -> bool:
    """Only superusers may place an experiment's artifacts; everyone else gets the server's own location."""
    return bool(getattr(user, "is_superuser", False))


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


def runs_visible_in(user, experiment_ids: list[int]) -> Q:
    """A filter on runs: in one of these experiments and visible to the user (one SQL condition).
    Without a narrowing rule it is the id list alone, which spares the search an ORM subquery."""
    if perms.visible_q(user, Experiment) is None:
        return Q(experiment_id__in=experiment_ids)
    return Q(experiment__in=experiments_visible_to(user).filter(pk__in=experiment_ids))


def get_experiment_for_user(user, experiment_id, *, action: str = "read") -> Experiment:
    """The experiment by id. Raises InvalidParameter (not an integer), DoesNotExist, PermissionDenied."""
    pk = parse_experiment_id(experiment_id)
    if perms.visible_q(user, Experiment) is None:  # nothing narrows it: by id alone, no ORM compile
        experiment = row_by_pk(Experiment, pk)
    else:
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


def run_not_found(run_id: str) -> DoesNotExist:
    return DoesNotExist(f"Run with id={run_id} not found")


def visible_run_sql(user, run_id: str, columns: tuple[str, ...]) -> tuple[str, list]:
    """A statement (sql, params) selecting `columns` of the run `run_id` when the user may read it,
    and no row otherwise: the rule of get_run_for_user, for the plain-SQL readers (runs/get,
    metrics/get-history). Written by hand when nothing narrows it (no ORM compile on the hot path)."""
    table = Run._meta.db_table
    select = ", ".join(f'"{column}"' for column in columns)
    try:
        if perms.visible_q(user, Experiment) is None:
            return f'SELECT {select} FROM {table} WHERE "run_uuid" = %s', [run_id]
        visible = Run.objects.filter(pk=run_id, experiment__in=experiments_visible_to(user))
        return visible.values_list(*columns).query.sql_with_params()
    except EmptyResultSet:  # nothing is visible (an inactive user)
        return f'SELECT {select} FROM {table} WHERE 1 = 0', []


def get_run_for_user(user, run_id: str, *, action: str = "read", queryset: QuerySet | None = None) -> Run:
    """The run by id (with its experiment). Raises DoesNotExist, PermissionDenied.

    Lifecycle (a deleted run refusing writes) is the service's business, not access.
    """
    if queryset is None and perms.visible_q(user, Experiment) is None:
        # Nothing narrows it: the run and its experiment by id, one round trip, no ORM compile.
        run_table = Run._meta.db_table
        runs, experiments = fetch_sets([
            select_plain(Run, '"run_uuid" = %s', [run_id]),
            select_plain(Experiment, f'"id" = (SELECT "experiment_id" FROM {run_table} WHERE "run_uuid" = %s)', [run_id]),
        ])
        run = instance(Run, runs)
        if run is not None:
            run.experiment = instance(Experiment, experiments)
    else:
        qs = queryset if queryset is not None else Run.objects.all()
        run = qs.select_related("experiment").filter(pk=run_id, experiment__in=experiments_visible_to(user)).first()
    if run is None:
        raise run_not_found(run_id)
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
