"""Every governance write, one function per workflow step.

Locking policy (the registry's): the RegisteredModel row first (select_for_update), then the
version, then the request. Two reviewers completing a quorum, or an approval racing a cancellation,
therefore run one after the other and the second sees the first's outcome. Each step writes its
Activity row and its registry Event (the outbox) in the same transaction; an approved request is
applied through the registry's one stage-transition service, carrying the request id.
"""

import logging
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import IntegrityError, transaction
from django.db.models import F

from approvals import access, checks
from approvals.models import (
    APPROVER_LEVELS,
    Activity,
    Comment,
    Review,
    StagePolicy,
    TransitionRequest,
)
from approvals.policy import EffectivePolicy, effective_policy, loosened_rules
from core import permissions as perms
from core.errors import AlreadyExists, DoesNotExist, InvalidParameter, InvalidState, MlflowError, PermissionDenied, missing_parameter
from registry.events import record_event
from tracking.models import now_ms

log = logging.getLogger("stagegate.approvals")

MAX_COMMENT_LENGTH = 100_000
MAX_MIN_APPROVALS = 20


def _name(user) -> str:
    return user.get_username() if user is not None and getattr(user, "pk", None) else ""


def _actor(user):
    return user if user is not None and getattr(user, "pk", None) else None


def _comment(value) -> str:
    value = "" if value is None else value
    if not isinstance(value, str):
        raise InvalidParameter("Invalid value for parameter 'comment': it must be a string.")
    if len(value) > MAX_COMMENT_LENGTH:
        raise InvalidParameter(f"Comment exceeds the maximum length of {MAX_COMMENT_LENGTH} characters.")
    return value


def _lock_version(model, version: int):
    from registry.access import not_found_version
    from registry.models import ModelVersion

    mv = ModelVersion.objects.select_for_update().filter(registered_model=model, version=version).first()
    if mv is None:
        raise not_found_version(model.name, version)
    mv.registered_model = model
    return mv


def _target_stage(stage) -> str:
    from registry.services import canonical_stage

    return canonical_stage(stage)


def quorum(policy: EffectivePolicy) -> int:
    """Distinct approvals needed: the policy's quorum, or one reviewer when the stage needs no approval."""
    return max(policy.min_approvals, 1) if policy.requires_approval else 1


def _request_payload(req: TransitionRequest, **extra) -> dict:
    return {
        "request_id": req.pk,
        "from_stage": req.from_stage,
        "to_stage": req.to_stage,
        "requester": req.requester_name,
        "status": req.status,
        "comment": req.comment,
        **extra,
    }


def _activity(*, req=None, version, type: str, user, comment: str = "", system_comment: str = "", data=None, ts=None,
              from_stage="", to_stage="", comment_obj=None) -> Activity:
    ts = ts or now_ms()
    return Activity.objects.create(
        version=version,
        activity_type=type,
        request=req,
        comment_obj=comment_obj,
        from_stage=req.from_stage if req else from_stage,
        to_stage=req.to_stage if req else to_stage,
        user=_actor(user),
        user_name=_name(user),
        comment=comment or "",
        system_comment=system_comment,
        data=data or {},
        creation_timestamp=ts,
        last_updated_timestamp=ts,
    )


# --------------------------------------------------------------------------- requests


