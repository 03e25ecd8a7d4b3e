"""The checks a stage policy can demand, their validation and their evaluation as evidence.

A check is a small JSON object (the same shape in the policy API, the admin and the evidence):
  {"type": "version_ready"}
  {"type": "valid_mlflow_model"}                                       registration found an MLmodel with flavors
  {"type": "metric", "key": "rmse", "op": "<=", "value": 0.8}         source run's latest value
  {"type": "tag", "key": "validation", "value": "passed"}              a version tag with that value
  {"type": "min_hours_in_stage", "stage": "Staging", "hours": 24}      time spent in another stage first
Evidence the server produced itself (approvals.evaluation, approvals.signing):
  {"type": "evaluation_metric", "dataset": "holdout", "metric": "rmse", "op": "<=", "value": 0.45}
  {"type": "beats_holder", "dataset": "holdout", "metric": "rmse", "margin": 0}   vs. the target stage's holder
  {"type": "signature_unchanged"}                                      same inputs as the target stage's holder
  {"type": "signed_by", "signers": ["release-key"]}                    a verified OpenSSF model signature
Evaluation returns one result per check: {"check", "name", "passed", "detail", "evaluated_at"}.
"""

import math
import operator

from core.errors import InvalidParameter
from tracking.models import now_ms

OPERATORS = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "=": operator.eq,
    "!=": operator.ne,
}
TYPES = ("version_ready", "valid_mlflow_model", "metric", "tag", "min_hours_in_stage", "evaluation_metric", "beats_holder",
         "signature_unchanged", "signed_by")
EVIDENCE_TYPES = ("evaluation_metric", "beats_holder", "signature_unchanged", "signed_by")


def _bad(index: int, message: str) -> InvalidParameter:
    return InvalidParameter(f"Invalid check #{index + 1}: {message}")


def _finite_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def validate_checks(checks) -> list[dict]:
    """The checks, normalised; InvalidParameter naming the first bad one."""
    if checks is None:
        return []
    if not isinstance(checks, list):
        raise InvalidParameter("Invalid value for parameter 'checks': it must be a list of check objects.")
    result = []
    for i, check in enumerate(checks):
        if not isinstance(check, dict):
            raise _bad(i, "a check is an object with a 'type'.")
        kind = check.get("type")
        if kind not in TYPES:
            raise _bad(i, f"unknown type {kind!r}; use one of {', '.join(TYPES)}.")
        if kind in ("version_ready", "valid_mlflow_model"):
            result.append({"type": kind})
        elif kind in EVIDENCE_TYPES:
            from approvals import evidence

            result.append(evidence.validate(kind, check, lambda message, i=i: _bad(i, message)))
        elif kind == "metric":
            key, op, value = check.get("key"), check.get("op", "<="), check.get("value")
            if not isinstance(key, str) or not key:
                raise _bad(i, "a metric check needs the metric 'key'.")
            if op not in OPERATORS:
                raise _bad(i, f"unknown operator {op!r}; use one of {', '.join(OPERATORS)}.")
            if not _finite_number(value):
                raise _bad(i, "a metric check needs a numeric threshold 'value'.")
            result.append({"type": kind, "key": key, "op": "==" if op == "=" else op, "value": value})
        elif kind == "tag":
            key, value = check.get("key"), check.get("value")
            if not isinstance(key, str) or not key:
                raise _bad(i, "a tag check needs the tag 'key'.")
            if not isinstance(value, str):
                raise _bad(i, "a tag check needs the required string 'value'.")
            result.append({"type": kind, "key": key, "value": value})
        else:
            stage, hours = check.get("stage"), check.get("hours")
            if not isinstance(stage, str) or not stage:
                raise _bad(i, "a min_hours_in_stage check needs the 'stage'.")
            if not _finite_number(hours) or hours < 0:
                raise _bad(i, "a min_hours_in_stage check needs a non-negative number of 'hours'.")
            from registry.services import canonical_stage

            result.append({"type": kind, "stage": canonical_stage(stage), "hours": hours})
    return result


