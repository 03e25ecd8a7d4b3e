"""The production install: README's "Running it for real", line by line, in a venv of its own.

A copy of the checkout (what `git ls-files` has: tracked and new files, nothing ignored) gets
`pip install .` (the wheel built by pip, without extras) into a venv that holds nothing else,
then `migrate`, `bootstrap`, `collectstatic`, gunicorn, a Celery worker and beat on a fresh
PostgreSQL database and the suite's Redis. The test then calls an endpoint of every app, the
webhooks API with a delivery the worker makes, `/health` and a signed-in page, and imports every
module of the installed wheel (and resolves every import written in it, lazy ones included) in
that venv, so a runtime import of an undeclared package fails here.

Installing the dependencies takes 30-90 s on a busy 2-core machine, so the venv is kept under
`var/production-venv/<hash of the dependency list and Python version>`: created from nothing by
README's own `python3 -m venv` line, only ever given `pip install .` of this dependency list, and
rebuilt whenever the list changes. Stagegate itself is rebuilt and reinstalled every run.
"""

import fcntl
import hashlib
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import time
import tomllib
import uuid
from pathlib import Path
from urllib.parse import urlparse

import pytest
import requests

from tests.conftest import missing
from tests.core.test_make_run import free_port
from tests.monitoring.conftest import receiver  # noqa: F401  (a real webhook receiver on loopback)

ROOT = Path(__file__).resolve().parents[2]
HOST = "registry.example.com"  # README's DJANGO_ALLOWED_HOSTS: requests carry it as Host
PACKAGES = ("config", "core", "tracking", "registry", "approvals", "monitoring")
# The settings the README line exports, and what this test gives each.
EXPORTED = {"DATABASE_URL", "CELERY_BROKER_URL", "DJANGO_SECRET_KEY", "DJANGO_ALLOWED_HOSTS", "STAGEGATE_ADMIN_PASSWORD"}


def readme_lines() -> list[str]:
    """The shell block of README's "Running it for real": continuation lines joined, comments dropped."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Running it for real"):]
    section = section[: section.index("\n## ", 3)] if "\n## " in section[3:] else section
    block = re.search(r"```sh\n(.*?)```", section, re.S).group(1)
    lines, current = [], ""
    for raw in block.splitlines():
        line = re.sub(r"\s+#.*$", "", raw).strip()
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        if current + line:
            lines.append(current + line)
        current = ""
    return lines


def test_readme_block_is_the_production_install():
    venv, install, export, setup, gunicorn, worker, evaluation_worker, beat = readme_lines()
    assert re.fullmatch(r"python3 -m venv (\S+) && \. \1/bin/activate", venv)
    assert install == "pip install ."  # no extras: the test tools never reach a server
    assert export.startswith("export ") and {item.split("=")[0] for item in shlex.split(export)[1:]} == EXPORTED
    assert setup == "python manage.py migrate --noinput && python manage.py bootstrap && python manage.py collectstatic --noinput"
    assert gunicorn.startswith("gunicorn config.wsgi --bind 0.0.0.0:8000 ")
    assert worker.startswith("celery -A config worker") and beat.startswith("celery -A config beat")
    assert evaluation_worker.startswith("celery -A config worker -Q evaluation ")


# --------------------------------------------------------------------------- the install


def clean_env() -> dict:
    """What a fresh shell has: no PYTHONPATH (it would import the worktree), no Django/Stagegate settings."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "USER")
    env = {k: v for k, v in os.environ.items() if k in keep or k.startswith("PIP_")}
    env["PATH"] = ":".join(p for p in env.get("PATH", "").split(":") if not p.startswith(str(ROOT)) and "/.venv" not in p)
    return env


def venv_dir() -> Path:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    key = json.dumps([sys.version, project["requires-python"], sorted(project["dependencies"])])
    return ROOT / "var" / "production-venv" / hashlib.sha256(key.encode()).hexdigest()[:16]


def copy_checkout(dest: Path) -> None:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode().split("\0")
    for rel in filter(None, listed):
        src = ROOT / rel
        if src.is_file() and not src.is_symlink():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


