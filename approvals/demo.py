"""Governance on top of the demo registry: two people, a Production policy and a request in an inbox.

- `scientist` (CAN_EDIT on lr_wine_quality and its experiment) and `reviewer` (CAN_MANAGE_PRODUCTION_VERSIONS
  on the model, CAN_READ on the experiment), with passwords generated and returned once to be printed
  (STAGEGATE_DEMO_PASSWORD sets both instead);
- a Production policy on lr_wine_quality: 1 approval, not by the requester (nor the version's author),
  and the source run's rmse must not exceed a threshold the demo's best run meets;
- a pending request from `scientist` to move version 2 (Staging) to Production, waiting for `reviewer`.
`load_evaluation_demo` (run before it by seed_demo) attaches the tutorial's wine hold-out set to
lr_wine_quality and evaluates versions 1 and 2 on it in the sandbox; the Production policy then also
asks that a candidate's rmse on it beat the holder's (`beats_holder`), so the request in the
reviewer's inbox carries the server's own numbers.
Idempotent: run twice, it changes nothing the second time.
"""

import math
import os

from django.db import transaction

from approvals import services as gov
from approvals.models import StagePolicy, TransitionRequest
from core import permissions as perms
from core.services import ensure_user
from registry.demo import EXPERIMENT, MODEL_NAME, TARGET
from registry.models import RegisteredModel
from tracking.models import Experiment, LatestMetric

RMSE_THRESHOLD = 0.6


def _threshold(model) -> float:
    """0.6 (v2 passes, v1 would not), or just above the best demo run's rmse if the data ever made it worse."""
    run_ids = model.versions.exclude(run_id=None).values_list("run_id", flat=True)
    best = LatestMetric.objects.filter(run_id__in=run_ids, key="rmse").order_by("value").values_list("value", flat=True).first()
    if best is None or best <= RMSE_THRESHOLD:
        return RMSE_THRESHOLD
    return math.ceil((best + 0.05) * 100) / 100


def load_governance_demo(*, admin) -> dict:
    """Set up the governance demo on lr_wine_quality; returns {"passwords": {username: generated}, "request": req}."""
    model = RegisteredModel.objects.filter(name=MODEL_NAME).first()
    if model is None:
        return {"passwords": {}, "request": None}
    password = os.environ.get("STAGEGATE_DEMO_PASSWORD") or None
    passwords = {}
    scientist, generated = ensure_user(username="scientist", password=password, email="scientist@localhost")
    if generated:
        passwords["scientist"] = generated
    reviewer, generated = ensure_user(username="reviewer", password=password, email="reviewer@localhost")
    if generated:
        passwords["reviewer"] = generated
    with transaction.atomic():
        gov.grant_permission(obj=model, level=perms.CAN_EDIT, user=scientist)
        gov.grant_permission(obj=model, level=perms.CAN_MANAGE_PRODUCTION_VERSIONS, user=reviewer)
        experiment = Experiment.objects.filter(name=EXPERIMENT).first()
        if experiment is not None:
            gov.grant_permission(obj=experiment, level=perms.CAN_EDIT, user=scientist)
            gov.grant_permission(obj=experiment, level=perms.CAN_READ, user=reviewer)
        if not StagePolicy.objects.filter(model=model, stage="Production").exists():
            gov.set_stage_policy(
                user=admin, model_name=MODEL_NAME, stage="Production", requires_approval=True, min_approvals=1,
                approver_level=perms.CAN_MANAGE_PRODUCTION_VERSIONS, allow_self_approval=False,
                checks_spec=[{"type": "version_ready"}, {"type": "metric", "key": "rmse", "op": "<=", "value": _threshold(model)},
                             *_evaluation_checks(model)],
            )
    request = TransitionRequest.objects.filter(model=model, version__version=2, to_stage="Production").first()
    v2 = model.versions.filter(version=2).first()
    if request is None and v2 is not None and v2.current_stage != "Production":
        request = gov.request_stage_transition(
            name=MODEL_NAME, version=2, stage="Production", user=scientist,
            comment="v2 uses all eleven measurements and beats v1 on RMSE; please promote it to Production.",
        )
    return {"passwords": passwords, "request": request}


# --------------------------------------------------------------------------- server-side evaluation

HOLDOUT = "wine-holdout"


def holdout_csv() -> bytes:
    """The quarter of the wine-quality table the tutorial's runs held out (registry.demo's split)."""
    from registry.demo import wine_quality_split

    _, test = wine_quality_split()
    return test.to_csv(index=False).encode()


def _evaluation_checks(model) -> list[dict]:
    if not model.evaluation_datasets.filter(name=HOLDOUT).exists():
        return []
    return [{"type": "beats_holder", "dataset": HOLDOUT, "metric": "rmse"}]


def load_evaluation_demo(*, admin) -> list:
    """Attach the hold-out set to lr_wine_quality and evaluate its READY versions on it now (in the
    sandboxed subprocess, a few seconds each); versions still registering (a real worker) are
    evaluated by the worker when they become READY. Returns the evaluations made."""
    from approvals.evaluation import attach_evaluation_dataset, evaluate_ready_version

    model = RegisteredModel.objects.filter(name=MODEL_NAME).first()
    if model is None:
        return []
    if not model.evaluation_datasets.filter(name=HOLDOUT).exists():
        attach_evaluation_dataset(user=admin, model_name=MODEL_NAME, name=HOLDOUT, target=TARGET, task="regression",
                                  metrics=["rmse", "mae", "r2"], data=holdout_csv(), filename="wine-holdout.csv",
                                  description="The tutorial's hold-out quarter of the (synthetic) wine-quality table.")
    done = []
    for version_id in model.versions.order_by("version").values_list("id", flat=True):
        done.extend(evaluate_ready_version(version_id=version_id))
    return done
