"""MLflow server endpoints beyond the REST protos: run/logged-model artifact listing and downloads,
the UI's upload, history-bulk and dataset search, presigned/multipart refusals (issue 12, item 2)."""

import json

import pytest

from tests import factories
from tests.tracking.test_artifacts import download, release
from tracking import services


@pytest.fixture
def experiment(owner):
    return services.create_experiment(user=owner, name="compat")


@pytest.fixture
def run(owner, experiment):
    return services.create_run(user=owner, experiment=experiment)


@pytest.fixture
def run_files(_artifact_root, run):
    root = _artifact_root / f"{run.experiment_id}/{run.run_uuid}/artifacts"
    (root / "model").mkdir(parents=True)
    (root / "model" / "MLmodel").write_text("flavors: {}\n")
    (root / "model" / "model.pkl").write_bytes(b"\x00pickle")
    (root / "page.html").write_text("<script>alert(1)</script>")
    (root / "plot.png").write_bytes(b"\x89PNG")
    (root / "notes.txt").write_text("hello")
    return root


@pytest.fixture
def reader(data_scientist, experiment):
    factories.grant(experiment, "CAN_READ", user=data_scientist)
    return data_scientist


def error(response):
    return response.status_code, response.json()["error_code"]


# --------------------------------------------------------------------------- artifacts/list


@pytest.mark.parametrize("prefix", ["/api/2.0/mlflow", "/ajax-api/2.0/mlflow"])
def test_list_run_artifacts(api, run, run_files, prefix):
    response = api.get(f"{prefix}/artifacts/list", {"run_id": run.run_uuid})
    assert response.status_code == 200
    assert response.json() == {
        "root_uri": run.artifact_uri,
        "files": [
            {"path": "model", "is_dir": True},
            {"path": "notes.txt", "is_dir": False, "file_size": 5},
            {"path": "page.html", "is_dir": False, "file_size": 25},
            {"path": "plot.png", "is_dir": False, "file_size": 4},
        ],
    }
    nested = api.get(f"{prefix}/artifacts/list", {"run_uuid": run.run_uuid, "path": "model"}).json()
    assert [f["path"] for f in nested["files"]] == ["model/MLmodel", "model/model.pkl"]
    assert api.get(f"{prefix}/artifacts/list", {"run_id": run.run_uuid, "path": "nothing"}).json() == {"root_uri": run.artifact_uri}


def test_list_run_artifacts_errors_and_access(api, api_for, reader, outsider, run, run_files):
    assert api.get("artifacts/list", {"run_id": run.run_uuid, "path": "../x"}).json() == {
        "error_code": "INVALID_PARAMETER_VALUE", "message": "Invalid path"}
    assert error(api.get("artifacts/list", {})) == (400, "INVALID_PARAMETER_VALUE")
    assert error(api.get("artifacts/list", {"run_id": "f" * 32})) == (404, "RESOURCE_DOES_NOT_EXIST")
    assert api_for(reader).get("artifacts/list", {"run_id": run.run_uuid}).status_code == 200
    assert error(api_for(outsider).get("artifacts/list", {"run_id": run.run_uuid})) == (404, "RESOURCE_DOES_NOT_EXIST")
    assert api.post("artifacts/list", {"run_id": run.run_uuid}).status_code == 405


def test_a_root_pointing_into_an_unreadable_experiment_lists_nothing(api_for, owner, outsider, run, run_files):
    """A run pointed at someone else's folder reads nothing of it (nor may an experiment be created there)."""
    from core.errors import InvalidParameter

    with pytest.raises(InvalidParameter):
        services.create_experiment(user=outsider, name="sneaky", artifact_location=f"mlflow-artifacts:/{run.experiment_id}")
    theirs = services.create_experiment(user=outsider, name="sneaky")
    sneaky_run = services.create_run(user=outsider, experiment=theirs)
    sneaky_run.artifact_uri = run.artifact_uri
    sneaky_run.save()
    as_outsider = api_for(outsider)
    assert as_outsider.get("artifacts/list", {"run_id": sneaky_run.run_uuid}).status_code == 404
    assert as_outsider.get("/get-artifact", {"run_id": sneaky_run.run_uuid, "path": "notes.txt"}).status_code == 404


