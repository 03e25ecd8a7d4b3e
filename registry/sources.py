"""A model version's source: the one rule for what it may name and whose rights read it.

Used by `services.create_model_version` (the API and the pages go through it) and again by the
registration task, as the version's creator, before anything is copied.

- The caller must be able to read every object the version names: the source, `run_id` and
  `model_id`. An object the caller cannot see answers as a missing one (404, MLflow's text); one
  the caller can see but not read answers 403. Nothing is written in either case.
- Sources inside the server's artifact store are copied into the version's own immutable folder:
  `runs:/<run>/<path>`, `models:/m-<id>` (or a bare logged-model id), `models:/<name>/<version>`
  (also `/<stage>`, `/latest`, `@<alias>`), `mlflow-artifacts:/<path>`, and store-relative paths.
  Absolute filesystem paths and `file:` URIs name the same store from the server's side: only
  superusers may use them, and only inside the store.
- Every other URI (`s3://`, `gs://`, `wasbs://`, `dbfs:/`, `hdfs://`, `http(s)://`, …) is an
  external reference: registered READY as MLflow does, never fetched by the server.

MLflow's own consistency rules hold too: a `run_id` (or `model_id`) sent with the source must be
the one that contains it (`mlflow.server.handlers._validate_source_run/_model`).
"""

import re
import urllib.parse
from dataclasses import dataclass

from django.conf import settings

from core import artifacts
from core.errors import DoesNotExist, InvalidParameter, PermissionDenied
from registry import access
from registry.models import ModelVersion, RegisteredModelAlias
from tracking import access as tracking_access
from tracking.models import LoggedModel, Run

STORE_SCHEMES = ("runs", "models", artifacts.ARTIFACT_SCHEME, "file")
_RUNS = re.compile(r"runs:/([^/]+)(?:/(.*))?")
# Every run of this server (and of any MLflow server) has a 32-hex id. A run_id of another form can name
# no run here, so it is kept as the string MLflow would keep, linked to nothing; a 32-hex id must name a
# run the caller may read (a missing one answers as an invisible one: no existence oracle).
_RUN_ID_HERE = re.compile(r"[0-9a-fA-F]{32}")
_LOGGED_MODEL_ID = re.compile(r"m-[0-9a-f]{32}")
_LOGGED_MODEL_URI = re.compile(r"models:/(m-[0-9a-f]{32})/?")
_REGISTERED_URI = re.compile(r"models:/([^/@]+)(?:/([^/]+)|@(.+?))/?")
_SCHEME = re.compile(r"^([a-zA-Z][\w+.-]+):")  # two letters at least: `C:\…` is a path


class SourceRefused(Exception):
    """The registration task may not copy a source (its creator lost access, or is gone)."""


@dataclass
class Source:
    """What a version's source resolved to for one user.

    `path` is the store folder to copy (None for an external reference); `run` and `logged_model`
    are the objects the version names, each readable by that user; `tag_logged_model` says whether
    the user may also write the logged model's `mlflow.modelVersions` tag."""

    uri: str
    path: str | None
    run: Run | None = None
    foreign_run_id: str | None = None  # a run_id of a form no run here has (kept as MLflow does, never linked)
    logged_model: LoggedModel | None = None
    tag_logged_model: bool = False

    @property
    def external(self) -> bool:
        return self.path is None


def invalid_source(source: str, named_by: str) -> InvalidParameter:
    """MLflow's text for a run_id/model_id that does not contain the source."""
    return InvalidParameter(
        f"Invalid model version source: '{source}'. The {named_by} request parameter must identify the resource "
        "that contains the source."
    )


def _relative_escape(source: str) -> InvalidParameter | None:
    """MLflow's refusal of `..` (also percent-encoded) and NUL in a source
    (`_validate_non_local_source_contains_relative_paths`)."""
    unquoted = source
    while (step := urllib.parse.unquote_plus(unquoted)) != unquoted:
        unquoted = step
    if "\x00" in unquoted or any(part == ".." for part in re.split(r"[/\\]", unquoted)):
        return InvalidParameter(
            f"Invalid model version source: '{source}'. If supplying a source as an http, https, local file path, "
            "ftp, objectstore, or mlflow-artifacts uri, an absolute path must be provided without relative path "
            "references present. Please provide an absolute path."
        )
    return None


def _store_path_of_uri(uri: str) -> str | None:
    """The store folder an artifact URI of this server names (`mlflow-artifacts:/…`), else None
    (the run or logged model keeps its files elsewhere)."""
    if not uri or not uri.startswith(artifacts.ARTIFACT_SCHEME + ":"):
        return None
    return artifacts.uri_to_path(uri)


