"""`make run` as a new user runs it: embedded SQLite, eager tasks, generated admin password, demo data."""

import base64
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def make_run(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "CELERY_", "STAGEGATE_", "DJANGO_", "MLFLOW_"))}
    env.update({"STAGEGATE_VAR_DIR": str(tmp_path / "var"), "PORT": str(port)})
    log = tmp_path / "make-run.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(["make", "run"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"make run exited early:\n{log.read_text()[-4000:]}"
            try:
                if requests.get(base + "/health", timeout=2).text == "OK":
                    break
            except requests.RequestException:
                pass
            time.sleep(0.5)
        else:
            pytest.fail(f"make run did not serve /health in time:\n{log.read_text()[-4000:]}")
        yield base, log, tmp_path / "var"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def test_make_run_serves_the_demo_on_sqlite(make_run):
    base, log, var = make_run
    output = log.read_text()
    match = re.search(r"Created admin user 'admin' with password: (\S+)", output)
    assert match, output[-3000:]
    password = match.group(1)
    assert (var / "stagegate.sqlite3").exists()
    auth = {"Authorization": "Basic " + base64.b64encode(f"admin:{password}".encode()).decode()}

    assert requests.get(base + "/api/2.0/mlflow/experiments/get-by-name", params={"experiment_name": "Default"}).status_code == 401
    experiment = requests.get(base + "/api/2.0/mlflow/experiments/get-by-name", params={"experiment_name": "wine-quality"}, headers=auth)
    assert experiment.status_code == 200, experiment.text
    model = requests.get(base + "/api/2.0/mlflow/registered-models/get", params={"name": "lr_wine_quality"}, headers=auth)
    assert model.status_code == 200, model.text
    stages = {v["current_stage"]: v["status"] for v in model.json()["registered_model"]["latest_versions"]}
    assert stages.get("Production") == "READY" and stages.get("Staging") == "READY"

    session = requests.Session()
    login = session.get(base + "/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login.text).group(1)
    page = session.post(base + "/login/", data={"username": "admin", "password": password, "csrfmiddlewaretoken": token, "next": "/models/"}, headers={"Referer": base + "/login/"})
    assert page.status_code == 200 and "lr_wine_quality" in page.text
    # Static files are served by the app itself (whitenoise), no CDN.
    css = re.search(r'href="(/static/[^"]+\.css)"', page.text).group(1)
    assert session.get(base + css).status_code == 200


@pytest.mark.django_db
def test_bootstrap_migrates_and_collects_static_in_one_process(settings, tmp_path):
    """`make run` starts with one `bootstrap --migrate --demo --collectstatic` instead of three commands."""
    from io import StringIO

    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    settings.STATIC_ROOT = tmp_path / "static"
    settings.STAGEGATE_ADMIN_PASSWORD = "chosen-password"
    out = StringIO()
    call_command("bootstrap", migrate=True, collectstatic=True, stdout=out)
    assert "No migrations to apply." in out.getvalue()
    admin = get_user_model().objects.get(username=settings.STAGEGATE_ADMIN_USER)
    assert admin.is_superuser and admin.check_password("chosen-password")
    assert any(p.suffix == ".css" for p in (tmp_path / "static").rglob("*"))
