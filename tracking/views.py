"""HTML pages for experiments and runs: access → query → render.

Each page is one template; the regions htmx swaps are `{% partialdef <dom-id> inline %}`
blocks rendered alone (`"page.html#dom-id"`) when the request comes from htmx.
Every page runs a fixed number of queries whatever the number of rows: values for
the rows on screen come from one query per kind (params, metrics, tags), never per row.
"""

import csv
import itertools
import json
import mimetypes
import posixpath
import re
from collections import defaultdict
from urllib.parse import unquote, urlencode

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.db.models import Count, Q
from django.http import FileResponse, Http404, QueryDict
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.views.decorators.http import require_GET, require_POST

from core import artifacts as artifact_store
from core import charts
from core.api import keyset_page
from core.errors import DoesNotExist, InvalidParameter, MlflowError
from core.pages import ms_to_datetime, page_links, relative_time, render_markdown
from core.pages import or_404 as _get_or_404
from core.pages import query_string as _query_string
from core.pages import wants_partial as _wants_partial
from tracking import access, search, services
from tracking.models import (
    ACTIVE,
    ExperimentTag,
    LatestMetric,
    LoggedModel,
    Metric,
    Param,
    Run,
    RunInput,
    RunModelOutput,
    RunTag,
)

EXPERIMENTS_PER_PAGE = 50
RUNS_PER_PAGE = 50
# Columns offered by default when the user has not chosen any.
DEFAULT_COLUMNS = 5
# Keys listed in the column chooser (an experiment with more keys is rare; the box stays usable).
MAX_KEYS = 300
MAX_COMPARE = 50
# The runs table counts matching runs up to this many ("10000+" past it: a count stays cheap).
COUNT_LIMIT = 10_000
# The runs table's chart view plots at most this many matching runs (the newest).
CHART_RUNS = 1_000
# Histories charted on the run page unless `?charts=all` (each chart costs its points in memory).
MAX_CHARTS = 24
# Text artifacts previewed inline up to this size; larger files are download-only.
PREVIEW_BYTES = 256 * 1024
CSV_PREVIEW_ROWS = 100
TEXT_EXTENSIONS = {
    ".txt", ".log", ".md", ".json", ".yaml", ".yml", ".csv", ".tsv", ".py", ".toml", ".cfg", ".ini", ".xml",
    ".html", ".sql", ".sh", ".r", ".ipynb", ".jsonl",
}
TEXT_NAMES = {"MLmodel", "requirements.txt", "conda.yaml", "python_env.yaml", "Dockerfile", "LICENSE", "README"}
IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif", ".webp": "image/webp"}
RUN_ID = re.compile(r"^[0-9a-f]{32}$")


# --------------------------------------------------------------------------- helpers


def _page(request, template: str, partial: str, context: dict, *, status: int = 200):
    name = f"{template}#{partial}" if _wants_partial(request, partial) else template
    return render(request, name, context, status=status)


def duration_text(start: int | None, end: int | None) -> str:
    if not start or not end or end < start:
        return ""
    seconds = (end - start) / 1000
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, seconds = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {seconds}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes}m"


def _metric_value(row) -> float | str:
    return "NaN" if row.is_nan else row.value


def metric_cell(value) -> dict | None:
    """A metric for a table cell: short text (6 significant digits) and the exact value for the tooltip."""
    if value is None:
        return None
    if isinstance(value, str):
        return {"text": value, "exact": value}
    return {"text": f"{value:.6g}", "exact": repr(value)}


# The registry knows which model versions were registered from runs and who may see them; tracking
# knows nothing of the registry. RegistryConfig.ready() registers a provider here:
# `provider(user, run_ids) -> {run id: [version, …]}`, each version with its page's `url`.
RUN_VERSIONS_PROVIDERS: list = []


def register_run_versions_provider(provider) -> None:
    if provider not in RUN_VERSIONS_PROVIDERS:
        RUN_VERSIONS_PROVIDERS.append(provider)


def _registered_versions(user, run_ids: list[str]) -> dict[str, list]:
    """{run id: the model versions registered from it that `user` may see}, from the providers
    (one query each): the run page and the runs table show them."""
    by_run = defaultdict(list)
    if not run_ids:
        return by_run
    for provider in RUN_VERSIONS_PROVIDERS:
        for run_id, versions in provider(user, run_ids).items():
            by_run[run_id].extend(versions)
    return by_run


# --------------------------------------------------------------------------- experiments


@require_GET
def experiment_list(request):
    query = request.GET.get("q", "").strip()
    experiments = access.experiments_visible_to(request.user).filter(lifecycle_stage=ACTIVE)
    if query:
        match = Q(name__icontains=query)
        if query.isdigit():
            match |= Q(pk=int(query))
        experiments = experiments.filter(match)
    experiments = experiments.select_related("owner").annotate(
        run_count=Count("runs", filter=Q(runs__lifecycle_stage=ACTIVE))
    )
    page_error = ""
    try:
        rows, next_token = keyset_page(
            experiments,
            order=[("last_update_time", True), ("id", True)],
            max_results=EXPERIMENTS_PER_PAGE,
            page_token=request.GET.get("page_token") or None,
            kind="ui-experiments",
        )
    except InvalidParameter as exc:
        page_error = exc.message
        rows, next_token = [], None
    for experiment in rows:
        experiment.created = ms_to_datetime(experiment.creation_time)
        experiment.updated = ms_to_datetime(experiment.last_update_time)
        experiment.owner_name = experiment.owner.get_username() if experiment.owner else ""
    context = {
        "experiments": rows,
        "query": query,
        "page_error": page_error,
        **page_links(request, next_token),
    }
    return _page(request, "tracking/experiment_list.html", "experiment-table", context)


