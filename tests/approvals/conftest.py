"""Governance fixtures: the permission personas on one model, runs with metrics, policies."""

import pytest

from approvals import services as gov
from core import permissions as perms
from tests import factories
from tests.registry.conftest import _run_commit_callbacks, make_version, manual_on_commit, model_files  # noqa: F401


@pytest.fixture
def people(db, admin, owner, outsider):
    """One user per level on a model: outsider, reader, editor, staging/production managers, manager, admin."""
    return {
        "outsider": outsider,
        "reader": factories.user("reader"),
        "editor": factories.user("editor"),
        "staging_manager": factories.user("staging_manager"),
        "production_manager": factories.user("production_manager"),
        "manager": factories.user("manager"),
        "admin": admin,
        "owner": owner,
    }


LEVEL_OF = {
    "reader": perms.CAN_READ,
    "editor": perms.CAN_EDIT,
    "staging_manager": perms.CAN_MANAGE_STAGING_VERSIONS,
    "production_manager": perms.CAN_MANAGE_PRODUCTION_VERSIONS,
    "manager": perms.CAN_MANAGE,
}


def grant_all(obj, people) -> None:
    for persona, level in LEVEL_OF.items():
        gov.grant_permission(obj=obj, level=level, user=people[persona])


@pytest.fixture
def run_with_metrics(owner):
    """run_with_metrics(rmse=0.7) -> a run (in a fresh experiment) holding those metrics."""
    from tracking import services as tracking
    from tracking.models import Experiment, now_ms

    def make(**metrics):
        experiment = Experiment.objects.filter(name="gov-exp").first() or tracking.create_experiment(user=owner, name="gov-exp")
        run = tracking.create_run(user=owner, experiment=experiment)
        for key, value in metrics.items():
            tracking.log_metric(run=run, key=key, value=value, timestamp=now_ms())
        return run

    return make


@pytest.fixture
def governed(make_version, people, run_with_metrics):
    """Model "gm" owned by `owner` with v1 (in Staging, from a run with rmse 0.7), every persona granted."""
    from registry.models import RegisteredModel

    run = run_with_metrics(rmse=0.7)
    mv = make_version("gm", run_id=run.run_uuid, stage="Staging")
    model = RegisteredModel.objects.get(name="gm")
    grant_all(model, people)
    return model, mv


def production_policy(user, **overrides):
    spec = dict(stage="Production", requires_approval=True, min_approvals=1, approver_level="",
                allow_self_approval=False, checks_spec=[])
    spec.update(overrides)
    return gov.set_stage_policy(user=user, **spec)