def _under(path: str, root: str | None) -> bool:
    return root is not None and (path == root or path.startswith(root.rstrip("/") + "/"))


def _readable_run(user, run_id: str) -> Run:
    return tracking_access.get_run_for_user(user, run_id, action="read")


def _readable_logged_model(user, model_id: str) -> LoggedModel:
    return tracking_access.get_logged_model_for_user(user, model_id, action="read")


def _can_edit(user, logged_model: LoggedModel) -> bool:
    try:
        tracking_access._check_action(user, logged_model.experiment, "edit")
    except PermissionDenied:
        return False
    return True


def _registered_version(user, name: str, selector: str | None, alias: str | None) -> ModelVersion:
    """`models:/<name>/<version|stage|latest>` or `models:/<name>@<alias>`, as the user reads it."""
    model = access.get_registered_model_for_user(user, name)
    versions = ModelVersion.objects.filter(registered_model=model)
    if alias is not None:
        row = RegisteredModelAlias.objects.filter(model=model, alias=alias).values_list("version_id", flat=True).first()
        mv = versions.filter(pk=row).first() if row else None
        if mv is None:
            raise InvalidParameter(f"Registered model alias {alias} not found.")
        return mv
    if selector and selector.isdigit():
        mv = versions.filter(version=int(selector)).first()
        if mv is None:
            raise access.not_found_version(name, selector)
        return mv
    if selector and selector.lower() == "latest":
        mv = versions.order_by("-version").first()
    else:
        mv = versions.filter(current_stage__iexact=selector or "").order_by("-version").first()
    if mv is None:
        raise DoesNotExist(f"No versions of model with name '{name}' and stage '{selector}' found")
    return mv


def _local_store_path(user, source: str) -> str:
    """An absolute path or `file:` URI: superusers only, and only inside the artifact store."""
    if not getattr(user, "is_superuser", False):
        raise PermissionDenied(
            f"Permission denied: only administrators may register a filesystem path ('{source}'); "
            "use runs:/<run_id>/<path>, models:/<model_id> or an mlflow-artifacts:/ URI."
        )
    path = re.sub(r"^file:(//[^/]*)?", "", source) if source.startswith("file:") else source
    path = urllib.parse.unquote(path)
    for base in filter(None, (_storage_location(), str(settings.ARTIFACT_ROOT).rstrip("/"))):
        if path == base or path.startswith(base + "/"):
            return artifacts.normalize_path(path[len(base):].lstrip("/"))
    raise InvalidParameter(f"Invalid model version source: '{source}' is outside the server's artifact store.")


def _storage_location() -> str:
    location = getattr(artifacts.get_storage(), "location", "") or ""
    return str(location).rstrip("/")