def _chosen(request, name: str, available: list[str]) -> list[str]:
    """Columns the user picked (kept in the URL), or the first few keys by default."""
    if f"{name}_set" in request.GET or name in request.GET:
        wanted = request.GET.getlist(name)
        return [key for key in wanted if key]
    return available[:DEFAULT_COLUMNS]


def _order_from_request(request) -> tuple[str, str, bool]:
    """(order_by clause for the search, column key, descending) from `?sort=metrics.rmse&dir=asc`."""
    sort = request.GET.get("sort", "").strip()
    descending = request.GET.get("dir", "desc") != "asc"
    if not sort:
        return "", "", True
    kind, _, key = sort.partition(".")
    if kind not in ("metrics", "params", "attributes", "tags") or not key:
        return "", "", True
    quoted = f"{kind}.`{key}`" if kind != "attributes" else key
    return f"{quoted} {'DESC' if descending else 'ASC'}", sort, descending


@require_GET
def experiment_detail(request, experiment_id: int):
    experiment = _get_or_404(access.get_experiment_for_user, request.user, experiment_id)
    filter_string = request.GET.get("filter", "")
    order_clause, sort_key, descending = _order_from_request(request)
    page_token = request.GET.get("page_token") or None
    show_deleted = request.GET.get("show") == "deleted"
    experiment_tags = list(ExperimentTag.objects.filter(experiment=experiment).order_by("key").values_list("key", "value"))

    metric_keys = list(
        LatestMetric.objects.filter(run__experiment=experiment, run__lifecycle_stage=ACTIVE)
        .order_by("key").values_list("key", flat=True).distinct()[:MAX_KEYS]
    )
    param_keys = list(
        Param.objects.filter(run__experiment=experiment, run__lifecycle_stage=ACTIVE)
        .order_by("key").values_list("key", flat=True).distinct()[:MAX_KEYS]
    )
    chosen_metrics = _chosen(request, "m", metric_keys)
    chosen_params = _chosen(request, "p", param_keys)

    filter_error = ""
    runs, next_token = [], None
    try:
        runs, next_token = search.search_runs(
            user=request.user,
            experiment_ids=[experiment.experiment_id],
            filter_string=filter_string,
            run_view_type="DELETED_ONLY" if show_deleted else "ACTIVE_ONLY",
            order_by=[order_clause] if order_clause else [],
            max_results=RUNS_PER_PAGE,
            page_token=page_token,
        )
    except MlflowError as exc:
        filter_error = exc.message

    versions = _registered_versions(request.user, [run.run_uuid for run in runs])
    rows = _run_rows(runs, chosen_params, chosen_metrics, versions)
    shown_metrics, shown_params, empty_columns = _drop_empty_columns(rows, chosen_metrics, chosen_params)
    chart_view = request.GET.get("view") == "chart"
    match_count, chart = None, {}
    if not filter_error:
        matching = search.runs_matching(user=request.user, experiment_ids=[experiment.experiment_id], filter_string=filter_string,
                                        run_view_type="DELETED_ONLY" if show_deleted else "ACTIVE_ONLY")
        match_count = matching.order_by()[: COUNT_LIMIT + 1].count()
        if chart_view:
            chart = _runs_chart(request, matching, metric_keys, param_keys)

    current = sort_key or "attributes.start_time"  # the search's default order: newest first

    def sort_link(key: str) -> str:
        direction = "asc" if current == key and descending else "desc"
        return "?" + _query_string(request, sort=key, dir=direction, page_token=None)

    columns = {
        "metrics": [(key, sort_link(f"metrics.{key}"), f"metrics.{key}" == sort_key) for key in shown_metrics],
        "params": [(key, sort_link(f"params.{key}"), f"params.{key}" == sort_key) for key in shown_params],
        "start_time": sort_link("attributes.start_time"),
        "run_name": sort_link("attributes.run_name"),
    }
    context = {
        "experiment": experiment,
        "description": dict(experiment_tags).get("mlflow.note.content", ""),
        "experiment_tags": [(k, v) for k, v in experiment_tags if not k.startswith("mlflow.")],
        "show_deleted": show_deleted,
        "active_query": _query_string(request, show=None, page_token=None),
        "deleted_query": _query_string(request, show="deleted", page_token=None),
        "filter_string": filter_string,
        "filter_error": filter_error,
        "rows": rows,
        "columns": columns,
        "colspan": 7 + len(shown_metrics) + len(shown_params),
        "match_count": match_count,
        "count_limit": COUNT_LIMIT,
        "hidden_metrics": [key for key in metric_keys if key not in chosen_metrics],
        "hidden_params": [key for key in param_keys if key not in chosen_params],
        "empty_columns": empty_columns,
        "chart_view": chart_view,
        "table_query": _query_string(request, view=None, page_token=None),
        "chart_query": _query_string(request, view="chart", page_token=None),
        **chart,
        "sort_key": sort_key,
        "descending": descending,
        "metric_keys": metric_keys,
        "param_keys": param_keys,
        "chosen_metrics": chosen_metrics,
        "chosen_params": chosen_params,
        **page_links(request, next_token),
    }
    # A bad filter is a form error: 200 with the message under the box (house style).
    return _page(request, "tracking/experiment_detail.html", "runs-table", context)


