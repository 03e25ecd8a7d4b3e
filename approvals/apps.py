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
        from registry import events

        # The outbox refuses unknown types; governance adds its own without registry knowing them.
        events.EVENT_TYPES.update(EVENT_TYPES)
        # A version that becomes READY is evaluated (and its signature verified) on the evaluation queue.
        from approvals import evaluation

        events.register_hook(evaluation.on_registry_events)
