"""The MLflow model-registry REST endpoints (spec §2.1 rows 24-44), thin over registry.services."""

from django.urls import path, re_path

from core import artifacts
from core.api import Params, api_view, keyset_page
from core.errors import invalid_value, missing_parameter
from registry import access, reads, search, services
from registry.models import ModelVersion
from tracking.artifacts import send_below

RM_MAX_RESULTS_DEFAULT, RM_MAX_RESULTS_MAX = 100, 1000
MV_MAX_RESULTS_DEFAULT, MV_MAX_RESULTS_MAX = 10000, 200000


# --------------------------------------------------------------------------- helpers


def _name(params: Params, field: str = "name") -> str:
    return params.string(field, required=True)


def _version(params: Params) -> int:
    # The wire type is a string; the real server rejects a JSON number.
    raw = params.raw("version")
    if not params.is_query and raw is not None and not isinstance(raw, str):
        raise invalid_value("version", raw)
    return params.version()


def _tag_value(params: Params) -> str:
    value = params.raw("value")
    if value is None:
        raise missing_parameter("value")
    if not isinstance(value, str):
        raise invalid_value("value", value)
    return value


def _tags(params: Params) -> list[dict]:
    tags = params.object_list("tags")
    for tag in tags:
        if not isinstance(tag.get("key"), str) or not tag.get("key"):
            raise missing_parameter("key")
        if tag.get("value") is not None and not isinstance(tag.get("value"), str):
            raise invalid_value("value", tag.get("value"))
    return tags


