"""The floor: a bare Django view doing one primary-key lookup, served like Stagegate.

Used by bench/compare.py to measure how close `registered-models/get` gets to
the cheapest possible Django request on the same machine and database.

    DATABASE_URL=postgres://... gunicorn bench.floor_app --workers 2
"""

import os
import sys

import dj_database_url
from django.conf import settings

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="bench-floor",
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=__name__,
        DATABASES={"default": dj_database_url.parse(os.environ["DATABASE_URL"], conn_max_age=600)},
        MIDDLEWARE=[],
        INSTALLED_APPS=[],
        USE_TZ=True,
    )

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402
from django.http import JsonResponse  # noqa: E402
from django.urls import path  # noqa: E402


def ensure_table():
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE IF NOT EXISTS bench_floor (id serial PRIMARY KEY, name text NOT NULL)")
        cursor.execute("SELECT count(*) FROM bench_floor")
        if cursor.fetchone()[0] == 0:
            cursor.execute("INSERT INTO bench_floor (name) SELECT 'row-' || g FROM generate_series(1, 1000) g")


def lookup(request, pk):
    with connection.cursor() as cursor:
        cursor.execute("SELECT id, name FROM bench_floor WHERE id = %s", [pk])
        row = cursor.fetchone()
    return JsonResponse({"id": row[0], "name": row[1]})


urlpatterns = [path("floor/<int:pk>", lookup)]

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()

if __name__ == "__main__":
    ensure_table()
    sys.exit(0)
