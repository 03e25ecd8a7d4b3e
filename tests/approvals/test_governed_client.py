"""The real mlflow client meets a governed Production stage.

The client's direct transition is refused with the guiding message; a data scientist requests the
transition over REST; a reviewer approves it; `models:/lr_wine_quality/Production` then loads v2.
"""

import warnings

import pytest
import requests

from approvals import services as gov
from core import permissions as perms
from core.services import create_api_token
from registry.demo import MODEL_NAME, load_demo
from registry.models import ModelVersion, StageTransition

pytestmark = [pytest.mark.client, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _close_server_connections():
    """live_server handles each request in a thread of its own: with a CONN_MAX_AGE those threads
    would leave their connections open and PostgreSQL could not drop the test database."""
    from django.db import connections

    previous = connections.settings["default"].get("CONN_MAX_AGE", 0)
    connections.settings["default"]["CONN_MAX_AGE"] = 0
    yield
    connections.settings["default"]["CONN_MAX_AGE"] = previous


def test_client_transition_refused_then_request_approved_and_loaded(live_server, mlflow_client, owner, admin,
                                                                      data_scientist, reviewer):
    import mlflow.pyfunc
    from mlflow.exceptions import MlflowException

    warnings.filterwarnings("ignore")
    load_demo(user=owner)  # v1 Production, v2 Staging, both READY
    model = ModelVersion.objects.get(registered_model__name=MODEL_NAME, version=2).registered_model
    gov.grant_permission(obj=model, level=perms.CAN_EDIT, user=data_scientist)
    gov.grant_permission(obj=model, level=perms.CAN_MANAGE_PRODUCTION_VERSIONS, user=reviewer)
    gov.set_stage_policy(user=admin, model_name=MODEL_NAME, stage="Production", min_approvals=1,
                         checks_spec=[{"type": "version_ready"}, {"type": "metric", "key": "rmse", "op": "<=", "value": 0.6}])  # v2 ~0.58

    # The unchanged tutorial call: refused, and the message says what to do instead.
    with pytest.raises(MlflowException) as refused:
        mlflow_client.transition_model_version_stage(MODEL_NAME, "2", "Production", archive_existing_versions=True)
    assert refused.value.error_code == "PERMISSION_DENIED"
    assert "need an approved transition request" in refused.value.message
    assert "POST /api/2.0/mlflow/transition-requests/create" in refused.value.message
    assert f"/models/{MODEL_NAME}/versions/2/" in refused.value.message
    assert mlflow_client.get_model_version(MODEL_NAME, "2").current_stage == "Staging"

    def post(user, path, payload):
        _, token = create_api_token(user=user, name="gov-client-test")
        response = requests.post(f"{live_server.url}/api/2.0/mlflow/{path}", json=payload,
                                 headers={"Authorization": f"Bearer {token}"}, timeout=30)
        return response.status_code, response.json()

    status, created = post(data_scientist, "transition-requests/create",
                           {"name": MODEL_NAME, "version": "2", "stage": "Production", "comment": "v2 beats v1"})
    assert status == 200 and created["request"]["user_id"] == "data_scientist"
    # The requester cannot approve their own request.
    status, denied = post(data_scientist, "transition-requests/approve",
                          {"name": MODEL_NAME, "version": "2", "stage": "Production", "archive_existing_versions": True})
    assert status == 403 and denied["error_code"] == "PERMISSION_DENIED"
    status, approved = post(reviewer, "transition-requests/approve",
                            {"name": MODEL_NAME, "version": "2", "stage": "Production", "archive_existing_versions": True,
                             "comment": "approved"})
    assert status == 200 and approved["activity"]["activity_type"] == "APPROVED_REQUEST", approved

    assert mlflow_client.get_model_version(MODEL_NAME, "2").current_stage == "Production"
    assert mlflow_client.get_model_version(MODEL_NAME, "1").current_stage == "Archived"
    loaded = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}/Production")
    v2 = ModelVersion.objects.get(registered_model__name=MODEL_NAME, version=2)
    assert loaded.metadata.run_id == v2.run_id
    assert StageTransition.objects.get(version=v2, to_stage="Production").request_id == int(created["request"]["id"])
