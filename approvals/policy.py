"""Stage policies as the rest of the server sees them, and the one narrow function the registry asks
before a direct stage transition (`check_direct_transition`).

A policy is looked up per (model, target stage): the model's override, else the global policy of
the stage, else the built-in default: no approval needed (policies are opt-in, so MLflow clients
work unchanged after install).
"""

from dataclasses import asdict, dataclass, field

from core import permissions as perms
from core.errors import PermissionDenied
from core.links import absolute_url


@dataclass
class EffectivePolicy:
    stage: str
    scope: str  # "model" | "global" | "default"
    model_name: str | None = None
    requires_approval: bool = False
    min_approvals: int = 1
    approver_level: str = ""
    allow_self_approval: bool = False
    archive_existing_on_approval: bool = False
    checks: list = field(default_factory=list)
    id: int | None = None

    def to_json(self) -> dict:
        data = asdict(self)
        data.pop("id")
        if data["model_name"] is None:
            data.pop("model_name")
        return data


_COLUMNS = ("id", "model", "stage", "requires_approval", "min_approvals", "approver_level", "allow_self_approval",
            "archive_existing_on_approval",
            "checks", "exempt_from_global")


def effective_policy(*, model, stage: str) -> EffectivePolicy:
    """The policy governing a change of `model`'s versions into `stage` (one query)."""
    from django.db import connection

    from approvals.models import StagePolicy

    # Hand-written: every direct transition asks (the ORM compiled this query in ~0.5 ms).
    qn = connection.ops.quote_name
    fields = [StagePolicy._meta.get_field(name) for name in _COLUMNS]
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {', '.join(qn(f.column) for f in fields)} FROM {qn(StagePolicy._meta.db_table)}"
            f" WHERE {qn('stage')} = %s AND ({qn('model_id')} IS NULL OR {qn('model_id')} = %s)",
            [stage, model.pk],
        )
        rows = [
            StagePolicy.from_db(connection.alias, [f.attname for f in fields],
                                [f.from_db_value(v, None, connection) if hasattr(f, "from_db_value") else v for f, v in zip(fields, row)])
            for row in cursor.fetchall()
        ]
    own = next((r for r in rows if r.model_id is not None), None)
    floor = next((r for r in rows if r.model_id is None), None)
    return _combine(model=model, stage=stage, own=own, floor=floor)


def effective_policies(pairs) -> dict:
    """{(model pk, stage): EffectivePolicy} for many (model, stage) pairs in one query."""
    from django.db.models import Q

    from approvals.models import StagePolicy

    pairs = list(pairs)
    if not pairs:
        return {}
    stages = {stage for _, stage in pairs}
    models = {model.pk: model for model, _ in pairs}
    rows = StagePolicy.objects.filter(stage__in=stages).filter(Q(model__isnull=True) | Q(model__in=list(models)))
    by_key = {(row.model_id, row.stage): row for row in rows}
    return {
        (model.pk, stage): _combine(model=model, stage=stage, own=by_key.get((model.pk, stage)), floor=by_key.get((None, stage)))
        for model, stage in pairs
    }


def _combine(*, model, stage: str, own, floor) -> EffectivePolicy:
    """The model's own policy raised to the global one field by field (the global policy is a floor),
    unless a superuser set the model's policy below it on purpose (`exempt_from_global`). A model policy
    that an admin's later tightening of the global one left looser than it is thus never used as is."""
    from approvals.models import default_approver_level, default_archive_on_approval

    row = own or floor
    if row is None:
        return EffectivePolicy(stage=stage, scope="default", model_name=model.name, approver_level=default_approver_level(stage),
                               archive_existing_on_approval=default_archive_on_approval(stage))
    # Archiving on approval is the model's own choice when it sets one (not a floor rule).
    policy = EffectivePolicy(
        stage=stage, scope="model" if row.model_id else "global", model_name=model.name,
        requires_approval=row.requires_approval, min_approvals=row.min_approvals,
        approver_level=row.effective_approver_level, allow_self_approval=row.allow_self_approval,
        archive_existing_on_approval=row.effective_archive_existing_on_approval,
        checks=list(row.checks or []), id=row.pk,
    )
    if own is not None and floor is not None and not own.exempt_from_global:
        policy.requires_approval = own.requires_approval or floor.requires_approval
        policy.min_approvals = max(own.min_approvals, floor.min_approvals)
        policy.approver_level = perms.higher(own.effective_approver_level, floor.effective_approver_level)
        policy.allow_self_approval = own.allow_self_approval and floor.allow_self_approval
        policy.checks += [c for c in floor.checks or [] if not any(covers(mine, c) for mine in policy.checks)]
    return policy


