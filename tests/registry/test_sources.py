"""A version's source is read with the caller's rights: every source kind against every caller.

Alice owns a private experiment (a run with a model folder, a logged model) and a registered model.
Bob may read her experiment and her model (CAN_READ); Mallory has no grant; the admin is a superuser.
Each registers Alice's things into a model of their own: readers may, outsiders get the 404 of an
object they cannot see (403 for a filesystem path), and then nothing is written: no version, no
copied file, no tag on Alice's logged model, no event.
"""

import json
import os
import subprocess
import sys

import pytest

from core.services import create_api_token
from registry import services
from registry.models import Event, ModelVersion
from tests.factories import grant, user
from tests.registry.conftest import write_model_dir
from tracking.models import Experiment, LoggedModel, LoggedModelTag, Run

pytestmark = pytest.mark.django_db

MLFLOW2_PYTHON = os.path.join(os.path.dirname(__file__), "..", "..", ".venv-mlflow2", "bin", "python")


@pytest.fixture
def alice_world(_artifact_root, admin):
    alice, bob, mallory = user("alice"), user("bob"), user("mallory")
    exp = Experiment.objects.create(name="alice-private", artifact_location="mlflow-artifacts:/placeholder")
    exp.artifact_location = f"mlflow-artifacts:/{exp.pk}"
    exp.save(update_fields=["artifact_location"])
    grant(exp, "CAN_MANAGE", user=alice)
    grant(exp, "CAN_READ", user=bob)
    run = Run.objects.create(experiment=exp, artifact_uri=f"mlflow-artifacts:/{exp.pk}/{'a' * 32}/artifacts", run_uuid="a" * 32)
    write_model_dir(_artifact_root, f"{exp.pk}/{run.pk}/artifacts/model", extra={"secret.txt": "alice's data"})
    logged = LoggedModel.objects.create(
        experiment=exp, name="lm", source_run=run, artifact_location=f"mlflow-artifacts:/{exp.pk}/models/m-{'b' * 32}/artifacts",
        model_id="m-" + "b" * 32,
    )
    write_model_dir(_artifact_root, f"{exp.pk}/models/{logged.pk}/artifacts")
    services.create_registered_model(name="alice-model", user=alice)
    services.create_model_version(name="alice-model", source=f"runs:/{run.pk}/model", run_id=run.pk, user=alice)
    grant(services.access.get_registered_model_for_user(alice, "alice-model"), "CAN_READ", user=bob)
    for person in (bob, mallory, admin, alice):
        services.create_registered_model(name=f"{person.username}-target", user=person)
    return {"alice": alice, "bob": bob, "mallory": mallory, "admin": admin, "exp": exp, "run": run, "logged": logged,
            "root": _artifact_root}


def _sources(w) -> dict[str, dict]:
    exp, run, logged, root = w["exp"], w["run"], w["logged"], w["root"]
    folder = f"{exp.pk}/{run.pk}/artifacts/model"
    return {
        "runs": {"source": f"runs:/{run.pk}/model", "run_id": run.pk},
        "runs-no-run-id": {"source": f"runs:/{run.pk}/model"},
        "mlflow-artifacts": {"source": f"mlflow-artifacts:/{folder}", "run_id": run.pk},
        "mlflow-artifacts-bare": {"source": f"mlflow-artifacts:/{folder}"},
        "store-relative": {"source": folder},
        "registered": {"source": "models:/alice-model/1"},
        "registered-stage": {"source": "models:/alice-model/None"},
        "logged-model": {"source": f"models:/{logged.pk}", "model_id": logged.pk},
        "logged-model-bare": {"source": f"models:/{logged.pk}"},
        "file-uri": {"source": f"file://{root}/{folder}"},
        "absolute-path": {"source": f"{root}/{folder}"},
        "external-with-her-run": {"source": "s3://bucket/alice/model", "run_id": run.pk},
        "external-with-her-logged-model": {"source": "s3://bucket/alice/model", "model_id": logged.pk},
    }