def _run_rows(runs: list[Run], param_keys: list[str], metric_keys: list[str], versions: dict) -> list[dict]:
    """Table cells of the runs on screen, from what search_runs prefetched (no query per row)."""
    rows = []
    creators = _creators(runs)
    for run in runs:
        params = {p.key: p.value for p in run.params.all()}
        metrics = {m.key: _metric_value(m) for m in run.latest_metrics.all()}
        start = ms_to_datetime(run.start_time)
        rows.append(
            {
                "run": run,
                "created_by": _created_by(run, creators.get(run.owner_id)),
                "start": start,
                "ago": relative_time(start),
                "duration": duration_text(run.start_time, run.end_time),
                "params": [params.get(key) for key in param_keys],
                "metrics": [metric_cell(metrics.get(key)) for key in metric_keys],
                "versions": versions.get(run.run_uuid, []),
            }
        )
    return rows


def _creators(runs: list[Run]) -> dict:
    """Usernames of the runs' owners (who authenticated), in one query."""
    owner_ids = {run.owner_id for run in runs if run.owner_id}
    if not owner_ids:
        return {}
    return dict(get_user_model().objects.filter(pk__in=owner_ids).values_list("pk", "username"))


def _created_by(run: Run, username: str | None) -> str:
    """The authenticated creator, shown beside MLflow's user_id (the client's claim) when they differ."""
    return username if username and username != run.user_id else ""


def _drop_empty_columns(rows: list[dict], metric_keys: list[str], param_keys: list[str]) -> tuple[list, list, list]:
    """Chosen columns with no value on this page take no width: they are left out (and named)."""
    keep_m = [i for i in range(len(metric_keys)) if any(row["metrics"][i] is not None for row in rows)]
    keep_p = [i for i in range(len(param_keys)) if any(row["params"][i] is not None for row in rows)]
    empty = [metric_keys[i] for i in range(len(metric_keys)) if i not in keep_m]
    empty += [param_keys[i] for i in range(len(param_keys)) if i not in keep_p]
    for row in rows:
        row["metrics"] = [row["metrics"][i] for i in keep_m]
        row["params"] = [row["params"][i] for i in keep_p]
    return [metric_keys[i] for i in keep_m], [param_keys[i] for i in keep_p], empty


def _number_or_text(value):
    number = _number(value)
    return number if number is not None else value


def _runs_chart(request, matching, metric_keys: list[str], param_keys: list[str]) -> dict:
    """The chart view of the runs table: a metric against a parameter (or metric) over every
    matching run (up to CHART_RUNS), coloured by a parameter. Three queries whatever the runs."""
    axes = [f"params.{k}" for k in param_keys] + [f"metrics.{k}" for k in metric_keys]
    y_axes = [f"metrics.{k}" for k in metric_keys] + [f"params.{k}" for k in param_keys]
    x = request.GET.get("x") if request.GET.get("x") in axes else (axes[0] if axes else "")
    y = request.GET.get("y") if request.GET.get("y") in y_axes else (y_axes[0] if y_axes else "")
    group = request.GET.get("group") if request.GET.get("group") in [f"params.{k}" for k in param_keys] else ""
    context = {"x_axes": axes, "y_axes": y_axes, "chart_x": x, "chart_y": y, "chart_group": group, "scatter": None,
               "group_keys": param_keys, "legend": [], "plotted": 0, "charted_runs": 0}
    if not (x and y):
        return context
    runs = dict(matching.order_by("-start_time")[:CHART_RUNS].values_list("run_uuid", "name"))
    context["charted_runs"] = len(runs)
    wanted = {axis.partition(".")[::2] for axis in (x, y, group) if axis}
    values = defaultdict(dict)
    param_keys_wanted = [key for kind, key in wanted if kind == "params"]
    metric_keys_wanted = [key for kind, key in wanted if kind == "metrics"]
    if param_keys_wanted:
        for run_id, key, value in Param.objects.filter(run_id__in=list(runs), key__in=param_keys_wanted).values_list("run_id", "key", "value"):
            values[f"params.{key}"][run_id] = _number_or_text(value)
    if metric_keys_wanted:
        rows = LatestMetric.objects.filter(run_id__in=list(runs), key__in=metric_keys_wanted, is_nan=False)
        for run_id, key, value in rows.values_list("run_id", "key", "value"):
            values[f"metrics.{key}"][run_id] = value
    xs, ys = values[x], values[y]
    both = [rid for rid in runs if rid in xs and isinstance(ys.get(rid), float)]
    categories = sorted({str(xs[rid]) for rid in both}) if any(isinstance(xs[rid], str) for rid in both) else None
    groups = defaultdict(list)
    for rid in both:
        groups[str(values[group].get(rid, "—")) if group else ""].append(rid)
    ordered = sorted(groups, key=lambda g: (-len(groups[g]), g))
    colors = {g: charts.PALETTE[i] if i < len(charts.PALETTE) - 1 else charts.OTHER_COLOR for i, g in enumerate(ordered)}
    points = []
    for rid in both:
        gx = (categories.index(str(xs[rid])) + _jitter(rid)) if categories else xs[rid]
        g = str(values[group].get(rid, "—")) if group else ""
        label = (runs[rid] or rid) + (f" ({group}={g})" if group else "")
        points.append((label, gx, ys[rid], colors[g], reverse("tracking:run_detail", args=[rid])))
    context.update(
        scatter=charts.scatter_chart(points, x_label=x, y_label=y, x_categories=categories, width=1240, height=400),
        legend=[(g, colors[g], len(groups[g])) for g in ordered[: len(charts.PALETTE) - 1]] if group else [],
        other_groups=max(len(ordered) - len(charts.PALETTE) + 1, 0) if group else 0,
        plotted=len(points),
    )
    return context