def test_external_root_is_listed_empty_and_never_fetched(api_for, admin):
    # Only a superuser may give an experiment an outside location.
    api = api_for(admin)
    experiment = services.create_experiment(user=admin, name="on-s3", artifact_location="s3://bucket/path")
    run = services.create_run(user=admin, experiment=experiment)
    assert api.get("artifacts/list", {"run_id": run.run_uuid}).json() == {"root_uri": f"s3://bucket/path/{run.run_uuid}/artifacts"}
    assert error(api.get("/get-artifact", {"run_id": run.run_uuid, "path": "a.txt"})) == (400, "INVALID_PARAMETER_VALUE")


# --------------------------------------------------------------------------- /get-artifact


@pytest.mark.parametrize(("name", "content_type"), [
    ("notes.txt", "text/plain"),
    ("model/MLmodel", "text/plain"),
    ("plot.png", "image/png"),
    ("model/model.pkl", "application/octet-stream"),
    ("page.html", "text/plain"),  # never served as text/html on our origin
])
def test_get_artifact_mime_rule(api, run, run_files, name, content_type):
    response = api.get("/get-artifact", {"run_uuid": run.run_uuid, "path": name})
    assert response.status_code == 200
    assert response["Content-Type"] == content_type
    assert response["Content-Disposition"].startswith("attachment")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert download(response) == (run_files / name).read_bytes()


def test_get_artifact_errors_and_access(api, api_for, reader, outsider, run, run_files, client, owner):
    assert api.get("/get-artifact", {"run_id": run.run_uuid, "path": "../path"}).json() == {
        "error_code": "INVALID_PARAMETER_VALUE", "message": "Invalid path"}
    assert error(api.get("/get-artifact", {"run_id": run.run_uuid})) == (400, "INVALID_PARAMETER_VALUE")
    assert error(api.get("/get-artifact", {"run_id": run.run_uuid, "path": "missing.txt"})) == (404, "RESOURCE_DOES_NOT_EXIST")
    assert api.get("/get-artifact", {"run_id": run.run_uuid, "path": "model"}).json()["message"] == (
        "Artifact path refers to a directory, not a file: 'model'")
    response = api_for(reader).get("/get-artifact", {"run_id": run.run_uuid, "path": "notes.txt"})
    assert response.status_code == 200
    release(response)
    assert error(api_for(outsider).get("/get-artifact", {"run_id": run.run_uuid, "path": "notes.txt"})) == (404, "RESOURCE_DOES_NOT_EXIST")
    assert client.get("/get-artifact", {"run_id": run.run_uuid, "path": "notes.txt"}).status_code == 401
    client.force_login(owner)  # the MLflow UI downloads with the browser session
    response = client.get("/get-artifact", {"run_id": run.run_uuid, "path": "notes.txt"})
    assert response.status_code == 200
    release(response)


# --------------------------------------------------------------------------- upload-artifact (the UI's)

UPLOAD = "/ajax-api/2.0/mlflow/upload-artifact"


def post_raw(api, params, data=b"", **extra):
    from urllib.parse import urlencode

    return api.client.generic("POST", f"{UPLOAD}?{urlencode(params)}", data, content_type="text/plain", **api.headers, **extra)


def test_upload_artifact_then_download(api, run, _artifact_root):
    response = post_raw(api, {"run_uuid": run.run_uuid, "path": "dir/test.txt"}, b"hello world")
    assert response.status_code == 200 and response.json() == {}
    assert (_artifact_root / f"{run.experiment_id}/{run.run_uuid}/artifacts/dir/test.txt").read_bytes() == b"hello world"
    assert download(api.get("/get-artifact", {"run_uuid": run.run_uuid, "path": "dir/test.txt"})) == b"hello world"
    assert api.post("upload-artifact").status_code == 404  # the UI's route only: not under /api/


