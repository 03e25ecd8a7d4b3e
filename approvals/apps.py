from django.apps import AppConfig

# Governance steps written to the registry's outbox (registry.events), so notifications can follow.
EVENT_TYPES = {
    "transition_request.created",
    "transition_request.approved",
    "transition_request.rejected",
    "transition_request.cancelled",
    "transition_request.superseded",
    "comment.created",
    "comment.updated",
    "comment.deleted",
    "stage_policy.set",
    "stage_policy.deleted",
    "permissions.changed",
    "evaluation_dataset.attached",
    "evaluation.completed",
    "evaluation.failed",
    "model_signature.verified",
}


class ApprovalsConfig(AppConfig):
    name = "approvals"
    verbose_name = "Governance"

    def ready(self):
        from registry import events, services

        # The outbox refuses unknown types; governance adds its own without registry knowing them.
        events.EVENT_TYPES.update(EVENT_TYPES)
        # Every direct stage change asks the stage policies first (approved requests skip the guard).
        services.register_transition_guard(_check_direct_transition)
        # Requests, reviews and comments on the registry's pages.
        from approvals import panels

        panels.register()
        # A version that becomes READY is evaluated (and its signature verified) on the evaluation queue.
        from approvals import evaluation

        events.register_hook(evaluation.on_registry_events)


def _check_direct_transition(*, version, stage, user) -> None:
    """The guard, looked up at call time (tests replace approvals.policy.check_direct_transition)."""
    from approvals import policy

    policy.check_direct_transition(version=version, stage=stage, user=user)
