"""Server-side evaluation: datasets, the confined subprocess, the evidence checks (tasks eager here;
tests/approvals/test_evaluation_worker.py runs them on a real worker)."""

import os
import socket
import threading
import time
from pathlib import Path

import pytest

from approvals import evaluation
from approvals import services as gov
from approvals.models import Evaluation, EvaluationDataset
from core import permissions as perms
from registry import services as registry
from registry.models import RegisteredModel
from tests.approvals.evaluation_helpers import holdout_csv, hostile_files, wine_files, write_files

pytestmark = pytest.mark.django_db

MODEL = "lr_wine_quality"


@pytest.fixture
def wine(owner, api_for):
    """lr_wine_quality with the hold-out dataset attached over the API (no versions yet)."""
    registry.create_registered_model(name=MODEL, user=owner)
    response = api_for(owner).post("/api/2.0/stagegate/evaluation-datasets", {
        "name": MODEL, "dataset": "wine-holdout", "target": "quality", "task": "regression",
        "metrics": ["rmse", "mae", "r2"], "content": holdout_csv().decode(), "filename": "holdout.csv",
    })
    assert response.status_code == 200, response.content
    return RegisteredModel.objects.get(name=MODEL)


def register(owner, files) -> object:
    mv = registry.create_model_version(name=MODEL, source=write_files(files), user=owner)
    mv.refresh_from_db()
    return mv