def test_upload_artifact_errors_and_access(api, api_for, reader, outsider, run, _artifact_root):
    def message(response):
        return response.status_code, response.json()["message"]

    assert message(post_raw(api, {"path": "a.txt"}, b"x")) == (400, "Request must specify run_uuid.")
    assert message(post_raw(api, {"run_uuid": run.run_uuid}, b"x")) == (400, "Request must specify path.")
    assert message(post_raw(api, {"run_uuid": run.run_uuid, "path": "../a"}, b"x")) == (400, "Invalid path")
    assert message(post_raw(api, {"run_uuid": run.run_uuid, "path": "a.txt"})) == (400, "Request must specify data.")
    assert message(post_raw(api, {"run_uuid": run.run_uuid, "path": "a.txt"}, b"x", CONTENT_LENGTH=str(11 * 2**20))) == (
        400, "Artifact size is too large. Max size is 10MB.")
    assert error(post_raw(api_for(reader), {"run_uuid": run.run_uuid, "path": "a.txt"}, b"x")) == (403, "PERMISSION_DENIED")
    assert error(post_raw(api_for(outsider), {"run_uuid": run.run_uuid, "path": "a.txt"}, b"x")) == (404, "RESOURCE_DOES_NOT_EXIST")
    assert not (_artifact_root / f"{run.experiment_id}/{run.run_uuid}/artifacts/a.txt").exists()


# --------------------------------------------------------------------------- logged model artifacts


@pytest.fixture
def logged_model(owner, experiment, run, _artifact_root):
    model = services.create_logged_model(user=owner, experiment=experiment, name="lm", source_run=run)
    root = _artifact_root / model.artifact_location.removeprefix("mlflow-artifacts:/")
    (root / "sub").mkdir(parents=True)
    (root / "MLmodel").write_text("flavors: {}\n")
    (root / "sub" / "weights.bin").write_bytes(b"123")
    return model


@pytest.mark.parametrize("prefix", ["/api/2.0/mlflow", "/ajax-api/2.0/mlflow"])
def test_list_logged_model_artifacts(api, logged_model, prefix):
    url = f"{prefix}/logged-models/{logged_model.model_id}/artifacts/directories"
    assert api.get(url).json() == {
        "root_uri": logged_model.artifact_location,
        "files": [{"path": "MLmodel", "is_dir": False, "file_size": 12}, {"path": "sub", "is_dir": True}],
    }
    assert api.get(url, {"artifact_directory_path": "sub"}).json()["files"] == [
        {"path": "sub/weights.bin", "is_dir": False, "file_size": 3}]
    assert error(api.get(url, {"artifact_directory_path": "../.."})) == (400, "INVALID_PARAMETER_VALUE")


def test_get_logged_model_artifact(api, api_for, reader, outsider, logged_model):
    url = f"/ajax-api/2.0/mlflow/logged-models/{logged_model.model_id}/artifacts/files"
    response = api.get(url, {"artifact_file_path": "sub/weights.bin"})
    assert response.status_code == 200 and download(response) == b"123"
    assert response["Content-Disposition"].startswith("attachment") and "filename=weights.bin" in response["Content-Disposition"]
    assert api.get(url).json() == {
        "error_code": "BAD_REQUEST", "message": 'Request must include the "artifact_file_path" query parameter.'}
    assert error(api.get(url, {"artifact_file_path": "../x"})) == (400, "INVALID_PARAMETER_VALUE")
    response = api_for(reader).get(url, {"artifact_file_path": "MLmodel"})
    assert response.status_code == 200
    release(response)
    assert error(api_for(outsider).get(url, {"artifact_file_path": "MLmodel"})) == (404, "RESOURCE_DOES_NOT_EXIST")
    assert api.get(f"/api/2.0/mlflow/logged-models/{logged_model.model_id}/artifacts/files").status_code == 404


# --------------------------------------------------------------------------- metrics/get-history-bulk

BULK = "/ajax-api/2.0/mlflow/metrics/get-history-bulk"


