"""Concurrent writers on one run keep LatestMetric and params consistent.

PostgreSQL: the row lock on the run; SQLite: IMMEDIATE transactions serialise writers.
"""

import threading

import pytest
from django.db import connections

from core.errors import AlreadyExists
from tracking import services
from tracking.models import LatestMetric, Metric, Param, Run

pytestmark = pytest.mark.django_db(transaction=True)


def run_threads(target, count):
    errors = []
    barrier = threading.Barrier(count)

    def wrapped(i):
        try:
            barrier.wait()
            target(i)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=wrapped, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def test_concurrent_log_batch_keeps_latest_metric(owner):
    experiment = services.create_experiment(user=owner, name="concurrent")
    run = services.create_run(user=owner, experiment=experiment)

    def log(i):
        services.log_batch(
            run=Run.objects.get(pk=run.pk),
            metrics=[{"key": "loss", "value": float(i * 10 + j), "timestamp": 1000 + j, "step": i * 10 + j} for j in range(10)],
            params=[{"key": "shared", "value": "same"}],
        )

    assert run_threads(log, 6) == []
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

    assert run_threads(create, 4) == []
    assert sorted(outcomes) == ["created", "exists", "exists", "exists"]
