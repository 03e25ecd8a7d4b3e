"""The one module that touches artifact storage.

Everything else (the MLflow artifact proxy, model registration, the UI) calls
these functions with *relative POSIX paths* below the artifact root, e.g.
`1/<run_id>/artifacts/model/MLmodel`. Two implementations sit behind them:

* the local fast path, when the storage is a folder (`storage.path()` works):
  plain `os` calls, atomic uploads through a temp file + `os.replace`;
* the generic path for remote storage (S3Storage raises NotImplementedError
  from `.path()`): Django's Storage API (`listdir`, `open`, `save`, `delete`).

Bodies are always streamed in chunks; no function holds a whole file in memory.
"""

import hashlib
import os
import posixpath
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from urllib.parse import unquote, urlparse

from django.core.files import File
from django.core.files.storage import storages

from core.errors import DoesNotExist, InvalidParameter, PermissionDenied

CHUNK_SIZE = 1024 * 1024
ARTIFACT_SCHEME = "mlflow-artifacts"
# Uploads in flight are written next to their target under this prefix; listings hide them.
TEMP_PREFIX = ".sg-upload-"

_DRIVE = re.compile(r"^[A-Za-z]:")
_EXPERIMENT_ID = re.compile(r"^(0|[1-9][0-9]{0,18})\Z")


class IncompleteUpload(InvalidParameter):
    """The request body ended (or broke) before Content-Length bytes arrived; nothing was kept."""


# --------------------------------------------------------------------------- paths


def _invalid() -> InvalidParameter:
    return InvalidParameter("Invalid path")


def _check_raw(path: str) -> None:
    if "\x00" in path or "\\" in path or path.startswith("/") or _DRIVE.match(path):
        raise _invalid()
    if any(segment == ".." for segment in path.split("/")):
        raise _invalid()


def normalize_path(path: str) -> str:
    """A safe relative POSIX path below the artifact root ("" is the root itself).

    Raises InvalidParameter("Invalid path") for `..` segments, absolute paths,
    drive letters, backslashes, NUL and their percent-encoded forms (the path is
    decoded again until stable and re-checked: `%2e%2e`, `%252e%252e`, `%2f`, `%5c`, `%00`).
    Never touches storage.
    """
    if not isinstance(path, str):
        raise _invalid()
    _check_raw(path)
    # Decode until stable (a few rounds at most): `%252e%252e` -> `%2e%2e` -> `..`.
    decoded = path
    for _ in range(4):
        once = unquote(decoded)
        if once == decoded:
            break
        decoded = once
        _check_raw(decoded)
        # An encoded separator is never part of a legitimate artifact name.
        if decoded.count("/") != path.count("/"):
            raise _invalid()
    else:
        raise _invalid()
    segments = [s for s in path.split("/") if s not in ("", ".")]
    return "/".join(segments)


def join(*parts: str) -> str:
    """Join path pieces and normalize the result."""
    return normalize_path("/".join(p.strip("/") for p in parts if p))


def uri_to_path(uri: str) -> str:
    """`mlflow-artifacts:/1/abc/artifacts/model` (or `mlflow-artifacts://host:port/1/…`) -> `1/abc/artifacts/model`."""
    if not isinstance(uri, str):
        raise InvalidParameter(f"Invalid artifact URI {uri!r}")
    parsed = urlparse(uri)
    if parsed.scheme != ARTIFACT_SCHEME:
        raise InvalidParameter(
            f"Unsupported artifact URI '{uri}': this server stores artifacts under '{ARTIFACT_SCHEME}:/<path>'."
        )
    return normalize_path(parsed.path.lstrip("/"))


def path_to_uri(path: str) -> str:
    return f"{ARTIFACT_SCHEME}:/{normalize_path(path)}"


def experiment_id_of(path: str) -> str | None:
    """The experiment an artifact path belongs to: its first segment when that is a number."""
    try:
        path = normalize_path(path)
    except InvalidParameter:
        return None
    first = path.split("/", 1)[0]
    # Canonical ASCII numbers only: "007" or "١" would alias experiment 7 / 1 in a folder it does not own.
    return first if _EXPERIMENT_ID.match(first) else None


# --------------------------------------------------------------------------- access rules