def test_datasets_api_permissions_and_immutability(wine, owner, people, api_for):
    from approvals.services import grant_permission

    grant_permission(obj=wine, level=perms.CAN_READ, user=people["reader"])
    grant_permission(obj=wine, level=perms.CAN_EDIT, user=people["editor"])
    listed = api_for(people["reader"]).get("/api/2.0/stagegate/evaluation-datasets", {"name": MODEL})
    assert listed.status_code == 200
    [ds] = listed.json()["datasets"]
    assert (ds["name"], ds["rows"], ds["target"], len(ds["digest"])) == ("wine-holdout", 400, "quality", 64)
    body = {"name": MODEL, "dataset": "other", "target": "target", "task": "regression", "content": "a,target\n1,2\n"}
    denied = api_for(people["editor"]).post("/api/2.0/stagegate/evaluation-datasets", body)
    assert denied.status_code == 403 and denied.json()["error_code"] == "PERMISSION_DENIED"
    hidden = api_for(people["outsider"]).get("/api/2.0/stagegate/evaluation-datasets", {"name": MODEL})
    assert hidden.status_code == 404 and hidden.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    bad = api_for(owner).post("/api/2.0/stagegate/evaluation-datasets", {**body, "target": "nope"})
    assert bad.status_code == 400 and "columns are a, target" in bad.json()["message"]
    bad = api_for(owner).post("/api/2.0/stagegate/evaluation-datasets", {**body, "metrics": ["accuracy"]})
    assert bad.status_code == 400 and bad.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    # Multipart upload of a Parquet file.
    import io

    import pandas as pd

    buffer = io.BytesIO()
    pd.DataFrame({"a": [1.0, 2.0], "target": [0, 1]}).to_parquet(buffer)
    buffer.seek(0)
    buffer.name = "small.parquet"
    from django.test import Client

    from core.services import create_api_token

    _, token = create_api_token(user=owner, name="upload")
    response = Client().post("/api/2.0/stagegate/evaluation-datasets", {
        "name": MODEL, "dataset": "small", "target": "target", "task": "classification", "metrics": ["accuracy", "f1"],
        "file": buffer}, HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200, response.content
    assert response.json()["dataset"]["format"] == "parquet" and response.json()["dataset"]["metrics"] == ["accuracy", "f1"]
    # Unused: replaceable. Used: immutable.
    assert api_for(owner).post("/api/2.0/stagegate/evaluation-datasets", {**body, "dataset": "small"}).status_code == 200
    mv = registry.create_model_version(name=MODEL, source="s3://bucket/nowhere", user=owner)
    used = EvaluationDataset.objects.get(name="wine-holdout")
    Evaluation.objects.create(version=mv, dataset=used, dataset_digest=used.digest, status="FAILED")
    again = api_for(owner).post("/api/2.0/stagegate/evaluation-datasets", {**body, "dataset": "wine-holdout"})
    assert again.status_code == 400 and again.json()["error_code"] == "INVALID_STATE"
    assert EvaluationDataset.objects.get(name="wine-holdout").row_count == 400
    # The task on a finished evaluation (a redelivered message) does nothing.
    finished = Evaluation.objects.get()
    assert evaluation.run_evaluation(evaluation_id=finished.pk).status == "FAILED" and Evaluation.objects.count() == 1
    # The API's errors are MLflow's.
    api = api_for(owner)
    wrong = api.get("/api/2.0/stagegate/evaluations/run")
    assert wrong.status_code == 405 and wrong.json()["error_code"] == "BAD_REQUEST"
    no_name = api.get("/api/2.0/stagegate/evaluations")
    assert no_name.status_code == 400 and no_name.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert api.get("/api/2.0/stagegate/evaluations", {"name": MODEL, "version": "9"}).status_code == 404
    not_ready = api.post("/api/2.0/stagegate/evaluations/run", {"name": MODEL, "version": "1"})
    assert not_ready.status_code == 400 and not_ready.json()["error_code"] == "INVALID_STATE"
    text = api.client.post("/api/2.0/stagegate/evaluation-datasets", "x", content_type="text/plain", **api.headers)
    assert text.status_code == 400 and "multipart/form-data" in text.json()["message"]


def test_run_on_demand_and_a_signature_mismatch_fails(owner, people, api_for):
    from approvals.services import grant_permission

    registry.create_registered_model(name=MODEL, user=owner)
    wine = RegisteredModel.objects.get(name=MODEL)
    v = register(owner, wine_files(2)[0])
    assert not Evaluation.objects.exists()  # no dataset yet: nothing to evaluate when it became READY
    grant_permission(obj=wine, level=perms.CAN_READ, user=people["reader"])
    denied = api_for(people["reader"]).post("/api/2.0/stagegate/evaluations/run", {"name": MODEL, "version": "1"})
    assert denied.status_code == 403
    # A dataset lacking one of the model's inputs: the evaluation fails, the version stays READY.
    narrow = "alcohol,flavanoids,target\n13.2,2.5,0\n12.1,1.1,1\n"
    assert api_for(owner).post("/api/2.0/stagegate/evaluation-datasets", {
        "name": MODEL, "dataset": "narrow", "target": "target", "task": "regression", "content": narrow}).status_code == 200
    response = api_for(owner).post("/api/2.0/stagegate/evaluations/run", {"name": MODEL, "version": "1", "dataset": "narrow"})
    assert response.status_code == 200, response.content
    [ev] = response.json()["evaluations"]
    assert ev["status"] == "FAILED" and ev["trigger"] == "manual" and ev["requested_by"] == "owner"
    assert "input signature mismatch: the dataset lacks fixed_acidity, volatile_acidity" in ev["message"]
    v.refresh_from_db()
    assert v.status == "READY"
    missing = api_for(owner).post("/api/2.0/stagegate/evaluations/run", {"name": MODEL, "version": "1", "dataset": "nope"})
    assert missing.status_code == 400


def test_a_hanging_load_is_killed_at_the_time_limit(wine, owner, settings):
    settings.STAGEGATE_EVALUATION_TIMEOUT = 20  # above the child's imports on a busy machine
    started = time.monotonic()
    mv = register(owner, hostile_files("import sys, time\nprint('loading: hanging now', file=sys.stderr, flush=True)\ntime.sleep(600)"))
    elapsed = time.monotonic() - started
    ev = Evaluation.objects.get(version=mv)
    assert ev.status == "FAILED" and ev.message == "killed at the time limit (20 s)"
    assert "loading: hanging now" in ev.logs  # the load itself hung, and was killed
    assert elapsed < 40
    mv.refresh_from_db()
    assert mv.status == "READY"


@pytest.fixture
def outside_tmp():
    """A folder outside /tmp (inside the child's sandbox /tmp is its scratch's own)."""
    import shutil
    import tempfile

    from django.conf import settings

    folder = tempfile.mkdtemp(prefix="outside-", dir=settings.VAR_DIR)
    yield Path(folder)
    shutil.rmtree(folder)


def test_a_hostile_pickle_can_neither_connect_nor_write_outside_its_scratch(wine, owner, outside_tmp):
    tmp_path = outside_tmp
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(0.2)
    port = listener.getsockname()[1]
    accepted, done = [], threading.Event()

    def accept():
        while not done.is_set() and not accepted:
            try:
                accepted.append(listener.accept())
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept)
    thread.start()
    outside = tmp_path / "outside"
    outside.mkdir()
    os.chmod(outside, 0o777 & ~0o022)  # root's, as every folder outside the scratch is
    code = (
        "import socket, sys, os\n"
        "try:\n"
        f"    socket.create_connection(('127.0.0.1', {port}), timeout=3); print('CONNECTED', file=sys.stderr)\n"
        "except OSError as e:\n"
        "    print('connect refused:', e, file=sys.stderr)\n"
        f"for target in ({str(outside / 'pwned.txt')!r}, {str(tmp_path / 'pwned.txt')!r}):\n"
        "    try:\n"
        "        open(target, 'w').write('x'); print('WROTE', target, file=sys.stderr)\n"
        "    except OSError as e:\n"
        "        print('write refused:', e, file=sys.stderr)\n"
        "try:\n"
        "    open('/tmp/inside.txt', 'w').write('scratch tmp is fine'); print('TMP OK', file=sys.stderr)\n"
        "except OSError as e:\n"
        "    print('tmp refused:', e, file=sys.stderr)\n"
        "try:\n"
        "    bytearray(8 * 1024 ** 3); print('ALLOCATED', file=sys.stderr)\n"
        "except MemoryError:\n"
        "    print('memory refused', file=sys.stderr)\n"
    )
    try:
        mv = register(owner, hostile_files(code))
    finally:
        done.set()
        thread.join()
        listener.close()
    ev = Evaluation.objects.get(version=mv)
    assert accepted == []
    assert not (outside / "pwned.txt").exists() and not (tmp_path / "pwned.txt").exists()
    assert "connect refused: [Errno 13] Permission denied" in ev.logs, ev.logs  # Landlock, before the empty namespace
    assert "no TCP connect/bind" in " ".join(ev.isolation) and "network: new namespace (no interfaces)" in ev.isolation
    assert ev.logs.count("write refused: [Errno 13] Permission denied") == 2
    # /tmp is the evaluation's own (bound to its scratch) unless the checkout or Python lives below /tmp;
    # then it stays shared and Landlock refuses the write there too.
    bound = [n.split(";")[0].removeprefix("filesystem: ").removesuffix(" bound to the scratch folder").split(", ")
             for n in ev.isolation if n.startswith("filesystem: ")]
    tmp_bound = bool(bound) and "/tmp" in bound[0]
    assert ("TMP OK" in ev.logs) == tmp_bound and ("tmp refused" in ev.logs) == (not tmp_bound), (ev.isolation, ev.logs)
    assert "CONNECTED" not in ev.logs and "WROTE" not in ev.logs
    assert "memory refused" in ev.logs and "ALLOCATED" not in ev.logs  # RLIMIT_AS
    # The pickle still loaded the real model: the evaluation itself succeeded, and the scratch is gone.
    assert ev.status == "SUCCEEDED" and ev.metrics["rmse"] > 0
    assert os.listdir(evaluation.settings.STAGEGATE_EVALUATION_SCRATCH) == []


