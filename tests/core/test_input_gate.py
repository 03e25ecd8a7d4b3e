"""The API's input gate (core.api + core.validation) and the name rules: MLflow's error JSON, never a 5xx,
and nothing written by a refused request."""

import base64
import json

import pytest

from core import validation
from registry.models import RegisteredModel
from tracking.models import Experiment, LoggedModel, Metric, Run, RunTag

pytestmark = pytest.mark.django_db

NUL_TEXT = "text may not contain NUL characters or unpaired surrogates."


def refused(response, status=400, code="INVALID_PARAMETER_VALUE") -> str:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"error_code", "message"} and body["error_code"] == code, body
    return body["message"]


def raw(api, path, body: bytes, method="post"):
    return api.client.generic(method.upper(), "/api/2.0/mlflow/" + path, body, content_type="application/json",
                              CONTENT_TYPE="application/json", **api.headers)


@pytest.fixture
def run_id(api):
    exp_id = api.post("experiments/create", {"name": "gate"}).json()["experiment_id"]
    return api.post("runs/create", {"experiment_id": exp_id}).json()["run"]["info"]["run_id"]


# --------------------------------------------------------------------------- strings


@pytest.mark.parametrize("bad", ["a\x00b", "\x00", "x\ud800", "\udfff"])
def test_nul_and_lone_surrogates_in_json_are_refused_before_any_write(api, bad):
    message = refused(api.post("registered-models/create", {"name": bad}))
    assert message == f"Invalid value {json.dumps(bad)} for parameter 'name' supplied: {NUL_TEXT}"
    # Anywhere in the tree, keys too.
    assert "tags[0].value" in refused(api.post("registered-models/create", {"name": "ok", "tags": [{"key": "k", "value": bad}]}))
    refused(api.post("registered-models/create", {"name": "ok", bad: 1}))
    assert not RegisteredModel.objects.exists()


def test_a_valid_surrogate_pair_is_one_character_and_fine(api):
    # json.dumps writes 🚀 as the pair \ud83d\ude80, which JSON decoding joins into one code point.
    assert api.post("registered-models/create", {"name": "rocket 🚀"}).status_code == 200


def test_nul_in_query_strings_filters_and_url_arguments(api, run_id):
    assert "'name'" in refused(api.get("registered-models/get", {"name": "a\x00"}))
    refused(api.get("runs/search", {"filter": "tags.t = '\x00'"}))
    refused(api.post("runs/search", {"filter": "params.p = 'a\x00'"}))
    refused(api.get("/api/2.0/stagegate/stage-policies", {"model_name": "name LIKE '%\x00'"}))
    model_id = api.post("logged-models", {"experiment_id": "0"}).json()["model"]["info"]["model_id"]
    assert "'tag_key'" in refused(api.delete(f"logged-models/{model_id}/tags/a%00b"))


# --------------------------------------------------------------------------- the body


def test_a_malformed_body_creates_nothing(api):
    runs = Run.objects.count()
    for body in (b"{not json", b"garbage", b"\xff\xfe{}", b"[1, 2]", b"5", b'{"experiment_id": "0"'):
        assert refused(raw(api, "runs/create", body)).startswith("Malformed JSON request body:")
    assert Run.objects.count() == runs


def test_empty_null_and_double_encoded_bodies_are_read_as_mlflow_reads_them(api):
    assert refused(raw(api, "registered-models/create", b"")).startswith("Missing value for required parameter 'name'")
    assert refused(raw(api, "registered-models/create", b"null")).startswith("Missing value")
    # Older clients post their JSON double-encoded as a string; MLflow decodes it a second time.
    assert raw(api, "registered-models/create", json.dumps(json.dumps({"name": "twice"})).encode()).status_code == 200


