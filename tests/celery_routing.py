"""Point this test process's Celery producer at a broker and queue, and back.

Celery caches the routing (queues, router, default exchange, the sender) and kombu
keeps global producer pools per connection, so changing `app.conf` alone leaves a
process publishing to whatever queue the first test used. Tests that start real
workers use a queue of their own (so concurrent test runs on one Redis never steal
each other's tasks) and reset these caches on the way in and out.
"""

from kombu import pools

_CACHED = ("queues", "default_queue", "router", "send_task_message", "default_exchange")


def reset_producer(app) -> None:
    pools.reset()
    app._pool = None
    amqp = app.amqp
    amqp._producer_pool = None
    amqp._rtable = None
    for attr in _CACHED:
        amqp.__dict__.pop(attr, None)


def set_broker(app, url: str | None) -> None:
    """Celery reads the CELERY_BROKER_URL environment variable before `conf.broker_url` (CI sets
    it), so the write and read URLs, which win over both, are set too."""
    app.conf.broker_url = url
    app.conf.broker_write_url = url
    app.conf.broker_read_url = url


def route_producer(app, *, broker_url: str, queue: str, eager: bool = False) -> tuple:
    """Switch the producer; returns what to pass to `restore_producer` afterwards."""
    previous = (app.conf.task_always_eager, app.conf.get("broker_url"), app.conf.task_default_queue)
    app.conf.task_always_eager = eager
    set_broker(app, broker_url)
    app.conf.task_default_queue = queue
    reset_producer(app)
    return previous


def restore_producer(app, previous: tuple) -> None:
    app.conf.task_always_eager, broker_url, app.conf.task_default_queue = previous
    set_broker(app, broker_url)
    app.conf.broker_write_url = app.conf.broker_read_url = None
    reset_producer(app)
