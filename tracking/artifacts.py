"""MLflow's artifact proxy (`/api/2.0/mlflow-artifacts/`) and the 3.x capability probe.

Wire behaviour follows the real MLflow 3.18 server (spec §4.2, §4.4). Every
path goes through core.artifacts.normalize_path before storage is touched, and
bodies are streamed both ways: uploads with request.read(chunk) (never
request.body), downloads with FileResponse.
"""

import mimetypes
import posixpath
import unicodedata
from urllib.parse import quote, urlparse

from django.core.handlers.wsgi import LimitedStream
from django.http import FileResponse, HttpResponse
from django.urls import path, re_path

from core import artifacts
from core.api import api_view
from core.errors import (
    DoesNotExist,
    InvalidParameter,
    MlflowError,
    NotImplementedByServer,
    PermissionDenied,
    missing_parameter,
)
from tracking import access

# mlflow.utils.mime_type_utils.get_text_extensions(): served as text/plain.
TEXT_EXTENSIONS = {
    "txt", "log", "err", "cfg", "conf", "cnf", "cf", "ini", "properties", "prop", "hocon", "toml", "yaml", "yml",
    "xml", "json", "js", "py", "py3", "csv", "tsv", "md", "rst", "ipynb", "MLmodel", "mlproject",
}
# RFC 9110 token characters: a file name made only of them goes unquoted, as werkzeug writes it.
TOKEN_CHARS = frozenset("!#$%&'*+-.0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ^_`abcdefghijklmnopqrstuvwxyz|~")
# Types a browser would render or run on our origin: sent as text/plain (always as an attachment).
NEVER_INLINE = {"text/html", "application/xhtml+xml", "image/svg+xml", "text/javascript", "application/javascript"}
DOWNLOAD_BLOCK_SIZE = 256 * 1024
# MLflow's limit for the UI's `upload-artifact` (it reads the whole body into memory; we stream it).
UI_UPLOAD_MAX_BYTES = 10 * 1024 * 1024


def experiment_rule(user, relative: str, *, write: bool) -> None:
    """`<experiment_id>/…` belongs to that experiment: read needs read access, writes need edit."""
    access.get_experiment_for_user(user, artifacts.experiment_id_of(relative), action="edit" if write else "read")


def registry_rule(user, relative: str, *, write: bool) -> None:
    """Provisional rule for `registry/…` until the registry app registers its own (per-model reads).

    Registered versions are immutable copies written by the registry itself (core.artifacts),
    so the proxy never writes there, whoever asks.
    """
    if write:
        raise PermissionDenied("Permission denied: registered model versions are read-only.")


def register_access_rules() -> None:
    """Called from TrackingConfig.ready(): every process knows who may read the experiment folders
    before anything asks (the registration task runs without the URLconf ever being imported)."""
    artifacts.register_access_rule(artifacts.EXPERIMENT_PREFIX, experiment_rule)
    artifacts.register_access_rule("registry", registry_rule, replace=False)


def content_type_for(name: str) -> str:
    """MLflow's `_guess_mime_type` (text extensions -> text/plain, else mimetypes, else octet-stream),
    except that nothing a browser would render as a page or script is ever labelled as such."""
    base = posixpath.basename(name)
    extension = posixpath.splitext(base)[1].replace(".", "") or base
    if extension in TEXT_EXTENSIONS:
        return "text/plain"
    guessed, _ = mimetypes.guess_type(base)
    if not guessed:
        return "application/octet-stream"
    return "text/plain" if guessed in NEVER_INLINE else guessed


@api_view("GET", body="raw")
def list_artifacts(request, params):
    """`GET artifacts?path=<dir>` -> `{"files": [...]}`; a missing or empty directory -> `{}`."""
    folder = artifacts.normalize_path(params.string("path") or "")
    artifacts.check_access(request.user, folder, write=False)
    files = artifacts.list_dir(folder)
    return {"files": files} if files else {}


