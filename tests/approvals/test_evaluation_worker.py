"""The seed's tutorial carried further, with the real mlflow client against live_server and a real
Celery worker on Redis serving the `evaluation` queue: versions of lr_wine_quality are evaluated on
the wine hold-out set when they become READY, and a Production policy with `beats_holder` on rmse
refuses a worse version and accepts a better one."""

import os
import time
import warnings

import pytest

from approvals import services as gov
from approvals.models import Evaluation
from core import permissions as perms
from core.errors import InvalidState
from tests import factories
from tests.approvals.conftest import production_policy
from tests.approvals.evaluation_helpers import holdout_csv
from tests.registry.conftest import running_worker

pytestmark = [pytest.mark.client, pytest.mark.django_db(transaction=True)]

MODEL = "lr_wine_quality"


@pytest.fixture
def evaluation_worker(transactional_db, settings):
    """The registry's worker, also serving an evaluation queue of this run's own."""
    queue = f"sg-eval-{os.getpid()}-{time.monotonic_ns()}"
    with running_worker(settings, queues={settings.STAGEGATE_EVALUATION_QUEUE: queue},
                        env={"STAGEGATE_EVALUATION_QUEUE": queue}) as proc:
        yield proc


def _train(features):
    from registry.demo import _train as train

    model, rmse, example = train(features)
    return model, rmse, example


def wait_for(predicate, timeout: float = 240):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError("timed out")


def test_tutorial_versions_evaluated_by_the_worker_and_beats_holder(evaluation_worker, mlflow_client, owner, api_for):
    import mlflow
    import mlflow.sklearn

    warnings.filterwarnings("ignore")
    client = mlflow_client
    client.create_registered_model(MODEL)
    response = api_for(owner).post("/api/2.0/stagegate/evaluation-datasets", {
        "name": MODEL, "dataset": "wine-holdout", "target": "quality", "task": "regression",
        "content": holdout_csv().decode(), "filename": "wine-holdout.csv"})
    assert response.status_code == 200, response.content
    mlflow.set_experiment("wine-quality")
    runs = {}
    for features in (["alcohol", "flavanoids"], ["alcohol", "flavanoids", "color_intensity"], ["alcohol"]):
        model, rmse, example = _train(features)
        with mlflow.start_run() as run:
            mlflow.log_metric("rmse", rmse)
            mlflow.sklearn.log_model(model, name="model", input_example=example, serialization_format="cloudpickle")
        runs[len(runs) + 1] = (run.info.run_id, rmse)
    for number, (run_id, _) in runs.items():
        assert mlflow.register_model(f"runs:/{run_id}/model", MODEL).version == str(number)

    def evaluated():
        rows = list(Evaluation.objects.exclude(status="RUNNING").select_related("version"))
        return rows if len(rows) == 3 else None

    rows = {ev.version.version: ev for ev in wait_for(evaluated)}
    for number, (_, rmse) in runs.items():
        ev = rows[number]
        assert ev.status == "SUCCEEDED" and ev.trigger == "ready", (ev.message, ev.logs)
        assert ev.metrics["rmse"] == pytest.approx(rmse, rel=1e-9) and ev.rows == 45
        assert ev.environment["mlflow"] == mlflow.__version__ and ev.model_checksum == ev.version.checksum
        assert "network: new namespace (no interfaces)" in ev.isolation
    from monitoring.models import AuditRecord

    assert AuditRecord.objects.filter(type="evaluation.completed", model_name=MODEL).count() == 3
    listed = api_for(owner).get("/api/2.0/stagegate/evaluations", {"name": MODEL, "version": "2"}).json()
    assert [(e["version"], e["dataset"], e["status"]) for e in listed["evaluations"]] == [("2", "wine-holdout", "SUCCEEDED")]

    client.transition_model_version_stage(MODEL, "1", "Production")
    reviewer = factories.user("prod_reviewer")
    model = rows[1].version.registered_model
    gov.grant_permission(obj=model, level=perms.CAN_MANAGE_PRODUCTION_VERSIONS, user=reviewer)
    production_policy(owner, model_name=MODEL, checks_spec=[
        {"type": "version_ready"}, {"type": "beats_holder", "dataset": "wine-holdout", "metric": "rmse"}])
    rmse1, rmse2, rmse3 = (runs[n][1] for n in (1, 2, 3))

    worse = gov.request_stage_transition(name=MODEL, version=3, stage="Production", user=owner)
    beats = worse.evidence["on_request"][1]
    assert not beats["passed"]
    assert f"candidate v3 {rmse3:.4g} vs holder v1 (Production) {rmse1:.4g}" in beats["detail"]
    with pytest.raises(InvalidState) as refused:
        gov.approve_transition_request(name=MODEL, version=3, stage="Production", user=reviewer, archive_existing_versions=True)
    assert f"{rmse3:.4g}" in refused.value.message and f"{rmse1:.4g}" in refused.value.message

    better = gov.request_stage_transition(name=MODEL, version=2, stage="Production", user=owner)
    assert all(r["passed"] for r in better.evidence["on_request"])
    outcome = gov.approve_transition_request(name=MODEL, version=2, stage="Production", user=reviewer,
                                             archive_existing_versions=True)
    assert outcome.applied
    assert f"candidate v2 {rmse2:.4g} vs holder v1 (Production) {rmse1:.4g}" in outcome.request.evidence["on_approval"][1]["detail"]
    assert client.get_model_version(MODEL, "2").current_stage == "Production"
