"""The deployment files: docker-compose.yml, Dockerfile and .dockerignore agree with the code.

No Docker engine runs in the test environment, so these read the files and check
what a `docker compose up` depends on: every env var the stack sets is one the
settings read, the services and their health checks exist, the web service migrates
before it serves, and everything the Dockerfile copies or runs is in the build context.
"""

import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from config import settings as settings_module

ROOT = Path(__file__).resolve().parents[2]
SETTINGS_SOURCE = (ROOT / "config" / "settings.py").read_text()
APP_SERVICES = ("web", "worker", "beat")
# Read by the images themselves, not by settings.py.
IMAGE_VARS = {"POSTGRES_DB", "POSTGRES_USER", "POSTGRES_PASSWORD"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) pairs, continuation lines joined, comments dropped."""
    text = (ROOT / "Dockerfile").read_text()
    logical, current = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or (stripped.startswith("#") and not current):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        logical.append(current + stripped)
        current = ""
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in logical]


def environment(service: dict) -> dict:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return env


def settings_reads(name: str) -> bool:
    return re.search(rf"""env_\w+\(\s*["']{re.escape(name)}["']""", SETTINGS_SOURCE) is not None


def interpolate(value: str, env: dict) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error}, with `env` as the host environment."""

    def replace(match):
        name, op, arg = match.group(1), match.group(2), match.group(3)
        if name in env:
            return env[name]
        if op == ":-":
            return arg
        raise AssertionError(f"compose requires {name}: {arg}")

    return re.sub(r"\$\{(\w+)(?:(:[-?])([^}]*))?\}", replace, str(value))


# --------------------------------------------------------------------------- docker-compose.yml


def test_every_service_exists(compose):
    assert {"postgres", "redis", "web", "worker", "beat"} <= set(compose["services"])


def test_every_app_env_var_is_read_by_settings(compose):
    for name in APP_SERVICES:
        env = environment(compose["services"][name])
        assert env, f"{name} sets no environment"
        unread = [var for var in env if not settings_reads(var)]
        assert not unread, f"{name} sets {unread}, which config/settings.py never reads"


def test_other_env_vars_are_image_settings(compose):
    for name, service in compose["services"].items():
        if name not in APP_SERVICES:
            assert set(environment(service)) <= IMAGE_VARS, name


def test_web_gets_the_required_settings(compose):
    env = environment(compose["services"]["web"])
    for var in ("DATABASE_URL", "CELERY_BROKER_URL", "DJANGO_SECRET_KEY", "DJANGO_ALLOWED_HOSTS",
                "STAGEGATE_ADMIN_USER", "STAGEGATE_ADMIN_PASSWORD", "STAGEGATE_ARTIFACT_ROOT"):
        assert var in env, var
    assert env["DATABASE_URL"].startswith("postgres://") and "@postgres:5432/" in env["DATABASE_URL"]
    assert env["CELERY_BROKER_URL"].startswith("redis://redis:6379/")
    # No secret is baked into the file: the secret key and admin password must come from the host.
    assert ":?" in env["DJANGO_SECRET_KEY"]
    assert ":?" in env["STAGEGATE_ADMIN_PASSWORD"]


def test_worker_and_beat_share_the_web_settings(compose):
    web = environment(compose["services"]["web"])
    for name in ("worker", "beat"):
        env = environment(compose["services"][name])
        for var in ("DATABASE_URL", "CELERY_BROKER_URL", "DJANGO_SECRET_KEY"):
            assert env[var] == web[var], (name, var)


@pytest.mark.parametrize("name", ["postgres", "redis", "web", "worker"])
def test_services_have_healthchecks(compose, name):
    check = compose["services"][name]["healthcheck"]
    test = check["test"]
    assert isinstance(test, list) and test[0] in ("CMD", "CMD-SHELL")
    assert {"interval", "timeout", "retries"} <= set(check)


def test_healthchecks_probe_the_right_thing(compose):
    services = compose["services"]
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert services["redis"]["healthcheck"]["test"][1:] == ["redis-cli", "ping"]
    assert "/health" in " ".join(services["web"]["healthcheck"]["test"])


def test_dependencies_wait_for_health(compose):
    services = compose["services"]
    for name in APP_SERVICES:
        depends = services[name]["depends_on"]
        assert isinstance(depends, dict), f"{name}: depends_on needs conditions"
        assert "redis" in depends
        for target, spec in depends.items():
            assert spec == {"condition": "service_healthy"}, (name, target)
            assert "healthcheck" in services[target], f"{name} waits for {target}, which has no healthcheck"
    assert {"postgres", "redis"} <= set(services["web"]["depends_on"])
    # Worker and beat start once web has migrated the database.
    assert "web" in services["worker"]["depends_on"] and "web" in services["beat"]["depends_on"]


def command_text(service: dict) -> str:
    command = service["command"]
    return command if isinstance(command, str) else " ".join(command)


def test_web_migrates_and_bootstraps_before_gunicorn(compose):
    command = command_text(compose["services"]["web"])
    migrate = command.index("manage.py migrate --noinput")
    bootstrap = command.index("manage.py bootstrap")
    gunicorn = command.index("gunicorn config.wsgi")
    assert migrate < bootstrap < gunicorn
    assert "&&" in command[migrate:gunicorn], "a failed migration must stop the start"
    assert "exec gunicorn" in command, "gunicorn must be PID 1's child-free successor to get signals"


def test_celery_commands(compose):
    assert command_text(compose["services"]["worker"]).startswith("celery -A config worker")
    assert command_text(compose["services"]["beat"]).startswith("celery -A config beat")


def test_volumes_are_declared_and_used(compose):
    declared = set(compose["volumes"])
    assert {"postgres-data", "artifacts"} <= declared
    used = set()
    for service in compose["services"].values():
        for mount in service.get("volumes", []):
            source = mount.split(":", 1)[0] if isinstance(mount, str) else mount["source"]
            if not source.startswith((".", "/")):
                assert source in declared, f"undeclared volume {source}"
                used.add(source)
    assert used == declared
    artifact_root = environment(compose["services"]["web"])["STAGEGATE_ARTIFACT_ROOT"]
    for name in ("web", "worker"):
        assert f"artifacts:{artifact_root}" in compose["services"][name]["volumes"], name
    assert "postgres-data:/var/lib/postgresql/data" in compose["services"]["postgres"]["volumes"]


def test_postgres_is_15(compose):
    assert compose["services"]["postgres"]["image"].split(":")[1].startswith("15")


def test_compose_env_passes_the_deploy_security_checks(compose, tmp_path):
    """`check --deploy` with compose's environment: no weak secret, DEBUG off, hosts set."""
    host_env = {"DJANGO_SECRET_KEY": "k" * 20 + "x7Q!pZ2@vL9#mR4$wT6%yU8^iO1&eA3*", "STAGEGATE_ADMIN_PASSWORD": "pw"}
    env = {k: interpolate(v, host_env) for k, v in environment(compose["services"]["web"]).items()}
    env["STAGEGATE_ARTIFACT_ROOT"] = str(tmp_path / "artifacts")
    run_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "STAGEGATE_", "DATABASE_URL", "CELERY_"))},
        **env,
        "STAGEGATE_VAR_DIR": str(tmp_path / "var"),
        "STAGEGATE_STATIC_ROOT": str(tmp_path / "static"),
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--tag", "security"],
        cwd=ROOT, env=run_env, capture_output=True, text=True, timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    for code in ("security.W009", "security.W018", "security.W020"):
        assert code not in output, output
    # The compose secret reached the settings (no generated key file under var/).
    assert not (tmp_path / "var" / "secret_key").exists()


