"""runs/* and metrics/*: logging, LatestMetric, limits, deleted runs, wire shapes."""

import json
import math

import pytest
from django.db import connection

from tracking.models import LatestMetric, Metric, Run

pytestmark = pytest.mark.django_db


@pytest.fixture
def exp_id(api):
    return api.post("experiments/create", {"name": "wine"}).json()["experiment_id"]


@pytest.fixture
def run_id(api, exp_id):
    return new_run(api, exp_id)


def new_run(api, exp_id, **body):
    response = api.post("runs/create", {"experiment_id": exp_id, **body})
    assert response.status_code == 200, response.json()
    return response.json()["run"]["info"]["run_id"]


def get_run(api, run_id):
    response = api.get("runs/get", {"run_id": run_id, "run_uuid": run_id})
    assert response.status_code == 200, response.json()
    return response.json()["run"]


def error(response, status=400, code="INVALID_PARAMETER_VALUE"):
    assert response.status_code == status, response.json()
    assert response.json()["error_code"] == code
    return response.json()["message"]


def test_create_shape(api, exp_id, owner):
    body = {
        "experiment_id": exp_id,
        "user_id": "someone-else",
        "run_name": "lr-run-1",
        "start_time": 1795727805547,
        "tags": [{"key": "mlflow.user", "value": "root"}, {"key": "mlflow.runName", "value": "lr-run-1"}],
    }
    run = api.post("runs/create", body).json()["run"]
    info = run["info"]
    assert info["run_uuid"] == info["run_id"] and len(info["run_id"]) == 32
    assert info["experiment_id"] == exp_id
    assert info["run_name"] == "lr-run-1"
    assert info["user_id"] == "someone-else"  # MLflow's: the client's claim
    assert info["status"] == "RUNNING"
    assert info["start_time"] == 1795727805547
    assert info["artifact_uri"] == f"mlflow-artifacts:/{exp_id}/{info['run_id']}/artifacts"
    assert info["lifecycle_stage"] == "active"
    assert "end_time" not in info
    assert run["data"] == {"tags": [{"key": "mlflow.user", "value": "root"}, {"key": "mlflow.runName", "value": "lr-run-1"}]}
    assert run["inputs"] == {} and run["outputs"] == {}
    assert Run.objects.get(pk=info["run_id"]).owner == owner


def test_user_id_follows_mlflow_and_the_owner_stays_the_caller(api, exp_id, owner):
    """user_id: the field, else the mlflow.user tag, else the caller's username; owner: always the caller."""
    tagged = api.post("runs/create", {"experiment_id": exp_id, "tags": [{"key": "mlflow.user", "value": "alice"}]}).json()["run"]
    plain = api.post("runs/create", {"experiment_id": exp_id}).json()["run"]
    assert tagged["info"]["user_id"] == "alice" and plain["info"]["user_id"] == "owner"
    assert get_run(api, tagged["info"]["run_id"])["info"]["user_id"] == "alice"
    assert {r.owner for r in Run.objects.filter(pk__in=[tagged["info"]["run_id"], plain["info"]["run_id"]])} == {owner}
    found = api.post("runs/search", {"experiment_ids": [exp_id], "filter": "attributes.user_id = 'alice'"}).json()["runs"]
    assert [r["info"]["run_id"] for r in found] == [tagged["info"]["run_id"]]
    assert error(api.post("runs/create", {"experiment_id": exp_id, "user_id": 5})) .startswith('Invalid value 5 for parameter')


def test_run_name_from_tag_or_generated(api, exp_id):
    run_id = new_run(api, exp_id, tags=[{"key": "mlflow.runName", "value": "from-tag"}])
    assert get_run(api, run_id)["info"]["run_name"] == "from-tag"
    run = get_run(api, new_run(api, exp_id))
    name = run["info"]["run_name"]
    adjective, animal, number = name.split("-")
    assert adjective and animal and number.isdigit()
    assert {"key": "mlflow.runName", "value": name} in run["data"]["tags"]
    response = api.post("runs/create", {"experiment_id": exp_id, "run_name": "x", "tags": [{"key": "mlflow.runName", "value": "y"}]})
    assert "Both 'run_name' argument and 'mlflow.runName' tag are specified" in error(response)


