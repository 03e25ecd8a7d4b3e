"""experiments/*: happy paths, wire shapes and MLflow's error JSON."""

import pytest

from tracking.models import Experiment, Run

pytestmark = pytest.mark.django_db


def create(api, name, **extra):
    response = api.post("experiments/create", {"name": name, **extra})
    assert response.status_code == 200, response.json()
    return response.json()["experiment_id"]


def test_default_experiment_exists(api):
    body = api.get("experiments/get", {"experiment_id": "0"}).json()
    assert body["experiment"]["name"] == "Default"
    assert body["experiment"]["artifact_location"] == "mlflow-artifacts:/0"


def test_create_and_get_shapes(api, owner):
    exp_id = create(api, "wine-quality", tags=[{"key": "team", "value": "ml"}])
    exp = api.get("experiments/get", {"experiment_id": exp_id}).json()["experiment"]
    assert exp["experiment_id"] == exp_id
    assert exp["name"] == "wine-quality"
    assert exp["artifact_location"] == f"mlflow-artifacts:/{exp_id}"
    assert exp["lifecycle_stage"] == "active"
    assert isinstance(exp["creation_time"], int) and exp["creation_time"] == exp["last_update_time"]
    assert exp["tags"] == [{"key": "team", "value": "ml"}]
    assert Experiment.objects.get(pk=exp_id).owner == owner
    by_name = api.get("experiments/get-by-name", {"experiment_name": "wine-quality"}).json()
    assert by_name["experiment"]["experiment_id"] == exp_id


def test_create_honours_an_admins_artifact_location(api_for, admin):
    api = api_for(admin)
    exp_id = create(api, "custom", artifact_location="s3://bucket/path")
    exp = api.get("experiments/get", {"experiment_id": exp_id}).json()["experiment"]
    assert exp["artifact_location"] == "s3://bucket/path"
    assert "tags" not in exp


def test_create_duplicate_even_deleted(api):
    exp_id = create(api, "dup")
    response = api.post("experiments/create", {"name": "dup"})
    assert response.status_code == 400
    assert response.json()["error_code"] == "RESOURCE_ALREADY_EXISTS"
    assert "Experiment(name=dup) already exists" in response.json()["message"]
    api.post("experiments/delete", {"experiment_id": exp_id})
    response = api.post("experiments/create", {"name": "dup"})
    assert response.json()["error_code"] == "RESOURCE_ALREADY_EXISTS"


def test_create_missing_and_wrong_type(api):
    response = api.post("experiments/create", {})
    assert response.status_code == 400
    assert response.json() == {
        "error_code": "INVALID_PARAMETER_VALUE",
        "message": "Missing value for required parameter 'name'. See the API docs for more information about request parameters.",
    }
    response = api.post("experiments/create", {"name": 123})
    assert response.status_code == 400
    assert response.json()["message"].startswith("Invalid value 123 for parameter 'name' supplied")


def test_get_missing(api):
    response = api.get("experiments/get", {"experiment_id": "999"})
    assert response.status_code == 404
    assert response.json() == {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "No Experiment with id=999 exists"}
    response = api.get("experiments/get-by-name", {"experiment_name": "wine-quality"})
    assert response.status_code == 404
    assert response.json()["message"] == "Could not find experiment with name 'wine-quality'"
    response = api.get("experiments/get", {"experiment_id": "abc"})
    assert response.status_code == 400
    assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert api.get("experiments/get").status_code == 400


def test_unauthenticated(anon_api):
    response = anon_api.get("experiments/get", {"experiment_id": "0"})
    assert response.status_code == 401
    assert response.json()["error_code"] == "UNAUTHENTICATED"
    response = anon_api.post("runs/search", {"experiment_ids": ["0"]})
    assert response.status_code == 401


def test_wrong_method_is_json_405(api):
    response = api.get("experiments/create")
    assert response.status_code == 405
    assert response.json()["error_code"] == "BAD_REQUEST"


def test_rename(api):
    exp_id = create(api, "old")
    create(api, "taken")
    assert api.post("experiments/update", {"experiment_id": exp_id, "new_name": "new"}).json() == {}
    assert api.get("experiments/get", {"experiment_id": exp_id}).json()["experiment"]["name"] == "new"
    response = api.post("experiments/update", {"experiment_id": exp_id, "new_name": "taken"})
    assert response.json()["error_code"] == "RESOURCE_ALREADY_EXISTS"
    response = api.post("experiments/update", {"experiment_id": exp_id})
    assert response.json()["message"].startswith("Missing value for required parameter 'new_name'")