def _optional_string(params: Params, field: str) -> str | None:
    value = params.raw(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid_value(field, value)
    return value


def registered_model_json(model) -> dict:
    """One model with its tags, aliases and latest versions, as committed (one round trip)."""
    return reads.registered_model_json(reads.model_by_pk(model.pk))


def model_version_json(mv: ModelVersion) -> dict:
    """One version with its tags and aliases, as committed (one round trip)."""
    return reads.model_versions_json([mv.pk])[0]


# --------------------------------------------------------------------------- registered models


@api_view("POST")
def create_registered_model(request, params: Params):
    model = services.create_registered_model(
        name=_name(params), user=request.user, description=_optional_string(params, "description"), tags=_tags(params)
    )
    return {"registered_model": registered_model_json(model)}


@api_view("GET")
def get_registered_model(request, params: Params):
    name = _name(params)
    data = reads.registered_model_json(access.visible_model_sql(request.user, name))
    if data is None:
        raise access.not_found_model(name)
    return {"registered_model": data}


@api_view("PATCH")
def update_registered_model(request, params: Params):
    name = _name(params)
    if params.raw("description") is None:
        model = access.get_registered_model_for_user(request.user, name, action=access.EDIT)
    else:
        model = services.update_registered_model(name=name, user=request.user, description=_optional_string(params, "description"))
    return {"registered_model": registered_model_json(model)}


@api_view("POST")
def rename_registered_model(request, params: Params):
    model = services.rename_registered_model(name=_name(params), new_name=_name(params, "new_name"), user=request.user)
    return {"registered_model": registered_model_json(model)}


@api_view("DELETE")
def delete_registered_model(request, params: Params):
    services.delete_registered_model(name=_name(params), user=request.user)
    return {}


@api_view("GET")
def search_registered_models(request, params: Params):
    max_results = params.max_results(default=RM_MAX_RESULTS_DEFAULT, maximum=RM_MAX_RESULTS_MAX)
    if max_results == 0:
        return {}  # nothing asked for (the client never sends 0)
    queryset = search.filter_registered_models(access.registered_models_visible_to(request.user), params.string("filter"))
    order = search.order_registered_models(params.string_list("order_by"))
    rows, next_token = keyset_page(
        # Plain rows, not instances: registry.reads serialises them.
        queryset.values(*{*reads.RM_FIELDS, *(field for field, _ in order)}),
        order=order,
        max_results=max_results,
        page_token=params.string("page_token"),
        kind="registered_models",
    )
    result = {}
    if rows:
        result["registered_models"] = reads.registered_models_json(rows)
    if next_token:
        result["next_page_token"] = next_token
    return result


@api_view(("POST", "GET"))
def get_latest_versions(request, params: Params):
    # services.get_latest_versions' rule, read with plain SQL (registry.reads) on this hot path.
    name = _name(params)
    stages = [services.canonical_stage(s) for s in params.string_list("stages")] or None
    found, versions = reads.latest_versions_json(access.visible_model_sql(request.user, name), stages=stages)
    if not found:
        raise access.not_found_model(name)
    return {"model_versions": versions} if versions else {}


@api_view("POST")
def set_registered_model_tag(request, params: Params):
    name, key = _name(params), params.string("key", required=True)
    services.set_registered_model_tag(name=name, key=key, value=_tag_value(params), user=request.user)
    return {}


@api_view("DELETE")
def delete_registered_model_tag(request, params: Params):
    services.delete_registered_model_tag(name=_name(params), key=params.string("key", required=True), user=request.user)
    return {}


@api_view(("POST", "GET", "DELETE"))
def alias(request, params: Params):
    name, alias_name = _name(params), params.string("alias", required=True)
    if request.method == "GET":
        mv = services.get_model_version_by_alias(name=name, alias=alias_name, user=request.user)
        return {"model_version": mv.to_mlflow()}
    if request.method == "DELETE":
        services.delete_registered_model_alias(name=name, alias=alias_name, user=request.user)
        return {}
    services.set_registered_model_alias(name=name, alias=alias_name, version=_version(params), user=request.user)
    return {}


# --------------------------------------------------------------------------- model versions


@api_view("POST")
def create_model_version(request, params: Params):
    name, source = _name(params), params.string("source", required=True)
    mv = services.create_model_version(
        name=name,
        source=source,
        user=request.user,
        run_id=params.string("run_id"),
        model_id=params.string("model_id"),
        tags=_tags(params),
        run_link=params.string("run_link", default=""),
        description=params.string("description", default=""),
    )
    # With eager Celery the registration ran on commit, so this already says READY.
    return {"model_version": model_version_json(mv)}


@api_view("GET")
def get_model_version(request, params: Params):
    name, version = _name(params), _version(params)
    # An invisible model reads as a missing version: an outsider never learns it exists.
    data = reads.version_json(access.visible_model_sql(request.user, name), version)
    if data is None:
        raise access.not_found_version(name, version)
    return {"model_version": data}


@api_view("PATCH")
def update_model_version(request, params: Params):
    name, version = _name(params), _version(params)
    if params.raw("description") is None:
        mv = access.get_model_version_for_user(request.user, name, version, action=access.EDIT)
    else:
        mv = services.update_model_version(
            name=name, version=version, user=request.user, description=_optional_string(params, "description")
        )
    return {"model_version": model_version_json(mv)}


@api_view("POST")
def transition_model_version_stage(request, params: Params):
    name, version = _name(params), _version(params)
    stage = params.string("stage", required=True)
    mv = services.transition_model_version_stage(
        name=name,
        version=version,
        stage=stage,
        user=request.user,
        archive_existing_versions=params.boolean("archive_existing_versions"),
        comment=params.string("comment", default="") or "",
    )
    return {"model_version": model_version_json(mv)}


@api_view("DELETE")
def delete_model_version(request, params: Params):
    services.delete_model_version(name=_name(params), version=_version(params), user=request.user)
    return {}


@api_view("GET")
def search_model_versions(request, params: Params):
    max_results = params.max_results(default=MV_MAX_RESULTS_DEFAULT, maximum=MV_MAX_RESULTS_MAX)
    if max_results == 0:
        return {}
    queryset = search.filter_model_versions(access.model_versions_visible_to(request.user), params.string("filter"))
    order = search.order_model_versions(params.string_list("order_by"))
    rows, next_token = keyset_page(
        queryset.values(*dict.fromkeys(["id", *(field for field, _ in order)])),
        order=order,
        max_results=max_results,
        page_token=params.string("page_token"),
        kind="model_versions",
    )
    result = {}
    if rows:
        result["model_versions"] = reads.model_versions_json([row["id"] for row in rows])
    if next_token:
        result["next_page_token"] = next_token
    return result


@api_view("GET")
def get_model_version_download_uri(request, params: Params):
    name, version = _name(params), _version(params)
    mv = access.get_model_version_for_user(request.user, name, version)
    return {"artifact_uri": mv.download_uri()}


@api_view("GET")
def get_model_version_artifact(request, params: Params):
    """`GET /model-versions/get-artifact?name=&version=&path=`: one file of the version's download URI
    (its own copy once READY), for readers of the model; the path is checked before the version."""
    relative = artifacts.normalize_path(params.string("path", required=True))
    mv = access.get_model_version_for_user(request.user, _name(params), _version(params))
    return send_below(request.user, mv.download_uri(), relative)


@api_view("POST")
def set_model_version_tag(request, params: Params):
    name, version, key = _name(params), _version(params), params.string("key", required=True)
    services.set_model_version_tag(name=name, version=version, key=key, value=_tag_value(params), user=request.user)
    return {}


@api_view("DELETE")
def delete_model_version_tag(request, params: Params):
    name, version = _name(params), _version(params)
    services.delete_model_version_tag(name=name, version=version, key=params.string("key", required=True), user=request.user)
    return {}


urlpatterns = [
    path("registered-models/create", create_registered_model),
    path("registered-models/get", get_registered_model),
    path("registered-models/update", update_registered_model),
    path("registered-models/rename", rename_registered_model),
    path("registered-models/delete", delete_registered_model),
    path("registered-models/search", search_registered_models),
    path("registered-models/get-latest-versions", get_latest_versions),
    path("registered-models/set-tag", set_registered_model_tag),
    path("registered-models/delete-tag", delete_registered_model_tag),
    path("registered-models/alias", alias),
    path("model-versions/create", create_model_version),
    path("model-versions/get", get_model_version),
    path("model-versions/update", update_model_version),
    path("model-versions/transition-stage", transition_model_version_stage),
    path("model-versions/delete", delete_model_version),
    path("model-versions/search", search_model_versions),
    path("model-versions/get-download-uri", get_model_version_download_uri),
    path("model-versions/set-tag", set_model_version_tag),
    path("model-versions/delete-tag", delete_model_version_tag),
]

# At the site root; MLflow's own tests call it as `//model-versions/get-artifact` too.
root_urlpatterns = [
    re_path(r"^/*model-versions/get-artifact$", get_model_version_artifact),
]