# Who may read or write which part of the store, by first path segment. `core`
# knows no app, so each app registers the rule for its own prefix at start-up:
# tracking for experiment folders (EXPERIMENT_PREFIX, every numeric first
# segment), registry for its `registry/…` copies. A prefix nobody claimed is
# for superusers only.
EXPERIMENT_PREFIX = "<experiment>"
_ACCESS_RULES: dict = {}


def register_access_rule(prefix: str, rule, *, replace: bool = True) -> None:
    """`rule(user, path, *, write: bool)` raises an MlflowError when `user` may not touch `path`.

    `replace=False` only installs the rule when the prefix has none yet (a provisional default).
    """
    if replace or prefix not in _ACCESS_RULES:
        _ACCESS_RULES[prefix] = rule


def check_access(user, path: str, *, write: bool) -> None:
    """Raise PermissionDenied / DoesNotExist unless `user` may read (or write) the artifact `path`."""
    path = normalize_path(path)
    first = path.split("/", 1)[0]
    rule = _ACCESS_RULES.get(EXPERIMENT_PREFIX if experiment_id_of(first) else first) if first else None
    if rule is not None:
        rule(user, path, write=write)
        return
    if not getattr(user, "is_superuser", False):
        where = f"'{path}'" if path else "the artifact root"
        raise PermissionDenied(f"Permission denied: only administrators may {'write' if write else 'read'} {where}.")


# --------------------------------------------------------------------------- storage


def get_storage():
    return storages["artifacts"]


def _local_path(storage, path: str) -> str | None:
    """The filesystem path of `path` when the storage is a local folder, else None."""
    try:
        return storage.path(path) if path else storage.path("")
    except NotImplementedError:
        return None


def _hidden(name: str) -> bool:
    return name.startswith(TEMP_PREFIX)


def list_dir(path: str) -> list[dict]:
    """Direct children of a directory, sorted by name: `[{"path", "is_dir", "file_size"?}]`; missing -> []."""
    path = normalize_path(path)
    storage = get_storage()
    local = _local_path(storage, path)
    entries = []
    if local is not None:
        try:
            with os.scandir(local) as it:
                for entry in it:
                    if _hidden(entry.name):
                        continue
                    if entry.is_dir():
                        entries.append({"path": entry.name, "is_dir": True})
                    elif entry.is_file():
                        entries.append({"path": entry.name, "is_dir": False, "file_size": entry.stat().st_size})
        except (FileNotFoundError, NotADirectoryError):
            return []
    elif _is_s3(storage):
        # One ListObjectsV2 call per 1,000 keys, sizes included (storage.size() would HEAD every file).
        prefix = _s3_prefix(storage, path)
        for page in _s3_pages(storage, prefix, delimiter="/"):
            for common in page.get("CommonPrefixes", ()):
                name = common["Prefix"][len(prefix):].rstrip("/")
                if name and not _hidden(name):
                    entries.append({"path": name, "is_dir": True})
            for obj in page.get("Contents", ()):
                name = obj["Key"][len(prefix):]
                if name and not _hidden(name):
                    entries.append({"path": name, "is_dir": False, "file_size": obj["Size"]})
    else:
        try:
            dirs, files = storage.listdir(path)
        except FileNotFoundError:
            return []
        entries += [{"path": d, "is_dir": True} for d in dirs if d and not _hidden(d)]
        for name in files:
            if name and not _hidden(name):
                entries.append({"path": name, "is_dir": False, "file_size": storage.size(join(path, name))})
    entries.sort(key=lambda e: e["path"])
    return entries


def is_file(path: str) -> bool:
    path = normalize_path(path)
    if not path:
        return False
    storage = get_storage()
    local = _local_path(storage, path)
    if local is not None:
        return os.path.isfile(local)
    return storage.exists(path)


def exists(path: str) -> bool:
    """A file, or a directory (on object stores: a prefix with at least one object below it)."""
    path = normalize_path(path)
    storage = get_storage()
    local = _local_path(storage, path)
    if local is not None:
        return os.path.exists(local)
    if path and storage.exists(path):
        return True
    try:
        dirs, files = storage.listdir(path)
    except FileNotFoundError:
        return False
    return bool(dirs or files)


def file_size(path: str) -> int:
    path = normalize_path(path)
    storage = get_storage()
    local = _local_path(storage, path)
    try:
        if local is not None:
            if not os.path.isfile(local):
                raise FileNotFoundError(path)
            return os.path.getsize(local)
        return storage.size(path)
    except FileNotFoundError:
        raise DoesNotExist(f"No such artifact: '{path}'") from None


