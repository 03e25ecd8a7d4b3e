"""The performance fast paths return exactly what the plain ORM paths return.

- `runs_to_mlflow` and `run_json` (flat tuples) == `Run.to_mlflow()` (prefetched instances), to the
  byte once encoded; runs/get and metrics/get-history (one round trip on PostgreSQL) see exactly the
  runs `get_run_for_user` lets through, and the history pages like the ORM order;
- runs/search with a numeric metric filter and an order on the same metric runs as a join on
  LatestMetric (index-driven) and still pages, orders and excludes NaN/missing like MLflow;
- the bearer-token cache saves the auth query but never outlives a revoke, an expiry set in
  the admin, or a disabled user.
"""

import json
import math
import random

import pytest
from django.contrib.auth.models import AnonymousUser
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from core.api import encode_page_token
from core.errors import DoesNotExist
from core.permissions import CAN_READ
from core.services import revoke_api_token
from tests.factories import grant
from tracking import services
from tracking.access import get_run_for_user, visible_run_sql
from tracking.models import RUN_INFO_FIELDS, Metric, Run, run_json, runs_to_mlflow

pytestmark = pytest.mark.django_db


@pytest.fixture
def experiment(owner):
    return services.create_experiment(user=owner, name="fast")


def _run(owner, experiment, i, *, metrics=(), params=(), tags=()):
    run = services.create_run(user=owner, experiment=experiment, run_name=f"r{i:02d}", start_time=1000 + (i % 7))
    services.log_batch(
        run=run,
        metrics=[{"key": k, "value": v, "timestamp": 5, "step": 0} for k, v in metrics],
        params=[{"key": k, "value": v} for k, v in params],
        tags=[{"key": k, "value": v} for k, v in tags],
    )
    return run


def test_runs_to_mlflow_equals_to_mlflow(owner, experiment):
    rich = _run(owner, experiment, 1, metrics=[("b", 2.0), ("a", float("nan")), ("c", float("inf")), ("d", -float("inf"))],
                params=[("z", "1"), ("a", "2")], tags=[("t2", "x"), ("t1", "y")])
    services.log_batch(run=rich, metrics=[{"key": "b", "value": 3.0, "timestamp": 9, "step": 4}], params=[], tags=[])
    services.log_inputs(run=rich, datasets=[
        {"dataset": {"name": "ds", "digest": "d1", "source_type": "local", "source": "{}", "schema": "{\"s\": 1}"},
         "tags": [{"key": "mlflow.data.context", "value": "train"}]},
        {"dataset": {"name": "ds2", "digest": "d2", "source_type": "local", "source": "{}"}},
    ])
    model = services.create_logged_model(user=owner, experiment=experiment, name="m", source_run=rich)
    other = services.create_logged_model(user=owner, experiment=experiment, name="m2")
    services.log_inputs(run=rich, models=[{"model_id": other.model_id}])
    services.log_outputs(run=rich, models=[{"model_id": model.model_id, "step": 3}])
    bare = _run(owner, experiment, 2)
    services.update_run(run=bare, status="FINISHED", end_time=2000)
    runs = list(Run.objects.filter(experiment=experiment).order_by("name"))
    expected = [Run.objects.for_mlflow().get(pk=r.pk).to_mlflow() for r in runs]
    assert runs_to_mlflow(runs) == expected
    # the same bytes on the wire (key order included), from instances and from search rows
    assert json.dumps(runs_to_mlflow(runs)) == json.dumps(expected)
    rows = Run.objects.filter(experiment=experiment).order_by("name").values_list(*RUN_INFO_FIELDS, named=True)
    assert json.dumps(runs_to_mlflow(list(rows))) == json.dumps(expected)
    for run, one in zip(runs, expected, strict=True):
        assert json.dumps(run_json(visible_run_sql(owner, run.pk, RUN_INFO_FIELDS), run.pk)) == json.dumps(one)
    # The fixture really exercised every part of the JSON.
    data = expected[0]
    assert {"metrics", "params", "tags"} <= set(data["data"]) and data["inputs"]["dataset_inputs"] and data["inputs"]["model_inputs"]
    assert data["outputs"]["model_outputs"] == [{"model_id": model.model_id, "step": 3}]
    assert runs_to_mlflow([]) == []


