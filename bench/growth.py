"""Growth: do Stagegate's reads, pages and memory stay flat as the registry grows?

    .venv/bin/python bench/growth.py [--runs 100000 --models 200 --versions 500 --big-model 100000]
                                     [--steps 10,50,100] [--threads 8] [--seconds 15] [--workers 2]
                                     [--mlflow [--timeout 10]] [--db bench_growth] [--var-dir DIR]

Seeds a fresh PostgreSQL database (bench_growth) directly through the ORM (bench/seed_direct.py:
100k runs through REST would take hours) in growth steps, runs ANALYZE, and at each step
1. drives the read mix of bench/compare.py plus `model-versions/search` on the one very large
   model, over HTTP against gunicorn (same settings as compare.py), every answer checked;
2. renders the registry pages in-process (bench/pages.py) for their server time and query count;
3. samples the RSS of all gunicorn processes.
Then prints each endpoint's p50/p99 per step and the 100 %/10 % latency ratio.

With --mlflow, the real MLflow server (3.18, installed by bench/compare.py) runs beside it on its own
database (<db>_mlflow), seeded at each step with the same data by bench/seed_mlflow_direct.py (COPY
into the schema its migrations created), ANALYZEd, started once with the same worker count and driven
with the same read mix, client code, threads and seconds, in turn with Stagegate. Each step then prints
both side by side (ops/s, p50, p99, the Stagegate/MLflow throughput ratio, errors and timeouts; both
clients give up on a request after --timeout seconds and count it as an error) and MLflow's RSS.
"""

import argparse
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import urllib3

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.compare import (  # noqa: E402
    PG,
    WORK,
    Client,
    Server,
    World,
    drive,
    ensure_mlflow_server,
    free_port,
    measured,
    percentile,
    read_ops,
    recreate_database,
    report_mix,
    sh,
)

DB = "bench_growth"


def world_from_db(experiment_name: str, big_model: str) -> World:
    from registry.models import RegisteredModel
    from tracking.models import Experiment, Run

    world = World()
    experiment = Experiment.objects.get(name=experiment_name)
    world.experiment_id = str(experiment.pk)
    # A sample of runs is enough for metric-history reads; the search sees all of them.
    world.runs = list(Run.objects.filter(experiment=experiment).order_by("?").values_list("run_uuid", flat=True)[:5000])
    world.models = dict(RegisteredModel.objects.filter(name__startswith="model-").values_list("name", "last_version"))
    world.big = RegisteredModel.objects.filter(name=big_model).values_list("last_version", flat=True).first()
    return world


def world_from_mlflow_db(dsn: str, experiment_name: str, big_model: str) -> World:
    """The same World as world_from_db, read from MLflow's tables."""
    import psycopg

    world = World()
    with psycopg.connect(dsn) as conn:
        experiment_id = conn.execute("SELECT experiment_id FROM experiments WHERE workspace = 'default' AND name = %s", (experiment_name,)).fetchone()[0]
        world.experiment_id = str(experiment_id)
        world.runs = [r[0] for r in conn.execute("SELECT run_uuid FROM runs WHERE experiment_id = %s ORDER BY random() LIMIT 5000", (experiment_id,))]
        world.models = dict(conn.execute("SELECT name, max(version) FROM model_versions WHERE workspace = 'default' AND name LIKE %s GROUP BY name", ("model-%",)).fetchall())
        world.big = conn.execute("SELECT max(version) FROM model_versions WHERE workspace = 'default' AND name = %s", (big_model,)).fetchone()[0]
    return world


class TimeoutClient(Client):
    """compare.py's client with a read timeout of its own (compare.py's is 120 s)."""

    def __init__(self, name: str, base: str, headers: dict, *, timeout: float):
        super().__init__(name, base, headers)
        self.timeout = timeout

    @property
    def pool(self) -> urllib3.HTTPConnectionPool:
        pool = self._pools.get(os.getpid())
        if pool is None:
            host, port = self.base.removeprefix("http://").split(":")
            pool = self._pools[os.getpid()] = urllib3.HTTPConnectionPool(
                host, int(port), maxsize=64, block=True, retries=False, timeout=urllib3.Timeout(connect=10, read=self.timeout))
        return pool