@transaction.atomic
def request_stage_transition(*, name: str, version: int, stage: str, user, comment: str = "") -> TransitionRequest:
    """Ask for `version` of `name` to move into `stage` (anyone who can read the model may ask).

    Locks the model, then the version. Evaluates the policy's checks now and keeps the results as
    evidence (failing checks do not stop the request; they block its final approval). Raises
    InvalidParameter (already in that stage), AlreadyExists (a pending request for that stage).
    """
    comment = _comment(comment)
    target = _target_stage(stage)
    model = access.get_registered_model_for_user(user, name, lock=True, action="request a stage transition")
    mv = _lock_version(model, version)
    if mv.current_stage == target:
        raise InvalidParameter(f"Model version {version} of '{model.name}' is already in stage {target}.")
    _supersede_stale(model=model, user=None)
    existing = TransitionRequest.objects.pending().filter(version=mv, to_stage=target).first()
    if existing is not None:
        raise AlreadyExists(
            f"A pending request to move version {version} of '{model.name}' to {target} already exists "
            f"(request {existing.pk} by {existing.requester_name}); approve, reject or cancel it first."
        )
    policy = effective_policy(model=model, stage=target)
    ts = now_ms()
    evidence = {"on_request": checks.evaluate(policy.checks, mv, target)}
    try:
        with transaction.atomic():
            req = TransitionRequest.objects.create(
                model=model, version=mv, from_stage=mv.current_stage, to_stage=target, requester=_actor(user),
                requester_name=_name(user), comment=comment, evidence=evidence, policy=policy.to_json(),
                creation_timestamp=ts, last_updated_timestamp=ts,
            )
    except IntegrityError:  # a concurrent request for the same stage won (SQLite has no row locks to queue on)
        raise AlreadyExists(
            f"A pending request to move version {version} of '{model.name}' to {target} already exists."
        ) from None
    _activity(req=req, version=mv, type=Activity.REQUESTED_TRANSITION, user=user, comment=comment, ts=ts,
              data={"request_id": req.pk, "checks": evidence["on_request"]})
    record_event(type="transition_request.created", model=model, version=mv.version, actor=_actor(user),
                 payload=_request_payload(req, checks=evidence["on_request"], policy=policy.to_json()))
    return req


@dataclass
class ReviewOutcome:
    activity: Activity | None
    request: TransitionRequest | None
    applied: bool = False
    error: MlflowError | None = None


def _pending_request(model, mv, target: str) -> TransitionRequest:
    req = TransitionRequest.objects.select_for_update().filter(version=mv, to_stage=target, status=TransitionRequest.PENDING).first()
    if req is not None:
        req.model, req.version = model, mv
        return req
    last = TransitionRequest.objects.filter(version=mv, to_stage=target).order_by("-last_updated_timestamp", "-id").first()
    if last is not None:
        raise InvalidState(
            f"Transition request {last.pk} to move version {mv.version} of '{model.name}' to {target} "
            f"is already {last.status}; decided requests cannot change."
        )
    raise DoesNotExist(f"No pending transition request to move version {mv.version} of '{model.name}' to {target}.")


def _mark(req: TransitionRequest, status: str, *, user, comment: str = "", ts: int) -> None:
    req.status = status
    req.decided_by = _actor(user)
    req.decision_comment = comment or ""
    req.decided_timestamp = ts
    req.last_updated_timestamp = ts
    req.save(update_fields=["status", "decided_by", "decision_comment", "decided_timestamp", "last_updated_timestamp",
                            "evidence", "policy", "archive_existing_versions"])


def _supersede(req: TransitionRequest, *, user, reason: str, ts: int) -> None:
    _mark(req, TransitionRequest.SUPERSEDED, user=user, ts=ts)
    _activity(req=req, version=req.version, type=Activity.SUPERSEDED_REQUEST, user=None, system_comment=reason, ts=ts,
              data={"request_id": req.pk})
    record_event(type="transition_request.superseded", model=req.model, version=req.version.version, actor=_actor(user),
                 payload=_request_payload(req, reason=reason))


def _supersede_stale(*, model, user, exclude=None) -> int:
    """Supersede the model's pending requests whose version has left the stage it was requested from
    (moved directly, archived as a side effect, or moved by another approved request)."""
    stale = (
        TransitionRequest.objects.pending().select_for_update().select_related("version")
        .filter(model=model).exclude(from_stage=F("version__current_stage"))
    )
    if exclude is not None:
        stale = stale.exclude(pk=exclude.pk)
    count = 0
    ts = now_ms()
    for req in stale:
        req.model = model
        _supersede(req, user=user, ts=ts, reason=(
            f"Superseded: version {req.version.version} left {req.from_stage} (now {req.version.current_stage})."
        ))
        count += 1
    return count


