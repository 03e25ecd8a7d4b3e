"""MLflow's artifact proxy (`/api/2.0/mlflow-artifacts/`) and the 3.x capability probe.

Wire behaviour follows the real MLflow 3.18 server (spec §4.2, §4.4). Every
path goes through core.artifacts.normalize_path before storage is touched, and
bodies are streamed both ways: uploads with request.read(chunk) (never
request.body), downloads with FileResponse.
"""

import posixpath

from django.http import FileResponse, HttpResponse
from django.urls import path

from core import artifacts
from core.api import api_view
from core.errors import DoesNotExist, InvalidParameter, MlflowError, PermissionDenied
from tracking import access

TEXT_NAMES = {"MLmodel", "MLproject"}
TEXT_EXTENSIONS = {".txt", ".yaml", ".yml", ".json"}
DOWNLOAD_BLOCK_SIZE = 256 * 1024


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


class LengthRequired(MlflowError):
    error_code = "BAD_REQUEST"

    def __init__(self, message: str):
        super().__init__(message, status=411)


def content_type_for(name: str) -> str:
    base = posixpath.basename(name)
    if base in TEXT_NAMES or posixpath.splitext(base)[1].lower() in TEXT_EXTENSIONS:
        return "text/plain"
    return "application/octet-stream"


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
        return _download(relative)
    if request.method == "PUT":
        return _upload(request, relative)
    artifacts.delete(relative)
    return {}


def _download(relative: str) -> FileResponse:
    try:
        handle = artifacts.open_file(relative)
    except DoesNotExist:
        if artifacts.exists(relative):
            # What the real server answers for a folder.
            raise InvalidParameter(f"Artifact path refers to a directory, not a file: '{relative}'") from None
        raise
    response = FileResponse(
        handle, content_type=content_type_for(relative), as_attachment=True, filename=posixpath.basename(relative)
    )
    response.block_size = DOWNLOAD_BLOCK_SIZE
    size = getattr(handle, "size", None)
    if isinstance(size, int) and "Content-Length" not in response:
        response["Content-Length"] = str(size)
    return response


def _upload(request, relative: str) -> HttpResponse:
    raw_length = request.META.get("CONTENT_LENGTH") or ""
    if not raw_length:
        if "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower():
            # Django's WSGI request only reads Content-Length bytes; a chunked body would be stored empty.
            raise LengthRequired("Artifact uploads need a Content-Length header (chunked bodies are not accepted).")
        expected = 0
    else:
        try:
            expected = int(raw_length)
        except ValueError:
            raise InvalidParameter(f"Invalid Content-Length '{raw_length}'") from None
        if expected < 0:
            raise InvalidParameter(f"Invalid Content-Length '{raw_length}'")
    try:
        artifacts.save_stream(relative, request, expected_size=expected)
    except OSError as exc:
        # The client went away (or the socket broke) mid-body; save_stream kept nothing.
        raise artifacts.IncompleteUpload(f"Upload of '{relative}' was interrupted: {exc}") from None
    # The real server answers an upload with 200 and an empty body.
    response = HttpResponse(b"", status=200)
    del response["Content-Type"]
    return response


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


urlpatterns = [
    path("artifacts", list_artifacts, name="mlflow-artifacts-list"),
    path("artifacts/<path:artifact_path>", artifact, name="mlflow-artifacts-file"),
]
