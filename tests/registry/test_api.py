"""Every registry endpoint: the happy path with MLflow's exact shapes, and the error JSON/status."""

import json

import pytest

from registry.models import ModelVersion, RegisteredModel
from tests.registry.conftest import ensure_run

pytestmark = pytest.mark.django_db


def err(response, status, code, message=None):
    assert response.status_code == status, response.content
    body = response.json()
    assert body["error_code"] == code, body
    if message is not None:
        assert body["message"] == message, body["message"]
    return body


@pytest.fixture
def registered(api, model_files):
    """lr: v1 Production (alias champion), v2 Staging, with tags and descriptions."""
    assert api.post("registered-models/create", {"name": "lr"}).status_code == 200
    for n in (1, 2):
        ensure_run(f"{n:032x}")
        r = api.post("model-versions/create", {"name": "lr", "source": model_files(f"0/{n:032x}/artifacts/model"), "run_id": f"{n:032x}"})
        assert r.status_code == 200, r.content
    api.post("model-versions/transition-stage", {"name": "lr", "version": "1", "stage": "Production", "archive_existing_versions": False})
    api.post("model-versions/transition-stage", {"name": "lr", "version": "2", "stage": "Staging", "archive_existing_versions": False})
    api.post("registered-models/alias", {"name": "lr", "alias": "champion", "version": "1"})
    return "lr"


# --------------------------------------------------------------------------- registered models


def test_create_registered_model_shape(api):
    r = api.post("registered-models/create", {"name": "m"})
    assert r.status_code == 200
    body = r.json()["registered_model"]
    assert set(body) == {"name", "creation_timestamp", "last_updated_timestamp"}  # no description key, no empty lists
    assert isinstance(body["creation_timestamp"], int)
    r = api.post("registered-models/create", {"name": "t", "description": "d", "tags": [{"key": "k", "value": "v"}]})
    assert r.json()["registered_model"]["description"] == "d"
    assert r.json()["registered_model"]["tags"] == [{"key": "k", "value": "v"}]


def test_create_registered_model_errors(api, anon_api):
    api.post("registered-models/create", {"name": "m"})
    err(api.post("registered-models/create", {"name": "m"}), 400, "RESOURCE_ALREADY_EXISTS", "Registered Model (name=m) already exists.")
    missing = "Missing value for required parameter 'name'. See the API docs for more information about request parameters."
    err(api.post("registered-models/create", {}), 400, "INVALID_PARAMETER_VALUE", missing)
    err(api.post("registered-models/create", {"name": ""}), 400, "INVALID_PARAMETER_VALUE", missing)
    bad = api.client.post("/api/2.0/mlflow/registered-models/create", "{not json", content_type="application/json", **api.headers)
    assert err(bad, 400, "INVALID_PARAMETER_VALUE")["message"].startswith("Malformed JSON request body:")
    assert not RegisteredModel.objects.exclude(name="m").exists()
    err(
        api.post("registered-models/create", {"name": 123}),
        400,
        "INVALID_PARAMETER_VALUE",
        "Invalid value 123 for parameter 'name' supplied:  Hint: Value was of type 'int'. See the API docs for more information about request parameters.",
    )
    plain = api.client.post("/api/2.0/mlflow/registered-models/create", "x", content_type="text/plain", **api.headers)
    err(plain, 400, "INVALID_PARAMETER_VALUE", "Bad Request. Content-Type must be one of ['application/json'].")
    err(anon_api.post("registered-models/create", {"name": "x"}), 401, "UNAUTHENTICATED")
    wrong = api.get("registered-models/create")
    assert wrong.status_code == 405 and wrong.json()["error_code"] == "BAD_REQUEST"


def test_get_registered_model(api, registered):
    body = api.get("registered-models/get", {"name": "lr"}).json()["registered_model"]
    assert body["aliases"] == [{"alias": "champion", "version": "1"}]
    assert [(v["version"], v["current_stage"]) for v in body["latest_versions"]] == [("1", "Production"), ("2", "Staging")]
    err(api.get("registered-models/get", {"name": "nope"}), 404, "RESOURCE_DOES_NOT_EXIST", "Registered Model with name=nope not found")
    err(api.get("registered-models/get"), 400, "INVALID_PARAMETER_VALUE")


def test_update_registered_model(api, registered):
    r = api.patch("registered-models/update", {"name": "lr", "description": "Linear regression"})
    assert r.status_code == 200
    body = r.json()["registered_model"]
    assert body["description"] == "Linear regression" and len(body["latest_versions"]) == 2
    err(api.patch("registered-models/update", {"name": "nope", "description": "x"}), 404, "RESOURCE_DOES_NOT_EXIST")


