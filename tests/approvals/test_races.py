"""Concurrency: the last approval slot taken twice at once, an approval racing a cancellation.

Real threads with their own connections on PostgreSQL, where the model-row lock is what
serialises them (SQLite serialises every writer anyway).
"""

import threading

import pytest
from django.db import connections

from approvals import services as gov
from approvals.models import Review, TransitionRequest
from core.errors import MlflowError
from registry.models import ModelVersion, StageTransition
from tests import factories
from tests.approvals.conftest import production_policy
from tests.conftest import require_postgresql

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _postgres_only():
    require_postgresql("row-lock races need PostgreSQL (SQLite serialises writers)")


def race(*calls):
    """Run the calls in threads released at the same instant; returns [(result, error)] in order."""
    barrier = threading.Barrier(len(calls))
    results = [None] * len(calls)

    def run(i, call):
        try:
            barrier.wait(timeout=10)
            results[i] = (call(), None)
        except MlflowError as error:
            results[i] = (None, error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    return results


@pytest.mark.parametrize("attempt", range(2))
def test_two_reviewers_taking_the_last_slot_apply_once(governed, people, admin, attempt):
    production_policy(admin, min_approvals=2)
    reviewers = [factories.user(f"rev{i}") for i in range(3)]
    for r in reviewers:
        gov.grant_permission(obj=governed[0], level="CAN_MANAGE_PRODUCTION_VERSIONS", user=r)
    req = gov.request_stage_transition(name="gm", version=1, stage="Production", user=people["editor"])
    gov.approve_transition_request(name="gm", version=1, stage="Production", user=reviewers[0], archive_existing_versions=False)

    def approve(user):
        return lambda: gov.approve_transition_request(name="gm", version=1, stage="Production", user=user,
                                                      archive_existing_versions=True)

    results = race(approve(reviewers[1]), approve(reviewers[2]))
    winners = [r for r, e in results if e is None]
    losers = [e for r, e in results if e is not None]
    assert len(winners) == 1 and winners[0].applied
    assert len(losers) == 1 and "is already APPROVED" in losers[0].message
    req.refresh_from_db()
    assert req.status == "APPROVED"
    assert StageTransition.objects.filter(request_id=req.pk).count() == 1
    assert Review.objects.filter(request=req).count() == 2
    assert ModelVersion.objects.get(pk=governed[1].pk).current_stage == "Production"


@pytest.mark.parametrize("attempt", range(2))
def test_approval_racing_cancellation_ends_in_exactly_one(governed, people, admin, attempt):
    production_policy(admin)
    req = gov.request_stage_transition(name="gm", version=1, stage="Production", user=people["editor"])
    results = race(
        lambda: gov.approve_transition_request(name="gm", version=1, stage="Production", user=people["production_manager"],
                                               archive_existing_versions=False),
        lambda: gov.cancel_transition_request(name="gm", version=1, stage="Production", user=people["editor"]),
    )
    (approved, approve_error), (cancelled, cancel_error) = results
    assert (approve_error is None) != (cancel_error is None), results
    req.refresh_from_db()
    stage = ModelVersion.objects.get(pk=governed[1].pk).current_stage
    if approve_error is None:
        assert req.status == "APPROVED" and stage == "Production"
        assert "is already APPROVED" in cancel_error.message
    else:
        assert req.status == "CANCELLED" and stage == "Staging"
        assert "is already CANCELLED" in approve_error.message
        assert not StageTransition.objects.filter(request_id=req.pk).exists()
    assert TransitionRequest.objects.filter(version=governed[1]).count() == 1