def open_file(path: str):
    """A binary file object to stream from; the caller closes it (FileResponse does)."""
    path = normalize_path(path)
    missing = DoesNotExist(f"No such artifact: '{path}'")
    if not path:
        raise missing
    storage = get_storage()
    local = _local_path(storage, path)
    try:
        if local is not None:
            if not os.path.isfile(local):
                raise missing
            return open(local, "rb")
        if _is_s3(storage):
            return _open_s3(storage, path)
        return storage.open(path, "rb")
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise missing from None


class RemoteBody:
    """A streaming object body (`read(n)`, `close()`) that knows its size."""

    def __init__(self, body, size: int | None):
        self.body = body
        self.size = size

    def read(self, size: int = -1) -> bytes:
        return self.body.read(None if size is None or size < 0 else size)

    def close(self) -> None:
        self.body.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _is_s3(storage) -> bool:
    # Checked on the class: reading `storage.bucket` would open a connection.
    return hasattr(type(storage), "bucket") and hasattr(storage, "_normalize_name")


def _s3_prefix(storage, path: str) -> str:
    """The key prefix of everything below the folder `path` (ends with "/" unless it is the bucket root)."""
    from storages.utils import clean_name

    key = storage._normalize_name(clean_name(path)) if path else storage._normalize_name("")
    return key + "/" if key and not key.endswith("/") else key


def _s3_pages(storage, prefix: str, *, delimiter: str | None = None) -> Iterator[dict]:
    """ListObjectsV2 pages below `prefix`; the paginator follows continuation tokens past 1,000 keys."""
    params = {"Bucket": storage.bucket_name, "Prefix": prefix}
    if delimiter:
        params["Delimiter"] = delimiter
    yield from storage.connection.meta.client.get_paginator("list_objects_v2").paginate(**params)


def _open_s3(storage, path: str) -> RemoteBody:
    """Stream the object straight from GetObject. S3Storage.open() would first copy the
    whole object into a SpooledTemporaryFile, in memory unless AWS_S3_MAX_MEMORY_SIZE is set."""
    from botocore.exceptions import ClientError
    from storages.utils import clean_name

    key = storage._normalize_name(clean_name(path))
    try:
        obj = storage.bucket.Object(key).get()
    except ClientError as err:
        code = str(err.response.get("Error", {}).get("Code", ""))
        status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in ("NoSuchKey", "404", "NotFound") or status == 404:
            raise FileNotFoundError(path) from None
        raise
    return RemoteBody(obj["Body"], obj.get("ContentLength"))


class _CountingReader:
    """Reads a stream in chunks, counting bytes; stops at `limit` when one is given."""

    def __init__(self, stream, limit: int | None = None):
        self.stream = stream
        self.limit = limit
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        if self.limit is not None:
            remaining = self.limit - self.count
            if remaining <= 0:
                return b""
            size = remaining if size is None or size < 0 else min(size, remaining)
        data = self.stream.read(size)
        if data:
            self.count += len(data)
        return data

    def seekable(self) -> bool:
        return False

    # Django's File and django-storages ask a wrapped stream whether it is closed (S3Storage._save).
    closed = False

    def close(self) -> None:
        pass


