"""Issue 12 over real HTTP: chunked uploads (raw http.client), long query strings (live_server and the
gunicorn flags `make run` uses), the real mlflow client on proxied artifacts, MLflow's root download routes."""

import hashlib
import http.client
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest
import requests

from core.services import create_api_token
from tests.registry.conftest import write_model_dir
from tests.tracking.test_artifacts_large import RssSampler
from tracking import services

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def token(owner):
    return create_api_token(user=owner, name="compat")[1]


@pytest.fixture
def run(owner):
    experiment = services.create_experiment(user=owner, name="compat-live")
    return services.create_run(user=owner, experiment=experiment)


def chunked_put(live_server, token, url: str, chunks, method: str = "PUT"):
    address = urlparse(live_server.url)
    conn = http.client.HTTPConnection(address.hostname, address.port, timeout=120)
    try:
        conn.request(method, url, body=chunks, encode_chunked=True,
                     headers={"Authorization": f"Bearer {token}", "Transfer-Encoding": "chunked"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_raw_chunked_upload_streams_to_storage(live_server, token, run, _artifact_root):
    folder = f"{run.experiment_id}/{run.run_uuid}/artifacts"
    status, body = chunked_put(live_server, token, f"/api/2.0/mlflow-artifacts/artifacts/{folder}/c.bin",
                               iter([b"hello ", b"chunked ", b"world"]))
    assert (status, body) == (200, b"")
    assert (_artifact_root / folder / "c.bin").read_bytes() == b"hello chunked world"
    # The UI's upload takes chunked bodies too.
    status, body = chunked_put(live_server, token, f"/ajax-api/2.0/mlflow/upload-artifact?run_uuid={run.run_uuid}&path=ui.txt",
                               iter([b"from ", b"the UI"]), method="POST")
    assert status == 200, body
    assert (_artifact_root / folder / "ui.txt").read_bytes() == b"from the UI"


def test_big_chunked_upload_keeps_memory_flat(live_server, token, run, _artifact_root):
    size_mb, block = 96, os.urandom(1024 * 1024)
    digest = hashlib.sha256()

    def chunks():
        for i in range(size_mb):
            chunk = i.to_bytes(8, "big") + block[8:]
            digest.update(chunk)
            yield chunk

    folder = f"{run.experiment_id}/{run.run_uuid}/artifacts"
    sampler = RssSampler()
    sampler.start()
    status, _ = chunked_put(live_server, token, f"/api/2.0/mlflow-artifacts/artifacts/{folder}/big.bin", chunks())
    growth = sampler.stop()
    assert status == 200
    stored = _artifact_root / folder / "big.bin"
    assert stored.stat().st_size == size_mb * 2**20
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == digest.hexdigest()
    assert growth < 40 * 2**20, f"RSS grew by {growth / 2**20:.0f} MB for a {size_mb} MB body"


def test_long_query_string_through_live_server(live_server, token, run):
    services.log_param(run=run, key="p", value="v")
    long_value = "x" * 14000
    response = requests.get(f"{live_server.url}/api/2.0/mlflow/runs/search",
                            params={"experiment_ids": str(run.experiment_id), "filter": f"params.p = '{long_value}'"},
                            headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert response.status_code == 200 and response.json() == {}
    response = requests.get(f"{live_server.url}/api/2.0/mlflow/metrics/get-history",
                            params={"run_id": run.run_uuid, "metric_key": "k" * 14000},
                            headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert response.status_code == 200 and response.json() == {}


def gunicorn_flags(text: str) -> dict:
    found = dict(re.findall(r'"?--(limit-request-line|limit-request-field_size)"?,?\s+"?(\d+)"?', text))
    return {k: int(v) for k, v in found.items()}


def test_every_gunicorn_command_accepts_mlflows_request_sizes():
    """MLflow's server (uvicorn + h11) takes 16 KiB of request head; gunicorn's default line is 4 KB."""
    for name in ("Makefile", "Dockerfile", "docker-compose.yml", "bench/compare.py", "bench/growth.py"):
        flags = gunicorn_flags((ROOT / name).read_text())
        assert flags.get("limit-request-line") == 0, name  # gunicorn has no line limit above 8190 but "none"
        assert flags.get("limit-request-field_size", 0) >= 16384, name


def make_run_gunicorn_args() -> list[str]:
    """The gunicorn arguments of the Makefile's `run` target, as `make run` passes them."""
    text = (ROOT / "Makefile").read_text().replace("\\\n", " ")
    line = next(l for l in text.splitlines() if "/bin/gunicorn config.wsgi" in l)
    args = shlex.split(line.split("/bin/gunicorn", 1)[1])
    return [a.replace("$(PORT)", "{port}").replace("$(WORKERS)", "1") for a in args]


def test_gunicorn_with_make_run_flags_takes_long_lines_and_chunked_uploads(tmp_path, _artifact_root, token, run):
    """The production server as `make run` starts it, on this test's database and artifact folder:
    a 15 KB request line and header reach Django; a chunked upload (gunicorn decodes it) is stored whole."""
    from django.db import connection

    with __import__("socket").socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = [a.format(port=port) for a in make_run_gunicorn_args()]
    db = connection.settings_dict
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "CELERY_", "STAGEGATE_", "DJANGO_"))}
    env.update({"STAGEGATE_VAR_DIR": str(tmp_path), "PYTHONPATH": str(ROOT), "STAGEGATE_ARTIFACT_ROOT": str(_artifact_root)})
    if connection.vendor == "postgresql":
        env["DATABASE_URL"] = f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"
    proc = subprocess.Popen([str(Path(sys.executable).with_name("gunicorn")), *args], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                if requests.get(base + "/health", timeout=1).text == "OK":
                    break
            except requests.RequestException:
                time.sleep(0.25)
        # No credentials: the answer is Stagegate's JSON 401, so the 15 KB line and header reached Django.
        response = requests.get(base + "/api/2.0/mlflow/runs/search", params={"filter": "x" * 15000},
                                headers={"X-Long": "y" * 15000}, timeout=10)
        assert response.status_code == 401, response.text[:200]
        assert response.json()["error_code"] == "UNAUTHENTICATED"
        if connection.vendor != "postgresql":
            return  # an in-memory test database is not reachable from another process
        folder = f"{run.experiment_id}/{run.run_uuid}/artifacts"
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.request("PUT", f"/api/2.0/mlflow-artifacts/artifacts/{folder}/g.bin", body=iter([b"a" * 300_000, b"b" * 5]),
                     encode_chunked=True, headers={"Authorization": f"Bearer {token}", "Transfer-Encoding": "chunked"})
        response = conn.getresponse()
        assert (response.status, response.read()) == (200, b"")
        conn.close()
        assert (_artifact_root / folder / "g.bin").read_bytes() == b"a" * 300_000 + b"b" * 5
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # quick shutdown: a keep-alive connection would hold SIGTERM's
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def test_real_client_on_proxied_artifacts_and_root_downloads(mlflow_client, owner, tmp_path, token):
    import mlflow

    from registry import services as registry

    experiment_id = mlflow_client.create_experiment("compat-client")
    run = mlflow_client.create_run(experiment_id)
    run_id = run.info.run_id
    assert run.info.artifact_uri.startswith("mlflow-artifacts:/")
    write_model_dir(tmp_path, "src/model")
    mlmodel = (tmp_path / "src" / "model" / "MLmodel").read_text()
    (tmp_path / "src" / "report.html").write_text("<h1>r</h1>")
    mlflow_client.log_artifacts(run_id, str(tmp_path / "src"))
    for step in range(3):
        mlflow_client.log_metric(run_id, "loss", 1.0 - step / 10, step=step)
    mlflow_client.set_terminated(run_id)

    assert sorted(f.path for f in mlflow_client.list_artifacts(run_id)) == ["model", "report.html"]
    assert [f.path for f in mlflow_client.list_artifacts(run_id, "model")] == ["model/MLmodel", "model/model.pkl"]
    out = Path(mlflow_client.download_artifacts(run_id, "model", str(tmp_path / "dl")))
    assert (out / "MLmodel").read_text() == mlmodel
    assert [(m.step, m.value) for m in mlflow_client.get_metric_history(run_id, "loss")] == [(0, 1.0), (1, 0.9), (2, 0.8)]
    assert mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="report.html", dst_path=str(tmp_path / "d2"))

    auth = {"Authorization": f"Bearer {token}"}
    listed = requests.get(f"{mlflow_client.tracking_uri}/api/2.0/mlflow/artifacts/list", params={"run_id": run_id}, headers=auth)
    assert [f["path"] for f in listed.json()["files"]] == ["model", "report.html"]
    page = requests.get(f"{mlflow_client.tracking_uri}/get-artifact", params={"run_uuid": run_id, "path": "report.html"}, headers=auth)
    assert page.status_code == 200 and page.text == "<h1>r</h1>"
    assert page.headers["Content-Type"] == "text/plain" and page.headers["X-Content-Type-Options"] == "nosniff"

    mlflow_client.create_registered_model("compat-files")
    registry.create_model_version(name="compat-files", source=f"runs:/{run_id}/model", run_id=run_id, user=owner)
    # MLflow's own tests spell this route with a doubled slash.
    for url in ("/model-versions/get-artifact", "//model-versions/get-artifact"):
        response = requests.get(mlflow_client.tracking_uri + url, params={"name": "compat-files", "version": 1, "path": "MLmodel"}, headers=auth)
        assert response.status_code == 200 and response.text == mlmodel
    response = requests.get(mlflow_client.tracking_uri + "//model-versions/get-artifact",
                            params={"name": "model", "version": 1, "path": "../path"}, headers=auth)
    assert (response.status_code, response.json()) == (400, {"error_code": "INVALID_PARAMETER_VALUE", "message": "Invalid path"})
