"""registered-models/search and model-versions/search: MLflow's filter and order_by grammar
(parsed by core.filters) turned into ORM filters, keyset-paged by core.api.keyset_page."""

from django.db.models import Exists, OuterRef, Q, Subquery

from core.errors import InvalidParameter
from core.filters import Clause, like_to_regex, parse_filter, parse_order_by
from registry.models import ModelVersionTag, RegisteredModel, RegisteredModelTag

STRING_COMPARATORS = ("=", "!=", "LIKE", "ILIKE")
NUMERIC_COMPARATORS = ("=", "!=", "<", "<=", ">", ">=")

RM_ATTRIBUTES = {"name": "name", "creation_timestamp": "creation_timestamp", "last_updated_timestamp": "last_updated_timestamp",
                 "timestamp": "last_updated_timestamp"}
RM_ORDER_KEYS = {"name": "name", "timestamp": "last_updated_timestamp", "last_updated_timestamp": "last_updated_timestamp",
                 "creation_timestamp": "creation_timestamp"}

MV_ATTRIBUTES = {
    "name": "registered_model__name",
    "run_id": "run_id",
    "source_path": "source",
    "source": "source",
    "version_number": "version",
    "creation_timestamp": "creation_timestamp",
    "last_updated_timestamp": "last_updated_timestamp",
    "timestamp": "last_updated_timestamp",
    "current_stage": "current_stage",
    "status": "status",
    "user_id": "user_id",
}
MV_NUMERIC = {"version": int, "creation_timestamp": int, "last_updated_timestamp": int}
MV_LIST = {"run_id", "registered_model__name", "current_stage", "version", "status"}
MV_ORDER_KEYS = {
    "name": "registered_model__name",
    "version_number": "version",
    "creation_timestamp": "creation_timestamp",
    "timestamp": "last_updated_timestamp",
    "last_updated_timestamp": "last_updated_timestamp",
}


def _keys_text(keys) -> str:
    return "{" + ", ".join(f"'{k}'" for k in sorted(keys)) + "}"


def _string_q(field: str, comparator: str, value) -> Q:
    if not isinstance(value, str):
        raise InvalidParameter(f"Expected a quoted string value for '{field.split('__')[-1]}', got {value!r}")
    if comparator == "=":
        return Q(**{field: value})
    if comparator == "!=":
        return ~Q(**{field: value})
    if comparator == "LIKE":
        return Q(**{f"{field}__regex": like_to_regex(value)})
    if comparator == "ILIKE":
        return Q(**{f"{field}__iregex": like_to_regex(value)})
    raise InvalidParameter(f"Invalid comparator '{comparator}' for a string attribute")


def _number(value, cast=int):
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise InvalidParameter(f"Expected a number, got '{value}'") from None
    return cast(value) if cast is int and float(value).is_integer() else value


def _numeric_q(field: str, comparator: str, value) -> Q:
    if comparator not in NUMERIC_COMPARATORS:
        raise InvalidParameter(f"Invalid comparator '{comparator}' for a numeric attribute; use one of {', '.join(NUMERIC_COMPARATORS)}")
    value = _number(value)
    lookup = {"=": "", "<": "__lt", "<=": "__lte", ">": "__gt", ">=": "__gte"}
    if comparator == "!=":
        return ~Q(**{field: value})
    return Q(**{f"{field}{lookup[comparator]}": value})


def _tag_q(tag_model, fk: str, clause: Clause) -> Q:
    """Tag clauses; `!=` (and NOT LIKE forms) are true for objects without the tag, as on MLflow."""
    base = tag_model.objects.filter(**{fk: OuterRef("pk")}, key=clause.key)
    c, v = clause.comparator, clause.value
    if c in ("IS NULL", "IS NOT NULL"):
        exists = Exists(base)
        return ~Q(exists) if c == "IS NULL" else Q(exists)
    if c in ("IN", "NOT IN"):
        exists = Exists(base.filter(value__in=v))
        return Q(exists) if c == "IN" else ~Q(exists)
    if not isinstance(v, str):
        raise InvalidParameter(f"Expected a quoted string value for tag '{clause.key}', got {v}")
    if c == "=":
        return Q(Exists(base.filter(value=v)))
    if c == "!=":
        return ~Q(Exists(base.filter(value=v)))
    if c == "LIKE":
        return Q(Exists(base.filter(value__regex=like_to_regex(v))))
    if c == "ILIKE":
        return Q(Exists(base.filter(value__iregex=like_to_regex(v))))
    raise InvalidParameter(f"Invalid comparator '{c}' for tags; use one of =, !=, LIKE, ILIKE")


