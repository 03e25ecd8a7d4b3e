"""The demo: the tutorial through the services, loadable by mlflow.pyfunc."""

import pytest
from django.core.management import call_command

from registry import demo
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
    # Each run has a training curve: rmse per epoch, falling from the first epoch to the last.
    from tracking.models import Metric

    curve = list(Metric.objects.filter(run__name="lr-run-3", key="rmse").order_by("step").values_list("step", "value"))
    assert len(curve) == demo.EPOCHS and curve[0][0] == 1 and curve[0][1] > 2 * curve[-1][1]
    assert Metric.objects.filter(run__name="lr-run-1", key="train_rmse").count() == demo.EPOCHS
    assert "synthetic" in model.description
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
    # v1: alcohol, volatile acidity, sulphates -> a quality score; more alcohol scores higher.
    prediction = model.predict(pd.DataFrame({"alcohol": [13.2, 9.1], "volatile_acidity": [0.4, 0.4], "sulphates": [0.7, 0.7]}))
    assert len(prediction) == 2 and 3 <= prediction[1] < prediction[0] <= 8


def test_seed_demo_needs_a_user(db):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="No user named"):
        call_command("seed_demo", "--user", "ghost")


def test_wine_quality_data_is_deterministic_and_realistic():
    frame = demo.wine_quality_frame()
    assert list(frame.columns) == [*demo.FEATURES, "quality"] and len(frame) == 1599
    assert frame.equals(demo.wine_quality_frame()), "seeded: the same table every time"
    assert frame["quality"].between(3, 8).all() and frame["quality"].mode()[0] in (5, 6)
    assert frame["alcohol"].between(8.4, 14.9).all() and frame["pH"].between(2.74, 4.01).all()
    assert (frame["total_sulfur_dioxide"] >= frame["free_sulfur_dioxide"]).all()
    assert frame["alcohol"].corr(frame["quality"]) > 0.3 > -0.2 > frame["volatile_acidity"].corr(frame["quality"])
    train, test = demo.wine_quality_split()
    assert (len(train), len(test)) == (1199, 400) and not set(train.index) & set(test.index)
