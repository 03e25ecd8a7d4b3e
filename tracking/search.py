"""Searching experiments, runs, logged models and metric history: all in the database.

Filters become EXISTS subqueries on LatestMetric / Param / RunTag (never a scan of
history, never Python-side filtering); order keys become annotations with a
"null rank" in front (MLflow puts missing values last in both directions), so
core.api.keyset_page can page on non-null columns with opaque tokens.
"""

import hashlib
import json

from django.db.models import (
    BigIntegerField,
    BooleanField,
    Case,
    Exists,
    F,
    FilteredRelation,
    FloatField,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    TextField,
    Value,
    When,
)
from django.db.models.functions import Coalesce

from core.api import decode_page_token, encode_page_token, keyset_page
from core.errors import InvalidParameter
from core.filters import Clause, OrderKey, like_to_regex, parse_filter, parse_order_by
from core.sql import fetch_sets
from tracking.access import experiments_visible_to, get_run_for_user, parse_experiment_id, run_not_found, runs_visible_in, visible_run_sql
from tracking.models import (
    ACTIVE,
    DELETED,
    RUN_INFO_FIELDS,
    LatestMetric,
    LoggedModel,
    LoggedModelParam,
    LoggedModelTag,
    Metric,
    Param,
    Run,
    RunInput,
    RunTag,
    attach_model_metrics,
    metric_json,
)

SEARCH_MAX_RESULTS_DEFAULT = 1000
SEARCH_MAX_RESULTS_THRESHOLD = 50000
SEARCH_LOGGED_MODEL_MAX_RESULTS_DEFAULT = 100
GET_METRIC_HISTORY_MAX_RESULTS = 25000
MAX_RESULTS_PER_RUN = 2500
MAX_RUNS_GET_METRIC_HISTORY_BULK = 100

NUMERIC_COMPARATORS = ("=", "!=", "<", "<=", ">", ">=")
STRING_COMPARATORS = ("=", "!=", "LIKE", "ILIKE", "IN", "NOT IN")
_LOOKUP = {"=": "exact", "<": "lt", "<=": "lte", ">": "gt", ">=": "gte"}

VIEW_TYPES = {"ACTIVE_ONLY": [ACTIVE], "DELETED_ONLY": [DELETED], "ALL": [ACTIVE, DELETED],
              "1": [ACTIVE], "2": [DELETED], "3": [ACTIVE, DELETED]}


def lifecycle_stages(view_type, name: str = "view_type") -> list[str]:
    if view_type in (None, ""):
        return [ACTIVE]
    stages = VIEW_TYPES.get(str(view_type).upper())
    if stages is None:
        raise InvalidParameter(
            f"Invalid value {view_type} for parameter '{name}' supplied. "
            "It must be one of ACTIVE_ONLY, DELETED_ONLY, ALL."
        )
    return stages


def _kind(prefix: str, order: list) -> str:
    # A page token is only valid for the search (and order) that produced it.
    return prefix + ":" + hashlib.sha1(json.dumps(order, default=str).encode()).hexdigest()[:12]


# --------------------------------------------------------------------------- clause -> Q helpers


def _numeric(clause: Clause) -> float:
    if not isinstance(clause.value, float):
        raise InvalidParameter(
            f"Expected numeric value type for {clause.type}. Found {clause.value!r}"
        )
    return clause.value


def _string(clause: Clause):
    if clause.comparator in ("IN", "NOT IN"):
        return clause.value
    if not isinstance(clause.value, str):
        raise InvalidParameter(
            f"Expected a quoted string value for {clause.type} '{clause.key}' (e.g. 'my-value'). Got value {clause.value!r}"
        )
    return clause.value


def string_q(field: str, comparator: str, value) -> Q:
    """A string comparison in SQL; LIKE/ILIKE via a regex so both databases behave alike."""
    if comparator == "=":
        return Q(**{field: value})
    if comparator == "!=":
        return ~Q(**{field: value})
    if comparator == "LIKE":
        return Q(**{f"{field}__regex": like_to_regex(value)})
    if comparator == "ILIKE":
        return Q(**{f"{field}__iregex": like_to_regex(value)})
    if comparator == "IN":
        return Q(**{f"{field}__in": list(value)})
    if comparator == "NOT IN":
        return ~Q(**{f"{field}__in": list(value)})
    raise InvalidParameter(f"Invalid comparator '{comparator}' not one of '{STRING_COMPARATORS}'")


