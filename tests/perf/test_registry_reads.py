"""registry.reads (raw SQL) returns exactly what the ORM path returns, on the same data."""

import pytest
from django.contrib.auth.models import AnonymousUser
from django.db import connection

from core.permissions import CAN_READ
from registry import access, reads, services
from registry.models import ModelVersion, RegisteredModel
from tests.factories import grant
from tests.registry.conftest import ensure_run, write_model_dir

pytestmark = pytest.mark.django_db


@pytest.fixture
def registry_data(owner, _artifact_root):
    write_model_dir(_artifact_root, "0/run/artifacts/model")
    good = "mlflow-artifacts:/0/run/artifacts/model"
    services.create_registered_model(name="alpha", user=owner, description="first", tags=[{"key": "z", "value": "1"}, {"key": "a", "value": "2"}])
    services.create_registered_model(name="beta", user=owner)
    services.create_registered_model(name="empty", user=owner, tags=[{"key": "only", "value": "tag"}])
    for i in range(6):
        write_model_dir(_artifact_root, f"0/{ensure_run(f'{i:032x}').pk}/artifacts/model")
        services.create_model_version(name="alpha", source=f"mlflow-artifacts:/0/{i:032x}/artifacts/model", user=owner, run_id=f"{i:032x}", run_link="http://x/run" if i == 2 else "",
                                      description="d" if i % 2 else "", tags=[{"key": "k2", "value": str(i)}, {"key": "k1", "value": "v"}])
    failed = services.create_model_version(name="beta", source="mlflow-artifacts:/0/nowhere/model", user=owner)
    ModelVersion.objects.filter(pk=failed.pk).update(status=ModelVersion.FAILED, status_message="no such source")
    ModelVersion.objects.filter(registered_model__name="alpha", version__lte=3).update(status=ModelVersion.READY)
    services.create_model_version(name="beta", source=good, user=owner)
    services.transition_model_version_stage(name="alpha", version=2, stage="Production", user=owner)
    services.transition_model_version_stage(name="alpha", version=4, stage="Staging", user=owner)
    services.transition_model_version_stage(name="alpha", version=5, stage="Archived", user=owner)
    services.transition_model_version_stage(name="beta", version=2, stage="Staging", user=owner)
    services.set_registered_model_alias(name="alpha", alias="champ", version=2, user=owner)
    services.set_registered_model_alias(name="alpha", alias="b-side", version=2, user=owner)
    services.set_registered_model_alias(name="alpha", alias="next", version=6, user=owner)


def orm_model(pk):
    model = services.registered_model_queryset().get(pk=pk)
    return model.to_mlflow(latest_versions=services.latest_versions_for([pk]).get(pk, []))


def test_registered_models_json_equals_the_orm(registry_data):
    models = list(RegisteredModel.objects.order_by("name").values(*reads.RM_FIELDS))
    expected = [orm_model(m["id"]) for m in models]
    assert reads.registered_models_json(models) == expected
    assert {"latest_versions", "tags", "aliases", "description"} <= set(expected[0])
    assert reads.registered_models_json([]) == []


def test_model_versions_json_equals_the_orm_in_the_given_order(registry_data):
    ids = list(ModelVersion.objects.order_by("-last_updated_timestamp", "id").values_list("pk", flat=True))
    expected = [access.version_queryset().get(pk=pk).to_mlflow() for pk in ids]
    assert reads.model_versions_json(ids) == expected
    assert any("aliases" in v for v in expected) and any("status_message" in v for v in expected)
    assert any(v["run_link"] for v in expected) and any(v["description"] for v in expected)


def test_version_json_equals_the_orm(registry_data, owner):
    for mv in ModelVersion.objects.select_related("registered_model"):
        expected = access.version_queryset().get(pk=mv.pk).to_mlflow()
        assert reads.version_json(access.visible_model_sql(owner, mv.registered_model.name), mv.version) == expected
    assert reads.version_json(access.visible_model_sql(owner, "alpha"), 99) is None
    assert reads.version_json(access.visible_model_sql(owner, "nope"), 1) is None


def test_registered_model_json_equals_the_orm(registry_data, owner):
    for model in RegisteredModel.objects.all():
        assert reads.registered_model_json(access.visible_model_sql(owner, model.name)) == orm_model(model.pk)
    assert reads.registered_model_json(access.visible_model_sql(owner, "nope")) is None


