"""Bulk seeding of the real MLflow server's PostgreSQL schema, the same data as bench/seed_direct.py.

Seeding MLflow through its REST API takes about an hour for 100k runs, so this writes the rows its
SQLAlchemy store would write, with COPY (psycopg 3), into the schema the MLflow 3.18 server created
on its first start (its alembic migrations; start the server once against the empty database before
seeding). Same shapes as seed_direct.py: experiment "bench-direct"; runs r<i> FINISHED and active
with 5 params, 5 metrics at step 0 (and the latest_metrics rows that match them) and the tags
mlflow.runName and team; registered models model-NNNN (and "big-model") with the tag team=bench;
versions READY with the tag validated=true, every tenth Archived, the newest in Production, the one
before in Staging; the alias champion on version 1. Column values follow what MLflow 3.18 itself
wrote for the same calls through REST (empty strings and NULLs included), so every read of the
growth mix answers as it would for data logged through the API.

Idempotent and incremental like seed_direct.py: it tops the database up to the asked totals.

    .venv/bin/python bench/seed_mlflow_direct.py --db postgres://postgres@127.0.0.1:5432/bench_growth_mlflow \\
        --runs 100000 --models 200 --versions 500 --big-model 100000

A bench helper, never used by the application.
"""

import argparse
import random
import sys
import time
import uuid
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.seed_direct import BATCH, BIG_MODEL, EXPERIMENT

WORKSPACE = "default"  # MLflow 3.18's tables carry a workspace; single-tenant servers use "default"
USER = "admin"  # the user_id Stagegate's seed writes (the bootstrap superuser)


