"""Growth: do Stagegate's reads, pages and memory stay flat as the registry grows?

    .venv/bin/python bench/growth.py [--runs 100000 --models 200 --versions 500 --big-model 100000]
                                     [--steps 10,50,100] [--threads 8] [--seconds 15] [--workers 2]

Seeds a fresh PostgreSQL database (bench_growth) directly through the ORM (bench/seed_direct.py:
100k runs through REST would take hours) in growth steps, runs ANALYZE, and at each step
1. drives the read mix of bench/compare.py plus `model-versions/search` on the one very large
   model, over HTTP against gunicorn (same settings as compare.py), every answer checked;
2. renders the registry pages in-process (bench/pages.py) for their server time and query count;
3. samples the RSS of all gunicorn processes.
Then prints each endpoint's p50/p99 per step and the 100 %/10 % latency ratio.

MLflow is not part of this run: seeding its tables with 100k runs / 200k versions would need
SQL bulk inserts into its schema; its growth behaviour is described in bench/RESULTS.md.
"""

import argparse
import os
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.compare import PG, WORK, Client, Server, World, drive, free_port, percentile, read_ops, recreate_database, sh  # noqa: E402

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
    args = parser.parse_args()

    WORK.mkdir(parents=True, exist_ok=True)
    recreate_database(DB)
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "CELERY_", "STAGEGATE_", "MLFLOW_"))}
    env = {**base_env, "DATABASE_URL": f"{PG}/{DB}", "STAGEGATE_VAR_DIR": str(WORK / "growth-var"),
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
    from bench import seed_direct

    port = free_port()
    server = Server("growth", [str(ROOT / ".venv" / "bin" / "gunicorn"), "config.wsgi", "--bind", f"127.0.0.1:{port}",
                               "--workers", str(args.workers), "--threads", "4", "--worker-class", "gthread", "--keep-alive", "30"], env, port, "/health")
    client = Client("stagegate", server.url, {"Authorization": f"Bearer {token}"})
    print(f"\n# Stagegate growth — {time.strftime('%Y-%m-%d %H:%M')} — {os.cpu_count()} cores — {args.workers} workers, "
          f"{args.threads} client threads, {args.seconds:.0f} s per step; 100 % = {args.runs} runs, {args.models} models x "
          f"{args.versions} versions, one model with {args.big_model} versions", flush=True)
    results = {}
    try:
        for step in [int(s) for s in args.steps.split(",")]:
            seeded = seed_direct.seed(runs=args.runs * step // 100, models=args.models * step // 100 or 1,
                                      versions=args.versions, big_model=args.big_model * step // 100)
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE")
            world = world_from_db(seed_direct.EXPERIMENT, seed_direct.BIG_MODEL)
            print(f"\n## step {step} %: seeded {seeded}; {len(world.models)} models, big model {world.big} versions", flush=True)
            server.peak_rss = 0
            stats, elapsed = drive(growth_ops(client, world, random.Random(step), seed_direct.BIG_MODEL), threads=args.threads, seconds=args.seconds)
            rss = server.peak_rss
            rendered = page_bench.pages(n=args.pages)
            results[step] = (stats, elapsed, rss, rendered)
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
    finally:
        server.stop()


if __name__ == "__main__":
    main()