def supersede_stale_requests(*, version, new_stage: str, user) -> int:
    """Called by the direct-transition guard (inside the registry's transaction, model locked) just
    before `version` moves to `new_stage`: every pending request on it is now moot."""
    if version.current_stage == new_stage:
        return 0
    ts = now_ms()
    count = 0
    for req in TransitionRequest.objects.pending().select_for_update().filter(version=version):
        req.model, req.version = version.registered_model, version
        _supersede(req, user=user, ts=ts, reason=(
            f"Superseded: version {version.version} was moved directly from {version.current_stage} to {new_stage}."
        ))
        count += 1
    return count


def _review_context(*, name, version, stage, user):
    target = _target_stage(stage)
    model = access.get_registered_model_for_user(user, name, lock=True, action="review transition requests")
    mv = _lock_version(model, version)
    req = _pending_request(model, mv, target)
    level = access.level_on(user, model)
    return model, mv, req, level


def _stale_outcome(req, mv, user) -> ReviewOutcome | None:
    if mv.current_stage == req.from_stage:
        return None
    ts = now_ms()
    _supersede(req, user=user, ts=ts, reason=f"Superseded: version {mv.version} left {req.from_stage} (now {mv.current_stage}).")
    return ReviewOutcome(activity=None, request=req, error=InvalidState(
        f"Transition request {req.pk} is superseded: version {mv.version} is now in {mv.current_stage}, "
        f"not {req.from_stage} where the request started. Make a new request."
    ))


def _approve(*, name, version, stage, user, archive_existing_versions: bool | None, comment: str) -> ReviewOutcome:
    from registry.services import transition_model_version_stage

    with transaction.atomic():
        model, mv, req, level = _review_context(name=name, version=version, stage=stage, user=user)
        stale = _stale_outcome(req, mv, user)
        if stale is not None:
            return stale
        policy = effective_policy(model=model, stage=req.to_stage)
        refusal = access.review_refusal(user, level, req, policy)
        if refusal:
            raise PermissionDenied(f"Permission denied: {refusal}.")
        if req.reviews.filter(reviewer=user).exists():
            raise InvalidState(f"You already reviewed transition request {req.pk}; each reviewer counts once.")
        required = quorum(policy)
        approvals = req.reviews.filter(decision=Review.APPROVED).count() + 1
        ts = now_ms()
        completes = approvals >= required
        results = None
        if completes:
            # Checks run again when the final approval lands; a failure keeps the evidence and
            # records no approval, so the request stays pending until the checks pass.
            results = checks.evaluate(policy.checks, mv, req.to_stage)
            req.evidence = {**(req.evidence or {}), "on_approval": results}
            req.last_updated_timestamp = ts
            failed = checks.failures(results)
            if failed:
                req.save(update_fields=["evidence", "last_updated_timestamp"])
                reasons = "; ".join(f"{r['name']}: {r['detail']}" for r in failed)
                return ReviewOutcome(activity=None, request=req, error=InvalidState(
                    f"Approval blocked: {len(failed)} of {len(results)} policy check(s) failed for version "
                    f"{mv.version} of '{model.name}' to {req.to_stage}: {reasons}."
                ))
        Review.objects.create(request=req, reviewer=user, reviewer_name=_name(user), decision=Review.APPROVED,
                              comment=comment, creation_timestamp=ts)
        data = {"request_id": req.pk, "approvals": approvals, "required": required, "applied": completes}
        if results is not None:
            data["checks"] = results
        activity = _activity(req=req, version=mv, type=Activity.APPROVED_REQUEST, user=user, comment=comment, ts=ts, data=data)
        record_event(type="transition_request.approved", model=model, version=mv.version, actor=_actor(user),
                     payload=_request_payload(req, approvals=approvals, required=required, applied=completes,
                                              review_comment=comment))
        if completes:
            # The policy's archive_existing_on_approval makes archiving the rule (Production keeps one
            # version); without it the approver decides.
            archive = policy.archive_existing_on_approval or bool(archive_existing_versions)
            req.archive_existing_versions = archive
            req.policy = policy.to_json()
            _mark(req, TransitionRequest.APPROVED, user=user, comment=comment, ts=ts)
            note = comment or req.comment
            transition_model_version_stage(
                name=model.name, version=mv.version, stage=req.to_stage, user=user,
                archive_existing_versions=archive,
                comment=f"Approved request {req.pk}" + (f": {note}" if note else ""), request_id=req.pk,
            )
            mv.refresh_from_db(fields=["current_stage", "last_updated_timestamp"])
            _supersede_stale(model=model, user=user, exclude=req)
        return ReviewOutcome(activity=activity, request=req, applied=completes)