def test_signed_version_passes_signed_by_and_one_changed_byte_fails_it(owner, tmp_path, api_for):
    from approvals.models import SigningIdentity, VersionSignature
    from monitoring.models import AuditRecord
    from tests.approvals.conftest import production_policy
    from tests.approvals.evaluation_helpers import key_pair, signed_files

    registry.create_registered_model(name=MODEL, user=owner)
    private, public = key_pair(tmp_path)
    SigningIdentity.objects.create(name="release-key", kind="key", pem=public)
    files, _ = wine_files(1)
    v1 = register(owner, signed_files(tmp_path / "v1", files, private))
    v2 = register(owner, signed_files(tmp_path / "v2", files, private, change_after_signing="requirements.txt"))
    other_private, _ = key_pair(tmp_path / "v1")  # a key nobody trusts
    v3 = register(owner, signed_files(tmp_path / "v3", files, other_private))
    v4 = register(owner, files)
    sig1, sig2, sig3 = (VersionSignature.objects.get(version=v) for v in (v1, v2, v3))
    assert (sig1.status, sig1.signer, sig1.method) == ("VERIFIED", "release-key", "key")
    assert sig2.status == "INVALID" and "Hash mismatch for 'requirements.txt'" in sig2.detail
    assert sig3.status == "INVALID" and "no trusted signer verifies it" in sig3.detail
    assert not VersionSignature.objects.filter(version=v4).exists()  # unsigned and no dataset: no evaluation job at all
    assert not Evaluation.objects.exists()
    assert AuditRecord.objects.filter(type="model_signature.verified", model_name=MODEL).count() == 3

    production_policy(owner, model_name=MODEL, stage="Staging", checks_spec=[{"type": "signed_by", "signers": ["release-key"]}])
    verdicts = {}
    for mv in (v1, v2, v3, v4):
        req = gov.request_stage_transition(name=MODEL, version=mv.version, stage="Staging", user=owner)
        verdicts[mv.version] = req.evidence["on_request"][0]
    assert verdicts[1]["passed"] and verdicts[1]["detail"] == "signature verified (key): signed by release-key"
    assert not verdicts[2]["passed"] and verdicts[2]["detail"].startswith("signature INVALID: no trusted signer")
    assert not verdicts[3]["passed"] and not verdicts[4]["passed"]
    assert "not verified" in verdicts[4]["detail"]
    shown = api_for(owner).get("/api/2.0/stagegate/evaluations", {"name": MODEL, "version": "1"}).json()
    assert shown["signature"]["status"] == "VERIFIED" and shown["signature"]["signer"] == "release-key"