def test_create_in_default_and_missing_experiment(api):
    assert get_run(api, new_run(api, "0"))["info"]["experiment_id"] == "0"
    assert error(api.post("runs/create", {"experiment_id": "404"}), 404, "RESOURCE_DOES_NOT_EXIST") == "No Experiment with id=404 exists"


def test_get_missing_run(api):
    message = error(api.get("runs/get", {"run_id": "f" * 32}), 404, "RESOURCE_DOES_NOT_EXIST")
    assert message == f"Run with id={'f' * 32} not found"
    assert "Missing value for required parameter 'run_id'" in error(api.get("runs/get"))


def test_log_param_metric_tag_and_get(api, run_id):
    assert api.post("runs/log-parameter", {"run_id": run_id, "run_uuid": run_id, "key": "features", "value": "alcohol"}).json() == {}
    assert api.post("runs/log-metric", {"run_id": run_id, "key": "rmse", "value": 0.74, "timestamp": 1000, "step": 0}).json() == {}
    assert api.post("runs/set-tag", {"run_id": run_id, "key": "tutorial", "value": "wine"}).json() == {}
    data = get_run(api, run_id)["data"]
    assert data["params"] == [{"key": "features", "value": "alcohol"}]
    assert data["metrics"] == [{"key": "rmse", "value": 0.74, "timestamp": 1000, "step": 0}]
    assert {"key": "tutorial", "value": "wine"} in data["tags"]


def test_param_is_immutable(api, run_id):
    api.post("runs/log-parameter", {"run_id": run_id, "key": "lr", "value": "0.1"})
    # Same value again is fine.
    assert api.post("runs/log-parameter", {"run_id": run_id, "key": "lr", "value": "0.1"}).status_code == 200
    message = error(api.post("runs/log-parameter", {"run_id": run_id, "key": "lr", "value": "0.2"}))
    assert message == (
        f"Changing param values is not allowed. Param with key='lr' was already logged with value='0.1' "
        f"for run ID='{run_id}'. Attempted logging new value '0.2'."
    )
    message = error(api.post("runs/log-batch", {"run_id": run_id, "params": [{"key": "lr", "value": "0.3"}, {"key": "new", "value": "x"}]}))
    assert message.startswith("Changing param values is not allowed. Params were already logged=")
    # The whole batch is refused: the new param was not written either.
    assert [p["key"] for p in get_run(api, run_id)["data"]["params"]] == ["lr"]


def test_log_metric_validation(api, run_id):
    assert "'timestamp'" in error(api.post("runs/log-metric", {"run_id": run_id, "key": "m", "value": 1}))
    assert "'value'" in error(api.post("runs/log-metric", {"run_id": run_id, "key": "m", "timestamp": 1}))
    assert "'value'" in error(api.post("runs/log-metric", {"run_id": run_id, "key": "m", "value": "abc", "timestamp": 1}))
    assert "'key'" in error(api.post("runs/log-metric", {"run_id": run_id, "value": 1, "timestamp": 1}))
    assert "250" in error(api.post("runs/log-metric", {"run_id": run_id, "key": "k" * 251, "value": 1, "timestamp": 1}))
    error(api.post("runs/log-metric", {"key": "m", "value": 1, "timestamp": 1}))
    error(api.post("runs/log-metric", {"run_id": "0" * 32, "key": "m", "value": 1, "timestamp": 1}), 404, "RESOURCE_DOES_NOT_EXIST")


def test_nan_and_infinity_are_protobuf_strings(api, run_id):
    api.post("runs/log-batch", {"run_id": run_id, "metrics": [
        {"key": "nan", "value": "NaN", "timestamp": 1, "step": 0},
        {"key": "inf", "value": "Infinity", "timestamp": 1, "step": 0},
        {"key": "ninf", "value": "-Infinity", "timestamp": 1, "step": 0},
    ]})
    metrics = {m["key"]: m["value"] for m in get_run(api, run_id)["data"]["metrics"]}
    assert metrics == {"nan": "NaN", "inf": "Infinity", "ninf": "-Infinity"}
    history = api.get("metrics/get-history", {"run_id": run_id, "metric_key": "nan"}).json()["metrics"]
    assert history[0]["value"] == "NaN"