def test_nesting_is_bounded_without_recursion(api):
    deep = b'{"name": "x", "tags": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    assert refused(raw(api, "registered-models/create", deep)) == "Malformed JSON request body: nested deeper than 64 levels."
    ok = b'{"name": "x", "description": "' + b"[" * 500 + b'", "other": ' + b"[" * 60 + b"]" * 60 + b"}"
    assert raw(api, "registered-models/create", ok).status_code == 200  # brackets in strings do not count
    assert not validation.json_too_deep(b"[" * 64 + b"]" * 64)
    assert validation.json_too_deep(b"[" * 65 + b"]" * 65)
    assert validation.json_too_deep(b'{"a": "\\"", "b": ' + b"{" * 65)  # escaped quotes do not end a string


def test_a_body_over_the_limit_is_413_json(api, run_id, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    body = {"run_id": run_id, "key": "big", "value": "v" * 20_000}
    message = refused(api.post("runs/log-parameter", body), status=413, code="RESOURCE_EXHAUSTED")
    assert message == "The request body is larger than this server accepts (10000 bytes)."
    batch = {"run_id": run_id, "metrics": [{"key": "m", "value": 1.0, "timestamp": i} for i in range(1001)]}
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
    assert "at most 1000 metrics" in refused(api.post("runs/log-batch", batch))
    assert not RunTag.objects.filter(key="big").exists() and not Metric.objects.exists()


# --------------------------------------------------------------------------- integers


def test_integers_beyond_int64_are_refused(api, run_id):
    huge = 99999999999999999999
    point = {"run_id": run_id, "key": "m", "value": 1.0, "timestamp": 1, "step": 0}
    message = refused(api.post("runs/log-metric", {**point, "timestamp": huge}))
    assert message == (f"Invalid value {huge} for parameter 'timestamp' supplied: integers must be between "
                       f"{validation.INT64_MIN} and {validation.INT64_MAX} (64-bit).")
    refused(api.post("runs/log-metric", {**point, "step": -(2**63) - 1}))
    refused(api.post("runs/log-metric", {**point, "step": str(2**63)}))  # strings are converted, then checked
    assert "metrics[0].step" in refused(api.post("runs/log-batch", {"run_id": run_id, "metrics": [{**point, "step": 2**63}]}))
    refused(api.post("runs/log-batch", {"run_id": run_id, "metrics": [{**point, "timestamp": str(huge)}]}))
    refused(api.get("/api/2.0/stagegate/registered-models/stage-at", {"name": "m", "stage": "Production", "timestamp": str(huge)}))
    refused(api.get("runs/search", {"max_results": str(huge)}))
    # MLflow's own limit: a metric's timestamp is nonnegative.
    assert "Timestamp must be a nonnegative long" in refused(api.post("runs/log-metric", {**point, "timestamp": -1}))
    assert not Metric.objects.exists()
    # The edges themselves are fine.
    assert api.post("runs/log-metric", {**point, "timestamp": validation.INT64_MAX, "step": validation.INT64_MIN}).status_code == 200


def test_a_blank_order_by_field_in_logged_model_search(api):
    message = refused(api.post("logged-models/search", {"experiment_ids": ["0"], "order_by": [{"field_name": " "}]}))
    assert message == "Missing value for required parameter 'order_by[0].field_name'."


# --------------------------------------------------------------------------- names


BAD_NAMES = ["a\nb", "tab\there", "\u202eevil", "x\u2066y\u2069", "cr\r", "\x1b[31m"]


@pytest.mark.parametrize("bad", BAD_NAMES)
def test_names_refuse_control_and_bidi_characters(api, run_id, bad):
    assert "control characters" in refused(api.post("registered-models/create", {"name": bad}))
    assert "control characters" in refused(api.post("experiments/create", {"name": bad}))
    refused(api.post("runs/create", {"experiment_id": "0", "run_name": bad}))
    refused(api.post("runs/update", {"run_id": run_id, "run_name": bad}))
    refused(api.post("runs/set-tag", {"run_id": run_id, "key": "mlflow.runName", "value": bad}))
    refused(api.post("runs/set-tag", {"run_id": run_id, "key": bad, "value": "x"}))
    api.post("registered-models/create", {"name": "fine"})
    refused(api.post("registered-models/rename", {"name": "fine", "new_name": bad}))
    refused(api.post("registered-models/set-tag", {"name": "fine", "key": bad, "value": "x"}))
    refused(api.post("registered-models/alias", {"name": "fine", "alias": bad, "version": "1"}))
    assert list(RegisteredModel.objects.values_list("name", flat=True)) == ["fine"]
    assert not Experiment.objects.filter(name=bad).exists() and not Run.objects.filter(name=bad).exists()
    # Tag values are free text: a note may have newlines.
    assert api.post("runs/set-tag", {"run_id": run_id, "key": "mlflow.note.content", "value": bad}).status_code == 200


@pytest.mark.parametrize("bad", [".", "..", "a/../b", "/abs", "a//b", "a/", "./a"])
def test_model_names_follow_mlflows_path_rule(api, bad):
    message = refused(api.post("registered-models/create", {"name": bad}))
    assert message.startswith(f"Invalid value {json.dumps(bad)} for parameter 'name' supplied: Names may be treated as files")
    assert not RegisteredModel.objects.exists()


def test_model_names_whose_page_is_another_page_are_refused(api):
    for bad in ("x/versions/1", "x/permissions", "x/compare"):
        assert "the address of its page" in refused(api.post("registered-models/create", {"name": bad}))
    assert not RegisteredModel.objects.exists()


AWKWARD = ["team/churn model", "100% sure?", "a#b", "模型 🚀", "a:b", "x/edit/y", "versions", "a b/c d", "q?x=1&y=2"]


def test_awkward_but_valid_model_names_are_accepted(api):
    for name in AWKWARD:
        assert api.post("registered-models/create", {"name": name}).status_code == 200, name
        assert api.get("registered-models/get", {"name": name}).json()["registered_model"]["name"] == name


@pytest.mark.parametrize("key", ["a\nb", "a\n", "a=b", "a(b)", "../x", "/x", "a//b"])
def test_param_metric_and_tag_keys_follow_mlflows_rule(api, run_id, key):
    refused(api.post("runs/log-parameter", {"run_id": run_id, "key": key, "value": "1"}))
    refused(api.post("runs/log-metric", {"run_id": run_id, "key": key, "value": 1.0, "timestamp": 1}))
    refused(api.post("runs/set-tag", {"run_id": run_id, "key": key, "value": "x"}))
    refused(api.post("experiments/set-experiment-tag", {"experiment_id": "0", "key": key, "value": "x"}))


def test_mlflows_key_characters_are_accepted(api, run_id):
    for key in ("alpha", "a/b", "a.b-c_d", "with space", "ns:key", "模型"):
        assert api.post("runs/log-parameter", {"run_id": run_id, "key": key, "value": "1"}).status_code == 200, key


def test_logged_model_names_follow_mlflows_rule(api):
    message = refused(api.post("logged-models", {"experiment_id": "0", "name": "a/b"}))
    assert message.startswith("Invalid model name ('a/b') provided. Model name must be a non-empty string")
    assert not LoggedModel.objects.exists()
    assert api.post("logged-models", {"experiment_id": "0", "name": "my-model"}).status_code == 200


def test_json_inside_strings_is_bounded_too(api, run_id):
    deep = "[" * 20_000 + "]" * 20_000  # json.loads: RecursionError
    token = base64.urlsafe_b64encode(deep.encode()).decode()
    assert "Invalid page token" in refused(api.get("registered-models/search", {"page_token": token}))
    assert "model_json" in refused(api.post("runs/log-model", {"run_id": run_id, "model_json": deep}))
    assert api.post("runs/log-model", {"run_id": run_id, "model_json": '{"flavors": {}}'}).status_code == 200