def _evaluated(mv, dataset, **metrics):
    return Evaluation.objects.create(version=mv, dataset=dataset, dataset_digest=dataset.digest, status="SUCCEEDED",
                                     metrics=metrics, rows=45, load_seconds=0.5, latency_ms_per_row=0.02,
                                     environment={"python": "3.13.0", "mlflow": "3.17.2", "scikit-learn": "1.9.1"},
                                     finished_timestamp=1, trigger="ready")


def test_evaluation_panel_datasets_panel_and_inbox_verdicts(owner, people, client, make_version):
    from django.test import Client

    from approvals.services import grant_permission

    v1 = make_version(MODEL, stage="Production")
    v2 = make_version(MODEL)
    dataset = evaluation.attach_evaluation_dataset(user=owner, model_name=MODEL, name="wine-holdout", target="quality",
                                                   task="regression", data=holdout_csv(), filename="holdout.csv")
    wine = dataset.model
    assert not Evaluation.objects.exists()  # the versions were READY before the dataset came
    _evaluated(v1, dataset, rmse=0.4086, mae=0.3, r2=0.7)
    _evaluated(v2, dataset, rmse=0.3412, mae=0.25, r2=0.8)
    grant_permission(obj=wine, level=perms.CAN_READ, user=people["reader"])
    grant_permission(obj=wine, level=perms.CAN_MANAGE_PRODUCTION_VERSIONS, user=people["production_manager"])
    client.force_login(owner)
    page = client.get(f"/models/{MODEL}/versions/2/").content.decode()
    panel_url = f"/models/{MODEL}/versions/2/evaluation/"
    assert f'hx-get="{panel_url}" hx-trigger="load"' in page and f'href="{panel_url}"' in page
    assert f'hx-get="/models/{MODEL}/datasets/" hx-trigger="load"' in client.get(f"/models/{MODEL}/").content.decode()

    full = client.get(panel_url).content.decode()
    assert "<html" in full and "Production v1" in full and "0.3412" in full and "0.4086" in full
    assert "-0.0674" in full and 'id="rerun-evaluation"' in full
    partial = client.get(panel_url, HTTP_HX_REQUEST="true").content.decode()
    assert partial.lstrip().startswith('<section id="evaluation-panel"') and "<html" not in partial

    reader = Client()
    reader.force_login(people["reader"])
    assert 'id="rerun-evaluation"' not in reader.get(panel_url).content.decode()
    assert reader.post(panel_url + "run").status_code == 403
    outsider = Client()
    outsider.force_login(people["outsider"])
    assert outsider.get(panel_url).status_code == 404
    assert client.post(panel_url).status_code == 405

    datasets = client.get(f"/models/{MODEL}/datasets/", HTTP_HX_REQUEST="true").content.decode()
    assert "wine-holdout" in datasets and dataset.digest[:14] in datasets and "Attach a dataset" in datasets
    assert "Attach a dataset" not in reader.get(f"/models/{MODEL}/datasets/").content.decode()
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile("tiny.csv", b"x,y\n1,2\n3,4\n", content_type="text/csv")
    added = client.post(f"/models/{MODEL}/datasets/", {"dataset": "tiny", "target": "y", "task": "regression", "file": upload},
                        HTTP_HX_REQUEST="true", HTTP_HX_TARGET="model-datasets")
    assert added.status_code == 200 and "tiny" in added.content.decode()
    bad = client.post(f"/models/{MODEL}/datasets/", {"dataset": "bad", "target": "nope", "task": "regression",
                                                    "file": SimpleUploadedFile("b.csv", b"x,y\n1,2\n")}, HTTP_HX_REQUEST="true")
    assert bad.status_code == 200 and "columns are x, y" in bad.content.decode()

    from tests.approvals.conftest import production_policy

    production_policy(owner, model_name=MODEL, checks_spec=[{"type": "beats_holder", "dataset": "wine-holdout", "metric": "rmse"}])
    gov.request_stage_transition(name=MODEL, version=2, stage="Production", user=owner)
    inbox = Client()
    inbox.force_login(people["production_manager"])
    text = inbox.get("/reviews/").content.decode()
    assert "candidate v2 0.3412 vs holder v1 (Production) 0.4086, delta -0.0674" in text


