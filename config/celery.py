import os

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("stagegate")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Celery's Django fixup closes every database connection before and after each task unless
# CELERY_DB_REUSE_MAX is set: one new PostgreSQL backend (a fork and an authentication) per task,
# which cost the worker more than the registration task it ran. Connections are kept instead and
# handled the way Django handles them between requests (below): closed when broken or older than
# CONN_MAX_AGE, health-checked before their first use in a task.
app.conf.CELERY_DB_REUSE_MAX = 2**62


@signals.task_prerun.connect
@signals.task_postrun.connect
def _close_old_connections(sender=None, **kwargs):
    if getattr(getattr(sender, "request", None), "is_eager", False):
        return  # inside a web request or a test: the caller's connection, the caller's business
    from django.db import close_old_connections

    close_old_connections()