def test_rename_registered_model(api, registered):
    r = api.post("registered-models/rename", {"name": "lr", "new_name": "lr2"})
    assert r.status_code == 200
    body = r.json()["registered_model"]
    assert body["name"] == "lr2" and {v["name"] for v in body["latest_versions"]} == {"lr2"}
    err(api.get("registered-models/get", {"name": "lr"}), 404, "RESOURCE_DOES_NOT_EXIST")
    assert api.get("model-versions/get", {"name": "lr2", "version": "1"}).json()["model_version"]["aliases"] == ["champion"]
    api.post("registered-models/create", {"name": "taken"})
    err(api.post("registered-models/rename", {"name": "lr2", "new_name": "taken"}), 400, "RESOURCE_ALREADY_EXISTS",
        "Registered Model (name=taken) already exists.")
    err(api.post("registered-models/rename", {"name": "lr2"}), 400, "INVALID_PARAMETER_VALUE",
        "Missing value for required parameter 'new_name'. See the API docs for more information about request parameters.")
    err(api.post("registered-models/rename", {"name": "nope", "new_name": "x"}), 404, "RESOURCE_DOES_NOT_EXIST")


def test_delete_registered_model(api, registered):
    r = api.delete("registered-models/delete", {"name": "lr"})
    assert r.status_code == 200 and r.json() == {}
    assert not ModelVersion.objects.exists()
    err(api.delete("registered-models/delete", {"name": "lr"}), 404, "RESOURCE_DOES_NOT_EXIST", "Registered Model with name=lr not found")


def test_registered_model_tags(api, registered):
    assert api.post("registered-models/set-tag", {"name": "lr", "key": "task", "value": "regression"}).json() == {}
    assert api.post("registered-models/set-tag", {"name": "lr", "key": "task", "value": "clf"}).json() == {}
    assert api.get("registered-models/get", {"name": "lr"}).json()["registered_model"]["tags"] == [{"key": "task", "value": "clf"}]
    assert api.delete("registered-models/delete-tag", {"name": "lr", "key": "task"}).json() == {}
    assert api.delete("registered-models/delete-tag", {"name": "lr", "key": "absent"}).status_code == 200
    assert "tags" not in api.get("registered-models/get", {"name": "lr"}).json()["registered_model"]
    err(api.post("registered-models/set-tag", {"name": "lr", "value": "x"}), 400, "INVALID_PARAMETER_VALUE",
        "Missing value for required parameter 'key'. See the API docs for more information about request parameters.")
    err(api.post("registered-models/set-tag", {"name": "nope", "key": "k", "value": "x"}), 404, "RESOURCE_DOES_NOT_EXIST")


def test_get_latest_versions(api, registered):
    r = api.post("registered-models/get-latest-versions", {"name": "lr", "stages": ["Production"]})
    assert [v["version"] for v in r.json()["model_versions"]] == ["1"]
    assert r.json()["model_versions"][0]["aliases"] == ["champion"]
    all_stages = api.get("registered-models/get-latest-versions", {"name": "lr"}).json()["model_versions"]
    assert [v["current_stage"] for v in all_stages] == ["Production", "Staging"]
    assert api.post("registered-models/get-latest-versions", {"name": "lr", "stages": ["Archived"]}).json() == {}
    err(api.post("registered-models/get-latest-versions", {"name": "nope"}), 404, "RESOURCE_DOES_NOT_EXIST")
    err(api.post("registered-models/get-latest-versions", {"name": "lr", "stages": ["Bogus"]}), 400, "INVALID_PARAMETER_VALUE")


def test_aliases(api, registered):
    body = api.get("registered-models/alias", {"name": "lr", "alias": "champion"}).json()["model_version"]
    assert body["version"] == "1" and body["aliases"] == ["champion"] and body["current_stage"] == "Production"
    assert api.post("registered-models/alias", {"name": "lr", "alias": "champion", "version": "2"}).json() == {}
    assert api.get("registered-models/alias", {"name": "lr", "alias": "champion"}).json()["model_version"]["version"] == "2"
    assert api.delete("registered-models/alias", {"name": "lr", "alias": "champion"}).json() == {}
    err(api.get("registered-models/alias", {"name": "lr", "alias": "champion"}), 400, "INVALID_PARAMETER_VALUE",
        "Registered model alias champion not found.")
    err(api.post("registered-models/alias", {"name": "lr", "alias": "latest", "version": "1"}), 400, "INVALID_PARAMETER_VALUE",
        "'latest' alias name (case insensitive) is reserved.")
    err(api.post("registered-models/alias", {"name": "lr", "alias": "v2", "version": "1"}), 400, "INVALID_PARAMETER_VALUE",
        "Version alias name 'v2' is reserved.")
    err(api.post("registered-models/alias", {"name": "lr", "alias": "x", "version": "99"}), 404, "RESOURCE_DOES_NOT_EXIST",
        "Model Version (name=lr, version=99) not found")
    err(api.get("registered-models/alias", {"name": "nope", "alias": "x"}), 404, "RESOURCE_DOES_NOT_EXIST")