@api_view(("GET", "PUT", "DELETE"), body="raw")
def artifact(request, params, artifact_path: str):
    relative = artifacts.normalize_path(artifact_path)
    if not relative:
        raise InvalidParameter("Invalid path")
    artifacts.check_access(request.user, relative, write=request.method != "GET")
    if request.method == "GET":
        return send_artifact(relative)
    if request.method == "PUT":
        _upload(request, relative)
        # The real server answers an upload with 200 and an empty body.
        response = HttpResponse(b"", status=200)
        del response["Content-Type"]
        return response
    artifacts.delete(relative)
    return {}


def send_artifact(relative: str, name: str | None = None) -> FileResponse:
    """Stream one stored file as MLflow's `_send_artifact` does: always an attachment, nosniff,
    MLflow's MIME guess (see content_type_for). `name` is the logical file name (default: the path's)."""
    try:
        handle = artifacts.open_file(relative)
    except DoesNotExist:
        if artifacts.exists(relative):
            # What the real server answers for a folder.
            raise InvalidParameter(f"Artifact path refers to a directory, not a file: '{name or relative}'") from None
        raise
    response = FileResponse(handle, content_type=content_type_for(relative))
    response["Content-Disposition"] = content_disposition(posixpath.basename(name or relative))
    response["X-Content-Type-Options"] = "nosniff"
    response.block_size = DOWNLOAD_BLOCK_SIZE
    size = getattr(handle, "size", None)
    if isinstance(size, int) and "Content-Length" not in response:
        response["Content-Length"] = str(size)
    return response