def test_delete_and_restore_cascade_to_runs(api):
    exp_id = create(api, "doomed")
    run_id = api.post("runs/create", {"experiment_id": exp_id}).json()["run"]["info"]["run_id"]
    assert api.post("experiments/delete", {"experiment_id": exp_id}).json() == {}
    exp = api.get("experiments/get", {"experiment_id": exp_id}).json()["experiment"]
    assert exp["lifecycle_stage"] == "deleted"
    assert Run.objects.get(pk=run_id).lifecycle_stage == "deleted"
    # A deleted experiment takes no new runs.
    response = api.post("runs/create", {"experiment_id": exp_id})
    assert response.status_code == 400
    assert "must be in the 'active' state" in response.json()["message"]
    assert api.post("experiments/restore", {"experiment_id": exp_id}).json() == {}
    assert Run.objects.get(pk=run_id).lifecycle_stage == "active"
    # As MLflow: restore looks among deleted experiments, delete among active ones.
    response = api.post("experiments/restore", {"experiment_id": exp_id})
    assert response.status_code == 404
    assert response.json()["message"] == f"No Experiment with id={exp_id} exists"
    api.post("experiments/delete", {"experiment_id": exp_id})
    assert api.post("experiments/delete", {"experiment_id": exp_id}).status_code == 404


def test_default_experiment_cannot_be_deleted(api, api_for, admin):
    # Everyone edits the shared Default experiment; deleting needs CAN_MANAGE (403), and even then it is refused (400).
    assert api.post("experiments/delete", {"experiment_id": "0"}).status_code == 403
    response = api_for(admin).post("experiments/delete", {"experiment_id": "0"})
    assert response.status_code == 400


def test_experiment_tags(api):
    exp_id = create(api, "tagged")
    assert api.post("experiments/set-experiment-tag", {"experiment_id": exp_id, "key": "k", "value": "v1"}).json() == {}
    api.post("experiments/set-experiment-tag", {"experiment_id": exp_id, "key": "k", "value": "v2"})
    exp = api.get("experiments/get", {"experiment_id": exp_id}).json()["experiment"]
    assert exp["tags"] == [{"key": "k", "value": "v2"}]
    assert api.delete("experiments/delete-experiment-tag", {"experiment_id": exp_id, "key": "k"}).json() == {}
    assert "tags" not in api.get("experiments/get", {"experiment_id": exp_id}).json()["experiment"]
    response = api.post("experiments/delete-experiment-tag", {"experiment_id": exp_id, "key": "k"})
    assert response.status_code == 404
    response = api.post("experiments/set-experiment-tag", {"experiment_id": exp_id, "value": "x"})
    assert response.json()["message"].startswith("Missing value for required parameter 'key'")


class TestSearch:
    def names(self, response):
        assert response.status_code == 200, response.json()
        return [e["name"] for e in response.json().get("experiments", [])]

    def test_default_order_newest_first_and_view_type(self, api):
        for i, name in enumerate(["a", "b", "c"]):
            create(api, name)
            Experiment.objects.filter(name=name).update(creation_time=1000 + i)
        Experiment.objects.filter(pk=0).update(creation_time=1)
        api.post("experiments/delete", {"experiment_id": str(Experiment.objects.get(name="b").pk)})
        assert self.names(api.post("experiments/search", {"max_results": 10})) == ["c", "a", "Default"]
        assert self.names(api.post("experiments/search", {"view_type": "DELETED_ONLY"})) == ["b"]
        assert self.names(api.get("experiments/search", {"view_type": "ALL"})) == ["c", "b", "a", "Default"]
        response = api.post("experiments/search", {"view_type": "SOME"})
        assert response.status_code == 400

    def test_filter_and_order(self, api):
        create(api, "rcf-alpha", tags=[{"key": "team", "value": "ml"}])
        create(api, "rcf-beta")
        create(api, "other")
        assert self.names(api.post("experiments/search", {"filter": "name LIKE 'rcf-%'", "order_by": ["name ASC"]})) == ["rcf-alpha", "rcf-beta"]
        assert self.names(api.post("experiments/search", {"filter": "name ILIKE 'RCF-B%'"})) == ["rcf-beta"]
        assert self.names(api.post("experiments/search", {"filter": "tags.team = 'ml'"})) == ["rcf-alpha"]
        assert self.names(api.get("experiments/search", {"filter": "name != 'other'", "order_by": "name DESC"})) == ["rcf-beta", "rcf-alpha", "Default"]
        assert self.names(api.post("experiments/search", {"filter": "creation_time > 0 AND name = 'other'"})) == ["other"]

    def test_errors(self, api):
        response = api.post("experiments/search", {"filter": "name ~~ 'x'"})
        assert response.status_code == 400 and response.json()["error_code"] == "INVALID_PARAMETER_VALUE"
        response = api.post("experiments/search", {"order_by": ["color ASC"]})
        assert response.status_code == 400 and "Invalid order by key 'color'" in response.json()["message"]
        response = api.post("experiments/search", {"max_results": 50001})
        assert response.status_code == 400 and "max_results" in response.json()["message"]
        response = api.post("experiments/search", {"page_token": "not-a-token"})
        assert response.status_code == 400

    def test_paging(self, api):
        for i in range(5):
            create(api, f"e{i}")
        seen, token = [], None
        while True:
            body = api.post("experiments/search", {"max_results": 2, **({"page_token": token} if token else {})}).json()
            seen += [e["name"] for e in body.get("experiments", [])]
            token = body.get("next_page_token")
            if not token:
                break
        assert sorted(seen) == sorted(["Default"] + [f"e{i}" for i in range(5)])
        assert len(seen) == len(set(seen))