def describe(check: dict) -> str:
    kind = check["type"]
    if kind in EVIDENCE_TYPES:
        from approvals import evidence

        return evidence.describe(check)
    if kind == "version_ready":
        return "version is READY"
    if kind == "valid_mlflow_model":
        return "version is a valid MLflow model"
    if kind == "metric":
        return f"{check['key']} {check['op']} {check['value']:g}"
    if kind == "tag":
        return f"tag {check['key']} = {check['value']}"
    return f"at least {check['hours']:g} h in {check['stage']}"


def _hours_in_stage(version, stage: str, now: int) -> float:
    """Total time the version spent in `stage`, from its transition history (still counting while it is there)."""
    from registry.models import StageTransition

    rows = StageTransition.objects.filter(version=version).order_by("timestamp", "id").values_list("to_stage", "timestamp")
    total, current, since = 0, "None", version.creation_timestamp
    for to_stage, ts in rows:
        if current == stage:
            total += ts - since
        current, since = to_stage, ts
    if current == stage:
        total += now - since
    return max(total, 0) / 3_600_000


def evaluate_check(check: dict, version, now: int, stage: str | None = None) -> tuple[bool, str]:
    kind = check["type"]
    if kind in EVIDENCE_TYPES:
        from approvals import evidence

        return evidence.evaluate(check, version, stage)
    if kind == "version_ready":
        ok = version.status == "READY"
        return ok, f"version status is {version.status}"
    if kind == "valid_mlflow_model":
        # The evidence is what registration found in the version's own copy (registry.services.inspect_model_folder).
        ok = version.status == "READY" and not version.is_external and bool(version.flavors)
        found = version.inspection or (
            f"MLflow model: flavors {', '.join(sorted(version.flavors))}." if version.flavors else f"version status is {version.status}"
        )
        return ok, found
    if kind == "metric":
        from tracking.models import LatestMetric

        if not version.run_id:
            return False, f"the version has no source run, so metric {check['key']} is unknown"
        found = LatestMetric.objects.filter(run_id=version.run_id, key=check["key"]).values_list("value", "is_nan").first()
        if found is None:
            return False, f"source run {version.run_id} has no metric {check['key']}"
        row = math.nan if found[1] else found[0]
        ok = math.isfinite(row) and bool(OPERATORS[check["op"]](row, check["value"]))
        sign = check["op"] if ok else {"<": ">=", "<=": ">", ">": "<=", ">=": "<", "==": "!=", "!=": "=="}[check["op"]]
        return ok, f"{check['key']} = {row:g} {sign} {check['value']:g} (source run {version.run_id})"
    if kind == "tag":
        tag = version.tags.filter(key=check["key"]).values_list("value", flat=True).first()
        if tag is None:
            return False, f"tag {check['key']} is not set (needs {check['value']!r})"
        ok = tag == check["value"]
        return ok, f"tag {check['key']} = {tag!r}" + ("" if ok else f" (needs {check['value']!r})")
    hours = _hours_in_stage(version, check["stage"], now)
    ok = hours >= check["hours"]
    return ok, f"{hours:.1f} h in {check['stage']} ({'meets' if ok else 'below'} the {check['hours']:g} h required)"


def evaluate(checks: list[dict], version, stage: str | None = None) -> list[dict]:
    """Run every check against the version now (moving into `stage`, whose holder some checks
    compare with); each result says whether it passed and why."""
    now = now_ms()
    results = []
    for check in checks or ():
        passed, detail = evaluate_check(check, version, now, stage)
        results.append({"check": check, "name": describe(check), "passed": passed, "detail": detail, "evaluated_at": now})
    return results


def failures(results: list[dict]) -> list[dict]:
    return [r for r in results if not r["passed"]]