def test_runs_to_mlflow_finds_the_rows_of_any_run_id(owner, experiment):
    # run ids travel as one array literal on PostgreSQL: quotes, backslashes, commas and braces are escaped
    odd = [Run.objects.create(run_uuid=rid, experiment=experiment, name=rid) for rid in ('a"b', "c\\d", "e,f", "{g}", "h i", "NULL")]
    for run in odd:
        services.log_batch(run=run, metrics=[{"key": "m", "value": 1.0, "timestamp": 1, "step": 0}],
                           params=[{"key": "p", "value": run.pk}], tags=[{"key": "t", "value": run.pk}])
    plain = _run(owner, experiment, 1, params=[("p", "x")])
    runs = [*odd, plain]
    expected = [Run.objects.for_mlflow().get(pk=r.pk).to_mlflow() for r in runs]
    assert all(one["data"]["params"] for one in expected)
    assert runs_to_mlflow(runs) == expected


@pytest.fixture
def population(owner, experiment):
    rng = random.Random(3)
    runs = []
    for i in range(40):
        value = round(rng.choice([0.1, 0.2, 0.3, rng.random()]), 3)  # many ties
        if i % 9 == 0:
            metrics = [("m0", float("nan"))]
        elif i % 11 == 0:
            metrics = [("other", 1.0)]  # m0 missing
        else:
            metrics = [("m0", value), ("m1", rng.random())]
        runs.append(_run(owner, experiment, i, metrics=metrics))
    services.delete_run(run=runs[5])
    return runs


def _expected(runs, threshold, ascending):
    rows = []
    for run in Run.objects.filter(pk__in=[r.pk for r in runs], lifecycle_stage="active"):
        metric = run.latest_metrics.filter(key="m0").first()
        if metric is None or metric.is_nan or not metric.value < threshold:
            continue
        rows.append((metric.value, run.start_time, run.run_uuid))
    # value in the asked direction, then MLflow's tie-breakers: start_time DESC, run id ASC
    rows.sort(key=lambda r: r[2])
    rows.sort(key=lambda r: r[1], reverse=True)
    rows.sort(key=lambda r: r[0], reverse=not ascending)
    return [r[2] for r in rows]


@pytest.mark.parametrize("ascending", [True, False])
def test_metric_filter_and_order_pages_like_mlflow(api, experiment, population, ascending):
    expected = _expected(population, 0.5, ascending)
    assert len(expected) > 12
    seen, token, pages = [], None, 0
    while True:
        body = {"experiment_ids": [str(experiment.pk)], "filter": "metrics.m0 < 0.5",
                "order_by": [f"metrics.m0 {'ASC' if ascending else 'DESC'}"], "max_results": 4}
        if token:
            body["page_token"] = token
        page = api.post("runs/search", body).json()
        seen += [r["info"]["run_id"] for r in page.get("runs", [])]
        pages += 1
        token = page.get("next_page_token")
        if not token:
            break
    assert seen == expected
    assert pages == math.ceil(len(expected) / 4)


def test_join_path_agrees_with_the_general_path(api, experiment, population):
    """Same search, once on the join path and once forced through the correlated-subquery path
    (the order key is another metric alias of the same data: m1 filtered, m0 ordered)."""
    body = {"experiment_ids": [str(experiment.pk)], "order_by": ["metrics.m0 ASC"], "max_results": 100}
    general = api.post("runs/search", {**body, "filter": "metrics.m1 >= 0"}).json()["runs"]
    joined = api.post("runs/search", {**body, "filter": "metrics.m0 > -1 AND metrics.m1 >= 0"}).json()["runs"]
    assert [r["info"]["run_id"] for r in joined] == [r["info"]["run_id"] for r in general]
    assert joined == general


def test_runs_search_query_count_is_flat(api, experiment, owner, django_assert_num_queries):
    body = {"experiment_ids": [str(experiment.pk)], "filter": "metrics.m0 < 2", "order_by": ["metrics.m0 DESC"]}
    _run(owner, experiment, 0, metrics=[("m0", 1.0)], params=[("p", "1")], tags=[("t", "1")])
    api.post("runs/search", body)  # the token is verified (and cached) here
    # the page (experiment visibility inside it); 6 flat SELECTs for the JSON, one message on PostgreSQL
    with django_assert_num_queries(_statements(2, 7)):
        assert len(api.post("runs/search", body).json()["runs"]) == 1
    for i in range(1, 25):
        _run(owner, experiment, i, metrics=[("m0", 1.0 / (i + 1))], params=[("p", "1")], tags=[("t", "1")])
    with django_assert_num_queries(_statements(2, 7)):
        assert len(api.post("runs/search", body).json()["runs"]) == 25