def _quote(value: str) -> str:
    if value and TOKEN_CHARS.issuperset(value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def content_disposition(filename: str) -> str:
    """MLflow's `_content_disposition_attachment`: `attachment; filename=<token or quoted>`, plus an
    RFC 5987 `filename*` (and an ASCII fallback) for names that are not ASCII."""
    try:
        filename.encode("ascii")
    except UnicodeEncodeError:
        fallback = unicodedata.normalize("NFKD", filename).encode("ascii", "ignore").decode("ascii") or "download"
        return f"attachment; filename={_quote(fallback)}; filename*=UTF-8''{quote(filename, safe='!#$&+-.^_`|~')}"
    return f"attachment; filename={_quote(filename)}"


class ChunkedBody:
    """Decodes a `Transfer-Encoding: chunked` body from the raw socket stream, chunk by chunk.

    Needed behind servers that hand the application the undecoded body (wsgiref, so Django's
    runserver and live_server); gunicorn decodes it itself and says so with `wsgi.input_terminated`.
    """

    def __init__(self, raw):
        self.raw = raw
        self.left = 0  # bytes left in the current chunk
        self.done = False

    def _line(self) -> bytes:
        line = self.raw.readline(65537)
        if not line.endswith(b"\n"):
            raise artifacts.IncompleteUpload("Malformed chunked request body.")
        return line.strip()

    def read(self, size: int = -1) -> bytes:
        if self.done:
            return b""
        if self.left == 0:
            try:
                self.left = int(self._line().split(b";", 1)[0], 16)
            except ValueError:
                raise artifacts.IncompleteUpload("Malformed chunked request body.") from None
            if self.left == 0:
                while self._line():  # trailers, up to the blank line
                    pass
                self.done = True
                return b""
        want = self.left if size is None or size < 0 else min(size, self.left)
        data = self.raw.read(want)
        if not data:
            raise artifacts.IncompleteUpload("The chunked request body ended early.")
        self.left -= len(data)
        if self.left == 0 and self.raw.read(2) != b"\r\n":
            raise artifacts.IncompleteUpload("Malformed chunked request body.")
        return data


def request_body(request):
    """(stream, expected size or None) of an upload: Content-Length bodies through Django's
    bounded stream, chunked ones (no Content-Length) from the server's input until it ends.
    Never reads the body itself."""
    if "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower():
        # Transfer-Encoding wins over any Content-Length (RFC 9112 §6.3).
        environ = getattr(request, "environ", {})
        raw = environ.get("wsgi.input")
        if raw is None:
            return request, None  # ASGI: Django already spooled the whole body
        if environ.get("wsgi.input_terminated"):
            return raw, None  # gunicorn: decoded, ends at the end of the body
        if isinstance(raw, LimitedStream):
            # Django's runserver/live_server bound the socket to Content-Length (none: 0 bytes);
            # the socket file behind that bound holds the still-chunked body.
            raw = raw._read.__self__
        return ChunkedBody(raw), None
    raw_length = request.META.get("CONTENT_LENGTH") or ""
    if not raw_length:
        return request, 0
    try:
        expected = int(raw_length)
    except ValueError:
        raise InvalidParameter(f"Invalid Content-Length '{raw_length}'") from None
    if expected < 0:
        raise InvalidParameter(f"Invalid Content-Length '{raw_length}'")
    return request, expected


def _upload(request, relative: str, *, max_bytes: int | None = None) -> int:
    stream, expected = request_body(request)
    if max_bytes is not None:
        if expected is not None and expected > max_bytes:
            raise InvalidParameter("Artifact size is too large. Max size is 10MB.")
        stream = _Capped(stream, max_bytes)
    try:
        return artifacts.save_stream(relative, stream, expected_size=expected)
    except OSError as exc:
        # The client went away (or the socket broke) mid-body; save_stream kept nothing.
        raise artifacts.IncompleteUpload(f"Upload of '{relative}' was interrupted: {exc}") from None


class _Capped:
    def __init__(self, stream, limit: int):
        self.stream, self.limit, self.count = stream, limit, 0

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        self.count += len(data)
        if self.count > self.limit:
            raise InvalidParameter("Artifact size is too large. Max size is 10MB.")
        return data


@api_view("GET")
def server_info(request, params):
    """`GET /api/3.0/mlflow/server-info`: what the 3.x client probes before its first artifact transfer.

    Multipart and presigned transfers are not implemented, so every flag that would
    make the client use them is false (spec §4.4).
    """
    return {
        "store_type": "SqlStore",
        "workspaces_enabled": False,
        "trace_archival_enabled": False,
        "multipart_uploads_enabled": False,
        "multipart_downloads_enabled": False,
        "artifact_serving_enabled": True,
        "skill_content_max_size": 26214400,
        "skill_content_max_files": 10000,
        "presigned_upload_run_id_supported": False,
        "presigned_upload_model_id_supported": False,
        "model_artifact_presigned_downloads_supported": False,
        "features_enabled": {"gateway": False, "scheduled_issue_detection": False},
        "tracking_auth": "",
        "artifacts_presigned_only": False,
    }


# --------------------------------------------------------------------------- run and logged-model artifacts
# MLflow's endpoints that name a run or a logged model rather than a store path. The object is
# fetched with the caller's rights first (404 / 403 as its neighbours), then the store path it
# points at is checked again with the store's own rule, so a root pointing into a folder the
# caller cannot read (an experiment created with someone else's artifact_location) leaks nothing.


def store_root(artifact_uri: str) -> str | None:
    """The store path of a run's or logged model's artifact root, or None when it lies outside
    this server's store (an `s3://…` experiment location: never fetched by the server)."""
    if urlparse(artifact_uri or "").scheme != artifacts.ARTIFACT_SCHEME:
        return None
    return artifacts.uri_to_path(artifact_uri)


def _relative(params, name: str, *, required: bool = False) -> str:
    value = params.string(name, required=required) or ""
    return artifacts.normalize_path(value)


def _root_or_refuse(artifact_uri: str) -> str:
    root = store_root(artifact_uri)
    if root is None:
        raise InvalidParameter(
            f"The artifacts of '{artifact_uri}' are not stored on this server; read them from that location directly."
        )
    return root


def list_below(user, artifact_uri: str, relative: str) -> dict:
    """MLflow's ListArtifacts answer for `relative` below an artifact root: paths relative to the root."""
    root = store_root(artifact_uri)
    result = {"root_uri": artifact_uri}
    if root is None:
        return result  # an external root: nothing the server may list
    folder = artifacts.join(root, relative)
    artifacts.check_access(user, folder, write=False)
    files = [
        {**entry, "path": posixpath.join(relative, entry["path"]) if relative else entry["path"]}
        for entry in artifacts.list_dir(folder)
    ]
    if files:
        result["files"] = files
    return result


def send_below(user, artifact_uri: str, relative: str) -> FileResponse:
    if not relative:
        raise InvalidParameter("Invalid path")
    path = artifacts.join(_root_or_refuse(artifact_uri), relative)
    artifacts.check_access(user, path, write=False)
    return send_artifact(path, relative)


@api_view("GET")
def list_run_artifacts(request, params):
    """`GET /api/2.0/mlflow/artifacts/list?run_id=&path=` (MLflow's ListArtifacts)."""
    run_id = params.run_id()
    relative = _relative(params, "path")
    run = access.get_run_for_user(request.user, run_id)
    return list_below(request.user, run.artifact_uri, relative)


@api_view("GET")
def get_run_artifact(request, params):
    """`GET /get-artifact?run_id=|run_uuid=&path=`: one run file, as MLflow's UI downloads it."""
    run_id = params.run_id()
    relative = _relative(params, "path", required=True)
    run = access.get_run_for_user(request.user, run_id)
    return send_below(request.user, run.artifact_uri, relative)


@api_view("POST", body="raw")
def upload_run_artifact(request, params):
    """`POST /ajax-api/2.0/mlflow/upload-artifact?run_uuid=&path=` (the UI's upload; at most 10 MB).

    MLflow's checks and texts, in MLflow's order; the body streams to storage.
    """
    run_id = params.string("run_uuid")
    if not run_id:
        raise InvalidParameter("Request must specify run_uuid.")
    if not params.string("path"):
        raise InvalidParameter("Request must specify path.")
    relative = _relative(params, "path")
    _, expected = request_body(request)
    if expected is not None and expected > UI_UPLOAD_MAX_BYTES:
        raise InvalidParameter("Artifact size is too large. Max size is 10MB.")
    if expected == 0:
        raise InvalidParameter("Request must specify data.")
    run = access.get_run_for_user(request.user, run_id, action="edit")
    path = artifacts.join(_root_or_refuse(run.artifact_uri), relative)
    artifacts.check_access(request.user, path, write=True)
    if _upload(request, path, max_bytes=UI_UPLOAD_MAX_BYTES) == 0:  # an empty chunked body
        artifacts.delete(path)
        raise InvalidParameter("Request must specify data.")
    return {}


@api_view("GET")
def list_logged_model_artifacts(request, params, model_id: str):
    """`GET logged-models/<id>/artifacts/directories?artifact_directory_path=`."""
    relative = _relative(params, "artifact_directory_path")
    model = access.get_logged_model_for_user(request.user, model_id)
    return list_below(request.user, model.artifact_location, relative)


@api_view("GET")
def get_logged_model_artifact(request, params, model_id: str):
    """`GET /ajax-api/2.0/mlflow/logged-models/<id>/artifacts/files?artifact_file_path=`."""
    if not params.string("artifact_file_path"):
        raise MlflowError('Request must include the "artifact_file_path" query parameter.', error_code="BAD_REQUEST")
    relative = _relative(params, "artifact_file_path")
    model = access.get_logged_model_for_user(request.user, model_id)
    return send_below(request.user, model.artifact_location, relative)


# --------------------------------------------------------------------------- presigned and multipart transfers
# Not offered (server-info says so, and clients only use them when it says otherwise); answered
# with MLflow's own errors after the same path and access checks as a plain transfer.


def _presigned_target(request, params, *, model_allowed: bool):
    run_id, model_id = params.string("run_id"), params.string("model_id") if model_allowed else None
    if model_allowed and bool(run_id) == bool(model_id):
        raise InvalidParameter("Exactly one of run_id and model_id must be provided.")
    if not run_id and not model_id:
        raise missing_parameter("run_id")
    artifacts.normalize_path(params.string("path", required=True))
    expiration = params.integer("expiration")
    if run_id:
        return access.get_run_for_user(request.user, run_id, action="edit" if model_allowed else "read").artifact_uri, expiration
    return access.get_logged_model_for_user(request.user, model_id, action="edit").artifact_location, expiration


def _refuse_presigned(uri: str, *, proxied: str, kind: str):
    scheme = urlparse(uri).scheme
    if scheme in ("http", "https", "mlflow-artifacts"):
        raise InvalidParameter(
            f"Presigned {kind} is not supported for {proxied} (artifact URI scheme: {scheme}). "
            f"This endpoint requires a {'run with a ' if kind == 'download' else ''}direct cloud storage artifact URI."
        )
    raise NotImplementedByServer(f"Presigned {kind} is not supported for the current artifact repository")


@api_view("POST")
def create_presigned_upload_url(request, params):
    uri, _ = _presigned_target(request, params, model_allowed=True)
    _refuse_presigned(uri, proxied="proxied artifact storage", kind="upload")


@api_view("POST")
def create_presigned_download_url(request, params):
    if not params.string("run_id"):
        raise missing_parameter("run_id")
    uri, expiration = _presigned_target(request, params, model_allowed=False)
    if expiration is not None and not 1 <= expiration <= 604800:
        raise InvalidParameter(f"expiration must be between 1 and 604800 seconds (got {expiration}).")
    _refuse_presigned(uri, proxied="runs with proxied artifact storage", kind="download")


@api_view("POST")
def multipart_upload(request, params, action: str, artifact_path: str):
    """`POST mlflow-artifacts/mpu/{create,complete,abort}/<path>`: multipart uploads are not offered."""
    relative = artifacts.normalize_path(artifact_path)
    artifacts.check_access(request.user, relative, write=True)
    raise NotImplementedByServer("Multipart upload is not supported for the current artifact repository")


@api_view("GET")
def presigned_download(request, params, artifact_path: str):
    """`GET mlflow-artifacts/presigned/<path>`: multipart (presigned) downloads are not offered."""
    relative = artifacts.normalize_path(artifact_path)
    artifacts.check_access(request.user, relative, write=False)
    raise NotImplementedByServer("Multipart download is not supported for the current artifact repository")


urlpatterns = [
    path("artifacts", list_artifacts, name="mlflow-artifacts-list"),
    path("artifacts/<path:artifact_path>", artifact, name="mlflow-artifacts-file"),
    re_path(r"^mpu/(?P<action>create|complete|abort)/(?P<artifact_path>.+)$", multipart_upload),
    path("presigned/<path:artifact_path>", presigned_download),
]

# Below /api/2.0/mlflow/ and /ajax-api/2.0/mlflow/.
mlflow_urlpatterns = [
    path("artifacts/list", list_run_artifacts),
    path("artifacts/presigned-upload-url", create_presigned_upload_url),
    path("artifacts/presigned-download-url", create_presigned_download_url),
    path("logged-models/<str:model_id>/artifacts/directories", list_logged_model_artifacts),
]

# Below /ajax-api/2.0/mlflow/ only (Flask routes of mlflow/server/__init__.py).
ajax_urlpatterns = [
    path("upload-artifact", upload_run_artifact),
    path("logged-models/<str:model_id>/artifacts/files", get_logged_model_artifact),
]

# At the site root.
root_urlpatterns = [
    path("get-artifact", get_run_artifact),
]
