"""core.artifacts: path safety, URIs, and the storage operations on a local folder and on a remote store."""

import hashlib
import io
import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import Storage, storages

from core import artifacts
from core.errors import DoesNotExist, InvalidParameter

# --------------------------------------------------------------------------- paths and URIs


@pytest.mark.parametrize(
    "raw,expected",
    [
        ("1/abc/artifacts/model", "1/abc/artifacts/model"),
        ("1/abc/artifacts/model/", "1/abc/artifacts/model"),
        ("./1//abc/./x.txt", "1/abc/x.txt"),
        ("", ""),
        (".", ""),
        ("100%.txt", "100%.txt"),
        ("a..b/..c/d..", "a..b/..c/d.."),
        ("name with spaces/ü.txt", "name with spaces/ü.txt"),
    ],
)
def test_normalize_path_accepts(raw, expected):
    assert artifacts.normalize_path(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "..", "../x", "a/../../x", "a/..", "/etc/passwd", "//etc/passwd", "a\\b", "..\\x", "a\x00b",
        "%2e%2e/x", "%2E%2E/x", "a/%2e%2e", "%252e%252e/x", "%25252e%25252e/x", "..%2fx", "a%2fb",
        "%2fetc%2fpasswd", "a%5cb", "a%00b", "C:/x", "c:x", None, 5,
    ],
)
def test_normalize_path_rejects(raw):
    with pytest.raises(InvalidParameter) as exc:
        artifacts.normalize_path(raw)
    assert exc.value.message == "Invalid path"
    assert exc.value.status == 400


def test_normalize_path_never_touches_storage(monkeypatch):
    monkeypatch.setattr(artifacts, "get_storage", lambda: pytest.fail("storage touched"))
    artifacts.normalize_path("1/a/b")
    with pytest.raises(InvalidParameter):
        artifacts.normalize_path("../a")


@pytest.mark.parametrize(
    "uri,expected",
    [
        ("mlflow-artifacts:/1/abc/artifacts/model", "1/abc/artifacts/model"),
        ("mlflow-artifacts:///1/abc/artifacts", "1/abc/artifacts"),
        ("mlflow-artifacts://localhost:5000/1/models/m-1/artifacts", "1/models/m-1/artifacts"),
        ("mlflow-artifacts:/1", "1"),
    ],
)
def test_uri_to_path(uri, expected):
    assert artifacts.uri_to_path(uri) == expected


@pytest.mark.parametrize(
    "uri", ["s3://bucket/1/x", "file:///etc/passwd", "runs:/abc/model", "models:/m/1", "/1/abc", "mlflow-artifacts:/1/../../x"]
)
def test_uri_to_path_rejects(uri):
    with pytest.raises(InvalidParameter):
        artifacts.uri_to_path(uri)


def test_path_to_uri_roundtrip():
    assert artifacts.path_to_uri("1/abc/artifacts/") == "mlflow-artifacts:/1/abc/artifacts"
    assert artifacts.uri_to_path(artifacts.path_to_uri("1/abc/artifacts")) == "1/abc/artifacts"


@pytest.mark.parametrize(
    "path,expected",
    [
        ("1/abc/artifacts", "1"), ("42", "42"), ("0/x", "0"), ("models/x", None), ("", None), ("../1", None),
        ("1a/x", None), ("007/x", None), ("\u0661/x", None), ("99999999999999999999/x", None), ("-1/x", None),
    ],
)
def test_experiment_id_of(path, expected):
    assert artifacts.experiment_id_of(path) == expected


# --------------------------------------------------------------------------- operations on both storages


class MemoryStorage(Storage):
    """An object store in a dict, like S3: no directories, `.path()` not implemented."""

    def __init__(self):
        self.objects: dict[str, bytes] = {}

    def _open(self, name, mode="rb"):
        if name not in self.objects:
            raise FileNotFoundError(name)
        return ContentFile(self.objects[name], name=name)

    def _save(self, name, content):
        data = bytearray()
        while chunk := content.read(64 * 1024):
            data += chunk
        self.objects[name] = bytes(data)
        return name

    def get_available_name(self, name, max_length=None):
        return name

    def exists(self, name):
        return name in self.objects

    def delete(self, name):
        self.objects.pop(name, None)

    def size(self, name):
        if name not in self.objects:
            raise FileNotFoundError(name)
        return len(self.objects[name])

    def listdir(self, path):
        prefix = f"{path}/" if path else ""
        dirs, files = set(), []
        for key in self.objects:
            if key.startswith(prefix):
                rest = key[len(prefix):]
                if "/" in rest:
                    dirs.add(rest.split("/", 1)[0])
                else:
                    files.append(rest)
        return sorted(dirs), sorted(files)


@pytest.fixture(params=["local", "remote"])
def store(request, _artifact_root):
    if request.param == "remote":
        memory = MemoryStorage()
        storages._storages["artifacts"] = memory
        yield memory
    else:
        yield None


