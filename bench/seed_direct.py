"""Bulk seeding straight through the ORM (bulk_create), for the large benchmark scales.

100k runs or a 100k-version model through REST takes hours; this writes the same rows the
services would (runs with 5 params, 5 metrics + their latest-metric rows, 2 tags; registered
models with a tag; versions READY with a tag, the newest in Production, the one before in
Staging, every tenth Archived) in batches. It is idempotent and incremental: it tops the
database up to the asked totals, so the growth steps (10 %, 50 %, 100 %) call it three times.

    DATABASE_URL=postgres://... python bench/seed_direct.py --runs 100000 --models 200 --versions 500 --big-model 100000

It is a bench helper, never used by the application; the rows are what the services write
(checked by bench/pages.py and bench/growth.py reading them back through the API).
"""

import argparse
import os
import random
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BATCH = 5000
EXPERIMENT = "bench-direct"
BIG_MODEL = "big-model"


def setup_django():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()


def _user():
    from django.contrib.auth import get_user_model

    User = get_user_model()
    user = User.objects.filter(is_superuser=True).order_by("pk").first()
    if user is None:
        user = User.objects.create_superuser("bench-admin", "bench@localhost", "bench-password")
    return user


def seed_runs(total: int, *, user, rng: random.Random) -> int:
    """Top the bench experiment up to `total` runs. Returns how many were added."""
    from django.db import transaction

    from tracking import services as tracking_services
    from tracking.models import Experiment, LatestMetric, Metric, Param, Run, RunTag

    experiment = Experiment.objects.filter(name=EXPERIMENT).first()
    if experiment is None:
        experiment = tracking_services.create_experiment(name=EXPERIMENT, user=user)
    have = Run.objects.filter(experiment=experiment).count()
    base = experiment.artifact_location.rstrip("/")
    added = 0
    start_ms = int(time.time() * 1000) - total * 1000
    while have + added < total:
        n = min(BATCH, total - have - added)
        runs, params, metrics, latest, tags = [], [], [], [], []
        for j in range(n):
            i = have + added + j
            rid = uuid.uuid4().hex
            ts = start_ms + i * 1000
            run = Run(run_uuid=rid, experiment=experiment, name=f"r{i}", user_id=user.username, owner=user,
                      status=Run.FINISHED, start_time=ts, end_time=ts + 500, artifact_uri=f"{base}/{rid}/artifacts")
            runs.append(run)
            params += [Param(run=run, key=f"p{k}", value=str(rng.random())) for k in range(5)]
            for k in range(5):
                value = rng.random()
                metrics.append(Metric(run=run, key=f"m{k}", value=value, timestamp=ts, step=0))
                latest.append(LatestMetric(run=run, key=f"m{k}", value=value, timestamp=ts, step=0))
            tags += [RunTag(run=run, key="mlflow.runName", value=f"r{i}"), RunTag(run=run, key="team", value="bench")]
        with transaction.atomic():
            Run.objects.bulk_create(runs)
            Param.objects.bulk_create(params)
            Metric.objects.bulk_create(metrics)
            LatestMetric.objects.bulk_create(latest)
            RunTag.objects.bulk_create(tags)
        added += n
    return added


def _version_rows(model, first: int, last: int, *, user, run_ids: list[str], rng: random.Random):
    from registry.models import STAGE_ARCHIVED, STAGE_NONE, ModelVersion

    ts = int(time.time() * 1000)
    rows = []
    for number in range(first, last + 1):
        rid = rng.choice(run_ids) if run_ids else None
        rows.append(ModelVersion(
            registered_model=model, version=number, current_stage=STAGE_ARCHIVED if number % 10 == 0 else STAGE_NONE,
            status=ModelVersion.READY, source=f"mlflow-artifacts:/bench/{rid}/artifacts/model", run_id=rid,
            user_id=user.username, creator=user, creation_timestamp=ts + number, last_updated_timestamp=ts + number,
            storage_path=f"registry/{model.pk}/{number}",
        ))
    return rows


def seed_model(name: str, versions: int, *, user, run_ids: list[str], rng: random.Random) -> int:
    """Create (or top up) one registered model to `versions` versions; returns versions added."""
    from django.db import transaction

    from registry.models import (
        STAGE_NONE,
        STAGE_PRODUCTION,
        STAGE_STAGING,
        ModelVersion,
        ModelVersionTag,
        RegisteredModel,
        RegisteredModelAlias,
        RegisteredModelTag,
    )

    with transaction.atomic():
        model, created = RegisteredModel.objects.get_or_create(name=name, defaults={"owner": user})
        if created:
            RegisteredModelTag.objects.create(model=model, key="team", value="bench")
        have = model.last_version
        if have >= versions:
            return 0
        # The old Production/Staging versions go back to None; the new newest two take the stages.
        ModelVersion.objects.filter(registered_model=model, current_stage__in=[STAGE_PRODUCTION, STAGE_STAGING]).update(current_stage=STAGE_NONE)
        number = have
        while number < versions:
            last = min(versions, number + BATCH)
            rows = ModelVersion.objects.bulk_create(_version_rows(model, number + 1, last, user=user, run_ids=run_ids, rng=rng))
            ModelVersionTag.objects.bulk_create([ModelVersionTag(version=mv, key="validated", value="true") for mv in rows])
            number = last
        ModelVersion.objects.filter(registered_model=model, version=versions).update(current_stage=STAGE_PRODUCTION)
        if versions > 1:
            ModelVersion.objects.filter(registered_model=model, version=versions - 1).update(current_stage=STAGE_STAGING)
        model.last_version = versions
        model.last_updated_timestamp = int(time.time() * 1000)
        model.save(update_fields=["last_version", "last_updated_timestamp"])
        champion = ModelVersion.objects.get(registered_model=model, version=1)
        RegisteredModelAlias.objects.update_or_create(model=model, alias="champion", defaults={"version": champion})
    return versions - have


def seed(*, runs: int, models: int, versions: int, big_model: int = 0, seed_value: int = 7) -> dict:
    from tracking.models import Run

    rng = random.Random(seed_value)
    user = _user()
    started = time.perf_counter()
    added_runs = seed_runs(runs, user=user, rng=rng)
    run_ids = list(Run.objects.filter(experiment__name=EXPERIMENT).values_list("run_uuid", flat=True)[:200])
    added_versions = 0
    for m in range(models):
        added_versions += seed_model(f"model-{m:04d}", versions, user=user, run_ids=run_ids, rng=rng)
    if big_model:
        added_versions += seed_model(BIG_MODEL, big_model, user=user, run_ids=run_ids, rng=rng)
    return {"seconds": round(time.perf_counter() - started, 1), "runs_added": added_runs, "versions_added": added_versions}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--models", type=int, default=50)
    parser.add_argument("--versions", type=int, default=20)
    parser.add_argument("--big-model", type=int, default=0, help="versions of the one very large model (0: none)")
    args = parser.parse_args(argv)
    setup_django()
    print(seed(runs=args.runs, models=args.models, versions=args.versions, big_model=args.big_model))


if __name__ == "__main__":
    main()