def test_get_history_bulk(api, owner, experiment, run):
    other = services.create_run(user=owner, experiment=experiment)
    for r, points in ((run, [(1.0, 20, 1), (0.5, 10, 0)]), (other, [(2.0, 5, 0)])):
        for value, timestamp, step in points:
            services.log_metric(run=r, key="loss", value=value, timestamp=timestamp, step=step)
    services.log_metric(run=run, key="acc", value=9.0, timestamp=1, step=0)
    response = api.get(BULK, {"run_id": [run.run_uuid, other.run_uuid], "metric_key": "loss"})
    assert response.status_code == 200
    expected = sorted([
        {"key": "loss", "value": 0.5, "timestamp": 10, "step": 0, "run_id": run.run_uuid},
        {"key": "loss", "value": 1.0, "timestamp": 20, "step": 1, "run_id": run.run_uuid},
        {"key": "loss", "value": 2.0, "timestamp": 5, "step": 0, "run_id": other.run_uuid},
    ], key=lambda m: m["run_id"])
    assert response.json() == {"metrics": expected}
    assert len(api.get(BULK, {"run_id": [run.run_uuid, other.run_uuid], "metric_key": "loss", "max_results": 1}).json()["metrics"]) == 1
    assert api.get(BULK, {"run_id": run.run_uuid, "metric_key": "nothing"}).json() == {"metrics": []}


def test_get_history_bulk_errors_and_access(api, api_for, reader, outsider, run):
    def message(response):
        return response.status_code, response.json()["message"]

    assert message(api.get(BULK, {"metric_key": "loss"})) == (400, "GetMetricHistoryBulk request must specify at least one run_id.")
    assert message(api.get(BULK, {"run_id": run.run_uuid})) == (400, "GetMetricHistoryBulk request must specify a metric_key.")
    assert message(api.get(BULK, {"run_id": [str(i) for i in range(101)], "metric_key": "loss"})) == (
        400, "GetMetricHistoryBulk request cannot specify more than 100 run_ids. Received 101 run_ids.")
    assert message(api.get(BULK, {"run_id": [f"id_{i}" for i in range(1000)], "metric_key": "key"}))[1].startswith(
        "GetMetricHistoryBulk request cannot specify more than")  # MLflow's own test: 1000 ids, past Django's old field limit
    assert error(api.get(BULK, {"run_id": run.run_uuid, "metric_key": "loss", "max_results": "x"})) == (400, "INVALID_PARAMETER_VALUE")
    assert api_for(reader).get(BULK, {"run_id": run.run_uuid, "metric_key": "loss"}).status_code == 200
    assert error(api_for(outsider).get(BULK, {"run_id": run.run_uuid, "metric_key": "loss"})) == (404, "RESOURCE_DOES_NOT_EXIST")
    assert api.get("/api/2.0/mlflow/metrics/get-history-bulk", {"run_id": run.run_uuid, "metric_key": "l"}).status_code == 404


# --------------------------------------------------------------------------- experiments/search-datasets

DATASETS = "/ajax-api/2.0/mlflow/experiments/search-datasets"


def test_search_datasets(api, api_for, reader, outsider, owner, experiment, run):
    dataset = {"name": "wine", "digest": "abc", "source_type": "local", "source": "{}"}
    services.log_inputs(run=run, datasets=[{"dataset": dataset, "tags": [{"key": "mlflow.data.context", "value": "training"}]}], models=[])
    services.log_inputs(run=services.create_run(user=owner, experiment=experiment),
                        datasets=[{"dataset": {**dataset, "name": "raw"}}], models=[])
    response = api.post(DATASETS, {"experiment_ids": [str(experiment.pk), "999999"]})
    assert response.status_code == 200
    assert response.json() == {"dataset_summaries": [
        {"experiment_id": str(experiment.pk), "name": "raw", "digest": "abc"},
        {"experiment_id": str(experiment.pk), "name": "wine", "digest": "abc", "context": "training"},
    ]}
    assert len(api_for(reader).post(DATASETS, {"experiment_ids": [str(experiment.pk)]}).json()["dataset_summaries"]) == 2
    assert api_for(outsider).post(DATASETS, {"experiment_ids": [str(experiment.pk)]}).json() == {}
    assert api.post(DATASETS, {}).json()["message"] == "SearchDatasets request must specify at least one experiment_id."
    assert api.post(DATASETS, {"experiment_ids": [str(i) for i in range(21)]}).json()["message"] == (
        "SearchDatasets request cannot specify more than 20 experiment_ids. Received 21 experiment_ids.")
    assert error(api.post(DATASETS, {"experiment_ids": 5})) == (400, "INVALID_PARAMETER_VALUE")
    assert api.get(DATASETS).status_code == 405


# --------------------------------------------------------------------------- presigned and multipart: not offered