def put(path, data: bytes):
    return artifacts.save_stream(path, io.BytesIO(data), chunk_size=7)


def test_save_list_walk_read(store):
    assert put("1/r/artifacts/model/MLmodel", b"flavors: {}\n") == 12
    put("1/r/artifacts/model/sub/w.bin", b"\x00" * 100)
    put("1/r/artifacts/notes.txt", "héllo".encode())
    assert artifacts.list_dir("1/r/artifacts") == [
        {"path": "model", "is_dir": True},
        {"path": "notes.txt", "is_dir": False, "file_size": 6},
    ]
    assert artifacts.list_dir("1/r/artifacts/model") == [
        {"path": "MLmodel", "is_dir": False, "file_size": 12},
        {"path": "sub", "is_dir": True},
    ]
    assert artifacts.list_dir("1/nope") == []
    assert list(artifacts.walk("1/r/artifacts")) == [("model/MLmodel", 12), ("model/sub/w.bin", 100), ("notes.txt", 6)]
    assert list(artifacts.walk("1/nope")) == []
    assert artifacts.exists("1/r/artifacts/model") and artifacts.exists("1/r/artifacts/notes.txt")
    assert not artifacts.exists("1/r/artifacts/other")
    assert artifacts.is_file("1/r/artifacts/notes.txt") and not artifacts.is_file("1/r/artifacts/model")
    assert artifacts.file_size("1/r/artifacts/model/sub/w.bin") == 100
    assert artifacts.read_text("1/r/artifacts/notes.txt") == "héllo"
    assert artifacts.read_text("1/r/artifacts/model/MLmodel", max_bytes=5) == "flavo"
    with artifacts.open_file("1/r/artifacts/model/sub/w.bin") as f:
        assert f.read() == b"\x00" * 100


def test_missing_file_errors(store):
    with pytest.raises(DoesNotExist) as exc:
        artifacts.open_file("1/x/missing.txt")
    assert exc.value.message == "No such artifact: '1/x/missing.txt'"
    with pytest.raises(DoesNotExist):
        artifacts.file_size("1/x/missing.txt")
    with pytest.raises(DoesNotExist):
        artifacts.read_text("1/x/missing.txt")


def test_delete_file_and_tree(store):
    put("1/r/a/x.txt", b"x")
    put("1/r/a/b/y.txt", b"y")
    put("1/r/keep.txt", b"k")
    artifacts.delete("1/r/a/x.txt")
    assert list(artifacts.walk("1/r")) == [("a/b/y.txt", 1), ("keep.txt", 1)]
    artifacts.delete("1/r/a")
    assert list(artifacts.walk("1/r")) == [("keep.txt", 1)]
    artifacts.delete("1/r/never-there")
    with pytest.raises(InvalidParameter):
        artifacts.delete("")


def test_copy_tree_copies_and_checksums(store):
    put("1/r/artifacts/model/MLmodel", b"flavors: {}\n")
    put("1/r/artifacts/model/sub/w.bin", b"\x01" * 1000)
    result = artifacts.copy_tree("1/r/artifacts/model", "registry/m/1")
    assert result["file_count"] == 2
    assert result["size"] == 1012
    expected = hashlib.sha256(
        (
            f"MLmodel\t{hashlib.sha256(b'flavors: {}' + bytes([10])).hexdigest()}\n"
            f"sub/w.bin\t{hashlib.sha256(b'\x01' * 1000).hexdigest()}\n"
        ).encode()
    ).hexdigest()
    assert result["checksum"] == expected
    assert list(artifacts.walk("registry/m/1")) == [("MLmodel", 12), ("sub/w.bin", 1000)]
    assert artifacts.tree_checksum("registry/m/1") == result
    # The checksum follows the content.
    put("1/r/artifacts/model/sub/w.bin", b"\x02" * 1000)
    assert artifacts.copy_tree("1/r/artifacts/model", "registry/m/2")["checksum"] != result["checksum"]


def test_copy_tree_of_missing_source_copies_nothing(store):
    result = artifacts.copy_tree("1/r/artifacts/model", "registry/m/1")
    assert result == {"file_count": 0, "size": 0, "checksum": hashlib.sha256(b"").hexdigest()}


@pytest.mark.parametrize("src,dst", [("1/a", "1/a"), ("1/a", "1/a/b"), ("1/a/b", "1/a"), ("", "x"), ("1/a", "")])
def test_copy_tree_refuses_overlapping_folders(store, src, dst):
    with pytest.raises(InvalidParameter):
        artifacts.copy_tree(src, dst)


class Breaks:
    def __init__(self, good: bytes):
        self.data = io.BytesIO(good)

    def read(self, n=-1):
        chunk = self.data.read(n)
        if not chunk:
            raise ConnectionResetError("gone")
        return chunk


