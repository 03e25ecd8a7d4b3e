"""Django's PostgreSQL backend, with the connection health check skipped for a connection that
served a request successfully within the last `STAGEGATE_DB_ALIVE_BYPASS_MS` (default 1000).

With CONN_HEALTH_CHECKS Django sends `SELECT 1` before the first query of every request: a full
database round trip, as costly as a whole registered-models/get (registry.reads answers it in one
message). Pools skip the check for a connection used a moment ago (HikariCP's
aliveBypassWindowMs, 500 ms): it answered, so it is almost certainly still there. What remains
is a server that dropped the connection inside that window; the request that meets it fails
once (a 500 on the API, a retried task in Celery) and Django closes the connection after it,
as it does today when a connection dies mid-request.
"""

import time

from django.conf import settings
from django.db.backends.postgresql import base


class DatabaseWrapper(base.DatabaseWrapper):
    _alive_at = float("-inf")

    def close_if_health_check_failed(self):
        if (
            self.connection is not None
            and not self.health_check_done
            and (time.monotonic() - self._alive_at) * 1000 < settings.STAGEGATE_DB_ALIVE_BYPASS_MS
        ):
            self.health_check_done = True
            return
        super().close_if_health_check_failed()

    def close_if_unusable_or_obsolete(self):
        # Called when a request (or a Celery task) starts and ends: a connection that was used since
        # the last call (health_check_done) without an error has just answered.
        if self.connection is not None and self.health_check_done and not self.errors_occurred:
            self._alive_at = time.monotonic()
        super().close_if_unusable_or_obsolete()
