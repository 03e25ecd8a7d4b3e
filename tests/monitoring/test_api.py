"""Both webhook APIs: MLflow's (/webhooks, also driven by the real mlflow client) and Databricks'
(/registry-webhooks/*): shapes, errors, permissions; and Stagegate's monitoring endpoints."""

import json

import pytest

from monitoring.models import Webhook, WebhookDelivery

pytestmark = pytest.mark.django_db

MV_CREATED = {"entity": "MODEL_VERSION", "action": "CREATED"}


def create_mlflow(api, url, **extra):
    body = {"name": "ci-hook", "url": url, "events": [MV_CREATED], "secret": "xyz", **extra}
    return api.post("webhooks", body)


# --------------------------------------------------------------------------- MLflow's API


def test_mlflow_create_get_list_update_delete(admin_api, receiver):
    r = create_mlflow(admin_api, receiver.url, description="ci")
    assert r.status_code == 200, r.content
    hook = r.json()["webhook"]
    assert set(hook) == {"webhook_id", "name", "url", "events", "status", "creation_timestamp", "last_updated_timestamp", "description"}
    assert hook["events"] == [MV_CREATED] and hook["status"] == "ACTIVE" and hook["name"] == "ci-hook"
    assert "secret" not in json.dumps(r.json())
    wid = hook["webhook_id"]
    assert admin_api.get(f"webhooks/{wid}").json() == {"webhook": hook}

    r = admin_api.patch(f"webhooks/{wid}", {"status": "DISABLED", "events": [{"entity": "MODEL_VERSION_TAG", "action": "SET"}]})
    assert r.status_code == 200
    updated = r.json()["webhook"]
    assert updated["status"] == "DISABLED" and updated["events"] == [{"entity": "MODEL_VERSION_TAG", "action": "SET"}]
    assert updated["name"] == "ci-hook" and updated["last_updated_timestamp"] >= hook["last_updated_timestamp"]

    for i in range(3):
        create_mlflow(admin_api, receiver.url, name=f"h{i}")
    page1 = admin_api.get("webhooks", {"max_results": 3}).json()
    assert len(page1["webhooks"]) == 3 and page1["next_page_token"]
    page2 = admin_api.get("webhooks", {"max_results": 3, "page_token": page1["next_page_token"]}).json()
    assert len(page2["webhooks"]) == 1 and "next_page_token" not in page2
    ids = {w["webhook_id"] for w in page1["webhooks"] + page2["webhooks"]}
    assert len(ids) == 4

    assert admin_api.delete(f"webhooks/{wid}").json() == {}
    gone = admin_api.get(f"webhooks/{wid}")
    assert gone.status_code == 404
    assert gone.json() == {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": f"Webhook with ID {wid} not found."}
    assert Webhook.objects.filter(pk=wid).exists(), "soft delete keeps the delivery log"


def test_mlflow_errors(admin_api, api, receiver, settings):
    r = admin_api.post("webhooks", {"url": receiver.url, "events": [MV_CREATED]})
    assert r.status_code == 400 and r.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert "Missing value for required parameter 'name'" in r.json()["message"]
    r = admin_api.post("webhooks", {"name": "x", "url": receiver.url})
    assert "Missing value for required parameter 'events'" in r.json()["message"]
    r = create_mlflow(admin_api, receiver.url, name="-bad name")
    assert r.status_code == 400 and "Webhook name '-bad name' is invalid" in r.json()["message"]
    r = create_mlflow(admin_api, receiver.url, events=[{"entity": "MODEL_VERSION", "action": "EXCEEDED"}])
    assert r.status_code == 400 and "Invalid webhook event" in r.json()["message"]
    r = create_mlflow(admin_api, "ftp://example.com/x")
    assert r.status_code == 400 and "Invalid webhook URL scheme: 'ftp'" in r.json()["message"]
    settings.STAGEGATE_WEBHOOK_ALLOWED_HOSTS = []
    r = create_mlflow(admin_api, receiver.url)
    assert r.status_code == 400 and "STAGEGATE_WEBHOOK_ALLOWED_HOSTS" in r.json()["message"]
    r = admin_api.get("webhooks", {"max_results": 1001})
    assert r.status_code == 400 and r.json()["message"] == "max_results must be between 1 and 1000."
    # Registry-wide webhooks are an administrator's matter.
    r = create_mlflow(api, receiver.url)
    assert r.status_code == 403 and r.json()["error_code"] == "PERMISSION_DENIED"
    assert api.get("webhooks").status_code == 403
    assert admin_api.put("webhooks").status_code == 405
    assert admin_api.get("webhooks/not-a-uuid").status_code == 404


def test_mlflow_test_endpoint(admin_api, receiver):
    wid = create_mlflow(admin_api, receiver.url).json()["webhook"]["webhook_id"]
    receiver.respond((200, {}, b"pong"))
    r = admin_api.post(f"webhooks/{wid}/test", {})
    assert r.status_code == 200
    assert r.json() == {"result": {"success": True, "response_status": 200, "response_body": "pong"}}
    envelope = json.loads(receiver.requests[0]["body"])
    assert envelope["entity"] == "model_version" and envelope["data"]["name"] == "example_model"
    receiver.respond((500, {}, b"nope"))
    r = admin_api.post(f"webhooks/{wid}/test", {"event": {"entity": "MODEL_VERSION_TAG", "action": "SET"}})
    assert r.json()["result"] == {"success": False, "response_status": 500, "response_body": "nope"}
    assert json.loads(receiver.requests[1]["body"])["entity"] == "model_version_tag"
    assert WebhookDelivery.objects.filter(is_test=True).count() == 2


def test_real_mlflow_client(live_server, admin, receiver, monkeypatch):
    """The real mlflow client's webhook calls against the live server."""
    import mlflow
    from mlflow.entities.webhook import WebhookEvent, WebhookStatus

    from core.services import create_api_token

    _, raw = create_api_token(user=admin, name="mlflow")
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", raw)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    client = mlflow.MlflowClient(tracking_uri=live_server.url, registry_uri=live_server.url)
    hook = client.create_webhook(name="from-client", url=receiver.url, events=["model_version.created", "model_version_alias.created"],
                                 secret="client-secret", description="made by mlflow")
    assert hook.name == "from-client" and hook.status == WebhookStatus.ACTIVE
    assert hook.events == [WebhookEvent.from_str("model_version.created"), WebhookEvent.from_str("model_version_alias.created")]
    assert hook.secret is None
    fetched = client.get_webhook(hook.webhook_id)
    assert fetched.url == receiver.url and fetched.description == "made by mlflow"
    listed = client.list_webhooks()
    assert [w.webhook_id for w in listed] == [hook.webhook_id]
    updated = client.update_webhook(hook.webhook_id, status="DISABLED", description="off")
    assert updated.status == WebhookStatus.DISABLED and updated.description == "off"
    result = client.test_webhook(hook.webhook_id)
    assert result.success and result.response_status == 200
    # The registered model flow fires the webhook through the client too.
    client.update_webhook(hook.webhook_id, status="ACTIVE")
    client.create_registered_model("client-model")
    client.delete_webhook(hook.webhook_id)
    with pytest.raises(mlflow.exceptions.MlflowException, match="not found"):
        client.get_webhook(hook.webhook_id)


# --------------------------------------------------------------------------- Databricks' API


def test_databricks_create_update_list_delete(api_for, owner, outsider, admin_api, receiver, make_version):
    make_version("churn")
    api = api_for(owner)
    r = api.post("registry-webhooks/create", {
        "model_name": "churn", "events": ["MODEL_VERSION_CREATED", "TRANSITION_REQUEST_APPROVED"], "description": "slack",
        "http_url_spec": {"url": receiver.url, "secret": "shh", "authorization": "Bearer t", "enable_ssl_verification": False},
    })
    assert r.status_code == 200, r.content
    hook = r.json()["webhook"]
    assert set(hook) == {"id", "events", "description", "model_name", "status", "http_url_spec", "creation_timestamp", "last_updated_timestamp"}
    assert hook["http_url_spec"] == {"url": receiver.url, "enable_ssl_verification": False}
    assert hook["status"] == "ACTIVE" and hook["model_name"] == "churn"
    r = api.patch("registry-webhooks/update", {"id": hook["id"], "status": "TEST_MODE", "events": ["MODEL_VERSION_TRANSITIONED_STAGE"]})
    assert r.json()["webhook"]["status"] == "TEST_MODE" and r.json()["webhook"]["events"] == ["MODEL_VERSION_TRANSITIONED_STAGE"]
    listed = api.get("registry-webhooks/list", {"model_name": "churn"}).json()
    assert [w["id"] for w in listed["webhooks"]] == [hook["id"]]
    assert api.get("registry-webhooks/list", {"model_name": "other"}).json() == {"webhooks": []}
    assert [w["id"] for w in api.get("registry-webhooks/list", {"events": "MODEL_VERSION_TRANSITIONED_STAGE"}).json()["webhooks"]] == [hook["id"]]
    assert api.get("registry-webhooks/list", {"events": "MODEL_VERSION_CREATED"}).json() == {"webhooks": []}
    # The MLflow API does not list Databricks-style webhooks (their shapes differ).
    assert admin_api.get("webhooks").json() == {"webhooks": []}

    receiver.respond((200, {}, b"hi"))
    r = api.post("registry-webhooks/test", {"id": hook["id"]})
    assert r.json() == {"status_code": 200, "body": "hi"}
    test_payload = json.loads(receiver.requests[0]["body"])
    assert test_payload["event"] == "MODEL_VERSION_TRANSITIONED_STAGE" and test_payload["model_name"] == "churn"

    outsider_api = api_for(outsider)
    r = outsider_api.patch("registry-webhooks/update", {"id": hook["id"], "status": "DISABLED"})
    assert r.status_code == 404 and r.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    assert outsider_api.get("registry-webhooks/list").json() == {"webhooks": []}

    assert api.delete("registry-webhooks/delete", {"id": hook["id"]}).json() == {}
    assert api.delete("registry-webhooks/delete", {"id": hook["id"]}).status_code == 404


def test_databricks_rules(api_for, owner, data_scientist, admin_api, receiver, make_version):
    make_version("churn")
    api = api_for(owner)
    spec = {"url": receiver.url}
    r = api.post("registry-webhooks/create", {"events": ["MODEL_VERSION_CREATED"], "http_url_spec": spec})
    assert r.status_code == 403, "registry-wide needs an admin"
    r = api.post("registry-webhooks/create", {"model_name": "churn", "events": ["REGISTERED_MODEL_CREATED"], "http_url_spec": spec})
    assert r.status_code == 400 and "registry-wide" in r.json()["message"]
    r = api.post("registry-webhooks/create", {"model_name": "churn", "events": ["NOPE"], "http_url_spec": spec})
    assert r.status_code == 400 and "Invalid webhook event 'NOPE'" in r.json()["message"]
    r = api.post("registry-webhooks/create", {"model_name": "churn", "events": ["MODEL_VERSION_CREATED"]})
    assert "Missing value for required parameter 'http_url_spec'" in r.json()["message"]
    r = api.post("registry-webhooks/create", {"model_name": "churn", "events": ["MODEL_VERSION_CREATED"], "job_spec": {"job_id": "1"}})
    assert r.status_code == 400 and "job_spec" in r.json()["message"]
    r = api.post("registry-webhooks/create", {"model_name": "missing", "events": ["MODEL_VERSION_CREATED"], "http_url_spec": spec})
    assert r.status_code == 404
    r = api.post("registry-webhooks/create", {"model_name": "churn", "events": ["MODEL_VERSION_CREATED"], "status": "SLEEPING", "http_url_spec": spec})
    assert r.status_code == 400 and "Invalid webhook status" in r.json()["message"]
    # A reader of the model who cannot manage it may not attach webhooks.
    from approvals.services import grant_permission
    from registry.models import RegisteredModel

    grant_permission(obj=RegisteredModel.objects.get(name="churn"), level="CAN_EDIT", user=data_scientist)
    r = api_for(data_scientist).post("registry-webhooks/create", {"model_name": "churn", "events": ["MODEL_VERSION_CREATED"], "http_url_spec": spec})
    assert r.status_code == 403 and "CAN_MANAGE" in r.json()["message"]
    grant_permission(obj=RegisteredModel.objects.get(name="churn"), level="CAN_MANAGE", user=data_scientist)
    r = api_for(data_scientist).post("registry-webhooks/create", {"model_name": "churn", "events": ["MODEL_VERSION_CREATED"], "http_url_spec": spec})
    assert r.status_code == 200
    r = admin_api.post("registry-webhooks/create", {"events": ["REGISTERED_MODEL_CREATED"], "http_url_spec": spec})
    assert r.status_code == 200 and "model_name" not in r.json()["webhook"]


# --------------------------------------------------------------------------- deliveries over the API


def test_delivery_log_and_redeliver_endpoints(admin_api, api, receiver, make_version):
    wid = create_mlflow(admin_api, receiver.url).json()["webhook"]["webhook_id"]
    receiver.respond(500)
    make_version("m")
    r = admin_api.get("/api/2.0/stagegate/webhooks/deliveries", {"webhook_id": wid})
    [d] = r.json()["deliveries"]
    assert d["status"] == "RETRYING" and d["attempts"] == 1 and d["event"] == "model_version.created"
    assert d["attempt_log"][0]["status_code"] == 500 and d["attempt_log"][0]["latency_ms"] >= 0
    receiver.respond(200)
    r = admin_api.post("/api/2.0/stagegate/webhooks/deliveries/redeliver", {"delivery_id": d["delivery_id"]})
    assert r.status_code == 200
    assert WebhookDelivery.objects.get(pk=d["delivery_id"]).status == "DELIVERED"
    # Others do not see registry-wide webhooks' deliveries.
    assert api.get("/api/2.0/stagegate/webhooks/deliveries", {"webhook_id": wid}).status_code == 404
    assert api.post("/api/2.0/stagegate/webhooks/deliveries/redeliver", {"delivery_id": d["delivery_id"]}).status_code == 404
