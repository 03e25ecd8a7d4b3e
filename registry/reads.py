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

from core.sql import fetch as _fetch
from core.sql import in_list
from registry.models import ModelVersion, RegisteredModel

MV = ModelVersion._meta.db_table
RM = RegisteredModel._meta.db_table
MV_TAG = ModelVersion.tags.rel.related_model._meta.db_table
RM_TAG = RegisteredModel.tags.rel.related_model._meta.db_table
ALIAS = RegisteredModel.aliases.rel.related_model._meta.db_table

# Every column ModelVersion.to_mlflow() reads, in the model's field order (what Model.from_db expects).
_TO_MLFLOW_FIELDS = {"id", "registered_model_id", "version", "creation_timestamp", "last_updated_timestamp", "current_stage",
                     "description", "user_id", "source", "run_id", "status", "status_message", "run_link"}
MV_FIELDS = tuple(f.attname for f in ModelVersion._meta.concrete_fields if f.attname in _TO_MLFLOW_FIELDS)
MV_SELECT = ", ".join(f"v.{f}" for f in MV_FIELDS)


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
    where, params = in_list("version_id", ids)
    for version_id, key, value in _fetch(f"SELECT version_id, key, value FROM {MV_TAG} WHERE {where} ORDER BY key", params):
        tags.setdefault(version_id, []).append(SimpleNamespace(key=key, value=value))
    aliases: dict[int, list] = {}
    for version_id, alias in _fetch(f"SELECT version_id, alias FROM {ALIAS} WHERE {where}", params):
        aliases.setdefault(version_id, []).append(SimpleNamespace(alias=alias))
    versions = []
    for row in rows:
        # from_db: the other columns are deferred (an unexpected read would query, never guess).
        mv = ModelVersion.from_db(None, MV_FIELDS, row)
        _prefetched(mv, tags=tags.get(mv.id, []), aliases=aliases.get(mv.id, []))
        versions.append(mv)
    return versions


def model_versions_json(version_ids: list[int]) -> list[dict]:
    """The versions' JSON, in the order of `version_ids`: three queries whatever their number."""
    if not version_ids:
        return []
    where, params = in_list("v.id", version_ids)
    rows = _fetch(f"SELECT {MV_SELECT}, m.name FROM {MV} v JOIN {RM} m ON m.id = v.registered_model_id WHERE {where}", params)
    by_id = {row[0]: row for row in rows}
    ordered = [by_id[pk] for pk in version_ids if pk in by_id]
    return [mv.to_mlflow(model_name=row[-1]) for mv, row in zip(_version_objects([row[:-1] for row in ordered]), ordered)]


def version_json(model_id: int, model_name: str, version: int) -> dict | None:
    """One version of a model the caller already resolved (None when that number does not exist)."""
    rows = _fetch(f"SELECT {MV_SELECT} FROM {MV} v WHERE v.registered_model_id = %s AND v.version = %s", [model_id, version])
    return _version_objects(rows)[0].to_mlflow(model_name=model_name) if rows else None


def latest_version_ids(model_ids: list[int], *, stages: list[str] | None = None) -> list[int]:
    """Primary keys of the newest version in each stage present, for many models, ordered by
    model then version: a loose index scan over the (model, stage, -version) index (a recursive
    CTE walks each model's distinct stages, one index probe per stage), so a model with 100k
    versions costs what one with 10 costs. No join back to the versions here: PostgreSQL
    misjudges the CTE's size and would hash-join a scan of every version."""
    if not model_ids:
        return []
    where, params = in_list("m.id", model_ids)
    stage_sql = ""
    if stages:
        stage_sql, stage_params = in_list("st.stage", stages)
        stage_sql = " AND " + stage_sql
        params += stage_params
    first = f"SELECT MIN(w.current_stage) FROM {MV} w WHERE w.registered_model_id = m.id"
    after = f"SELECT MIN(w.current_stage) FROM {MV} w WHERE w.registered_model_id = st.model_id AND w.current_stage > st.stage"
    newest = f"FROM {MV} w WHERE w.registered_model_id = st.model_id AND w.current_stage = st.stage ORDER BY w.version DESC LIMIT 1"
    sql = (
        f"WITH RECURSIVE st(model_id, stage) AS ("
        f" SELECT m.id, CAST(({first}) AS TEXT) FROM {RM} m WHERE {where}"
        f" UNION ALL SELECT st.model_id, CAST(({after}) AS TEXT) FROM st WHERE st.stage IS NOT NULL)"
        f" SELECT top.id FROM (SELECT st.model_id, (SELECT w.id {newest}) AS id, (SELECT w.version {newest}) AS version"
        f" FROM st WHERE st.stage IS NOT NULL{stage_sql}) top ORDER BY top.model_id, top.version"
    )
    return [row[0] for row in _fetch(sql, params)]


def latest_versions(model_ids: list[int], *, stages: list[str] | None = None) -> dict[int, list[ModelVersion]]:
    """{model id: [newest version per stage, by version]}: the same rows as
    registry.services.latest_versions_for, as unsaved instances ready for to_mlflow(), in
    four plain queries (their ids, the versions, their tags, their aliases)."""
    ids = latest_version_ids(model_ids, stages=stages)
    if not ids:
        return {}
    where, params = in_list("v.id", ids)
    rows = _fetch(f"SELECT {MV_SELECT} FROM {MV} v WHERE {where} ORDER BY v.registered_model_id, v.version", params)
    result: dict[int, list[ModelVersion]] = {}
    for mv in _version_objects(rows):
        result.setdefault(mv.registered_model_id, []).append(mv)
    return result


def registered_models_json(models: list[RegisteredModel]) -> list[dict]:
    """`to_mlflow(latest_versions=…)` for model rows the caller fetched: their tags, aliases and
    latest versions (with the versions' tags and aliases) in five plain queries whatever their number."""
    if not models:
        return []
    ids = [m.pk for m in models]
    tags: dict[int, list] = {}
    where, params = in_list("model_id", ids)
    for model_id, key, value in _fetch(f"SELECT model_id, key, value FROM {RM_TAG} WHERE {where} ORDER BY key", params):
        tags.setdefault(model_id, []).append(SimpleNamespace(key=key, value=value))
    aliases: dict[int, list] = {}
    where, params = in_list("a.model_id", ids)
    for model_id, alias, number in _fetch(f"SELECT a.model_id, a.alias, v.version FROM {ALIAS} a JOIN {MV} v ON v.id = a.version_id WHERE {where}", params):
        aliases.setdefault(model_id, []).append(SimpleNamespace(alias=alias, version=SimpleNamespace(version=number)))
    latest = latest_versions(ids)
    result = []
    for model in models:
        _prefetched(model, tags=tags.get(model.pk, []), aliases=aliases.get(model.pk, []))
        result.append(model.to_mlflow(latest_versions=latest.get(model.pk, [])))
    return result