# --------------------------------------------------------------------------- settings from env


def test_env_list_parses_allowed_hosts(monkeypatch):
    monkeypatch.setenv("DJANGO_ALLOWED_HOSTS", " registry.example.com, ,localhost,127.0.0.1 ")
    assert settings_module.env_list("DJANGO_ALLOWED_HOSTS") == ["registry.example.com", "localhost", "127.0.0.1"]
    monkeypatch.delenv("DJANGO_ALLOWED_HOSTS")
    assert settings_module.env_list("DJANGO_ALLOWED_HOSTS", "a,b") == ["a", "b"]
    assert settings_module.env_list("DJANGO_ALLOWED_HOSTS") == []
    # Set but empty means "no hosts" (compose uses ${DJANGO_ALLOWED_HOSTS:-…} so it is never empty).
    monkeypatch.setenv("DJANGO_ALLOWED_HOSTS", "")
    assert settings_module.env_list("DJANGO_ALLOWED_HOSTS", "a,b") == []


def test_env_helpers_fail_loudly(monkeypatch):
    from django.core.exceptions import ImproperlyConfigured

    monkeypatch.setenv("DJANGO_DEBUG", "maybe")
    with pytest.raises(ImproperlyConfigured, match="DJANGO_DEBUG"):
        settings_module.env_bool("DJANGO_DEBUG")
    monkeypatch.setenv("DJANGO_DEBUG", "Off")
    assert settings_module.env_bool("DJANGO_DEBUG", True) is False
    monkeypatch.setenv("EMAIL_PORT", "twenty-five")
    with pytest.raises(ImproperlyConfigured, match="EMAIL_PORT"):
        settings_module.env_int("EMAIL_PORT", 25)


