"""experiments/create: an experiment's artifacts go where the server puts them, unless a superuser
chooses an outside store; nobody points one at the server's disk, its store, or another experiment's."""

import pytest

from tracking.models import Experiment

pytestmark = pytest.mark.django_db


def refused(response) -> str:
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["error_code"] == "INVALID_PARAMETER_VALUE", body
    return body["message"]


@pytest.fixture
def admin_api(api_for, admin):
    return api_for(admin)


def test_everyone_gets_the_servers_own_location(api):
    exp_id = api.post("experiments/create", {"name": "mine"}).json()["experiment_id"]
    assert Experiment.objects.get(pk=exp_id).artifact_location == f"mlflow-artifacts:/{exp_id}"
    # An empty artifact_location is no choice at all (protobuf's default).
    exp_id = api.post("experiments/create", {"name": "mine2", "artifact_location": ""}).json()["experiment_id"]
    assert Experiment.objects.get(pk=exp_id).artifact_location == f"mlflow-artifacts:/{exp_id}"


@pytest.mark.parametrize("location", ["mlflow-artifacts:/1", "file:///etc", "mlflow-artifacts:/../../etc", "s3://bucket/x", "/tmp/x"])
def test_a_non_superuser_may_not_choose(api, location):
    before = Experiment.objects.count()
    message = refused(api.post("experiments/create", {"name": "sneaky", "artifact_location": location}))
    assert message.startswith("Only administrators may choose an experiment's artifact_location")
    assert Experiment.objects.count() == before


@pytest.mark.parametrize("location, why", [
    ("mlflow-artifacts:/1", "assigned by the server"),
    ("mlflow-artifacts:/../../etc", "assigned by the server"),
    ("mlflow-artifacts://host:5000/2/x", "assigned by the server"),
    ("file:///etc", "assigned by the server"),
    ("/etc", "assigned by the server"),
    ("relative/dir", "assigned by the server"),
    ("C:\\artifacts", "assigned by the server"),
    ("s3://bucket/a/../../other", "'..' segments"),
    ("s3://bucket/a/%2e%2e/b", "'..' segments"),
    ("runs:/abc/model", "cannot be a runs:/ URI"),
    ("s3://b/" + "x" * 2048, "length of the artifact path"),
])
def test_a_superuser_may_not_escape(admin_api, location, why):
    before = Experiment.objects.count()
    assert why in refused(admin_api.post("experiments/create", {"name": "escape", "artifact_location": location}))
    assert Experiment.objects.count() == before


def test_a_superuser_may_choose_an_outside_store_but_not_reuse_one(admin_api):
    exp_id = admin_api.post("experiments/create", {"name": "s3", "artifact_location": "s3://bucket/team"}).json()["experiment_id"]
    assert Experiment.objects.get(pk=exp_id).artifact_location == "s3://bucket/team"
    for overlapping in ("s3://bucket/team", "s3://bucket/team/", "s3://bucket/team/sub", "s3://bucket"):
        assert "overlaps another experiment's location" in refused(
            admin_api.post("experiments/create", {"name": "again", "artifact_location": overlapping}))
    assert admin_api.post("experiments/create", {"name": "other", "artifact_location": "s3://bucket/team2"}).status_code == 200


def test_the_real_client_sends_no_location_unless_asked(mlflow_client):
    """MlflowClient.create_experiment leaves artifact_location out when it is not given: unchanged client code works."""
    from mlflow.exceptions import MlflowException

    exp_id = mlflow_client.create_experiment("client-made")
    assert mlflow_client.get_experiment(exp_id).artifact_location == f"mlflow-artifacts:/{exp_id}"
    with pytest.raises(MlflowException) as caught:
        mlflow_client.create_experiment("client-chose", artifact_location="file:///etc")
    assert caught.value.error_code == "INVALID_PARAMETER_VALUE"
    assert "Only administrators" in caught.value.message
    assert not Experiment.objects.filter(name="client-chose").exists()
