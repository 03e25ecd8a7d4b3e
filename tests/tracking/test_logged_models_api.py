"""logged-models/* (MLflow 3.x): create, get, finalize, tags, delete, search."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tracking import services

pytestmark = pytest.mark.django_db


@pytest.fixture
def exp_id(api):
    return api.post("experiments/create", {"name": "wine"}).json()["experiment_id"]


@pytest.fixture
def run_id(api, exp_id):
    return api.post("runs/create", {"experiment_id": exp_id}).json()["run"]["info"]["run_id"]


def create(api, exp_id, **body):
    response = api.post("logged-models", {"experiment_id": exp_id, **body})
    assert response.status_code == 200, response.json()
    return response.json()["model"]


def error(response, status=400, code="INVALID_PARAMETER_VALUE"):
    assert response.status_code == status, response.json()
    assert response.json()["error_code"] == code
    return response.json()["message"]


def test_create_shape(api, exp_id, run_id):
    model = create(
        api, exp_id, name="model", source_run_id=run_id,
        params=[{"key": "features", "value": "alcohol"}],
        tags=[{"key": "mlflow.user", "value": "root"}, {"key": "mlflow.source.type", "value": "LOCAL"}],
    )
    info = model["info"]
    assert info["model_id"].startswith("m-") and len(info["model_id"]) == 34
    assert info["experiment_id"] == exp_id
    assert info["name"] == "model"
    assert info["artifact_uri"] == f"mlflow-artifacts:/{exp_id}/models/{info['model_id']}/artifacts"
    assert info["status"] == "LOGGED_MODEL_PENDING"
    assert info["model_type"] == ""
    assert info["source_run_id"] == run_id
    assert info["creation_timestamp_ms"] == info["last_updated_timestamp_ms"]
    assert info["tags"] == [{"key": "mlflow.source.type", "value": "LOCAL"}, {"key": "mlflow.user", "value": "root"}]
    assert model["data"] == {"params": [{"key": "features", "value": "alcohol"}]}


def test_create_errors(api, exp_id):
    assert "experiment_id" in error(api.post("logged-models", {"name": "m"}))
    error(api.post("logged-models", {"experiment_id": "999", "name": "m"}), 404, "RESOURCE_DOES_NOT_EXIST")
    error(api.post("logged-models", {"experiment_id": exp_id, "source_run_id": "f" * 32}), 404, "RESOURCE_DOES_NOT_EXIST")
    # A name is generated when absent.
    assert create(api, exp_id)["info"]["name"]


def test_get_missing(api):
    message = error(api.get("logged-models/m-" + "0" * 32), 404, "RESOURCE_DOES_NOT_EXIST")
    assert message == f"Logged model with ID 'm-{'0' * 32}' not found."


def test_finalize_get_and_delete(api, exp_id):
    model_id = create(api, exp_id, name="m")["info"]["model_id"]
    response = api.patch(f"logged-models/{model_id}", {"model_id": model_id, "status": "LOGGED_MODEL_READY"})
    assert response.status_code == 200
    assert response.json()["model"]["info"]["status"] == "LOGGED_MODEL_READY"
    assert api.get(f"logged-models/{model_id}").json()["model"]["info"]["status"] == "LOGGED_MODEL_READY"
    error(api.patch(f"logged-models/{model_id}", {"status": "READY"}))
    error(api.patch(f"logged-models/{model_id}", {}))
    assert api.delete(f"logged-models/{model_id}").json() == {}
    error(api.get(f"logged-models/{model_id}"), 404, "RESOURCE_DOES_NOT_EXIST")


def test_tags(api, exp_id):
    model_id = create(api, exp_id, name="m", tags=[{"key": "a", "value": "1"}])["info"]["model_id"]
    value = '[{"name": "lr", "version": "1"}]'
    response = api.patch(f"logged-models/{model_id}/tags", {"tags": [{"key": "mlflow.modelVersions", "value": value}, {"key": "a", "value": "2"}]})
    assert response.status_code == 200 and response.json() == {}
    tags = api.get(f"logged-models/{model_id}").json()["model"]["info"]["tags"]
    assert tags == [{"key": "a", "value": "2"}, {"key": "mlflow.modelVersions", "value": value}]
    assert api.delete(f"logged-models/{model_id}/tags/a").json() == {}
    assert [t["key"] for t in api.get(f"logged-models/{model_id}").json()["model"]["info"]["tags"]] == ["mlflow.modelVersions"]
    error(api.delete(f"logged-models/{model_id}/tags/a"), 404, "RESOURCE_DOES_NOT_EXIST")
    error(api.patch("logged-models/m-nope/tags", {"tags": []}), 404, "RESOURCE_DOES_NOT_EXIST")


def test_log_params(api, exp_id):
    model_id = create(api, exp_id, name="m", params=[{"key": "a", "value": "1"}])["info"]["model_id"]
    body = {"model_id": model_id, "params": [{"key": "a", "value": "1"}, {"key": "b", "value": "2"}]}
    assert api.post(f"logged-models/{model_id}/params", body).json() == {}
    params = api.get(f"logged-models/{model_id}").json()["model"]["data"]["params"]
    assert params == [{"key": "a", "value": "1"}, {"key": "b", "value": "2"}]
    assert "Changing param values is not allowed" in error(api.post(f"logged-models/{model_id}/params", {"params": [{"key": "a", "value": "9"}]}))
    error(api.post("logged-models/m-missing/params", {"params": []}), 404, "RESOURCE_DOES_NOT_EXIST")


class TestSearch:
    @pytest.fixture
    def models(self, api, owner, exp_id, run_id):
        made = {}
        for i, (name, rmse, kind) in enumerate([("model", 0.7, "lr"), ("model", 0.3, "rf"), ("other", 0.5, "lr")]):
            model = create(api, exp_id, name=name, source_run_id=run_id, params=[{"key": "kind", "value": kind}])
            model_id = model["info"]["model_id"]
            api.post("runs/log-batch", {"run_id": run_id, "metrics": [
                {"key": "rmse", "value": rmse, "timestamp": 100 + i, "step": i, "model_id": model_id}
            ]})
            from tracking.models import LoggedModel

            LoggedModel.objects.filter(pk=model_id).update(creation_timestamp_ms=1000 + i)
            made[(name, kind)] = model_id
        return made

    def search(self, api, exp_id, **body):
        response = api.post("logged-models/search", {"experiment_ids": [exp_id], **body})
        assert response.status_code == 200, response.json()
        return response.json()

    def ids(self, body):
        return [m["info"]["model_id"] for m in body.get("models", [])]

    def test_filter_by_name_newest_first(self, api, exp_id, models):
        body = self.search(api, exp_id, filter="name = 'model'")
        assert self.ids(body) == [models[("model", "rf")], models[("model", "lr")]]
        first = body["models"][0]
        assert first["data"]["metrics"][0]["model_id"] == first["info"]["model_id"]
        assert first["data"]["params"] == [{"key": "kind", "value": "rf"}]

    def test_filters(self, api, exp_id, models):
        assert self.ids(self.search(api, exp_id, filter="metrics.rmse < 0.6")) == [models[("other", "lr")], models[("model", "rf")]]
        assert self.ids(self.search(api, exp_id, filter="params.kind = 'rf'")) == [models[("model", "rf")]]
        assert self.ids(self.search(api, exp_id, filter="name LIKE 'oth%' AND params.kind = 'lr'")) == [models[("other", "lr")]]
        assert self.search(api, exp_id, filter="tags.nope = 'x'") == {}
        error(api.post("logged-models/search", {"experiment_ids": [exp_id], "filter": "name ~~ 'x'"}))
        error(api.post("logged-models/search", {"experiment_ids": [exp_id], "filter": "attributes.color = 'x'"}))

    def test_datasets(self, api, exp_id, run_id, models):
        model_id = models[("model", "lr")]
        api.post("runs/log-batch", {"run_id": run_id, "metrics": [
            {"key": "acc", "value": 0.9, "timestamp": 5, "step": 9, "model_id": model_id, "dataset_name": "eval", "dataset_digest": "d1"}
        ]})
        assert self.ids(self.search(api, exp_id, datasets=[{"dataset_name": "eval"}])) == [model_id]
        assert self.ids(self.search(api, exp_id, filter="metrics.acc > 0.5", datasets=[{"dataset_name": "eval", "dataset_digest": "d1"}])) == [model_id]
        assert self.search(api, exp_id, filter="metrics.acc > 0.5", datasets=[{"dataset_name": "train"}]) == {}
        assert self.search(api, exp_id, filter="metrics.rmse > 0", datasets=[{"dataset_name": "eval"}]) == {}
        error(api.post("logged-models/search", {"experiment_ids": [exp_id], "datasets": [{"dataset_digest": "d1"}]}))
        metric = api.get(f"logged-models/{model_id}").json()["model"]["data"]["metrics"]
        assert {"key": "acc", "value": 0.9, "timestamp": 5, "step": 9, "model_id": model_id, "run_id": run_id,
                "dataset_name": "eval", "dataset_digest": "d1"} in metric

    def test_order_and_paging(self, api, exp_id, models):
        body = self.search(api, exp_id, order_by=[{"field_name": "metrics.rmse", "ascending": True}])
        assert self.ids(body) == [models[("model", "rf")], models[("other", "lr")], models[("model", "lr")]]
        body = self.search(api, exp_id, order_by=[{"field_name": "name", "ascending": False}, {"field_name": "creation_timestamp", "ascending": True}])
        assert self.ids(body) == [models[("other", "lr")], models[("model", "lr")], models[("model", "rf")]]
        seen, token = [], None
        while True:
            body = self.search(api, exp_id, max_results=1, **({"page_token": token} if token else {}))
            seen += self.ids(body)
            token = body.get("next_page_token")
            if not token:
                break
        assert seen == [models[("other", "lr")], models[("model", "rf")], models[("model", "lr")]]
        error(api.post("logged-models/search", {"experiment_ids": [exp_id], "page_token": "garbage!"}))
        error(api.post("logged-models/search", {"experiment_ids": [exp_id], "order_by": [{"field_name": "color"}]}))

    def test_constant_query_count(self, api, owner, exp_id, models):
        api.post("logged-models/search", {"experiment_ids": [exp_id], "max_results": 1})  # token first use
        with CaptureQueriesContext(connection) as one:
            assert len(self.search(api, exp_id, max_results=1)["models"]) == 1
        with CaptureQueriesContext(connection) as three:
            assert len(self.search(api, exp_id)["models"]) == 3
        assert len(one.captured_queries) == len(three.captured_queries)