FILESYSTEM = {"file-uri", "absolute-path"}
EXPERIMENT_ONLY = set()  # every kind above names something of Alice's experiment or her model


def _expected(caller: str, kind: str) -> int:
    """HTTP status of model-versions/create for this caller and source kind."""
    if kind in FILESYSTEM:
        return 200 if caller == "admin" else 403
    if caller in ("alice", "bob", "admin"):
        return 200
    return 404  # mallory: Alice's run, logged model, experiment and model are invisible to him


@pytest.mark.parametrize("caller", ["alice", "bob", "mallory", "admin"])
def test_each_source_kind_against_each_caller_through_the_api(alice_world, api_for, caller):
    w = alice_world
    api = api_for(w[caller])
    target = f"{caller}-target"
    tag_before = LoggedModelTag.objects.filter(model=w["logged"], key="mlflow.modelVersions").values_list("value", flat=True).first()
    for kind, body in _sources(w).items():
        versions_before, events_before = ModelVersion.objects.count(), Event.objects.count()
        files_before = sorted(p.relative_to(w["root"]).as_posix() for p in w["root"].rglob("*"))
        r = api.post("model-versions/create", {"name": target, **body})
        expected = _expected(caller, kind)
        assert r.status_code == expected, (caller, kind, r.content)
        if expected != 200:
            error = r.json()
            assert error["error_code"] == ("PERMISSION_DENIED" if expected == 403 else "RESOURCE_DOES_NOT_EXIST"), (kind, error)
            assert ModelVersion.objects.count() == versions_before, kind
            assert Event.objects.count() == events_before, kind
            assert sorted(p.relative_to(w["root"]).as_posix() for p in w["root"].rglob("*")) == files_before, kind
            continue
        mv = r.json()["model_version"]
        assert mv["status"] == "READY", (kind, mv)
        version = ModelVersion.objects.get(registered_model__name=target, version=int(mv["version"]))
        if kind.startswith("external"):
            assert version.is_external and mv["source"] == "s3://bucket/alice/model"
            uri = api.get("model-versions/get-download-uri", {"name": target, "version": mv["version"]}).json()["artifact_uri"]
            assert uri == "s3://bucket/alice/model"
        else:
            assert not version.is_external and version.flavors, kind
            assert (w["root"] / version.storage_path / "MLmodel").exists()
    tag_after = LoggedModelTag.objects.filter(model=w["logged"], key="mlflow.modelVersions").values_list("value", flat=True).first()
    if caller in ("bob", "mallory"):
        # Bob may read Alice's logged model but not edit it: his versions never write onto it.
        assert tag_after == tag_before
    else:
        assert tag_after != tag_before and f'"{target}"' in tag_after


def test_an_outsiders_attempts_leave_nothing_he_can_download(alice_world, api_for):
    w = alice_world
    mallory = api_for(w["mallory"])
    for body in _sources(w).values():
        mallory.post("model-versions/create", {"name": "mallory-target", **body})
    assert not ModelVersion.objects.filter(registered_model__name="mallory-target").exists()
    listed = mallory.get("model-versions/search", {"filter": "name='mallory-target'"}).json()
    assert listed.get("model_versions", []) == []
    # Nor can he reach her files or her model by any name.
    assert mallory.get("model-versions/get", {"name": "alice-model", "version": "1"}).status_code == 404
    assert mallory.get("runs/get", {"run_id": w["run"].pk}).status_code == 404