# --------------------------------------------------------------------------- model versions


def test_create_model_version_shape(api, model_files):
    api.post("registered-models/create", {"name": "m"})
    ensure_run("a" * 32)
    r = api.post("model-versions/create", {"name": "m", "source": model_files(f"0/{'a' * 32}/artifacts/model"), "run_id": "a" * 32,
                                           "tags": [{"key": "k", "value": "v"}], "description": "first"})
    assert r.status_code == 200, r.content
    body = r.json()["model_version"]
    assert body["version"] == "1" and isinstance(body["version"], str)
    assert body["status"] == "READY" and body["current_stage"] == "None"
    assert body["description"] == "first" and body["run_link"] == "" and body["run_id"] == "a" * 32
    assert body["tags"] == [{"key": "k", "value": "v"}] and body["user_id"] == "owner"
    assert "aliases" not in body and "status_message" not in body
    r = api.post("model-versions/create", {"name": "m", "source": model_files("0/x/artifacts/model")})
    body = r.json()["model_version"]
    assert body["version"] == "2" and body["description"] == "" and "run_id" not in body


def test_create_model_version_errors(api, model_files):
    err(api.post("model-versions/create", {"name": "nope", "source": "mlflow-artifacts:/1/x"}), 404, "RESOURCE_DOES_NOT_EXIST",
        "Registered Model with name=nope not found")
    api.post("registered-models/create", {"name": "m"})
    err(api.post("model-versions/create", {"name": "m"}), 400, "INVALID_PARAMETER_VALUE",
        "Missing value for required parameter 'source'. See the API docs for more information about request parameters.")
    # No MLmodel: registered READY as on MLflow (what inspection found is evidence, not a failure).
    plain = api.post("model-versions/create", {"name": "m", "source": model_files("0/y/artifacts/x", with_mlmodel=False)})
    body = plain.json()["model_version"]
    assert body["status"] == "READY" and "status_message" not in body


def test_get_model_version(api, registered):
    body = api.get("model-versions/get", {"name": "lr", "version": "1"}).json()["model_version"]
    assert body["aliases"] == ["champion"] and body["current_stage"] == "Production"
    err(api.get("model-versions/get", {"name": "lr", "version": "99"}), 404, "RESOURCE_DOES_NOT_EXIST",
        "Model Version (name=lr, version=99) not found")
    err(api.get("model-versions/get", {"name": "missing", "version": "1"}), 404, "RESOURCE_DOES_NOT_EXIST",
        "Model Version (name=missing, version=1) not found")
    err(api.get("model-versions/get", {"name": "lr", "version": "abc"}), 400, "INVALID_PARAMETER_VALUE",
        "Parameter 'version' must be an integer, got 'abc'.")
    err(api.get("model-versions/get", {"name": "lr"}), 400, "INVALID_PARAMETER_VALUE",
        "Missing value for required parameter 'version'. See the API docs for more information about request parameters.")


def test_version_as_json_number_is_rejected(api, registered):
    err(api.post("model-versions/transition-stage", {"name": "lr", "version": 1, "stage": "Staging"}), 400, "INVALID_PARAMETER_VALUE")


def test_update_model_version(api, registered):
    r = api.patch("model-versions/update", {"name": "lr", "version": "1", "description": "alcohol + flavanoids"})
    body = r.json()["model_version"]
    assert body["description"] == "alcohol + flavanoids" and body["aliases"] == ["champion"]
    err(api.patch("model-versions/update", {"name": "lr", "version": "9", "description": "x"}), 404, "RESOURCE_DOES_NOT_EXIST")