class TestLatestMetricRule:
    def log(self, api, run_id, *points):
        response = api.post("runs/log-batch", {"run_id": run_id, "metrics": [
            {"key": "m", "value": v, "timestamp": t, "step": s} for v, t, s in points
        ]})
        assert response.status_code == 200, response.json()
        latest = LatestMetric.objects.get(run_id=run_id, key="m")
        return (math.nan if latest.is_nan else latest.value, latest.timestamp, latest.step)

    def test_higher_step_wins_even_if_older(self, api, run_id):
        assert self.log(api, run_id, (1.0, 100, 5)) == (1.0, 100, 5)
        assert self.log(api, run_id, (2.0, 50, 6)) == (2.0, 50, 6)
        assert self.log(api, run_id, (3.0, 500, 4)) == (2.0, 50, 6)

    def test_same_step_later_timestamp_then_larger_value(self, api, run_id):
        self.log(api, run_id, (1.0, 100, 0))
        assert self.log(api, run_id, (0.5, 200, 0)) == (0.5, 200, 0)
        assert self.log(api, run_id, (0.1, 200, 0)) == (0.5, 200, 0)
        assert self.log(api, run_id, (0.9, 200, 0)) == (0.9, 200, 0)

    def test_within_one_batch(self, api, run_id):
        assert self.log(api, run_id, (1.0, 100, 2), (5.0, 100, 1), (7.0, 90, 2)) == (1.0, 100, 2)
        assert Metric.objects.filter(run_id=run_id, key="m").count() == 3

    def test_nan_compares_as_zero(self, api, run_id):
        self.log(api, run_id, (-1.0, 100, 0))
        value, _, _ = self.log(api, run_id, ("NaN", 100, 0))
        assert math.isnan(value)
        assert self.log(api, run_id, (0.5, 100, 0)) == (0.5, 100, 0)


def test_log_batch_happy_and_constant_queries(api, run_id, django_assert_max_num_queries):
    metrics = [{"key": f"m{i % 10}", "value": i, "timestamp": 1000 + i, "step": i} for i in range(500)]
    params = [{"key": f"p{i}", "value": str(i)} for i in range(100)]
    tags = [{"key": f"t{i}", "value": str(i)} for i in range(100)]
    # auth (token lookup) + run fetch + lock + params read/write + tags read/write + metrics + latest read/write
    with django_assert_max_num_queries(16):
        response = api.post("runs/log-batch", {"run_id": run_id, "metrics": metrics, "params": params, "tags": tags})
    assert response.status_code == 200, response.json()
    data = get_run(api, run_id)["data"]
    assert len(data["params"]) == 100 and len(data["metrics"]) == 10
    assert Metric.objects.filter(run_id=run_id).count() == 500
    assert {m["key"]: m["step"] for m in data["metrics"]}["m9"] == 499


def test_log_batch_limits(api, run_id):
    too_many = [{"key": f"m{i}", "value": 1, "timestamp": 1} for i in range(1001)]
    assert error(api.post("runs/log-batch", {"run_id": run_id, "metrics": too_many})) == (
        "A batch logging request can contain at most 1000 metrics. Got 1001 metrics. "
        "Please split up metrics across multiple requests and try again."
    )
    params = [{"key": f"p{i}", "value": "v"} for i in range(101)]
    assert "at most 100 params" in error(api.post("runs/log-batch", {"run_id": run_id, "params": params}))
    tags = [{"key": f"t{i}", "value": "v"} for i in range(101)]
    assert "at most 100 tags" in error(api.post("runs/log-batch", {"run_id": run_id, "tags": tags}))
    mixed = {"metrics": too_many[:950], "params": params[:60]}
    assert "at most 1000 metrics, params, and tags" in error(api.post("runs/log-batch", {"run_id": run_id, **mixed}))
    assert "6000" in error(api.post("runs/log-batch", {"run_id": run_id, "params": [{"key": "p", "value": "x" * 6001}]}))
    assert "8000" in error(api.post("runs/log-batch", {"run_id": run_id, "tags": [{"key": "t", "value": "x" * 8001}]}))
    assert "Duplicate parameter keys" in error(api.post("runs/log-batch", {"run_id": run_id, "params": [{"key": "a", "value": "1"}, {"key": "a", "value": "2"}]}))
    error(api.post("runs/log-batch", {"run_id": run_id, "metrics": "not a list"}))
    assert Metric.objects.filter(run_id=run_id).count() == 0


