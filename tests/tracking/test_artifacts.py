"""The MLflow artifact proxy (/api/2.0/mlflow-artifacts/) and /api/3.0/mlflow/server-info."""

import hashlib
import io
import json

import pytest

from tests.conftest import basic_header

BASE = "/api/2.0/mlflow-artifacts/artifacts"
RUN_ID = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def experiment(owner):
    from tracking.services import create_experiment

    return create_experiment(user=owner, name="artifact-tests")


@pytest.fixture
def run_dir(experiment):
    """Artifact paths start with the experiment id (sequences differ between databases and runs)."""
    return f"{experiment.pk}/{RUN_ID}/artifacts"


def body_json(response):
    return json.loads(b"".join(response.streaming_content) if response.streaming else response.content)


def download(response) -> bytes:
    data = b"".join(response.streaming_content)
    release(response)
    return data


def release(response):
    """Close the streamed file. (response.close() would also fire request_finished, closing the test's DB connection.)"""
    for closer in getattr(response, "_resource_closers", []):
        if isinstance(getattr(closer, "__self__", None), io.IOBase):
            closer()


def files_below(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


# --------------------------------------------------------------------------- upload, list, download, delete


def test_upload_list_download_delete_roundtrip(api, _artifact_root, run_dir):
    mlmodel = b"artifact_path: model\nflavors: {}\n"
    pickle = bytes(range(256)) * 10
    assert api.put(f"{BASE}/{run_dir}/model/MLmodel", mlmodel, content_type="text/plain").status_code == 200
    response = api.put(f"{BASE}/{run_dir}/model/model.pkl", pickle)
    assert response.status_code == 200
    assert response.content == b""
    assert "Content-Type" not in response
    assert (_artifact_root / run_dir / "model" / "model.pkl").read_bytes() == pickle

    listing = api.get(BASE, {"path": f"{run_dir}/model"})
    assert listing.status_code == 200
    assert listing.json() == {
        "files": [
            {"path": "MLmodel", "is_dir": False, "file_size": len(mlmodel)},
            {"path": "model.pkl", "is_dir": False, "file_size": len(pickle)},
        ]
    }

    text = api.get(f"{BASE}/{run_dir}/model/MLmodel")
    assert text.status_code == 200
    assert text["Content-Type"] == "text/plain"
    assert download(text) == mlmodel
    binary = api.get(f"{BASE}/{run_dir}/model/model.pkl")
    assert binary["Content-Type"] == "application/octet-stream"
    assert download(binary) == pickle

    deleted = api.delete(f"{BASE}/{run_dir}/model/model.pkl")
    assert deleted.status_code == 200
    assert deleted.json() == {}
    assert files_below(_artifact_root) == [f"{run_dir}/model/MLmodel"]
    assert api.get(f"{BASE}/{run_dir}/model/model.pkl").status_code == 404


def test_nested_directories_are_listed_as_dirs_without_size(api, run_dir):
    for name in ("model/MLmodel", "model/sub/deep.txt", "metrics.json"):
        assert api.put(f"{BASE}/{run_dir}/{name}", b"x" * 3).status_code == 200
    listing = api.get(BASE, {"path": run_dir}).json()
    assert listing == {
        "files": [
            {"path": "metrics.json", "is_dir": False, "file_size": 3},
            {"path": "model", "is_dir": True},
        ]
    }
    assert api.get(BASE, {"path": f"{run_dir}/model/sub"}).json() == {
        "files": [{"path": "deep.txt", "is_dir": False, "file_size": 3}]
    }
    # A trailing slash and a "./" segment name the same folder.
    assert api.get(BASE, {"path": f"./{run_dir}/model/"}).json()["files"][1] == {"path": "sub", "is_dir": True}


def test_put_overwrites_an_existing_file(api, _artifact_root, run_dir):
    api.put(f"{BASE}/{run_dir}/a.txt", b"first version")
    api.put(f"{BASE}/{run_dir}/a.txt", b"2nd")
    assert (_artifact_root / run_dir / "a.txt").read_bytes() == b"2nd"
    assert files_below(_artifact_root) == [f"{run_dir}/a.txt"]


def test_empty_file_upload(api, _artifact_root, run_dir):
    assert api.put(f"{BASE}/{run_dir}/empty.txt", b"").status_code == 200
    assert (_artifact_root / run_dir / "empty.txt").read_bytes() == b""
    assert api.get(BASE, {"path": run_dir}).json() == {"files": [{"path": "empty.txt", "is_dir": False, "file_size": 0}]}


def test_delete_a_directory_removes_the_tree(api, _artifact_root, run_dir):
    api.put(f"{BASE}/{run_dir}/model/MLmodel", b"m")
    api.put(f"{BASE}/{run_dir}/model/sub/x.bin", b"x")
    api.put(f"{BASE}/{run_dir}/keep.txt", b"k")
    assert api.delete(f"{BASE}/{run_dir}/model").json() == {}
    assert files_below(_artifact_root) == [f"{run_dir}/keep.txt"]
    # Deleting what is not there is fine, as on the real server.
    assert api.delete(f"{BASE}/{run_dir}/model").status_code == 200


def test_missing_directory_lists_as_empty_object(api, run_dir):
    # register_model("runs:/…") lists the (empty) model folder and needs 200 {} (spec §4.5).
    response = api.get(BASE, {"path": f"{run_dir}/model"})
    assert response.status_code == 200
    assert response.json() == {}


def test_listing_a_file_path_is_empty(api, run_dir):
    api.put(f"{BASE}/{run_dir}/a.txt", b"a")
    assert api.get(BASE, {"path": f"{run_dir}/a.txt"}).json() == {}


def test_list_root_without_path_is_for_admins(api, api_for, admin, experiment, run_dir):
    api.put(f"{BASE}/{run_dir}/a.txt", b"a")
    denied = api.get(BASE)
    assert denied.status_code == 403
    assert denied.json()["error_code"] == "PERMISSION_DENIED"
    assert api_for(admin).get(BASE).json() == {"files": [{"path": str(experiment.pk), "is_dir": True}]}


def test_missing_file_is_404_json(api, run_dir):
    response = api.get(f"{BASE}/{run_dir}/model/model.pkl")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {
        "error_code": "RESOURCE_DOES_NOT_EXIST",
        "message": f"No such artifact: '{run_dir}/model/model.pkl'",
    }


def test_downloading_a_directory_is_400(api, run_dir):
    api.put(f"{BASE}/{run_dir}/model/MLmodel", b"m")
    response = api.get(f"{BASE}/{run_dir}/model")
    assert response.status_code == 400
    assert response.json() == {
        "error_code": "INVALID_PARAMETER_VALUE",
        "message": f"Artifact path refers to a directory, not a file: '{run_dir}/model'",
    }


def test_download_headers(api, run_dir):
    api.put(f"{BASE}/{run_dir}/model/model.pkl", b"abc")
    response = api.get(f"{BASE}/{run_dir}/model/model.pkl")
    assert response["Content-Disposition"] == "attachment; filename=model.pkl"  # a token: unquoted, as MLflow
    assert response["Content-Length"] == "3"
    assert response["X-Content-Type-Options"] == "nosniff"
    release(response)


def test_upload_onto_a_directory_or_below_a_file_is_400(api, _artifact_root, run_dir):
    api.put(f"{BASE}/{run_dir}/model/MLmodel", b"m")
    onto_dir = api.put(f"{BASE}/{run_dir}/model", b"x")
    assert onto_dir.status_code == 400
    assert onto_dir.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    below_file = api.put(f"{BASE}/{run_dir}/model/MLmodel/x", b"x")
    assert below_file.status_code == 400
    assert files_below(_artifact_root) == [f"{run_dir}/model/MLmodel"]


# --------------------------------------------------------------------------- traversal


TRAVERSALS = [
    "../outside.txt",
    "1/../../outside.txt",
    "1/run/../../../outside.txt",
    "%2e%2e/outside.txt",
    "1/%2e%2e/%2e%2e/outside.txt",
    "%252e%252e/outside.txt",
    "1/%252e%252e%252f%252e%252e%252foutside.txt",
    "..%2foutside.txt",
    "..%5coutside.txt",
    "1\\..\\..\\outside.txt",
    "%5c..%5coutside.txt",
    "1/a%00.txt",
    "/etc/passwd",
    "%2fetc%2fpasswd",
    "C:/outside.txt",
]


@pytest.mark.parametrize("bad", TRAVERSALS)
def test_traversal_in_upload_path_is_rejected_and_nothing_is_written(api, _artifact_root, tmp_path, bad):
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    response = api.put(f"{BASE}/{bad}", b"pwned")
    assert response.status_code in (400, 404), response.content
    assert response["Content-Type"] == "application/json"
    if response.status_code == 400:
        body = response.json()
        assert body["error_code"] == "INVALID_PARAMETER_VALUE"
        # NUL (%00) is refused by the API's input gate before the view's path check.
        assert body["message"] == "Invalid path" or "%00" in bad and "NUL" in body["message"], body
    else:
        # "//etc/passwd"-style URLs never reach the view; the JSON catch-all answers.
        assert response.json()["error_code"] == "ENDPOINT_NOT_FOUND"
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before
    assert not (tmp_path / "outside.txt").exists()
    assert not _artifact_root.exists() or files_below(_artifact_root) == []


@pytest.mark.parametrize("bad", ["..", "1/../..", "%2e%2e", "%252e%252e", "..\\..", "1/a\x00b", "/etc", "%2fetc"])
def test_traversal_in_list_path_is_400(api, bad):
    response = api.get(BASE, {"path": bad})
    assert response.status_code == 400
    # NUL never reaches the view: the API's input gate refuses it in any parameter.
    message = 'Invalid value "1/a\\u0000b" for parameter \'path\' supplied: text may not contain NUL characters or unpaired surrogates.'
    assert response.json() == {"error_code": "INVALID_PARAMETER_VALUE", "message": message if "\x00" in bad else "Invalid path"}


@pytest.mark.parametrize("method", ["get", "delete"])
@pytest.mark.parametrize("bad", ["%2e%2e/secret", "1/%252e%252e/%252e%252e/secret", "1/..%5c..%5csecret"])
def test_traversal_in_download_and_delete_is_400(api, tmp_path, method, bad):
    secret = tmp_path / "secret"
    secret.write_bytes(b"do not touch")
    response = getattr(api, method)(f"{BASE}/{bad}")
    assert response.status_code == 400
    assert response.json() == {"error_code": "INVALID_PARAMETER_VALUE", "message": "Invalid path"}
    assert secret.read_bytes() == b"do not touch"


def test_delete_of_the_root_is_refused(api, _artifact_root, run_dir):
    api.put(f"{BASE}/{run_dir}/a.txt", b"a")
    response = api.delete(f"{BASE}/.")
    assert response.status_code == 400
    assert files_below(_artifact_root) == [f"{run_dir}/a.txt"]


# --------------------------------------------------------------------------- auth, methods, interrupted uploads


@pytest.mark.parametrize(
    "method,url",
    [("get", BASE), ("get", f"{BASE}/1/a.txt"), ("put", f"{BASE}/1/a.txt"), ("delete", f"{BASE}/1/a.txt")],
)
def test_auth_required(anon_api, _artifact_root, method, url):
    response = getattr(anon_api, method)(url)
    assert response.status_code == 401
    assert response.json()["error_code"] == "UNAUTHENTICATED"
    assert "WWW-Authenticate" in response
    assert not (_artifact_root / "1").exists()


def test_bad_credentials_are_401(client, owner):
    response = client.get(BASE, HTTP_AUTHORIZATION=basic_header("owner", "wrong"))
    assert response.status_code == 401


def test_basic_auth_works(client, owner, _artifact_root, run_dir):
    response = client.generic(
        "PUT", f"{BASE}/{run_dir}/a.txt", b"hello", content_type="text/plain", HTTP_AUTHORIZATION=basic_header("owner")
    )
    assert response.status_code == 200
    assert (_artifact_root / run_dir / "a.txt").read_bytes() == b"hello"


def test_session_can_read_but_not_write(client, api, owner, _artifact_root, run_dir):
    api.put(f"{BASE}/{run_dir}/a.txt", b"a")
    client.force_login(owner)
    assert client.get(BASE, {"path": run_dir}).json()["files"][0]["path"] == "a.txt"
    assert client.generic("PUT", f"{BASE}/{run_dir}/b.txt", b"x").status_code == 401
    assert files_below(_artifact_root) == [f"{run_dir}/a.txt"]


# --------------------------------------------------------------------------- who may touch which folder


def test_upload_into_a_missing_experiment_is_404(api, experiment, _artifact_root):
    missing = experiment.pk + 1000
    response = api.put(f"{BASE}/{missing}/{RUN_ID}/artifacts/a.txt", b"a")
    assert response.status_code == 404
    assert response.json() == {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": f"No Experiment with id={missing} exists"}
    assert not _artifact_root.exists() or files_below(_artifact_root) == []


@pytest.mark.parametrize("exp", ["99999999999999999999999", "0000", "007", "\u0661"])
def test_non_canonical_experiment_folders_are_not_experiments(api, exp):
    # Not an alias of experiment 0/7/1: an unclaimed folder, for administrators only.
    response = api.get(BASE, {"path": f"{exp}/run/artifacts"})
    assert response.status_code == 403
    assert response.json()["error_code"] == "PERMISSION_DENIED"


def test_experiment_id_beyond_bigint_is_a_clean_404(api):
    response = api.get(BASE, {"path": "9223372036854775808/run/artifacts"})
    assert response.status_code == 404
    assert response.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"


def test_experiment_folders_ask_tracking_access(api, run_dir, experiment, monkeypatch):
    from tracking import access

    calls = []
    real = access.get_experiment_for_user

    def spy(user, experiment_id, *, action="read"):
        calls.append((user.username, experiment_id, action))
        return real(user, experiment_id, action=action)

    monkeypatch.setattr(access, "get_experiment_for_user", spy)
    api.put(f"{BASE}/{run_dir}/a.txt", b"a")
    release(api.get(f"{BASE}/{run_dir}/a.txt"))
    api.get(BASE, {"path": run_dir})
    api.delete(f"{BASE}/{run_dir}/a.txt")
    exp = str(experiment.pk)
    assert calls == [("owner", exp, "edit"), ("owner", exp, "read"), ("owner", exp, "read"), ("owner", exp, "edit")]


class UnreadableBody:
    def read(self, size=-1):
        raise AssertionError("the body was read although access was denied")

    readline = read


def test_denied_experiment_access_blocks_before_the_body_is_read(api, run_dir, monkeypatch, _artifact_root):
    from core.errors import PermissionDenied
    from tracking import access

    def deny(user, experiment_id, *, action="read"):
        raise PermissionDenied(f"Permission denied for experiment {experiment_id}.")

    monkeypatch.setattr(access, "get_experiment_for_user", deny)
    for response in (
        api.put(f"{BASE}/{run_dir}/a.txt", b"a", **{"wsgi.input": UnreadableBody()}),
        api.get(f"{BASE}/{run_dir}/a.txt"),
        api.get(BASE, {"path": run_dir}),
        api.delete(f"{BASE}/{run_dir}"),
    ):
        assert response.status_code == 403
        assert response.json()["error_code"] == "PERMISSION_DENIED"
    assert not _artifact_root.exists() or files_below(_artifact_root) == []


@pytest.mark.parametrize("persona", ["owner", "admin"])
def test_registry_copies_are_read_only_through_the_proxy(request, api_for, persona, _artifact_root):
    from core import artifacts

    artifacts.save_stream("registry/1/1/MLmodel", io.BytesIO(b"flavors: {}"))
    client = api_for(request.getfixturevalue(persona))
    assert client.get(BASE, {"path": "registry/1/1"}).json() == {"files": [{"path": "MLmodel", "is_dir": False, "file_size": 11}]}
    assert download(client.get(f"{BASE}/registry/1/1/MLmodel")) == b"flavors: {}"
    for response in (client.put(f"{BASE}/registry/1/1/MLmodel", b"tampered"), client.delete(f"{BASE}/registry/1/1")):
        assert response.status_code == 403
        assert response.json() == {"error_code": "PERMISSION_DENIED", "message": "Permission denied: registered model versions are read-only."}
    assert (_artifact_root / "registry/1/1/MLmodel").read_bytes() == b"flavors: {}"


def test_registry_app_can_install_its_own_rule(api, _artifact_root):
    from core import artifacts
    from core.errors import PermissionDenied

    def per_model(user, path, *, write):
        raise PermissionDenied(f"no access to {path}")

    previous = artifacts._ACCESS_RULES["registry"]
    artifacts.register_access_rule("registry", per_model)
    try:
        # The proxy's provisional rule never replaces one the registry installed.
        from tracking.artifacts import registry_rule

        artifacts.register_access_rule("registry", registry_rule, replace=False)
        response = api.get(BASE, {"path": "registry/1/1"})
        assert response.status_code == 403
        assert response.json()["message"] == "no access to registry/1/1"
    finally:
        artifacts.register_access_rule("registry", previous)


@pytest.mark.parametrize("path", ["misc/a.txt", "models/m-1/a.txt", "registry2/x"])
def test_unclaimed_prefixes_are_for_admins_only(api, api_for, admin, path, _artifact_root):
    denied = api.put(f"{BASE}/{path}", b"a")
    assert denied.status_code == 403
    assert denied.json() == {"error_code": "PERMISSION_DENIED", "message": f"Permission denied: only administrators may write '{path}'."}
    assert api.get(f"{BASE}/{path}").status_code == 403
    assert api_for(admin).put(f"{BASE}/{path}", b"a").status_code == 200
    assert files_below(_artifact_root) == [path]


@pytest.mark.parametrize("method,url", [("post", f"{BASE}/1/a.txt"), ("patch", f"{BASE}/1/a.txt"), ("post", BASE), ("put", BASE)])
def test_wrong_method_is_405_json(api, method, url):
    response = getattr(api, method)(url)
    assert response.status_code == 405
    assert response["Content-Type"] == "application/json"
    assert response.json()["error_code"] == "BAD_REQUEST"
    assert "Allow" in response


class BrokenBody:
    """A request body whose connection drops after `good` bytes."""

    def __init__(self, good: int, *, error: bool):
        self.data = io.BytesIO(b"z" * good)
        self.error = error

    def read(self, size=-1):
        chunk = self.data.read(size)
        if chunk:
            return chunk
        if self.error:
            raise ConnectionResetError("connection reset by peer")
        return b""

    def readline(self, size=-1):
        return self.read(size)


@pytest.mark.parametrize("error", [True, False], ids=["reset", "short-body"])
def test_interrupted_upload_leaves_no_file(api, _artifact_root, error, run_dir):
    api.put(f"{BASE}/{run_dir}/model.pkl", b"previous")
    response = api.put(
        f"{BASE}/{run_dir}/model.pkl",
        b"",
        CONTENT_LENGTH=str(5 * 1024 * 1024),
        **{"wsgi.input": BrokenBody(3 * 1024 * 1024, error=error)},
    )
    assert response.status_code == 400
    assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    # The earlier file is intact and no temp file is left in the folder.
    assert files_below(_artifact_root) == [f"{run_dir}/model.pkl"]
    assert (_artifact_root / run_dir / "model.pkl").read_bytes() == b"previous"


def test_interrupted_first_upload_leaves_nothing(api, _artifact_root, run_dir):
    response = api.put(
        f"{BASE}/{run_dir}/new.bin", b"", CONTENT_LENGTH="1000", **{"wsgi.input": BrokenBody(10, error=True)}
    )
    assert response.status_code == 400
    assert files_below(_artifact_root) == []
    assert api.get(BASE, {"path": run_dir}).json() == {}


def test_chunked_upload_without_length_is_decoded(api, _artifact_root, run_dir):
    """Behind wsgiref (runserver, live_server) the body arrives still chunked: decoded here."""
    body = io.BytesIO(b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n")
    response = api.put(f"{BASE}/{run_dir}/a.bin", b"", HTTP_TRANSFER_ENCODING="chunked", **{"wsgi.input": body})
    assert response.status_code == 200
    assert (_artifact_root / run_dir / "a.bin").read_bytes() == b"hello world"


def test_chunked_upload_decoded_by_the_server_is_read_to_its_end(api, _artifact_root, run_dir):
    """gunicorn decodes chunked bodies itself and says so with wsgi.input_terminated."""
    body = io.BytesIO(b"already decoded")
    response = api.put(f"{BASE}/{run_dir}/b.bin", b"", HTTP_TRANSFER_ENCODING="chunked",
                       **{"wsgi.input": body, "wsgi.input_terminated": True})
    assert response.status_code == 200
    assert (_artifact_root / run_dir / "b.bin").read_bytes() == b"already decoded"


@pytest.mark.parametrize("raw", [b"zz\r\nhello\r\n0\r\n\r\n", b"5\r\nhel", b"5\r\nhelloXX0\r\n\r\n"])
def test_malformed_chunked_upload_keeps_nothing(api, _artifact_root, run_dir, raw):
    response = api.put(f"{BASE}/{run_dir}/c.bin", b"", HTTP_TRANSFER_ENCODING="chunked", **{"wsgi.input": io.BytesIO(raw)})
    assert response.status_code == 400 and response.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert files_below(_artifact_root) == []


def test_upload_is_read_in_chunks_never_as_a_whole_body(api, _artifact_root, monkeypatch, run_dir):
    from django.core.handlers.wsgi import WSGIRequest

    def forbidden(self):
        raise AssertionError("request.body must not be read for uploads")

    monkeypatch.setattr(WSGIRequest, "body", property(forbidden))
    payload = hashlib.sha256(b"seed").digest() * 100_000  # 3.2 MB, more than one chunk
    assert api.put(f"{BASE}/{run_dir}/big.bin", payload).status_code == 200
    assert (_artifact_root / run_dir / "big.bin").read_bytes() == payload


# --------------------------------------------------------------------------- server-info


def test_server_info(api):
    response = api.get("/api/3.0/mlflow/server-info")
    assert response.status_code == 200
    info = response.json()
    assert info["multipart_uploads_enabled"] is False
    assert info["multipart_downloads_enabled"] is False
    assert info["artifacts_presigned_only"] is False
    assert info["artifact_serving_enabled"] is True
    assert info["store_type"] == "SqlStore"
    # Same keys as the real 3.18 server (spec §4.4).
    assert set(info) == {
        "store_type", "workspaces_enabled", "trace_archival_enabled", "multipart_uploads_enabled",
        "multipart_downloads_enabled", "artifact_serving_enabled", "skill_content_max_size",
        "skill_content_max_files", "presigned_upload_run_id_supported", "presigned_upload_model_id_supported",
        "model_artifact_presigned_downloads_supported", "features_enabled", "tracking_auth",
        "artifacts_presigned_only",
    }


def test_server_info_requires_auth(anon_api):
    response = anon_api.get("/api/3.0/mlflow/server-info")
    assert response.status_code == 401
    assert response.json()["error_code"] == "UNAUTHENTICATED"


def test_server_info_wrong_method(api):
    assert api.post("/api/3.0/mlflow/server-info").status_code == 405


# --------------------------------------------------------------------------- the real mlflow client


@pytest.mark.client
@pytest.mark.django_db(transaction=True)
def test_mlflow_client_artifact_repository_roundtrip(mlflow_client, tmp_path, _artifact_root, run_dir):
    from mlflow.store.artifact.mlflow_artifacts_repo import MlflowArtifactsRepository

    src = tmp_path / "src"
    (src / "model" / "sub").mkdir(parents=True)
    (src / "model" / "MLmodel").write_text("artifact_path: model\n")
    (src / "model" / "sub" / "weights.bin").write_bytes(b"\x00\x01" * 5000)
    repo = MlflowArtifactsRepository(f"mlflow-artifacts:/{run_dir}")
    repo.log_artifacts(str(src))
    assert files_below(_artifact_root) == [f"{run_dir}/model/MLmodel", f"{run_dir}/model/sub/weights.bin"]

    listed = repo.list_artifacts("model")
    assert [(f.path, f.is_dir, f.file_size) for f in listed] == [("model/MLmodel", False, 21), ("model/sub", True, None)]
    out = tmp_path / "out"
    out.mkdir()
    repo.download_artifacts("model", dst_path=str(out))
    assert (out / "model" / "sub" / "weights.bin").read_bytes() == b"\x00\x01" * 5000
    assert repo.list_artifacts("missing") == []

    repo.delete_artifacts("model/sub")
    assert files_below(_artifact_root) == [f"{run_dir}/model/MLmodel"]


# --------------------------------------------------------------------------- remote (S3) storage behind the proxy


def test_download_from_s3_streams_with_content_length(api, run_dir):
    from botocore.response import StreamingBody
    from botocore.stub import Stubber
    from django.core.files.storage import storages
    from storages.backends.s3 import S3Storage

    storage = S3Storage(bucket_name="stagegate", access_key="test", secret_key="test", region_name="us-east-1")
    storages._storages["artifacts"] = storage
    data = bytes(range(256)) * 40
    with Stubber(storage.connection.meta.client) as stubber:
        stubber.add_response(
            "get_object",
            {"Body": StreamingBody(io.BytesIO(data), len(data)), "ContentLength": len(data)},
            {"Bucket": "stagegate", "Key": f"{run_dir}/model/model.pkl"},
        )
        response = api.get(f"{BASE}/{run_dir}/model/model.pkl")
        assert response.status_code == 200
        assert response.streaming
        assert response["Content-Length"] == str(len(data))
        assert response["Content-Type"] == "application/octet-stream"
        assert download(response) == data
        stubber.assert_no_pending_responses()
