"""Every route MLflow's own server serves for tracking, the registry, logged models and artifacts is
served here, at the same path and method (the list is read from the installed mlflow server's Flask
app, so a new MLflow route in these areas fails this test until Stagegate serves it)."""

import re

import pytest

# MLflow features Stagegate does not offer (GenAI tracing and evaluation, the AI gateway, prompt
# optimisation, webhooks, jobs, scorers, workspaces, review queues, the React UI's own files).
OUT_OF_SCOPE = re.compile(
    r"/(traces|unified-traces|get-online-trace-details|get-trace-artifact|gateway|prompt-optimization"
    r"|webhooks|jobs|scorer|scorers|datasets|workspaces|issues|label-schemas|review-queues|ui-telemetry|demo|genai"
    r"|assistant)(/|$)"
    r"|^/(graphql|build/|static-files/)|^/$|/2\.0mlflow/"
)
SAMPLE = {"model_id": "m-0123456789abcdef0123456789abcdef", "tag_key": "k", "artifact_path": "1/abc/artifacts/x.txt"}


def mlflow_routes() -> list[tuple[str, str]]:
    from mlflow.server import app

    routes = set()
    for rule in app.url_map.iter_rules():
        if OUT_OF_SCOPE.search(rule.rule):
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: SAMPLE[m.group(1)], rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            routes.add((method, path))
    return sorted(routes)


def test_the_list_is_mlflows_whole_tracking_registry_and_artifact_surface():
    routes = mlflow_routes()
    paths = {path for _, path in routes}
    assert len(routes) >= 140
    for expected in ("/get-artifact", "/model-versions/get-artifact", "/ajax-api/2.0/mlflow/upload-artifact",
                     "/ajax-api/2.0/mlflow/metrics/get-history-bulk", "/api/2.0/mlflow/artifacts/list",
                     "/ajax-api/2.0/mlflow/experiments/search-datasets", "/api/3.0/mlflow/server-info",
                     "/ajax-api/2.0/mlflow/gateway-proxy"):
        assert expected in paths


@pytest.mark.django_db
def test_every_mlflow_route_is_served(client):
    """Anonymous calls: a served API route answers 401 (method allowed, auth needed), never the
    catch-all's ENDPOINT_NOT_FOUND, a 404 page or a 405; /health and /version answer 200."""
    missing = []
    for method, path in mlflow_routes():
        response = client.generic(method, path, b"{}", content_type="application/json")
        expected = 200 if path in ("/health", "/version") else 401
        if response.status_code != expected:
            missing.append(f"{method} {path} -> {response.status_code}")
    assert missing == []


@pytest.mark.django_db
def test_health_and_version_answer_head(client):
    assert client.head("/health").status_code == 200
    assert client.head("/version").status_code == 200
    assert client.post("/health").status_code == 405