@pytest.mark.parametrize("stages", [None, ["Production"], ["None", "Archived"], ["Nope"]])
def test_latest_versions_json_equals_the_orm(registry_data, owner, stages):
    for model in RegisteredModel.objects.all():
        expected = [mv.to_mlflow() for mv in services.latest_versions_for([model.pk], stages=stages).get(model.pk, [])]
        assert reads.latest_versions_json(access.visible_model_sql(owner, model.name), stages=stages) == (True, expected)
    assert reads.latest_versions_json(access.visible_model_sql(owner, "nope")) == (False, [])


def test_visible_model_sql_finds_only_what_the_user_may_read(registry_data, owner, outsider, data_scientist):
    grant(RegisteredModel.objects.get(name="beta"), CAN_READ, user=data_scientist)
    for user, visible in [(owner, {"alpha", "beta", "empty"}), (data_scientist, {"beta"}), (outsider, set()), (AnonymousUser(), set())]:
        found = {name for name in ("alpha", "beta", "empty") if reads.registered_model_json(access.visible_model_sql(user, name))}
        assert found == visible, user
        assert found == {m.name for m in access.registered_models_visible_to(user)}


def test_latest_version_ids_equal_the_orm(registry_data):
    ids = list(RegisteredModel.objects.values_list("pk", flat=True))
    expected = [mv.pk for versions in services.latest_versions_for(ids).values() for mv in versions]
    assert reads.latest_version_ids(ids) == expected and len(expected) >= 5
    assert reads.latest_version_ids([]) == []


def test_to_mlflow_loads_a_deferred_column_rather_than_guessing(registry_data):
    mv = ModelVersion.objects.defer("description", "run_link").get(registered_model__name="alpha", version=3)
    assert mv.to_mlflow() == access.version_queryset().get(pk=mv.pk).to_mlflow()
    model = RegisteredModel.objects.defer("description").get(name="alpha")
    assert model.to_mlflow()["description"] == "first"


def _count(api, django_assert_num_queries, n, method, path, **kwargs):
    call = api.get if method == "GET" else api.post
    call(path, **kwargs)  # the token is verified (and cached) here
    with django_assert_num_queries(n):
        response = call(path, **kwargs)
    assert response.status_code == 200, response.json()
    return response.json()


def _statements(one_message: int, one_by_one: int) -> int:
    # On PostgreSQL a reader's SELECTs travel as one message (core.sql.fetch_sets): one query here.
    return one_message if connection.vendor == "postgresql" else one_by_one


@pytest.mark.parametrize("persona", ["admin", "data_scientist"])
def test_registry_read_endpoints_run_a_fixed_number_of_queries(request, api_for, persona, registry_data, django_assert_num_queries):
    user = request.getfixturevalue(persona)
    if not user.is_superuser:
        for model in RegisteredModel.objects.all():
            grant(model, CAN_READ, user=user)
    api = api_for(user)
    # model (visibility in the same statement) + tags + aliases + latest versions + their tags + their aliases
    data = _count(api, django_assert_num_queries, _statements(1, 6), "GET", "registered-models/get", params={"name": "alpha"})
    assert data["registered_model"]["latest_versions"] and data["registered_model"]["aliases"]
    data = _count(api, django_assert_num_queries, _statements(1, 4), "POST", "registered-models/get-latest-versions", body={"name": "alpha"})
    assert len(data["model_versions"]) == 4
    data = _count(api, django_assert_num_queries, _statements(1, 3), "GET", "model-versions/get", params={"name": "alpha", "version": "2"})
    assert data["model_version"]["aliases"] == ["b-side", "champ"]
    # the page, then versions + tags + aliases, whatever the page size
    data = _count(api, django_assert_num_queries, _statements(2, 4), "GET", "model-versions/search", params={"filter": "name='alpha'"})
    assert len(data["model_versions"]) == 6
    data = _count(api, django_assert_num_queries, _statements(2, 6), "GET", "registered-models/search", params={"max_results": 10})
    assert len(data["registered_models"]) == 3


def test_model_versions_search_by_name_pages_in_the_default_order(api_for, admin, registry_data):
    api = api_for(admin)
    expected = [(v.last_updated_timestamp, v.version) for v in ModelVersion.objects.filter(registered_model__name="alpha")]
    expected = [str(v) for _, v in sorted(expected, key=lambda t: (-t[0], -t[1]))]
    seen, token = [], None
    while True:
        params = {"filter": "name='alpha'", "max_results": 4, **({"page_token": token} if token else {})}
        page = api.get("model-versions/search", params).json()
        seen += [v["version"] for v in page.get("model_versions", [])]
        token = page.get("next_page_token")
        if not token:
            break
    assert seen == expected
    assert api.get("model-versions/search", {"filter": "name='nope'"}).json() == {}