def save_stream(path: str, stream, *, chunk_size: int = CHUNK_SIZE, expected_size: int | None = None) -> int:
    """Write `stream.read(chunk_size)` chunks to `path`, replacing any file there; returns the byte count.

    Never holds the whole body. On a local folder the bytes go to a hidden temp file
    next to the target, moved into place with `os.replace` only once complete, so an
    upload that fails or ends early (fewer than `expected_size` bytes: IncompleteUpload)
    leaves no file behind and never clobbers the previous one.
    """
    path = normalize_path(path)
    if not path:
        raise _invalid()
    storage = get_storage()
    local = _local_path(storage, path)
    if local is None:
        return _save_remote(storage, path, stream, chunk_size=chunk_size, expected_size=expected_size)

    folder, name = os.path.split(local)
    if os.path.isdir(local):
        raise InvalidParameter(f"Cannot write artifact '{path}': a directory of that name exists")
    try:
        os.makedirs(folder, mode=storage.directory_permissions_mode or 0o777, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise InvalidParameter(f"Cannot write artifact '{path}': a parent of it is a file") from None
    fd, temp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix="-" + uuid.uuid4().hex[:8], dir=folder)
    written = 0
    try:
        with os.fdopen(fd, "wb") as out:
            reader = _CountingReader(stream, expected_size)
            while True:
                chunk = reader.read(chunk_size)
                if not chunk:
                    break
                out.write(chunk)
            written = reader.count
            if expected_size is not None and written != expected_size:
                raise IncompleteUpload(
                    f"Upload of '{path}' ended after {written} of {expected_size} bytes; nothing was stored."
                )
        os.chmod(temp, storage.file_permissions_mode or (0o666 & ~_UMASK))
        os.replace(temp, local)
    except BaseException:
        try:
            os.unlink(temp)
        except FileNotFoundError:
            pass
        raise
    return written


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Read once at import: os.umask() is process-wide, and flipping it while other
# threads create files would give them world-writable modes.
_UMASK = _read_umask()


def _save_remote(storage, path, stream, *, chunk_size, expected_size) -> int:
    # Object stores write the object atomically at the end of the upload (boto3
    # streams it in parts), so an interrupted body never becomes a visible object.
    # An upload that ended early is detected afterwards and removed.
    reader = _CountingReader(stream, expected_size)
    storage.save(path, File(reader, name=posixpath.basename(path)))
    if expected_size is not None and reader.count != expected_size:
        storage.delete(path)
        raise IncompleteUpload(
            f"Upload of '{path}' ended after {reader.count} of {expected_size} bytes; nothing was stored."
        )
    return reader.count


def walk(path: str) -> Iterator[tuple[str, int]]:
    """(path relative to `path`, size) of every file below the directory `path`, sorted by path."""
    path = normalize_path(path)
    storage = get_storage()
    local = _local_path(storage, path)
    found: list[tuple[str, int]] = []
    if local is not None:
        if not os.path.isdir(local):
            return iter(())
        for folder, dirnames, filenames in os.walk(local):
            dirnames[:] = [d for d in dirnames if not _hidden(d)]
            rel_folder = os.path.relpath(folder, local)
            for name in filenames:
                if _hidden(name):
                    continue
                full = os.path.join(folder, name)
                rel = name if rel_folder == "." else f"{rel_folder.replace(os.sep, '/')}/{name}"
                found.append((rel, os.path.getsize(full)))
    elif _is_s3(storage):
        prefix = _s3_prefix(storage, path)
        for page in _s3_pages(storage, prefix):
            for obj in page.get("Contents", ()):
                rel = obj["Key"][len(prefix):]
                if rel and not rel.endswith("/") and not any(_hidden(part) for part in rel.split("/")):
                    found.append((rel, obj["Size"]))
    else:
        stack = [""]
        while stack:
            rel_folder = stack.pop()
            try:
                dirs, files = storage.listdir(join(path, rel_folder))
            except FileNotFoundError:
                continue
            for d in dirs:
                if d and not _hidden(d):
                    stack.append(f"{rel_folder}/{d}" if rel_folder else d)
            for name in files:
                if name and not _hidden(name):
                    rel = f"{rel_folder}/{name}" if rel_folder else name
                    found.append((rel, storage.size(join(path, rel))))
    found.sort()
    return iter(found)


def delete(path: str) -> None:
    """Delete a file, or a whole directory tree. Deleting what is not there is not an error."""
    path = normalize_path(path)
    if not path:
        raise InvalidParameter("Invalid path: refusing to delete the artifact root")
    storage = get_storage()
    local = _local_path(storage, path)
    if local is not None:
        if os.path.isdir(local) and not os.path.islink(local):
            shutil.rmtree(local, ignore_errors=False)
        elif os.path.lexists(local):
            os.unlink(local)
        return
    files = list(walk(path))
    if _is_s3(storage) and files:
        # DeleteObjects: up to 1,000 keys per request.
        keys = [storage._normalize_name(join(path, rel)) for rel, _ in files]
        client = storage.connection.meta.client
        for start in range(0, len(keys), 1000):
            batch = [{"Key": key} for key in keys[start:start + 1000]]
            client.delete_objects(Bucket=storage.bucket_name, Delete={"Objects": batch, "Quiet": True})
        return
    for rel, _ in files:
        storage.delete(join(path, rel))
    if not files:
        storage.delete(path)