def test_log_batch_metric_with_model_id_tags_existing_point(api, exp_id, run_id):
    api.post("runs/log-metric", {"run_id": run_id, "key": "rmse", "value": 0.5, "timestamp": 10, "step": 0})
    model = api.post("logged-models", {"experiment_id": exp_id, "name": "model", "source_run_id": run_id}).json()["model"]
    model_id = model["info"]["model_id"]
    api.post("runs/log-batch", {"run_id": run_id, "metrics": [
        {"key": "rmse", "value": 0.5, "timestamp": 10, "step": 0, "model_id": model_id},
    ]})
    history = api.get("metrics/get-history", {"run_id": run_id, "metric_key": "rmse"}).json()["metrics"]
    assert len(history) == 1  # not duplicated in the run's history
    got = api.get(f"logged-models/{model_id}").json()["model"]
    assert got["data"]["metrics"] == [
        {"key": "rmse", "value": 0.5, "timestamp": 10, "step": 0, "model_id": model_id, "run_id": run_id}
    ]


def test_set_tag_run_name_renames(api, run_id):
    api.post("runs/set-tag", {"run_id": run_id, "key": "mlflow.runName", "value": "renamed"})
    assert get_run(api, run_id)["info"]["run_name"] == "renamed"


def test_delete_tag(api, run_id):
    api.post("runs/set-tag", {"run_id": run_id, "key": "k", "value": "v"})
    assert api.post("runs/delete-tag", {"run_id": run_id, "key": "k"}).json() == {}
    assert "k" not in [t["key"] for t in get_run(api, run_id)["data"]["tags"]]
    assert error(api.post("runs/delete-tag", {"run_id": run_id, "key": "k"}), 404, "RESOURCE_DOES_NOT_EXIST") == (
        f"No tag with name: k in run with id {run_id}"
    )


def test_update_run(api, run_id):
    body = api.post("runs/update", {"run_id": run_id, "run_uuid": run_id, "status": "FINISHED", "end_time": 2000}).json()
    assert body["run_info"]["status"] == "FINISHED"
    assert body["run_info"]["end_time"] == 2000
    body = api.post("runs/update", {"run_id": run_id, "run_name": "new-name"}).json()
    assert body["run_info"]["run_name"] == "new-name"
    assert {"key": "mlflow.runName", "value": "new-name"} in get_run(api, run_id)["data"]["tags"]
    assert "status" in error(api.post("runs/update", {"run_id": run_id, "status": "DONE"}))


def test_deleted_run_refuses_writes(api, run_id):
    assert api.post("runs/delete", {"run_id": run_id}).json() == {}
    assert get_run(api, run_id)["info"]["lifecycle_stage"] == "deleted"
    expected = f"The run {run_id} must be in the 'active' state. Current state is deleted."
    for path, body in [
        ("runs/log-parameter", {"key": "a", "value": "b"}),
        ("runs/log-metric", {"key": "a", "value": 1, "timestamp": 1}),
        ("runs/log-batch", {"tags": [{"key": "a", "value": "b"}]}),
        ("runs/set-tag", {"key": "a", "value": "b"}),
        ("runs/update", {"status": "FINISHED"}),
    ]:
        assert error(api.post(path, {"run_id": run_id, **body})) == expected
    assert api.post("runs/restore", {"run_id": run_id}).json() == {}
    assert api.post("runs/set-tag", {"run_id": run_id, "key": "a", "value": "b"}).status_code == 200


def test_log_model_appends_history_tag(api, run_id):
    for uuid in ("u1", "u2"):
        model_json = json.dumps({"run_id": run_id, "artifact_path": "model", "model_uuid": uuid, "flavors": {}})
        assert api.post("runs/log-model", {"run_id": run_id, "model_json": model_json}).json() == {}
    tags = {t["key"]: t["value"] for t in get_run(api, run_id)["data"]["tags"]}
    history = json.loads(tags["mlflow.log-model.history"])
    assert [h["model_uuid"] for h in history] == ["u1", "u2"]
    error(api.post("runs/log-model", {"run_id": run_id}))
    error(api.post("runs/log-model", {"run_id": run_id, "model_json": "{not json"}))


