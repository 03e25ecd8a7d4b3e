"""The demo registry: THE tutorial, run through the services (never over HTTP).

Experiment "wine-quality", three LinearRegression runs on scikit-learn's bundled wine
data, each adding a feature (alcohol; + flavanoids; + color_intensity), RMSE logged.
The bundled set has no "quality" column, so the runs regress `target`, the cultivar
class 0-2: it is the data set's own label, ordered along the same chemistry the
features measure, and the RMSE falls run to run (≈0.75, 0.41, 0.34) as in the tutorial.
Run 2 becomes lr_wine_quality v1 (Production, alias champion), run 3 v2 (Staging).

The model files are written here in MLflow's own format (MLmodel with the
python_function and sklearn flavors, a pickled model.pkl, environment files), so
`mlflow.pyfunc.load_model("models:/lr_wine_quality/Production")` loads them and the
server needs no mlflow package at runtime.
"""

import io
import json
import pickle
import platform
import uuid
from datetime import UTC, datetime

import yaml
from django.db import transaction

from core import artifacts
from registry import services
from registry.models import RegisteredModel
from tracking import services as tracking
from tracking.models import Experiment, now_ms

EXPERIMENT = "wine-quality"
MODEL_NAME = "lr_wine_quality"
FEATURE_SETS = [["alcohol"], ["alcohol", "flavanoids"], ["alcohol", "flavanoids", "color_intensity"]]
TARGET = "target"


def _train(features):
    from sklearn.datasets import load_wine
    from sklearn.linear_model import LinearRegression
    from sklearn.metrics import mean_squared_error
    from sklearn.model_selection import train_test_split

    frame = load_wine(as_frame=True).frame
    train, test = train_test_split(frame, test_size=0.25, random_state=42)
    model = LinearRegression().fit(train[features], train[TARGET])
    rmse = float(mean_squared_error(test[TARGET], model.predict(test[features])) ** 0.5)
    return model, rmse, test[features].head(3)


def mlmodel_files(model, *, features, run_id: str, artifact_path: str, input_example) -> dict[str, bytes]:
    """The files `mlflow.sklearn.save_model` writes, in the same format."""
    import sklearn

    python_version = platform.python_version()
    signature = {
        "inputs": json.dumps([{"type": "double", "name": f, "required": True} for f in features]),
        "outputs": json.dumps([{"type": "tensor", "tensor-spec": {"dtype": "float64", "shape": [-1]}}]),
        "params": None,
    }
    mlmodel = {
        "artifact_path": artifact_path,
        "flavors": {
            "python_function": {
                "env": {"conda": "conda.yaml", "virtualenv": "python_env.yaml"},
                "loader_module": "mlflow.sklearn",
                "model_path": "model.pkl",
                "predict_fn": "predict",
                "python_version": python_version,
            },
            "sklearn": {
                "code": None,
                "pickled_model": "model.pkl",
                "serialization_format": "pickle",
                "sklearn_version": sklearn.__version__,
            },
        },
        "mlflow_version": "3.17.2",
        "model_size_bytes": 0,
        "model_uuid": uuid.uuid4().hex,
        "run_id": run_id,
        "saved_input_example_info": {"artifact_path": "input_example.json", "type": "dataframe", "pandas_orient": "split"},
        "signature": signature,
        "utc_time_created": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f"),
    }
    pickled = pickle.dumps(model)
    mlmodel["model_size_bytes"] = len(pickled)
    requirements = [f"scikit-learn=={sklearn.__version__}", "numpy", "pandas", "cloudpickle"]
    example = {"columns": list(input_example.columns), "data": input_example.values.tolist()}
    return {
        "MLmodel": yaml.safe_dump(mlmodel, sort_keys=False).encode(),
        "model.pkl": pickled,
        "conda.yaml": yaml.safe_dump(
            {"channels": ["conda-forge"], "dependencies": [f"python={python_version}", "pip", {"pip": ["mlflow", *requirements]}],
             "name": "mlflow-env"}
        ).encode(),
        "python_env.yaml": yaml.safe_dump(
            {"python": python_version, "build_dependencies": ["pip", "setuptools", "wheel"], "dependencies": ["-r requirements.txt"]}
        ).encode(),
        "requirements.txt": ("\n".join(["mlflow", *requirements]) + "\n").encode(),
        "input_example.json": json.dumps(example).encode(),
    }


def _run(*, user, experiment, index: int, features):
    model, rmse, example = _train(features)
    run = tracking.create_run(user=user, experiment=experiment, run_name=f"lr-run-{index}",
                              tags=[{"key": "mlflow.source.type", "value": "LOCAL"}, {"key": "demo", "value": "true"}])
    ts = now_ms()
    tracking.log_batch(
        run=run,
        params=[{"key": "features", "value": ",".join(features)}, {"key": "model", "value": "LinearRegression"},
                {"key": "target", "value": TARGET}],
        metrics=[{"key": "rmse", "value": rmse, "timestamp": ts, "step": 0}],
    )
    base = artifacts.join(artifacts.uri_to_path(run.artifact_uri), "model")
    files = mlmodel_files(model, features=features, run_id=run.run_uuid, artifact_path="model", input_example=example)
    for name, data in files.items():
        artifacts.save_stream(artifacts.join(base, name), io.BytesIO(data))
    mlmodel = yaml.safe_load(files["MLmodel"])
    tracking.log_model(run=run, model_json=json.dumps(mlmodel))
    tracking.update_run(run=run, status="FINISHED", end_time=now_ms())
    return run, rmse


def load_demo(*, user) -> RegisteredModel:
    """Run the tutorial; returns lr_wine_quality. Does nothing when that model exists already."""
    existing = RegisteredModel.objects.filter(name=MODEL_NAME).first()
    if existing is not None:
        return existing
    experiment = Experiment.objects.filter(name=EXPERIMENT).first() or tracking.create_experiment(user=user, name=EXPERIMENT)
    runs = [_run(user=user, experiment=experiment, index=i + 1, features=f)[0] for i, f in enumerate(FEATURE_SETS)]
    services.create_registered_model(
        name=MODEL_NAME, user=user, description="Linear regression on the scikit-learn wine data set (predicts the cultivar class)."
    )
    v1 = services.create_model_version(name=MODEL_NAME, source=f"runs:/{runs[1].run_uuid}/model", run_id=runs[1].run_uuid, user=user,
                                       description="alcohol + flavanoids")
    v2 = services.create_model_version(name=MODEL_NAME, source=f"runs:/{runs[2].run_uuid}/model", run_id=runs[2].run_uuid, user=user,
                                       description="alcohol + flavanoids + color_intensity")
    # Each create committed, so (with eager tasks) the copies are READY before the stage moves.
    with transaction.atomic():
        services.transition_model_version_stage(name=MODEL_NAME, version=v1.version, stage="Production", user=user,
                                                comment="Demo: best RMSE so far")
        services.transition_model_version_stage(name=MODEL_NAME, version=v2.version, stage="Staging", user=user,
                                                comment="Demo: candidate")
        services.set_registered_model_alias(name=MODEL_NAME, alias="champion", version=v1.version, user=user)
        services.set_registered_model_tag(name=MODEL_NAME, key="task", value="regression", user=user)
        services.set_model_version_tag(name=MODEL_NAME, version=v2.version, key="validation_status", value="pending", user=user)
    return RegisteredModel.objects.get(name=MODEL_NAME)
