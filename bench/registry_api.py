"""Registry read-path benchmark (a script, never a timed test).

Seeds N registered models x M versions through the services (same database and artifact
store as the server: run it with the server's env), then hammers the read endpoints of a
RUNNING server with a thread pool and prints throughput and p50/p99 latency per endpoint.

    export DATABASE_URL=...                      # the server's database
    python bench/registry_api.py --models 50 --versions 20 --seed
    STAGEGATE_BENCH_TOKEN=sg_... python bench/registry_api.py --url http://127.0.0.1:8000 --requests 500 --threads 8

Auth: STAGEGATE_BENCH_TOKEN (bearer) or STAGEGATE_BENCH_USER / STAGEGATE_BENCH_PASSWORD (basic);
with --seed and no credentials a token for the seeding user is created and printed.
"""

import argparse
import io
import os
import random
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PREFIX = "bench-model-"


def setup_django():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()


def seed(models: int, versions: int, username: str) -> str | None:
    """Create PREFIX000..N with M READY versions each (stages spread over the four built-ins)."""
    setup_django()
    import yaml
    from django.contrib.auth import get_user_model

    from core import artifacts
    from core.services import create_api_token, ensure_user
    from registry import services
    from registry.models import RegisteredModel

    user = get_user_model().objects.filter(username=username).first() or ensure_user(username=username, password=None)[0]
    source_dir = "bench/model"
    mlmodel = {"flavors": {"python_function": {"loader_module": "bench", "python_version": "3.12"}}}
    artifacts.save_stream(source_dir + "/MLmodel", io.BytesIO(yaml.safe_dump(mlmodel).encode()))
    artifacts.save_stream(source_dir + "/model.bin", io.BytesIO(os.urandom(1024)))
    stages = ["None", "Staging", "Production", "Archived"]
    started = time.perf_counter()
    created = 0
    for i in range(models):
        name = f"{PREFIX}{i:04d}"
        if not RegisteredModel.objects.filter(name=name).exists():
            services.create_registered_model(name=name, user=user, description=f"bench model {i}",
                                             tags=[{"key": "team", "value": random.choice(["ml", "ds", "ops"])}])
        model = RegisteredModel.objects.get(name=name)
        for _ in range(max(0, versions - model.last_version)):
            mv = services.create_model_version(name=name, source="mlflow-artifacts:/" + source_dir, user=user,
                                               run_id=os.urandom(16).hex(), tags=[{"key": "validated", "value": "true"}])
            services.transition_model_version_stage(name=name, version=mv.version, stage=random.choice(stages), user=user)
            created += 1
        services.set_registered_model_alias(name=name, alias="champion", version=1, user=user)
    elapsed = time.perf_counter() - started
    print(f"seeded {models} models, {created} new versions in {elapsed:.1f}s ({created / elapsed if elapsed else 0:.0f} versions/s)")
    if not (os.environ.get("STAGEGATE_BENCH_TOKEN") or os.environ.get("STAGEGATE_BENCH_USER")):
        _, raw = create_api_token(user=user, name="bench")
        print(f"export STAGEGATE_BENCH_TOKEN={raw}")
        return raw
    return None


def session(token: str | None):
    import requests

    s = requests.Session()
    token = token or os.environ.get("STAGEGATE_BENCH_TOKEN")
    if token:
        s.headers["Authorization"] = f"Bearer {token}"
    elif os.environ.get("STAGEGATE_BENCH_USER"):
        s.auth = (os.environ["STAGEGATE_BENCH_USER"], os.environ.get("STAGEGATE_BENCH_PASSWORD", ""))
    return s


def endpoints(models: int, versions: int):
    def name():
        return f"{PREFIX}{random.randrange(models):04d}"

    return {
        "registered-models/get": lambda: ("GET", "registered-models/get", {"name": name()}, None),
        "get-latest-versions": lambda: ("POST", "registered-models/get-latest-versions", None, {"name": name()}),
        "model-versions/get": lambda: ("GET", "model-versions/get", {"name": name(), "version": str(random.randint(1, versions))}, None),
        "model-versions/search": lambda: ("GET", "model-versions/search", {"filter": f"name = '{name()}'", "max_results": 100}, None),
        "registered-models/search": lambda: (
            "GET", "registered-models/search",
            {"filter": f"name LIKE '{PREFIX}%' AND tag.`mlflow.prompt.is_prompt` != 'true'", "max_results": 100}, None,
        ),
    }


def run(url: str, requests_per_endpoint: int, threads: int, models: int, versions: int, token: str | None):
    import threading

    local = threading.local()

    def call(make):
        if not hasattr(local, "s"):
            local.s = session(token)
        method, path, params, body = make()
        started = time.perf_counter()
        r = local.s.request(method, f"{url.rstrip('/')}/api/2.0/mlflow/{path}", params=params, json=body, timeout=60)
        elapsed = time.perf_counter() - started
        return elapsed, r.status_code

    print(f"{'endpoint':28} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for label, make in endpoints(models, versions).items():
        started = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            results = list(pool.map(lambda _: call(make), range(requests_per_endpoint)))
        wall = time.perf_counter() - started
        latencies = sorted(r[0] * 1000 for r in results)
        errors = sum(1 for _, status in results if status != 200)
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        print(f"{label:28} {len(results) / wall:8.1f} {statistics.median(latencies):8.1f} {p99:8.1f} {errors:7d}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default=os.environ.get("STAGEGATE_BENCH_URL", "http://127.0.0.1:8000"))
    parser.add_argument("--models", type=int, default=50)
    parser.add_argument("--versions", type=int, default=10)
    parser.add_argument("--seed", action="store_true", help="seed the models through the services first")
    parser.add_argument("--seed-only", action="store_true")
    parser.add_argument("--user", default=os.environ.get("STAGEGATE_ADMIN_USER", "admin"))
    parser.add_argument("--requests", type=int, default=300, help="requests per endpoint")
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args(argv)
    token = None
    if args.seed or args.seed_only:
        token = seed(args.models, args.versions, args.user)
        if args.seed_only:
            return
    run(args.url, args.requests, args.threads, args.models, args.versions, token)


if __name__ == "__main__":
    main()