def test_transition_stage(api, registered):
    r = api.post("model-versions/transition-stage", {"name": "lr", "version": "2", "stage": "production", "archive_existing_versions": True})
    assert r.status_code == 200
    assert r.json()["model_version"]["current_stage"] == "Production"
    assert api.get("model-versions/get", {"name": "lr", "version": "1"}).json()["model_version"]["current_stage"] == "Archived"
    err(api.post("model-versions/transition-stage", {"name": "lr", "version": "1", "stage": "Bogus", "archive_existing_versions": False}),
        400, "INVALID_PARAMETER_VALUE", "Invalid Model Version stage: Bogus. Value must be one of None, Staging, Production, Archived.")
    err(api.post("model-versions/transition-stage", {"name": "lr", "version": "1"}), 400, "INVALID_PARAMETER_VALUE",
        "Missing value for required parameter 'stage'. See the API docs for more information about request parameters.")
    err(api.post("model-versions/transition-stage", {"name": "lr", "version": "7", "stage": "Staging"}), 404, "RESOURCE_DOES_NOT_EXIST")
    # archive_existing_versions may be absent.
    assert api.post("model-versions/transition-stage", {"name": "lr", "version": "1", "stage": "None"}).status_code == 200


def test_delete_model_version(api, registered):
    assert api.delete("model-versions/delete", {"name": "lr", "version": "2"}).json() == {}
    err(api.get("model-versions/get", {"name": "lr", "version": "2"}), 404, "RESOURCE_DOES_NOT_EXIST")
    err(api.delete("model-versions/delete", {"name": "lr", "version": "2"}), 404, "RESOURCE_DOES_NOT_EXIST",
        "Model Version (name=lr, version=2) not found")


def test_model_version_tags(api, registered):
    assert api.post("model-versions/set-tag", {"name": "lr", "version": "2", "key": "validation_status", "value": "pending"}).json() == {}
    body = api.get("model-versions/get", {"name": "lr", "version": "2"}).json()["model_version"]
    assert body["tags"] == [{"key": "validation_status", "value": "pending"}]
    assert api.delete("model-versions/delete-tag", {"name": "lr", "version": "2", "key": "validation_status"}).json() == {}
    assert "tags" not in api.get("model-versions/get", {"name": "lr", "version": "2"}).json()["model_version"]
    err(api.post("model-versions/set-tag", {"name": "lr", "version": "9", "key": "k", "value": "v"}), 404, "RESOURCE_DOES_NOT_EXIST")
    err(api.post("model-versions/set-tag", {"name": "lr", "version": "2", "key": "k"}), 400, "INVALID_PARAMETER_VALUE",
        "Missing value for required parameter 'value'. See the API docs for more information about request parameters.")


def test_download_uri_is_the_versions_own_copy(api, registered, _artifact_root):
    uri = api.get("model-versions/get-download-uri", {"name": "lr", "version": "1"}).json()["artifact_uri"]
    pk = RegisteredModel.objects.get(name="lr").pk
    assert uri == f"mlflow-artifacts:/registry/{pk}/1"
    # The artifact proxy serves the copy.
    listing = api.get("/api/2.0/mlflow-artifacts/artifacts", {"path": f"registry/{pk}/1"})
    assert {f["path"] for f in listing.json()["files"]} == {"MLmodel", "model.pkl"}
    err(api.get("model-versions/get-download-uri", {"name": "lr", "version": "5"}), 404, "RESOURCE_DOES_NOT_EXIST")


def test_ajax_prefix_serves_the_same_handlers(api, registered):
    r = api.get("/ajax-api/2.0/mlflow/registered-models/get", {"name": "lr"})
    assert r.status_code == 200 and r.json()["registered_model"]["name"] == "lr"


def test_responses_are_json_strings_for_versions(api, registered):
    raw = api.get("model-versions/search", {"filter": "name='lr'"}).content.decode()
    assert '"version": "1"' in raw or '"version":"1"' in raw
    assert json.loads(raw)["model_versions"][0]["status"] == "READY"


def test_version_copies_are_read_only_through_the_artifact_proxy(api, registered, api_for, admin):
    pk = RegisteredModel.objects.get(name="lr").pk
    r = api.put(f"/api/2.0/mlflow-artifacts/artifacts/registry/{pk}/1/model.pkl", b"tampered")
    assert r.status_code == 403 and r.json()["error_code"] == "PERMISSION_DENIED"
    assert api.get(f"/api/2.0/mlflow-artifacts/artifacts/registry/{pk}/1/MLmodel").status_code == 200
    # The registry root is not listable by ordinary users (it would reveal every model).
    assert api.get("/api/2.0/mlflow-artifacts/artifacts", {"path": "registry"}).status_code == 403
    assert api_for(admin).get("/api/2.0/mlflow-artifacts/artifacts", {"path": "registry"}).status_code == 200
