"""The outbox dispatch: batched claims, batched hooks, and the coalesced enqueue."""

import uuid
from datetime import timedelta

import pytest
import redis
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from monitoring import services as monitoring
from monitoring.models import Notification, Watch, Webhook
from registry import events, services, tasks
from registry.models import Event
from tests.celery_routing import restore_producer, route_producer
from tests.conftest import missing, require_postgresql, run_together
from tests.registry.conftest import _redis_url


def _tag_events(owner, mv, n):
    for i in range(n):
        services.set_model_version_tag(name="m", version=mv.version, key=f"k{i}", value="v", user=owner)
    return list(Event.objects.filter(dispatched_at__isnull=True).order_by("id"))


@pytest.mark.parametrize("n", [2, 25])
def test_a_batch_costs_the_same_queries_however_many_events(owner, data_scientist, manual_on_commit, make_version, n):
    mv = make_version("m")
    tasks.dispatch_events()
    Watch.objects.create(user=data_scientist, model=mv.registered_model)
    # Active and registry-wide, but not for tag events: read once, matches nothing.
    Webhook.objects.create(flavor=Webhook.MLFLOW, name="other", url="https://example.com/h", events=["registered_model.created"])
    pending = _tag_events(owner, mv, n)
    with CaptureQueriesContext(connection) as queries:
        assert tasks.dispatch_events() == n
    # claim, load (with actors), webhooks, watchers, the digest lines, mark dispatched
    assert len(queries) == 6, [q["sql"][:80] for q in queries]
    assert not Event.objects.filter(dispatched_at__isnull=True).exists()
    assert Notification.objects.filter(user=data_scientist, event__in=pending).count() == n


def test_a_hook_failing_on_one_event_holds_back_only_that_event(owner, manual_on_commit, make_version):
    mv = make_version("m")
    tasks.dispatch_events()
    bad, *good = _tag_events(owner, mv, 3)
    seen = []

    def picky(batch):
        if any(event.pk == bad.pk for event in batch):
            raise RuntimeError("receiver rejects this one")
        seen.extend(event.pk for event in batch)

    events.register_hook(picky)
    try:
        assert tasks.dispatch_events() == 2
    finally:
        events.NOTIFICATION_HOOKS.remove(picky)
    assert seen == [event.pk for event in good]
    bad.refresh_from_db()
    assert bad.dispatched_at is None and bad.claimed_until > timezone.now() and bad.attempts == 1
    assert Event.objects.filter(pk__in=[e.pk for e in good], dispatched_at__isnull=False).count() == 2
    # Leased: no other worker takes it before the lease runs out; then the next run delivers it.
    assert tasks.claim() == []
    Event.objects.filter(pk=bad.pk).update(claimed_until=timezone.now() - timedelta(seconds=1))
    assert tasks.dispatch_events() == 1
    bad.refresh_from_db()
    assert bad.dispatched_at is not None and bad.attempts == 2


def test_batched_fan_out_matches_each_event_to_its_models_webhooks(owner, manual_on_commit, make_version, monkeypatch):
    monkeypatch.setattr(monitoring, "_enqueue_delivery", lambda *a, **k: None)
    a, b = make_version("a"), make_version("b")
    tasks.dispatch_events()
    only_a = Webhook.objects.create(flavor=Webhook.DATABRICKS, url="https://example.com/a", model=a.registered_model,
                                    model_name="a", events=["MODEL_VERSION_TAG_SET"])
    everywhere = Webhook.objects.create(flavor=Webhook.DATABRICKS, url="https://example.com/all", events=["MODEL_VERSION_TAG_SET"])
    services.set_model_version_tag(name="a", version=a.version, key="k", value="1", user=owner)
    services.set_model_version_tag(name="b", version=b.version, key="k", value="1", user=owner)
    assert tasks.dispatch_events() == 2
    assert sorted(d.model_name for d in only_a.deliveries.all()) == ["a"]
    assert sorted(d.model_name for d in everywhere.deliveries.all()) == ["a", "b"]


def test_a_claim_takes_no_more_than_its_limit_oldest_first(db):
    """The rows are picked once: PostgreSQL rescanning a locking `id IN (… LIMIT …)` had claimed past the limit."""
    Event.objects.bulk_create([Event(type="registered_model.created", model_name=f"m{i}") for i in range(7)])
    ids = list(Event.objects.order_by("id").values_list("id", flat=True))
    assert tasks.claim(limit=3) == ids[:3]
    assert tasks.claim(limit=3) == ids[3:6]
    assert tasks.claim(limit=3) == ids[6:]
    assert tasks.claim(limit=3) == []
    assert set(Event.objects.values_list("attempts", flat=True)) == {1}