def _statements(one_message: int, one_by_one: int) -> int:
    # On PostgreSQL a reader's SELECTs travel as one message (core.sql.fetch_sets): one query here.
    return one_message if connection.vendor == "postgresql" else one_by_one


def test_runs_get_and_metric_history_are_one_round_trip(api, experiment, owner, django_assert_num_queries):
    run = _run(owner, experiment, 0, metrics=[("m0", 1.0)], params=[("p", "1")], tags=[("t", "1")])
    api.get("runs/get", {"run_id": run.pk})  # the token is verified (and cached) here
    # the run (visibility inside it) and its 6 sets of child rows
    with django_assert_num_queries(_statements(1, 7)):
        assert api.get("runs/get", {"run_id": run.pk}).json()["run"]["data"]["params"] == [{"key": "p", "value": "1"}]
    # the run (visibility) and the points
    with django_assert_num_queries(_statements(1, 2)):
        assert len(api.get("metrics/get-history", {"run_id": run.pk, "metric_key": "m0"}).json()["metrics"]) == 1


@pytest.mark.parametrize("persona", ["admin", "owner", "data_scientist", "outsider", "inactive", "anonymous"])
def test_plain_run_reads_see_what_get_run_for_user_sees(request, experiment, owner, persona):
    run = _run(owner, experiment, 0, metrics=[("m0", 1.0)])
    if persona == "anonymous":
        user = AnonymousUser()
    else:
        user = request.getfixturevalue("outsider" if persona == "inactive" else persona)
    if persona == "data_scientist":
        grant(experiment, CAN_READ, user=user)
    if persona == "inactive":
        user.is_active = False
    try:
        expected = Run.objects.for_mlflow().get(pk=get_run_for_user(user, run.pk).pk).to_mlflow()
    except DoesNotExist:
        expected = None
    assert (expected is None) == (persona in ("outsider", "inactive", "anonymous"))
    assert run_json(visible_run_sql(user, run.pk, RUN_INFO_FIELDS), run.pk) == expected
    assert run_json(visible_run_sql(user, "f" * 32, RUN_INFO_FIELDS), "f" * 32) is None


def test_runs_get_and_metric_history_hide_invisible_runs(api_for, experiment, owner, outsider):
    run = _run(owner, experiment, 0, metrics=[("m0", 1.0)])
    api = api_for(outsider)
    for path, params in [("runs/get", {"run_id": run.pk}), ("metrics/get-history", {"run_id": run.pk, "metric_key": "m0"})]:
        response = api.get(path, params)
        assert response.status_code == 404 and response.json() == {
            "error_code": "RESOURCE_DOES_NOT_EXIST", "message": f"Run with id={run.pk} not found"}


def test_metric_history_pages_in_the_orm_order(api, experiment, owner):
    run = _run(owner, experiment, 0)
    # ties on step and on (step, timestamp): the id decides, as in the ORM order
    points = [(0, 5, 1.0), (0, 5, 2.0), (0, 3, float("nan")), (1, 1, float("inf")), (1, 1, 0.5), (2, 0, -1.0), (0, 9, 0.0)]
    services.log_batch(run=run, metrics=[{"key": "m", "value": v, "timestamp": t, "step": s} for s, t, v in points], params=[], tags=[])
    services.log_batch(run=run, metrics=[{"key": "other", "value": 1.0, "timestamp": 1, "step": 0}], params=[], tags=[])
    expected = [m.to_mlflow() for m in Metric.objects.filter(run=run, key="m").order_by("step", "timestamp", "pk")]
    assert len(expected) == len(points)
    whole = api.get("metrics/get-history", {"run_id": run.pk, "metric_key": "m"})
    # the same JSON with the keys in the same order (orjson writes compact separators)
    assert json.dumps(json.loads(whole.content)) == json.dumps({"metrics": expected})
    for size in (1, 2, 3):
        seen, token = [], None
        while True:
            page = api.get("metrics/get-history", {"run_id": run.pk, "metric_key": "m", "max_results": size,
                                                   **({"page_token": token} if token else {})}).json()
            seen += page.get("metrics", [])
            token = page.get("next_page_token")
            if not token:
                break
        assert seen == expected
    assert api.get("metrics/get-history", {"run_id": run.pk, "metric_key": "m", "max_results": 0}).json() == {}