def test_a_foreign_run_id_or_model_id_is_refused_even_beside_an_external_source(alice_world, api_for):
    w = alice_world
    mallory = api_for(w["mallory"])
    r = mallory.post("model-versions/create", {"name": "mallory-target", "source": "s3://b/m", "run_id": w["run"].pk})
    assert r.status_code == 404 and r.json() == {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": f"Run with id={w['run'].pk} not found"}
    r = mallory.post("model-versions/create", {"name": "mallory-target", "source": "s3://b/m", "model_id": w["logged"].pk})
    assert r.status_code == 404 and "Logged model with ID" in r.json()["message"]
    # With his own external source and no foreign ids he is fine.
    r = mallory.post("model-versions/create", {"name": "mallory-target", "source": "s3://b/m"})
    assert r.status_code == 200 and r.json()["model_version"]["status"] == "READY"


def test_mlflow_consistency_rules_for_run_id_and_model_id(alice_world, api_for):
    w = alice_world
    alice = api_for(w["alice"])
    other = Run.objects.create(experiment=w["exp"], artifact_uri=f"mlflow-artifacts:/{w['exp'].pk}/{'c' * 32}/artifacts", run_uuid="c" * 32)
    for body, named_by in (
        ({"source": f"runs:/{w['run'].pk}/model", "run_id": other.pk}, "run_id"),
        ({"source": f"mlflow-artifacts:/{w['exp'].pk}/{w['run'].pk}/artifacts/model", "run_id": other.pk}, "run_id"),
        ({"source": f"models:/{w['logged'].pk}", "model_id": "m-" + "d" * 32}, None),
    ):
        r = alice.post("model-versions/create", {"name": "alice-target", **body})
        if named_by is None:  # an unknown model_id is a missing object
            assert r.status_code == 404, r.content
            continue
        assert r.status_code == 400, r.content
        assert r.json()["message"] == (
            f"Invalid model version source: '{body['source']}'. The {named_by} request parameter must identify the resource "
            "that contains the source."
        )
    assert not ModelVersion.objects.filter(registered_model__name="alice-target").exists()


def test_registration_checks_again_as_the_creator(alice_world, manual_on_commit, django_capture_on_commit_callbacks):
    """Bob loses his grant between the create and the copy: the version fails, nothing is copied."""
    from approvals.services import grant_permission

    w = alice_world
    with django_capture_on_commit_callbacks(execute=False):
        mv = services.create_model_version(name="bob-target", source=f"runs:/{w['run'].pk}/model", run_id=w["run"].pk, user=w["bob"])
    assert mv.status == ModelVersion.PENDING
    grant_permission(obj=w["exp"], level=None, user=w["bob"])
    done = services.finish_model_version_registration(version_id=mv.pk)
    assert done.status == ModelVersion.FAILED and "Registration refused" in done.status_message
    assert not (w["root"] / done.storage_path).exists()


def test_a_folder_without_mlmodel_is_ready_and_a_policy_check_can_require_a_valid_model(alice_world, api_for):
    from approvals import checks

    w = alice_world
    write_model_dir(w["root"], f"{w['exp'].pk}/{w['run'].pk}/artifacts/raw", with_mlmodel=False)
    api = api_for(w["alice"])
    r = api.post("model-versions/create", {"name": "alice-target", "source": f"runs:/{w['run'].pk}/raw", "run_id": w["run"].pk})
    assert r.status_code == 200 and r.json()["model_version"]["status"] == "READY"
    raw = ModelVersion.objects.get(registered_model__name="alice-target", version=1)
    assert raw.inspection == "Not an MLflow model: no MLmodel file at the source."
    model = ModelVersion.objects.get(registered_model__name="alice-model", version=1)
    [failed] = checks.evaluate([{"type": "valid_mlflow_model"}], raw)
    [passed] = checks.evaluate([{"type": "valid_mlflow_model"}], model)
    assert failed["passed"] is False and "Not an MLflow model" in failed["detail"]
    assert passed["passed"] is True and "sklearn" in passed["detail"]
    external = services.create_model_version(name="alice-target", source="gs://b/m", user=w["alice"])
    [ext] = checks.evaluate([{"type": "valid_mlflow_model"}], external)
    assert ext["passed"] is False and "External" in ext["detail"]


_CLIENT_SCRIPT = """
import json, sys, mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
name, foreign = sys.argv[1], sys.argv[2]
out = {}
mv = mlflow.register_model("s3://bucket/path/model", name)
out["external"] = [mv.version, mv.status, mv.source]
client = MlflowClient()
out["download_uri"] = client.get_model_version_download_uri(name, mv.version)
out["staged"] = client.transition_model_version_stage(name, mv.version, "Staging").current_stage
try:
    client.create_model_version(name, f"runs:/{foreign}/model", run_id=foreign)
    out["foreign"] = "accepted"
except MlflowException as exc:
    out["foreign"] = exc.error_code
print("FACTS " + json.dumps(out))
"""


def _client_env(live_server, person) -> dict:
    _, token = create_api_token(user=person, name="sources")
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")},
        "MLFLOW_TRACKING_URI": live_server.url, "MLFLOW_TRACKING_TOKEN": token,
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "GIT_PYTHON_REFRESH": "quiet",
    }


