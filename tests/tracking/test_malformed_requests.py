"""A malformed request never reaches a 500: every tracking endpoint answers MLflow's error JSON."""

import pytest

pytestmark = pytest.mark.django_db

GARBAGE = [None, 1, True, "x", [], [1], {}, [{"key": 1}], [{"key": "k" * 300, "value": "v"}]]

POST_ENDPOINTS = {
    "experiments/create": ["name", "artifact_location", "tags"],
    "experiments/search": ["filter", "order_by", "max_results", "view_type", "page_token"],
    "experiments/update": ["experiment_id", "new_name"],
    "experiments/set-experiment-tag": ["experiment_id", "key", "value"],
    "runs/create": ["experiment_id", "run_name", "start_time", "tags"],
    "runs/update": ["run_id", "status", "end_time", "run_name"],
    "runs/log-parameter": ["run_id", "key", "value"],
    "runs/log-metric": ["run_id", "key", "value", "timestamp", "step", "model_id"],
    "runs/log-batch": ["run_id", "metrics", "params", "tags"],
    "runs/set-tag": ["run_id", "key", "value"],
    "runs/log-model": ["run_id", "model_json"],
    "runs/log-inputs": ["run_id", "datasets", "models"],
    "runs/outputs": ["run_id", "models"],
    "runs/search": ["experiment_ids", "filter", "order_by", "max_results", "run_view_type", "page_token"],
    "logged-models": ["experiment_id", "name", "source_run_id", "params", "tags"],
    "logged-models/search": ["experiment_ids", "filter", "order_by", "max_results", "page_token"],
}


@pytest.fixture
def ids(api):
    exp_id = api.post("experiments/create", {"name": "fuzz"}).json()["experiment_id"]
    run_id = api.post("runs/create", {"experiment_id": exp_id}).json()["run"]["info"]["run_id"]
    return {"experiment_id": exp_id, "run_id": run_id, "experiment_ids": [exp_id]}


@pytest.mark.parametrize("path, fields", list(POST_ENDPOINTS.items()), ids=list(POST_ENDPOINTS))
def test_garbage_fields_give_4xx_json(api, ids, path, fields):
    for field in fields:
        for value in GARBAGE:
            body = {k: v for k, v in ids.items() if k in fields and k != field}
            body[field] = value
            response = api.post(path, body)
            assert response.status_code < 500, (path, field, value, response.content[:300])
            if response.status_code >= 400:
                assert response.json()["error_code"], (path, field, value)


def test_metric_items_garbage(api, ids):
    for item in [{"key": "m"}, {"key": "m", "value": "x", "timestamp": 1}, {"key": "m", "value": 1, "timestamp": "x"},
                 {"key": "m", "value": 1, "timestamp": 1, "step": "x"}, {"key": "m", "value": [1], "timestamp": 1},
                 {"key": "m", "value": 1, "timestamp": 1, "model_id": 5}, "m", None]:
        response = api.post("runs/log-batch", {"run_id": ids["run_id"], "metrics": [item]})
        assert response.status_code == 400, item
        assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"


def test_not_json_and_wrong_content_type(api, ids):
    response = api.client.post("/api/2.0/mlflow/runs/log-batch", "{not json", content_type="application/json", **api.headers)
    assert response.status_code == 400
    assert response.json()["message"].startswith("Malformed JSON request body:")
    response = api.client.post("/api/2.0/mlflow/runs/create", "{}", content_type="text/plain", **api.headers)
    assert response.status_code == 400
    assert response.json()["message"] == "Bad Request. Content-Type must be one of ['application/json']."


def test_unknown_endpoint_is_json_404(api):
    response = api.get("runs/nope")
    assert response.status_code == 404
    assert response.json()["error_code"] == "ENDPOINT_NOT_FOUND"