# --------------------------------------------------------------------------- the global policy as a floor

_UPPER_BOUNDS, _LOWER_BOUNDS = ("<", "<="), (">", ">=")


def covers(check: dict, required: dict) -> bool:
    """Does `check` demand at least what `required` does? The same check, or the same one made stricter
    (a tighter metric bound in the same direction, more hours in the same stage)."""
    if check == required:
        return True
    if check["type"] != required["type"]:
        return False
    if check["type"] == "metric" and check["key"] == required["key"]:
        op, want, value, bound = check["op"], required["op"], check["value"], required["value"]
        for family in (_UPPER_BOUNDS, _LOWER_BOUNDS):
            if op in family and want in family:
                tighter = value < bound if family is _UPPER_BOUNDS else value > bound
                # "< v" covers "<= v"; "<= v" does not cover "< v".
                return tighter or (value == bound and (op == want or op in ("<", ">")))
        return False
    if check["type"] == "min_hours_in_stage":
        return check["stage"] == required["stage"] and check["hours"] >= required["hours"]
    return False


def loosened_rules(*, floor, requires_approval: bool, min_approvals: int, approver_level: str,
                   allow_self_approval: bool, checks: list[dict]) -> list[str]:
    """The rules of the global policy `floor` (a StagePolicy row, or None) that a model policy with
    these values would lower, each worded to follow "The global policy for <stage> …"."""
    from approvals.checks import describe
    from approvals.models import default_approver_level

    if floor is None:
        return []
    rules = []
    if floor.requires_approval and not requires_approval:
        rules.append("requires approval")
    if floor.requires_approval and min_approvals < floor.min_approvals:
        rules.append(f"needs {floor.min_approvals} approvals")
    level = approver_level or default_approver_level(floor.stage)
    if not perms.at_least(level, floor.effective_approver_level):
        rules.append(f"needs approvers with {floor.effective_approver_level}")
    if allow_self_approval and not floor.allow_self_approval:
        rules.append("forbids self-approval")
    for required in floor.checks or []:
        if not any(covers(mine, required) for mine in checks):
            rules.append(f"checks {describe(required)}")
    return rules


def transition_level(from_stage: str, to_stage: str) -> str:
    """The level a direct move needs (Databricks): staging managers move between None, Staging and
    Archived; anything touching Production or a custom stage needs a production manager."""
    from approvals.models import default_approver_level

    a, b = default_approver_level(from_stage), default_approver_level(to_stage)
    return perms.higher(a, b)


def request_paths(*, model_name: str, version: int) -> tuple[str, str]:
    return "POST /api/2.0/mlflow/transition-requests/create", absolute_url(f"/models/{model_name}/versions/{version}/")


def check_direct_transition(*, version, stage: str, user) -> None:
    """Called by registry.services.transition_model_version_stage (inside its transaction, model row
    locked) before a transition that does not carry out an approved request.

    Raises PermissionDenied when the user's level is too low for the move, or when the target
    stage's policy needs an approved request (the message says how to make one). When the move
    goes ahead, pending requests it makes stale are superseded in the same transaction.
    """
    model = version.registered_model
    needed = transition_level(version.current_stage, stage)
    level = perms.effective_level(user, model)
    if level is None:
        from registry.access import not_found_version

        raise not_found_version(model.name, version.version)
    api_path, page = request_paths(model_name=model.name, version=version.version)
    if not perms.at_least(level, needed):
        raise PermissionDenied(
            f"Permission denied: moving version {version.version} of '{model.name}' from {version.current_stage} "
            f"to {stage} needs {needed}; you have {level}. Request the transition instead: {api_path} "
            f'{{"name": "{model.name}", "version": "{version.version}", "stage": "{stage}"}} or on the page {page}'
        )
    policy = effective_policy(model=model, stage=stage)
    if policy.requires_approval:
        quorum = f"{policy.min_approvals} approval" + ("s" if policy.min_approvals != 1 else "")
        raise PermissionDenied(
            f"Transitions of '{model.name}' to {stage} need an approved transition request ({quorum} "
            f"from users with {policy.approver_level}). Request it: {api_path} "
            f'{{"name": "{model.name}", "version": "{version.version}", "stage": "{stage}", "comment": "..."}} '
            f"or on the version page {page}"
        )
    from approvals.services import supersede_stale_requests

    supersede_stale_requests(version=version, new_stage=stage, user=user)