def counting_timeouts(ops: dict, timeouts: dict) -> dict:
    """Wrap each op so that a timed-out request is also counted in `timeouts` (it stays an error for drive())."""
    import threading

    lock = threading.Lock()

    def wrap(op, fn):
        def go():
            try:
                fn()
            except urllib3.exceptions.TimeoutError:
                with lock:
                    timeouts[op] = timeouts.get(op, 0) + 1
                raise
        return go

    return {op: wrap(op, fn) for op, fn in ops.items()}


def growth_ops(client: Client, world: World, rng: random.Random, big_model: str) -> dict:
    ops = read_ops(client, world, rng)

    def big_search():
        found = client.call("GET", "model-versions/search", params={"filter": f"name='{big_model}'", "max_results": 50}).get("model_versions", [])
        assert len(found) == 50 and all(v["name"] == big_model for v in found)

    def big_latest():
        versions = client.call("POST", "registered-models/get-latest-versions", {"name": big_model})["model_versions"]
        assert {v["current_stage"]: v["version"] for v in versions}["Production"] == str(world.big)

    if world.big:
        ops["model-versions/search (100k-version model)"] = big_search
        ops["get-latest-versions (100k-version model)"] = big_latest
    return ops


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=100000)
    parser.add_argument("--models", type=int, default=200)
    parser.add_argument("--versions", type=int, default=500)
    parser.add_argument("--big-model", type=int, default=100000)
    parser.add_argument("--steps", default="10,50,100")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--pages", type=int, default=20, help="renders per page")
    parser.add_argument("--mlflow", action="store_true", help="run the real MLflow server beside it, side by side")
    parser.add_argument("--timeout", type=float, default=10, help="with --mlflow: seconds before a client gives up on a request")
    parser.add_argument("--db", default=DB, help="Stagegate's database (recreated); MLflow's is <db>_mlflow")
    parser.add_argument("--var-dir", default=str(WORK / "growth-var"), help="Stagegate's STAGEGATE_VAR_DIR (MLflow's artifacts go under it)")
    args = parser.parse_args()

    WORK.mkdir(parents=True, exist_ok=True)
    db, mlflow_db = args.db, f"{args.db}_mlflow"
    log_name = db.removeprefix("bench_")  # growth.log for the default database, as before
    recreate_database(db)
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "CELERY_", "STAGEGATE_", "MLFLOW_"))}
    env = {**base_env, "DATABASE_URL": f"{PG}/{db}", "STAGEGATE_VAR_DIR": args.var_dir,
           "STAGEGATE_ADMIN_PASSWORD": "bench-password", "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost"}
    python = str(ROOT / ".venv" / "bin" / "python")
    sh(python, "manage.py", "migrate", "--noinput", env=env)
    sh(python, "manage.py", "bootstrap", env=env)
    token = sh(python, "manage.py", "create_api_token", "admin", "--name", "growth", env=env).stdout.strip()
    os.environ.update({"DATABASE_URL": env["DATABASE_URL"], "STAGEGATE_VAR_DIR": env["STAGEGATE_VAR_DIR"], "DJANGO_ALLOWED_HOSTS": env["DJANGO_ALLOWED_HOSTS"]})
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.db import connection

    from bench import pages as page_bench
    from bench import seed_direct, seed_mlflow_direct

    if args.mlflow:
        mlflow_python = ensure_mlflow_server()
        recreate_database(mlflow_db)

    port = free_port()
    server = Server(log_name, [str(ROOT / ".venv" / "bin" / "gunicorn"), "config.wsgi", "--bind", f"127.0.0.1:{port}",
                               "--workers", str(args.workers), "--threads", "4", "--worker-class", "gthread", "--keep-alive", "30",
                               "--limit-request-line", "0", "--limit-request-field_size", "16384"], env, port, "/health")
    if args.mlflow:  # the same timeout for both
        client = TimeoutClient("stagegate", server.url, {"Authorization": f"Bearer {token}"}, timeout=args.timeout)
    else:
        client = Client("stagegate", server.url, {"Authorization": f"Bearer {token}"})
    print(f"\n# Stagegate growth — {time.strftime('%Y-%m-%d %H:%M')} — {os.cpu_count()} cores — {args.workers} workers, "
          f"{args.threads} client threads, {args.seconds:.0f} s per step; 100 % = {args.runs} runs, {args.models} models x "
          f"{args.versions} versions, one model with {args.big_model} versions", flush=True)
    results, mlflow_results = {}, {}
    mlflow = None
    try:
        if args.mlflow:
            # Started on the empty database, MLflow runs its migrations: the schema the seeder writes into.
            mlflow = Server(f"{log_name}-mlflow", [str(mlflow_python.parent / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(mlflow_port := free_port()),
                                                   "--workers", str(args.workers), "--backend-store-uri", f"postgresql+psycopg://postgres@127.0.0.1:5432/{mlflow_db}",
                                                   "--serve-artifacts", "--artifacts-destination", str(Path(args.var_dir) / "mlflow-artifacts")],
                            {**base_env}, mlflow_port, "/health")
            mlflow_client = TimeoutClient("mlflow", mlflow.url, {}, timeout=args.timeout)
            print(f"# side by side with the real MLflow server ({args.workers} uvicorn workers, database {mlflow_db}, seeded by "
                  f"bench/seed_mlflow_direct.py); the mixes run in turn; client timeout {args.timeout:g} s (a timeout is an error)", flush=True)
        for step in [int(s) for s in args.steps.split(",")]:
            seeded = seed_direct.seed(runs=args.runs * step // 100, models=args.models * step // 100 or 1,
                                      versions=args.versions, big_model=args.big_model * step // 100)
            if args.mlflow:
                mlflow_seeded = seed_mlflow_direct.seed(f"{PG}/{mlflow_db}", runs=args.runs * step // 100, models=args.models * step // 100 or 1,
                                                        versions=args.versions, big_model=args.big_model * step // 100)
                sh("psql", "-h", "127.0.0.1", "-U", "postgres", "-d", mlflow_db, "-qc", "ANALYZE")
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE")
            world = world_from_db(seed_direct.EXPERIMENT, seed_direct.BIG_MODEL)
            print(f"\n## step {step} %: seeded {seeded}; {len(world.models)} models, big model {world.big} versions", flush=True)
            if args.mlflow:
                mlflow_world = world_from_mlflow_db(f"{PG}/{mlflow_db}", seed_direct.EXPERIMENT, seed_direct.BIG_MODEL)
                print(f"MLflow seeded {mlflow_seeded}; {len(mlflow_world.models)} models, big model {mlflow_world.big} versions", flush=True)
            server.peak_rss = 0
            if args.mlflow:
                timeouts = {"mlflow": {}, "stagegate": {}}
                side = {}
                server.settle()
                side["stagegate"] = measured(server, lambda: drive(counting_timeouts(growth_ops(client, world, random.Random(step), seed_direct.BIG_MODEL), timeouts["stagegate"]),
                                                                   threads=args.threads, seconds=args.seconds))
                rss = server.peak_rss
                mlflow.settle()
                mlflow.peak_rss = mlflow.peak_web_rss = 0
                # measured() waits until MLflow has finished the requests the client gave up on, so
                # they do not run into the page renders or the next step.
                side["mlflow"] = measured(mlflow, lambda: drive(counting_timeouts(growth_ops(mlflow_client, mlflow_world, random.Random(step), seed_direct.BIG_MODEL), timeouts["mlflow"]),
                                                                threads=args.threads, seconds=args.seconds))
                stats, elapsed = side["stagegate"][:2]
                mlflow_results[step] = (side["mlflow"], mlflow.peak_rss, mlflow.peak_web_rss)
            else:
                stats, elapsed = drive(growth_ops(client, world, random.Random(step), seed_direct.BIG_MODEL), threads=args.threads, seconds=args.seconds)
                rss = server.peak_rss
            rendered = page_bench.pages(n=args.pages)
            results[step] = (stats, elapsed, rss, rendered)
            if args.mlflow:
                report_mix("", side, timeouts=timeouts, width=46)
                print(f"errors: MLflow {dict(side['mlflow'][0].errors)}, Stagegate {dict(stats.errors)}")
                print(f"peak RSS: MLflow all processes {mlflow.peak_rss / 2**20:.0f} MB, web (without its huey job runners) "
                      f"{mlflow.peak_web_rss / 2**20:.0f} MB; Stagegate all gunicorn processes {rss / 2**20:.0f} MB")
            else:
                print(f"{'endpoint':46} {'ops/s':>7} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6}")
                for op in sorted(stats.latencies):
                    lat = stats.latencies[op]
                    print(f"{op:46} {len(lat) / elapsed:7.1f} {percentile(lat, 50) * 1000:8.1f} {percentile(lat, 99) * 1000:8.1f} {stats.errors.get(op, 0):6d}")
                print(f"errors: {dict(stats.errors)}; peak RSS of all gunicorn processes: {rss / 2**20:.0f} MB")
            for label, r in rendered.items():
                print(f"page {label:28} ({r['size']:6d}) median {r['median_ms']:7.1f} ms  p90 {r['p90_ms']:7.1f} ms  {r['queries']} queries")
        steps = sorted(results)
        first, last = steps[0], steps[-1]
        print(f"\n## {last} % / {first} % (p50 and p99 latency, pages median; <= 1.5 is flat)")
        for op in sorted(results[last][0].latencies):
            a, b = results[first][0].latencies.get(op), results[last][0].latencies.get(op)
            if a and b:
                print(f"{op:46} p50 x{percentile(b, 50) / percentile(a, 50):5.2f}   p99 x{percentile(b, 99) / percentile(a, 99):5.2f}")
        for label, r in results[last][3].items():
            if label in results[first][3]:
                print(f"page {label:41} median x{r['median_ms'] / results[first][3][label]['median_ms']:5.2f}  "
                      f"queries {results[first][3][label]['queries']} -> {r['queries']}")
        print("peak RSS per step (MB): " + ", ".join(f"{s} %: {results[s][2] / 2**20:.0f}" for s in steps))
        if args.mlflow:
            print(f"\n## MLflow {last} % / {first} % (p50 and p99 latency of the answers that came back)")
            a_stats, b_stats = mlflow_results[first][0][0], mlflow_results[last][0][0]
            for op in sorted(set(a_stats.latencies) | set(b_stats.latencies) | set(a_stats.errors) | set(b_stats.errors)):
                a, b = a_stats.latencies.get(op), b_stats.latencies.get(op)
                if a and b:
                    print(f"{op:46} p50 x{percentile(b, 50) / percentile(a, 50):5.2f}   p99 x{percentile(b, 99) / percentile(a, 99):5.2f}")
                else:
                    print(f"{op:46} no answer at {first if not a else last} % (errors {a_stats.errors.get(op, 0)} -> {b_stats.errors.get(op, 0)})")
            print("MLflow peak RSS per step (MB, all / web): " + ", ".join(f"{s} %: {mlflow_results[s][1] / 2**20:.0f} / {mlflow_results[s][2] / 2**20:.0f}" for s in steps))
    finally:
        server.stop()
        if mlflow:
            mlflow.stop()


if __name__ == "__main__":
    main()
