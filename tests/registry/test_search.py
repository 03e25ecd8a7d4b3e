"""registered-models/search and model-versions/search: grammar, ordering, keyset paging, query counts."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from registry import services
from registry.models import ModelVersion, RegisteredModel

pytestmark = pytest.mark.django_db

PROMPT = " AND tag.`mlflow.prompt.is_prompt` != 'true'"


def names(response):
    assert response.status_code == 200, response.content
    return [m["name"] for m in response.json().get("registered_models", [])]


def versions(response):
    assert response.status_code == 200, response.content
    return [(m["name"], int(m["version"])) for m in response.json().get("model_versions", [])]


@pytest.fixture
def catalogue(owner, make_version):
    """rcf-alpha (tags team=ml, tier=gold; 3 versions), rcf-beta (team=ds; 1 version), other (prompt)."""
    services.create_registered_model(name="rcf-alpha", user=owner, tags=[{"key": "team", "value": "ml"}, {"key": "tier", "value": "gold"}])
    services.create_registered_model(name="rcf-beta", user=owner, tags=[{"key": "team", "value": "ds"}])
    services.create_registered_model(name="other", user=owner, tags=[{"key": "mlflow.prompt.is_prompt", "value": "true"}])
    make_version("rcf-alpha", run_id="a" * 32, tags=[{"key": "validated", "value": "true"}])
    make_version("rcf-alpha", run_id="b" * 32, stage="Production")
    make_version("rcf-alpha", run_id="a" * 32)
    make_version("rcf-beta", run_id="c" * 32, tags=[{"key": "validated", "value": "false"}])


@pytest.mark.parametrize(
    "filter_string, expected",
    [
        ("", ["rcf-alpha", "rcf-beta"]),
        ("name='rcf-alpha'", ["rcf-alpha"]),
        ("name = 'rcf-beta'", ["rcf-beta"]),
        ("name != 'rcf-beta'", ["rcf-alpha"]),
        ("name LIKE 'rcf-%'", ["rcf-alpha", "rcf-beta"]),
        ("name LIKE 'RCF-%'", []),
        ("name ILIKE 'RCF-A%'", ["rcf-alpha"]),
        ("name LIKE 'rcf-_eta'", ["rcf-beta"]),
        ("tags.team = 'ml'", ["rcf-alpha"]),
        ("tag.`tier` = 'gold'", ["rcf-alpha"]),
        ("tags.team != 'ml'", ["rcf-beta"]),
        ("tags.tier != 'gold'", ["rcf-beta"]),  # absent tag matches !=
        ("tags.team LIKE '%s'", ["rcf-beta"]),
        ("name LIKE 'rcf-%' AND tags.team = 'ds'", ["rcf-beta"]),
        ("creation_timestamp > 0", ["rcf-alpha", "rcf-beta"]),
    ],
)
def test_registered_model_filters(api, catalogue, filter_string, expected):
    # The client always appends the prompt clause; models without the tag must still match.
    full = (filter_string + PROMPT) if filter_string else PROMPT.removeprefix(" AND ")
    assert names(api.get("registered-models/search", {"filter": full, "max_results": 100})) == expected


def test_registered_model_search_without_prompt_clause_sees_everything(api, catalogue):
    assert names(api.get("registered-models/search")) == ["other", "rcf-alpha", "rcf-beta"]


def test_registered_model_search_shapes(api, catalogue):
    owner_model = api.get("registered-models/search", {"filter": "name='rcf-alpha'"}).json()["registered_models"][0]
    assert [v["version"] for v in owner_model["latest_versions"]] == ["3", "2"] or [
        v["version"] for v in owner_model["latest_versions"]
    ] == ["2", "3"]
    assert owner_model["tags"] == [{"key": "team", "value": "ml"}, {"key": "tier", "value": "gold"}]
    assert api.get("registered-models/search", {"filter": "name='nothing'"}).json() == {}


def test_registered_model_order_by(api, catalogue, owner):
    services.update_registered_model(name="rcf-alpha", description="touched", user=owner)
    assert names(api.get("registered-models/search", {"order_by": "name DESC"})) == ["rcf-beta", "rcf-alpha", "other"]
    assert names(api.get("registered-models/search", {"order_by": ["timestamp DESC", "name ASC"]}))[0] == "rcf-alpha"
    assert names(api.get("registered-models/search", {"order_by": "last_updated_timestamp ASC"}))[-1] == "rcf-alpha"


@pytest.mark.parametrize(
    "params, message",
    [
        ({"filter": "name ~~ 'x'"}, "Invalid comparator for attribute: ~~"),
        ({"filter": "name = "}, "Invalid clause(s) in filter string: name, ="),
        ({"order_by": "color ASC"}, "Invalid order by key 'color' specified."),
        ({"max_results": "1001"}, 'Invalid value "1001" for parameter \'max_results\' supplied'),
        ({"page_token": "not-a-token"}, "Invalid page token, could not base64-decode"),
        ({"filter": "colour = 'x'"}, "Invalid attribute key 'colour' specified."),
    ],
)
def test_registered_model_search_errors(api, catalogue, params, message):
    r = api.get("registered-models/search", params)
    assert r.status_code == 400 and r.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert r.json()["message"].startswith(message), r.json()["message"]


@pytest.mark.parametrize(
    "filter_string, expected",
    [
        ("name='rcf-alpha'", [("rcf-alpha", 3), ("rcf-alpha", 2), ("rcf-alpha", 1)]),
        ("name LIKE 'rcf-%' AND version_number >= 3", [("rcf-alpha", 3)]),
        (f"run_id='{'a' * 32}'", [("rcf-alpha", 3), ("rcf-alpha", 1)]),
        (f"run_id IN ('{'b' * 32}', '{'c' * 32}')", [("rcf-alpha", 2), ("rcf-beta", 1)]),
        ("tags.validated = 'true'", [("rcf-alpha", 1)]),
        ("tags.validated != 'true'", [("rcf-alpha", 3), ("rcf-alpha", 2), ("rcf-beta", 1)]),
        ("name = 'rcf-beta' AND tags.validated = 'false'", [("rcf-beta", 1)]),
        ("version_number = 2", [("rcf-alpha", 2)]),
        (f"source_path LIKE 'mlflow-artifacts:/0/{'b' * 32}/%'", [("rcf-alpha", 2)]),
    ],
)
def test_model_version_filters(api, catalogue, filter_string, expected):
    got = versions(api.get("model-versions/search", {"filter": filter_string, "order_by": ["name ASC", "version_number DESC"]}))
    assert got == expected


def test_model_version_order_by_ties_as_mlflow(api, catalogue):
    # After the caller's keys MLflow orders by name ascending, then the newest version first.
    assert versions(api.get("model-versions/search", {"order_by": "name DESC"})) == [
        ("rcf-beta", 1), ("rcf-alpha", 3), ("rcf-alpha", 2), ("rcf-alpha", 1)
    ]
    by_creation = versions(api.get("model-versions/search", {"order_by": "creation_timestamp ASC", "max_results": 2}))
    assert by_creation == [("rcf-alpha", 1), ("rcf-alpha", 2)]
    for endpoint, order_by in (("model-versions/search", ["name ASC", "name DESC"]),
                               ("registered-models/search", ["timestamp DESC", "last_updated_timestamp ASC"])):
        r = api.get(endpoint, {"order_by": order_by})
        assert r.status_code == 400
        assert r.json()["message"] == f"`order_by` contains duplicate fields: {order_by}"


def test_model_version_default_order_and_errors(api, catalogue):
    got = versions(api.get("model-versions/search"))
    # Default: last_updated_timestamp DESC, name ASC, version DESC; v2 moved to Production last.
    assert got[0] == ("rcf-alpha", 2) or got[0] == ("rcf-beta", 1)
    assert sorted(got) == [("rcf-alpha", 1), ("rcf-alpha", 2), ("rcf-alpha", 3), ("rcf-beta", 1)]
    for params, message in [
        ({"max_results": "200001"}, 'Invalid value "200001" for parameter \'max_results\' supplied'),
        ({"order_by": "bogus"}, "Invalid order by key 'bogus' specified."),
        ({"filter": "metrics.x > 1"}, "Invalid filter key type 'metric'"),
    ]:
        r = api.get("model-versions/search", params)
        assert r.status_code == 400 and r.json()["message"].startswith(message), r.json()


def test_zero_max_results_as_mlflow(api, catalogue):
    # MLflow's registry store: an empty page for registered models, an error for versions.
    assert api.get("registered-models/search", {"max_results": "0"}).json() == {}
    r = api.get("model-versions/search", {"max_results": "0"})
    assert r.status_code == 400
    assert r.json()["message"] == "Invalid value for max_results. It must be a positive integer, but got 0"
    r = api.get("model-versions/search", {"max_results": "-1"})
    assert r.status_code == 400 and r.json()["error_code"] == "INVALID_PARAMETER_VALUE"


def _page_through(api, endpoint, key, params):
    seen, token, pages = [], None, 0
    while True:
        query = dict(params)
        if token:
            query["page_token"] = token
        body = api.get(endpoint, query).json()
        seen += body.get(key, [])
        pages += 1
        token = body.get("next_page_token")
        if not token:
            return seen, pages


def test_registered_model_paging_has_no_gaps_or_duplicates(api, owner):
    for i in range(23):
        services.create_registered_model(name=f"m{i:02d}", user=owner)
    # Same timestamps for many rows: the name tie-breaker keeps the order total.
    RegisteredModel.objects.update(last_updated_timestamp=1000)
    for order in (["name ASC"], ["timestamp DESC"], ["last_updated_timestamp ASC", "name DESC"]):
        rows, pages = _page_through(api, "registered-models/search", "registered_models", {"max_results": 5, "order_by": order})
        got = [r["name"] for r in rows]
        assert sorted(got) == [f"m{i:02d}" for i in range(23)] and len(set(got)) == 23
        assert pages == 5


def test_model_version_paging_is_keyset(api, owner, make_version):
    for _ in range(7):
        make_version("a")
    for _ in range(5):
        make_version("b")
    ModelVersion.objects.update(last_updated_timestamp=5)
    rows, pages = _page_through(api, "model-versions/search", "model_versions", {"max_results": 4})
    got = [(r["name"], r["version"]) for r in rows]
    assert len(got) == 12 and len(set(got)) == 12 and pages == 3
    # Rows created after page 1 was served do not shift the later pages (no offsets).
    first = api.get("model-versions/search", {"max_results": 4, "order_by": "version_number ASC"}).json()
    make_version("a")
    ModelVersion.objects.filter(registered_model__name="a", version=8).update(last_updated_timestamp=5)
    second = api.get("model-versions/search", {"max_results": 4, "order_by": "version_number ASC", "page_token": first["next_page_token"]}).json()
    assert [int(v["version"]) for v in second["model_versions"]] >= [1]
    assert not {(v["name"], v["version"]) for v in first["model_versions"]} & {(v["name"], v["version"]) for v in second["model_versions"]}
    # A token from the other search is refused.
    r = api.get("registered-models/search", {"page_token": first["next_page_token"]})
    assert r.status_code == 400 and r.json()["error_code"] == "INVALID_PARAMETER_VALUE"


def _count(api, path, params):
    # Warm first: the token's last_used_at write comes at most once a minute, so a slow populate
    # step would otherwise add it to one side's count.
    api.get(path, params)
    with CaptureQueriesContext(connection) as ctx:
        r = api.get(path, params)
    assert r.status_code == 200
    return len(ctx.captured_queries)


def test_search_query_counts_do_not_grow_with_rows(api, owner, make_version):
    def populate(prefix, n):
        for i in range(n):
            name = f"{prefix}{i:02d}"
            services.create_registered_model(name=name, user=owner, tags=[{"key": "k", "value": "v"}])
            make_version(name, stage="Production", tags=[{"key": "t", "value": "x"}])
            if i % 5 == 0:  # some models with two stages in latest_versions
                make_version(name)
            services.set_registered_model_alias(name=name, alias="champion", version=1, user=owner)

    populate("one", 1)
    api.get("registered-models/search")  # warm the token's last_used_at write
    rm_one = _count(api, "registered-models/search", {"filter": "name LIKE 'one%'"})
    mv_one = _count(api, "model-versions/search", {"filter": "name LIKE 'one%'"})
    get_one = _count(api, "registered-models/get", {"name": "one00"})
    populate("many", 30)
    rm_many = _count(api, "registered-models/search", {"filter": "name LIKE 'many%'"})
    mv_many = _count(api, "model-versions/search", {"filter": "name LIKE 'many%'"})
    assert rm_one == rm_many
    assert mv_one == mv_many
    assert _count(api, "registered-models/get", {"name": "many29"}) == get_one
    assert len(api.get("registered-models/search", {"filter": "name LIKE 'many%'"}).json()["registered_models"]) == 30


def test_model_list_page_constant_queries(client, owner, make_version):
    client.force_login(owner)
    make_version("p0", stage="Production")
    client.get("/models/")  # warm process-wide caches (content types for the permission tables)
    with CaptureQueriesContext(connection) as one:
        r = client.get("/models/")
    assert r.status_code == 200 and b"p0" in r.content and b"Production: v1" in r.content
    for i in range(1, 15):
        make_version(f"p{i}", stage="Staging")
        services.set_registered_model_alias(name=f"p{i}", alias="c", version=1, user=owner)
    with CaptureQueriesContext(connection) as many:
        r = client.get("/models/")
    assert b"p14" in r.content and b"@c" in r.content
    assert len(one.captured_queries) == len(many.captured_queries)


def test_model_list_requires_login(client):
    r = client.get("/models/")
    assert r.status_code == 302 and "/login" in r["Location"]
