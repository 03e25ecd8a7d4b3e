"""Raw-SQL readers for the hottest registry endpoints (registered-models/get and /search,
get-latest-versions, model-versions/get and /search).

Why: compiling an ORM query costs ~0.5 ms of CPU, more than running it, and each statement is a
database round trip; these endpoints used 4-7 of both per request (the model, its tags, aliases,
latest versions, their tags and aliases). Here each read is one batch of plain parameterised
SELECTs (portable SQL: SQLite and PostgreSQL) sent in one round trip on PostgreSQL
(core.sql.fetch_sets); the statements find their rows through subqueries (the model by name,
the newest version per stage), so nothing waits for an earlier answer. The JSON is produced by
the models' own `mlflow_json()` (what `to_mlflow()` calls) straight from the row tuples: no model
instances, no related managers (building them cost more than the SQL: ~0.1 ms per version), and
the wire format keeps one definition. tests/perf/test_registry_reads.py checks every reader
against the ORM path.

Permissions are not decided here: callers pass objects, ids or a model subquery
(registry.access.visible_model_sql) that registry.access built.
"""

from collections.abc import Callable

from core.sql import fetch_sets, in_list, in_subquery
from registry.models import ModelVersion, RegisteredModel

MV = ModelVersion._meta.db_table
RM = RegisteredModel._meta.db_table
MV_TAG = ModelVersion.tags.rel.related_model._meta.db_table
RM_TAG = RegisteredModel.tags.rel.related_model._meta.db_table
ALIAS = RegisteredModel.aliases.rel.related_model._meta.db_table

# Every column ModelVersion.mlflow_json() reads.
_TO_MLFLOW_FIELDS = {"id", "registered_model_id", "version", "creation_timestamp", "last_updated_timestamp", "current_stage",
                     "description", "user_id", "source", "run_id", "status", "status_message", "run_link"}
MV_FIELDS = tuple(f.attname for f in ModelVersion._meta.concrete_fields if f.attname in _TO_MLFLOW_FIELDS)
MV_SELECT = ", ".join(f"v.{f}" for f in MV_FIELDS)
RM_FIELDS = ("id", "name", "description", "creation_timestamp", "last_updated_timestamp")
RM_SELECT = ", ".join(f"m.{f}" for f in RM_FIELDS)

# A condition or subquery as (sql, params). The readers take their models as a function of a
# column name that returns the condition "column is one of the models" (_ids, _subquery).
Condition = tuple[str, list]


def model_by_pk(pk: int) -> Condition:
    """The model-subquery Condition for a model the caller already holds (a write's answer)."""
    return f"SELECT id FROM {RM} WHERE id = %s", [pk]


def _ids(values) -> Callable[[str], Condition]:
    return lambda column: in_list(column, values)


def _subquery(sql: str, params: list) -> Callable[[str], Condition]:
    return lambda column: (f"{column} = ({sql})", list(params))


# --------------------------------------------------------------------------- versions


def _version_statements(where: Condition) -> list[Condition]:
    """Three SELECTs for the versions matching `where` (a condition on `v`): the rows (with their
    model's name last), their tags, their aliases."""
    cond, params = where
    ids = f"SELECT v.id FROM {MV} v WHERE {cond}"
    return [
        (f"SELECT {MV_SELECT}, (SELECT m.name FROM {RM} m WHERE m.id = v.registered_model_id) FROM {MV} v WHERE {cond}"
         f" ORDER BY v.registered_model_id, v.version", params),
        (f"SELECT t.version_id, t.key, t.value FROM {MV_TAG} t WHERE {in_subquery('t.version_id', ids)} ORDER BY t.key", params),
        (f"SELECT a.version_id, a.alias FROM {ALIAS} a WHERE {in_subquery('a.version_id', ids)}", params),
    ]


def _versions(rows: list[tuple], tag_rows: list[tuple], alias_rows: list[tuple]) -> list[tuple[int, int, dict]]:
    """(id, registered model id, JSON) per version row, its tags and aliases attached."""
    tags: dict[int, list] = {}
    for version_id, key, value in tag_rows:
        tags.setdefault(version_id, []).append((key, value))
    aliases: dict[int, list] = {}
    for version_id, alias in alias_rows:
        aliases.setdefault(version_id, []).append(alias)
    result = []
    for row in rows:
        columns = dict(zip(MV_FIELDS, row))
        pk = columns["id"]
        data = ModelVersion.mlflow_json(columns, model_name=row[-1], tags=tags.get(pk, ()), aliases=aliases.get(pk, ()))
        result.append((pk, columns["registered_model_id"], data))
    return result


