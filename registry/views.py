"""HTML pages of the model registry: access → service → render.

One template per page; the regions htmx swaps are `{% partialdef <dom-id> inline %}` blocks,
rendered alone (`"page.html#dom-id"`) for an htmx request. Every page runs a fixed number of
queries whatever the number of rows (keyset paging, one query per kind of row on screen).

The pages show governance and monitoring beside the registry (requests, reviews, comments, who
watches): those apps add their regions' context through PAGE_CONTEXT providers they register in
their AppConfig.ready(); the registry never imports them.
"""

import mimetypes
import posixpath
from collections import defaultdict

from django.db.models import Q
from django.http import FileResponse, Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from core import artifacts as artifact_store
from core import permissions as perms
from core.api import keyset_page
from core.errors import DoesNotExist, InvalidParameter, MlflowError
from core.pages import ms_to_datetime, page_links, query_string, wants_partial  # noqa: F401  (re-exported to approvals' views)
from core.pages import or_404 as _or_404
from core.pages import markdown_snippet, render_markdown
from core.validation import loads_bounded
from registry import access, reads, services
from registry.models import (
    Event,
    ModelVersion,
    RegisteredModel,
    RegisteredModelAlias,
    StageTransition,
)

MODELS_PER_PAGE = 50
VERSIONS_PER_PAGE = 50
HISTORY_ON_PAGE = 20
HISTORY_PER_PAGE = 100
ACTIVITY_ON_PAGE = 20
MAX_COMPARE = 10
PREVIEW_BYTES = 64 * 1024
MODEL_SORTS = {
    "name": [("name", False)],
    "-name": [("name", True)],
    "updated": [("last_updated_timestamp", False), ("id", False)],
    "-updated": [("last_updated_timestamp", True), ("id", True)],
}


# --------------------------------------------------------------------------- helpers


def get_model(user, name: str, min_level: str = perms.CAN_READ) -> tuple[RegisteredModel, str]:
    """(model, the user's level on it); 404 when invisible, 403 below `min_level`."""
    model = _or_404(access.get_registered_model_at_level, user, name, min_level=min_level)
    return model, perms.effective_level(user, model)


def get_version(user, name: str, version: int, min_level: str = perms.CAN_READ) -> tuple[ModelVersion, str]:
    mv = _or_404(access.get_model_version_at_level, user, name, version, min_level=min_level)
    return mv, perms.effective_level(user, mv.registered_model)


# Stage chips in lists: the version serving traffic first.
STAGE_ORDER = {"Production": 0, "Staging": 1, "None": 2, "Archived": 4}


def model_url(model) -> str:
    return reverse("registry:model_detail", args=[model.name])


def version_url(name: str, version: int) -> str:
    return reverse("registry:model_version_detail", args=[name, version])


def _aliases_by_version(model) -> dict[int, list[str]]:
    """{version pk: [alias, …]} from the model's prefetched aliases."""
    out = defaultdict(list)
    for alias in model.aliases.all():
        out[alias.version_id].append(alias.alias)
    return out


def versions_by_run(user, run_ids: list[str]) -> dict[str, list]:
    """{run id: the versions registered from it that `user` may see}, in one query, each with its
    page's `url`: what the tracking pages show (registered in RegistryConfig.ready()). Visibility is
    the registry's decision; the reverse relation would leak versions of private models."""
    by_run = defaultdict(list)
    versions = (
        access.model_versions_visible_to(user).filter(source_run_id__in=run_ids).select_related("registered_model")
        .order_by("registered_model__name", "version")
    )
    for version in versions:
        version.url = version_url(version.registered_model.name, version.version)
        by_run[version.source_run_id].append(version)
    return by_run


# --------------------------------------------------------------------------- what higher apps add