def numeric_q(field: str, comparator: str, value: float) -> Q:
    if comparator == "!=":
        return ~Q(**{field: value})
    return Q(**{f"{field}__{_LOOKUP[comparator]}": value})


def _check_comparator(clause: Clause, allowed: tuple) -> None:
    if clause.comparator not in allowed:
        raise InvalidParameter(
            f"Invalid comparator '{clause.comparator}' not one of '{allowed}' for {clause.type} '{clause.key}'"
        )


def _keyed_exists(model, owner_field: str, clause: Clause, value_field: str = "value", **extra) -> Q:
    """EXISTS (a row of `model` for this owner with key=clause.key and a matching value)."""
    if clause.comparator == "IS NULL":
        return ~Exists(model.objects.filter(**{owner_field: OuterRef("pk")}, key=clause.key, **extra))
    if clause.comparator == "IS NOT NULL":
        return Q(Exists(model.objects.filter(**{owner_field: OuterRef("pk")}, key=clause.key, **extra)))
    inner = model.objects.filter(**{owner_field: OuterRef("pk")}, key=clause.key, **extra)
    if clause.type == "metric":
        _check_comparator(clause, NUMERIC_COMPARATORS)
        inner = inner.filter(numeric_q(value_field, clause.comparator, _numeric(clause)))
        if model is LatestMetric or model is Metric:
            inner = inner.filter(is_nan=False)
    else:
        _check_comparator(clause, STRING_COMPARATORS)
        inner = inner.filter(string_q(value_field, clause.comparator, _string(clause)))
    return Q(Exists(inner))


# --------------------------------------------------------------------------- ordering helpers


def _order_annotations(prefix: str, raw, *, default, nan=None) -> tuple[dict, list]:
    """Annotations for one order key: a null rank (0 value, 1 NaN, 2 missing) and a non-null value."""
    rank_whens = []
    if nan is not None:
        rank_whens.append(When(**{f"{prefix}_nan": True}, then=Value(1)))
    rank_whens.append(When(**{f"{prefix}_raw__isnull": True}, then=Value(2)))
    annotations = {f"{prefix}_raw": raw}
    if nan is not None:
        annotations[f"{prefix}_nan"] = Coalesce(nan, Value(False), output_field=BooleanField())
    annotations[f"{prefix}_rank"] = Case(*rank_whens, default=Value(0), output_field=IntegerField())
    annotations[prefix] = Coalesce(F(f"{prefix}_raw"), default, output_field=default.output_field)
    return annotations, [f"{prefix}_rank", prefix]


# --------------------------------------------------------------------------- experiments

EXPERIMENT_STRING_ATTRIBUTES = {"name": "name"}
EXPERIMENT_NUMERIC_ATTRIBUTES = {"creation_time": "creation_time", "last_update_time": "last_update_time"}
EXPERIMENT_ORDER_ATTRIBUTES = {"name", "experiment_id", "creation_time", "last_update_time"}