def filter_registered_models(queryset, filter_string: str | None):
    for clause in parse_filter(filter_string):
        if clause.type == "tag":
            queryset = queryset.filter(_tag_q(RegisteredModelTag, "model", clause))
        elif clause.type == "attribute":
            field = RM_ATTRIBUTES.get(clause.key)
            if field is None:
                raise InvalidParameter(
                    f"Invalid attribute key '{clause.key}' specified. Valid keys are '{_keys_text(RM_ATTRIBUTES)}'"
                )
            if field == "name":
                if clause.comparator in ("IN", "NOT IN"):
                    q = Q(name__in=clause.value)
                    queryset = queryset.filter(q if clause.comparator == "IN" else ~q)
                elif clause.comparator not in STRING_COMPARATORS:
                    raise InvalidParameter(f"Invalid comparator for attribute: {clause.comparator}")
                else:
                    queryset = queryset.filter(_string_q("name", clause.comparator, clause.value))
            else:
                queryset = queryset.filter(_numeric_q(field, clause.comparator, clause.value))
        else:
            raise InvalidParameter(
                f"Invalid filter key type '{clause.type}' for registered models: use name, tags.<key> or a timestamp."
            )
    return queryset


def order_registered_models(order_by: list[str]) -> list[tuple[str, bool]]:
    order: list[tuple[str, bool]] = []
    for key in parse_order_by(order_by):
        if key.type != "attribute" or key.key not in RM_ORDER_KEYS:
            raise InvalidParameter(
                f"Invalid order by key '{key.key}' specified. Valid keys are '{_keys_text(RM_ORDER_KEYS)}'"
            )
        field = RM_ORDER_KEYS[key.key]
        _refuse_duplicate(field, order, order_by)
        order.append((field, not key.ascending))
    if "name" not in [f for f, _ in order]:
        order.append(("name", False))
    return order


def filter_model_versions(queryset, filter_string: str | None):
    for clause in parse_filter(filter_string):
        if clause.type == "tag":
            queryset = queryset.filter(_tag_q(ModelVersionTag, "version", clause))
            continue
        if clause.type != "attribute":
            raise InvalidParameter(
                f"Invalid filter key type '{clause.type}' for model versions: use name, run_id, version_number, "
                "source_path, tags.<key> or a timestamp."
            )
        field = MV_ATTRIBUTES.get(clause.key)
        if field is None:
            raise InvalidParameter(
                f"Invalid attribute key '{clause.key}' specified. Valid keys are '{_keys_text(MV_ATTRIBUTES)}'"
            )
        c, v = clause.comparator, clause.value
        if c in ("IN", "NOT IN"):
            if field not in MV_LIST:
                raise InvalidParameter(f"Invalid comparator '{c}' for attribute '{clause.key}'")
            values = [_number(x) for x in v] if field in MV_NUMERIC else v
            q = Q(**{f"{field}__in": values})
            queryset = queryset.filter(q if c == "IN" else ~q)
        elif field == "registered_model__name" and c == "=" and isinstance(v, str):
            # The model's id as an InitPlan, not a join: the (model, -last_updated, -version)
            # index then serves the page, however many versions other models have.
            queryset = queryset.filter(registered_model_id=Subquery(RegisteredModel.objects.filter(name=v).values("pk")[:1]))
        elif field in MV_NUMERIC:
            queryset = queryset.filter(_numeric_q(field, c, v))
        elif c in STRING_COMPARATORS:
            queryset = queryset.filter(_string_q(field, c, v))
        else:
            raise InvalidParameter(f"Invalid comparator for attribute: {c}")
    return queryset


def order_model_versions(order_by: list[str]) -> list[tuple[str, bool]]:
    order: list[tuple[str, bool]] = []
    keys = parse_order_by(order_by)
    if not keys:
        return [("last_updated_timestamp", True), ("registered_model__name", False), ("version", True), ("id", False)]
    for key in keys:
        if key.type != "attribute" or key.key not in MV_ORDER_KEYS:
            raise InvalidParameter(
                f"Invalid order by key '{key.key}' specified. Valid keys are '{_keys_text(MV_ORDER_KEYS)}'"
            )
        field = MV_ORDER_KEYS[key.key]
        _refuse_duplicate(field, order, order_by)
        order.append((field, not key.ascending))
    # MLflow's tie-breakers after the caller's keys: name ascending, then the newest version first.
    fields = [f for f, _ in order]
    if "registered_model__name" not in fields:
        order.append(("registered_model__name", False))
    if "version" not in fields:
        order.append(("version", True))
    order.append(("id", False))
    return order


def _refuse_duplicate(field: str, order: list[tuple[str, bool]], order_by: list[str]) -> None:
    if field in [f for f, _ in order]:
        raise InvalidParameter(f"`order_by` contains duplicate fields: {order_by}")