def _jitter(run_id: str) -> float:
    """A fixed sideways offset (±0.2) so runs with the same text value do not hide each other."""
    return (int(run_id[:4], 16) / 0xFFFF - 0.5) * 0.4 if re.match(r"^[0-9a-f]{4}", run_id) else 0.0


# --------------------------------------------------------------------------- runs


def _artifact_root(run: Run, model: LoggedModel | None = None) -> str | None:
    """The folder in artifact storage of the run (or of one of its logged models), or None when
    it lives elsewhere (e.g. a file: URI)."""
    try:
        return artifact_store.uri_to_path(model.artifact_location if model else run.artifact_uri)
    except InvalidParameter:
        return None


def _run_logged_model(request, run: Run, model_id: str | None) -> LoggedModel | None:
    """A logged model of this run (its source run or one of its outputs); 404 for any other id.

    MLflow 3 stores a model's files under the model, not the run, so the run page browses both.
    """
    if not model_id:
        return None
    model = _get_or_404(access.get_logged_model_for_user, request.user, model_id)
    if model.source_run_id != run.run_uuid and not RunModelOutput.objects.filter(run=run, model=model).exists():
        raise Http404(f"Logged model '{model_id}' does not belong to run {run.run_uuid}")
    return model


def _is_text(name: str) -> bool:
    base = posixpath.basename(name)
    return base in TEXT_NAMES or posixpath.splitext(base)[1].lower() in TEXT_EXTENSIONS


def _csv_rows(text: str, delimiter: str, *, complete: bool) -> list[list[str]]:
    """The first CSV_PREVIEW_ROWS rows of a CSV/TSV preview (a cut last line is dropped)."""
    lines = text.splitlines()
    if not complete and lines:
        lines = lines[:-1]
    try:
        return list(itertools.islice(csv.reader(lines, delimiter=delimiter), CSV_PREVIEW_ROWS + 1))
    except csv.Error:
        return []


def _artifacts_context(run: Run, path: str, model: LoggedModel | None = None) -> dict:
    """Listing of the folder `path` (relative to the run's or the logged model's artifacts) and a
    preview when it is a file."""
    root = _artifact_root(run, model)
    context = {
        "artifact_path": path, "artifact_root": root, "entries": [], "preview": None, "artifact_error": "",
        "artifact_model": model, "model_query": f"model={model.model_id}&" if model else "",
    }
    if root is None:
        uri = model.artifact_location if model else run.artifact_uri
        context["artifact_error"] = f"Artifacts are stored outside this server ({uri})."
        return context
    try:
        full = artifact_store.join(root, path) if path else root
    except InvalidParameter as exc:
        context["artifact_error"] = exc.message
        return context
    folder = path
    if path and artifact_store.is_file(full):
        folder = posixpath.dirname(path)
        size = artifact_store.file_size(full)
        ext = posixpath.splitext(path)[1].lower()
        preview = {"path": path, "name": posixpath.basename(path), "size": size, "kind": "binary"}
        if _is_text(path):
            preview["kind"] = "text"
            preview["text"] = artifact_store.read_text(full, max_bytes=PREVIEW_BYTES)
            preview["truncated"] = size > PREVIEW_BYTES
            if ext in (".csv", ".tsv"):
                preview["table"] = _csv_rows(preview["text"], "\t" if ext == ".tsv" else ",", complete=not preview["truncated"])
        elif ext in IMAGE_TYPES:
            preview["kind"] = "image"
        context["preview"] = preview
    elif path and not artifact_store.exists(full):
        raise Http404(f"No such artifact: '{path}'")
    entries = artifact_store.list_dir(artifact_store.join(root, folder) if folder else root)
    for entry in entries:
        entry["rel"] = f"{folder}/{entry['path']}" if folder else entry["path"]
    context["entries"] = entries
    context["folder"] = folder
    crumbs, acc = [], []
    for part in [p for p in folder.split("/") if p]:
        acc.append(part)
        crumbs.append((part, "/".join(acc)))
    context["crumbs"] = crumbs
    context["parent"] = posixpath.dirname(folder) if folder else None
    return context


