"""What the audit chain costs a registry write, and what serialising appends on the chain head costs
under concurrency. Run against a scratch database (it creates models named bench-audit-*):

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/sg_bench .venv/bin/python manage.py migrate
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/sg_bench .venv/bin/python bench/audit_append.py

Prints the mean time of one tag write with and without the in-transaction audit hook, and the
throughput of N threads writing to N different models at once (the head lock serialises them
from their first event to commit).
"""

import os
import sys
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection  # noqa: E402

from monitoring import hooks  # noqa: E402
from registry import events  # noqa: E402
from registry import services as registry  # noqa: E402

N = int(os.environ.get("BENCH_N", "300"))
THREADS = int(os.environ.get("BENCH_THREADS", "4"))


def user():
    return get_user_model().objects.get_or_create(username="bench-audit", defaults={"is_superuser": True})[0]


def writes(name, n, u):
    for i in range(n):
        registry.set_registered_model_tag(name=name, key=f"k{i % 10}", value=str(i), user=u)


def timed(label, fn):
    started = time.perf_counter()
    fn()
    elapsed = time.perf_counter() - started
    print(f"{label}: {elapsed / N * 1000:.2f} ms per write ({N} writes)")
    return elapsed


def concurrent(names, u, label):
    def worker(name):
        writes(name, N // THREADS, u)
        connection.close()

    threads = [threading.Thread(target=worker, args=(name,)) for name in names]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    total = (N // THREADS) * THREADS
    print(f"{label}: {THREADS} concurrent writers on different models: {total / elapsed:.0f} writes/s")


def set_audit(on: bool):
    events.RECORD_HOOKS[:] = [h for h in events.RECORD_HOOKS if h is not hooks.audit_event]
    if on:
        hooks.install()


def main():
    # Dispatch after commit is not what we measure.
    events.NOTIFICATION_HOOKS.clear()
    u = user()
    tag = uuid.uuid4().hex[:6]
    names = [f"bench-audit-{tag}-{i}" for i in range(2 + 2 * THREADS)]
    for name in names:
        registry.create_registered_model(name=name, user=u)
    set_audit(False)
    plain = timed("without audit chain", lambda: writes(names[0], N, u))
    set_audit(True)
    audited = timed("with audit chain", lambda: writes(names[1], N, u))
    print(f"audit overhead: {(audited - plain) / N * 1000:.2f} ms per write")
    set_audit(False)
    concurrent(names[2:2 + THREADS], u, "without audit chain")
    set_audit(True)
    concurrent(names[2 + THREADS:], u, "with audit chain")
    events.NOTIFICATION_HOOKS.clear()
    from monitoring import audit

    print(audit.verify())


if __name__ == "__main__":
    main()
