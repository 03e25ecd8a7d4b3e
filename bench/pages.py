"""Server time of the registry pages: the registry home, a model page, a version page, and the
page of the one very large model (bench/seed_direct.py --big-model N).

In-process through the Django test client (all middleware, session auth, template rendering),
so the figure is server time only. Each page is rendered `-n` times after a warm-up; prints the
median and p90 in ms and the number of SQL queries (which must not grow with the model's size).

    DATABASE_URL=postgres://... python bench/seed_direct.py --runs 2000 --models 50 --versions 20 --big-model 100000
    DATABASE_URL=postgres://... python bench/pages.py [-n 30]
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def measure(client, url: str, n: int) -> dict:
    from django.db import connection

    for _ in range(3):
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
    queries = []

    def count(execute, sql, params, many, context):
        queries.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):
        client.get(url)
    times = []
    for _ in range(n):
        start = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200
    times.sort()
    return {"median_ms": statistics.median(times), "p90_ms": times[int(0.9 * (len(times) - 1))], "queries": len(queries),
            "bytes": len(response.content)}


def pages(*, n: int) -> dict:
    from django.test import Client
    from django.urls import reverse

    from registry.models import RegisteredModel

    from bench.seed_direct import BIG_MODEL, _user

    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(_user())
    targets = {"registry home": (reverse("registry:model_list"), RegisteredModel.objects.count())}
    model = RegisteredModel.objects.filter(name__startswith="model-").order_by("name").first()
    big = RegisteredModel.objects.filter(name=BIG_MODEL).first()
    for label, m in (("", model), (f" ({BIG_MODEL})", big)):
        if m is not None:
            targets["model page" + label] = (reverse("registry:model_detail", args=[m.name]), m.last_version)
            targets["version page" + label] = (reverse("registry:model_version_detail", args=[m.name, m.last_version]), m.last_version)
    return {label: {**measure(client, url, n), "size": size} for label, (url, size) in targets.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=30)
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    print(f"{'page':28} {'models/versions':>15} {'median ms':>9} {'p90 ms':>8} {'queries':>7} {'KB':>6}")
    for label, r in pages(n=args.n).items():
        print(f"{label:28} {r['size']:15d} {r['median_ms']:9.1f} {r['p90_ms']:8.1f} {r['queries']:7d} {r['bytes'] / 1024:6.0f}")


if __name__ == "__main__":
    main()