def test_log_inputs_and_outputs(api, exp_id, run_id):
    dataset = {"name": "wine", "digest": "abc123", "source_type": "local", "source": "{}", "schema": "{\"a\": 1}"}
    body = {"run_id": run_id, "datasets": [{"dataset": dataset, "tags": [{"key": "mlflow.data.context", "value": "training"}]}]}
    assert api.post("runs/log-inputs", body).json() == {}
    model_id = api.post("logged-models", {"experiment_id": exp_id, "name": "m"}).json()["model"]["info"]["model_id"]
    assert api.post("runs/log-inputs", {"run_id": run_id, "models": [{"model_id": model_id}]}).json() == {}
    assert api.post("runs/outputs", {"run_id": run_id, "models": [{"model_id": model_id, "step": 3}]}).json() == {}
    run = get_run(api, run_id)
    assert run["inputs"] == {
        "dataset_inputs": [{"tags": [{"key": "mlflow.data.context", "value": "training"}], "dataset": dataset}],
        "model_inputs": [{"model_id": model_id}],
    }
    assert run["outputs"] == {"model_outputs": [{"model_id": model_id, "step": 3}]}
    error(api.post("runs/outputs", {"run_id": run_id, "models": [{"model_id": "m-" + "0" * 32}]}), 404, "RESOURCE_DOES_NOT_EXIST")
    error(api.post("runs/log-inputs", {"run_id": run_id, "datasets": [{"dataset": {"name": "x"}}]}))


class TestMetricHistory:
    def test_history_ordered_and_paged(self, api, run_id):
        api.post("runs/log-batch", {"run_id": run_id, "metrics": [
            {"key": "loss", "value": 1.0 / (s + 1), "timestamp": 100 + s, "step": s} for s in range(7)
        ]})
        body = api.get("metrics/get-history", {"run_id": run_id, "run_uuid": run_id, "metric_key": "loss", "max_results": 25000}).json()
        assert [m["step"] for m in body["metrics"]] == list(range(7))
        assert body["metrics"][0] == {"key": "loss", "value": 1.0, "timestamp": 100, "step": 0}
        assert "next_page_token" not in body
        steps, token = [], None
        while True:
            query = {"run_id": run_id, "metric_key": "loss", "max_results": 3}
            if token:
                query["page_token"] = token
            page = api.get("metrics/get-history", query).json()
            steps += [m["step"] for m in page["metrics"]]
            token = page.get("next_page_token")
            if not token:
                break
        assert steps == list(range(7))

    def test_errors(self, api, run_id):
        assert api.get("metrics/get-history", {"run_id": run_id, "metric_key": "nothing"}).json() == {}
        error(api.get("metrics/get-history", {"run_id": run_id}))
        error(api.get("metrics/get-history", {"run_id": run_id, "metric_key": "m", "max_results": 25001}))
        error(api.get("metrics/get-history", {"run_id": run_id, "metric_key": "m", "page_token": "%%%"}))

    def test_bulk_interval(self, api, exp_id, run_id):
        other = new_run(api, exp_id)
        for rid in (run_id, other):
            api.post("runs/log-batch", {"run_id": rid, "metrics": [
                {"key": "loss", "value": s, "timestamp": s, "step": s} for s in range(10)
            ]})
        body = api.get("metrics/get-history-bulk-interval", {"run_ids": [run_id, other], "metric_key": "loss", "max_results": 4}).json()
        by_run = {}
        for m in body["metrics"]:
            by_run.setdefault(m["run_id"], []).append(m["step"])
        assert by_run[run_id] == by_run[other]
        assert by_run[run_id][0] == 0 and by_run[run_id][-1] == 9 and len(by_run[run_id]) == 4
        body = api.get("metrics/get-history-bulk-interval", {"run_ids": [run_id], "metric_key": "loss", "start_step": 2, "end_step": 4}).json()
        assert [m["step"] for m in body["metrics"]] == [2, 3, 4]
        error(api.get("metrics/get-history-bulk-interval", {"run_ids": [run_id], "metric_key": "loss", "start_step": 2}))
        error(api.get("metrics/get-history-bulk-interval", {"metric_key": "loss"}))