def search_experiments(*, user, filter_string: str | None, order_by: list[str], view_type, max_results: int, page_token: str | None):
    qs = experiments_visible_to(user).filter(lifecycle_stage__in=lifecycle_stages(view_type))
    for clause in parse_filter(filter_string):
        if clause.type == "attribute":
            if clause.key in EXPERIMENT_STRING_ATTRIBUTES:
                _check_comparator(clause, STRING_COMPARATORS)
                qs = qs.filter(string_q(EXPERIMENT_STRING_ATTRIBUTES[clause.key], clause.comparator, _string(clause)))
            elif clause.key in EXPERIMENT_NUMERIC_ATTRIBUTES:
                _check_comparator(clause, NUMERIC_COMPARATORS)
                qs = qs.filter(numeric_q(EXPERIMENT_NUMERIC_ATTRIBUTES[clause.key], clause.comparator, _numeric(clause)))
            else:
                raise InvalidParameter(
                    f"Invalid attribute key '{clause.key}' specified. Valid keys are "
                    f"'{sorted(set(EXPERIMENT_STRING_ATTRIBUTES) | set(EXPERIMENT_NUMERIC_ATTRIBUTES))}'"
                )
        elif clause.type == "tag":
            from tracking.models import ExperimentTag

            qs = qs.filter(_keyed_exists(ExperimentTag, "experiment", clause))
        else:
            raise InvalidParameter(f"Invalid entity type '{clause.type}'. Valid values are ['tag', 'attribute']")
    keys = parse_order_by(order_by or ["creation_time DESC"])
    order = []
    for key in keys:
        if key.type != "attribute" or key.key not in EXPERIMENT_ORDER_ATTRIBUTES:
            raise InvalidParameter(
                f"Invalid order by key '{key.key}' specified. Valid keys are '{sorted(EXPERIMENT_ORDER_ATTRIBUTES)}'"
            )
        field = "pk" if key.key == "experiment_id" else key.key
        order.append((field, not key.ascending))
    if not any(field == "pk" for field, _ in order):
        order.append(("pk", False))
    rows, token = keyset_page(
        qs.prefetch_related("tags"), order=order, max_results=max_results, page_token=page_token, kind=_kind("experiments", order)
    )
    return rows, token


# --------------------------------------------------------------------------- runs

RUN_STRING_ATTRIBUTES = {
    "run_id": "run_uuid",
    "run_uuid": "run_uuid",
    "run_name": "name",
    "status": "status",
    "user_id": "user_id",
    "artifact_uri": "artifact_uri",
    "lifecycle_stage": "lifecycle_stage",
}
RUN_NUMERIC_ATTRIBUTES = {
    "start_time": "start_time",
    "end_time": "end_time",
    "created": "start_time",
    "Created": "start_time",
}
RUN_ORDER_ATTRIBUTES = {**RUN_STRING_ATTRIBUTES, **RUN_NUMERIC_ATTRIBUTES, "experiment_id": "experiment_id"}
DATASET_FIELDS = {"name": "dataset__name", "digest": "dataset__digest", "context": "context"}


def _run_clause_q(clause: Clause) -> Q:
    if clause.type == "metric":
        return _keyed_exists(LatestMetric, "run", clause)
    if clause.type == "parameter":
        return _keyed_exists(Param, "run", clause)
    if clause.type == "tag":
        return _keyed_exists(RunTag, "run", clause)
    if clause.type == "dataset":
        field = DATASET_FIELDS.get(clause.key)
        if field is None:
            raise InvalidParameter(
                f"Invalid dataset key '{clause.key}' specified. Valid keys are '{sorted(DATASET_FIELDS)}'"
            )
        _check_comparator(clause, STRING_COMPARATORS)
        return Q(Exists(RunInput.objects.filter(string_q(field, clause.comparator, _string(clause)), run=OuterRef("pk"))))
    # attributes
    if clause.key in RUN_STRING_ATTRIBUTES:
        _check_comparator(clause, STRING_COMPARATORS)
        return string_q(RUN_STRING_ATTRIBUTES[clause.key], clause.comparator, _string(clause))
    if clause.key in RUN_NUMERIC_ATTRIBUTES:
        field = RUN_NUMERIC_ATTRIBUTES[clause.key]
        if clause.comparator == "IS NULL":
            return Q(**{f"{field}__isnull": True})
        if clause.comparator == "IS NOT NULL":
            return Q(**{f"{field}__isnull": False})
        _check_comparator(clause, NUMERIC_COMPARATORS)
        value = _numeric(clause)
        q = numeric_q(field, clause.comparator, value)
        # `end_time != x` must not match runs that have no end time (SQL semantics).
        return q & Q(**{f"{field}__isnull": False}) if clause.comparator == "!=" else q
    raise InvalidParameter(
        f"Invalid attribute key '{clause.key}' specified. Valid keys are "
        f"'{sorted(set(RUN_STRING_ATTRIBUTES) | set(RUN_NUMERIC_ATTRIBUTES))}'"
    )


