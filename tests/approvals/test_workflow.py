"""The request → review → approve workflow, one test per policy knob, on the services."""

import pytest

from approvals import services as gov
from approvals.models import Activity, Review, TransitionRequest
from core.errors import AlreadyExists, DoesNotExist, InvalidParameter, InvalidState, PermissionDenied
from registry import services as registry
from registry.models import Event, ModelVersion, StageTransition
from tests.approvals.conftest import production_policy

pytestmark = pytest.mark.django_db


def stage_of(mv):
    return ModelVersion.objects.get(pk=mv.pk).current_stage


def test_no_policy_means_direct_transitions_work(governed, people):
    model, mv = governed
    registry.transition_model_version_stage(name="gm", version=1, stage="Production", user=people["production_manager"])
    assert stage_of(mv) == "Production"


def test_direct_transition_needs_the_stage_level(governed, people):
    model, mv = governed
    with pytest.raises(PermissionDenied, match="needs CAN_MANAGE_PRODUCTION_VERSIONS; you have CAN_MANAGE_STAGING_VERSIONS"):
        registry.transition_model_version_stage(name="gm", version=1, stage="Production", user=people["staging_manager"])
    # Staging managers move between None, Staging and Archived.
    registry.transition_model_version_stage(name="gm", version=1, stage="Archived", user=people["staging_manager"])
    assert stage_of(mv) == "Archived"
    with pytest.raises(PermissionDenied, match="POST /api/2.0/mlflow/transition-requests/create"):
        registry.transition_model_version_stage(name="gm", version=1, stage="Staging", user=people["editor"])


def test_direct_transition_refused_when_policy_needs_approval(governed, people, admin):
    production_policy(admin)
    with pytest.raises(PermissionDenied) as error:
        registry.transition_model_version_stage(name="gm", version=1, stage="Production", user=admin)
    message = error.value.message
    assert "need an approved transition request (1 approval from users with CAN_MANAGE_PRODUCTION_VERSIONS)" in message
    assert "POST /api/2.0/mlflow/transition-requests/create" in message
    assert "/models/gm/versions/1/" in message
    assert stage_of(governed[1]) == "Staging"


def test_request_then_approve_applies_transition_with_request_id(governed, people, admin):
    production_policy(admin, checks_spec=[{"type": "metric", "key": "rmse", "op": "<=", "value": 0.8},
                                          {"type": "version_ready"}])
    req = gov.request_stage_transition(name="gm", version=1, stage="production", user=people["editor"], comment="ship it")
    assert (req.from_stage, req.to_stage, req.status) == ("Staging", "Production", "PENDING")
    assert [r["passed"] for r in req.evidence["on_request"]] == [True, True]
    assert req.evidence["on_request"][0]["detail"].startswith("rmse = 0.7 <= 0.8")
    outcome = gov.approve_transition_request(name="gm", version=1, stage="Production", user=people["production_manager"],
                                             archive_existing_versions=True, comment="lgtm")
    assert outcome.applied
    req.refresh_from_db()
    assert req.status == "APPROVED" and req.archive_existing_versions and req.decided_by == people["production_manager"]
    assert [r["passed"] for r in req.evidence["on_approval"]] == [True, True]
    assert stage_of(governed[1]) == "Production"
    transition = StageTransition.objects.get(version=governed[1], to_stage="Production")
    assert transition.request_id == req.pk and transition.user == people["production_manager"]
    types = list(Event.objects.filter(type__startswith="transition_request").values_list("type", flat=True))
    assert types == ["transition_request.created", "transition_request.approved"]
    feed = list(Activity.objects.filter(version=governed[1]).values_list("activity_type", flat=True))
    assert feed == ["REQUESTED_TRANSITION", "APPROVED_REQUEST"]