def test_run_uuid_alone_and_ajax_prefix(api, run_id):
    assert api.get("runs/get", {"run_uuid": run_id}).json()["run"]["info"]["run_id"] == run_id
    assert api.post("runs/set-tag", {"run_uuid": run_id, "key": "k", "value": "v"}).status_code == 200
    response = api.get("/ajax-api/2.0/mlflow/runs/get", {"run_id": run_id})
    assert response.status_code == 200 and response.json()["run"]["info"]["run_id"] == run_id


def test_get_run_query_count_is_flat(api, exp_id, django_assert_num_queries):
    run_id = new_run(api, exp_id)
    api.post("runs/log-batch", {"run_id": run_id, "metrics": [{"key": f"m{i}", "value": i, "timestamp": 1} for i in range(30)],
                                "params": [{"key": f"p{i}", "value": "v"} for i in range(30)]})
    # run (access) + 6 flat queries for the JSON, one message on PostgreSQL (core.sql.fetch_sets);
    # the token was verified by the previous request and is cached
    with django_assert_num_queries(1 if connection.vendor == "postgresql" else 7):
        assert len(get_run(api, run_id)["data"]["metrics"]) == 30


def test_latest_metric_follows_mlflows_rule_within_and_across_batches(api, run_id):
    """Higher step wins, then later timestamp, then larger value (NaN as 0); equals keep the first."""
    def latest():
        return {m["key"]: (m["step"], m["timestamp"], m["value"]) for m in get_run(api, run_id)["data"]["metrics"]}

    def batch(*points):
        response = api.post("runs/log-batch", {"run_id": run_id, "metrics": [
            {"key": k, "value": v, "timestamp": t, "step": s} for k, v, t, s in points]})
        assert response.status_code == 200, response.content

    batch(("a", 1.0, 10, 2), ("a", 9.0, 99, 1), ("a", 0.5, 10, 2),  # step 2 beats step 1; then the larger value
          ("b", 3.0, 5, 0), ("b", 3.0, 5, 0))
    assert latest() == {"a": (2, 10, 1.0), "b": (0, 5, 3.0)}
    batch(("a", 100.0, 1000, 1),  # an older step never overwrites, whatever its value or time
          ("b", 2.0, 6, 0))       # same step, later timestamp: wins even with a smaller value
    assert latest() == {"a": (2, 10, 1.0), "b": (0, 6, 2.0)}
    batch(("a", "NaN", 10, 2), ("a", 1.5, 10, 2))  # NaN compares as 0 (not newer); 1.5 > 1.0 is
    assert latest()["a"] == (2, 10, 1.5)
    batch(("a", "NaN", 11, 2))
    assert latest()["a"] == (2, 11, "NaN")


def test_log_batch_costs_a_fixed_number_of_statements(api, run_id):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    body = {"run_id": run_id, "params": [{"key": f"p{i}", "value": "1"} for i in range(20)],
            "metrics": [{"key": f"m{i % 5}", "value": i, "timestamp": i, "step": i} for i in range(50)]}
    with CaptureQueriesContext(connection) as queries:
        assert api.post("runs/log-batch", body).status_code == 200
    writes = [q["sql"] for q in queries if q["sql"].startswith(("INSERT", "UPDATE"))]
    # params (ON CONFLICT DO NOTHING), the history points, the latest values (one upsert): one
    # statement each, the last two in one message on PostgreSQL
    assert len(writes) == (2 if connection.vendor == "postgresql" else 3), writes
    assert "ON CONFLICT" in writes[-1] and "tracking_latestmetric" in writes[-1]
    # the same params again: nothing inserted, one read of the stored values to compare
    with CaptureQueriesContext(connection) as queries:
        assert api.post("runs/log-batch", {"run_id": run_id, "params": body["params"]}).status_code == 200
    assert sum("tracking_param" in q["sql"] for q in queries) == 2


def test_the_create_answer_is_the_run_as_get_reads_it(api):
    experiment_id = api.post("experiments/create", {"name": "create-answer"}).json()["experiment_id"]
    created = api.post("runs/create", {"experiment_id": experiment_id, "start_time": 5, "run_name": "named",
                                       "tags": [{"key": "b", "value": "2"}, {"key": "a", "value": "1"}]}).json()["run"]
    assert created == get_run(api, created["info"]["run_id"])
    assert [t["key"] for t in created["data"]["tags"]][:2] == ["b", "a"]
