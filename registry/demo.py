"""The demo registry: THE tutorial, run through the services (never over HTTP).

Experiment "wine-quality": predict a red wine's quality score (3-8, as tasters grade it) from
eleven lab measurements, a regression. Three runs, each a linear model (StandardScaler +
SGDRegressor) trained epoch by epoch, each with more measurements: alcohol; + volatile acidity
and sulphates; all eleven. Every run logs `rmse` (hold-out) and `train_rmse` per epoch, so its
run page opens on a training curve; the final RMSE falls run to run.
Run 2 becomes lr_wine_quality v1 (Production, alias champion), run 3 v2 (Staging).

The data is SYNTHETIC (the UCI wine-quality CSV cannot be fetched here, and no installable package
ships it): `wine_quality_frame()` draws 1,599 red wines (the UCI set's size) from a seeded numpy
generator with the UCI set's ranges, means and main correlations, and scores them with the
documented linear formula in `quality_score()` plus noise. `wine_quality_split()` is the fixed
hold-out split every user of the demo data (runs, evaluation) shares.

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
# The UCI columns, with underscores for spaces ("fixed acidity" -> fixed_acidity).
FEATURES = ["fixed_acidity", "volatile_acidity", "citric_acid", "residual_sugar", "chlorides", "free_sulfur_dioxide",
            "total_sulfur_dioxide", "density", "pH", "sulphates", "alcohol"]
FEATURE_SETS = [["alcohol"], ["alcohol", "volatile_acidity", "sulphates"], FEATURES]
TARGET = "quality"
SEED = 2009  # the year Cortez et al. published the wine-quality data
EPOCHS = 40

# quality_score: 5.64 + sum(weight * (measurement - UCI mean)) + N(0, 0.5), rounded, clipped to 3..8.
QUALITY_WEIGHTS = {
    "alcohol": (0.33, 10.42), "volatile_acidity": (-1.3, 0.53), "sulphates": (1.0, 0.66), "chlorides": (-4.0, 0.087),
    "total_sulfur_dioxide": (-0.006, 46.5), "free_sulfur_dioxide": (0.004, 15.9), "pH": (-0.5, 3.31),
    "citric_acid": (-0.2, 0.27), "fixed_acidity": (0.03, 8.32), "residual_sugar": (0.02, 2.54), "density": (-30.0, 0.9967),
}


def quality_score(frame, noise):
    """The documented scoring formula (see QUALITY_WEIGHTS) applied to measurements plus `noise`."""
    import numpy as np

    raw = 5.64 + sum(w * (frame[col] - mean) for col, (w, mean) in QUALITY_WEIGHTS.items()) + noise
    return np.clip(np.rint(raw), 3, 8).astype(int)


def wine_quality_frame(n: int = 1599, seed: int = SEED):
    """A deterministic synthetic red-wine table: the eleven FEATURES (UCI ranges) and `quality` (3-8)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)

    def clip(values, low, high, decimals):
        return np.round(np.clip(values, low, high), decimals)

    fixed = clip(rng.normal(8.32, 1.74, n), 4.6, 15.9, 1)
    citric = clip(0.27 + 0.07 * (fixed - 8.32) + rng.normal(0, 0.15, n), 0.0, 1.0, 2)
    volatile = clip(rng.normal(0.53, 0.17, n) - 0.2 * (citric - 0.27), 0.12, 1.58, 3)
    sugar = clip(rng.lognormal(np.log(2.3), 0.35, n), 0.9, 15.5, 1)
    chlorides = clip(rng.lognormal(np.log(0.08), 0.3, n), 0.012, 0.611, 3)
    free = clip(rng.gamma(2.3, 6.9, n), 1, 72, 0)
    total = clip(2.2 * free + rng.gamma(2.0, 6.0, n), 6, 289, 0)
    alcohol = clip(rng.normal(10.42, 1.07, n), 8.4, 14.9, 1)
    ph = clip(3.31 - 0.06 * (fixed - 8.32) + rng.normal(0, 0.12, n), 2.74, 4.01, 2)
    sulphates = clip(rng.lognormal(np.log(0.64), 0.22, n), 0.33, 2.0, 2)
    density = clip(0.9967 + 0.00065 * (fixed - 8.32) - 0.0009 * (alcohol - 10.42) + 0.0004 * (sugar - 2.54)
                   + rng.normal(0, 0.0009, n), 0.990, 1.004, 5)
    frame = pd.DataFrame({
        "fixed_acidity": fixed, "volatile_acidity": volatile, "citric_acid": citric, "residual_sugar": sugar,
        "chlorides": chlorides, "free_sulfur_dioxide": free, "total_sulfur_dioxide": total, "density": density,
        "pH": ph, "sulphates": sulphates, "alcohol": alcohol,
    })
    frame[TARGET] = quality_score(frame, rng.normal(0, 0.5, n))
    return frame


def wine_quality_split(test_size: float = 0.25):
    """(train, test): the fixed hold-out split of `wine_quality_frame()` the demo runs are scored on."""
    from sklearn.model_selection import train_test_split

    return tuple(train_test_split(wine_quality_frame(), test_size=test_size, random_state=42))


def _train(features):
    """A linear model fitted one epoch at a time; returns (model, [(train_rmse, rmse) per epoch], input example)."""
    from sklearn.linear_model import SGDRegressor
    from sklearn.metrics import root_mean_squared_error
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    train, test = wine_quality_split()
    scaler = StandardScaler().fit(train[features])
    x_train, x_test = scaler.transform(train[features]), scaler.transform(test[features])
    sgd = SGDRegressor(learning_rate="constant", eta0=0.0001, random_state=0)
    curve = []
    for _ in range(EPOCHS):
        sgd.partial_fit(x_train, train[TARGET])
        curve.append((float(root_mean_squared_error(train[TARGET], sgd.predict(x_train))),
                      float(root_mean_squared_error(test[TARGET], sgd.predict(x_test)))))
    return Pipeline([("scale", scaler), ("sgd", sgd)]), curve, test[features].head(3)


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
    model, curve, example = _train(features)
    run = tracking.create_run(user=user, experiment=experiment, run_name=f"lr-run-{index}",
                              tags=[{"key": "mlflow.source.type", "value": "LOCAL"}, {"key": "demo", "value": "true"}])
    ts = now_ms()
    tracking.log_batch(
        run=run,
        params=[{"key": "features", "value": ", ".join(features)}, {"key": "model", "value": "StandardScaler+SGDRegressor"},
                {"key": "target", "value": TARGET}, {"key": "epochs", "value": str(EPOCHS)}, {"key": "data", "value": "synthetic"}],
        metrics=[{"key": key, "value": value, "timestamp": ts + step * 1000, "step": step}
                 for step, (train_rmse, rmse) in enumerate(curve, start=1)
                 for key, value in (("train_rmse", train_rmse), ("rmse", rmse))],
    )
    rmse = curve[-1][1]
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
        name=MODEL_NAME, user=user, description=("Predicts a red wine's quality score (3-8) from eleven lab measurements: a linear regression "
                                            "trained on a **synthetic** wine-quality table (see registry/demo.py).")
    )
    v1 = services.create_model_version(name=MODEL_NAME, source=f"runs:/{runs[1].run_uuid}/model", run_id=runs[1].run_uuid, user=user,
                                       description="alcohol + volatile acidity + sulphates")
    v2 = services.create_model_version(name=MODEL_NAME, source=f"runs:/{runs[2].run_uuid}/model", run_id=runs[2].run_uuid, user=user,
                                       description="all eleven measurements")
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
