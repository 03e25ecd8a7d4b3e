"""The MLflow tracking REST API (experiments, runs, metrics, logged models).

Thin views: read parameters (core.api.Params) → fetch through tracking.access →
call one service or search → return the objects' `to_mlflow()`. Mounted under
/api/2.0/mlflow/ and /ajax-api/2.0/mlflow/ by config/urls.py.
"""

from django.urls import path

from core.api import api_view, page_json
from core.errors import InvalidParameter, missing_parameter
from tracking import search, services
from tracking.access import (
    get_experiment_by_name_for_user,
    get_experiment_for_user,
    get_logged_model_for_user,
    get_run_for_user,
    run_not_found,
    visible_run_sql,
)
from tracking.models import (
    RUN_INFO_FIELDS, Experiment, LoggedModel, Run, attach_model_metrics, new_run_json, run_json, runs_to_mlflow,
)

# --------------------------------------------------------------------------- experiments


@api_view("POST")
def create_experiment(request, params):
    experiment = services.create_experiment(
        user=request.user,
        name=params.string("name", required=True),
        artifact_location=params.string("artifact_location"),
        tags=params.object_list("tags"),
    )
    return {"experiment_id": experiment.experiment_id}


def _experiment_response(experiment: Experiment) -> dict:
    experiment = Experiment.objects.prefetch_related("tags").get(pk=experiment.pk)
    return {"experiment": experiment.to_mlflow()}


@api_view("GET")
def get_experiment(request, params):
    experiment = get_experiment_for_user(request.user, params.string("experiment_id", required=True))
    return _experiment_response(experiment)


@api_view("GET")
def get_experiment_by_name(request, params):
    experiment = get_experiment_by_name_for_user(request.user, params.string("experiment_name", required=True))
    return _experiment_response(experiment)


@api_view(("GET", "POST"))
def search_experiments(request, params):
    experiments, token = search.search_experiments(
        user=request.user,
        filter_string=params.string("filter"),
        order_by=params.string_list("order_by"),
        view_type=params.raw("view_type"),
        max_results=params.max_results(
            default=search.SEARCH_MAX_RESULTS_DEFAULT, maximum=search.SEARCH_MAX_RESULTS_THRESHOLD
        ),
        page_token=params.string("page_token"),
    )
    return page_json("experiments", [e.to_mlflow() for e in experiments], token)


@api_view("POST")
def update_experiment(request, params):
    experiment = get_experiment_for_user(request.user, params.string("experiment_id", required=True), action="edit")
    services.rename_experiment(experiment=experiment, new_name=params.string("new_name", required=True))
    return {}


@api_view("POST")
def delete_experiment(request, params):
    experiment = get_experiment_for_user(request.user, params.string("experiment_id", required=True), action="manage")
    services.delete_experiment(experiment=experiment)
    return {}


@api_view("POST")
def restore_experiment(request, params):
    experiment = get_experiment_for_user(request.user, params.string("experiment_id", required=True), action="manage")
    services.restore_experiment(experiment=experiment)
    return {}


@api_view("POST")
def set_experiment_tag(request, params):
    experiment = get_experiment_for_user(request.user, params.string("experiment_id", required=True), action="edit")
    services.set_experiment_tag(
        experiment=experiment, key=params.string("key", required=True), value=params.string("value", default="")
    )
    return {}


@api_view(("POST", "DELETE"))
def delete_experiment_tag(request, params):
    experiment = get_experiment_for_user(request.user, params.string("experiment_id", required=True), action="edit")
    services.delete_experiment_tag(experiment=experiment, key=params.string("key", required=True))
    return {}


# --------------------------------------------------------------------------- runs


@api_view("POST")
def create_run(request, params):
    experiment = get_experiment_for_user(request.user, params.string("experiment_id") or "0", action="edit")
    run = services.create_run(
        user=request.user,
        experiment=experiment,
        run_name=params.string("run_name"),
        start_time=params.integer("start_time"),
        tags=params.object_list("tags"),
        user_id=params.string("user_id"),
    )
    return {"run": new_run_json(run, run.created_tags)}


@api_view("GET")
def get_run(request, params):
    run_id = params.run_id()
    run = run_json(visible_run_sql(request.user, run_id, RUN_INFO_FIELDS), run_id)
    if run is None:
        raise run_not_found(run_id)
    return {"run": run}