def test_presigned_and_multipart_are_refused_with_mlflows_errors(api, api_for, outsider, run, owner, admin):
    response = api.post("artifacts/presigned-upload-url", {"run_id": run.run_uuid, "path": "a.txt"})
    assert error(response) == (400, "INVALID_PARAMETER_VALUE") and "proxied artifact storage" in response.json()["message"]
    response = api.post("artifacts/presigned-download-url", {"run_id": run.run_uuid, "path": "a.txt"})
    assert error(response) == (400, "INVALID_PARAMETER_VALUE") and "proxied artifact storage" in response.json()["message"]
    assert api.post("artifacts/presigned-upload-url", {"path": "a.txt"}).json()["message"] == (
        "Exactly one of run_id and model_id must be provided.")
    assert error(api.post("artifacts/presigned-download-url", {"run_id": run.run_uuid, "path": "a", "expiration": 0})) == (
        400, "INVALID_PARAMETER_VALUE")
    s3 = services.create_run(user=admin, experiment=services.create_experiment(user=admin, name="s3", artifact_location="s3://b/p"))
    assert error(api_for(admin).post("artifacts/presigned-upload-url", {"run_id": s3.run_uuid, "path": "a.txt"})) == (501, "NOT_IMPLEMENTED")
    assert error(api_for(outsider).post("artifacts/presigned-download-url", {"run_id": run.run_uuid, "path": "a"})) == (
        404, "RESOURCE_DOES_NOT_EXIST")
    folder = f"{run.experiment_id}/{run.run_uuid}/artifacts/big.bin"
    for prefix in ("/api/2.0/mlflow-artifacts", "/ajax-api/2.0/mlflow-artifacts"):
        for action in ("create", "complete", "abort"):
            assert error(api.post(f"{prefix}/mpu/{action}/{folder}", {"path": "big.bin"})) == (501, "NOT_IMPLEMENTED")
        assert error(api.get(f"{prefix}/presigned/{folder}")) == (501, "NOT_IMPLEMENTED")
    assert error(api_for(outsider).post(f"/api/2.0/mlflow-artifacts/mpu/create/{folder}", {"path": "x"})) == (404, "RESOURCE_DOES_NOT_EXIST")


def test_ajax_artifact_proxy_and_server_info(api, run):
    folder = f"{run.experiment_id}/{run.run_uuid}/artifacts"
    assert api.put(f"/ajax-api/2.0/mlflow-artifacts/artifacts/{folder}/x.txt", b"abc").status_code == 200
    assert api.get("/ajax-api/2.0/mlflow-artifacts/artifacts", {"path": folder}).json() == {
        "files": [{"path": "x.txt", "is_dir": False, "file_size": 3}]}
    assert json.loads(api.get("/ajax-api/3.0/mlflow/server-info").content)["artifact_serving_enabled"] is True


# --------------------------------------------------------------------------- MLflow's exact texts (item 4)


@pytest.mark.parametrize(("endpoint", "body", "text"), [
    ("experiments/create", {"name": 123}, "Invalid value 123 for parameter 'name'"),
    ("experiments/create", {"name": "e", "artifact_location": 9.0}, "Invalid value 9.0 for parameter 'artifact_location'"),
    ("experiments/create", {"name": "e", "artifact_location": "x", "tags": "5"}, 'Invalid value \\"5\\" for parameter \'tags\''),
    ("runs/log-metric", {"run_id": 31, "key": "m", "value": 41, "timestamp": 59, "step": 26}, "Invalid value 31 for parameter 'run_id' supplied"),
    ("runs/log-metric", {"run_id": "RUN", "key": 31, "value": 41, "timestamp": 59, "step": 26}, "Invalid value 31 for parameter 'key' supplied"),
    ("runs/log-metric", {"run_id": "RUN", "key": "f", "value": 31, "timestamp": 59, "step": "foo"}, 'Invalid value \\"foo\\" for parameter \'step\' supplied'),
    ("runs/log-metric", {"run_id": "RUN", "key": "f", "value": 31, "timestamp": "foo", "step": 41}, 'Invalid value \\"foo\\" for parameter \'timestamp\' supplied'),
    ("runs/log-batch", {"run_id": "RUN", "metrics": "foo"}, 'Invalid value \\"foo\\" for parameter \'metrics\' supplied'),
    ("runs/log-batch", {"run_id": "RUN", "params": "foo"}, 'Invalid value \\"foo\\" for parameter \'params\' supplied'),
    ("runs/log-batch", {"run_id": "RUN", "tags": "foo"}, 'Invalid value \\"foo\\" for parameter \'tags\' supplied'),
    ("runs/set-tag", {"run_id": "RUN", "key": "k", "value": 41}, "Invalid value 41 for parameter 'value' supplied"),
])
def test_invalid_values_read_as_on_mlflows_server(api, run, endpoint, body, text):
    body = {k: run.run_uuid if v == "RUN" else v for k, v in body.items()}
    response = api.post(endpoint, body)
    assert response.status_code == 400
    assert text in response.content.decode()  # the raw JSON text, as MLflow's tests read it


