"""The tracking + registry flow a data scientist runs, as a standalone script.

Run by the tests with the real `mlflow` client of each supported line (3.x from
.venv, 2.22 from .venv-mlflow2) against a live Stagegate. It asserts as it goes
and prints one JSON line of facts for the test to check.

    MLFLOW_TRACKING_URI=... MLFLOW_TRACKING_TOKEN=... python flow.py <workdir> [--register NAME]
"""

import json
import os
import sys
import tempfile
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from sklearn.datasets import load_wine
from sklearn.linear_model import LinearRegression

MLFLOW2 = mlflow.__version__.startswith("2.")


def main(workdir: Path, register: str | None) -> dict:
    facts = {"mlflow_version": mlflow.__version__}
    client = MlflowClient()
    wine = load_wine(as_frame=True).frame
    X, y = wine[["alcohol", "flavanoids"]], wine["color_intensity"]

    experiment = mlflow.set_experiment("client-flow")
    facts["experiment_id"] = experiment.experiment_id
    assert experiment.artifact_location.startswith("mlflow-artifacts:/"), experiment.artifact_location

    with mlflow.start_run(run_name="flow-run") as run:
        run_id = run.info.run_id
        mlflow.log_param("features", "alcohol,flavanoids")
        mlflow.log_params({"fit_intercept": True, "n": len(X)})
        mlflow.set_tag("team", "wine")
        for step, value in enumerate([0.9, 0.8, 0.7]):
            mlflow.log_metric("rmse", value, step=step)
        mlflow.log_metrics({"r2": 0.5, "mae": 0.4})
        client.log_batch(run_id, metrics=[mlflow.entities.Metric("batch_metric", 1.5, 0, 3)],
                         params=[mlflow.entities.Param("batch_param", "x")], tags=[mlflow.entities.RunTag("batch_tag", "y")])
        model = LinearRegression().fit(X, y)
        if MLFLOW2:
            info = mlflow.sklearn.log_model(model, artifact_path="model", input_example=X.head(3))
        else:
            info = mlflow.sklearn.log_model(model, name="model", input_example=X.head(3))
        # Nested artifact directories.
        tmp = Path(tempfile.mkdtemp(dir=workdir))
        (tmp / "reports" / "deep").mkdir(parents=True)
        (tmp / "reports" / "summary.txt").write_text("rmse went down\n")
        (tmp / "reports" / "deep" / "data.csv").write_text("a,b\n1,2\n")
        mlflow.log_artifacts(str(tmp / "reports"), artifact_path="reports")
        mlflow.log_text("hello", "notes/hello.txt")

    facts["model_uri"] = info.model_uri
    loaded = mlflow.pyfunc.load_model(info.model_uri)
    expected = model.predict(X)
    got = np.asarray(loaded.predict(X)).reshape(-1)
    assert np.allclose(got, expected), "loaded model predicts differently"
    facts["predictions_equal"] = True

    finished = client.get_run(run_id)
    assert finished.info.status == "FINISHED"
    assert finished.data.params["features"] == "alcohol,flavanoids"
    assert finished.data.metrics["rmse"] == 0.7
    assert finished.data.tags["team"] == "wine"
    facts["user_id"] = finished.info.user_id

    history = client.get_metric_history(run_id, "rmse")
    facts["history"] = [(m.step, m.value) for m in history]

    # A second and third run so search has something to order.
    for value in (0.95, 0.5):
        with mlflow.start_run():
            mlflow.log_metric("rmse", value)
    found = mlflow.search_runs(experiment_ids=[experiment.experiment_id], filter_string="metrics.rmse < 0.9",
                               order_by=["metrics.rmse ASC"])
    assert isinstance(found, pd.DataFrame)
    facts["search_rmse"] = list(found["metrics.rmse"])

    top = [f.path for f in client.list_artifacts(run_id)]
    nested = [f.path for f in client.list_artifacts(run_id, "reports")]
    deep = [f.path for f in client.list_artifacts(run_id, "reports/deep")]
    facts["artifacts"] = {"top": sorted(top), "reports": sorted(nested), "deep": sorted(deep)}
    out = Path(client.download_artifacts(run_id, "reports", str(workdir)))
    facts["downloaded"] = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    facts["downloaded_text"] = (out / "summary.txt").read_text()

    if register:
        version = mlflow.register_model(info.model_uri, register)
        facts["registered_version"] = version.version
        facts["registered_status"] = version.status
        client.transition_model_version_stage(register, version.version, "Production")
        prod = mlflow.pyfunc.load_model(f"models:/{register}/Production")
        assert np.allclose(np.asarray(prod.predict(X)).reshape(-1), expected)
        client.set_registered_model_alias(register, "champion", version.version)
        champion = mlflow.pyfunc.load_model(f"models:/{register}@champion")
        assert np.allclose(np.asarray(champion.predict(X)).reshape(-1), expected)
        by_number = mlflow.pyfunc.load_model(f"models:/{register}/{version.version}")
        facts["version_loads_equal"] = bool(np.allclose(np.asarray(by_number.predict(X)).reshape(-1), expected))
        facts["registry_loads_equal"] = True
    return facts


if __name__ == "__main__":
    workdir = Path(sys.argv[1])
    register = sys.argv[sys.argv.index("--register") + 1] if "--register" in sys.argv else None
    print("FACTS " + json.dumps(main(workdir, register)))
