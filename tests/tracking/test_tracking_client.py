"""The real mlflow client against live_server: the tracking calls a training script makes."""

import getpass
import math

import pytest

pytestmark = [pytest.mark.client, pytest.mark.django_db(transaction=True)]


def test_tracking_flow_with_real_client(mlflow_client):
    from tracking.models import Run

    import mlflow
    from mlflow.entities import Metric, Param, RunTag

    experiment = mlflow.set_experiment("client-tracking")
    assert experiment.artifact_location == f"mlflow-artifacts:/{experiment.experiment_id}"
    # The second call finds it by name instead of creating it.
    assert mlflow.set_experiment("client-tracking").experiment_id == experiment.experiment_id

    run_ids = {}
    for name, rmse in [("good", 0.4), ("bad", 1.7), ("ok", 0.9)]:
        with mlflow.start_run(run_name=name) as run:
            run_ids[name] = run.info.run_id
            mlflow.log_param("model", "lr")
            mlflow.log_params({"alpha": "0.1", "features": "alcohol"})
            for step in range(3):
                mlflow.log_metric("rmse", rmse + (2 - step) * 0.1, step=step)
            mlflow.set_tag("team", "ml")
            mlflow_client.log_batch(
                run.info.run_id,
                metrics=[Metric("r2", 1 - rmse, 1700000000000, 0)],
                params=[Param("n_features", "1")],
                tags=[RunTag("stage", "dev")],
            )

    got = mlflow_client.get_run(run_ids["good"])
    assert got.info.user_id == getpass.getuser()  # the client's mlflow.user, as on MLflow's server
    assert Run.objects.get(pk=got.info.run_id).owner.username == "owner"  # who authenticated
    assert got.info.status == "FINISHED" and got.info.end_time
    assert got.info.run_name == "good"
    assert got.data.params == {"model": "lr", "alpha": "0.1", "features": "alcohol", "n_features": "1"}
    assert math.isclose(got.data.metrics["rmse"], 0.4)  # the point at the highest step
    assert got.data.tags["team"] == "ml" and got.data.tags["stage"] == "dev"

    found = mlflow_client.search_runs(
        [experiment.experiment_id], filter_string="metrics.rmse < 1", order_by=["metrics.rmse ASC"]
    )
    assert [r.info.run_name for r in found] == ["good", "ok"]
    frame = mlflow.search_runs(experiment_ids=[experiment.experiment_id], order_by=["metrics.rmse DESC"])
    assert list(frame["tags.mlflow.runName"]) == ["bad", "ok", "good"]
    paged = mlflow_client.search_runs([experiment.experiment_id], max_results=2)
    assert len(paged) == 2 and paged.token
    rest = mlflow_client.search_runs([experiment.experiment_id], max_results=2, page_token=paged.token)
    assert {r.info.run_name for r in list(paged) + list(rest)} == {"good", "bad", "ok"}

    history = mlflow_client.get_metric_history(run_ids["good"], "rmse")
    assert [m.step for m in history] == [0, 1, 2]
    assert [round(m.value, 6) for m in history] == [0.6, 0.5, 0.4]

    # Errors arrive as MlflowException with MLflow's codes.
    with pytest.raises(mlflow.exceptions.MlflowException) as excinfo:
        mlflow_client.log_param(run_ids["good"], "model", "rf")
    assert excinfo.value.error_code == "INVALID_PARAMETER_VALUE"
    with pytest.raises(mlflow.exceptions.MlflowException) as excinfo:
        mlflow_client.get_run("f" * 32)
    assert excinfo.value.error_code == "RESOURCE_DOES_NOT_EXIST"

    import pandas as pd

    with mlflow.start_run(run_id=run_ids["ok"]):
        frame = pd.DataFrame({"alcohol": [1.0, 2.0], "quality": [5.0, 6.0]})
        mlflow.log_input(mlflow.data.from_pandas(frame, name="wine", targets="quality"), context="training")
    inputs = mlflow_client.get_run(run_ids["ok"]).inputs.dataset_inputs
    assert [(i.dataset.name, i.tags[0].value) for i in inputs] == [("wine", "training")]
    found = mlflow_client.search_runs([experiment.experiment_id], filter_string="datasets.context = 'training'")
    assert [r.info.run_name for r in found] == ["ok"]

    mlflow_client.delete_run(run_ids["bad"])
    assert [r.info.run_name for r in mlflow_client.search_runs([experiment.experiment_id], order_by=["attributes.run_name ASC"])] == ["good", "ok"]


def test_log_model_and_load_it_back(mlflow_client):
    import mlflow
    import numpy as np
    from mlflow.entities import LoggedModelStatus
    from sklearn.linear_model import LinearRegression

    X = np.array([[1.0], [2.0], [3.0], [4.0]])
    y = np.array([2.0, 4.0, 6.0, 8.0])
    mlflow.set_experiment("client-models")
    with mlflow.start_run() as run:
        mlflow.log_metric("rmse", 0.0)
        model = LinearRegression().fit(X, y)
        # Explicit requirements: skips the slow requirement inference subprocess.
        info = mlflow.sklearn.log_model(model, name="model", input_example=X[:1], pip_requirements=["scikit-learn"])

    assert info.model_uri.startswith("models:/m-")
    logged = mlflow_client.get_logged_model(info.model_id)
    assert logged.status == LoggedModelStatus.READY
    assert logged.source_run_id == run.info.run_id
    assert [m.key for m in logged.metrics] == ["rmse"]
    outputs = mlflow_client.get_run(run.info.run_id).outputs.model_outputs
    assert [o.model_id for o in outputs] == [info.model_id]

    mlflow_client.log_model_params(info.model_id, {"solver": "lsqr"})
    mlflow_client.set_logged_model_tags(info.model_id, {"stage": "candidate"})
    logged = mlflow_client.get_logged_model(info.model_id)
    assert logged.params["solver"] == "lsqr" and logged.tags["stage"] == "candidate"
    found = mlflow_client.search_logged_models(experiment_ids=[logged.experiment_id], filter_string="metrics.rmse < 1")
    assert [m.model_id for m in found] == [info.model_id]

    loaded = mlflow.pyfunc.load_model(info.model_uri)
    assert np.allclose(loaded.predict(np.array([[5.0]])), [10.0])