# The registry's pages show governance and monitoring beside the registry (requests, reviews,
# comments, who watches), but the registry never imports those apps: they add to the pages here
# from their AppConfig.ready(). A provider returns template context for one region of a page:
#   "model_detail"      provider(request, *, model, level)  -> e.g. {"open_requests": [...], "watching": True}
#   "version_workflow"  provider(request, *, mv, level)     -> e.g. {"requests": [...]}
#   "version_detail"    provider(request, *, mv, level)     -> e.g. {"comments": [...]}
#   "version_history"   provider(request, *, mv)            -> e.g. {"all_requests": [...]}
# and MODEL_LIST_ANNOTATIONS names queryset annotations for the models list (e.g. pending_requests).
PAGE_CONTEXT: dict[str, list] = {"model_detail": [], "version_workflow": [], "version_detail": [], "version_history": []}
MODEL_LIST_ANNOTATIONS: dict = {}


def register_page_context(page: str, provider) -> None:
    if provider not in PAGE_CONTEXT[page]:
        PAGE_CONTEXT[page].append(provider)


def register_model_list_annotation(name: str, expression) -> None:
    """`expression()` -> a queryset annotation over RegisteredModel (one subquery, no per-row query)."""
    MODEL_LIST_ANNOTATIONS[name] = expression


def contributed(page: str, request, **objects) -> dict:
    context = {}
    for provider in PAGE_CONTEXT[page]:
        context.update(provider(request, **objects))
    return context


# --------------------------------------------------------------------------- registry home


def _latest_per_stage(model_ids: list[int]) -> dict[int, list[ModelVersion]]:
    """{model pk: [newest version in each stage]} in two queries: the ids from a loose index scan
    of the (model, stage, -version) index (registry.reads: one probe per stage, so neither a
    correlated subquery per version nor a GROUP BY over every version of the page's models), then
    those rows."""
    if not model_ids:
        return {}
    out: dict[int, list[ModelVersion]] = {}
    for mv in ModelVersion.objects.filter(pk__in=reads.latest_version_ids(model_ids)).only("registered_model_id", "version", "current_stage", "status").order_by("registered_model_id", "version"):
        out.setdefault(mv.registered_model_id, []).append(mv)
    return out


@require_GET
def model_list(request):
    """Registered models with the newest version per stage, aliases, pending requests; live search,
    sort and keyset paging, in a constant number of queries."""
    query = request.GET.get("q", "").strip()
    sort = request.GET.get("sort", "name")
    if sort not in MODEL_SORTS:
        sort = "name"
    models = perms.filter_visible(request.user, RegisteredModel.objects.all())
    if query:
        models = models.filter(Q(name__icontains=query) | Q(description__icontains=query))
    models = services.registered_model_queryset(models).annotate(**{name: expression() for name, expression in MODEL_LIST_ANNOTATIONS.items()})
    page_error = ""
    try:
        rows, next_token = keyset_page(models, order=MODEL_SORTS[sort], max_results=MODELS_PER_PAGE,
                                       page_token=request.GET.get("page_token") or None, kind=f"ui-models-{sort}")
    except InvalidParameter as exc:
        rows, next_token, page_error = [], None, exc.message
    latest = _latest_per_stage([m.pk for m in rows])
    for model in rows:
        model.latest = sorted(latest.get(model.pk, []), key=lambda mv: (STAGE_ORDER.get(mv.current_stage, 3), -mv.version))
        model.updated = ms_to_datetime(model.last_updated_timestamp)
        model.url = model_url(model)
        model.snippet = markdown_snippet(model.description)
        model.shown_tags = [t for t in model.tags.all() if not t.key.startswith("mlflow.")]

    def sort_link(field: str, first: str) -> str:
        """Clicking the sorted column flips it; another column starts in its natural direction."""
        new = ("-" + field) if sort == field else field if sort == "-" + field else first
        return "?" + query_string(request, sort=new, page_token=None)

    context = {
        "models": rows,
        "query": query,
        "sort": sort,
        "sort_links": {"name": sort_link("name", "name"), "updated": sort_link("updated", "-updated")},
        "page_error": page_error,
        **page_links(request, next_token),
    }
    template = "registry/model_list.html"
    return render(request, template + "#model-table" if wants_partial(request, "model-table") else template, context)


# --------------------------------------------------------------------------- model page