def approve_transition_request(*, name: str, version: int, stage: str, user, archive_existing_versions: bool | None = None,
                               comment: str = "") -> ReviewOutcome:
    """Approve the pending request to move `version` into `stage`.

    Locks the model, the version, then the request. The approver needs the policy's approver level
    and, unless the policy allows it, must be neither the requester nor the version's author. When
    this approval completes the quorum, the policy's checks run again: all passing, the transition is
    applied through the registry service and the request becomes APPROVED; any failing, the evidence
    is saved and InvalidState names each failed check. The other versions in the target stage are
    archived when the policy's `archive_existing_on_approval` says so (on by default for Production),
    else when the approver asks (`archive_existing_versions`). Raises DoesNotExist (no pending request), InvalidState (decided, superseded, already
    reviewed by this user), PermissionDenied.
    """
    comment = _comment(comment)
    outcome = _approve(name=name, version=version, stage=stage, user=user,
                       archive_existing_versions=archive_existing_versions, comment=comment)
    if outcome.error is not None:
        raise outcome.error
    return outcome


def _reject(*, name, version, stage, user, comment) -> ReviewOutcome:
    with transaction.atomic():
        model, mv, req, level = _review_context(name=name, version=version, stage=stage, user=user)
        stale = _stale_outcome(req, mv, user)
        if stale is not None:
            return stale
        policy = effective_policy(model=model, stage=req.to_stage)
        refusal = access.review_refusal(user, level, req, policy)
        if refusal:
            raise PermissionDenied(f"Permission denied: {refusal}.")
        if req.reviews.filter(reviewer=user).exists():
            raise InvalidState(f"You already reviewed transition request {req.pk}; each reviewer counts once.")
        ts = now_ms()
        Review.objects.create(request=req, reviewer=user, reviewer_name=_name(user), decision=Review.REJECTED,
                              comment=comment, creation_timestamp=ts)
        req.policy = policy.to_json()
        _mark(req, TransitionRequest.REJECTED, user=user, comment=comment, ts=ts)
        activity = _activity(req=req, version=mv, type=Activity.REJECTED_REQUEST, user=user, comment=comment, ts=ts,
                             data={"request_id": req.pk})
        record_event(type="transition_request.rejected", model=model, version=mv.version, actor=_actor(user),
                     payload=_request_payload(req, review_comment=comment))
        return ReviewOutcome(activity=activity, request=req)


def reject_transition_request(*, name: str, version: int, stage: str, user, comment: str = "") -> ReviewOutcome:
    """Reject the pending request: one eligible reviewer's rejection ends it (same eligibility as approving).
    Locks model, version, request. Raises DoesNotExist, InvalidState, PermissionDenied."""
    comment = _comment(comment)
    outcome = _reject(name=name, version=version, stage=stage, user=user, comment=comment)
    if outcome.error is not None:
        raise outcome.error
    return outcome