def _chart_histories(run_ids: list[str], keys: list[str] | None = None) -> dict:
    """{(run_id, key): [(step, value, timestamp), …]} of metric histories (unsorted), in one query."""
    qs = Metric.objects.filter(run_id__in=run_ids, is_nan=False)
    if keys is not None:
        qs = qs.filter(key__in=keys)
    histories = defaultdict(list)
    # No ORDER BY: sorting 10^5 rows spilled to disk; the charts sort each history by step
    # (charts.downsampled, a stable sort over what the metric_history index scan returns).
    rows = qs.order_by().values_list("run_id", "key", "step", "value", "timestamp")
    for run_id, key, step, value, timestamp in rows.iterator(chunk_size=5000):
        histories[(run_id, key)].append((step, value, timestamp))
    return histories


def _line_chart(series: list[charts.Series], *, key: str, title: str, height: int = 210) -> dict:
    """A metric's history chart: the SVG (the no-JavaScript fallback) and the JSON uPlot draws
    (static/js/charts.js), both from the same downsampled points."""
    series = charts.downsampled(series)
    return {
        "svg": charts.line_chart(series, title=title, y_label=key, height=height),
        "data": charts.line_data(series, y_label=key),
    }


@require_GET
def run_detail(request, run_id: str):
    run = _get_or_404(access.get_run_for_user, request.user, run_id)
    model = _run_logged_model(request, run, request.GET.get("model"))
    artifacts = _artifacts_context(run, request.GET.get("path", "").strip("/"), model)
    if request.htmx and _wants_partial(request) and request.htmx.target == "artifacts":
        return render(request, "tracking/run_detail.html#artifacts", {"run": run, **artifacts})
    return render(request, "tracking/run_detail.html", {**_run_page_context(request, run), **artifacts})


def _run_page_context(request, run: Run, *, tag_error: str = "", tag_key: str = "", tag_value: str = "") -> dict:
    """Everything on the run page but the artifacts browser, in a fixed number of queries."""
    params = list(Param.objects.filter(run=run).order_by("key").values_list("key", "value"))
    latest = list(LatestMetric.objects.filter(run=run).order_by("key"))
    tags = list(RunTag.objects.filter(run=run).order_by("key").values_list("key", "value"))
    show_all = request.GET.get("charts") == "all"
    charted = latest if show_all else latest[:MAX_CHARTS]
    histories = _chart_histories([run.run_uuid], [m.key for m in charted]) if charted else {}
    metric_charts, metric_tiles = [], []
    for metric in charted:
        points = histories.get((run.run_uuid, metric.key), [])
        if len(points) > 1:
            series = charts.Series(str(run), points, extra={"start": run.start_time})
            metric_charts.append({"key": metric.key, "count": len(points), **_line_chart([series], key=metric.key, title=metric.key)})
        else:
            # One value (or only NaN): a tile, not an empty chart.
            metric_tiles.append({"key": metric.key, "value": metric_cell(_metric_value(metric)), "step": metric.step})
    inputs = list(RunInput.objects.filter(run=run).select_related("dataset").order_by("dataset__name"))
    outputs = list(RunModelOutput.objects.filter(run=run).select_related("model").order_by("model__name"))
    versions = _registered_versions(request.user, [run.run_uuid]).get(run.run_uuid, [])
    tag_map = dict(tags)
    context = {
        "run": run,
        "created_by": _created_by(run, _creators([run]).get(run.owner_id)),
        "experiment": run.experiment,
        "start": ms_to_datetime(run.start_time),
        "end": ms_to_datetime(run.end_time),
        "duration": duration_text(run.start_time, run.end_time),
        "params": params,
        "metrics": [(m.key, metric_cell(_metric_value(m)), m.step, ms_to_datetime(m.timestamp)) for m in latest],
        "metric_charts": metric_charts,
        "metric_tiles": metric_tiles,
        "hidden_charts": len(latest) - len(charted),
        **_tags_context(request, run, tags, error=tag_error, key=tag_key, value=tag_value),
        "source": tag_map.get("mlflow.source.name", ""),
        "git_commit": tag_map.get("mlflow.source.git.commit", ""),
        "description_html": render_markdown(tag_map.get("mlflow.note.content", "")),
        "parent_run_id": tag_map.get("mlflow.parentRunId", ""),
        "inputs": inputs,
        "outputs": outputs,
        "versions": versions,
    }
    return context


def _can_edit(user, run: Run) -> bool:
    try:
        access.get_run_for_user(user, run.run_uuid, action="edit")
    except MlflowError:
        return False
    return True