def test_save_stream_failure_keeps_previous_file_and_leaves_no_temp(store, _artifact_root):
    put("1/r/model.pkl", b"old")
    with pytest.raises(ConnectionResetError):
        artifacts.save_stream("1/r/model.pkl", Breaks(b"new bytes " * 100), chunk_size=16)
    with artifacts.open_file("1/r/model.pkl") as f:
        assert f.read() == b"old"
    assert list(artifacts.walk("1")) == [("r/model.pkl", 3)]
    if store is None:
        assert sorted(p.name for p in (_artifact_root / "1" / "r").iterdir()) == ["model.pkl"]


def test_save_stream_short_body_is_incomplete(store):
    with pytest.raises(artifacts.IncompleteUpload):
        artifacts.save_stream("1/r/x.bin", io.BytesIO(b"abc"), expected_size=10)
    assert list(artifacts.walk("1")) == []
    # Extra bytes beyond the declared length are not read.
    assert artifacts.save_stream("1/r/y.bin", io.BytesIO(b"abcdef"), expected_size=4) == 4
    assert artifacts.read_text("1/r/y.bin") == "abcd"


def test_local_upload_in_flight_is_hidden_from_listings(_artifact_root):
    folder = _artifact_root / "1" / "r"
    folder.mkdir(parents=True)
    (folder / (artifacts.TEMP_PREFIX + "abc")).write_bytes(b"partial")
    (folder / "done.txt").write_bytes(b"d")
    assert artifacts.list_dir("1/r") == [{"path": "done.txt", "is_dir": False, "file_size": 1}]
    assert list(artifacts.walk("1")) == [("r/done.txt", 1)]


def test_remote_storage_uses_the_storage_api(_artifact_root):
    memory = MemoryStorage()
    storages._storages["artifacts"] = memory
    put("1/r/a.txt", b"abc")
    assert memory.objects == {"1/r/a.txt": b"abc"}
    assert not _artifact_root.exists()


# --------------------------------------------------------------------------- access rules


class Rule:
    def __init__(self):
        self.calls = []

    def __call__(self, user, path, *, write):
        self.calls.append((user, path, write))


def test_check_access_dispatches_on_the_first_segment(monkeypatch):
    from types import SimpleNamespace

    from core.errors import PermissionDenied

    monkeypatch.setattr(artifacts, "_ACCESS_RULES", {})
    experiments, registry = Rule(), Rule()
    artifacts.register_access_rule(artifacts.EXPERIMENT_PREFIX, experiments)
    artifacts.register_access_rule("registry", registry)
    artifacts.register_access_rule("registry", Rule(), replace=False)  # keeps the first one
    user = SimpleNamespace(is_superuser=False)
    artifacts.check_access(user, "12/run/artifacts/", write=True)
    artifacts.check_access(user, "registry/3/1", write=False)
    assert experiments.calls == [(user, "12/run/artifacts", True)]
    assert registry.calls == [(user, "registry/3/1", False)]
    for path in ("", "misc/x", "12x/y"):
        with pytest.raises(PermissionDenied):
            artifacts.check_access(user, path, write=False)
    artifacts.check_access(SimpleNamespace(is_superuser=True), "misc/x", write=True)
    with pytest.raises(InvalidParameter):
        artifacts.check_access(user, "12/../x", write=False)


# --------------------------------------------------------------------------- S3: downloads stream from GetObject


@pytest.fixture
def s3_storage(_artifact_root):
    from botocore.stub import Stubber
    from storages.backends.s3 import S3Storage

    storage = S3Storage(bucket_name="stagegate", access_key="test", secret_key="test", region_name="us-east-1", location="prefix")
    storages._storages["artifacts"] = storage
    with Stubber(storage.connection.meta.client) as stubber:
        yield stubber


def test_s3_download_streams_the_object_body(s3_storage):
    from botocore.response import StreamingBody

    data = b"0123456789" * 1000
    s3_storage.add_response(
        "get_object",
        {"Body": StreamingBody(io.BytesIO(data), len(data)), "ContentLength": len(data)},
        {"Bucket": "stagegate", "Key": "prefix/1/run/artifacts/model.pkl"},
    )
    with artifacts.open_file("1/run/artifacts/model.pkl") as body:
        assert isinstance(body, artifacts.RemoteBody)
        assert body.size == len(data)
        assert body.read(4) == b"0123"
        assert body.read() == data[4:]
    s3_storage.assert_no_pending_responses()


def test_s3_missing_key_is_does_not_exist(s3_storage):
    s3_storage.add_client_error("get_object", service_error_code="NoSuchKey", http_status_code=404)
    with pytest.raises(DoesNotExist) as exc:
        artifacts.open_file("1/run/artifacts/nope.pkl")
    assert exc.value.message == "No such artifact: '1/run/artifacts/nope.pkl'"


def test_s3_other_errors_propagate(s3_storage):
    from botocore.exceptions import ClientError

    s3_storage.add_client_error("get_object", service_error_code="AccessDenied", http_status_code=403)
    with pytest.raises(ClientError):
        artifacts.open_file("1/run/artifacts/x.pkl")
