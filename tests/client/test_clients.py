"""The real mlflow client, both supported lines, against a live Stagegate (tracking + artifacts + registry)."""

import getpass
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.services import create_api_token

ROOT = Path(__file__).resolve().parents[2]
FLOW = Path(__file__).with_name("flow.py")
MLFLOW2_PYTHON = ROOT / ".venv-mlflow2" / "bin" / "python"

pytestmark = [pytest.mark.client, pytest.mark.django_db(transaction=True)]


def run_flow(python: Path | str, live_server, user, tmp_path, *extra) -> dict:
    _, token = create_api_token(user=user, name="flow")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")},
        "MLFLOW_TRACKING_URI": live_server.url,
        "MLFLOW_TRACKING_TOKEN": token,
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "60",
        "GIT_PYTHON_REFRESH": "quiet",
    }
    result = subprocess.run([str(python), str(FLOW), str(tmp_path), *extra], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"client flow failed:\n{result.stdout[-4000:]}\n{result.stderr[-6000:]}"
    line = next(l for l in result.stdout.splitlines() if l.startswith("FACTS "))
    return json.loads(line[len("FACTS "):])


def check_tracking_facts(facts: dict, user) -> None:
    assert facts["predictions_equal"] is True
    assert facts["user_id"] == getpass.getuser()  # the client's mlflow.user; the caller is the run's owner
    assert facts["history"] == [[0, 0.9], [1, 0.8], [2, 0.7]]
    assert facts["search_rmse"] == [0.5, 0.7]
    assert "reports" in facts["artifacts"]["top"] and "notes" in facts["artifacts"]["top"]
    assert facts["artifacts"]["reports"] == ["reports/deep", "reports/summary.txt"]
    assert facts["artifacts"]["deep"] == ["reports/deep/data.csv"]
    assert facts["downloaded"] == ["deep/data.csv", "summary.txt"]
    assert facts["downloaded_text"] == "rmse went down\n"


def test_mlflow3_client_flow(live_server, owner, tmp_path):
    facts = run_flow(sys.executable, live_server, owner, tmp_path, "--register", "flow_model")
    assert facts["mlflow_version"].startswith("3.")
    assert facts["model_uri"].startswith("models:/m-")
    check_tracking_facts(facts, owner)
    assert (facts["registered_version"], facts["registered_status"]) == ("1", "READY")
    assert facts["registry_loads_equal"] is True


def test_mlflow2_client_flow(live_server, owner, tmp_path):
    assert MLFLOW2_PYTHON.exists(), "make test creates .venv-mlflow2 with the mlflow 2.22 client"
    facts = run_flow(MLFLOW2_PYTHON, live_server, owner, tmp_path, "--register", "flow_model_v2")
    assert facts["mlflow_version"].startswith("2.22")
    assert facts["model_uri"].startswith("runs:/")
    check_tracking_facts(facts, owner)
    assert (facts["registered_version"], facts["registered_status"]) == ("1", "READY")
    assert facts["registry_loads_equal"] is True