def _run_order(qs: QuerySet, keys: list[OrderKey], joins: dict | None = None) -> tuple[QuerySet, list[tuple[str, bool]]]:
    order = []
    annotations = {}
    joins = joins or {}
    for i, key in enumerate(keys):
        prefix = f"ob{i}"
        if key.type == "metric" and key.key in joins:
            # A numeric filter on this metric already guarantees every row has it and it is not
            # NaN: order by the joined column itself, so an index on (key, value) can drive the query.
            annotations[prefix] = F(f"{joins[key.key]}__value")
            order.append((prefix, not key.ascending))
            continue
        if key.type == "metric":
            latest = LatestMetric.objects.filter(run=OuterRef("pk"), key=key.key)
            ann, fields = _order_annotations(
                prefix,
                Subquery(latest.values("value")[:1], output_field=FloatField()),
                default=Value(0.0, output_field=FloatField()),
                nan=Subquery(latest.values("is_nan")[:1], output_field=BooleanField()),
            )
        elif key.type in ("parameter", "tag"):
            model = Param if key.type == "parameter" else RunTag
            ann, fields = _order_annotations(
                prefix,
                Subquery(model.objects.filter(run=OuterRef("pk"), key=key.key).values("value")[:1], output_field=TextField()),
                default=Value("", output_field=TextField()),
            )
        elif key.type == "attribute" and key.key in RUN_ORDER_ATTRIBUTES:
            field = RUN_ORDER_ATTRIBUTES[key.key]
            if field == "end_time":
                ann, fields = _order_annotations(prefix, F("end_time"), default=Value(0, output_field=BigIntegerField()))
            else:
                order.append((field, not key.ascending))
                continue
        else:
            raise InvalidParameter(
                f"Invalid order_by key '{key.type}.{key.key}'. Order by metrics, params, tags or one of the "
                f"attributes {sorted(RUN_ORDER_ATTRIBUTES)}."
            )
        annotations.update(ann)
        order.append((fields[0], False))  # missing values last, whatever the direction
        order.append((fields[1], not key.ascending))
    if annotations:
        qs = qs.annotate(**annotations)
    if not any(f == "start_time" for f, _ in order):
        order.append(("start_time", True))
    order.append(("run_uuid", False))
    return qs, order


def _metric_joins(clauses: list[Clause], keys: list[OrderKey]) -> dict[str, str]:
    """Metrics both filtered numerically and ordered by: {metric key: join alias}.

    The filter (`metrics.m < x`, any numeric comparator) already implies that the latest value
    exists and is not NaN, so the "missing/NaN last" rank is constant and the search can be a
    join on LatestMetric ordered by its value: the (key, value) index then yields the rows in
    order and the database reads one page of them, not every matching run (flat as runs grow).
    """
    filtered = {c.key for c in clauses if c.type == "metric" and c.comparator in NUMERIC_COMPARATORS}
    joins = {}
    for i, key in enumerate(keys):
        if key.type == "metric" and key.key in filtered and key.key not in joins:
            joins[key.key] = f"lm{i}"
    return joins


def _visible_runs(user, experiment_ids: list, run_view_type) -> QuerySet:
    ids = [parse_experiment_id(e) for e in experiment_ids]
    return Run.objects.filter(runs_visible_in(user, ids), lifecycle_stage__in=lifecycle_stages(run_view_type, "run_view_type"))


def runs_matching(*, user, experiment_ids: list, filter_string: str | None, run_view_type) -> QuerySet:
    """Every run the filter matches, unordered and unpaged: for the runs table's count and its
    chart across all matching runs (search_runs gives the pages). Raises InvalidParameter."""
    qs = _visible_runs(user, experiment_ids, run_view_type)
    for clause in parse_filter(filter_string):
        qs = qs.filter(_run_clause_q(clause))
    return qs