def _tags_context(request, run: Run, tags: list[tuple[str, str]], *, error: str = "", key: str = "", value: str = "") -> dict:
    """What the #run-tags region shows: user tags, system tags, the add-tag form (and its error)."""
    editable = _can_edit(request.user, run)
    return {
        "user_tags": [(k, v) for k, v in tags if not k.startswith("mlflow.")],
        "system_tags": [(k, v) for k, v in tags if k.startswith("mlflow.")],
        "can_edit": editable and run.lifecycle_stage == ACTIVE,
        "can_restore": editable and run.lifecycle_stage != ACTIVE,
        "tag_error": error,
        "tag_key": key,
        "tag_value": value,
    }


def _tags_response(request, run: Run, *, error: str = "", key: str = "", value: str = ""):
    """After a tag change: the #run-tags region for htmx, else POST/redirect/GET.

    A failed change comes back as 200 with the error next to the form and what was typed kept
    (the region for htmx, the whole page without JavaScript).
    """
    if request.htmx:
        tags = list(RunTag.objects.filter(run=run).order_by("key").values_list("key", "value"))
        context = {"run": run, **_tags_context(request, run, tags, error=error, key=key, value=value)}
        return render(request, "tracking/run_detail.html#run-tags", context)
    if error:
        context = _run_page_context(request, run, tag_error=error, tag_key=key, tag_value=value)
        return render(request, "tracking/run_detail.html", {**context, **_artifacts_context(run, "")})
    return redirect(reverse("tracking:run_detail", args=[run.run_uuid]) + "#tags-h")


@require_POST
def run_set_tag(request, run_id: str):
    run = _get_or_404(access.get_run_for_user, request.user, run_id, action="edit")
    key, value = request.POST.get("key", "").strip(), request.POST.get("value", "")
    try:
        services.set_tag(run=run, key=key, value=value)
    except MlflowError as exc:
        return _tags_response(request, run, error=exc.message, key=key, value=value)
    return _tags_response(request, run)


@require_POST
def run_delete_tag(request, run_id: str):
    run = _get_or_404(access.get_run_for_user, request.user, run_id, action="edit")
    try:
        services.delete_tag(run=run, key=request.POST.get("key", ""))
    except MlflowError as exc:
        return _tags_response(request, run, error=exc.message)
    return _tags_response(request, run)


@require_POST
def run_lifecycle(request, run_id: str, action: str):
    """Delete or restore a run (soft delete, as MLflow), then back to the run page."""
    run = _get_or_404(access.get_run_for_user, request.user, run_id, action="edit")
    if action == "delete":
        services.delete_run(run=run)
        messages.success(request, f"Run {run} deleted. It stays under “Deleted runs” until restored.")
    else:
        services.restore_run(run=run)
        messages.success(request, f"Run {run} restored.")
    return redirect("tracking:run_detail", run_id=run.run_uuid)


@require_GET
def artifact_download(request, run_id: str, path: str, model_id: str | None = None):
    """Stream one artifact of the run (or of its logged model `model_id`); `?inline=1` shows images in the page."""
    run = _get_or_404(access.get_run_for_user, request.user, run_id)
    root = _artifact_root(run, _run_logged_model(request, run, model_id))
    if root is None:
        raise Http404("Artifacts are stored outside this server")
    try:
        handle = artifact_store.open_file(artifact_store.join(root, path))
    except (DoesNotExist, InvalidParameter) as exc:
        raise Http404(exc.message) from None
    ext = posixpath.splitext(path)[1].lower()
    inline = request.GET.get("inline") == "1" and ext in IMAGE_TYPES
    content_type = IMAGE_TYPES.get(ext) if inline else (mimetypes.guess_type(path)[0] or "application/octet-stream")
    if content_type.startswith("text/") or content_type in ("image/svg+xml", "application/xhtml+xml"):
        # Never let the browser render uploaded markup on our origin.
        content_type = "text/plain; charset=utf-8" if content_type.startswith("text/") else "application/octet-stream"
    response = FileResponse(handle, as_attachment=not inline, filename=posixpath.basename(path), content_type=content_type)
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


