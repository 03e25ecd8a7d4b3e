"""`GET /model-versions/get-artifact`: one file of a version's own copy, for readers of the model."""

import pytest

from registry import services
from tests import factories
from tests.registry.conftest import write_model_dir
from tests.tracking.test_artifacts import download, release
from tracking import services as tracking

URL = "/model-versions/get-artifact"


@pytest.fixture
def version(owner, _artifact_root):
    experiment = tracking.create_experiment(user=owner, name="mv-files")
    run = tracking.create_run(user=owner, experiment=experiment)
    write_model_dir(_artifact_root, f"{experiment.pk}/{run.run_uuid}/artifacts/model", extra={"page.html": "<b>x</b>"})
    services.create_registered_model(name="files", user=owner)
    mv = services.create_model_version(name="files", source=f"runs:/{run.run_uuid}/model", run_id=run.run_uuid, user=owner)
    mv.refresh_from_db()
    assert mv.status == "READY", mv.status_message
    return mv


def test_get_model_version_artifact(api, version):
    response = api.get(URL, {"name": "files", "version": "1", "path": "MLmodel"})
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain" and response["X-Content-Type-Options"] == "nosniff"
    assert b"python_function" in download(response)
    response = api.get(URL, {"name": "files", "version": "1", "path": "page.html"})
    assert response["Content-Type"] == "text/plain" and download(response) == b"<b>x</b>"
    response = api.get(URL, {"name": "files", "version": "1", "path": "model.pkl"})
    assert response.status_code == 200 and response["Content-Type"] == "application/octet-stream"
    release(response)


def test_get_model_version_artifact_errors_and_access(api, api_for, data_scientist, outsider, version):
    assert api.get(URL, {"name": "model", "version": 1, "path": "../path"}).json() == {
        "error_code": "INVALID_PARAMETER_VALUE", "message": "Invalid path"}
    assert api.get(URL, {"name": "files", "version": "1"}).status_code == 400
    assert api.get(URL, {"name": "files", "version": "9", "path": "MLmodel"}).status_code == 404
    assert api.get(URL, {"name": "files", "version": "1", "path": "nope"}).json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    outsider_response = api_for(outsider).get(URL, {"name": "files", "version": "1", "path": "MLmodel"})
    assert outsider_response.status_code == 404 and outsider_response.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    factories.grant(version.registered_model, "CAN_READ", user=data_scientist)
    response = api_for(data_scientist).get(URL, {"name": "files", "version": "1", "path": "MLmodel"})
    assert response.status_code == 200
    release(response)