@api_view("POST")
def update_run(request, params):
    run = get_run_for_user(request.user, params.run_id(), action="edit")
    run = services.update_run(
        run=run,
        status=params.string("status"),
        end_time=params.integer("end_time"),
        run_name=params.string("run_name"),
    )
    return {"run_info": run.info_to_mlflow()}


@api_view("POST")
def delete_run(request, params):
    services.delete_run(run=get_run_for_user(request.user, params.run_id(), action="edit"))
    return {}


@api_view("POST")
def restore_run(request, params):
    services.restore_run(run=get_run_for_user(request.user, params.run_id(), action="edit"))
    return {}


@api_view("POST")
def log_parameter(request, params):
    run = get_run_for_user(request.user, params.run_id(), action="edit")
    services.log_param(run=run, key=params.string("key", required=True), value=params.string("value", default=""))
    return {}


@api_view("POST")
def log_metric(request, params):
    run = get_run_for_user(request.user, params.run_id(), action="edit")
    services.log_metric(
        run=run,
        key=params.string("key", required=True),
        value=params.number("value", required=True),
        timestamp=params.integer("timestamp", required=True),
        step=params.integer("step", default=0),
        model_id=params.string("model_id"),
        dataset_name=params.string("dataset_name"),
        dataset_digest=params.string("dataset_digest"),
    )
    return {}


@api_view("POST")
def log_batch(request, params):
    run = get_run_for_user(request.user, params.run_id(), action="edit")
    services.log_batch(
        run=run,
        metrics=params.object_list("metrics"),
        params=params.object_list("params"),
        tags=params.object_list("tags"),
    )
    return {}


@api_view("POST")
def set_tag(request, params):
    run = get_run_for_user(request.user, params.run_id(), action="edit")
    services.set_tag(run=run, key=params.string("key", required=True), value=params.string("value", default=""))
    return {}


@api_view(("POST", "DELETE"))
def delete_tag(request, params):
    run = get_run_for_user(request.user, params.run_id(), action="edit")
    services.delete_tag(run=run, key=params.string("key", required=True))
    return {}


@api_view("POST")
def log_model(request, params):
    run = get_run_for_user(request.user, params.run_id(), action="edit")
    services.log_model(run=run, model_json=params.string("model_json", required=True))
    return {}


@api_view("POST")
def log_inputs(request, params):
    run = get_run_for_user(request.user, params.run_id(), action="edit")
    services.log_inputs(run=run, datasets=params.object_list("datasets"), models=params.object_list("models"))
    return {}


@api_view("POST")
def log_outputs(request, params):
    run = get_run_for_user(request.user, params.run_id(), action="edit")
    services.log_outputs(run=run, models=params.object_list("models"))
    return {}


@api_view(("GET", "POST"))
def search_runs(request, params):
    runs, token = search.search_runs(
        user=request.user,
        experiment_ids=params.string_list("experiment_ids"),
        filter_string=params.string("filter"),
        run_view_type=params.raw("run_view_type"),
        order_by=params.string_list("order_by"),
        max_results=params.max_results(
            default=search.SEARCH_MAX_RESULTS_DEFAULT, maximum=search.SEARCH_MAX_RESULTS_THRESHOLD
        ),
        page_token=params.string("page_token"),
        prefetch=False,
    )
    return page_json("runs", runs_to_mlflow(runs), token)


# --------------------------------------------------------------------------- metric history


@api_view("GET")
def get_metric_history(request, params):
    metrics, token = search.metric_history(
        user=request.user,
        run_id=params.run_id(),
        key=params.string("metric_key", required=True),
        max_results=params.max_results(
            default=search.GET_METRIC_HISTORY_MAX_RESULTS, maximum=search.GET_METRIC_HISTORY_MAX_RESULTS
        ),
        page_token=params.string("page_token"),
    )
    return page_json("metrics", metrics, token)


