"""Celery entry points of governance: each takes ids and calls a service. The evaluation tasks are
routed to their own queue (STAGEGATE_EVALUATION_QUEUE, `evaluation`: config.settings CELERY_TASK_ROUTES)
so long model runs never hold up the registry's outbox and registrations."""

from celery import shared_task


@shared_task(acks_late=True)
def evaluate_ready_version(version_id: int) -> int:
    """A version became READY: verify its signature, evaluate it on each dataset of its model once."""
    from approvals.evaluation import evaluate_ready_version as evaluate

    return len(evaluate(version_id=version_id))


@shared_task(acks_late=True)
def run_evaluation(evaluation_id: int) -> str | None:
    """Run one requested (RUNNING) evaluation; a finished one is left as is."""
    from approvals.evaluation import run_evaluation as run

    ev = run(evaluation_id=evaluation_id)
    return ev.status if ev is not None else None