def test_quorum_of_two_with_three_reviewers(governed, people, admin):
    from tests import factories

    production_policy(admin, min_approvals=2)
    reviewers = [factories.user(f"rev{i}") for i in range(3)]
    for r in reviewers:
        gov.grant_permission(obj=governed[0], level="CAN_MANAGE_PRODUCTION_VERSIONS", user=r)
    gov.request_stage_transition(name="gm", version=1, stage="Production", user=people["editor"])
    first = gov.approve_transition_request(name="gm", version=1, stage="Production", user=reviewers[0],
                                           archive_existing_versions=False)
    assert not first.applied and first.activity.data["approvals"] == 1 and first.activity.data["required"] == 2
    assert stage_of(governed[1]) == "Staging"
    with pytest.raises(InvalidState, match="already reviewed"):
        gov.approve_transition_request(name="gm", version=1, stage="Production", user=reviewers[0],
                                       archive_existing_versions=False)
    second = gov.approve_transition_request(name="gm", version=1, stage="Production", user=reviewers[1],
                                            archive_existing_versions=False)
    assert second.applied and stage_of(governed[1]) == "Production"
    # The third reviewer comes too late: decided requests are immutable.
    with pytest.raises(InvalidState, match="is already APPROVED"):
        gov.approve_transition_request(name="gm", version=1, stage="Production", user=reviewers[2],
                                       archive_existing_versions=False)
    assert Review.objects.filter(request__model=governed[0]).count() == 2


def test_self_approval_blocked_unless_allowed(governed, people, admin):
    production_policy(admin)
    gov.request_stage_transition(name="gm", version=1, stage="Production", user=people["production_manager"])
    with pytest.raises(PermissionDenied, match="separation of duties: you requested this transition"):
        gov.approve_transition_request(name="gm", version=1, stage="Production", user=people["production_manager"],
                                       archive_existing_versions=False)
    # The version's author (owner) may not approve either; admins obey the rule too.
    with pytest.raises(PermissionDenied, match="you created this version"):
        gov.approve_transition_request(name="gm", version=1, stage="Production", user=people["owner"],
                                       archive_existing_versions=False)
    production_policy(admin, allow_self_approval=True)
    outcome = gov.approve_transition_request(name="gm", version=1, stage="Production", user=people["production_manager"],
                                             archive_existing_versions=False)
    assert outcome.applied


def test_approver_level_is_enforced(governed, people, admin):
    production_policy(admin)
    gov.request_stage_transition(name="gm", version=1, stage="Production", user=people["reader"])
    for persona in ("reader", "editor", "staging_manager"):
        with pytest.raises(PermissionDenied, match="needs CAN_MANAGE_PRODUCTION_VERSIONS"):
            gov.approve_transition_request(name="gm", version=1, stage="Production", user=people[persona],
                                           archive_existing_versions=False)
    with pytest.raises(DoesNotExist):
        gov.approve_transition_request(name="gm", version=1, stage="Production", user=people["outsider"],
                                       archive_existing_versions=False)
    production_policy(admin, approver_level="CAN_MANAGE")
    with pytest.raises(PermissionDenied, match="needs CAN_MANAGE on 'gm'"):
        gov.approve_transition_request(name="gm", version=1, stage="Production", user=people["production_manager"],
                                       archive_existing_versions=False)
    assert gov.approve_transition_request(name="gm", version=1, stage="Production", user=people["manager"],
                                          archive_existing_versions=False).applied