@api_view("GET")
def get_metric_history_bulk_interval(request, params):
    run_ids = params.string_list("run_ids")
    if not run_ids:
        raise missing_parameter("run_ids")
    if len(run_ids) > search.MAX_RUNS_GET_METRIC_HISTORY_BULK:
        raise InvalidParameter(
            f"GetMetricHistoryBulkInterval request must specify at most {search.MAX_RUNS_GET_METRIC_HISTORY_BULK} "
            f"run_ids. Received {len(run_ids)} run_ids."
        )
    key = params.string("metric_key", required=True)
    max_results = params.integer("max_results", default=search.MAX_RESULTS_PER_RUN)
    if not 1 <= max_results <= search.MAX_RESULTS_PER_RUN:
        raise InvalidParameter(f"max_results must be between 1 and {search.MAX_RESULTS_PER_RUN}.")
    start_step, end_step = params.integer("start_step"), params.integer("end_step")
    if (start_step is None) != (end_step is None):
        raise InvalidParameter("If either start step or end step are specified, both must be specified.")
    if start_step is not None and start_step > end_step:
        raise InvalidParameter(
            f"end_step must be greater than start_step. Found start_step={start_step} and end_step={end_step}."
        )
    runs = [get_run_for_user(request.user, run_id) for run_id in dict.fromkeys(run_ids)]
    metrics = search.metric_history_bulk_interval(
        runs=runs, key=key, max_results=max_results, start_step=start_step, end_step=end_step
    )
    return {"metrics": [{**m.to_mlflow(), "run_id": m.run_id} for m in metrics]} if metrics else {}


MAX_HISTORY_BULK_RESULTS, MAX_HISTORY_BULK_RUNS = 25000, 100


@api_view("GET")
def get_metric_history_bulk(request, params):
    """`GET /ajax-api/2.0/mlflow/metrics/get-history-bulk?run_id=…&metric_key=` (the UI's charts), MLflow's texts."""
    run_ids = params.string_list("run_id")
    if not run_ids:
        raise InvalidParameter("GetMetricHistoryBulk request must specify at least one run_id.")
    if len(run_ids) > MAX_HISTORY_BULK_RUNS:
        raise InvalidParameter(
            f"GetMetricHistoryBulk request cannot specify more than {MAX_HISTORY_BULK_RUNS} run_ids. "
            f"Received {len(run_ids)} run_ids."
        )
    key = params.raw("metric_key")
    if key is None:
        raise InvalidParameter("GetMetricHistoryBulk request must specify a metric_key.")
    max_results = min(params.integer("max_results", default=MAX_HISTORY_BULK_RESULTS), MAX_HISTORY_BULK_RESULTS)
    runs = [get_run_for_user(request.user, run_id) for run_id in dict.fromkeys(run_ids)]
    return {"metrics": search.metric_history_bulk(runs=runs, key=key, max_results=max_results)}


@api_view("POST")
def search_datasets(request, params):
    """`POST /ajax-api/2.0/mlflow/experiments/search-datasets` (the UI's dataset filter), MLflow's texts."""
    experiment_ids = params.string_list("experiment_ids")
    if not experiment_ids:
        raise InvalidParameter("SearchDatasets request must specify at least one experiment_id.")
    if len(experiment_ids) > 20:
        raise InvalidParameter(
            "SearchDatasets request cannot specify more than 20 experiment_ids. "
            f"Received {len(experiment_ids)} experiment_ids."
        )
    summaries = search.dataset_summaries(user=request.user, experiment_ids=experiment_ids)
    return {"dataset_summaries": summaries} if summaries else {}


@api_view("POST")
def create_promptlab_run(request, params):
    """`POST /ajax-api/2.0/mlflow/runs/create-promptlab-run` (the UI's prompt lab), MLflow's texts."""
    def required(name: str):
        value = params.raw(name)
        if not value:
            raise InvalidParameter(f"CreatePromptlabRun request must specify {name}.")
        return value

    experiment_id = required("experiment_id")
    values = {name: required(name) for name in ("prompt_template", "prompt_parameters", "model_route", "model_input")}
    required("mlflow_version")
    experiment = get_experiment_for_user(request.user, experiment_id, action="edit")
    run = services.create_promptlab_run(
        user=request.user,
        experiment=experiment,
        **values,
        model_output=params.string("model_output"),
        model_parameters=params.object_list("model_parameters"),
        model_output_parameters=params.object_list("model_output_parameters"),
        run_name=params.string("run_name"),
        tags=params.object_list("tags"),
        user_id=params.string("user_id") or "unknown",
        start_time=params.integer("start_time"),
    )
    return {"run": Run.objects.for_mlflow().get(pk=run.pk).to_mlflow()}


@api_view(("GET", "POST"))
def gateway_proxy(request, params):
    """`/ajax-api/2.0/mlflow/gateway-proxy`: no AI gateway here, answered as MLflow's server answers
    without MLFLOW_DEPLOYMENTS_TARGET (an empty gateway), so the UI's probe gets no error."""
    return {"endpoints": []}


# --------------------------------------------------------------------------- logged models


