"""The policy checks on evidence the server produced itself (approvals.checks hands these four here):
evaluation_metric, beats_holder, signature_unchanged, signed_by.

Datasets are named per model; a check reads the newest SUCCEEDED evaluation on the dataset as it
is now (its digest). The holder is the version now in the request's target stage (the newest if
several are); an empty stage passes beats_holder and signature_unchanged.
"""

import json
import math

from approvals.evaluation import ALL_METRICS, latest_evaluation, lower_is_better, stage_holder


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def validate(kind: str, check: dict, bad) -> dict:
    """The normalised check; `bad(message)` builds the error to raise."""
    from approvals.checks import OPERATORS

    if kind in ("evaluation_metric", "beats_holder"):
        dataset, metric = check.get("dataset"), check.get("metric")
        if not isinstance(dataset, str) or not dataset:
            raise bad(f"a {kind} check needs the evaluation 'dataset' (its name on the model).")
        if metric not in ALL_METRICS:
            raise bad(f"a {kind} check needs a 'metric', one of {', '.join(ALL_METRICS)}.")
        if kind == "evaluation_metric":
            op, value = check.get("op", "<=" if lower_is_better(metric) else ">="), check.get("value")
            if op not in OPERATORS:
                raise bad(f"unknown operator {op!r}; use one of {', '.join(OPERATORS)}.")
            if not _finite(value):
                raise bad("an evaluation_metric check needs a numeric threshold 'value'.")
            return {"type": kind, "dataset": dataset, "metric": metric, "op": "==" if op == "=" else op, "value": value}
        margin = check.get("margin", 0)
        if not _finite(margin):
            raise bad("the 'margin' of a beats_holder check is a number.")
        return {"type": kind, "dataset": dataset, "metric": metric, "margin": margin}
    if kind == "signature_unchanged":
        return {"type": kind}
    signers = check.get("signers", [])
    if isinstance(signers, str):
        signers = [signers]
    if not isinstance(signers, list) or not all(isinstance(s, str) and s for s in signers):
        raise bad("the 'signers' of a signed_by check are a list of trusted key names or identities (empty: any trusted one).")
    return {"type": kind, "signers": signers}


def describe(check: dict) -> str:
    kind = check["type"]
    if kind == "evaluation_metric":
        return f"{check['metric']} {check['op']} {check['value']:g} on dataset {check['dataset']}"
    if kind == "beats_holder":
        margin = f" by {check['margin']:g}" if check.get("margin") else ""
        return f"{check['metric']} on dataset {check['dataset']} at least as good as the stage's holder{margin}"
    if kind == "signature_unchanged":
        return "input signature unchanged from the stage's holder"
    return "signed by " + (", ".join(check["signers"]) if check["signers"] else "a trusted signer")


def _dataset(version, name: str):
    return version.registered_model.evaluation_datasets.filter(name=name).first()


def _metric_of(version, dataset, metric: str) -> tuple[float | None, str]:
    """(value, why it is missing)."""
    ev = latest_evaluation(version, dataset)
    if ev is None:
        return None, f"v{version.version} has no successful evaluation on {dataset.name} ({dataset.digest[:12]})"
    value = ev.metrics.get(metric)
    if not _finite(value):
        return None, f"v{version.version}'s evaluation #{ev.pk} on {dataset.name} has no {metric}"
    return float(value), ""


def _inputs(version):
    """The version's input signature as (name, type) pairs, or None without one."""
    signature = version.signature or {}
    raw = signature.get("inputs")
    if not raw:
        return None
    try:
        spec = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return None
    return [(c.get("name"), c.get("type")) for c in spec if isinstance(c, dict)]


def evaluate(check: dict, version, stage: str | None) -> tuple[bool, str]:
    from approvals.checks import OPERATORS

    kind = check["type"]
    if kind in ("evaluation_metric", "beats_holder"):
        dataset = _dataset(version, check["dataset"])
        if dataset is None:
            return False, f"model has no evaluation dataset {check['dataset']!r}"
        metric = check["metric"]
        value, missing = _metric_of(version, dataset, metric)
        if value is None:
            return False, missing
        if kind == "evaluation_metric":
            ok = bool(OPERATORS[check["op"]](value, check["value"]))
            return ok, f"{metric} = {value:.4g} on {dataset.name} ({'meets' if ok else 'fails'} {check['op']} {check['value']:g})"
        holder = stage_holder(version, stage) if stage else None
        if holder is None:
            return True, f"{stage or 'the stage'} has no holder; v{version.version}'s {metric} = {value:.4g} on {dataset.name}"
        theirs, missing = _metric_of(holder, dataset, metric)
        if theirs is None:
            return False, f"candidate v{version.version} {metric} = {value:.4g}; holder: {missing}"
        margin = check.get("margin") or 0
        if lower_is_better(metric):
            needed, ok, sign = theirs - margin, value <= theirs - margin, "<="
        else:
            needed, ok, sign = theirs + margin, value >= theirs + margin, ">="
        delta = value - theirs
        return ok, (f"{metric} on {dataset.name}: candidate v{version.version} {value:.4g} vs holder v{holder.version} "
                    f"({stage}) {theirs:.4g}, delta {delta:+.4g} ({'lower' if lower_is_better(metric) else 'higher'} is better; "
                    f"needs {sign} {needed:.4g})")
    if kind == "signature_unchanged":
        holder = stage_holder(version, stage) if stage else None
        if holder is None:
            return True, f"{stage or 'the stage'} has no holder to compare with"
        mine, theirs = _inputs(version), _inputs(holder)
        if mine is None or theirs is None:
            who = f"v{version.version}" if mine is None else f"holder v{holder.version}"
            return False, f"{who} has no input signature to compare"
        if mine == theirs:
            return True, f"same {len(mine)} inputs as holder v{holder.version}"
        added = [n for n, _ in mine if n not in {m for m, _ in theirs}]
        removed = [n for n, _ in theirs if n not in {m for m, _ in mine}]
        changed = [n for n, t in mine if n in dict(theirs) and dict(theirs)[n] != t]
        parts = [f"{label}: {', '.join(map(str, names))}" for label, names in
                 (("added", added), ("removed", removed), ("type changed", changed)) if names]
        return False, f"inputs differ from holder v{holder.version}: " + ("; ".join(parts) or "order changed")
    from approvals.models import VersionSignature

    sig = VersionSignature.objects.filter(version=version).first()
    if sig is None:
        return False, "signature not verified yet (verified when the version is READY or evaluated)"
    if sig.status != VersionSignature.VERIFIED:
        return False, f"signature {sig.status}: {sig.detail}"[:500]
    allowed = check.get("signers") or []
    if allowed and not any(sig.signer == s or sig.signer.startswith(s + ":") or sig.signer.endswith(": " + s) for s in allowed):
        return False, f"signed by {sig.signer}, not by {', '.join(allowed)}"
    return True, f"signature verified ({sig.method}): signed by {sig.signer}"