def fresh_database() -> str:
    """A new, empty PostgreSQL database on the suite's server; its URL."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        missing("the production install runs on PostgreSQL (DATABASE_URL)")
    import psycopg

    parsed = urlparse(url)
    name = f"{parsed.path.lstrip('/')}_install{os.environ.get('PYTEST_XDIST_WORKER', '')}"
    with psycopg.connect(parsed._replace(path="/postgres").geturl(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return parsed._replace(path=f"/{name}").geturl()


def drop_database(url: str) -> None:
    import psycopg

    parsed = urlparse(url)
    with psycopg.connect(parsed._replace(path="/postgres").geturl(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{parsed.path.lstrip("/")}" WITH (FORCE)')


def run_script(script: str, *, cwd: Path, env: dict, timeout: int) -> str:
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{script}\n---\n{output[-6000:]}"
    return output


class Installed:
    def __init__(self, *, checkout: Path, venv: Path, env: dict, url: str, password: str, timings: dict):
        self.checkout, self.venv, self.env, self.url, self.password, self.timings = checkout, venv, env, url, password, timings
        self.http = requests.Session()
        self.http.headers["Host"] = HOST
        self.http.auth = ("admin", password)

    def api(self, method: str, path: str, **kwargs) -> dict:
        response = self.http.request(method, self.url + path, timeout=30, **kwargs)
        assert response.status_code == 200, f"{method} {path}: {response.status_code} {response.text[:800]}"
        return response.json()


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    broker = os.environ.get("CELERY_BROKER_URL", "")
    if not broker.startswith("redis://"):
        missing("the production install runs its Celery worker on Redis (CELERY_BROKER_URL)")
    venv_line, install, export, setup, *servers = readme_lines()
    base = tmp_path_factory.mktemp("production")
    checkout = base / "checkout"
    copy_checkout(checkout)
    venv = venv_dir()
    timings = {}

    # 1. The venv and `pip install .`, as written (the venv path and interpreter swapped for this machine's),
    # one session at a time (pytest-xdist workers share the venv).
    venv.parent.mkdir(parents=True, exist_ok=True)
    lock = open(venv.parent.with_suffix(".lock"), "w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    fresh = not (venv / ".complete").exists()
    if fresh:  # this dependency list's venv is new: the venvs of earlier lists go
        for old in venv.parent.glob("*"):
            shutil.rmtree(old, ignore_errors=True)
    venv_path = re.match(r"python3 -m venv (\S+)", venv_line).group(1)
    script = venv_line.replace(venv_path, str(venv)).replace("python3 -m venv", f"{shlex.quote(sys._base_executable)} -m venv", 1)
    if not fresh:  # the venv line ran when this venv was made; activating it is what is left of it
        script = script.split(" && ", 1)[1]
    env = clean_env()
    started = time.monotonic()
    run_script(f"{script}\n{install}", cwd=checkout, env=env, timeout=900)
    timings["venv and pip install ." + (" (fresh venv)" if fresh else " (kept venv)")] = round(time.monotonic() - started, 1)
    (venv / ".complete").touch()
    fcntl.flock(lock, fcntl.LOCK_UN)
    lock.close()

    # 2. The settings, with this test's values.
    database = fresh_database()
    password = secrets.token_urlsafe(16)
    values = {"DATABASE_URL": database, "CELERY_BROKER_URL": broker, "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
              "DJANGO_ALLOWED_HOSTS": HOST, "STAGEGATE_ADMIN_PASSWORD": password}
    exported = dict(item.split("=", 1) for item in shlex.split(export)[1:])
    assert set(exported) == EXPORTED and exported["DJANGO_ALLOWED_HOSTS"] == HOST
    env.update(values)
    env.update({
        "STAGEGATE_VAR_DIR": str(base / "var"),
        # A queue of its own, so the suite's Celery workers never take this server's tasks.
        "CELERY_TASK_DEFAULT_QUEUE": f"stagegate-install-{uuid.uuid4().hex[:8]}",
        "STAGEGATE_EVALUATION_QUEUE": f"evaluation-install-{uuid.uuid4().hex[:8]}",
        "STAGEGATE_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1/32",
    })
    activate = f". {shlex.quote(str(venv))}/bin/activate"
    started = time.monotonic()
    output = run_script(f"{activate}\n{setup}", cwd=checkout, env=env, timeout=300)
    timings["migrate, bootstrap, collectstatic"] = round(time.monotonic() - started, 1)
    assert "Created admin user" not in output  # the password came from STAGEGATE_ADMIN_PASSWORD

    # 3. gunicorn, the workers and beat.
    port = free_port()
    gunicorn, worker, evaluation_worker, beat = servers
    evaluation_worker = evaluation_worker.replace("-Q evaluation ", f"-Q {env['STAGEGATE_EVALUATION_QUEUE']} ", 1)
    assert "0.0.0.0:8000" in gunicorn
    processes = []
    started = time.monotonic()
    try:
        for name, line in (("gunicorn", gunicorn.replace("0.0.0.0:8000", f"127.0.0.1:{port}")), ("worker", worker),
                           ("evaluation-worker", evaluation_worker), ("beat", beat)):
            log = open(base / f"{name}.log", "w")
            processes.append((name, log, subprocess.Popen(
                ["bash", "-c", f"{activate} && exec {line}"], cwd=checkout, env=env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )))
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            for name, _, proc in processes:
                assert proc.poll() is None, f"{name} exited:\n{(base / f'{name}.log').read_text()[-4000:]}"
            try:
                if requests.get(url + "/health", headers={"Host": HOST}, timeout=2).text == "OK":
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, (base / "gunicorn.log").read_text()[-4000:]
            time.sleep(0.3)
        timings["gunicorn serving"] = round(time.monotonic() - started, 1)
        installed = Installed(checkout=checkout, venv=venv, env=env, url=url, password=password, timings=timings)
        installed.processes = {name: proc for name, _, proc in processes}
        yield installed
    finally:
        for _, log, proc in processes:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
            log.close()
        print("production install timings (s):", timings)
        drop_database(database)


# --------------------------------------------------------------------------- what it serves


MLMODEL = b"artifact_path: model\nflavors:\n  python_function:\n    loader_module: mlflow.sklearn\n    python_version: 3.12.0\n"


def test_every_app_answers_and_the_worker_delivers(installed, receiver):
    s = installed
    assert requests.get(s.url + "/health", headers={"Host": HOST}, timeout=10).text == "OK"
    assert requests.get(s.url + "/health", headers={"Host": "evil.example.com"}, timeout=10).status_code == 400
    anonymous = requests.get(s.url + "/api/2.0/mlflow/experiments/search", headers={"Host": HOST}, params={"max_results": 1}, timeout=10)
    assert anonymous.status_code == 401 and anonymous.json()["error_code"] == "UNAUTHENTICATED"

    # monitoring: MLflow's webhooks API; the delivery below is made by the Celery worker with `requests`.
    hook = s.api("POST", "/api/2.0/mlflow/webhooks", json={
        "name": "ci", "url": receiver.url, "events": [{"entity": "MODEL_VERSION", "action": "CREATED"}], "secret": "s3cret"})["webhook"]
    assert [w["webhook_id"] for w in s.api("GET", "/api/2.0/mlflow/webhooks")["webhooks"]] == [hook["webhook_id"]]

    # tracking: an experiment, a run with a metric, an artifact uploaded and read back through the proxy.
    experiment_id = s.api("POST", "/api/2.0/mlflow/experiments/create", json={"name": "install"})["experiment_id"]
    run = s.api("POST", "/api/2.0/mlflow/runs/create", json={"experiment_id": experiment_id, "start_time": 1})["run"]["info"]
    s.api("POST", "/api/2.0/mlflow/runs/log-metric", json={"run_id": run["run_id"], "key": "rmse", "value": 0.3, "timestamp": 1, "step": 0})
    artifacts = "/api/2.0/mlflow-artifacts/artifacts/" + run["artifact_uri"].split(":/", 1)[1] + "/model/MLmodel"
    assert s.http.put(s.url + artifacts, data=MLMODEL, timeout=30).status_code == 200
    assert s.http.get(s.url + artifacts, timeout=30).content == MLMODEL

    # registry: the worker copies the version's files and marks it READY.
    s.api("POST", "/api/2.0/mlflow/registered-models/create", json={"name": "install-model"})
    version = s.api("POST", "/api/2.0/mlflow/model-versions/create", json={
        "name": "install-model", "source": f"runs:/{run['run_id']}/model", "run_id": run["run_id"]})["model_version"]
    deadline = time.monotonic() + 60
    while version["status"] != "READY":
        assert version["status"] == "PENDING_REGISTRATION" and time.monotonic() < deadline, version
        time.sleep(0.3)
        version = s.api("GET", "/api/2.0/mlflow/model-versions/get", params={"name": "install-model", "version": "1"})["model_version"]

    # approvals and the Stagegate APIs.
    s.api("PUT", "/api/2.0/stagegate/stage-policies", json={"stage": "Production", "model_name": "install-model", "requires_approval": True})
    request = s.api("POST", "/api/2.0/mlflow/transition-requests/create", json={
        "name": "install-model", "version": "1", "stage": "Production", "comment": "ship it"})["request"]
    assert request["to_stage"] == "Production"
    assert [r["to_stage"] for r in s.api("GET", "/api/2.0/mlflow/transition-requests/list", params={"name": "install-model", "version": "1"})["requests"]] == ["Production"]
    searched = s.api("GET", "/api/2.0/stagegate/transition-requests", params={"model_name": "install-model"})["requests"]
    assert [r["to_stage"] for r in searched] == ["Production"]
    # Nobody approves their own request: not in the requester's review inbox.
    assert s.api("GET", "/api/2.0/stagegate/transition-requests", params={"reviewable": "true"})["requests"] == []
    holders = s.api("GET", "/api/2.0/stagegate/registered-models/stage-at", params={
        "name": "install-model", "stage": "None", "timestamp": str(int(time.time() * 1000))})["model_versions"]
    assert len(holders) == 1

    # The webhook's delivery, signed, by the worker.
    deadline = time.monotonic() + 60
    while not receiver.requests:
        assert time.monotonic() < deadline, "the worker delivered no webhook"
        time.sleep(0.2)
    delivered = receiver.requests[0]
    assert json.loads(delivered["body"])["data"]["name"] == "install-model"
    assert delivered["headers"]["X-MLflow-Signature"].startswith("v1,")
    # gunicorn, the worker and beat are all still up.
    assert {name: proc.poll() for name, proc in s.processes.items()} == {
        "gunicorn": None, "worker": None, "evaluation-worker": None, "beat": None}


def test_pages_and_static_files(installed):
    s = installed
    web = requests.Session()
    web.headers["Host"] = HOST
    login = web.get(s.url + "/login/", timeout=30)
    assert login.status_code == 200
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login.text).group(1)
    page = web.post(s.url + "/login/", data={"username": "admin", "password": s.password, "csrfmiddlewaretoken": token, "next": "/models/"}, timeout=30)
    assert page.status_code == 200 and page.url.endswith("/models/"), page.text[:500]
    css = re.search(r'href="(/static/[^"]+\.css)"', page.text).group(1)
    assert web.get(s.url + css, timeout=30).status_code == 200  # collected and served by whitenoise


IMPORT_SCAN = r"""
import ast, importlib, importlib.metadata as md, importlib.util, json, sys
import django
django.setup()
dist = md.distribution("stagegate")
modules, unresolved, errors = [], {}, {}
for f in dist.files:
    if f.suffix != ".py":
        continue
    parts = list(f.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    name = ".".join(parts)
    modules.append(name)
    for node in ast.walk(ast.parse(f.locate().read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module]
        else:
            continue
        for imported in names:
            top = imported.split(".")[0]
            if importlib.util.find_spec(top) is None:
                unresolved.setdefault(top, []).append(name)
    try:
        importlib.import_module(name)
    except Exception as exc:
        errors[name] = repr(exc)
def _installed(name):
    try:
        importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True
# Distributions, not modules: the runtime's mlflow-skinny (the evaluation sandbox) provides the `mlflow` module.
extras = [d for d in ("mlflow", "pytest", "playwright", "moto") if _installed(d)]
print(json.dumps({"modules": sorted(modules), "unresolved": unresolved, "errors": errors, "extras": extras,
                  "config": importlib.import_module("config").__file__, "prefix": sys.prefix,
                  "files": sorted(str(f) for f in dist.files if f.suffix == ".py"), "site": str(dist.locate_file(""))}))
"""


def test_every_module_of_the_wheel_imports_with_the_declared_dependencies(installed, tmp_path):
    s = installed
    # Run outside the checkout, so the installed wheel is what gets imported.
    env = {**s.env, "DJANGO_SETTINGS_MODULE": "config.settings"}
    result = subprocess.run([str(s.venv / "bin" / "python"), "-c", IMPORT_SCAN], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    scan = json.loads(result.stdout.strip().splitlines()[-1])
    assert scan["config"].startswith(scan["prefix"]) and "site-packages" in scan["config"]
    assert scan["unresolved"] == {}, f"imports of packages that are not runtime dependencies: {scan['unresolved']}"
    assert scan["errors"] == {}
    assert scan["extras"] == [], "the dev extra leaked into a plain `pip install .`"
    # The wheel holds every app with its migrations and commands, and no tests.
    for expected in ("monitoring.services", "registry.migrations.0001_initial", "core.management.commands.bootstrap", "config.wsgi"):
        assert expected in scan["modules"], expected
    assert {m.split(".")[0] for m in scan["modules"]} == set(PACKAGES)
    # ... built from this checkout, not left over from an earlier run.
    stale = [f for f in scan["files"] if (Path(scan["site"]) / f).read_bytes() != (s.checkout / f).read_bytes()]
    assert stale == []
