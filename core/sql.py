"""Small helpers for the few hand-written SQL reads on hot paths (registry.reads, tracking.models.runs_to_mlflow).

`IN (%s, %s, …)` with a hundred ids makes psycopg parse the statement on every call (it only
caches statements with at most 50 parameters) and PostgreSQL plan a new text each time;
`= ANY(%s)` with one array parameter is the same statement whatever the number of ids.

On these endpoints the database round trip, not the query, is the cost: each statement is a
Django cursor, a psycopg execute and a wait on the socket (~0.2-0.3 ms of CPU and a context
switch), while PostgreSQL answers an index probe in microseconds. `fetch_sets` sends several
SELECTs as one message, `execute_all` several writes.
"""

from django.db import connection


def in_list(column: str, values) -> tuple[str, list]:
    """`column IN values` as (sql, params): one array parameter on PostgreSQL, a list elsewhere."""
    values = list(values)
    if connection.vendor == "postgresql":
        return f"{column} = ANY(%s)", [values]
    return f"{column} IN ({', '.join(['%s'] * len(values))})", values


def in_subquery(column: str, sql: str) -> str:
    """`column IN (sql)`, written so PostgreSQL runs the subquery once and probes the index with
    its result (`= ANY(ARRAY(…))` is an InitPlan; a plain `IN (…)` may become a hash join over the
    whole table when the planner misjudges the subquery's size, as it does for recursive CTEs)."""
    if connection.vendor == "postgresql":
        return f"{column} = ANY(ARRAY({sql}))"
    return f"{column} IN ({sql})"


def fetch(sql: str, params) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _one_message() -> bool:
    # Django's default psycopg cursor binds client-side, so several statements can travel as one
    # simple-protocol query; with OPTIONS["server_side_binding"] they cannot.
    return connection.vendor == "postgresql" and connection.settings_dict.get("OPTIONS", {}).get("server_side_binding") is not True


def fetch_sets(statements: list[tuple[str, list]]) -> list[list[tuple]]:
    """The rows of each (sql, params) SELECT, in order: on PostgreSQL in one round trip, elsewhere one by one."""
    if len(statements) < 2 or not _one_message():
        return [fetch(sql, params) for sql, params in statements]
    with connection.cursor() as cursor:
        cursor.execute(";\n".join(sql for sql, _ in statements), [p for _, params in statements for p in params])
        results = [cursor.fetchall()]
        while cursor.nextset():
            results.append(cursor.fetchall())
    if len(results) != len(statements):
        raise RuntimeError(f"expected {len(statements)} result sets, got {len(results)}")
    return results


def execute_all(statements: list[tuple[str, list]]) -> None:
    """Run statements whose results nobody reads, in order: on PostgreSQL in one round trip, elsewhere one by one."""
    if len(statements) < 2 or not _one_message():
        with connection.cursor() as cursor:
            for sql, params in statements:
                cursor.execute(sql, params)
        return
    with connection.cursor() as cursor:
        cursor.execute(";\n".join(sql for sql, _ in statements), [p for _, params in statements for p in params])


def insert_statement(*instances, returning: str = "") -> tuple[str, list]:
    """One `INSERT` of model instances (of one model) with all their concrete columns but an auto
    primary key, values prepared by their fields as the ORM would, without compiling a query: for
    execute_all and the hot write paths. `returning`: a column to return (e.g. the primary key's)."""
    meta = type(instances[0])._meta
    fields = [f for f in meta.concrete_fields if not (f.primary_key and getattr(instances[0], f.attname) is None)]
    qn = connection.ops.quote_name
    row = f"({', '.join(['%s'] * len(fields))})"
    sql = f"INSERT INTO {qn(meta.db_table)} ({', '.join(qn(f.column) for f in fields)}) VALUES {', '.join([row] * len(instances))}"
    if returning:
        sql += f" RETURNING {qn(returning)}"
    return sql, [f.get_db_prep_save(f.pre_save(instance, True), connection) for instance in instances for f in fields]


def plain_fields(model) -> list:
    """The concrete fields whose database value is the Python value (JSON ones need their field's
    conversion, so the hand-written selects leave them deferred: an instance loads them on first use)."""
    return [f for f in model._meta.concrete_fields if not hasattr(f, "from_db_value")]


def select_plain(model, where: str, params: list, *, lock: bool = False) -> tuple[str, list]:
    """`SELECT <plain columns> FROM <model's table> WHERE <where>` [FOR UPDATE], for fetch/fetch_sets;
    turn its rows into instances with `instance`."""
    qn = connection.ops.quote_name
    suffix = " FOR UPDATE" if lock and connection.features.has_select_for_update else ""
    columns = ", ".join(qn(f.column) for f in plain_fields(model))
    return f"SELECT {columns} FROM {qn(model._meta.db_table)} WHERE {where}{suffix}", params


def instance(model, rows: list):
    """The instance of the first row of a `select_plain` result (None without rows), as the ORM builds it."""
    return model.from_db(connection.alias, [f.attname for f in plain_fields(model)], rows[0]) if rows else None


def row_by_pk(model, pk, *, lock: bool = False):
    """`model.objects[.select_for_update()].filter(pk=pk).first()` without compiling a query (`lock`:
    inside a transaction), JSON columns deferred. None when there is no such row."""
    column = connection.ops.quote_name(model._meta.pk.column)
    return instance(model, fetch(*select_plain(model, f"{column} = %s", [pk], lock=lock)))