def test_big_json_bodies_and_many_query_fields_answer_json(api, run, settings):
    """A 3 MB dataset profile is a valid MLflow request; Django's own limits answer MLflow's JSON, never HTML."""
    dataset = {"name": "d", "digest": "x", "source_type": "local", "source": "{}", "profile": "p" * (3 * 2**20)}
    assert api.post("runs/log-inputs", {"run_id": run.run_uuid, "datasets": [{"dataset": dataset}]}).status_code == 200
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    assert error(api.post("runs/log-inputs", {"run_id": run.run_uuid, "datasets": [{"dataset": dataset}]})) == (
        413, "RESOURCE_EXHAUSTED")
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 10
    assert error(api.get("/ajax-api/2.0/mlflow/metrics/get-history-bulk", {"run_id": ["a"] * 20, "metric_key": "m"})) == (
        400, "INVALID_PARAMETER_VALUE")


def test_gateway_proxy_is_an_empty_gateway(api, anon_api):
    for call in (api.get, api.post):
        response = call("/ajax-api/2.0/mlflow/gateway-proxy")
        assert (response.status_code, response.json()) == (200, {"endpoints": []})
    assert anon_api.get("/ajax-api/2.0/mlflow/gateway-proxy").status_code == 401


@pytest.mark.parametrize("name", ["a.txt", "dog%step%100%timestamp%100%ab12.png", "with space.txt", 'q"uote\\.bin', "日本語.csv", "日本語", ""])
def test_content_disposition_is_mlflows(name):
    from mlflow.server.handlers import _content_disposition_attachment

    from tracking.artifacts import content_disposition

    assert content_disposition(name) == _content_disposition_attachment(name)


@pytest.mark.parametrize(("name", "content_type"), [("b.pkl", "application/octet-stream"), ("c.png", "image/png"),
                                                    ("d.pdf", "application/pdf"), ("mlproject", "text/plain")])
def test_requested_type_is_never_served(api, run, _artifact_root, name, content_type):
    """MLflow's test_server_overrides_requested_mime_type: `Accept: text/html` changes nothing."""
    folder = f"{run.experiment_id}/{run.run_uuid}/artifacts"
    assert api.put(f"/api/2.0/mlflow-artifacts/artifacts/{folder}/{name}", b"x").status_code == 200
    for response in (api.get(f"/api/2.0/mlflow-artifacts/artifacts/{folder}/{name}", HTTP_ACCEPT="text/html"),
                     api.get("/get-artifact", {"run_id": run.run_uuid, "path": name}, HTTP_ACCEPT="text/html")):
        assert response["Content-Type"] == content_type
        assert response["Content-Disposition"] == f"attachment; filename={name}"
        assert download(response) == b"x"


# --------------------------------------------------------------------------- the UI's prompt lab run

PROMPTLAB = "/ajax-api/2.0/mlflow/runs/create-promptlab-run"


def test_create_promptlab_run_rejects_invalid_requests(api):
    body = {}
    for field, value in (("experiment_id", "123"), ("prompt_template", "t"), ("prompt_parameters", [{"key": "k", "value": "v"}]),
                         ("model_route", "r"), ("model_input", "i"), ("mlflow_version", "1.0.0")):
        response = api.post(PROMPTLAB, body)
        assert (response.status_code, response.json()["message"]) == (400, f"CreatePromptlabRun request must specify {field}.")
        body[field] = value
    assert error(api.post(PROMPTLAB, body)) == (404, "RESOURCE_DOES_NOT_EXIST")  # experiment 123