@pytest.mark.parametrize("payload", [{"kind": "runs:abc", "after": [0, 0, 1]}, {"kind": "metric-history", "after": [0, 0]},
                                     {"kind": "metric-history", "after": ["0", 0, 1]}, {"kind": "metric-history", "after": [0, True, 1]}])
def test_metric_history_refuses_tokens_of_other_searches(api, experiment, owner, payload):
    run = _run(owner, experiment, 0, metrics=[("m0", 1.0)])
    response = api.get("metrics/get-history", {"run_id": run.pk, "metric_key": "m0", "page_token": encode_page_token(payload)})
    assert response.status_code == 400
    assert response.json()["message"] == "Invalid page token, it does not belong to this search"
    # an unknown run is reported first, as before
    response = api.get("metrics/get-history", {"run_id": "f" * 32, "metric_key": "m0", "page_token": encode_page_token(payload)})
    assert response.status_code == 404


# --------------------------------------------------------------------------- the token cache


def _auth_queries(api):
    with CaptureQueriesContext(connection) as queries:
        assert api.get("experiments/get", {"experiment_id": "0"}).status_code in (200, 404)
    return [q["sql"] for q in queries.captured_queries if "core_apitoken" in q["sql"]]


def test_a_verified_token_is_not_looked_up_again(api):
    assert _auth_queries(api)  # first request: looked up (and last_used_at recorded)
    assert _auth_queries(api) == []


def test_revoked_token_is_refused_at_once(api_for, owner):
    api = api_for(owner)
    assert api.get("experiments/search", {"max_results": 1}).status_code == 200
    revoke_api_token(user=owner, token_id=owner.api_tokens.get().pk)
    assert api.get("experiments/search", {"max_results": 1}).status_code == 401


def test_token_expired_or_revoked_in_the_admin_is_refused_at_once(api_for, owner):
    api = api_for(owner)
    assert api.get("experiments/search", {"max_results": 1}).status_code == 200
    token = owner.api_tokens.get()
    token.expires_at = timezone.now() - timezone.timedelta(seconds=1)
    token.save()
    assert api.get("experiments/search", {"max_results": 1}).status_code == 401


def test_cached_expiry_is_honoured(api_for, owner):
    from django.core.cache import cache

    from core.api import token_cache_key

    api = api_for(owner)
    assert api.get("experiments/search", {"max_results": 1}).status_code == 200
    key = token_cache_key(owner.api_tokens.get().token_hash)
    token_pk, user, _, last_used = cache.get(key)
    # The cached entry carries the expiry: once it has passed the token is refused, although
    # the cache entry itself has not timed out.
    cache.set(key, (token_pk, user, timezone.now() - timezone.timedelta(seconds=1), last_used), 60)
    assert api.get("experiments/search", {"max_results": 1}).status_code == 401


def test_disabled_user_is_refused_at_once(api_for, owner):
    api = api_for(owner)
    assert api.get("experiments/search", {"max_results": 1}).status_code == 200
    owner.is_active = False
    owner.save()
    assert api.get("experiments/search", {"max_results": 1}).status_code == 401


def test_cache_can_be_switched_off(api, settings):
    settings.STAGEGATE_TOKEN_CACHE_SECONDS = 0
    assert _auth_queries(api)
    assert _auth_queries(api)


def test_runs_create_answer_equals_runs_get(api, experiment):
    created = api.post("runs/create", {"experiment_id": str(experiment.pk), "start_time": 5, "run_name": "x",
                                       "tags": [{"key": "b", "value": "1"}, {"key": "a", "value": "2"}]}).json()["run"]
    fetched = api.get("runs/get", {"run_id": created["info"]["run_id"]}).json()["run"]
    assert created == fetched and len(created["data"]["tags"]) == 3