def search_runs(*, user, experiment_ids: list, filter_string: str | None, run_view_type, order_by: list[str],
                max_results: int, page_token: str | None, prefetch: bool = True) -> tuple[list[Run], str | None]:
    """One page of runs, ready for Run.to_mlflow() (prefetched in a fixed number of queries).

    `prefetch=False` returns rows (named tuples) with only the RUN_INFO_FIELDS and the sort values,
    for callers that serialise with `runs_to_mlflow`."""
    qs = _visible_runs(user, experiment_ids, run_view_type)
    clauses = parse_filter(filter_string)
    keys = parse_order_by(order_by)
    joins = _metric_joins(clauses, keys)
    if joins:
        qs = qs.annotate(**{alias: FilteredRelation("latest_metrics", condition=Q(latest_metrics__key=key)) for key, alias in joins.items()})
    for clause in clauses:
        if clause.type == "metric" and clause.key in joins and clause.comparator in NUMERIC_COMPARATORS:
            alias = joins[clause.key]
            qs = qs.filter(numeric_q(f"{alias}__value", clause.comparator, _numeric(clause)), **{f"{alias}__is_nan": False})
        else:
            qs = qs.filter(_run_clause_q(clause))
    qs, order = _run_order(qs, keys, joins)
    if not prefetch:
        # Rows, not model instances: the RunInfo columns and the sort values the page token needs.
        qs = qs.values_list(*dict.fromkeys([*RUN_INFO_FIELDS, *(field for field, _ in order)]), named=True)
    return keyset_page(qs.for_mlflow() if prefetch else qs, order=order, max_results=max_results, page_token=page_token, kind=_kind("runs", order))


HISTORY_ORDER = ("step", "timestamp", "id")


def _history_after(page_token: str | None) -> list[int] | None:
    """The (step, timestamp, id) a metric-history page token continues after (the tokens of
    core.api.keyset_page, kind "metric-history")."""
    token = decode_page_token(page_token)
    if token is None:
        return None
    values = token.get("after")
    if (token.get("kind") != "metric-history" or not isinstance(values, list) or len(values) != len(HISTORY_ORDER)
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in values)):
        raise InvalidParameter("Invalid page token, it does not belong to this search")
    return values


def metric_history(*, user, run_id: str, key: str, max_results: int, page_token: str | None) -> tuple[list[dict], str | None]:
    """One page of a run's metric history as MLflow JSON, by (step, timestamp, id), keyset-paged;
    one round trip: the run (visibility, tracking.access.visible_run_sql) and the points travel
    together, and the points are dropped unless the run came back. Raises DoesNotExist,
    InvalidParameter (a page token of another search)."""
    try:
        after = _history_after(page_token)
    except InvalidParameter:
        get_run_for_user(user, run_id)  # a missing run is reported before a bad token
        raise
    where, params = "run_id = %s AND key = %s", [run_id, key]
    if after is not None:
        # `step >=` lets the (run, key, step, timestamp) index start at the token.
        where += " AND step >= %s AND (step, timestamp, id) > (%s, %s, %s)"
        params += [after[0], *after]
    found, rows = fetch_sets([
        visible_run_sql(user, run_id, ("run_uuid",)),
        (f"SELECT key, value, is_nan, timestamp, step, id FROM {Metric._meta.db_table} WHERE {where}"
         f" ORDER BY step, timestamp, id LIMIT %s", [*params, max(max_results, 0) + 1]),
    ])
    if not found:
        raise run_not_found(run_id)
    if max_results <= 0:
        return [], None
    token = None
    if len(rows) > max_results:
        rows = rows[:max_results]
        *_, timestamp, step, pk = rows[-1]
        token = encode_page_token({"kind": "metric-history", "after": [step, timestamp, pk]})
    return [metric_json(*row[:5]) for row in rows], token


def metric_history_bulk_interval(*, runs: list[Run], key: str, max_results: int, start_step: int | None,
                                 end_step: int | None) -> list[Metric]:
    """Up to `max_results` points per run, spread evenly over the steps (first and last step always kept)."""
    qs = Metric.objects.filter(run__in=runs, key=key)
    if start_step is not None:
        qs = qs.filter(step__gte=start_step, step__lte=end_step)
    steps = sorted(set(qs.values_list("step", flat=True)))
    if len(steps) > max_results:
        if max_results == 1:
            chosen = {steps[0]}
        else:
            stride = (len(steps) - 1) / (max_results - 1)
            chosen = {steps[round(i * stride)] for i in range(max_results)}
        qs = qs.filter(step__in=chosen)
    return list(qs.order_by("run_id", "step", "timestamp", "pk"))


