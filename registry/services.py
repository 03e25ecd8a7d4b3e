"""Every registry write, one function per MLflow store verb.

Locking policy: a write takes the parent RegisteredModel row with
select_for_update() first, then the version rows, so two writers on one model run
one at a time (version numbers, "one version per stage after archive", aliases).
Each write records its outbox Event in the same transaction; tasks (registration,
dispatch) are enqueued on commit.
"""

import json
import logging
import re
from collections.abc import Iterable
from urllib.parse import unquote

import yaml
from django.db import IntegrityError, connection, transaction
from django.db.models import Prefetch
from django.urls import resolve, reverse

from core.errors import AlreadyExists, InvalidParameter, InvalidState, missing_parameter
from core.validation import check_display_name, check_key, check_path_name, invalid, loads_bounded
from core.sql import execute_all, fetch, fetch_sets, insert_statement, instance, row_by_pk, select_plain
from registry import access, reads, sources
from registry.events import record_event, schedule_registration
from registry.models import (
    BUILT_IN_STAGES,
    STAGE_ARCHIVED,
    STAGE_NONE,
    ModelVersion,
    ModelVersionTag,
    RegisteredModel,
    RegisteredModelAlias,
    RegisteredModelTag,
    Stage,
    StageTransition,
)
from tracking.models import LoggedModel, LoggedModelTag, now_ms

log = logging.getLogger("stagegate.registry")

MAX_NAME_LENGTH = 256
MAX_TAG_KEY_LENGTH = 250
MAX_TAG_VALUE_LENGTH = 100_000
MAX_ALIAS_LENGTH = 255


# --------------------------------------------------------------------------- validation helpers


def _validate_name(name: str | None, param: str = "name") -> str:
    if name is None or name == "":
        raise missing_parameter(param)
    if not isinstance(name, str):
        raise InvalidParameter(f"Invalid value {name} for parameter '{param}'")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidParameter(f"Registered model name '{name[:40]}…' exceeds the maximum length of {MAX_NAME_LENGTH} characters.")
    return name


def validate_new_name(name: str | None, param: str = "name") -> str:
    """The rules for a name being given (create, rename): MLflow's path rule, no control or bidi
    characters, and a page URL that leads back to this model. Lookups of existing (older) names skip them."""
    name = check_path_name(check_display_name(_validate_name(name, param), param), param)
    url = reverse("registry:model_detail", args=[name])
    match = resolve(unquote(url))
    if match.view_name != "registry:model_detail" or match.kwargs.get("name") != name:
        raise invalid(param, name, f"the address of its page ({url}) is taken by another page; "
                                   "leave out path parts such as '/versions/<n>' or '/permissions'.")
    return name


def _validate_tag(key: str | None, value) -> tuple[str, str]:
    if key is None or key == "":
        raise missing_parameter("key")
    if not isinstance(key, str):
        raise InvalidParameter(f"Invalid value {key} for parameter 'key'")
    if len(key) > MAX_TAG_KEY_LENGTH:
        raise InvalidParameter(f"Tag key '{key[:40]}…' exceeds the maximum length of {MAX_TAG_KEY_LENGTH} characters.")
    check_key(key)
    value = "" if value is None else value
    if not isinstance(value, str):
        value = str(value)
    if len(value) > MAX_TAG_VALUE_LENGTH:
        raise InvalidParameter(f"Tag value for key '{key}' exceeds the maximum length of {MAX_TAG_VALUE_LENGTH} characters.")
    return key, value


def _tag_pairs(tags: Iterable | None) -> list[tuple[str, str]]:
    pairs = {}
    for tag in tags or ():
        if isinstance(tag, dict):
            key, value = _validate_tag(tag.get("key"), tag.get("value"))
        else:
            key, value = _validate_tag(*tag)
        pairs[key] = value
    return list(pairs.items())