def _model_response(model: LoggedModel) -> dict:
    model = LoggedModel.objects.for_mlflow().get(pk=model.pk)
    return {"model": attach_model_metrics([model])[0].to_mlflow()}


@api_view("POST")
def create_logged_model(request, params):
    experiment = get_experiment_for_user(request.user, params.string("experiment_id", required=True), action="edit")
    source_run_id = params.string("source_run_id")
    source_run = get_run_for_user(request.user, source_run_id, action="edit") if source_run_id else None
    model = services.create_logged_model(
        user=request.user,
        experiment=experiment,
        name=params.string("name"),
        source_run=source_run,
        model_type=params.string("model_type"),
        params=params.object_list("params"),
        tags=params.object_list("tags"),
    )
    return _model_response(model)


@api_view(("GET", "PATCH", "DELETE"))
def logged_model(request, params, model_id):
    if request.method == "GET":
        return _model_response(get_logged_model_for_user(request.user, model_id))
    if request.method == "PATCH":
        model = get_logged_model_for_user(request.user, model_id, action="edit")
        model = services.finalize_logged_model(model=model, status=params.string("status", required=True))
        return _model_response(model)
    services.delete_logged_model(model=get_logged_model_for_user(request.user, model_id, action="manage"))
    return {}


@api_view("PATCH")
def set_logged_model_tags(request, params, model_id):
    model = get_logged_model_for_user(request.user, model_id, action="edit")
    services.set_logged_model_tags(model=model, tags=params.object_list("tags"))
    return {}


@api_view("POST")
def log_logged_model_params(request, params, model_id):
    model = get_logged_model_for_user(request.user, model_id, action="edit")
    services.log_logged_model_params(model=model, params=params.object_list("params"))
    return {}


@api_view("DELETE")
def delete_logged_model_tag(request, params, model_id, tag_key):
    model = get_logged_model_for_user(request.user, model_id, action="edit")
    services.delete_logged_model_tag(model=model, key=tag_key)
    return {}


@api_view("POST")
def search_logged_models(request, params):
    models, token = search.search_logged_models(
        user=request.user,
        experiment_ids=params.string_list("experiment_ids"),
        filter_string=params.string("filter"),
        order_by=params.object_list("order_by"),
        datasets=params.object_list("datasets"),
        max_results=params.max_results(
            default=search.SEARCH_LOGGED_MODEL_MAX_RESULTS_DEFAULT, maximum=search.SEARCH_MAX_RESULTS_THRESHOLD
        ),
        page_token=params.string("page_token"),
    )
    return page_json("models", [m.to_mlflow() for m in models], token)


urlpatterns = [
    path("experiments/create", create_experiment),
    path("experiments/get", get_experiment),
    path("experiments/get-by-name", get_experiment_by_name),
    path("experiments/search", search_experiments),
    path("experiments/update", update_experiment),
    path("experiments/delete", delete_experiment),
    path("experiments/restore", restore_experiment),
    path("experiments/set-experiment-tag", set_experiment_tag),
    path("experiments/delete-experiment-tag", delete_experiment_tag),
    path("runs/create", create_run),
    path("runs/get", get_run),
    path("runs/update", update_run),
    path("runs/delete", delete_run),
    path("runs/restore", restore_run),
    path("runs/log-parameter", log_parameter),
    path("runs/log-metric", log_metric),
    path("runs/log-batch", log_batch),
    path("runs/set-tag", set_tag),
    path("runs/delete-tag", delete_tag),
    path("runs/log-model", log_model),
    path("runs/log-inputs", log_inputs),
    path("runs/outputs", log_outputs),
    path("runs/search", search_runs),
    path("metrics/get-history", get_metric_history),
    path("metrics/get-history-bulk-interval", get_metric_history_bulk_interval),
    path("logged-models", create_logged_model),
    path("logged-models/search", search_logged_models),
    path("logged-models/<str:model_id>", logged_model),
    path("logged-models/<str:model_id>/tags", set_logged_model_tags),
    path("logged-models/<str:model_id>/params", log_logged_model_params),
    path("logged-models/<str:model_id>/tags/<path:tag_key>", delete_logged_model_tag),
]

# Below /ajax-api/2.0/mlflow/ only: MLflow serves these as Flask routes for its UI.
ajax_urlpatterns = [
    path("metrics/get-history-bulk", get_metric_history_bulk),
    path("experiments/search-datasets", search_datasets),
    path("gateway-proxy", gateway_proxy),
    path("runs/create-promptlab-run", create_promptlab_run),
]
