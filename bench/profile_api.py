"""In-process CPU per request and SQL queries per request for the hot API endpoints.

Calls the real WSGI application (all middleware, URL routing, auth, JSON) in this process,
so the numbers are server work only (no HTTP, no client). Use it to iterate on the hot
paths; bench/compare.py gives the over-the-wire figures.

    DATABASE_URL=postgres://... python bench/seed_direct.py --runs 2000 --models 50 --versions 20
    DATABASE_URL=postgres://... python bench/profile_api.py [-n 300] [--profile registered-models/get]
"""

import argparse
import cProfile
import io
import json
import os
import pstats
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def setup():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()


def make_call(app, token: str):
    def call(method: str, path: str, params=None, body=None):
        query = urlencode(params or {}, doseq=True)
        data = json.dumps(body).encode() if body is not None else b""
        environ = {
            "REQUEST_METHOD": method, "PATH_INFO": "/api/2.0/mlflow/" + path, "QUERY_STRING": query,
            "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80", "HTTP_HOST": "127.0.0.1", "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(data), "CONTENT_LENGTH": str(len(data)), "CONTENT_TYPE": "application/json" if body is not None else "",
            "HTTP_AUTHORIZATION": f"Bearer {token}", "wsgi.errors": sys.stderr, "wsgi.multithread": True,
            "wsgi.multiprocess": True, "wsgi.run_once": False, "wsgi.version": (1, 0), "REMOTE_ADDR": "127.0.0.1",
        }
        status = []
        chunks = app(environ, lambda s, h, *a: status.append(s))
        payload = b"".join(chunks)
        if hasattr(chunks, "close"):
            chunks.close()
        if not status[0].startswith("200"):
            raise AssertionError(f"{method} {path} -> {status[0]} {payload[:300]!r}")
        return json.loads(payload)

    return call


def endpoints(call, *, model: str, big: str | None, run_id: str, experiment_id: str):
    ops = {
        "registered-models/get": lambda: call("GET", "registered-models/get", {"name": model}),
        "get-latest-versions": lambda: call("POST", "registered-models/get-latest-versions", body={"name": model}),
        "model-versions/get": lambda: call("GET", "model-versions/get", {"name": model, "version": "3"}),
        "model-versions/search (name=, 50)": lambda: call("GET", "model-versions/search", {"filter": f"name='{model}'", "max_results": 50}),
        "registered-models/search (LIKE, 5)": lambda: call("GET", "registered-models/search", {"filter": "name LIKE 'model-000%' AND tag.`mlflow.prompt.is_prompt` != 'true'", "max_results": 5}),
        "runs/search (metric filter+order, 100)": lambda: call("POST", "runs/search", body={"experiment_ids": [experiment_id], "filter": "metrics.m0 < 0.5", "order_by": ["metrics.m0 ASC"], "max_results": 100}),
        "metrics/get-history": lambda: call("GET", "metrics/get-history", {"run_id": run_id, "metric_key": "m0"}),
        "runs/get": lambda: call("GET", "runs/get", {"run_id": run_id}),
    }
    state = {"run": run_id}

    def create_and_log():
        rid = call("POST", "runs/create", body={"experiment_id": experiment_id, "start_time": 1})["run"]["info"]["run_id"]
        call("POST", "runs/log-batch", body={"run_id": rid, "params": [{"key": "a", "value": "1"}], "metrics": [{"key": "m0", "value": 0.5, "timestamp": 1, "step": 0}]})
        state["run"] = rid

    ops["W runs/create + log-batch"] = create_and_log
    ops["W runs/update"] = lambda: call("POST", "runs/update", body={"run_id": state["run"], "status": "FINISHED", "end_time": 2})
    ops["W model-versions/create"] = lambda: call("POST", "model-versions/create", body={"name": model, "source": f"mlflow-artifacts:/bench/{run_id}/artifacts/model", "run_id": run_id})
    ops["W model-versions/transition-stage"] = lambda: call("POST", "model-versions/transition-stage", body={"name": model, "version": "2", "stage": "Staging", "archive_existing_versions": False})
    ops["W model-versions/set-tag"] = lambda: call("POST", "model-versions/set-tag", body={"name": model, "version": "2", "key": "k", "value": "v"})
    if big:
        ops["model-versions/search big (name=, 50)"] = lambda: call("GET", "model-versions/search", {"filter": f"name='{big}'", "max_results": 50})
        ops["get-latest-versions big"] = lambda: call("POST", "registered-models/get-latest-versions", body={"name": big})
    return ops


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=300)
    parser.add_argument("--only", default="", help="substring of the endpoint names to run")
    parser.add_argument("--writes", action="store_true", help="also the write endpoints (they add rows)")
    parser.add_argument("--profile", default="", help="cProfile this endpoint (exact name) and print the top functions")
    args = parser.parse_args(argv)
    setup()
    from django.db import connection

    from core.services import create_api_token
    from registry.models import RegisteredModel
    from tracking.models import Run

    from bench.seed_direct import BIG_MODEL, EXPERIMENT, _user

    from config.wsgi import application as app
    _, token = create_api_token(user=_user(), name="profile")
    call = make_call(app, token)
    run = Run.objects.filter(experiment__name=EXPERIMENT).order_by("run_uuid").first()
    big = BIG_MODEL if RegisteredModel.objects.filter(name=BIG_MODEL).exists() else None
    ops = endpoints(call, model="model-0001", big=big, run_id=run.run_uuid, experiment_id=str(run.experiment_id))
    print(f"{'endpoint':42} {'CPU ms/req':>10} {'wall ms':>8} {'queries':>7}")
    for name, op in ops.items():
        if (args.only and args.only not in name) or (name.startswith("W ") and not args.writes):
            continue
        for _ in range(10):
            op()
        queries = []
        with connection.execute_wrapper(lambda execute, sql, params, many, context: (queries.append(sql), execute(sql, params, many, context))[1]):
            op()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for _ in range(args.n):
            op()
        cpu = (time.process_time() - cpu0) / args.n * 1000
        wall = (time.perf_counter() - wall0) / args.n * 1000
        print(f"{name:42} {cpu:10.2f} {wall:8.2f} {len(queries):7d}", flush=True)
        if name == args.profile:
            for sql in queries:
                print("   ", sql[:400])
            profiler = cProfile.Profile()
            profiler.enable()
            for _ in range(args.n):
                op()
            profiler.disable()
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)


if __name__ == "__main__":
    main()