def test_deploy_settings_come_from_env(tmp_path):
    """A fresh interpreter with deployment env vars: the settings reflect every one of them."""
    code = (
        "import json; from config import settings as s; print(json.dumps({"
        "'hosts': s.ALLOWED_HOSTS, 'debug': s.DEBUG, 'key': s.SECRET_KEY, 'csrf': s.CSRF_TRUSTED_ORIGINS,"
        "'engine': s.DATABASES['default']['ENGINE'], 'db': s.DATABASES['default']['NAME'],"
        "'broker': s.CELERY_BROKER_URL, 'eager': s.CELERY_TASK_ALWAYS_EAGER,"
        "'artifacts': s.STORAGES['artifacts']['OPTIONS']['location']}))"
    )
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "STAGEGATE_", "DATABASE_URL", "CELERY_"))},
        "DJANGO_ALLOWED_HOSTS": "registry.example.com,10.0.0.5",
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": "from-the-environment",
        "DJANGO_CSRF_TRUSTED_ORIGINS": "https://registry.example.com",
        "DATABASE_URL": "postgres://u:p@db.internal:5432/stagegate",
        "CELERY_BROKER_URL": "redis://cache.internal:6379/0",
        "STAGEGATE_ARTIFACT_ROOT": str(tmp_path / "artifacts"),
        "STAGEGATE_VAR_DIR": str(tmp_path / "var"),
        "STAGEGATE_STATIC_ROOT": str(tmp_path / "static"),
    }
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    import json

    values = json.loads(result.stdout.strip().splitlines()[-1])
    assert values == {
        "hosts": ["registry.example.com", "10.0.0.5"],
        "debug": False,
        "key": "from-the-environment",
        "csrf": ["https://registry.example.com"],
        "engine": "core.db.postgresql",  # Django's PostgreSQL backend, health check bypass added
        "db": "stagegate",
        "broker": "redis://cache.internal:6379/0",
        "eager": False,
        "artifacts": str(tmp_path / "artifacts"),
    }


# --------------------------------------------------------------------------- Dockerfile and .dockerignore


def dockerignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def ignored(relpath: str, patterns: list[str]) -> bool:
    result = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        parts = relpath.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        pattern_alt = pattern[3:] if pattern.startswith("**/") else None
        if any(fnmatch.fnmatchcase(p, pattern) for p in prefixes) or (
            pattern_alt and any(fnmatch.fnmatchcase(part, pattern_alt) for part in parts)
        ):
            result = not negate
    return result


def test_dockerfile_base_user_and_entrypoint(dockerfile):
    instructions = [i for i, _ in dockerfile]
    assert dockerfile[0] == ("FROM", "python:3.12-slim")
    users = [arg for i, arg in dockerfile if i == "USER"]
    assert users and users[-1] not in ("root", "0"), "the app must not run as root"
    cmd = next(arg for i, arg in dockerfile if i == "CMD")
    assert '"gunicorn", "config.wsgi"' in cmd
    assert "HEALTHCHECK" in instructions and "EXPOSE" in instructions
    runs = " ".join(arg for i, arg in dockerfile if i == "RUN")
    assert "pip install" in runs and "--no-deps ." in runs
    assert "manage.py collectstatic --noinput" in runs
    # collectstatic runs as the app user, after the switch.
    user_at = instructions.index("USER")
    assert any(i == "RUN" and "collectstatic" in arg for i, arg in dockerfile[user_at:])


def test_dockerfile_env_vars_are_read_by_settings(dockerfile):
    for instruction, arg in dockerfile:
        if instruction == "ENV":
            for name in re.findall(r"(\w+)=", arg):
                if name.startswith(("STAGEGATE_", "DJANGO_")):
                    assert settings_reads(name), name


