"""core.db.postgresql: no health-check round trip for a connection that just answered."""

import pytest
from django.db import OperationalError, connection, connections

from tests.conftest import require_postgresql

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def wrapper(monkeypatch):
    require_postgresql("core.db.postgresql wraps Django's PostgreSQL backend")
    conn = connections.create_connection("default")
    assert type(conn).__module__ == "core.db.postgresql.base" and conn.settings_dict["CONN_HEALTH_CHECKS"]
    checks = []
    real = conn.is_usable
    monkeypatch.setattr(conn, "is_usable", lambda: checks.append(1) or real())
    conn.checks = checks
    yield conn
    conn.close()


def request(conn) -> int:
    """What a request does: connections are checked when it starts, used, and checked when it ends."""
    conn.close_if_unusable_or_obsolete()
    with conn.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    conn.close_if_unusable_or_obsolete()
    return pid


def test_a_connection_that_just_answered_is_not_pinged(wrapper):
    first = request(wrapper)
    assert wrapper.checks == []  # a new connection is not checked
    assert [request(wrapper) for _ in range(5)] == [first] * 5
    assert wrapper.checks == []


def test_outside_the_window_or_after_an_error_it_is_pinged(wrapper, settings):
    request(wrapper)
    settings.STAGEGATE_DB_ALIVE_BYPASS_MS = 0
    request(wrapper)
    assert len(wrapper.checks) == 1
    settings.STAGEGATE_DB_ALIVE_BYPASS_MS = 60_000
    wrapper.errors_occurred = True
    request(wrapper)  # Django checks a connection that saw an error when the request ends
    assert len(wrapper.checks) == 2


def test_a_dropped_connection_is_replaced_once_the_window_is_over(wrapper, settings):
    pid = request(wrapper)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    settings.STAGEGATE_DB_ALIVE_BYPASS_MS = 0
    assert request(wrapper) != pid


def test_inside_the_window_a_dropped_connection_fails_one_request_then_recovers(wrapper):
    pid = request(wrapper)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    with pytest.raises(OperationalError):
        request(wrapper)
    # Django closes a connection that raised when the request ends; the next request reconnects.
    wrapper.close_if_unusable_or_obsolete()
    assert request(wrapper) != pid