def test_failing_metric_check_blocks_approval_and_says_why(make_version, people, admin, run_with_metrics):
    from tests.approvals.conftest import grant_all

    run = run_with_metrics(rmse=0.93)
    mv = make_version("gm", run_id=run.run_uuid)
    grant_all(mv.registered_model, people)
    production_policy(admin, checks_spec=[{"type": "metric", "key": "rmse", "op": "<=", "value": 0.8},
                                          {"type": "tag", "key": "validation", "value": "passed"}])
    req = gov.request_stage_transition(name="gm", version=1, stage="Production", user=people["editor"])
    assert [r["passed"] for r in req.evidence["on_request"]] == [False, False]
    with pytest.raises(InvalidState) as error:
        gov.approve_transition_request(name="gm", version=1, stage="Production", user=people["production_manager"],
                                       archive_existing_versions=False)
    assert "2 of 2 policy check(s) failed" in error.value.message
    assert "rmse <= 0.8: rmse = 0.93 > 0.8" in error.value.message
    assert "tag validation = passed: tag validation is not set" in error.value.message
    req.refresh_from_db()
    assert req.status == "PENDING" and not req.reviews.exists()
    assert req.evidence["on_approval"][0]["passed"] is False  # the evidence is kept
    assert stage_of(mv) == "None"
    # Fix the tag and log a better rmse: the same reviewer's approval now goes through.
    registry.set_model_version_tag(name="gm", version=1, key="validation", value="passed", user=people["owner"])
    from tracking import services as tracking
    from tracking.models import now_ms

    tracking.log_metric(run=run, key="rmse", value=0.5, timestamp=now_ms(), step=1)
    outcome = gov.approve_transition_request(name="gm", version=1, stage="Production", user=people["production_manager"],
                                             archive_existing_versions=False)
    assert outcome.applied and stage_of(mv) == "Production"
    assert all(r["passed"] for r in outcome.activity.data["checks"])


def test_min_hours_in_stage_check(governed, people, admin):
    production_policy(admin, checks_spec=[{"type": "min_hours_in_stage", "stage": "staging", "hours": 24}])
    gov.request_stage_transition(name="gm", version=1, stage="Production", user=people["editor"])
    with pytest.raises(InvalidState, match=r"at least 24 h in Staging: 0.0 h in Staging \(below the 24 h required\)"):
        gov.approve_transition_request(name="gm", version=1, stage="Production", user=people["production_manager"],
                                       archive_existing_versions=False)
    # Pretend it entered Staging two days ago.
    StageTransition.objects.filter(version=governed[1], to_stage="Staging").update(timestamp=1)
    assert gov.approve_transition_request(name="gm", version=1, stage="Production", user=people["production_manager"],
                                          archive_existing_versions=False).applied


def test_rejection_ends_the_request(governed, people, admin):
    production_policy(admin, min_approvals=2)
    gov.request_stage_transition(name="gm", version=1, stage="Production", user=people["editor"])
    gov.approve_transition_request(name="gm", version=1, stage="Production", user=people["production_manager"],
                                   archive_existing_versions=False)
    with pytest.raises(PermissionDenied):
        gov.reject_transition_request(name="gm", version=1, stage="Production", user=people["staging_manager"])
    outcome = gov.reject_transition_request(name="gm", version=1, stage="Production", user=people["manager"], comment="no")
    assert outcome.request.status == "REJECTED" and outcome.activity.activity_type == "REJECTED_REQUEST"
    assert stage_of(governed[1]) == "Staging"
    with pytest.raises(InvalidState, match="is already REJECTED"):
        gov.approve_transition_request(name="gm", version=1, stage="Production", user=people["admin"],
                                       archive_existing_versions=False)
    # A new request can be made after a decision.
    assert gov.request_stage_transition(name="gm", version=1, stage="Production", user=people["editor"]).is_pending


def test_cancellation_by_requester_or_manager_only(governed, people, admin):
    production_policy(admin)
    gov.request_stage_transition(name="gm", version=1, stage="Production", user=people["editor"])
    for persona in ("reader", "production_manager"):
        with pytest.raises(PermissionDenied, match="only the requester or a user with CAN_MANAGE"):
            gov.cancel_transition_request(name="gm", version=1, stage="Production", user=people[persona])
    with pytest.raises(DoesNotExist, match="No pending transition request by reader"):
        gov.cancel_transition_request(name="gm", version=1, stage="Production", user=people["editor"], creator="reader")
    outcome = gov.cancel_transition_request(name="gm", version=1, stage="Production", user=people["editor"], creator="editor")
    assert outcome.request.status == "CANCELLED"
    gov.request_stage_transition(name="gm", version=1, stage="Production", user=people["editor"])
    assert gov.cancel_transition_request(name="gm", version=1, stage="Production", user=people["manager"]).request.status == "CANCELLED"
    assert Event.objects.filter(type="transition_request.cancelled").count() == 2