def _versions_page(request, model) -> dict:
    """One keyset page of the model's versions (newest first), optionally of one stage."""
    stage = request.GET.get("stage", "")
    versions = ModelVersion.objects.filter(registered_model=model).select_related("creator")
    if stage:
        versions = versions.filter(current_stage=stage)
    error = ""
    try:
        rows, next_token = keyset_page(versions, order=[("version", True)], max_results=VERSIONS_PER_PAGE,
                                       page_token=request.GET.get("page_token") or None, kind="ui-versions")
    except InvalidParameter as exc:
        rows, next_token, error = [], None, exc.message
    aliases = defaultdict(list)
    for pk, alias in RegisteredModelAlias.objects.filter(version__in=[v.pk for v in rows]).values_list("version_id", "alias"):
        aliases[pk].append(alias)
    run_names, key_metric, metric_of = _source_runs(model, rows)
    for mv in rows:
        mv.alias_names = sorted(aliases.get(mv.pk, []))
        mv.created = ms_to_datetime(mv.creation_timestamp)
        mv.url = version_url(model.name, mv.version)
        mv.run_name = run_names.get(mv.run_id, "")
        value = metric_of.get(mv.run_id)
        mv.key_metric_value = None if value is None else f"{value:.4g}"
    return {
        "versions": rows,
        "key_metric": key_metric,
        "stage_filter": stage,
        "versions_error": error,
        **page_links(request, next_token),
    }


def _source_runs(model, versions) -> tuple[dict, str, dict]:
    """({run id: run name}, the key metric, {run id: its value}) for a page of versions, in two queries.
    The key metric is the model's `key_metric` tag, else the first (alphabetical) metric the runs log."""
    from tracking.models import LatestMetric, Run

    run_ids = {mv.run_id for mv in versions if mv.run_id}
    if not run_ids:
        return {}, "", {}
    names = dict(Run.objects.filter(run_uuid__in=run_ids).values_list("run_uuid", "name"))
    wanted = next((t.value for t in model.tags.all() if t.key == "key_metric"), "")
    metrics = defaultdict(dict)
    for rid, key, value in LatestMetric.objects.filter(run_id__in=run_ids).values_list("run_id", "key", "value"):
        metrics[key][rid] = value
    key = wanted if wanted in metrics else min(metrics, default="")
    return names, key, metrics.get(key, {})


def _model_meta_context(request, model, level, *, form: dict | None = None) -> dict:
    """What the #model-meta region shows: description, tags, aliases and their forms."""
    form = form or {}
    aliases = sorted(((a.alias, a.version.version) for a in model.aliases.all()), key=lambda a: a[0])
    return {
        "model": model,
        "description_html": render_markdown(model.description),
        "tags": [(t.key, t.value) for t in model.tags.all()],
        "aliases": aliases,
        "can_edit": perms.at_least(level, perms.CAN_EDIT),
        "form": form,
        "editing_description": form.get("editing_description", False),
    }


def _model_with_meta(user, name, min_level=perms.CAN_READ):
    model, level = get_model(user, name, min_level)
    # Re-read with tags and aliases prefetched (two queries), as every list does.
    model = services.registered_model_queryset(RegisteredModel.objects.filter(pk=model.pk)).select_related("owner").get()
    return model, level


def _activity_feed(model, before: str | None = None) -> dict:
    """One page of the model's events, newest first, older than event id `before`; and the cursor of the next page."""
    events = Event.objects.filter(model=model).select_related("actor").order_by("-id")
    cursor = int(before) if before and before.isdigit() else None
    if cursor is not None:
        events = events.filter(id__lt=cursor)
    events = list(events[:ACTIVITY_ON_PAGE + 1])
    older = events[ACTIVITY_ON_PAGE - 1].id if len(events) > ACTIVITY_ON_PAGE else None
    events = events[:ACTIVITY_ON_PAGE]
    for event in events:
        event.when = ms_to_datetime(event.created)
        event.label = event.type.replace("_", " ").replace(".", ": ")
    return {"activity": events, "activity_older": older, "activity_paged": cursor is not None}


