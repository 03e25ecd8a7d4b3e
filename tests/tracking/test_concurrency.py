"""Concurrent writers on one run keep LatestMetric and params consistent.

PostgreSQL: the row lock on the run; SQLite: IMMEDIATE transactions serialise writers.
"""


import pytest

from core.errors import AlreadyExists
from tracking import services
from tracking.models import LatestMetric, Metric, Param, Run

from tests.conftest import run_together

pytestmark = pytest.mark.django_db(transaction=True)


def test_concurrent_log_batch_keeps_latest_metric(owner):
    experiment = services.create_experiment(user=owner, name="concurrent")
    run = services.create_run(user=owner, experiment=experiment)

    def log(i):
        services.log_batch(
            run=Run.objects.get(pk=run.pk),
            metrics=[{"key": "loss", "value": float(i * 10 + j), "timestamp": 1000 + j, "step": i * 10 + j} for j in range(10)],
            params=[{"key": "shared", "value": "same"}],
        )

    assert run_together(log, 6) == []
    assert Metric.objects.filter(run=run).count() == 60
    latest = LatestMetric.objects.get(run=run, key="loss")
    assert (latest.step, latest.value) == (59, 59.0)
    assert Param.objects.filter(run=run, key="shared").count() == 1


def test_concurrent_create_experiment_same_name(owner):
    outcomes = []

    def create(i):
        try:
            services.create_experiment(user=owner, name="race")
            outcomes.append("created")
        except AlreadyExists:
            outcomes.append("exists")

    assert run_together(create, 4) == []
    assert sorted(outcomes) == ["created", "exists", "exists", "exists"]