def test_one_pending_request_per_version_and_stage(governed, people):
    gov.request_stage_transition(name="gm", version=1, stage="Production", user=people["editor"])
    with pytest.raises(AlreadyExists, match="already exists"):
        gov.request_stage_transition(name="gm", version=1, stage="Production", user=people["reader"])
    gov.request_stage_transition(name="gm", version=1, stage="Archived", user=people["reader"])
    with pytest.raises(InvalidParameter, match="already in stage Staging"):
        gov.request_stage_transition(name="gm", version=1, stage="Staging", user=people["reader"])
    with pytest.raises(DoesNotExist):
        gov.request_stage_transition(name="gm", version=1, stage="Production", user=people["outsider"])


def test_supersession_when_version_leaves_its_stage(governed, people, admin, make_version):
    production_policy(admin)
    gov.request_stage_transition(name="gm", version=1, stage="Production", user=people["editor"])
    gov.request_stage_transition(name="gm", version=1, stage="Archived", user=people["editor"])
    # A direct move (Archived needs no approval) makes both requests moot.
    registry.transition_model_version_stage(name="gm", version=1, stage="Archived", user=people["staging_manager"])
    statuses = dict(TransitionRequest.objects.values_list("to_stage", "status"))
    assert statuses == {"Production": "SUPERSEDED", "Archived": "SUPERSEDED"}
    assert Event.objects.filter(type="transition_request.superseded").count() == 2


def test_supersession_when_another_request_archives_the_version(governed, people, admin, make_version):
    production_policy(admin)
    registry.transition_model_version_stage(name="gm", version=1, stage="None", user=people["staging_manager"])
    v2 = make_version("gm", user=people["owner"])
    gov.request_stage_transition(name="gm", version=1, stage="Production", user=people["editor"])
    gov.approve_transition_request(name="gm", version=1, stage="Production", user=people["production_manager"],
                                   archive_existing_versions=False)
    gov.request_stage_transition(name="gm", version=2, stage="Production", user=people["editor"])
    # v1 is in Production; someone asks to archive it, but v2's approval archives it first.
    gov.request_stage_transition(name="gm", version=1, stage="Archived", user=people["reader"])
    gov.approve_transition_request(name="gm", version=2, stage="Production", user=people["production_manager"],
                                   archive_existing_versions=True)
    assert stage_of(v2) == "Production"
    stale = TransitionRequest.objects.get(version__version=1, to_stage="Archived")
    assert stale.status == "SUPERSEDED"
    with pytest.raises(InvalidState, match="already SUPERSEDED"):
        gov.approve_transition_request(name="gm", version=1, stage="Archived", user=people["manager"],
                                       archive_existing_versions=False)


def test_decided_requests_are_immutable(governed, people, admin):
    production_policy(admin)
    gov.request_stage_transition(name="gm", version=1, stage="Production", user=people["editor"])
    gov.cancel_transition_request(name="gm", version=1, stage="Production", user=people["editor"])
    for call in (
        lambda: gov.approve_transition_request(name="gm", version=1, stage="Production", user=people["manager"], archive_existing_versions=False),
        lambda: gov.reject_transition_request(name="gm", version=1, stage="Production", user=people["manager"]),
        lambda: gov.cancel_transition_request(name="gm", version=1, stage="Production", user=people["manager"]),
    ):
        with pytest.raises(InvalidState, match="decided requests cannot change"):
            call()


def test_per_model_policy_overrides_global(governed, people, admin, make_version):
    production_policy(admin, min_approvals=2)
    # Lowering the global policy for one model is a superuser's decision (tests/approvals/test_policy_floor.py).
    gov.set_stage_policy(user=admin, model_name="gm", stage="Production", requires_approval=False)
    from approvals.policy import effective_policy

    assert effective_policy(model=governed[0], stage="Production").scope == "model"
    registry.transition_model_version_stage(name="gm", version=1, stage="Production", user=people["production_manager"])
    make_version("other")
    from registry.models import RegisteredModel

    assert effective_policy(model=RegisteredModel.objects.get(name="other"), stage="Production").min_approvals == 2
    with pytest.raises(PermissionDenied):
        gov.set_stage_policy(user=people["production_manager"], model_name="gm", stage="Staging")
    with pytest.raises(PermissionDenied, match="only administrators"):
        gov.set_stage_policy(user=people["manager"], stage="Staging")