@require_GET
def model_detail(request, name: str):
    model, level = _model_with_meta(request.user, name)
    if wants_partial(request, "versions-table") and request.htmx.target == "versions-table":
        return render(request, "registry/model_detail.html#versions-table", {"model": model, **_versions_page(request, model)})
    feed = _activity_feed(model, request.GET.get("activity_before"))
    if wants_partial(request, "activity-feed") and request.htmx.target == "activity-feed":
        return render(request, "registry/model_detail.html#activity-feed", {"model": model, **feed})
    context = {
        **_model_meta_context(request, model, level),
        **_versions_page(request, model),
        "level": level,
        "stages": services.stage_names(),
        **feed,
        "can_manage": perms.at_least(level, perms.CAN_MANAGE),
        **contributed("model_detail", request, model=model, level=level),
        "created": ms_to_datetime(model.creation_timestamp),
        "updated": ms_to_datetime(model.last_updated_timestamp),
        "tab": "overview",
    }
    return render(request, "registry/model_detail.html", context)


def _meta_response(request, name: str, *, error: str = "", form: dict | None = None):
    """After a change of description/tags/aliases: the #model-meta region for htmx, else PRG;
    a failed change comes back 200 with the error next to the form and the input kept."""
    model, level = _model_with_meta(request.user, name)
    form = {**(form or {}), "error": error}
    if request.htmx:
        return render(request, "registry/model_detail.html#model-meta", _model_meta_context(request, model, level, form=form))
    if error:
        context = {
            **_model_meta_context(request, model, level, form=form), **_versions_page(request, model), "level": level,
            "stages": services.stage_names(), **_activity_feed(model), "can_manage": perms.at_least(level, perms.CAN_MANAGE),
            **contributed("model_detail", request, model=model, level=level), "tab": "overview",
        }
        return render(request, "registry/model_detail.html", context)
    return redirect(model_url(model))


@require_POST
def model_edit(request, name: str, what: str):
    """Description, tag and alias changes of a registered model (CAN_EDIT), one service call each."""
    model, _ = get_model(request.user, name, perms.CAN_EDIT)
    post = request.POST
    form = {"what": what}
    try:
        if what == "description":
            form.update(description=post.get("description", ""), editing_description=True)
            services.update_registered_model(name=model.name, user=request.user, description=post.get("description", ""))
        elif what == "set-tag":
            form.update(tag_key=post.get("key", ""), tag_value=post.get("value", ""))
            services.set_registered_model_tag(name=model.name, key=post.get("key", "").strip(), value=post.get("value", ""), user=request.user)
        elif what == "delete-tag":
            services.delete_registered_model_tag(name=model.name, key=post.get("key", ""), user=request.user)
        elif what == "set-alias":
            form.update(alias=post.get("alias", ""), alias_version=post.get("version", ""))
            version = post.get("version", "").strip()
            if not version.isdigit():
                raise InvalidParameter("Choose the version number the alias points at.")
            services.set_registered_model_alias(name=model.name, alias=post.get("alias", "").strip(), version=int(version), user=request.user)
        elif what == "delete-alias":
            services.delete_registered_model_alias(name=model.name, alias=post.get("alias", ""), user=request.user)
        else:
            raise Http404("Unknown change")
    except MlflowError as exc:
        return _meta_response(request, model.name, error=exc.message, form=form)
    return _meta_response(request, model.name)


# --------------------------------------------------------------------------- version page


def _history(mv, *, limit: int | None = HISTORY_ON_PAGE, page_token: str | None = None) -> tuple[list, str | None]:
    """The version's stage transitions, newest first, each with the side effects (versions
    archived by it) and its request; constant queries."""
    qs = StageTransition.objects.filter(version=mv).select_related("user")
    if limit is None:
        rows, next_token = keyset_page(qs, order=[("timestamp", True), ("id", True)], max_results=HISTORY_PER_PAGE,
                                       page_token=page_token, kind="ui-history")
    else:
        rows, next_token = list(qs.order_by("-timestamp", "-id")[:limit]), None
    stamps = {row.timestamp for row in rows if not row.is_system}
    effects = defaultdict(list)
    if stamps:
        for other in (
            StageTransition.objects.filter(version__registered_model_id=mv.registered_model_id, is_system=True, timestamp__in=stamps)
            .exclude(version=mv).select_related("version").order_by("version__version")
        ):
            effects[other.timestamp].append(other)
    for row in rows:
        row.when = ms_to_datetime(row.timestamp)
        row.side_effects = effects.get(row.timestamp, []) if not row.is_system else []
    return rows, next_token


