"""Raw-SQL readers for the hottest registry endpoints (registered-models/get and /search,
get-latest-versions, model-versions/get and /search).

Why: compiling an ORM query costs ~0.5 ms of CPU, more than running it, and these endpoints
used 4-7 of them per request (the model, its tags, aliases, latest versions, their tags and
aliases). Here each read is a handful of plain parameterised SELECTs (portable SQL: SQLite and
PostgreSQL), and the JSON is still produced by the models' own `to_mlflow()`: the rows are
loaded into unsaved model instances whose related `tags`/`aliases` are filled like a prefetch,
so the wire format has one definition. tests/perf/test_registry_reads.py checks every reader
against the ORM path on the same data.

Permissions are not decided here: callers pass objects or ids that registry.access already
let through.
"""

from types import SimpleNamespace

from django.db import connection

from registry.models import ModelVersion, RegisteredModel

MV = ModelVersion._meta.db_table
RM = RegisteredModel._meta.db_table
MV_TAG = ModelVersion.tags.rel.related_model._meta.db_table
RM_TAG = RegisteredModel.tags.rel.related_model._meta.db_table
ALIAS = RegisteredModel.aliases.rel.related_model._meta.db_table

# Every column ModelVersion.to_mlflow() reads, in this order.
MV_FIELDS = ("id", "registered_model_id", "version", "creation_timestamp", "last_updated_timestamp", "current_stage",
             "description", "user_id", "source", "run_id", "status", "status_message", "run_link")
MV_SELECT = ", ".join(f"v.{f}" for f in MV_FIELDS)


def _in(values) -> str:
    return ", ".join(["%s"] * len(values))


def _fetch(sql: str, params) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _prefetched(obj, **related) -> None:
    """Give `obj` prefetched related lists, as prefetch_related would (to_mlflow reads `.all()`)."""
    cache = getattr(obj, "_prefetched_objects_cache", None)
    if cache is None:
        cache = obj._prefetched_objects_cache = {}
    cache.update(related)


def _version_objects(rows: list[tuple]) -> list[ModelVersion]:
    """Unsaved ModelVersion instances for rows in MV_FIELDS order, with their tags and aliases
    loaded like a prefetch (two queries)."""
    if not rows:
        return []
    ids = [row[0] for row in rows]
    tags: dict[int, list] = {}
    for version_id, key, value in _fetch(f"SELECT version_id, key, value FROM {MV_TAG} WHERE version_id IN ({_in(ids)}) ORDER BY key", ids):
        tags.setdefault(version_id, []).append(SimpleNamespace(key=key, value=value))
    aliases: dict[int, list] = {}
    for version_id, alias in _fetch(f"SELECT version_id, alias FROM {ALIAS} WHERE version_id IN ({_in(ids)})", ids):
        aliases.setdefault(version_id, []).append(SimpleNamespace(alias=alias))
    versions = []
    for row in rows:
        mv = ModelVersion(**dict(zip(MV_FIELDS, row)))
        _prefetched(mv, tags=tags.get(mv.id, []), aliases=aliases.get(mv.id, []))
        versions.append(mv)
    return versions


def model_versions_json(version_ids: list[int]) -> list[dict]:
    """The versions' JSON, in the order of `version_ids`: three queries whatever their number."""
    if not version_ids:
        return []
    rows = _fetch(f"SELECT {MV_SELECT}, m.name FROM {MV} v JOIN {RM} m ON m.id = v.registered_model_id WHERE v.id IN ({_in(version_ids)})",
                  list(version_ids))
    by_id = {row[0]: row for row in rows}
    ordered = [by_id[pk] for pk in version_ids if pk in by_id]
    return [mv.to_mlflow(model_name=row[-1]) for mv, row in zip(_version_objects([row[:-1] for row in ordered]), ordered)]


def version_json(model_id: int, model_name: str, version: int) -> dict | None:
    """One version of a model the caller already resolved (None when that number does not exist)."""
    rows = _fetch(f"SELECT {MV_SELECT} FROM {MV} v WHERE v.registered_model_id = %s AND v.version = %s", [model_id, version])
    return _version_objects(rows)[0].to_mlflow(model_name=model_name) if rows else None


def latest_versions(model_ids: list[int], *, stages: list[str] | None = None) -> dict[int, list[ModelVersion]]:
    """{model id: [newest version per stage, by version]}: one query for the versions (the
    (model, stage, -version) index answers each MAX) plus their tags and aliases. The same rows
    as registry.services.latest_versions_for, as unsaved instances ready for to_mlflow()."""
    if not model_ids:
        return {}
    ids = list(model_ids)
    sql = (
        f"SELECT {MV_SELECT} FROM {MV} v WHERE v.registered_model_id IN ({_in(ids)}) AND v.version = "
        f"(SELECT MAX(w.version) FROM {MV} w WHERE w.registered_model_id = v.registered_model_id AND w.current_stage = v.current_stage)"
    )
    params = list(ids)
    if stages:
        sql += f" AND v.current_stage IN ({_in(stages)})"
        params += list(stages)
    result: dict[int, list[ModelVersion]] = {}
    for mv in _version_objects(_fetch(sql + " ORDER BY v.registered_model_id, v.version", params)):
        result.setdefault(mv.registered_model_id, []).append(mv)
    return result


def registered_models_json(models: list[RegisteredModel]) -> list[dict]:
    """`to_mlflow(latest_versions=…)` for model rows the caller fetched: their tags, aliases and
    latest versions (with the versions' tags and aliases) in five plain queries whatever their number."""
    if not models:
        return []
    ids = [m.pk for m in models]
    tags: dict[int, list] = {}
    for model_id, key, value in _fetch(f"SELECT model_id, key, value FROM {RM_TAG} WHERE model_id IN ({_in(ids)}) ORDER BY key", ids):
        tags.setdefault(model_id, []).append(SimpleNamespace(key=key, value=value))
    aliases: dict[int, list] = {}
    for model_id, alias, number in _fetch(
        f"SELECT a.model_id, a.alias, v.version FROM {ALIAS} a JOIN {MV} v ON v.id = a.version_id WHERE a.model_id IN ({_in(ids)})", ids
    ):
        aliases.setdefault(model_id, []).append(SimpleNamespace(alias=alias, version=SimpleNamespace(version=number)))
    latest = latest_versions(ids)
    result = []
    for model in models:
        _prefetched(model, tags=tags.get(model.pk, []), aliases=aliases.get(model.pk, []))
        result.append(model.to_mlflow(latest_versions=latest.get(model.pk, [])))
    return result
