"""Server time of the tracking pages: the runs table of a 2,000-run experiment, a run page with
five 10,000-point metric histories, and the compare page of five runs (one of them that run).

Same method as bench/pages.py (its `measure`: in-process Django test client, median/p90 of `-n`
renders after a warm-up, SQL query count). Seeds what it needs (idempotent):

    DATABASE_URL=postgres://... python bench/tracking_pages.py [-n 30]
"""

import argparse
import math
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
HISTORY_RUN = "bench-long-history"
HISTORY_KEYS = 5
HISTORY_POINTS = 10_000


def _history_run(user):
    from tracking.models import Experiment, LatestMetric, Metric, Run

    from bench.seed_direct import EXPERIMENT

    run = Run.objects.filter(name=HISTORY_RUN).first()
    if run is not None:
        return run
    experiment = Experiment.objects.get(name=EXPERIMENT)
    run = Run.objects.create(run_uuid="f" * 32, experiment=experiment, name=HISTORY_RUN, user_id=user.username, owner=user,
                             status=Run.FINISHED, start_time=1_700_000_000_000, end_time=1_700_000_600_000,
                             artifact_uri=f"{experiment.artifact_location.rstrip('/')}/{'f' * 32}/artifacts")
    rows = []
    for k in range(HISTORY_KEYS):
        values = [math.exp(-s / 3000) + 0.05 * math.sin(s / (20 + k)) for s in range(HISTORY_POINTS)]
        rows += [Metric(run=run, key=f"loss{k}", value=v, timestamp=1_700_000_000_000 + s * 60, step=s) for s, v in enumerate(values)]
        LatestMetric.objects.create(run=run, key=f"loss{k}", value=values[-1], timestamp=1_700_000_000_000 + (HISTORY_POINTS - 1) * 60,
                                    step=HISTORY_POINTS - 1)
    Metric.objects.bulk_create(rows, batch_size=5000)
    return run


def pages(*, n: int) -> dict:
    from django.test import Client
    from django.urls import reverse

    from bench.pages import measure
    from bench.seed_direct import _user, seed_runs
    from tracking.models import Run

    user = _user()
    seed_runs(2000, user=user, rng=random.Random(7))
    long = _history_run(user)
    others = list(Run.objects.filter(experiment=long.experiment).exclude(pk=long.pk).order_by("run_uuid").values_list("run_uuid", flat=True)[:4])
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(user)
    compare = reverse("tracking:run_compare") + "?" + "&".join(f"runs={rid}" for rid in [long.run_uuid, *others]) + "&metric=loss0"
    targets = {
        "experiment page (2,000 runs)": reverse("tracking:experiment_detail", args=[long.experiment_id]),
        "run page (5 x 10k points)": reverse("tracking:run_detail", args=[long.run_uuid]),
        "compare page (5 runs)": compare,
    }
    return {label: measure(client, url, n) for label, url in targets.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=30)
    n = parser.parse_args(argv).n
    from bench.seed_direct import setup_django

    setup_django()
    rows = [f"{label:30} {r['median_ms']:9.1f} {r['p90_ms']:8.1f} {r['queries']:7d} {r['bytes'] / 1024:6.0f}" for label, r in pages(n=n).items()]
    print("\n".join([f"{'page':30} {'median ms':>9} {'p90 ms':>8} {'queries':>7} {'KB':>6}", *rows]))


if __name__ == "__main__":
    main()