@transaction.atomic
def cancel_transition_request(*, name: str, version: int, stage: str, user, creator: str | None = None,
                              comment: str = "") -> ReviewOutcome:
    """Withdraw the pending request (Databricks' transition-requests/delete). Only its requester or a
    CAN_MANAGE user may; `creator` (when given) must name the requester. Locks model, version, request."""
    comment = _comment(comment)
    model, mv, req, level = _review_context(name=name, version=version, stage=stage, user=user)
    if creator and creator != req.requester_name:
        raise DoesNotExist(
            f"No pending transition request by {creator} to move version {mv.version} of '{model.name}' to {req.to_stage}."
        )
    access.require_cancel(user, level, req)
    ts = now_ms()
    _mark(req, TransitionRequest.CANCELLED, user=user, comment=comment, ts=ts)
    activity = _activity(req=req, version=mv, type=Activity.CANCELLED_REQUEST, user=user, comment=comment, ts=ts,
                         data={"request_id": req.pk})
    record_event(type="transition_request.cancelled", model=model, version=mv.version, actor=_actor(user),
                 payload=_request_payload(req, review_comment=comment))
    return ReviewOutcome(activity=activity, request=req)


@transaction.atomic
def transition_stage_with_comment(*, name: str, version: int, stage: str, user, archive_existing_versions: bool,
                                  comment: str = ""):
    """Databricks' direct transition (databricks/model-versions/transition-stage): the registry's
    one transition service (which locks the model and asks the stage-policy guard), then the
    requests of versions archived on the way are superseded in the same transaction."""
    from registry.services import transition_model_version_stage

    comment = _comment(comment)
    access.get_model_version_for_user(user, name, version)
    mv = transition_model_version_stage(name=name, version=version, stage=stage, user=user,
                                        archive_existing_versions=archive_existing_versions, comment=comment)
    _supersede_stale(model=mv.registered_model, user=user)
    return mv


# --------------------------------------------------------------------------- comments


@transaction.atomic
def create_comment(*, name: str, version: int, user, comment: str) -> Comment:
    """Comment on a version (anyone who can read the model). Locks the model."""
    text = _comment(comment)
    if not text:
        raise missing_parameter("comment")
    model = access.get_registered_model_for_user(user, name, lock=True, action="comment")
    mv = _lock_version(model, version)
    ts = now_ms()
    obj = Comment.objects.create(version=mv, user=_actor(user), user_name=_name(user), text=text,
                                 creation_timestamp=ts, last_updated_timestamp=ts)
    _activity(version=mv, type=Activity.NEW_COMMENT, user=user, comment=text, ts=ts, comment_obj=obj,
              data={"comment_id": obj.pk})
    record_event(type="comment.created", model=model, version=mv.version, actor=_actor(user),
                 payload={"comment_id": obj.pk, "comment": text})
    return obj


def _comment_for_user(user, comment_id, *, lock: bool):
    if comment_id in (None, ""):
        raise missing_parameter("id")
    missing = DoesNotExist(f"Comment with id {comment_id} does not exist.")
    if not str(comment_id).isdigit():
        raise missing
    obj = Comment.objects.select_related("version__registered_model").filter(pk=int(comment_id)).first()
    if obj is None:
        raise missing
    model = obj.version.registered_model
    level = perms.require_level(user, model, perms.CAN_READ, not_found=missing)
    if lock:
        from registry.models import RegisteredModel

        RegisteredModel.objects.select_for_update().filter(pk=model.pk).first()
        obj = Comment.objects.select_for_update().select_related("version__registered_model").get(pk=obj.pk)
    return obj, level


@transaction.atomic
def update_comment(*, comment_id, user, comment: str) -> Comment:
    """Edit a comment: only its author may. Raises DoesNotExist, PermissionDenied."""
    text = _comment(comment)
    if not text:
        raise missing_parameter("comment")
    obj, level = _comment_for_user(user, comment_id, lock=True)
    if "EDIT_COMMENT" not in access.comment_actions(user, level, obj):
        raise PermissionDenied("Permission denied: only the author of a comment may edit it.")
    obj.text = text
    obj.last_updated_timestamp = now_ms()
    obj.save(update_fields=["text", "last_updated_timestamp"])
    Activity.objects.filter(comment_obj=obj).update(comment=text, last_updated_timestamp=obj.last_updated_timestamp)
    record_event(type="comment.updated", model=obj.version.registered_model, version=obj.version.version,
                 actor=_actor(user), payload={"comment_id": obj.pk, "comment": text})
    return obj