def workflow_context(request, mv, level, *, error: str = "", form: dict | None = None) -> dict:
    """The #version-workflow region: stage, status, pending requests with their review forms, the
    transition history. Shared with the approvals views that change it (the requests come from
    the "version_workflow" providers)."""
    history, _ = _history(mv)
    return {
        "mv": mv,
        "model": mv.registered_model,
        "level": level,
        **contributed("version_workflow", request, mv=mv, level=level),
        "history": history,
        "history_url": reverse("registry:model_version_history", args=[mv.registered_model.name, mv.version]),
        "workflow_error": error,
        "workflow_form": form or {},
    }


def _version_meta_context(request, mv, level, *, form: dict | None = None) -> dict:
    model = mv.registered_model
    form = form or {}
    return {
        "mv": mv,
        "model": model,
        "description_html": render_markdown(mv.description),
        "tags": sorted((t.key, t.value) for t in mv.tags.all()),
        "aliases": sorted(a.alias for a in mv.aliases.all()),
        "can_edit": perms.at_least(level, perms.CAN_EDIT),
        "form": form,
        "editing_description": form.get("editing_description", False),
    }


def _artifacts(mv, path: str = "") -> dict:
    """The version's own copy of its files (READY versions), one folder level."""
    if mv.is_external:
        return {"files": [], "files_note": f"External source, not copied: the files stay at {mv.source}."}
    if mv.status != ModelVersion.READY or not mv.storage_path:
        return {"files": [], "files_note": "Files appear once registration is READY."}
    folder = mv.storage_path.strip("/")
    try:
        full = artifact_store.join(folder, path) if path else folder
    except InvalidParameter as exc:
        return {"files": [], "files_note": exc.message}
    entries = artifact_store.list_dir(full)
    for entry in entries:
        entry["rel"] = f"{path}/{entry['path']}" if path else entry["path"]
    return {"files": entries, "files_path": path, "files_parent": posixpath.dirname(path) if path else None, "files_note": ""}


def _read_version_file(mv, name: str) -> str:
    if mv.status != ModelVersion.READY or not mv.storage_path or mv.is_external:
        return ""
    try:
        full = artifact_store.join(mv.storage_path.strip("/"), name)
        return artifact_store.read_text(full, max_bytes=PREVIEW_BYTES) if artifact_store.is_file(full) else ""
    except (MlflowError, OSError):
        return ""


def _signature(mv) -> dict | None:
    """The MLmodel signature as lists of columns ({name, type}) for the inputs and outputs."""
    sig = mv.signature
    if not sig:
        return None
    out = {}
    for part in ("inputs", "outputs", "params"):
        raw = sig.get(part)
        if not raw:
            continue
        try:
            cols = loads_bounded(raw) if isinstance(raw, str) else raw
        except ValueError:
            cols = []
        out[part] = [
            {"name": c.get("name", "—"), "type": c.get("type", "") if c.get("type") != "tensor" else f"tensor {c.get('tensor-spec', {}).get('dtype', '')}"}
            for c in cols if isinstance(c, dict)
        ]
    return out


def _version_context(request, mv, level) -> dict:
    run = mv.source_run if mv.source_run_id else None
    from tracking.models import LoggedModel

    logged_model = LoggedModel.objects.filter(model_id=mv.model_id).only("model_id", "name", "experiment_id").first() if mv.model_id else None
    return {
        **_version_meta_context(request, mv, level),
        **workflow_context(request, mv, level),
        **contributed("version_detail", request, mv=mv, level=level),
        **_artifacts(mv, request.GET.get("path", "").strip("/")),
        "run": run,
        "logged_model": logged_model,
        "signature": _signature(mv),
        "stages": [s for s in services.stage_names() if s != mv.current_stage],
        "created": ms_to_datetime(mv.creation_timestamp),
        "updated": ms_to_datetime(mv.last_updated_timestamp),
        "is_pending": mv.status == ModelVersion.PENDING,
    }