def test_create_promptlab_run(api, api_for, reader, experiment, _artifact_root):
    body = {
        "experiment_id": str(experiment.pk), "run_name": "my_run_name", "prompt_template": "my_prompt_template",
        "prompt_parameters": [{"key": "my_key", "value": "my_value"}], "model_route": "my_route",
        "model_parameters": [{"key": "temperature", "value": "0.1"}], "model_input": "my_input", "model_output": "my_output",
        "model_output_parameters": [{"key": "latency", "value": "100"}], "mlflow_version": "1.0.0", "user_id": "username",
        "start_time": 456,
    }
    response = api.post(PROMPTLAB, body)
    assert response.status_code == 200, response.content
    run = response.json()["run"]
    assert (run["info"]["run_name"], run["info"]["experiment_id"], run["info"]["user_id"]) == ("my_run_name", str(experiment.pk), "username")
    assert (run["info"]["status"], run["info"]["start_time"]) == ("FINISHED", 456)
    params = run["data"]["params"]
    assert {"key": "model_route", "value": "my_route"} in params and {"key": "temperature", "value": "0.1"} in params
    assert {"key": "prompt_template", "value": "my_prompt_template"} in params
    assert {"key": "mlflow.loggedArtifacts", "value": '[{"path": "eval_results_table.json", "type": "table"}]'} in run["data"]["tags"]
    assert {"key": "mlflow.runSourceType", "value": "PROMPT_ENGINEERING"} in run["data"]["tags"]
    table = json.loads(download(api.get("/get-artifact", {"run_id": run["info"]["run_id"], "path": "eval_results_table.json"})))
    assert table == {"columns": ["my_key", "prompt", "output", "latency"], "data": [["my_value", "my_input", "my_output", "100"]]}
    assert error(api_for(reader).post(PROMPTLAB, body)) == (403, "PERMISSION_DENIED")


def test_max_results_past_the_limit_reads_as_on_mlflows_server(api, experiment):
    """MLflow's test_search_validation: the JSON number bare; a query-string value quoted."""
    response = api.post("runs/search", {"experiment_ids": [str(experiment.pk)], "max_results": 123456789})
    assert response.status_code == 400
    assert response.json()["message"].startswith("Invalid value 123456789 for parameter 'max_results' supplied")
    response = api.get("registered-models/search", {"max_results": "1001"})
    assert response.json()["message"].startswith('Invalid value "1001" for parameter \'max_results\' supplied')


def test_write_routes_refuse_readers_with_403(api_for, reader, run):
    as_reader = api_for(reader)
    folder = f"{run.experiment_id}/{run.run_uuid}/artifacts/x.bin"
    assert error(as_reader.post(f"/api/2.0/mlflow-artifacts/mpu/create/{folder}", {"path": "x.bin"})) == (403, "PERMISSION_DENIED")
    assert error(as_reader.post("artifacts/presigned-upload-url", {"run_id": run.run_uuid, "path": "x"})) == (403, "PERMISSION_DENIED")
    # Reads stay open to readers (and answer MLflow's refusal for proxied storage).
    assert error(as_reader.post("artifacts/presigned-download-url", {"run_id": run.run_uuid, "path": "x"})) == (400, "INVALID_PARAMETER_VALUE")
    assert error(as_reader.get(f"/api/2.0/mlflow-artifacts/presigned/{folder}")) == (501, "NOT_IMPLEMENTED")


def test_head_runs_the_get_and_never_a_write(api, run, run_files):
    folder = f"{run.experiment_id}/{run.run_uuid}/artifacts"
    response = api.client.head(f"/api/2.0/mlflow-artifacts/artifacts/{folder}/notes.txt", **api.headers)
    assert response.status_code == 200 and response["Content-Length"] == "5"
    release(response)
    assert (run_files / "notes.txt").exists()  # the proxy's view deletes on anything but GET/PUT
    response = api.client.head("/get-artifact", {"run_id": run.run_uuid, "path": "notes.txt"}, **api.headers)
    assert response.status_code == 200 and response["Content-Type"] == "text/plain"
    release(response)
    assert api.client.head("/api/2.0/mlflow/runs/create", **api.headers).status_code == 405
