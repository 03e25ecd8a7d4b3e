"""The MLflow artifact proxy (/api/2.0/mlflow-artifacts/) and /api/3.0/mlflow/server-info."""

import hashlib
import io
import json

import pytest

from tests.conftest import basic_header

BASE = "/api/2.0/mlflow-artifacts/artifacts"
RUN_DIR = "1/0123456789abcdef0123456789abcdef/artifacts"


def body_json(response):
    return json.loads(b"".join(response.streaming_content) if response.streaming else response.content)


def download(response) -> bytes:
    return b"".join(response.streaming_content)


def files_below(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


# --------------------------------------------------------------------------- upload, list, download, delete


def test_upload_list_download_delete_roundtrip(api, _artifact_root):
    mlmodel = b"artifact_path: model\nflavors: {}\n"
    pickle = bytes(range(256)) * 10
    assert api.put(f"{BASE}/{RUN_DIR}/model/MLmodel", mlmodel, content_type="text/plain").status_code == 200
    response = api.put(f"{BASE}/{RUN_DIR}/model/model.pkl", pickle)
    assert response.status_code == 200
    assert response.content == b""
    assert "Content-Type" not in response
    assert (_artifact_root / RUN_DIR / "model" / "model.pkl").read_bytes() == pickle

    listing = api.get(BASE, {"path": f"{RUN_DIR}/model"})
    assert listing.status_code == 200
    assert listing.json() == {
        "files": [
            {"path": "MLmodel", "is_dir": False, "file_size": len(mlmodel)},
            {"path": "model.pkl", "is_dir": False, "file_size": len(pickle)},
        ]
    }

    text = api.get(f"{BASE}/{RUN_DIR}/model/MLmodel")
    assert text.status_code == 200
    assert text["Content-Type"] == "text/plain"
    assert download(text) == mlmodel
    binary = api.get(f"{BASE}/{RUN_DIR}/model/model.pkl")
    assert binary["Content-Type"] == "application/octet-stream"
    assert download(binary) == pickle

    deleted = api.delete(f"{BASE}/{RUN_DIR}/model/model.pkl")
    assert deleted.status_code == 200
    assert deleted.json() == {}
    assert files_below(_artifact_root) == [f"{RUN_DIR}/model/MLmodel"]
    assert api.get(f"{BASE}/{RUN_DIR}/model/model.pkl").status_code == 404


def test_nested_directories_are_listed_as_dirs_without_size(api):
    for name in ("model/MLmodel", "model/sub/deep.txt", "metrics.json"):
        assert api.put(f"{BASE}/{RUN_DIR}/{name}", b"x" * 3).status_code == 200
    listing = api.get(BASE, {"path": RUN_DIR}).json()
    assert listing == {
        "files": [
            {"path": "metrics.json", "is_dir": False, "file_size": 3},
            {"path": "model", "is_dir": True},
        ]
    }
    assert api.get(BASE, {"path": f"{RUN_DIR}/model/sub"}).json() == {
        "files": [{"path": "deep.txt", "is_dir": False, "file_size": 3}]
    }
    # A trailing slash and a "./" segment name the same folder.
    assert api.get(BASE, {"path": f"./{RUN_DIR}/model/"}).json()["files"][1] == {"path": "sub", "is_dir": True}


def test_put_overwrites_an_existing_file(api, _artifact_root):
    api.put(f"{BASE}/{RUN_DIR}/a.txt", b"first version")
    api.put(f"{BASE}/{RUN_DIR}/a.txt", b"2nd")
    assert (_artifact_root / RUN_DIR / "a.txt").read_bytes() == b"2nd"
    assert files_below(_artifact_root) == [f"{RUN_DIR}/a.txt"]


def test_empty_file_upload(api, _artifact_root):
    assert api.put(f"{BASE}/{RUN_DIR}/empty.txt", b"").status_code == 200
    assert (_artifact_root / RUN_DIR / "empty.txt").read_bytes() == b""
    assert api.get(BASE, {"path": RUN_DIR}).json() == {"files": [{"path": "empty.txt", "is_dir": False, "file_size": 0}]}


def test_delete_a_directory_removes_the_tree(api, _artifact_root):
    api.put(f"{BASE}/{RUN_DIR}/model/MLmodel", b"m")
    api.put(f"{BASE}/{RUN_DIR}/model/sub/x.bin", b"x")
    api.put(f"{BASE}/{RUN_DIR}/keep.txt", b"k")
    assert api.delete(f"{BASE}/{RUN_DIR}/model").json() == {}
    assert files_below(_artifact_root) == [f"{RUN_DIR}/keep.txt"]
    # Deleting what is not there is fine, as on the real server.
    assert api.delete(f"{BASE}/{RUN_DIR}/model").status_code == 200


def test_missing_directory_lists_as_empty_object(api):
    # register_model("runs:/…") lists the (empty) model folder and needs 200 {} (spec §4.5).
    response = api.get(BASE, {"path": f"{RUN_DIR}/model"})
    assert response.status_code == 200
    assert response.json() == {}


def test_listing_a_file_path_is_empty(api):
    api.put(f"{BASE}/{RUN_DIR}/a.txt", b"a")
    assert api.get(BASE, {"path": f"{RUN_DIR}/a.txt"}).json() == {}


def test_list_root_without_path(api):
    api.put(f"{BASE}/7/r/artifacts/a.txt", b"a")
    assert api.get(BASE).json() == {"files": [{"path": "7", "is_dir": True}]}


def test_missing_file_is_404_json(api):
    response = api.get(f"{BASE}/{RUN_DIR}/model/model.pkl")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {
        "error_code": "RESOURCE_DOES_NOT_EXIST",
        "message": f"No such artifact: '{RUN_DIR}/model/model.pkl'",
    }


def test_downloading_a_directory_is_400(api):
    api.put(f"{BASE}/{RUN_DIR}/model/MLmodel", b"m")
    response = api.get(f"{BASE}/{RUN_DIR}/model")
    assert response.status_code == 400
    assert response.json() == {
        "error_code": "INVALID_PARAMETER_VALUE",
        "message": f"Artifact path refers to a directory, not a file: '{RUN_DIR}/model'",
    }


def test_download_headers(api):
    api.put(f"{BASE}/{RUN_DIR}/model/model.pkl", b"abc")
    response = api.get(f"{BASE}/{RUN_DIR}/model/model.pkl")
    assert response["Content-Disposition"] == 'attachment; filename="model.pkl"'
    assert response["Content-Length"] == "3"
    assert response["X-Content-Type-Options"] == "nosniff"


def test_upload_onto_a_directory_or_below_a_file_is_400(api, _artifact_root):
    api.put(f"{BASE}/{RUN_DIR}/model/MLmodel", b"m")
    onto_dir = api.put(f"{BASE}/{RUN_DIR}/model", b"x")
    assert onto_dir.status_code == 400
    assert onto_dir.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    below_file = api.put(f"{BASE}/{RUN_DIR}/model/MLmodel/x", b"x")
    assert below_file.status_code == 400
    assert files_below(_artifact_root) == [f"{RUN_DIR}/model/MLmodel"]


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
        assert response.json() == {"error_code": "INVALID_PARAMETER_VALUE", "message": "Invalid path"}
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
    assert response.json() == {"error_code": "INVALID_PARAMETER_VALUE", "message": "Invalid path"}


@pytest.mark.parametrize("method", ["get", "delete"])
@pytest.mark.parametrize("bad", ["%2e%2e/secret", "1/%252e%252e/%252e%252e/secret", "1/..%5c..%5csecret"])
def test_traversal_in_download_and_delete_is_400(api, tmp_path, method, bad):
    secret = tmp_path / "secret"
    secret.write_bytes(b"do not touch")
    response = getattr(api, method)(f"{BASE}/{bad}")
    assert response.status_code == 400
    assert response.json() == {"error_code": "INVALID_PARAMETER_VALUE", "message": "Invalid path"}
    assert secret.read_bytes() == b"do not touch"


def test_delete_of_the_root_is_refused(api, _artifact_root):
    api.put(f"{BASE}/{RUN_DIR}/a.txt", b"a")
    response = api.delete(f"{BASE}/.")
    assert response.status_code == 400
    assert files_below(_artifact_root) == [f"{RUN_DIR}/a.txt"]


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


def test_basic_auth_works(client, owner, _artifact_root):
    response = client.generic(
        "PUT", f"{BASE}/1/r/a.txt", b"hello", content_type="text/plain", HTTP_AUTHORIZATION=basic_header("owner")
    )
    assert response.status_code == 200
    assert (_artifact_root / "1/r/a.txt").read_bytes() == b"hello"


def test_session_can_read_but_not_write(client, owner, _artifact_root):
    client.force_login(owner)
    assert client.get(BASE).status_code == 200
    assert client.generic("PUT", f"{BASE}/1/a.txt", b"x").status_code == 401
    assert not (_artifact_root / "1").exists()


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
def test_interrupted_upload_leaves_no_file(api, _artifact_root, error):
    api.put(f"{BASE}/{RUN_DIR}/model.pkl", b"previous")
    response = api.put(
        f"{BASE}/{RUN_DIR}/model.pkl",
        b"",
        CONTENT_LENGTH=str(5 * 1024 * 1024),
        **{"wsgi.input": BrokenBody(3 * 1024 * 1024, error=error)},
    )
    assert response.status_code == 400
    assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    # The earlier file is intact and no temp file is left in the folder.
    assert files_below(_artifact_root) == [f"{RUN_DIR}/model.pkl"]
    assert (_artifact_root / RUN_DIR / "model.pkl").read_bytes() == b"previous"


def test_interrupted_first_upload_leaves_nothing(api, _artifact_root):
    response = api.put(
        f"{BASE}/{RUN_DIR}/new.bin", b"", CONTENT_LENGTH="1000", **{"wsgi.input": BrokenBody(10, error=True)}
    )
    assert response.status_code == 400
    assert files_below(_artifact_root) == []
    assert api.get(BASE, {"path": RUN_DIR}).json() == {}


def test_chunked_upload_without_length_is_411(api, _artifact_root):
    response = api.put(
        f"{BASE}/{RUN_DIR}/a.bin", b"", HTTP_TRANSFER_ENCODING="chunked", **{"wsgi.input": io.BytesIO(b"5\r\nhello\r\n0\r\n\r\n")}
    )
    assert response.status_code == 411
    assert response.json()["error_code"] == "BAD_REQUEST"
    assert files_below(_artifact_root) == []


def test_upload_is_read_in_chunks_never_as_a_whole_body(api, _artifact_root, monkeypatch):
    from django.core.handlers.wsgi import WSGIRequest

    def forbidden(self):
        raise AssertionError("request.body must not be read for uploads")

    monkeypatch.setattr(WSGIRequest, "body", property(forbidden))
    payload = hashlib.sha256(b"seed").digest() * 100_000  # 3.2 MB, more than one chunk
    assert api.put(f"{BASE}/{RUN_DIR}/big.bin", payload).status_code == 200
    assert (_artifact_root / RUN_DIR / "big.bin").read_bytes() == payload


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
def test_mlflow_client_artifact_repository_roundtrip(mlflow_client, tmp_path, _artifact_root):
    from mlflow.store.artifact.mlflow_artifacts_repo import MlflowArtifactsRepository

    src = tmp_path / "src"
    (src / "model" / "sub").mkdir(parents=True)
    (src / "model" / "MLmodel").write_text("artifact_path: model\n")
    (src / "model" / "sub" / "weights.bin").write_bytes(b"\x00\x01" * 5000)
    repo = MlflowArtifactsRepository(f"mlflow-artifacts:/{RUN_DIR}")
    repo.log_artifacts(str(src))
    assert files_below(_artifact_root) == [f"{RUN_DIR}/model/MLmodel", f"{RUN_DIR}/model/sub/weights.bin"]

    listed = repo.list_artifacts("model")
    assert [(f.path, f.is_dir, f.file_size) for f in listed] == [("model/MLmodel", False, 21), ("model/sub", True, None)]
    out = tmp_path / "out"
    out.mkdir()
    repo.download_artifacts("model", dst_path=str(out))
    assert (out / "model" / "sub" / "weights.bin").read_bytes() == b"\x00\x01" * 5000
    assert repo.list_artifacts("missing") == []

    repo.delete_artifacts("model/sub")
    assert files_below(_artifact_root) == [f"{RUN_DIR}/model/MLmodel"]