def _experiment(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT experiment_id FROM experiments WHERE workspace = %s AND name = %s", (WORKSPACE, EXPERIMENT)).fetchone()
    if row:
        return row[0]
    now = int(time.time() * 1000)
    with conn.transaction():
        experiment_id = conn.execute(
            "INSERT INTO experiments (name, lifecycle_stage, creation_time, last_update_time, workspace) "
            "VALUES (%s, 'active', %s, %s, %s) RETURNING experiment_id", (EXPERIMENT, now, now, WORKSPACE)).fetchone()[0]
        # What the server's --serve-artifacts default artifact root gives a new experiment.
        conn.execute("UPDATE experiments SET artifact_location = %s WHERE experiment_id = %s", (f"mlflow-artifacts:/{experiment_id}", experiment_id))
    return experiment_id


def seed_runs(conn: psycopg.Connection, total: int, *, experiment_id: int, rng: random.Random) -> int:
    """Top the bench experiment up to `total` runs, BATCH runs per transaction. Returns how many were added."""
    have = conn.execute("SELECT count(*) FROM runs WHERE experiment_id = %s", (experiment_id,)).fetchone()[0]
    added = 0
    start_ms = int(time.time() * 1000) - total * 1000
    while have + added < total:
        n = min(BATCH, total - have - added)
        runs, params, metrics, tags = [], [], [], []
        for j in range(n):
            i = have + added + j
            rid = uuid.uuid4().hex
            ts = start_ms + i * 1000
            runs.append((rid, f"r{i}", "UNKNOWN", "", "", USER, "FINISHED", ts, ts + 500, "", "active",
                         f"mlflow-artifacts:/{experiment_id}/{rid}/artifacts", experiment_id))
            params += [(f"p{k}", str(rng.random()), rid) for k in range(5)]
            metrics += [(f"m{k}", rng.random(), ts, rid, 0, False) for k in range(5)]
            tags += [("mlflow.runName", f"r{i}", rid), ("team", "bench", rid)]
        with conn.transaction(), conn.cursor() as cursor:
            _copy(cursor, "runs (run_uuid, name, source_type, source_name, entry_point_name, user_id, status, start_time, end_time, "
                          "source_version, lifecycle_stage, artifact_uri, experiment_id)", runs)
            _copy(cursor, "params (key, value, run_uuid)", params)
            _copy(cursor, "metrics (key, value, timestamp, run_uuid, step, is_nan)", metrics)
            # One metric point per key, so the latest value is that point (MLflow's rule: max step, then timestamp, then value).
            _copy(cursor, "latest_metrics (key, value, timestamp, run_uuid, step, is_nan)", metrics)
            _copy(cursor, "tags (key, value, run_uuid)", tags)
        added += n
    return added


def _copy(cursor: psycopg.Cursor, target: str, rows: list[tuple]):
    with cursor.copy(f"COPY {target} FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def seed_model(conn: psycopg.Connection, name: str, versions: int, *, experiment_id: int, run_ids: list[str], rng: random.Random) -> int:
    """Create (or top up) one registered model to `versions` versions in one transaction; returns versions added."""
    now = int(time.time() * 1000)
    with conn.transaction(), conn.cursor() as cursor:
        created = cursor.execute(
            "INSERT INTO registered_models (name, creation_time, last_updated_time, description, workspace) VALUES (%s, %s, %s, '', %s) "
            "ON CONFLICT DO NOTHING RETURNING name", (name, now, now, WORKSPACE)).fetchone()
        if created:
            cursor.execute("INSERT INTO registered_model_tags (key, value, name, workspace) VALUES ('team', 'bench', %s, %s)", (name, WORKSPACE))
        cursor.execute("SELECT name FROM registered_models WHERE workspace = %s AND name = %s FOR UPDATE", (WORKSPACE, name))
        have = cursor.execute("SELECT coalesce(max(version), 0) FROM model_versions WHERE workspace = %s AND name = %s", (WORKSPACE, name)).fetchone()[0]
        if have >= versions:
            return 0
        # The old Production/Staging versions go back to None (a transition: it moves last_updated_time);
        # the new newest two take the stages.
        cursor.execute("UPDATE model_versions SET current_stage = 'None', last_updated_time = greatest(creation_time, %s) "
                       "WHERE workspace = %s AND name = %s AND current_stage IN ('Production', 'Staging')", (now, WORKSPACE, name))
        rows, tags = [], []
        for number in range(have + 1, versions + 1):
            rid = rng.choice(run_ids) if run_ids else None
            source = f"mlflow-artifacts:/{experiment_id}/{rid}/artifacts/model"
            # description and run_link '' and status_message NULL, as model-versions/create leaves them;
            # storage_location is the source for a run-artifact source.
            rows.append((name, number, now + number, now + number, "", USER, "Archived" if number % 10 == 0 else "None",
                         source, rid, "READY", "", source, WORKSPACE))
            tags.append(("validated", "true", name, number, WORKSPACE))
        _copy(cursor, "model_versions (name, version, creation_time, last_updated_time, description, user_id, current_stage, "
                      "source, run_id, status, run_link, storage_location, workspace)", rows)
        _copy(cursor, "model_version_tags (key, value, name, version, workspace)", tags)
        cursor.execute("UPDATE model_versions SET current_stage = 'Production', last_updated_time = %s "
                       "WHERE workspace = %s AND name = %s AND version = %s", (now + versions, WORKSPACE, name, versions))
        if versions > 1:
            cursor.execute("UPDATE model_versions SET current_stage = 'Staging', last_updated_time = %s "
                           "WHERE workspace = %s AND name = %s AND version = %s", (now + versions, WORKSPACE, name, versions - 1))
        # Like seed_direct.py, version n is stamped now + n ms; the model was last updated by its newest version.
        cursor.execute("UPDATE registered_models SET last_updated_time = %s WHERE workspace = %s AND name = %s",
                       (max(int(time.time() * 1000), now + versions), WORKSPACE, name))
        cursor.execute("INSERT INTO registered_model_aliases (alias, version, name, workspace) VALUES ('champion', 1, %s, %s) "
                       "ON CONFLICT (workspace, name, alias) DO UPDATE SET version = excluded.version", (name, WORKSPACE))
    return versions - have


def seed(dsn: str, *, runs: int, models: int, versions: int, big_model: int = 0, seed_value: int = 7) -> dict:
    """Top MLflow's database at `dsn` up to the totals; the same return value as seed_direct.seed."""
    rng = random.Random(seed_value)
    started = time.perf_counter()
    with psycopg.connect(dsn, autocommit=True) as conn:
        if conn.execute("SELECT to_regclass('model_versions')").fetchone()[0] is None:
            raise SystemExit(f"{dsn} has no MLflow schema: start the MLflow server against it once (it runs its migrations)")
        experiment_id = _experiment(conn)
        added_runs = seed_runs(conn, runs, experiment_id=experiment_id, rng=rng)
        run_ids = [r[0] for r in conn.execute("SELECT run_uuid FROM runs WHERE experiment_id = %s ORDER BY start_time LIMIT 200", (experiment_id,))]
        added_versions = 0
        for m in range(models):
            added_versions += seed_model(conn, f"model-{m:04d}", versions, experiment_id=experiment_id, run_ids=run_ids, rng=rng)
        if big_model:
            added_versions += seed_model(conn, BIG_MODEL, big_model, experiment_id=experiment_id, run_ids=run_ids, rng=rng)
    return {"seconds": round(time.perf_counter() - started, 1), "runs_added": added_runs, "versions_added": added_versions}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", required=True, help="PostgreSQL URL of the MLflow server's database")
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--models", type=int, default=50)
    parser.add_argument("--versions", type=int, default=20)
    parser.add_argument("--big-model", type=int, default=0, help="versions of the one very large model (0: none)")
    args = parser.parse_args(argv)
    print(seed(args.db, runs=args.runs, models=args.models, versions=args.versions, big_model=args.big_model))


if __name__ == "__main__":
    main()