def validate_alias(alias: str | None) -> str:
    """MLflow's alias rules: a word of letters, digits, `_` and `-`; `latest` and `v<digits>` reserved."""
    if alias is None or alias == "":
        raise missing_parameter("alias")
    if len(alias) > MAX_ALIAS_LENGTH:
        raise InvalidParameter(f"Alias name '{alias[:40]}…' exceeds the maximum length of {MAX_ALIAS_LENGTH} characters.")
    if alias.lower() == "latest":
        raise InvalidParameter("'latest' alias name (case insensitive) is reserved.")
    if re.fullmatch(r"[vV]\d+", alias):
        raise InvalidParameter(f"Version alias name '{alias}' is reserved.")
    if not re.fullmatch(r"[\w\-]+", alias):
        raise InvalidParameter(
            f"Invalid alias name: '{alias}'. Aliases may only contain letters, digits, underscores (_) and dashes (-)."
        )
    return alias


def stage_names() -> list[str]:
    # Plain SQL: every transition asks (the ORM compiled this one-column query in ~0.3 ms).
    table = connection.ops.quote_name(Stage._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT name FROM {table} ORDER BY "order", id')
        names = [row[0] for row in cursor.fetchall()]
    return names or list(BUILT_IN_STAGES)


def canonical_stage(stage: str | None) -> str:
    """The stored spelling of a stage given in any case; 400 listing the valid stages otherwise."""
    if stage is None or stage == "":
        raise missing_parameter("stage")
    names = stage_names()
    for name in names:
        if name.lower() == str(stage).strip().lower():
            return name
    raise InvalidParameter(f"Invalid Model Version stage: {stage}. Value must be one of {', '.join(names)}.")


def _user_name(user) -> str:
    return user.get_username() if user is not None and getattr(user, "is_authenticated", False) else ""


def _actor(user):
    return user if user is not None and getattr(user, "pk", None) else None


def _lock_model(user, name: str, *, action: str = access.EDIT) -> RegisteredModel:
    return _lock_model_and_version(user, name, None, action=action)[0]


def _lock_model_and_version(user, name: str, version: int | None, *,
                            action: str = access.EDIT) -> tuple[RegisteredModel, ModelVersion | None]:
    """Lock the model (and `version` of it) in one round trip on PostgreSQL: the SELECT … FOR UPDATE
    statements travel as one message and run in order (model, then version: the lock order of every
    registry write), each finding the model through the visibility rule of the readers
    (`access.visible_model_sql`); no ORM compile. Errors as get_registered_model_for_user: 404 for a
    model the user cannot see, 403 for an action they may not take, then 404 for a missing version.
    The version's JSON columns (flavors, signature) are left deferred."""
    model_id, params = access.visible_model_sql(user, name)
    statements = [select_plain(RegisteredModel, f'"id" = ({model_id})', params, lock=True)]
    if version is not None:
        statements.append(select_plain(ModelVersion, f'"registered_model_id" = ({model_id}) AND "version" = %s',
                                       [*params, version], lock=True))
    found = fetch_sets(statements)
    model = instance(RegisteredModel, found[0])
    if model is None:
        raise access.not_found_model(name)
    if action != access.READ:
        access.check(user, model, action)
    if version is None:
        return model, None
    mv = instance(ModelVersion, found[1])
    if mv is None:
        raise access.not_found_version(model.name, version)
    mv.registered_model = model
    return model, mv


def _lock_version(model: RegisteredModel, version: int) -> ModelVersion:
    """Lock one version of the (already locked) model; its JSON columns are left deferred."""
    mv = instance(ModelVersion, fetch(*select_plain(ModelVersion, '"registered_model_id" = %s AND "version" = %s',
                                                     [model.pk, version], lock=True)))
    if mv is None:
        raise access.not_found_version(model.name, version)
    mv.registered_model = model
    return mv


def _upsert_tag(tag, parent: str):
    """Insert the tag or overwrite its value in one statement (INSERT … ON CONFLICT (parent, key) DO UPDATE)."""
    type(tag).objects.bulk_create([tag], update_conflicts=True, unique_fields=[parent, "key"], update_fields=["value"])
    return tag


def _touch(model: RegisteredModel, ts: int) -> None:
    RegisteredModel.objects.filter(pk=model.pk).update(last_updated_timestamp=ts)
    model.last_updated_timestamp = ts


# --------------------------------------------------------------------------- registered models


@transaction.atomic
def create_registered_model(*, name: str, user, description: str | None = None, tags=()) -> RegisteredModel:
    """Create a registered model. Raises AlreadyExists (400 RESOURCE_ALREADY_EXISTS) for a taken name."""
    name = _validate_name(name)
    pairs = _tag_pairs(tags)
    if RegisteredModel.objects.filter(name=name).exists():
        # Before the creation rule: mlflow.register_model on an existing model must see ALREADY_EXISTS.
        raise AlreadyExists(f"Registered Model (name={name}) already exists.")
    validate_new_name(name)
    access.require_create(user)
    ts = now_ms()
    try:
        with transaction.atomic():
            model = RegisteredModel.objects.create(
                name=name, description=description, creation_timestamp=ts, last_updated_timestamp=ts, owner=_actor(user)
            )
    except IntegrityError:
        raise AlreadyExists(f"Registered Model (name={name}) already exists.") from None
    RegisteredModelTag.objects.bulk_create([RegisteredModelTag(model=model, key=k, value=v) for k, v in pairs])
    record_event(type="registered_model.created", model=model, actor=_actor(user), payload={"description": description})
    return model


@transaction.atomic
def update_registered_model(*, name: str, user, description: str | None) -> RegisteredModel:
    """Set the description (locks the model)."""
    model = _lock_model(user, name)
    previous = model.description
    model.description = description
    model.last_updated_timestamp = now_ms()
    model.save(update_fields=["description", "last_updated_timestamp"])
    if previous != description:
        record_event(
            type="registered_model.description_changed",
            model=model,
            actor=_actor(user),
            payload={"previous": previous, "description": description},
        )
    return model


@transaction.atomic
def rename_registered_model(*, name: str, new_name: str, user) -> RegisteredModel:
    """Rename; versions and aliases follow (they point at the row), files never move."""
    new_name = validate_new_name(new_name, "new_name")
    model = _lock_model(user, name, action=access.MANAGE)
    if new_name == name:
        return model
    if RegisteredModel.objects.filter(name=new_name).exists():
        raise AlreadyExists(f"Registered Model (name={new_name}) already exists.")
    ts = now_ms()
    model.name = new_name
    model.last_updated_timestamp = ts
    try:
        with transaction.atomic():
            model.save(update_fields=["name", "last_updated_timestamp"])
    except IntegrityError:
        raise AlreadyExists(f"Registered Model (name={new_name}) already exists.") from None
    ModelVersion.objects.filter(registered_model=model).update(last_updated_timestamp=ts)
    record_event(
        type="registered_model.renamed", model=model, actor=_actor(user), payload={"old_name": name, "new_name": new_name}
    )
    return model


@transaction.atomic
def delete_registered_model(*, name: str, user) -> None:
    """Delete the model with its versions, aliases and tags; the versions' files go after commit."""
    from core import artifacts

    model = _lock_model(user, name, action=access.MANAGE)
    versions = list(model.versions.values_list("version", "storage_path"))
    root = f"registry/{model.pk}"
    record_event(
        type="registered_model.deleted",
        model=model,
        actor=_actor(user),
        payload={"versions": [v for v, _ in versions]},
    )
    model.delete()

    def remove_files():
        try:
            artifacts.delete(root)
        except Exception:  # a leftover folder must not turn a committed delete into an error
            log.exception("could not delete the files of registered model %s (%s)", name, root)

    transaction.on_commit(remove_files)


@transaction.atomic
def set_registered_model_tag(*, name: str, key: str, value: str, user) -> RegisteredModelTag:
    key, value = _validate_tag(key, value)
    model = _lock_model(user, name)
    tag = _upsert_tag(RegisteredModelTag(model=model, key=key, value=value), "model")
    record_event(type="registered_model_tag.set", model=model, actor=_actor(user), payload={"key": key, "value": value})
    return tag


@transaction.atomic
def delete_registered_model_tag(*, name: str, key: str, user) -> None:
    """Delete a tag; a key that does not exist is not an error (as on MLflow)."""
    if not key:
        raise missing_parameter("key")
    model = _lock_model(user, name)
    deleted, _ = RegisteredModelTag.objects.filter(model=model, key=key).delete()
    if deleted:
        record_event(type="registered_model_tag.deleted", model=model, actor=_actor(user), payload={"key": key})


# --------------------------------------------------------------------------- aliases


@transaction.atomic
def set_registered_model_alias(*, name: str, alias: str, version: int, user) -> RegisteredModelAlias:
    """Point `alias` at `version` (moving it if it pointed elsewhere). Locks the model."""
    alias = validate_alias(alias)
    model, mv = _lock_model_and_version(user, name, version)
    existing = RegisteredModelAlias.objects.filter(model=model, alias=alias).select_related("version").first()
    previous = existing.version.version if existing else None
    if existing:
        existing.version = mv
        existing.save(update_fields=["version"])
        row = existing
    else:
        row = RegisteredModelAlias.objects.create(model=model, alias=alias, version=mv)
    _touch(model, now_ms())
    record_event(
        type="alias.set",
        model=model,
        version=mv.version,
        actor=_actor(user),
        payload={"alias": alias, "version": mv.version, "previous_version": previous},
    )
    return row


@transaction.atomic
def delete_registered_model_alias(*, name: str, alias: str, user) -> None:
    """Remove an alias; one that does not exist is not an error."""
    if not alias:
        raise missing_parameter("alias")
    model = _lock_model(user, name)
    row = RegisteredModelAlias.objects.filter(model=model, alias=alias).select_related("version").first()
    if row is None:
        return
    previous = row.version.version
    row.delete()
    _touch(model, now_ms())
    record_event(
        type="alias.deleted", model=model, version=previous, actor=_actor(user), payload={"alias": alias, "previous_version": previous}
    )


def get_model_version_by_alias(*, name: str, alias: str, user) -> ModelVersion:
    """400 "Registered model alias x not found." when the alias is unknown (MLflow's code and text)."""
    if not alias:
        raise missing_parameter("alias")
    model = access.get_registered_model_for_user(user, name)
    row = RegisteredModelAlias.objects.filter(model=model, alias=alias).values_list("version_id", flat=True).first()
    if row is None:
        raise InvalidParameter(f"Registered model alias {alias} not found.")
    return access.version_queryset().get(pk=row)


# --------------------------------------------------------------------------- model versions


INSPECTED_EXTERNAL = "External source, not copied: the server never fetches it."


@transaction.atomic
def create_model_version(
    *,
    name: str,
    source: str,
    user,
    run_id: str | None = None,
    model_id: str | None = None,
    tags=(),
    run_link: str = "",
    description: str = "",
) -> ModelVersion:
    """Create the next version of `name`. Locks the model row: numbers are unique and never reused.

    The source goes through `registry.sources.resolve` as `user`: everything it names must be readable
    by them, or nothing is written. A source inside the artifact store starts PENDING_REGISTRATION and
    asks for its registration (`registry.tasks.register_pending`) on commit; an external one is READY
    at once (a reference, never fetched). The logged model it names is tagged only when `user` may edit it.

    Raises DoesNotExist (the model, or an object the source names that the user cannot see),
    PermissionDenied, InvalidParameter (a bad source, run_id/model_id not containing it).
    """
    if not source:
        raise missing_parameter("source")
    pairs = _tag_pairs(tags)
    model = _lock_model(user, _validate_name(name))
    resolved = sources.resolve(source=source, user=user, run_id=run_id or None, model_id=model_id or None)
    run, logged_model = resolved.run, resolved.logged_model

    ts = now_ms()
    number = model.last_version + 1
    model.last_version = number
    model.last_updated_timestamp = ts
    model.save(update_fields=["last_version", "last_updated_timestamp"])
    external = resolved.external
    mv = ModelVersion.objects.create(
        registered_model=model,
        version=number,
        source=resolved.uri,
        run_id=run.pk if run is not None else resolved.foreign_run_id,
        source_run=run,
        model_id=logged_model.pk if logged_model is not None else None,
        run_link=run_link or "",
        description=description or "",
        user_id=_user_name(user),
        creator=_actor(user),
        creation_timestamp=ts,
        last_updated_timestamp=ts,
        storage_path=f"registry/{model.pk}/{number}",
        status=ModelVersion.READY if external else ModelVersion.PENDING,
        is_external=external,
        inspection=INSPECTED_EXTERNAL if external else "",
    )
    ModelVersionTag.objects.bulk_create([ModelVersionTag(version=mv, key=k, value=v) for k, v in pairs])
    if logged_model is not None and resolved.tag_logged_model:
        _link_logged_model(logged_model, model.name, number)
    record_event(
        type="model_version.created",
        model=model,
        version=number,
        actor=_actor(user),
        payload={"source": mv.source, "run_id": mv.run_id, "model_id": mv.model_id, "external": external},
    )
    if external:
        record_event(type="model_version.ready", model=model, version=number, payload={"external": True, "source": mv.source})
    else:
        # After commit; robust: a broker hiccup must not turn the committed create into a 500
        # (the version stays PENDING and the beat sweep re-enqueues it).
        schedule_registration()
    return mv


def _link_logged_model(logged_model: LoggedModel, name: str, version: int) -> None:
    """Append {"name", "version"} to the logged model's `mlflow.modelVersions` tag, as MLflow does."""
    tag = LoggedModelTag.objects.filter(model=logged_model, key="mlflow.modelVersions").first()
    entries = []
    if tag is not None:
        try:
            entries = loads_bounded(tag.value)
        except ValueError:
            entries = []
        if not isinstance(entries, list):
            entries = []
    entries.append({"name": name, "version": version})
    LoggedModelTag.objects.update_or_create(
        model=logged_model, key="mlflow.modelVersions", defaults={"value": json.dumps(entries)}
    )


def inspect_model_folder(path: str) -> tuple[str, dict, dict | None]:
    """What the store folder `path` holds, as evidence: (inspection text, flavors, signature).
    Never raises for what a folder may or may not contain; storage errors propagate."""
    from core import artifacts

    mlmodel = path.rstrip("/") + "/MLmodel"
    if not artifacts.is_file(mlmodel):
        if next(iter(artifacts.walk(path)), None) is None:
            return "Nothing at the source: no files were found, so the version's folder is empty.", {}, None
        return "Not an MLflow model: no MLmodel file at the source.", {}, None
    try:
        data = yaml.safe_load(artifacts.read_text(mlmodel, 1_000_000)) or {}
    except yaml.YAMLError as exc:
        return f"Not a valid MLflow model: its MLmodel is not valid YAML ({str(exc).splitlines()[0]}).", {}, None
    flavors = data.get("flavors") if isinstance(data, dict) else None
    if not isinstance(flavors, dict) or not flavors:
        return "Not a valid MLflow model: its MLmodel declares no flavors.", {}, None
    signature = data.get("signature")
    return f"MLflow model: flavors {', '.join(sorted(flavors))}.", flavors, signature if isinstance(signature, dict) else None


def finish_model_version_registration(*, version_id: int) -> ModelVersion | None:
    """Copy a PENDING version's files into its own folder and mark it READY with what inspection found
    (an MLflow model or not), or FAILED_REGISTRATION when the copy itself fails (the source gone,
    a storage error) or its creator may no longer read the source (checked again here, as them).
    Idempotent: a version that is no longer PENDING is left as is. The copy runs outside any lock;
    the status change locks the model, then the version."""
    from django.contrib.auth import get_user_model

    from core import artifacts
    from core.errors import MlflowError

    mv = row_by_pk(ModelVersion, version_id)
    if mv is None or mv.status != ModelVersion.PENDING:
        return mv
    result, flavors, signature, inspection, error, external = None, {}, None, "", "", False
    try:
        creator = get_user_model().objects.filter(pk=mv.creator_id, is_active=True).first() if mv.creator_id else None
        if creator is None:
            raise sources.SourceRefused("its creator no longer has an active account")
        try:
            resolved = sources.resolve(source=mv.source, user=creator, run_id=mv.run_id, model_id=mv.model_id)
        except MlflowError as exc:
            raise sources.SourceRefused(exc.message) from None
        if resolved.external:
            external, inspection = True, INSPECTED_EXTERNAL
        else:
            inspection, flavors, signature = inspect_model_folder(resolved.path)
            # Start from an empty folder so a retried task never mixes two copies.
            artifacts.delete(mv.storage_path)
            result = artifacts.copy_tree(resolved.path, mv.storage_path)
    except sources.SourceRefused as exc:
        error = f"Registration refused: the version's creator may not read source '{mv.source}' now: {exc}"
    except Exception as exc:  # a storage error must end as FAILED, never as a version stuck PENDING
        log.exception("registration of %s failed", mv)
        error = f"Registration failed: {type(exc).__name__}: {exc}"
    if error:
        try:
            artifacts.delete(mv.storage_path)  # no half-copied folder behind a FAILED version
        except Exception:
            log.exception("could not clean %s", mv.storage_path)
    with transaction.atomic():
        model = row_by_pk(RegisteredModel, mv.registered_model_id, lock=True)
        if model is None:
            return None
        locked = row_by_pk(ModelVersion, mv.pk, lock=True)
        if locked is None or locked.status != ModelVersion.PENDING:
            return locked
        locked.registered_model = model
        ts = now_ms()
        locked.last_updated_timestamp = ts
        if error:
            locked.status, locked.status_message = ModelVersion.FAILED, error
            locked.save(update_fields=["status", "status_message", "last_updated_timestamp"])
            record_event(type="model_version.failed", model=model, version=locked.version, payload={"message": error})
            return locked
        locked.status, locked.status_message, locked.inspection, locked.is_external = ModelVersion.READY, "", inspection, external
        fields = ["status", "status_message", "inspection", "is_external", "last_updated_timestamp"]
        payload = {"external": True, "source": locked.source}
        if result is not None:
            locked.size_bytes, locked.file_count, locked.checksum = result["size"], result["file_count"], result["checksum"]
            locked.flavors, locked.signature = flavors, signature
            fields += ["size_bytes", "file_count", "checksum", "flavors", "signature"]
            payload = {"size_bytes": result["size"], "file_count": result["file_count"], "checksum": result["checksum"],
                       "mlflow_model": bool(flavors)}
        locked.save(update_fields=fields)
        record_event(type="model_version.ready", model=model, version=locked.version, payload=payload)
        return locked


@transaction.atomic
def update_model_version(*, name: str, version: int, user, description: str | None) -> ModelVersion:
    model, mv = _lock_model_and_version(user, name, version)
    previous = mv.description
    mv.description = description or ""
    mv.last_updated_timestamp = now_ms()
    mv.save(update_fields=["description", "last_updated_timestamp"])
    if previous != mv.description:
        record_event(
            type="model_version.description_changed",
            model=model,
            version=mv.version,
            actor=_actor(user),
            payload={"previous": previous, "description": mv.description},
        )
    return mv


# Who may make a direct stage change is governance's business, not the registry's: apps above the
# registry append their guards here from AppConfig.ready() (approvals: its stage policies). The
# registry never imports them.
TRANSITION_GUARDS: list = []


def register_transition_guard(guard) -> None:
    """`guard(*, version, stage, user)` raises (PermissionDenied, InvalidState) to refuse a direct move."""
    if guard not in TRANSITION_GUARDS:
        TRANSITION_GUARDS.append(guard)


def direct_transition_guard(*, version: ModelVersion, stage: str, user) -> None:
    """Ask every registered guard whether this direct transition is allowed (approvals raises
    PermissionDenied/InvalidState when the stage needs an approved request)."""
    for guard in TRANSITION_GUARDS:
        guard(version=version, stage=stage, user=user)


@transaction.atomic
def transition_model_version_stage(
    *,
    name: str,
    version: int,
    stage: str,
    user,
    archive_existing_versions: bool = False,
    comment: str = "",
    request_id: int | None = None,
) -> ModelVersion:
    """THE stage change, for the API, the UI, approvals and the auto-archive alike.

    Locks the model then the version; validates the stage (case-insensitive, built-in or
    custom); asks the governance guard unless it carries out an approved request
    (`request_id`); with `archive_existing_versions` moves every *other* version in the
    target stage to Archived (recorded as system transitions). Bumps last_updated on the
    version and the model, writes StageTransition and Event rows.
    """
    target = canonical_stage(stage)
    # Readers get as far as the guard, which judges the move (staging/production levels, policies)
    # and tells them how to request it instead.
    model, mv = _lock_model_and_version(user, name, version, action=access.READ)
    if mv.status == ModelVersion.FAILED and target not in (STAGE_NONE, STAGE_ARCHIVED):
        raise InvalidState(
            f"Model Version (name={model.name}, version={mv.version}) failed registration and cannot move to "
            f"{target}: {mv.status_message}"
        )
    if request_id is None:
        direct_transition_guard(version=mv, stage=target, user=user)
    ts = now_ms()
    from_stage = mv.current_stage
    mv.current_stage = target
    mv.last_updated_timestamp = ts
    transitions = [
        StageTransition(
            version=mv, from_stage=from_stage, to_stage=target, user=_actor(user), timestamp=ts, comment=comment or "",
            request_id=request_id,
        )
    ]
    others = []
    qn = connection.ops.quote_name
    # The version's new stage, its transition row and the model's timestamp: one round trip.
    execute_all([
        (f"UPDATE {qn(ModelVersion._meta.db_table)} SET {qn('current_stage')} = %s, {qn('last_updated_timestamp')} = %s"
         f" WHERE {qn('id')} = %s", [target, ts, mv.pk]),
        insert_statement(transitions[0]),
        (f"UPDATE {qn(RegisteredModel._meta.db_table)} SET {qn('last_updated_timestamp')} = %s WHERE {qn('id')} = %s", [ts, model.pk]),
    ])
    model.last_updated_timestamp = ts
    if archive_existing_versions and target != STAGE_ARCHIVED:
        others = list(
            ModelVersion.objects.select_for_update()
            .filter(registered_model=model, current_stage=target)
            .exclude(pk=mv.pk)
            .order_by("version")
        )
        ModelVersion.objects.filter(pk__in=[o.pk for o in others]).update(current_stage=STAGE_ARCHIVED, last_updated_timestamp=ts)
        for other in others:
            other.current_stage, other.last_updated_timestamp = STAGE_ARCHIVED, ts
            transitions.append(
                StageTransition(
                    version=other, from_stage=target, to_stage=STAGE_ARCHIVED, user=_actor(user), timestamp=ts,
                    comment=f"Archived when version {mv.version} moved to {target}", is_system=True,
                )
            )
        StageTransition.objects.bulk_create(transitions[1:])
    # The events last: the first one takes the audit chain's head lock, held until commit.
    moves = [(mv.version, {
        "from_stage": from_stage, "to_stage": target, "archive_existing_versions": bool(archive_existing_versions),
        "comment": comment or "", "is_system": False, "request_id": request_id,
    })] + [(other.version, {
        "from_stage": target, "to_stage": STAGE_ARCHIVED, "archive_existing_versions": False,
        "comment": "", "is_system": True, "caused_by_version": mv.version,
    }) for other in others]
    for number, payload in moves:
        record_event(type="model_version.stage_transitioned", model=model, version=number, actor=_actor(user), payload=payload)
    return mv


@transaction.atomic
def delete_model_version(*, name: str, version: int, user) -> None:
    """Delete a version, its tags and the aliases on it; its files go after commit. The number is
    never handed out again (the model's `last_version` counter keeps it)."""
    from core import artifacts

    model, mv = _lock_model_and_version(user, name, version, action=access.MANAGE)
    aliases = list(mv.aliases.values_list("alias", flat=True))
    storage_path = mv.storage_path
    for alias in aliases:
        record_event(
            type="alias.deleted", model=model, version=mv.version, actor=_actor(user),
            payload={"alias": alias, "previous_version": mv.version, "reason": "version deleted"},
        )
    record_event(
        type="model_version.deleted", model=model, version=mv.version, actor=_actor(user),
        payload={"stage": mv.current_stage, "aliases": aliases},
    )
    mv.delete()
    _touch(model, now_ms())

    def remove_files():
        try:
            artifacts.delete(storage_path)
        except Exception:
            log.exception("could not delete the files of %s v%s (%s)", name, version, storage_path)

    transaction.on_commit(remove_files)


@transaction.atomic
def set_model_version_tag(*, name: str, version: int, key: str, value: str, user) -> ModelVersionTag:
    key, value = _validate_tag(key, value)
    model, mv = _lock_model_and_version(user, name, version)
    tag = _upsert_tag(ModelVersionTag(version=mv, key=key, value=value), "version")
    record_event(
        type="model_version_tag.set", model=model, version=mv.version, actor=_actor(user), payload={"key": key, "value": value}
    )
    return tag


@transaction.atomic
def delete_model_version_tag(*, name: str, version: int, key: str, user) -> None:
    if not key:
        raise missing_parameter("key")
    model, mv = _lock_model_and_version(user, name, version)
    deleted, _ = ModelVersionTag.objects.filter(version=mv, key=key).delete()
    if deleted:
        record_event(type="model_version_tag.deleted", model=model, version=mv.version, actor=_actor(user), payload={"key": key})


# --------------------------------------------------------------------------- reads shared by API and pages


def latest_versions_for(model_ids: list[int], *, stages: list[str] | None = None) -> dict[int, list[ModelVersion]]:
    """The highest version in each stage present (Archived included), for many models in one
    query for their ids (+ the prefetches). Returns {model pk: [versions ordered by version]}."""
    if not model_ids:
        return {}
    # The ids come from a loose index scan (registry.reads): a correlated MAX per version row
    # cost ~1 s for one 100k-version model.
    ids = reads.latest_version_ids(model_ids, stages=stages)
    qs = access.version_queryset().filter(pk__in=ids)
    result: dict[int, list[ModelVersion]] = {}
    for mv in qs.order_by("registered_model_id", "version"):
        result.setdefault(mv.registered_model_id, []).append(mv)
    return result


def get_latest_versions(*, name: str, user, stages: list[str] | None = None) -> list[ModelVersion]:
    """Newest version per stage; `stages` (any case) narrows the stages. Raises DoesNotExist."""
    model = access.get_registered_model_for_user(user, name)
    wanted = [canonical_stage(s) for s in stages] if stages else None
    return latest_versions_for([model.pk], stages=wanted).get(model.pk, [])


def registered_model_queryset(queryset=None):
    """Models with what `to_mlflow` reads (tags, aliases with their version numbers) prefetched."""
    queryset = queryset if queryset is not None else RegisteredModel.objects.all()
    return queryset.prefetch_related(
        "tags", Prefetch("aliases", queryset=RegisteredModelAlias.objects.select_related("version").only("id", "alias", "model_id", "version__version", "version_id"))
    )
