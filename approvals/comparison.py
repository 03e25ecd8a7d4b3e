"""The reviewer's context: a request's candidate version beside the current holder of its target stage.

For each request: the holder (the newest other version now in the target stage), both source runs'
latest metrics with the signed delta (candidate minus holder: which is better depends on the metric,
so nothing is guessed), the params and signature columns that differ, the check evidence, and what
approval will do to the holder (the policy's archive_existing_on_approval).

Read-only and batched: `compare_requests` costs three queries whatever the number of requests
(holders, latest metrics, params), so the inbox can show every row's comparison inline.
"""

import math
from collections import defaultdict
from dataclasses import dataclass, field

from registry.models import ModelVersion


@dataclass
class Comparison:
    candidate: ModelVersion
    holder: ModelVersion | None
    other_holders: list = field(default_factory=list)  # further versions in the stage (archived too on approval)
    metrics: list = field(default_factory=list)  # {"key", "candidate", "holder", "delta", "sign"}
    params: list = field(default_factory=list)  # {"key", "candidate", "holder"} only where they differ
    signature: list = field(default_factory=list)  # {"part", "column", "candidate", "holder"} only differences
    same_params: int = 0
    checks: list = field(default_factory=list)
    checks_when: str = ""
    archive_on_approval: bool = False

    @property
    def holders(self) -> list:
        return ([self.holder] if self.holder else []) + self.other_holders


def _fmt(value: float | None, is_nan: bool = False) -> str:
    if is_nan:
        return "NaN"
    if value is None:
        return "—"
    return f"{value:.6g}"


def _delta(candidate, holder) -> tuple[str, str]:
    """The signed difference candidate − holder as text, and "up"/"down"/"same"/"" for styling."""
    if candidate is None or holder is None or math.isnan(candidate) or math.isnan(holder):
        return "", ""
    diff = candidate - holder
    if diff == 0:
        return "±0", "same"
    text = f"{diff:+.4g}"
    if holder:
        text += f" ({diff / abs(holder):+.1%})"
    return text, "up" if diff > 0 else "down"


def _columns(mv) -> dict:
    """{(part, column name): type} of the version's signature."""
    from registry.views import _signature

    out = {}
    for part, cols in (_signature(mv) or {}).items():
        for col in cols:
            out[(part, col["name"])] = col["type"]
    return out


def compare_requests(requests, *, policies: dict | None = None) -> dict:
    """{request pk: Comparison} for requests whose `version` and `model` are loaded (select_related).
    `policies` ({(model pk, stage): EffectivePolicy}) is looked up when not given."""
    from approvals.policy import effective_policies
    from tracking.models import LatestMetric, Param

    requests = list(requests)
    if not requests:
        return {}
    if policies is None:
        policies = effective_policies({(r.model_id, r.to_stage): (r.model, r.to_stage) for r in requests}.values())
    pairs = {(r.model_id, r.to_stage) for r in requests}
    holders = defaultdict(list)
    for mv in (
        ModelVersion.objects.filter(registered_model_id__in={m for m, _ in pairs}, current_stage__in={s for _, s in pairs})
        .order_by("-version")
    ):
        holders[(mv.registered_model_id, mv.current_stage)].append(mv)

    out = {}
    for req in requests:
        others = [mv for mv in holders.get((req.model_id, req.to_stage), []) if mv.pk != req.version_id]
        evidence = req.evidence or {}
        when = "on_approval" if evidence.get("on_approval") else "on_request"
        out[req.pk] = Comparison(
            candidate=req.version, holder=others[0] if others else None, other_holders=others[1:],
            checks=evidence.get(when) or [], checks_when="at the last approval attempt" if when == "on_approval" else "when requested",
            archive_on_approval=policies[(req.model_id, req.to_stage)].archive_existing_on_approval,
        )

    run_ids = {c.candidate.run_id for c in out.values() if c.candidate.run_id}
    run_ids |= {c.holder.run_id for c in out.values() if c.holder and c.holder.run_id}
    metrics, params = defaultdict(dict), defaultdict(dict)
    if run_ids:
        for rid, key, value, is_nan in LatestMetric.objects.filter(run_id__in=run_ids).values_list("run_id", "key", "value", "is_nan"):
            metrics[rid][key] = (float("nan") if is_nan else value)
        for rid, key, value in Param.objects.filter(run_id__in=run_ids).values_list("run_id", "key", "value"):
            params[rid][key] = value

    for comparison in out.values():
        cand_run = comparison.candidate.run_id
        hold_run = comparison.holder.run_id if comparison.holder else None
        cm, hm = metrics.get(cand_run, {}), metrics.get(hold_run, {})
        for key in sorted(set(cm) | set(hm)):
            c, h = cm.get(key), hm.get(key)
            delta, sign = _delta(c, h)
            comparison.metrics.append({
                "key": key, "candidate": _fmt(c, c is not None and math.isnan(c)), "holder": _fmt(h, h is not None and math.isnan(h)),
                "delta": delta, "sign": sign,
            })
        cp, hp = params.get(cand_run, {}), params.get(hold_run, {})
        for key in sorted(set(cp) | set(hp)):
            if cp.get(key) != hp.get(key):
                comparison.params.append({"key": key, "candidate": cp.get(key), "holder": hp.get(key)})
            else:
                comparison.same_params += 1
        if comparison.holder is not None:
            cs, hs = _columns(comparison.candidate), _columns(comparison.holder)
            for part, column in sorted(set(cs) | set(hs)):
                if cs.get((part, column)) != hs.get((part, column)):
                    comparison.signature.append({"part": part, "column": column, "candidate": cs.get((part, column)),
                                                 "holder": hs.get((part, column))})
    return out
