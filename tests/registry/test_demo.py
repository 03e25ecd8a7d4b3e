"""The demo: the tutorial through the services, loadable by mlflow.pyfunc."""

import pytest
from django.core.management import call_command

from registry.models import ModelVersion, RegisteredModel, StageTransition
from tracking.models import Experiment, LatestMetric

pytestmark = pytest.mark.django_db


def test_seed_demo_runs_the_tutorial(admin, _artifact_root, capsys):
    call_command("seed_demo", "--if-empty", "--user", "admin")
    model = RegisteredModel.objects.get(name="lr_wine_quality")
    versions = {v.version: v for v in model.versions.all()}
    assert {n: (v.current_stage, v.status) for n, v in versions.items()} == {1: ("Production", "READY"), 2: ("Staging", "READY")}
    assert model.aliases.get().alias == "champion" and model.aliases.get().version.version == 1
    assert model.tags.get(key="task").value == "regression"
    assert versions[1].description and versions[2].tags.get().key == "validation_status"
    assert set(versions[1].flavors) == {"python_function", "sklearn"}
    experiment = Experiment.objects.get(name="wine-quality")
    rmse = list(LatestMetric.objects.filter(run__experiment=experiment, key="rmse").order_by("run__start_time", "run__name")
                .values_list("run__name", "value"))
    assert [name for name, _ in rmse] == ["lr-run-1", "lr-run-2", "lr-run-3"]
    assert rmse[0][1] > rmse[1][1] > rmse[2][1]
    assert StageTransition.objects.count() == 2
    # --if-empty: a second run changes nothing.
    call_command("seed_demo", "--if-empty", "--user", "admin")
    assert ModelVersion.objects.count() == 2 and "demo not loaded" in capsys.readouterr().out


def test_demo_model_loads_with_mlflow_pyfunc(admin, _artifact_root):
    import mlflow.pyfunc as mlflow_pyfunc  # a dev dependency: always installed for the tests
    import pandas as pd

    call_command("seed_demo", "--user", "admin")
    v1 = ModelVersion.objects.get(version=1)
    model = mlflow_pyfunc.load_model(str(_artifact_root / v1.storage_path))
    prediction = model.predict(pd.DataFrame({"alcohol": [13.2, 12.1], "flavanoids": [3.2, 2.2]}))
    assert len(prediction) == 2 and 0 <= prediction[0] <= 1.5


def test_seed_demo_needs_a_user(db):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="No user named"):
        call_command("seed_demo", "--user", "ghost")