def _load_version(request, name: str, version: int, min_level=perms.CAN_READ):
    mv, level = get_version(request.user, name, version, min_level)
    mv = (
        ModelVersion.objects.select_related("registered_model", "source_run", "creator").prefetch_related("tags", "aliases")
        .get(pk=mv.pk)
    )
    return mv, level


@require_GET
def model_version_detail(request, name: str, version: int):
    mv, level = _load_version(request, name, version)
    if wants_partial(request) and request.htmx.target == "version-status":
        response = render(request, "registry/model_version_detail.html#version-status", {"mv": mv, "model": mv.registered_model})
        if mv.status != ModelVersion.PENDING:
            # Registration finished: the file list (empty while pending) follows out of band.
            files = render(request, "registry/model_version_detail.html#version-files",
                           {"mv": mv, "model": mv.registered_model, **_artifacts(mv)}).content
            response.content += files.replace(b'<div id="version-files">', b'<div id="version-files" hx-swap-oob="true">', 1)
        return response
    if wants_partial(request) and request.htmx.target == "version-files":
        return render(request, "registry/model_version_detail.html#version-files", {"mv": mv, "model": mv.registered_model, **_artifacts(mv, request.GET.get("path", "").strip("/"))})
    if wants_partial(request) and request.htmx.target == "version-workflow":
        return render(request, "registry/model_version_detail.html#version-workflow", workflow_context(request, mv, level))
    return render(request, "registry/model_version_detail.html", _version_context(request, mv, level))


@require_POST
def model_version_edit(request, name: str, version: int, what: str):
    """Description and tag changes of one version (CAN_EDIT)."""
    mv, level = _load_version(request, name, version, perms.CAN_EDIT)
    post = request.POST
    form = {"what": what}
    error = ""
    try:
        if what == "description":
            form.update(description=post.get("description", ""), editing_description=True)
            services.update_model_version(name=name, version=version, user=request.user, description=post.get("description", ""))
        elif what == "set-tag":
            form.update(tag_key=post.get("key", ""), tag_value=post.get("value", ""))
            services.set_model_version_tag(name=name, version=version, key=post.get("key", "").strip(), value=post.get("value", ""), user=request.user)
        elif what == "delete-tag":
            services.delete_model_version_tag(name=name, version=version, key=post.get("key", ""), user=request.user)
        elif what == "set-alias":
            form.update(alias=post.get("alias", ""))
            services.set_registered_model_alias(name=name, alias=post.get("alias", "").strip(), version=version, user=request.user)
        elif what == "delete-alias":
            services.delete_registered_model_alias(name=name, alias=post.get("alias", ""), user=request.user)
        else:
            raise Http404("Unknown change")
    except MlflowError as exc:
        error = exc.message
    mv, level = _load_version(request, name, version)
    form = {**form, "error": error} if error else {}
    if request.htmx:
        return render(request, "registry/model_version_detail.html#version-meta", _version_meta_context(request, mv, level, form=form))
    if error:
        context = _version_context(request, mv, level)
        context.update(_version_meta_context(request, mv, level, form=form))
        return render(request, "registry/model_version_detail.html", context)
    return redirect(version_url(name, version))


@require_GET
def model_version_history(request, name: str, version: int):
    """The transition history alone, keyset paged: the page a request or notification links to."""
    mv, level = _load_version(request, name, version)
    error = ""
    try:
        rows, next_token = _history(mv, limit=None, page_token=request.GET.get("page_token") or None)
    except InvalidParameter as exc:
        rows, next_token, error = [], None, exc.message
    context = {
        "mv": mv, "model": mv.registered_model, "history": rows, "history_error": error,
        **contributed("version_history", request, mv=mv),
        **page_links(request, next_token),
    }
    template = "registry/model_version_history.html"
    return render(request, template + "#history-table" if wants_partial(request, "history-table") else template, context)