def test_policy_validation(admin):
    with pytest.raises(InvalidParameter, match="Invalid Model Version stage: Prod"):
        gov.set_stage_policy(user=admin, stage="Prod")
    with pytest.raises(InvalidParameter, match="min_approvals"):
        gov.set_stage_policy(user=admin, stage="Production", min_approvals=0)
    with pytest.raises(InvalidParameter, match="approver_level"):
        gov.set_stage_policy(user=admin, stage="Production", approver_level="CAN_READ")
    with pytest.raises(InvalidParameter, match=r"Invalid check #1: unknown operator '=<'"):
        gov.set_stage_policy(user=admin, stage="Production", checks_spec=[{"type": "metric", "key": "rmse", "op": "=<", "value": 1}])
    with pytest.raises(InvalidParameter, match=r"Invalid check #2: unknown type 'magic'"):
        gov.set_stage_policy(user=admin, stage="Production", checks_spec=[{"type": "version_ready"}, {"type": "magic"}])


def test_comments(governed, people):
    comment = gov.create_comment(name="gm", version=1, user=people["reader"], comment="looks good")
    with pytest.raises(PermissionDenied, match="only the author"):
        gov.update_comment(comment_id=comment.pk, user=people["manager"], comment="edited")
    gov.update_comment(comment_id=comment.pk, user=people["reader"], comment="edited")
    assert Activity.objects.get(comment_obj=comment).comment == "edited"
    with pytest.raises(DoesNotExist):
        gov.delete_comment(comment_id=comment.pk, user=people["outsider"])
    with pytest.raises(PermissionDenied):
        gov.delete_comment(comment_id=comment.pk, user=people["editor"])
    gov.delete_comment(comment_id=comment.pk, user=people["manager"])
    assert list(Event.objects.filter(type__startswith="comment.").values_list("type", flat=True)) == [
        "comment.created", "comment.updated", "comment.deleted"
    ]


@pytest.mark.parametrize("setting, expected", [
    (None, {1: "Archived", 2: "Production"}),   # the stage's default: Production keeps one version
    (True, {1: "Archived", 2: "Production"}),
    (False, {1: "Production", 2: "Production"}),  # off: the approver decides (here: not to archive)
])
def test_approval_archives_the_production_holder_when_the_policy_says_so(governed, people, admin, make_version, setting, expected):
    registry.transition_model_version_stage(name="gm", version=1, stage="Production", user=admin)
    make_version("gm", stage="Staging", user=admin)
    policy = production_policy(admin, archive_existing_on_approval=setting)
    assert policy.effective_archive_existing_on_approval is (setting is not False)
    req = gov.request_stage_transition(name="gm", version=2, stage="Production", user=people["editor"])
    gov.approve_transition_request(name="gm", version=2, stage="Production", user=people["production_manager"])
    assert dict(ModelVersion.objects.filter(registered_model__name="gm").values_list("version", "current_stage")) == expected
    req.refresh_from_db()
    assert req.archive_existing_versions is (setting is not False) and req.policy["archive_existing_on_approval"] is (setting is not False)


def test_archiving_is_off_by_default_for_other_stages(governed, people, admin, make_version):
    from approvals.policy import effective_policy

    assert not effective_policy(model=governed[0], stage="Staging").archive_existing_on_approval
    make_version("gm", user=admin)
    gov.request_stage_transition(name="gm", version=2, stage="Staging", user=people["editor"])
    gov.approve_transition_request(name="gm", version=2, stage="Staging", user=people["staging_manager"])
    assert dict(ModelVersion.objects.filter(registered_model__name="gm").values_list("version", "current_stage")) == {
        1: "Staging", 2: "Staging"}