@require_GET
def run_compare(request):
    run_ids = [rid for rid in dict.fromkeys(request.GET.getlist("runs")) if rid][:MAX_COMPARE]
    if not run_ids:
        return render(request, "tracking/run_compare.html", {"runs": []})
    visible = access.experiments_visible_to(request.user)
    found = {run.run_uuid: run for run in Run.objects.filter(pk__in=run_ids, experiment__in=visible).select_related("experiment")}
    missing = [rid for rid in run_ids if rid not in found]
    if missing:
        raise Http404(f"Run with id={missing[0]} not found")
    runs = [found[rid] for rid in run_ids]

    params, metrics = defaultdict(dict), defaultdict(dict)
    for rid, key, value in Param.objects.filter(run_id__in=run_ids).values_list("run_id", "key", "value"):
        params[key][rid] = value
    for row in LatestMetric.objects.filter(run_id__in=run_ids):
        metrics[row.key][row.run_id] = _metric_value(row)

    def table(values: dict, cell) -> list[dict]:
        out = []
        for key in sorted(values):
            raw = [values[key].get(rid) for rid in run_ids]
            out.append({"key": key, "cells": [cell(v) for v in raw], "differs": len({repr(v) for v in raw}) > 1})
        return out

    def param_cell(value):
        return None if value is None else {"text": value, "exact": value}

    metric_keys = sorted(metrics)
    chosen = request.GET.get("metric") or (metric_keys[0] if metric_keys else "")
    if chosen and chosen not in metrics:
        chosen = metric_keys[0] if metric_keys else ""
    axes = [f"metrics.{key}" for key in metric_keys] + [f"params.{key}" for key in sorted(params)]
    numeric_params = [f"params.{key}" for key in sorted(params) if all(_number(v) is not None for v in params[key].values())]
    y_axis = request.GET.get("y") if request.GET.get("y") in axes else (f"metrics.{chosen}" if chosen else "")
    x_default = next((a for a in numeric_params), next((a for a in axes if a != y_axis), ""))
    x_axis = request.GET.get("x") if request.GET.get("x") in axes else x_default
    colors = [charts.PALETTE[i % len(charts.PALETTE)] for i in range(len(runs))]

    def axis_value(axis: str, run_id: str):
        kind, _, key = axis.partition(".")
        return _number((params if kind == "params" else metrics).get(key, {}).get(run_id))

    scatter = None
    if x_axis and y_axis:
        points = []
        for run, color in zip(runs, colors):
            x, y = axis_value(x_axis, run.run_uuid), axis_value(y_axis, run.run_uuid)
            if x is not None and y is not None:
                points.append((str(run), x, y, color))
        scatter = charts.scatter_chart(points, x_label=x_axis, y_label=y_axis)
    if _wants_partial(request, "compare-scatter") and request.htmx.target == "compare-scatter":
        return render(request, "tracking/run_compare.html#compare-scatter", {"scatter": scatter, "x_axis": x_axis, "y_axis": y_axis})
    context = {
        "axes": axes,
        "x_axis": x_axis,
        "y_axis": y_axis,
        "scatter": scatter,
        "runs": [{"run": run, "color": color} for run, color in zip(runs, colors)],
        "sections": [("Metrics", table(metrics, metric_cell)), ("Parameters", table(params, param_cell))],
        "metric_keys": metric_keys,
        "chosen_metric": chosen,
        "only_differences": request.GET.get("diff") == "1",
        "chart": _compare_chart(runs, chosen, metrics.get(chosen, {})) if chosen else None,
        "run_ids": run_ids,
    }
    return _page(request, "tracking/run_compare.html", "compare-chart", context)


def _number(value) -> float | None:
    """A param or metric value as a float, or None when it is not a number."""
    if value is None or value == "NaN":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _compare_chart(runs: list[Run], key: str, latest: dict) -> dict:
    """History lines when the metric has a history, else one bar per run of its latest value
    ({"svg", "data"}: data is the uPlot JSON of the lines, None for bars)."""
    histories = _chart_histories([run.run_uuid for run in runs], [key])
    if any(len(histories.get((run.run_uuid, key), [])) > 1 for run in runs):
        series = [
            charts.Series(str(run), histories.get((run.run_uuid, key), []), color=charts.PALETTE[i % len(charts.PALETTE)],
                          extra={"start": run.start_time})
            for i, run in enumerate(runs)
        ]
        return _line_chart(series, key=key, title=f"{key} by step", height=280)
    items = []
    for run in runs:
        value = latest.get(run.run_uuid)
        items.append((str(run), float("nan") if value == "NaN" else value))
    return {"svg": charts.bar_chart(items, title=f"{key} (latest value)"), "data": None}


# --------------------------------------------------------------------------- search


@require_GET
def search_view(request):
    """The header's search box: experiments by name or id, runs by name or id."""
    query = request.GET.get("q", "").strip()
    visible = access.experiments_visible_to(request.user)
    experiments, runs = [], []
    if query:
        if RUN_ID.match(query.lower()):
            run = Run.objects.filter(pk=query.lower(), experiment__in=visible).only("run_uuid").first()
            if run is not None:
                return redirect("tracking:run_detail", run_id=run.run_uuid)
        match = Q(name__icontains=query) | (Q(pk=int(query)) if query.isdigit() else Q())
        experiments = list(visible.filter(match, lifecycle_stage=ACTIVE).order_by("name")[:20])
        runs = list(
            Run.objects.filter(experiment__in=visible, lifecycle_stage=ACTIVE)
            .filter(Q(name__icontains=query) | Q(run_uuid__startswith=query.lower()))
            .select_related("experiment")
            .order_by("-start_time")[:20]
        )
    context = {"search_query": query, "experiments": experiments, "runs": runs, "nav_section": ""}
    return render(request, "tracking/search.html", context)



# --------------------------------------------------------------------------- MLflow UI links


def _json_list(raw: str) -> list[str]:
    """`["a","b"]` as MLflow's UI writes lists in its URLs (also tolerates a bare `a,b`)."""
    try:
        value = json.loads(raw)
    except ValueError:
        value = [part.strip(" \"'") for part in raw.strip("[]").split(",")]
    if isinstance(value, str):
        value = [value]
    return [str(v) for v in value if isinstance(v, (str, int)) and str(v)] if isinstance(value, list) else []