def metric_history_bulk(*, runs: list[Run], key: str, max_results: int) -> list[dict]:
    """MLflow's GetMetricHistoryBulk: the points of several runs, by (run id, timestamp, step, value),
    at most `max_results` in all, each with its run_id."""
    rows = (Metric.objects.filter(run__in=runs, key=key)
            .order_by("run_id", "timestamp", "step", "value", "pk")
            .values_list("key", "value", "is_nan", "timestamp", "step", "run_id")[:max(max_results, 0)])
    return [{**metric_json(*row[:5]), "run_id": row[5]} for row in rows]


MAX_DATASET_SUMMARIES_RESULTS = 1000


def dataset_summaries(*, user, experiment_ids: list[str]) -> list[dict]:
    """MLflow's SearchDatasets: distinct (experiment, dataset name, digest, context) of the runs' inputs
    in the experiments the user may read; the others are left out silently, as MLflow drops unknown ids."""
    ids = []
    for value in experiment_ids:
        try:
            ids.append(int(value))
        except (TypeError, ValueError):
            continue
    rows = (RunInput.objects
            .filter(dataset__experiment__in=experiments_visible_to(user).filter(pk__in=ids))
            .values_list("dataset__experiment_id", "dataset__name", "dataset__digest", "context")
            .order_by("dataset__experiment_id", "dataset__name", "dataset__digest", "context")
            .distinct()[:MAX_DATASET_SUMMARIES_RESULTS])
    summaries = []
    for experiment_id, name, digest, context in rows:
        summary = {"experiment_id": str(experiment_id), "name": name, "digest": digest}
        if context:
            summary["context"] = context
        summaries.append(summary)
    return summaries


# --------------------------------------------------------------------------- logged models

LOGGED_MODEL_STRING_ATTRIBUTES = {
    "name": "name",
    "model_id": "model_id",
    "status": "status",
    "model_type": "model_type",
    "source_run_id": "source_run_id",
}
LOGGED_MODEL_NUMERIC_ATTRIBUTES = {
    "creation_timestamp": "creation_timestamp_ms",
    "creation_timestamp_ms": "creation_timestamp_ms",
    "creation_time": "creation_timestamp_ms",
    "last_updated_timestamp": "last_updated_timestamp_ms",
    "last_updated_timestamp_ms": "last_updated_timestamp_ms",
}


def _dataset_q(datasets: list[dict]) -> Q | None:
    """`datasets` of a logged-model search: metrics must come from one of these datasets."""
    if not datasets:
        return None
    condition = Q(pk__in=[])
    for index, dataset in enumerate(datasets):
        name = dataset.get("dataset_name")
        if not name or not isinstance(name, str):
            raise InvalidParameter("`dataset_name` in the `datasets` clause must be specified.")
        one = Q(dataset_name=name)
        if dataset.get("dataset_digest"):
            one &= Q(dataset_digest=dataset["dataset_digest"])
        condition |= one
    return condition