def test_demo_shows_an_evaluated_request_in_the_reviewers_inbox(admin, capsys):
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test import Client

    from approvals.models import TransitionRequest

    _, rmse1 = wine_files(1)
    _, rmse2 = wine_files(2)
    call_command("seed_demo", "--if-empty", "--user", "admin")
    out = capsys.readouterr().out
    assert f"Evaluated v1 on wine-holdout: SUCCEEDED, rmse {rmse1:.4f}" in out
    assert f"Evaluated v2 on wine-holdout: SUCCEEDED, rmse {rmse2:.4f}" in out
    req = TransitionRequest.objects.get()
    verdict = next(r for r in req.evidence["on_request"] if r["check"]["type"] == "beats_holder")
    shown = f"candidate v2 {rmse2:.4g} vs holder v1 (Production) {rmse1:.4g}, delta {rmse2 - rmse1:+.4g}"
    assert verdict["passed"] and shown in verdict["detail"]
    reviewer = Client()
    reviewer.force_login(get_user_model().objects.get(username="reviewer"))
    assert shown in reviewer.get("/reviews/").content.decode()
    call_command("seed_demo", "--user", "admin")  # again: nothing evaluated twice
    assert "Evaluated" not in capsys.readouterr().out and Evaluation.objects.count() == 2


def test_certificate_signed_version_names_the_certificate_identity(owner, tmp_path):
    from approvals.models import SigningIdentity, VersionSignature
    from tests.approvals.conftest import production_policy
    from tests.approvals.evaluation_helpers import certificate_chain, certificate_signed_files

    registry.create_registered_model(name=MODEL, user=owner)
    key_file, cert_file, ca_pem = certificate_chain(tmp_path, "release@example.com")
    SigningIdentity.objects.create(name="corp-ca", kind="certificate", pem=ca_pem)
    mv = register(owner, certificate_signed_files(tmp_path / "v1", wine_files(1)[0], key_file, cert_file, ca_pem))
    sig = VersionSignature.objects.get(version=mv)
    assert (sig.status, sig.signer, sig.method) == ("VERIFIED", "corp-ca: release@example.com", "certificate"), sig.detail
    production_policy(owner, model_name=MODEL, stage="Staging", checks_spec=[{"type": "signed_by", "signers": ["release@example.com"]}])
    req = gov.request_stage_transition(name=MODEL, version=1, stage="Staging", user=owner)
    assert req.evidence["on_request"][0]["passed"]