@require_GET
def model_version_file(request, name: str, version: int, path: str):
    """Download one file of the version's own copy."""
    mv, _ = get_version(request.user, name, version)
    if mv.is_external:
        raise Http404("External source, not copied: this server holds no files for this version")
    if mv.status != ModelVersion.READY or not mv.storage_path:
        raise Http404("This version has no files yet")
    try:
        handle = artifact_store.open_file(artifact_store.join(mv.storage_path.strip("/"), path))
    except (DoesNotExist, InvalidParameter) as exc:
        raise Http404(exc.message) from None
    content_type = mimetypes.guess_type(path)[0] or "application/octet-stream"
    if content_type.startswith("text/") or "xml" in content_type or "svg" in content_type:
        content_type = "text/plain; charset=utf-8" if content_type.startswith("text/") else "application/octet-stream"
    response = FileResponse(handle, as_attachment=True, filename=posixpath.basename(path), content_type=content_type)
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


# --------------------------------------------------------------------------- compare versions


@require_GET
def model_version_compare(request, name: str):
    """Two or more versions side by side: source-run params and metrics, tags, signature, requirements."""
    from tracking.models import LatestMetric, Param

    model, level = get_model(request.user, name)
    wanted = []
    for raw in request.GET.getlist("versions"):
        for part in raw.split(","):
            if part.strip().isdigit() and int(part) not in wanted:
                wanted.append(int(part))
    wanted = wanted[:MAX_COMPARE]
    found = {mv.version: mv for mv in ModelVersion.objects.filter(registered_model=model, version__in=wanted).prefetch_related("tags")}
    missing = [v for v in wanted if v not in found]
    if missing:
        raise Http404(f"Model Version (name={model.name}, version={missing[0]}) not found")
    versions = [found[v] for v in wanted]
    run_ids = [mv.run_id for mv in versions if mv.run_id]
    params, metrics = defaultdict(dict), defaultdict(dict)
    for rid, key, value in Param.objects.filter(run_id__in=run_ids).values_list("run_id", "key", "value"):
        params[key][rid] = value
    for rid, key, value, is_nan in LatestMetric.objects.filter(run_id__in=run_ids).values_list("run_id", "key", "value", "is_nan"):
        metrics[key][rid] = "NaN" if is_nan else f"{value:.6g}"

    def by_run(values):
        rows = []
        for key in sorted(values):
            cells = [values[key].get(mv.run_id) if mv.run_id else None for mv in versions]
            rows.append({"key": key, "cells": cells, "differs": len({repr(c) for c in cells}) > 1})
        return rows

    tag_values = defaultdict(dict)
    for mv in versions:
        for tag in mv.tags.all():
            tag_values[tag.key][mv.pk] = tag.value
    tags = []
    for key in sorted(tag_values):
        cells = [tag_values[key].get(mv.pk) for mv in versions]
        tags.append({"key": key, "cells": cells, "differs": len(set(cells)) > 1})

    def per_version(label, func):
        cells = [func(mv) for mv in versions]
        return {"key": label, "cells": cells, "differs": len(set(cells)) > 1}

    def sig_text(mv, part):
        sig = _signature(mv) or {}
        return ", ".join(f"{c['name']}: {c['type']}" for c in sig.get(part, [])) or None

    details = [
        per_version("Stage", lambda mv: mv.current_stage),
        per_version("Status", lambda mv: mv.status),
        per_version("Source run", lambda mv: mv.run_id),
        per_version("Signature inputs", lambda mv: sig_text(mv, "inputs")),
        per_version("Signature outputs", lambda mv: sig_text(mv, "outputs")),
        per_version("Requirements", lambda mv: _read_version_file(mv, "requirements.txt").strip() or None),
    ]
    for mv in versions:
        mv.url = version_url(model.name, mv.version)
    context = {
        "model": model,
        "versions": versions,
        "only_differences": request.GET.get("diff") == "1",
        "sections": [("Version", details), ("Metrics (source run)", by_run(metrics)), ("Parameters (source run)", by_run(params)), ("Tags", tags)],
        "diff_query": query_string(request, diff="1"),
        "all_query": query_string(request, diff=None),
        "all_versions": list(ModelVersion.objects.filter(registered_model=model).order_by("-version").values_list("version", flat=True)[:200]),
        "wanted": wanted,
        "tab": "compare",
        "can_manage": perms.at_least(level, perms.CAN_MANAGE),
    }
    template = "registry/model_version_compare.html"
    return render(request, template + "#compare-table" if wants_partial(request, "compare-table") else template, context)