def _logged_model_clause_q(clause: Clause, datasets: Q | None = None) -> Q:
    if clause.type == "metric":
        if datasets is None:
            return _keyed_exists(Metric, "model_id", clause)
        _check_comparator(clause, NUMERIC_COMPARATORS)
        points = Metric.objects.filter(datasets, model_id=OuterRef("pk"), key=clause.key, is_nan=False)
        return Q(Exists(points.filter(numeric_q("value", clause.comparator, _numeric(clause)))))
    if clause.type == "parameter":
        return _keyed_exists(LoggedModelParam, "model", clause)
    if clause.type == "tag":
        return _keyed_exists(LoggedModelTag, "model", clause)
    if clause.type == "attribute":
        if clause.key in LOGGED_MODEL_STRING_ATTRIBUTES:
            _check_comparator(clause, STRING_COMPARATORS)
            return string_q(LOGGED_MODEL_STRING_ATTRIBUTES[clause.key], clause.comparator, _string(clause))
        if clause.key in LOGGED_MODEL_NUMERIC_ATTRIBUTES:
            _check_comparator(clause, NUMERIC_COMPARATORS)
            return numeric_q(LOGGED_MODEL_NUMERIC_ATTRIBUTES[clause.key], clause.comparator, _numeric(clause))
    raise InvalidParameter(
        f"Invalid filter key '{clause.type}.{clause.key}' for logged models. Valid attributes are "
        f"{sorted(set(LOGGED_MODEL_STRING_ATTRIBUTES) | set(LOGGED_MODEL_NUMERIC_ATTRIBUTES))}."
    )


def _logged_model_order(qs: QuerySet, order_by: list[dict]) -> tuple[QuerySet, list[tuple[str, bool]]]:
    order = []
    annotations = {}
    for i, item in enumerate(order_by):
        field_name = item.get("field_name")
        if not field_name or not isinstance(field_name, str):
            raise InvalidParameter(f"Missing value for required parameter 'order_by[{i}].field_name'.")
        ascending = item.get("ascending", True) is not False
        keys = parse_order_by([field_name])
        if not keys:  # blank
            raise InvalidParameter(f"Missing value for required parameter 'order_by[{i}].field_name'.")
        ctype, key = keys[0].type, keys[0].key
        if ctype == "metric":
            prefix = f"ob{i}"
            points = Metric.objects.filter(model_id=OuterRef("pk"), key=key)
            if item.get("dataset_name"):
                points = points.filter(dataset_name=item["dataset_name"])
            if item.get("dataset_digest"):
                points = points.filter(dataset_digest=item["dataset_digest"])
            points = points.order_by("-step", "-timestamp", "-value")
            ann, fields = _order_annotations(
                prefix,
                Subquery(points.values("value")[:1], output_field=FloatField()),
                default=Value(0.0, output_field=FloatField()),
                nan=Subquery(points.values("is_nan")[:1], output_field=BooleanField()),
            )
            annotations.update(ann)
            order.append((fields[0], False))
            order.append((fields[1], not ascending))
        elif key in LOGGED_MODEL_STRING_ATTRIBUTES and key != "source_run_id":
            order.append((LOGGED_MODEL_STRING_ATTRIBUTES[key], not ascending))
        elif key in LOGGED_MODEL_NUMERIC_ATTRIBUTES or key == "experiment_id":
            order.append((LOGGED_MODEL_NUMERIC_ATTRIBUTES.get(key, "experiment_id"), not ascending))
        else:
            raise InvalidParameter(f"Invalid order by field name '{field_name}'.")
    if annotations:
        qs = qs.annotate(**annotations)
    if not order:
        order.append(("creation_timestamp_ms", True))
    order.append(("model_id", False))
    return qs, order


def search_logged_models(*, user, experiment_ids: list, filter_string: str | None, order_by: list[dict],
                         max_results: int, page_token: str | None, datasets: list[dict] = ()) -> tuple[list[LoggedModel], str | None]:
    ids = [parse_experiment_id(e) for e in experiment_ids]
    qs = LoggedModel.objects.active().filter(experiment__in=experiments_visible_to(user).filter(pk__in=ids))
    dataset_q = _dataset_q(list(datasets))
    clauses = parse_filter(filter_string)
    for clause in clauses:
        qs = qs.filter(_logged_model_clause_q(clause, dataset_q))
    if dataset_q is not None and not any(c.type == "metric" for c in clauses):
        # Datasets without a metric filter: models with any metric on those datasets.
        qs = qs.filter(Exists(Metric.objects.filter(dataset_q, model_id=OuterRef("pk"))))
    qs, order = _logged_model_order(qs, order_by)
    rows, token = keyset_page(qs.for_mlflow(), order=order, max_results=max_results, page_token=page_token,
                              kind=_kind("logged-models", order))
    return attach_model_metrics(rows), token