def resolve(*, source: str, user, run_id: str | None = None, model_id: str | None = None) -> Source:
    """Resolve `source` (with the `run_id`/`model_id` sent beside it) as `user` may read it.

    Raises DoesNotExist (an object the user cannot see, or that is missing), PermissionDenied (one
    the user can see but not read, a filesystem path from a non-superuser) or InvalidParameter
    (a malformed source, or a run_id/model_id that does not contain it). Reads, never writes.
    """
    source = (source or "").strip()
    if not source:
        raise InvalidParameter("Missing value for required parameter 'source'.")
    error = _relative_escape(source)
    if error is not None:
        raise error
    foreign = run_id if run_id and not _RUN_ID_HERE.fullmatch(run_id) else None
    run = _readable_run(user, run_id) if run_id and not foreign else None
    logged_model = _readable_logged_model(user, model_id) if model_id else None
    scheme_match = _SCHEME.match(source)
    scheme = scheme_match.group(1).lower() if scheme_match else ""
    uri, path = source, None

    if scheme == "runs":
        match = _RUNS.fullmatch(source)
        if match is None:
            raise invalid_source(source, "run_id")
        named, sub = match.group(1), (match.group(2) or "").strip("/")
        if (run is not None and run.pk != named) or (foreign and foreign != named):
            raise invalid_source(source, "run_id")
        if not _RUN_ID_HERE.fullmatch(named):
            # `runs:/run_id/model`: no run here can be meant; a reference, as MLflow registers it.
            return Source(uri=source, path=None, logged_model=logged_model, foreign_run_id=named,
                          tag_logged_model=logged_model is not None and _can_edit(user, logged_model))
        run = run or _readable_run(user, named)
        root = _store_path_of_uri(run.artifact_uri)
        if root is None:
            return _external(source, user, run, logged_model)
        path = artifacts.join(root, sub) if sub else root
        if sub and not artifacts.is_file(path + "/MLmodel"):
            # 3.x: `runs:/<run>/model` names the logged model the run produced under that name.
            named_model = (
                LoggedModel.objects.active().select_related("experiment").filter(source_run=run, name=sub)
                .order_by("-creation_timestamp_ms").first()
            )
            if named_model is not None:
                located = _store_path_of_uri(named_model.artifact_location)
                if located is None:
                    return _external(source, user, run, logged_model)
                path = located
    elif scheme == "models" or _LOGGED_MODEL_ID.fullmatch(source):
        logged = _LOGGED_MODEL_URI.fullmatch(source)
        if logged or _LOGGED_MODEL_ID.fullmatch(source):
            named = logged.group(1) if logged else source
            if logged_model is not None and logged_model.pk != named:
                raise invalid_source(source, "model_id")
            logged_model = logged_model or _readable_logged_model(user, named)
            path = _store_path_of_uri(logged_model.artifact_location)
            if run is None and logged_model.source_run_id:
                run = _optional_run(user, logged_model.source_run_id)
            if path is None:
                return _external(source, user, run, logged_model)
        else:
            registered = _REGISTERED_URI.fullmatch(source)
            if registered is None or "://" in source:
                raise InvalidParameter(
                    f"Invalid model version source: '{source}'. Registered model sources must use the active model "
                    "registry (models:/<name>/<version>)."
                )
            other = _registered_version(user, registered.group(1), registered.group(2), registered.group(3))
            if other.status != ModelVersion.READY:
                raise InvalidParameter(
                    f"Invalid model version source: '{source}' names version {other.version}, which is "
                    f"{other.status}; register from a READY version."
                )
            uri = f"models:/{other.registered_model.name}/{other.version}"
            # The new version inherits what the source version names, where this user may read it.
            if run is None and other.run_id:
                run = _optional_run(user, other.run_id)
            if logged_model is None and other.model_id:
                logged_model = _optional_logged_model(user, other.model_id)
            if other.is_external:
                return Source(uri=other.source, path=None, run=run, logged_model=logged_model,
                              tag_logged_model=logged_model is not None and _can_edit(user, logged_model))
            path = other.storage_path
            artifacts.check_access(user, path, write=False)
            return _store(uri, path, run, logged_model, user, check=False)
    elif scheme == artifacts.ARTIFACT_SCHEME:
        path = artifacts.uri_to_path(source)
    elif scheme == "file" or source.startswith("/") or source.startswith("\\"):
        path = _local_store_path(user, source)
    elif scheme:
        external = _external(source, user, run, logged_model)
        external.foreign_run_id = foreign
        return external
    else:
        # A store-relative path (`1/<run>/artifacts/model`), as the artifact proxy names it.
        path = artifacts.normalize_path(source)

    if scheme not in ("runs", "models") and not _LOGGED_MODEL_ID.fullmatch(source):
        # MLflow's rule: the run_id (or model_id) sent beside a path must be the one containing it.
        if logged_model is not None and model_id:
            if not _under(path, _store_path_of_uri(logged_model.artifact_location)):
                raise invalid_source(source, "model_id")
        elif foreign or (run is not None and not _under(path, _store_path_of_uri(run.artifact_uri))):
            raise invalid_source(source, "run_id")
    return _store(uri, path, run, logged_model, user)


def _optional_run(user, run_id: str) -> Run | None:
    """A run the version would inherit: kept only when the user may read it."""
    try:
        return _readable_run(user, run_id)
    except (DoesNotExist, PermissionDenied):
        return None


def _optional_logged_model(user, model_id: str) -> LoggedModel | None:
    try:
        return _readable_logged_model(user, model_id)
    except (DoesNotExist, PermissionDenied):
        return None


def _store(uri: str, path: str, run, logged_model, user, *, check: bool = True) -> Source:
    if check:
        artifacts.check_access(user, path, write=False)
    return Source(
        uri=uri, path=path, run=run, logged_model=logged_model,
        tag_logged_model=logged_model is not None and _can_edit(user, logged_model),
    )


def _external(source: str, user, run, logged_model) -> Source:
    return Source(
        uri=source, path=None, run=run, logged_model=logged_model,
        tag_logged_model=logged_model is not None and _can_edit(user, logged_model),
    )