class _HashingReader:
    def __init__(self, stream):
        self.stream = stream
        self.digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        self.digest.update(data)
        return data

    def seekable(self) -> bool:
        return False


def _tree_digest(entries: list[tuple[str, str]]) -> str:
    """sha256 over the sorted `(relative path, file sha256)` pairs, one `path\\tsha\\n` line each."""
    digest = hashlib.sha256()
    for rel, file_sha in sorted(entries):
        digest.update(f"{rel}\t{file_sha}\n".encode())
    return digest.hexdigest()


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open_file(path) as f:
        while chunk := f.read(CHUNK_SIZE):
            digest.update(chunk)
    return digest.hexdigest()


def tree_checksum(path: str) -> dict:
    """file_count / size / checksum of everything below `path`, computed the way copy_tree does."""
    path = normalize_path(path)
    entries, total, count = [], 0, 0
    for rel, size in walk(path):
        entries.append((rel, file_sha256(join(path, rel))))
        total += size
        count += 1
    return {"file_count": count, "size": total, "checksum": _tree_digest(entries)}


def copy_tree(src: str, dst: str) -> dict:
    """Stream-copy every file below `src` to the same relative path below `dst`.

    Returns `{"file_count", "size", "checksum"}`; checksum is the hex sha256 over
    the sorted (relative path, file sha256) pairs (see `_tree_digest`), so two
    trees with the same content have the same checksum. A missing or empty `src`
    copies nothing (MLflow lets a version be registered from an empty folder).
    Raises InvalidParameter when `dst` lies inside `src` or the other way round.
    """
    src, dst = normalize_path(src), normalize_path(dst)
    if not dst or src == dst or dst.startswith(src + "/") or src.startswith(dst + "/") or not src:
        raise InvalidParameter(f"Cannot copy artifacts from '{src}' to '{dst}': the folders overlap")
    storage = get_storage()
    if _is_s3(storage):
        return _copy_tree_s3(storage, src, dst)
    entries, total, count = [], 0, 0
    for rel, _size in list(walk(src)):
        with open_file(join(src, rel)) as f:
            reader = _HashingReader(f)
            total += save_stream(join(dst, rel), reader)
        entries.append((rel, reader.digest.hexdigest()))
        count += 1
    return {"file_count": count, "size": total, "checksum": _tree_digest(entries)}


def _copy_tree_s3(storage, src: str, dst: str) -> dict:
    """copy_tree inside the bucket: each object is copied by S3 itself (CopyObject, or UploadPartCopy
    parts for large ones), so the bytes never travel through this server to be stored again. The
    source is still read once, streamed, for the checksum."""
    client = storage.connection.meta.client
    entries, total = [], 0
    for rel, size in list(walk(src)):
        entries.append((rel, file_sha256(join(src, rel))))
        source = {"Bucket": storage.bucket_name, "Key": storage._normalize_name(join(src, rel))}
        client.copy(source, storage.bucket_name, storage._normalize_name(join(dst, rel)), Config=storage.transfer_config)
        total += size
    return {"file_count": len(entries), "size": total, "checksum": _tree_digest(entries)}


def read_text(path: str, max_bytes: int = CHUNK_SIZE) -> str:
    """The start of a text artifact (at most `max_bytes`), decoded as UTF-8 with replacement."""
    with open_file(path) as f:
        data = f.read(max_bytes)
    return data.decode("utf-8", errors="replace")


def download_tree(path: str, dest: str) -> dict:
    """Copy every file below the artifact folder `path` into the local folder `dest` (created).
    Returns `{"file_count", "size", "checksum"}` computed as copy_tree does."""
    path = normalize_path(path)
    entries, total, count = [], 0, 0
    for rel, _size in list(walk(path)):
        target = os.path.join(dest, *rel.split("/"))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        digest = hashlib.sha256()
        with open_file(join(path, rel)) as src, open(target, "wb") as out:
            while chunk := src.read(CHUNK_SIZE):
                digest.update(chunk)
                total += out.write(chunk)
        entries.append((rel, digest.hexdigest()))
        count += 1
    return {"file_count": count, "size": total, "checksum": _tree_digest(entries)}