@pytest.mark.django_db(transaction=True)
def test_concurrent_claims_never_take_an_event_twice(owner):
    require_postgresql()
    Event.objects.bulk_create([Event(type="registered_model.created", model_name=f"m{i}") for i in range(300)])
    taken = []

    def worker(i):
        while ids := tasks.claim(limit=20):
            taken.append(ids)

    assert run_together(worker, 4) == []
    flat = [pk for ids in taken for pk in ids]
    assert len(flat) == len(set(flat)) == 300
    assert set(Event.objects.values_list("attempts", flat=True)) == {1}


# --------------------------------------------------------------------------- coalesced enqueue (Redis)


@pytest.fixture
def flag_broker(monkeypatch, settings):
    """The producer on real Redis (not eager), with publishes recorded instead of sent; the flag
    is checked right after each commit (no publisher delay), so each step can be asserted."""
    from config.celery import app

    settings.STAGEGATE_PUBLISH_DELAY_MS = 0
    url = _redis_url()
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except redis.RedisError:
        missing(f"no Redis at {url} (the coalesced enqueue is tested against it)")
    previous = route_producer(app, broker_url=url, queue=f"sg-flag-{uuid.uuid4().hex}")
    published = []
    monkeypatch.setattr(tasks.dispatch_events, "delay", lambda *args: published.append(args))
    try:
        yield published
    finally:
        restore_producer(app, previous)


def _flag_up() -> bool:
    conf = tasks.dispatch_events.app.conf
    return bool(redis.Redis.from_url(_redis_url()).exists(events._flag_key(conf)))


def test_a_burst_of_commits_publishes_one_dispatch_and_strands_nothing(owner, flag_broker):
    published = flag_broker
    services.create_registered_model(name="m", user=owner)
    services.set_registered_model_tag(name="m", key="a", value="1", user=owner)
    services.set_registered_model_tag(name="m", key="b", value="1", user=owner)
    # Three commits, one run queued: the later writers saw it had not started yet.
    assert len(published) == 1 and _flag_up()
    [(key,)] = published
    assert tasks.dispatch_events(key) == 3  # the run takes the flag down, then claims all three
    assert not _flag_up()
    assert not Event.objects.filter(dispatched_at__isnull=True).exists()
    # The next commit publishes again.
    services.set_registered_model_tag(name="m", key="c", value="1", user=owner)
    assert len(published) == 2
    assert tasks.dispatch_events(published[1][0]) == 1


def test_a_commit_after_the_run_started_publishes_its_own(owner, flag_broker):
    published = flag_broker
    services.create_registered_model(name="m", user=owner)
    [(key,)] = published
    events.clear_flag(tasks.dispatch_events.app.conf, key)  # the run started (and may already have claimed)
    services.set_registered_model_tag(name="m", key="a", value="1", user=owner)
    assert len(published) == 2


def test_a_failed_publish_takes_the_flag_down(owner, flag_broker, monkeypatch):
    published = flag_broker

    def down(*args):
        raise ConnectionError("broker down")

    with monkeypatch.context() as patched:
        patched.setattr(tasks.dispatch_events, "delay", down)
        services.create_registered_model(name="m", user=owner)  # committed all the same
    assert not _flag_up()
    services.set_registered_model_tag(name="m", key="a", value="1", user=owner)
    assert len(published) == 1 and _flag_up()


def test_an_unreachable_flag_store_publishes_anyway(owner, flag_broker, monkeypatch):
    published = flag_broker
    dead = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    monkeypatch.setattr(events, "_flag_store", lambda conf, write: dead)
    services.create_registered_model(name="m", user=owner)
    services.set_registered_model_tag(name="m", key="a", value="1", user=owner)
    assert published == [(), ()]


def test_the_publisher_turns_a_moment_of_commits_into_one_flag_check_after_the_answer(owner, flag_broker, settings):
    """With a publisher delay the committing request does not touch Redis: its process publishes a
    moment later, once for all the commits of that moment."""
    import time

    settings.STAGEGATE_PUBLISH_DELAY_MS = 300
    published = flag_broker
    services.create_registered_model(name="m", user=owner)
    services.set_registered_model_tag(name="m", key="a", value="1", user=owner)
    services.set_registered_model_tag(name="m", key="b", value="1", user=owner)
    assert published == [] and not _flag_up()  # nothing yet: the writes answered without Redis
    deadline = time.monotonic() + 10
    while not published and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    assert len(published) == 1 and _flag_up()
    [(key,)] = published
    assert tasks.dispatch_events(key) == 3
    assert not Event.objects.filter(dispatched_at__isnull=True).exists()


def test_eager_tasks_need_no_flag(owner):
    delivered = []
    events.register_hook(hook := delivered.extend)
    try:
        services.create_registered_model(name="m", user=owner)
    finally:
        events.NOTIFICATION_HOOKS.remove(hook)
    assert [e.type for e in delivered] == ["registered_model.created"]
