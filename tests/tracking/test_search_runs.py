"""runs/search: the filter grammar in SQL, ordering (NULLs last), keyset paging, flat query counts."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tracking import services
from tracking.models import Experiment, Run

pytestmark = pytest.mark.django_db


@pytest.fixture
def experiment(owner):
    return services.create_experiment(user=owner, name="search")


def make_run(owner, experiment, name, *, start_time, metrics=None, params=None, tags=None, status=None, end_time=None):
    run = services.create_run(user=owner, experiment=experiment, run_name=name, start_time=start_time)
    services.log_batch(
        run=run,
        metrics=[{"key": k, "value": v, "timestamp": 1, "step": 0} for k, v in (metrics or {}).items()],
        params=[{"key": k, "value": v} for k, v in (params or {}).items()],
        tags=[{"key": k, "value": v} for k, v in (tags or {}).items()],
    )
    if status or end_time:
        services.update_run(run=run, status=status, end_time=end_time)
    return run


@pytest.fixture
def runs(owner, experiment):
    return {
        "a": make_run(owner, experiment, "a", start_time=100, metrics={"rmse": 0.5, "r2": 0.9}, params={"model": "lr", "alpha": "0.1"}, tags={"team": "ml"}, status="FINISHED", end_time=150),
        "b": make_run(owner, experiment, "b", start_time=200, metrics={"rmse": 1.5}, params={"model": "rf"}, tags={"team": "data"}),
        "c": make_run(owner, experiment, "c", start_time=300, metrics={"rmse": 0.8}, params={"model": "lr"}),
        "d": make_run(owner, experiment, "d", start_time=400),
    }


def search(api, experiment, **body):
    response = api.post("runs/search", {"experiment_ids": [str(experiment.pk)], **body})
    assert response.status_code == 200, response.json()
    return [r["info"]["run_name"] for r in response.json().get("runs", [])]


def search_error(api, experiment, **body):
    response = api.post("runs/search", {"experiment_ids": [str(experiment.pk)], **body})
    assert response.status_code == 400, response.json()
    assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    return response.json()["message"]


def test_default_order_is_start_time_desc(api, experiment, runs):
    assert search(api, experiment) == ["d", "c", "b", "a"]


def test_no_hits_is_empty_object(api, experiment, runs):
    response = api.post("runs/search", {"experiment_ids": [str(experiment.pk)], "filter": "metrics.rmse > 100"})
    assert response.json() == {}


@pytest.mark.parametrize(
    "filter_string, expected",
    [
        ("metrics.rmse < 1", ["c", "a"]),
        ("metrics.rmse <= 0.8", ["c", "a"]),
        ("metrics.rmse > 0.8", ["b"]),
        ("metrics.rmse >= 0.8", ["c", "b"]),
        ("metrics.rmse = 0.5", ["a"]),
        ("metrics.rmse != 0.5", ["c", "b"]),
        ("metrics.r2 > 0", ["a"]),
        ("metric.rmse < 1 AND metrics.r2 > 0.5", ["a"]),
        ("params.model = 'lr'", ["c", "a"]),
        ("params.model != 'lr'", ["b"]),
        ("params.model LIKE 'l%'", ["c", "a"]),
        ("params.model LIKE 'L%'", []),
        ("params.model ILIKE 'L%'", ["c", "a"]),
        ("params.model IN ('rf', 'xgb')", ["b"]),
        ("params.model NOT IN ('rf')", ["c", "a"]),
        ("params.`alpha` = '0.1'", ["a"]),
        ("tags.team = 'ml'", ["a"]),
        ("tags.team != 'ml'", ["b"]),
        ("tags.team LIKE '%a%'", ["b"]),
        ("tags.team ILIKE 'ML'", ["a"]),
        ("tags.team IN ('ml', 'data')", ["b", "a"]),
        ("tags.team NOT IN ('ml')", ["b"]),
        ("tags.\"mlflow.runName\" = 'c'", ["c"]),
        ("tags.mlflow.runName = 'c'", ["c"]),
        ("tags.`mlflow.runName` IN ('a', 'b')", ["b", "a"]),
        ("tags.team IS NULL", ["d", "c"]),
        ("params.model IS NOT NULL AND metrics.r2 IS NULL", ["c", "b"]),
        ("attributes.run_name = 'b'", ["b"]),
        ("run_name LIKE '%c%'", ["c"]),
        ("attributes.status = 'FINISHED'", ["a"]),
        ("attributes.status != 'FINISHED'", ["d", "c", "b"]),
        ("attributes.user_id = 'owner'", ["d", "c", "b", "a"]),
        ("attributes.start_time > 200", ["d", "c"]),
        ("attributes.start_time <= 200", ["b", "a"]),
        ("attributes.created >= 300", ["d", "c"]),
        ("attributes.Created < 200", ["a"]),
        ("attributes.end_time = 150", ["a"]),
        ("attributes.artifact_uri LIKE '%/artifacts'", ["d", "c", "b", "a"]),
    ],
)
def test_filter_grammar(api, experiment, runs, filter_string, expected):
    assert search(api, experiment, filter=filter_string) == expected


def test_filter_run_id(api, experiment, runs):
    a, b = runs["a"].run_uuid, runs["b"].run_uuid
    assert search(api, experiment, filter=f"attributes.run_id = '{a}'") == ["a"]
    assert search(api, experiment, filter=f"attributes.run_id IN ('{a}', '{b}')") == ["b", "a"]
    assert search(api, experiment, filter=f"attributes.run_id NOT IN ('{a}')") == ["d", "c", "b"]


def test_filter_datasets(api, owner, experiment, runs):
    dataset = {"name": "wine", "digest": "d1", "source_type": "local", "source": "{}"}
    services.log_inputs(run=runs["b"], datasets=[{"dataset": dataset, "tags": [{"key": "mlflow.data.context", "value": "training"}]}])
    assert search(api, experiment, filter="datasets.name = 'wine'") == ["b"]
    assert search(api, experiment, filter="datasets.digest IN ('d1')") == ["b"]
    assert search(api, experiment, filter="datasets.context = 'training'") == ["b"]
    assert search(api, experiment, filter="datasets.context = 'eval'") == []


def test_view_type(api, experiment, runs):
    services.delete_run(run=runs["d"])
    assert search(api, experiment) == ["c", "b", "a"]
    assert search(api, experiment, run_view_type="DELETED_ONLY") == ["d"]
    assert search(api, experiment, run_view_type="ALL") == ["d", "c", "b", "a"]
    assert "run_view_type" in search_error(api, experiment, run_view_type="NOPE")


def test_several_experiments_and_get(api, owner, experiment, runs):
    other = services.create_experiment(user=owner, name="other")
    make_run(owner, other, "x", start_time=250)
    response = api.get("runs/search", {"experiment_ids": [str(experiment.pk), str(other.pk)], "max_results": 3})
    names = [r["info"]["run_name"] for r in response.json()["runs"]]
    assert names == ["d", "c", "x"]
    assert "next_page_token" in response.json()


@pytest.mark.parametrize(
    "order_by, expected",
    [
        (["metrics.rmse ASC"], ["a", "c", "b", "d"]),  # d has no rmse: last
        (["metrics.rmse DESC"], ["b", "c", "a", "d"]),  # still last when descending
        (["params.model ASC", "metrics.rmse DESC"], ["c", "a", "b", "d"]),
        (["params.model DESC", "start_time ASC"], ["b", "a", "c", "d"]),
        (["tags.team ASC"], ["b", "a", "d", "c"]),  # no tag: last, then start_time DESC
        (["attributes.start_time ASC"], ["a", "b", "c", "d"]),
        (["run_name DESC"], ["d", "c", "b", "a"]),
        (["attributes.end_time DESC"], ["a", "d", "c", "b"]),
        (["status ASC", "run_name ASC"], ["a", "b", "c", "d"]),
    ],
)
def test_order_by(api, experiment, runs, order_by, expected):
    assert search(api, experiment, order_by=order_by) == expected


def test_nan_sorts_after_numbers_before_missing(api, owner, experiment, runs):
    services.log_metric(run=runs["d"], key="rmse", value=float("nan"), timestamp=1)
    assert search(api, experiment, order_by=["metrics.rmse ASC"]) == ["a", "c", "b", "d"]
    e = make_run(owner, experiment, "e", start_time=500)
    assert search(api, experiment, order_by=["metrics.rmse DESC"]) == ["b", "c", "a", "d", "e"]


def test_errors(api, experiment, runs):
    assert search_error(api, experiment, filter="metrics.rmse ~~ 1")
    assert search_error(api, experiment, filter="metrics.rmse < 'abc'")
    assert search_error(api, experiment, filter="params.model > 'a'")
    assert search_error(api, experiment, filter="params.model = 1")
    assert search_error(api, experiment, filter="attributes.color = 'x'")
    assert search_error(api, experiment, filter="attributes.start_time LIKE 'x'")
    assert search_error(api, experiment, filter="rmse <")
    assert search_error(api, experiment, filter="datasets.color = 'x'")
    assert search_error(api, experiment, order_by=["attributes.color ASC"])
    assert search_error(api, experiment, order_by=["metrics.rmse SIDEWAYS"])
    # MLflow's tracking store texts (the value unquoted: it came as a JSON number).
    assert search_error(api, experiment, max_results=50001) == (
        "Invalid value 50001 for parameter 'max_results' supplied. It must be at most 50000"
    )
    assert search_error(api, experiment, page_token="not-a-token")
    assert search_error(api, experiment, experiment_ids=["abc"])
    # A token from another ordering does not apply.
    token = api.post("runs/search", {"experiment_ids": [str(experiment.pk)], "max_results": 1}).json()["next_page_token"]
    assert search_error(api, experiment, page_token=token, order_by=["metrics.rmse ASC"])


def page_all(api, experiment, *, max_results, order_by=(), between_pages=None):
    names, token, pages = [], None, 0
    while True:
        body = {"experiment_ids": [str(experiment.pk)], "max_results": max_results, "order_by": list(order_by)}
        if token:
            body["page_token"] = token
        response = api.post("runs/search", body).json()
        names += [r["info"]["run_name"] for r in response.get("runs", [])]
        token = response.get("next_page_token")
        pages += 1
        if between_pages:
            between_pages(pages)
        if not token:
            return names


@pytest.mark.parametrize("order_by", [(), ("metrics.rmse ASC",), ("params.model DESC", "metrics.rmse ASC"), ("tags.team ASC",)])
def test_keyset_paging_no_duplicates_no_gaps(api, owner, experiment, order_by):
    for i in range(11):
        metrics = {"rmse": float(i % 4)} if i % 3 else {}
        params = {"model": "lr" if i % 2 else "rf"}
        tags = {"team": "ml"} if i % 5 == 0 else {}
        make_run(owner, experiment, f"r{i:02d}", start_time=1000 + (i % 4), metrics=metrics, params=params, tags=tags)
    expected = search(api, experiment, order_by=list(order_by))
    assert page_all(api, experiment, max_results=3, order_by=order_by) == expected
    assert len(expected) == 11


def test_paging_stable_while_runs_are_inserted(api, owner, experiment):
    for i in range(6):
        make_run(owner, experiment, f"old{i}", start_time=1000 + i, metrics={"rmse": float(i)})
    inserted = []

    def insert(page):
        page = len(inserted)
        # New runs sort before the current position (newer start time / better rmse): they
        # must not shift later pages (an offset would repeat a row).
        run = make_run(owner, experiment, f"new{page}", start_time=5000 + page, metrics={"rmse": -1.0})
        inserted.append(run.name)

    names = page_all(api, experiment, max_results=2, between_pages=insert)
    assert names == [f"old{i}" for i in range(5, -1, -1)]
    names = page_all(api, experiment, max_results=2, order_by=["metrics.rmse ASC"], between_pages=insert)
    old = [n for n in names if n.startswith("old")]
    assert old == [f"old{i}" for i in range(6)]
    assert len(names) == len(set(names))


def test_constant_query_count(api, owner, experiment):
    def count_queries(body):
        with CaptureQueriesContext(connection) as ctx:
            response = api.post("runs/search", body)
        assert response.status_code == 200
        return len(ctx.captured_queries), len(response.json().get("runs", []))

    dataset = {"name": "wine", "digest": "d1", "source_type": "local", "source": "{}"}
    model = services.create_logged_model(user=owner, experiment=experiment, name="m")

    def rich_run(i):
        run = make_run(owner, experiment, f"q{i}", start_time=i, metrics={"rmse": 0.1 * i, "mae": 1.0}, params={"p": "v", "q": "w"}, tags={"t": "x"})
        services.log_inputs(run=run, datasets=[{"dataset": dataset}], models=[{"model_id": model.model_id}])
        services.log_outputs(run=run, models=[{"model_id": model.model_id, "step": 0}])

    rich_run(0)
    api.post("runs/search", {"experiment_ids": ["0"]})  # the token's first use records last_used_at
    body = {"experiment_ids": [str(experiment.pk)], "filter": "metrics.rmse >= 0 AND params.p = 'v'", "order_by": ["metrics.rmse DESC", "tags.t ASC"]}
    one, n1 = count_queries(body)
    for i in range(1, 50):
        rich_run(i)
    many, n50 = count_queries(body)
    assert (n1, n50) == (1, 50)
    assert one == many



def test_max_results_zero_is_refused_as_by_mlflow(api, experiment, runs):
    response = api.post("runs/search", {"experiment_ids": [str(experiment.pk)], "max_results": 0})
    assert response.status_code == 400
    assert response.json() == {
        "error_code": "INVALID_PARAMETER_VALUE",
        "message": "Invalid value 0 for parameter 'max_results' supplied. It must be a positive integer",
    }