@transaction.atomic
def delete_comment(*, comment_id, user) -> None:
    """Delete a comment: its author or a CAN_MANAGE user. Raises DoesNotExist, PermissionDenied."""
    obj, level = _comment_for_user(user, comment_id, lock=True)
    if "DELETE_COMMENT" not in access.comment_actions(user, level, obj):
        raise PermissionDenied("Permission denied: only the author or a user with CAN_MANAGE may delete a comment.")
    record_event(type="comment.deleted", model=obj.version.registered_model, version=obj.version.version,
                 actor=_actor(user), payload={"comment_id": obj.pk})
    Activity.objects.filter(comment_obj=obj).delete()
    obj.delete()


# --------------------------------------------------------------------------- stage policies


def _bool(value, name: str, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    raise InvalidParameter(f"Invalid value {value!r} for parameter '{name}': it must be true or false.")


@transaction.atomic
def set_stage_policy(*, user, stage: str, model_name: str | None = None, requires_approval=True, min_approvals=1,
                     approver_level: str | None = "", allow_self_approval=False, checks_spec=(),
                     archive_existing_on_approval: bool | None = None) -> StagePolicy:
    """Create or replace the policy of `stage`: global (admins only) or for one model (CAN_MANAGE on it).
    `archive_existing_on_approval` None keeps the stage's default (on for Production).

    A model's policy may tighten the global policy of the stage, never lower it: PermissionDenied naming
    the global rule, unless the user is a superuser (the row is then marked `exempt_from_global` and is
    used as set). Locks the model for a per-model policy. Raises InvalidParameter naming the bad field."""
    target = _target_stage(stage)
    model = None
    if model_name:
        model = access.get_registered_model_for_user(user, model_name, min_level=perms.CAN_MANAGE, lock=True,
                                                     action="set its stage policies")
    else:
        access.require_admin(user, "set global stage policies")
    requires_approval = _bool(requires_approval, "requires_approval", True)
    allow_self_approval = _bool(allow_self_approval, "allow_self_approval", False)
    if archive_existing_on_approval is not None:
        archive_existing_on_approval = _bool(archive_existing_on_approval, "archive_existing_on_approval", False)
    if min_approvals is None:
        min_approvals = 1
    if isinstance(min_approvals, bool) or not isinstance(min_approvals, int) or not 1 <= min_approvals <= MAX_MIN_APPROVALS:
        raise InvalidParameter(
            f"Invalid value {min_approvals!r} for parameter 'min_approvals': it must be an integer from 1 to {MAX_MIN_APPROVALS}."
        )
    approver_level = (approver_level or "").upper()
    if approver_level and approver_level not in APPROVER_LEVELS:
        raise InvalidParameter(
            f"Invalid value {approver_level!r} for parameter 'approver_level': must be one of {', '.join(APPROVER_LEVELS)}."
        )
    normalised = checks.validate_checks(list(checks_spec) if checks_spec is not None else [])
    loosened = []
    if model is not None:
        # The global policy of the stage is a floor (see approvals.policy._combine for rows it later outgrows).
        floor = StagePolicy.objects.filter(model__isnull=True, stage=target).first()
        loosened = loosened_rules(floor=floor, requires_approval=requires_approval, min_approvals=min_approvals,
                                  approver_level=approver_level, allow_self_approval=allow_self_approval, checks=normalised)
        access.require_policy_floor(user, stage=target, loosened=loosened)
    ts = now_ms()
    row, created = StagePolicy.objects.update_or_create(
        model=model, stage=target,
        defaults=dict(requires_approval=requires_approval, min_approvals=min_approvals, approver_level=approver_level,
                      allow_self_approval=allow_self_approval, archive_existing_on_approval=archive_existing_on_approval,
                      checks=normalised, exempt_from_global=bool(loosened),
                      updated_by=_actor(user), last_updated_timestamp=ts),
    )
    payload = policy_json(row)
    record_event(type="stage_policy.set", model=model, actor=_actor(user), payload=payload)
    return row


@transaction.atomic
def delete_stage_policy(*, user, stage: str, model_name: str | None = None) -> None:
    """Remove a global policy (admins) or a model's override (CAN_MANAGE); missing is not an error."""
    target = _target_stage(stage)
    model = None
    if model_name:
        model = access.get_registered_model_for_user(user, model_name, min_level=perms.CAN_MANAGE, lock=True,
                                                     action="change its stage policies")
    else:
        access.require_admin(user, "change global stage policies")
    deleted, _ = StagePolicy.objects.filter(model=model, stage=target).delete()
    if deleted:
        record_event(type="stage_policy.deleted", model=model, actor=_actor(user),
                     payload={"stage": target, "model_name": model.name if model else None})


def policy_json(row: StagePolicy) -> dict:
    data = {
        "stage": row.stage,
        "requires_approval": row.requires_approval,
        "min_approvals": row.min_approvals,
        "approver_level": row.effective_approver_level,
        "allow_self_approval": row.allow_self_approval,
        "archive_existing_on_approval": row.effective_archive_existing_on_approval,
        "checks": row.checks or [],
        "scope": "model" if row.model_id else "global",
    }
    if row.model_id:
        data["model_name"] = row.model.name
        data["exempt_from_global"] = row.exempt_from_global
    return data


# --------------------------------------------------------------------------- permissions


def _principal(entry: dict, index: int):
    if not isinstance(entry, dict):
        raise InvalidParameter(f"Invalid access_control_list entry #{index + 1}: it must be an object.")
    if entry.get("service_principal_name"):
        raise InvalidParameter("Service principals are not supported; grant to a user_name or a group_name.")
    user_name, group_name = entry.get("user_name"), entry.get("group_name")
    if bool(user_name) == bool(group_name):
        raise InvalidParameter(
            f"Invalid access_control_list entry #{index + 1}: give exactly one of 'user_name' or 'group_name'."
        )
    if user_name:
        user = get_user_model().objects.filter(username=user_name).first()
        if user is None:
            raise InvalidParameter(f"User '{user_name}' does not exist.")
        return user, None
    group = Group.objects.filter(name=group_name).first()
    if group is None:
        raise InvalidParameter(f"Group '{group_name}' does not exist.")
    return None, group


def _clear_grants(obj, *, user=None, group=None) -> None:
    scheme = perms.scheme_for(obj)
    UserPerm, GroupPerm = perms.grant_models(type(obj))
    codes = list(scheme.codenames.values())
    if user is not None:
        UserPerm.objects.filter(content_object=obj, user=user, permission__codename__in=codes).delete()
    elif group is not None:
        GroupPerm.objects.filter(content_object=obj, group=group, permission__codename__in=codes).delete()
    else:
        UserPerm.objects.filter(content_object=obj, permission__codename__in=codes).delete()
        GroupPerm.objects.filter(content_object=obj, permission__codename__in=codes).delete()


def grant_permission(*, obj, level: str | None, user=None, group=None) -> None:
    """Give one user or group exactly `level` on a registered model or experiment (None revokes).
    A grant is one row per principal: setting a level replaces the previous one."""
    scheme = perms.scheme_for(obj)
    _clear_grants(obj, user=user, group=group)
    if level is None:
        return
    level = perms.parse_level(level, scheme=scheme)
    UserPerm, GroupPerm = perms.grant_models(type(obj))
    permission = perms.permission_for(scheme, level)
    if user is not None:
        UserPerm.objects.create(content_object=obj, user=user, permission=permission)
    else:
        GroupPerm.objects.create(content_object=obj, group=group, permission=permission)


def _lock_object(obj):
    type(obj).objects.select_for_update().filter(pk=obj.pk).first()


@transaction.atomic
def set_permissions(*, actor, obj, access_control_list, replace: bool) -> None:
    """Databricks' permissions API on a registered model or experiment: PATCH adds or changes the
    listed grants, PUT (`replace`) makes the list the complete set of direct grants (the owner keeps
    CAN_MANAGE). Needs CAN_MANAGE. Locks the object row. Raises InvalidParameter, PermissionDenied."""
    scheme = perms.scheme_for(obj)
    missing = DoesNotExist(f"{scheme.object_type} {obj.pk} does not exist.")
    perms.require_level(actor, obj, perms.CAN_MANAGE, not_found=missing, action="change its permissions")
    if access_control_list is None:
        access_control_list = []
    if not isinstance(access_control_list, list):
        raise InvalidParameter("Invalid value for parameter 'access_control_list': it must be a list.")
    entries = []
    for i, entry in enumerate(access_control_list):
        user, group = _principal(entry, i)
        level = perms.parse_level(entry.get("permission_level"), scheme=scheme)
        entries.append((user, group, level))
    _lock_object(obj)
    if replace:
        _clear_grants(obj)
    for user, group, level in entries:
        grant_permission(obj=obj, level=level, user=user, group=group)
    if scheme.label == "registry.registeredmodel":
        record_event(type="permissions.changed", model=obj, actor=_actor(actor), payload={
            "replace": replace,
            "access_control_list": [
                {("user_name" if u else "group_name"): (u.username if u else g.name), "permission_level": lvl}
                for u, g, lvl in entries
            ],
        })


def access_control_list(obj) -> list[dict]:
    """The object's ACL in Databricks' shape: owner, direct user/group grants, the organisation default."""
    scheme = perms.scheme_for(obj)
    UserPerm, GroupPerm = perms.grant_models(type(obj))
    by_user: dict[str, str] = {}
    by_group: dict[str, str] = {}
    for username, code in UserPerm.objects.filter(content_object=obj).values_list("user__username", "permission__codename"):
        by_user[username] = perms.higher(by_user.get(username), scheme.level_of_codename(code))
    for group_name, code in GroupPerm.objects.filter(content_object=obj).values_list("group__name", "permission__codename"):
        by_group[group_name] = perms.higher(by_group.get(group_name), scheme.level_of_codename(code))
    acl = []
    owner = getattr(obj, "owner", None)
    if owner is not None:
        acl.append({"user_name": owner.username, "display_name": owner.get_full_name() or owner.username,
                    "all_permissions": [{"permission_level": perms.CAN_MANAGE, "inherited": False}], "is_owner": True})
        by_user.pop(owner.username, None)
    for username in sorted(by_user):
        if by_user[username]:
            acl.append({"user_name": username, "all_permissions": [{"permission_level": by_user[username], "inherited": False}]})
    for group_name in sorted(by_group):
        if by_group[group_name]:
            acl.append({"group_name": group_name, "all_permissions": [{"permission_level": by_group[group_name], "inherited": False}]})
    floor = perms.scheme_for(obj).clamp(perms.default_level())
    if scheme.label == "tracking.experiment" and obj.pk == perms.DEFAULT_EXPERIMENT_ID:
        floor = perms.higher(floor, scheme.clamp(perms.default_experiment_level()))
    if floor:
        acl.append({"group_name": "users", "all_permissions": [
            {"permission_level": floor, "inherited": True, "inherited_from_object": [scheme.path]}]})
    acl.append({"group_name": "admins", "all_permissions": [
        {"permission_level": perms.CAN_MANAGE, "inherited": True, "inherited_from_object": [scheme.path]}]})
    return acl


def permissions_json(obj) -> dict:
    scheme = perms.scheme_for(obj)
    return {"object_id": f"{scheme.path}{obj.pk}", "object_type": scheme.object_type,
            "access_control_list": access_control_list(obj)}


__all__ = [
    "request_stage_transition", "approve_transition_request", "reject_transition_request", "cancel_transition_request",
    "supersede_stale_requests", "create_comment", "update_comment", "delete_comment", "set_stage_policy",
    "delete_stage_policy", "grant_permission", "set_permissions", "transition_stage_with_comment",
]
