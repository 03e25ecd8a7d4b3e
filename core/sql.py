"""Small helpers for the few hand-written SQL reads on hot paths (registry.reads, tracking.models.runs_to_mlflow).

`IN (%s, %s, …)` with a hundred ids makes psycopg parse the statement on every call (it only
caches statements with at most 50 parameters) and PostgreSQL plan a new text each time;
`= ANY(%s)` with one array parameter is the same statement whatever the number of ids.
"""

from django.db import connection


def in_list(column: str, values) -> tuple[str, list]:
    """`column IN values` as (sql, params): one array parameter on PostgreSQL, a list elsewhere."""
    values = list(values)
    if connection.vendor == "postgresql":
        return f"{column} = ANY(%s)", [values]
    return f"{column} IN ({', '.join(['%s'] * len(values))})", values


def fetch(sql: str, params) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()