def _json_text(raw: str) -> str:
    try:
        value = json.loads(raw)
    except ValueError:
        return raw
    return value if isinstance(value, str) else raw


def _url(name: str, *args, query: dict | None = None, fragment: str = "") -> str | None:
    try:
        url = reverse(name, args=list(args))
    except NoReverseMatch:
        return None
    if query:
        url += "?" + urlencode(query, doseq=True)
    return url + (f"#{fragment}" if fragment else "")


def _experiment_url(experiment_id: str, params) -> str | None:
    if not experiment_id.isdigit():
        return None
    query = {}
    if params.get("searchFilter"):
        query["filter"] = params["searchFilter"]
    if params.get("lifecycleFilter", "").lower() == "deleted":
        query["show"] = "deleted"
    return _url("tracking:experiment_detail", int(experiment_id), query=query)


def _run_url(run_id: str, tab: list[str]) -> str | None:
    """A run page, at the artifact MLflow's address names (`…/artifacts/<path>`, `…/artifactPath/<path>`)."""
    if tab and tab[0] in ("artifacts", "artifactPath"):
        path = "/".join(tab[1:])
        return _url("tracking:run_detail", run_id, query={"path": path} if path else None, fragment="artifacts")
    if tab and tab[0] in ("model-metrics", "system-metrics"):
        return _url("tracking:run_detail", run_id, fragment="charts-h")
    return _url("tracking:run_detail", run_id)


def _logged_model_url(user, experiment_id: str, model_id: str) -> str | None:
    """MLflow 3's logged model page: its files on its source run's page (else the experiment)."""
    try:
        model = access.get_logged_model_for_user(user, model_id)
    except MlflowError:
        return _experiment_url(experiment_id, {})
    if model.source_run_id:
        return _url("tracking:run_detail", model.source_run_id, query={"model": model.model_id}, fragment="artifacts")
    return _url("tracking:experiment_detail", model.experiment_id)


def mlflow_route_target(route: str, *, user) -> str | None:
    """The Stagegate page for a route of MLflow's own UI (its hash routes, MLflow 3.17:
    mlflow/server/js/src/**/routes.ts), or None when Stagegate has no such page.

    `route` is the fragment without its `#`: `/experiments/1/runs/<run_id>`, `/models/<name>/versions/3`,
    `/compare-runs?runs=["a","b"]&experiments=["1"]`, `/metric/<key>?runs=[…]`, …
    """
    path, _, query = route.partition("?")
    params = QueryDict(query)
    parts = [unquote(part) for part in path.strip("/").split("/") if part]
    head, rest = (parts[0], parts[1:]) if parts else ("", [])
    if head in ("", "experiments", "compare-experiments") and not (head == "experiments" and rest):
        return _url("tracking:experiment_list")
    if head == "experiments":
        experiment_id, sub = rest[0], rest[1:]
        if len(sub) >= 2 and sub[0] in ("runs", "evaluation-runs"):
            return _run_url(sub[1], sub[2:])
        if len(sub) >= 2 and sub[0] == "models":
            return _logged_model_url(user, experiment_id, sub[1])
        # The runs table, and the tabs Stagegate folds into it (runs, models, traces, datasets, …).
        return _experiment_url(experiment_id, params)
    if head == "runs" and rest:
        return _run_url(rest[0], rest[1:])
    if head in ("compare-runs", "metric"):
        runs = _json_list(params.get("runs", ""))[:MAX_COMPARE]
        if not runs:
            return _url("tracking:experiment_list")
        query = {"runs": runs}
        metric = _json_text(params.get("metric", "")) or "/".join(rest)
        if head == "metric" and metric:
            query["metric"] = metric
        return _url("tracking:run_compare", query=query)
    if head == "models":
        if not rest:
            return _url("registry:model_list")
        if len(rest) >= 3 and rest[-2] == "versions" and rest[-1].isdigit():
            return _url("registry:model_version_detail", "/".join(rest[:-2]), int(rest[-1]))
        return _url("registry:model_detail", rest[0])
    if head == "compare-model-versions":
        name = _json_text(params.get("name", ""))
        try:
            versions = json.loads(params.get("runs", "{}"))
        except ValueError:
            versions = {}
        if not name:
            return _url("registry:model_list")
        numbers = sorted(str(v) for v in versions if str(v).isdigit()) if isinstance(versions, dict) else []
        return _url("registry:model_version_compare", name, query={"versions": numbers} if numbers else None)
    return None


@require_GET
def mlflow_link(request):
    """Follow a link into MLflow's UI (`<tracking uri>/#/experiments/1/runs/<id>`, which the client
    prints after every run) to the matching page. The fragment never reaches a server:
    static/js/mlflow-links.js, on every page, sends it here as `?route=`. Redirects only to our own
    URLs (built with reverse); an unknown route lands on the home page with a note."""
    route = request.GET.get("route", "")
    target = mlflow_route_target(route, user=request.user)
    if target is None:
        messages.info(request, f"Stagegate has no page for MLflow's “#{route[:200]}”; here is the home page.")
        target = reverse("home")
    return redirect(target)