def model_versions_json(version_ids: list[int]) -> list[dict]:
    """The versions' JSON, in the order of `version_ids`: one round trip whatever their number."""
    if not version_ids:
        return []
    by_id = {pk: data for pk, _, data in _versions(*fetch_sets(_version_statements(in_list("v.id", version_ids))))}
    return [by_id[pk] for pk in version_ids if pk in by_id]


def version_json(model: Condition, version: int) -> dict | None:
    """The JSON of version `version` of the model the subquery `model` (registry.access.visible_model_sql)
    finds, or None; one round trip."""
    model_sql, model_params = model
    versions = _versions(*fetch_sets(_version_statements((f"v.registered_model_id = ({model_sql}) AND v.version = %s",
                                                          [*model_params, version]))))
    return versions[0][2] if versions else None


# --------------------------------------------------------------------------- newest version per stage


def _latest_ids_sql(models, stages: list[str] | None) -> Condition:
    """The ids of the newest version in each stage present, for the models `models(column)`
    selects, ordered by model then version: a loose index scan over the (model, stage, -version)
    index (a recursive CTE walks each model's distinct stages, one index probe per stage), so a
    model with 100k versions costs what one with 10 costs. Joined back to the versions only
    through core.sql.in_subquery: PostgreSQL misjudges the CTE's size and would otherwise
    hash-join a scan of every version."""
    where, params = models("m.id")
    stage_sql = ""
    if stages:
        stage_sql, stage_params = in_list("st.stage", stages)
        stage_sql = " AND " + stage_sql
        params = params + stage_params
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
    return sql, params


def _latest_statements(models, stages: list[str] | None) -> list[Condition]:
    sql, params = _latest_ids_sql(models, stages)
    return _version_statements((in_subquery("v.id", sql), params))


def latest_version_ids(model_ids: list[int], *, stages: list[str] | None = None) -> list[int]:
    """Primary keys of the newest version in each stage present, for many models, ordered by model then version."""
    if not model_ids:
        return []
    return [row[0] for row in fetch_sets([_latest_ids_sql(_ids(model_ids), stages)])[0]]


def latest_versions_json(model: Condition, *, stages: list[str] | None = None) -> tuple[bool, list[dict]]:
    """(does the model exist, its newest version per stage as JSON) for the model the subquery
    `model` finds; one round trip."""
    found, *sets = fetch_sets([(f"SELECT m.id FROM {RM} m WHERE m.id = ({model[0]})", model[1]),
                               *_latest_statements(_subquery(*model), stages)])
    return bool(found), [data for _, _, data in _versions(*sets)]


# --------------------------------------------------------------------------- registered models


def _model_statements(models) -> list[Condition]:
    """The models' tags and aliases, then their latest versions' three sets."""
    tags_where, tags_params = models("t.model_id")
    aliases_where, aliases_params = models("a.model_id")
    return [
        (f"SELECT t.model_id, t.key, t.value FROM {RM_TAG} t WHERE {tags_where} ORDER BY t.key", tags_params),
        (f"SELECT a.model_id, a.alias, v.version FROM {ALIAS} a JOIN {MV} v ON v.id = a.version_id WHERE {aliases_where}", aliases_params),
        *_latest_statements(models, None),
    ]


def _models_json(models: list[dict], tag_rows, alias_rows, *version_sets) -> list[dict]:
    tags: dict[int, list] = {}
    for model_id, key, value in tag_rows:
        tags.setdefault(model_id, []).append((key, value))
    aliases: dict[int, list] = {}
    for model_id, alias, number in alias_rows:
        aliases.setdefault(model_id, []).append((alias, number))
    latest: dict[int, list] = {}
    for _, model_id, data in _versions(*version_sets):
        latest.setdefault(model_id, []).append(data)
    return [RegisteredModel.mlflow_json(m, tags=tags.get(m["id"], ()), aliases=aliases.get(m["id"], ()),
                                        latest_versions=latest.get(m["id"], ())) for m in models]


def registered_models_json(models: list[dict]) -> list[dict]:
    """The JSON of model rows the caller fetched (mappings with RM_FIELDS): their tags, aliases and
    latest versions (with the versions' tags and aliases) in one round trip whatever their number."""
    if not models:
        return []
    return _models_json(models, *fetch_sets(_model_statements(_ids([m["id"] for m in models]))))


def registered_model_json(model: Condition) -> dict | None:
    """The JSON of the model the subquery `model` finds (None when it finds none), in one round trip."""
    rows, *sets = fetch_sets([(f"SELECT {RM_SELECT} FROM {RM} m WHERE m.id = ({model[0]})", model[1]),
                              *_model_statements(_subquery(*model))])
    if not rows:
        return None
    return _models_json([dict(zip(RM_FIELDS, rows[0]))], *sets)[0]