def test_dockerfile_copies_files_that_exist_and_are_in_the_context(dockerfile):
    patterns = dockerignore_patterns()
    copied = []
    for instruction, arg in dockerfile:
        if instruction in ("COPY", "ADD"):
            sources = [a for a in arg.split() if not a.startswith("--")][:-1]
            for source in sources:
                assert (ROOT / source).exists(), f"{instruction} {source}: no such file"
                if source != ".":
                    assert not ignored(source, patterns), f"{source} is excluded by .dockerignore"
                copied.append(source)
    assert "." in copied or "manage.py" in copied
    # What the image needs at runtime and build time is in the context.
    for needed in ("manage.py", "pyproject.toml", "README.md", "config/wsgi.py", "config/settings.py",
                   "core", "tracking", "registry", "approvals", "templates", "static"):
        assert (ROOT / needed).exists(), needed
        assert not ignored(needed, patterns), f"{needed} is excluded by .dockerignore"
    # What must stay out of the image is out.
    for excluded in (".git", ".venv", "var", "tests", "tracking/__pycache__", ".env"):
        assert ignored(excluded, patterns), excluded


def test_pyproject_lists_what_the_dockerfile_and_compose_run():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = " ".join(project["dependencies"]).lower()
    for package in ("gunicorn", "celery", "psycopg", "dj-database-url", "whitenoise", "django-storages"):
        assert package in deps, package
    assert project["requires-python"] == ">=3.12"


def healthcheck_snippet(compose) -> str:
    test = compose["services"]["web"]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"]
    return test[3]


def test_dockerfile_and_compose_share_the_healthcheck(compose):
    assert healthcheck_snippet(compose) in (ROOT / "Dockerfile").read_text()


@pytest.mark.django_db(transaction=True)
def test_web_healthcheck_passes_with_a_locked_down_allowed_hosts(compose, live_server, settings):
    """The probe runs inside the container against 127.0.0.1, but Django only answers allowed hosts."""
    settings.ALLOWED_HOSTS = ["registry.example.com"]
    snippet = healthcheck_snippet(compose).replace("http://127.0.0.1:8000", live_server.url)
    assert snippet != healthcheck_snippet(compose)
    base_env = {k: v for k, v in os.environ.items() if k != "DJANGO_ALLOWED_HOSTS"}

    def probe(allowed_hosts: str) -> int:
        env = {**base_env, "DJANGO_ALLOWED_HOSTS": allowed_hosts}
        return subprocess.run([sys.executable, "-c", snippet], env=env, capture_output=True, timeout=30).returncode

    assert probe("registry.example.com,localhost") == 0
    assert probe(".example.com") != 0  # probes example.com, which this server does not allow
    assert probe("other.example.com") != 0


def compose_config(env: dict) -> dict:
    """docker-compose.yml resolved: by `docker compose config` where the Compose plugin is installed, else
    (as here: a docker CLI without the plugin, no engine) by the same steps done in Python: YAML anchors and
    merge keys, then ${VAR}, ${VAR:-default} and ${VAR:?error} from `env` (a missing required one raises)."""
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        result = subprocess.run([docker, "compose", "-f", "docker-compose.yml", "config", "--format", "json"],
                                cwd=ROOT, env={"PATH": os.environ["PATH"], **env}, capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            raise AssertionError(result.stderr)
        return json.loads(result.stdout)

    def resolve(value):
        if isinstance(value, dict):
            return {k: resolve(v) for k, v in value.items() if not str(k).startswith("x-")}
        if isinstance(value, list):
            return [resolve(v) for v in value]
        return interpolate(value, env).replace("$$", "$") if isinstance(value, str) else value

    return resolve(yaml.safe_load((ROOT / "docker-compose.yml").read_text()))


def test_compose_config_resolves_and_refuses_to_start_without_secrets():
    env = {"DJANGO_SECRET_KEY": "k" * 50, "STAGEGATE_ADMIN_PASSWORD": "pw"}
    config = compose_config(env)
    assert set(config["services"]) == {"postgres", "redis", "web", "worker", "beat"}
    for name in APP_SERVICES:
        service_env = environment(config["services"][name])
        assert service_env["DJANGO_SECRET_KEY"] == "k" * 50, name
        assert service_env["DATABASE_URL"] == "postgres://stagegate:stagegate@postgres:5432/stagegate", name
    assert environment(config["services"]["web"])["STAGEGATE_ADMIN_PASSWORD"] == "pw"
    for required in env:
        with pytest.raises(AssertionError, match=required):
            compose_config({k: v for k, v in env.items() if k != required})


def test_dockerfile_installs_what_pip_install_dot_installs(dockerfile):
    """The runtime dependencies (never an extra), then the app with --no-deps: README's `pip install .`."""
    runs = [arg for i, arg in dockerfile if i == "RUN"]
    deps_layer = next(run for run in runs if "pip install -r" in run)
    assert "['project']['dependencies']" in deps_layer and "optional" not in deps_layer
    assert any(re.search(r"pip install --no-deps \.(\s|$)", run) for run in runs)
    assert not any("[dev]" in run or ".[" in run for run in runs)
