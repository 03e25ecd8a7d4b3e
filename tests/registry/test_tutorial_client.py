"""THE tutorial with the real mlflow client against live_server and a real Celery worker on Redis.

Registration is asynchronous here (no eager tasks): model-versions/create answers
PENDING_REGISTRATION and the client polls model-versions/get until the worker marks
the version READY.
"""

import warnings

import numpy as np
import pytest

from registry.models import ModelVersion, StageTransition

pytestmark = [pytest.mark.client, pytest.mark.django_db(transaction=True)]

FEATURE_SETS = [["alcohol"], ["alcohol", "flavanoids"], ["alcohol", "flavanoids", "color_intensity"]]


def _train(features):
    from sklearn.datasets import load_wine
    from sklearn.linear_model import LinearRegression
    from sklearn.metrics import mean_squared_error
    from sklearn.model_selection import train_test_split

    frame = load_wine(as_frame=True).frame
    train, test = train_test_split(frame, test_size=0.25, random_state=42)
    model = LinearRegression().fit(train[features], train["target"])
    rmse = float(mean_squared_error(test["target"], model.predict(test[features])) ** 0.5)
    return model, rmse, test[features]


def test_wine_tutorial_with_real_client_and_worker(celery_worker, mlflow_client, monkeypatch):
    import mlflow
    import mlflow.pyfunc
    import mlflow.sklearn

    warnings.filterwarnings("ignore")
    client = mlflow_client
    mlflow.set_experiment("wine-quality")
    trained = []
    for index, features in enumerate(FEATURE_SETS, start=1):
        model, rmse, test = _train(features)
        with mlflow.start_run(run_name=f"lr-run-{index}") as run:
            mlflow.log_param("features", ",".join(features))
            mlflow.log_metric("rmse", rmse)
            info = mlflow.sklearn.log_model(model, name="model", input_example=test.head(3), serialization_format="cloudpickle")
        trained.append({"run_id": run.info.run_id, "model": model, "test": test, "rmse": rmse, "uri": info.model_uri})
    assert trained[0]["rmse"] > trained[1]["rmse"] > trained[2]["rmse"]

    # Run 2 from its run URI; the worker copies the files while the client polls for READY.
    v1 = mlflow.register_model(f"runs:/{trained[1]['run_id']}/model", "lr_wine_quality")
    assert v1.version == "1"
    assert client.get_model_version("lr_wine_quality", "1").status == "READY"
    client.transition_model_version_stage("lr_wine_quality", "1", "Production")
    # Run 3 from its logged-model URI (models:/m-…): the server fills in run_id.
    assert trained[2]["uri"].startswith("models:/m-")
    v2 = mlflow.register_model(trained[2]["uri"], "lr_wine_quality")
    assert v2.version == "2"
    assert client.get_model_version("lr_wine_quality", "2").run_id == trained[2]["run_id"]
    client.transition_model_version_stage("lr_wine_quality", "2", "staging")
    client.set_registered_model_alias("lr_wine_quality", "champion", "1")
    stored = {mv.version: mv for mv in ModelVersion.objects.all()}
    assert stored[1].status == stored[2].status == "READY" and stored[1].file_count >= 5

    expected = {1: trained[1], 2: trained[2]}
    for uri, version in [
        ("models:/lr_wine_quality/Production", 1),
        ("models:/lr_wine_quality/Staging", 2),
        ("models:/lr_wine_quality@champion", 1),
        ("models:/lr_wine_quality/latest", 2),
        ("models:/lr_wine_quality/1", 1),
    ]:
        loaded = mlflow.pyfunc.load_model(uri)
        test = expected[version]["test"]
        np.testing.assert_allclose(loaded.predict(test), expected[version]["model"].predict(test), err_msg=uri)

    client.update_registered_model("lr_wine_quality", description="Linear regression on the sklearn wine data set")
    client.update_model_version("lr_wine_quality", "1", description="alcohol + flavanoids")
    client.set_registered_model_tag("lr_wine_quality", "task", "regression")
    client.set_registered_model_tag("lr_wine_quality", "owner", "tutorial")
    client.set_model_version_tag("lr_wine_quality", "2", "validation_status", "pending")
    client.delete_registered_model_tag("lr_wine_quality", "owner")
    client.delete_model_version_tag("lr_wine_quality", "2", "validation_status")
    rm = client.get_registered_model("lr_wine_quality")
    assert rm.description.startswith("Linear regression") and rm.tags == {"task": "regression"}
    assert rm.aliases == {"champion": "1"}
    assert sorted((v.version, v.current_stage) for v in rm.latest_versions) == [("1", "Production"), ("2", "Staging")]
    assert client.get_model_version("lr_wine_quality", "2").tags == {}
    assert client.get_latest_versions("lr_wine_quality", stages=["Production"])[0].version == "1"

    found = client.search_registered_models(filter_string="name = 'lr_wine_quality'")
    assert [m.name for m in found] == ["lr_wine_quality"]
    assert [m.name for m in mlflow.search_registered_models(filter_string="tags.task = 'regression'")] == ["lr_wine_quality"]
    mvs = client.search_model_versions(f"run_id = '{trained[1]['run_id']}'")
    assert [(m.name, m.version) for m in mvs] == [("lr_wine_quality", "1")]
    assert {m.version for m in client.search_model_versions("name = 'lr_wine_quality'")} == {"1", "2"}

    client.rename_registered_model("lr_wine_quality", "lr_wine_quality_renamed")
    loaded = mlflow.pyfunc.load_model("models:/lr_wine_quality_renamed/Production")
    np.testing.assert_allclose(loaded.predict(trained[1]["test"]), trained[1]["model"].predict(trained[1]["test"]))
    client.delete_model_version("lr_wine_quality_renamed", "2")
    assert [v.version for v in client.search_model_versions("name = 'lr_wine_quality_renamed'")] == ["1"]
    with pytest.raises(mlflow.exceptions.MlflowException) as info:
        client.get_registered_model("lr_wine_quality")
    assert info.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    # v2 went with its history; the outbox keeps the record of both.
    assert StageTransition.objects.count() == 1