@pytest.mark.client
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("python", [sys.executable, MLFLOW2_PYTHON], ids=["mlflow3", "mlflow2.22"])
def test_the_real_client_registers_an_external_source_and_cannot_take_a_foreign_run(live_server, _artifact_root, python):
    assert os.path.exists(python), "make test creates .venv-mlflow2 with the mlflow 2.22 client"
    alice, mallory = user("alice"), user("mallory")
    exp = Experiment.objects.create(name="alice-private", artifact_location="mlflow-artifacts:/x")
    grant(exp, "CAN_MANAGE", user=alice)
    run = Run.objects.create(experiment=exp, artifact_uri=f"mlflow-artifacts:/{exp.pk}/{'e' * 32}/artifacts", run_uuid="e" * 32)
    write_model_dir(_artifact_root, f"{exp.pk}/{run.pk}/artifacts/model")
    result = subprocess.run([str(python), "-c", _CLIENT_SCRIPT, "mallory-model", run.pk], env=_client_env(live_server, mallory),
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-4000:]
    facts = json.loads(next(l for l in result.stdout.splitlines() if l.startswith("FACTS "))[6:])
    assert facts["external"] == ["1", "READY", "s3://bucket/path/model"]
    assert facts["download_uri"] == "s3://bucket/path/model"
    assert facts["staged"] == "Staging"
    assert facts["foreign"] == "RESOURCE_DOES_NOT_EXIST"
    assert list(ModelVersion.objects.filter(registered_model__name="mallory-model").values_list("version", flat=True)) == [1]


def test_a_run_id_no_run_here_can_have_is_kept_as_mlflow_keeps_it(alice_world, api_for):
    """MLflow's own tests register `runs:/run_id/model` with run_id "run_id": no run of any server has
    that id, so it is a reference linked to nothing (READY, never fetched). A 32-hex id must name a run
    the caller reads: a missing one answers exactly as an invisible one."""
    w = alice_world
    mallory = api_for(w["mallory"])
    r = mallory.post("model-versions/create", {"name": "mallory-target", "source": "runs:/run_id/model", "run_id": "run_id"})
    assert r.status_code == 200, r.content
    body = r.json()["model_version"]
    assert (body["status"], body["run_id"], body["source"]) == ("READY", "run_id", "runs:/run_id/model")
    version = ModelVersion.objects.get(registered_model__name="mallory-target", version=1)
    assert version.is_external and version.source_run_id is None
    missing = mallory.post("model-versions/create", {"name": "mallory-target", "source": "s3://b/m", "run_id": "f" * 32})
    hidden = mallory.post("model-versions/create", {"name": "mallory-target", "source": "s3://b/m", "run_id": w["run"].pk})
    assert (missing.status_code, hidden.status_code) == (404, 404)
    assert missing.json()["message"].replace("f" * 32, "X") == hidden.json()["message"].replace(w["run"].pk, "X")
    # A foreign-form run_id beside a store path cannot contain it (MLflow's rule).
    r = mallory.post("model-versions/create", {"name": "mallory-target", "source": "mlflow-artifacts:/0/x", "run_id": "run_id"})
    assert r.status_code == 400 and "run_id request parameter must identify" in r.json()["message"]
