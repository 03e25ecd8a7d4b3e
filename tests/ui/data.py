"""Test data for the UI tests, built with the real tracking services."""

from tracking import services
from tracking.models import Run


def experiment(user, name: str):
    return services.create_experiment(user=user, name=name)


def run(user, experiment, *, name: str = "", params: dict | None = None, metrics: dict | None = None,
        tags: dict | None = None, start_time: int | None = None, finished: bool = True) -> Run:
    """A run with params, tag and metric histories ({key: [v0, v1, …]} logged at steps 0, 1, …)."""
    created = services.create_run(user=user, experiment=experiment, run_name=name or None, start_time=start_time)
    points = [
        {"key": key, "value": value, "timestamp": 1_700_000_000_000 + step, "step": step}
        for key, values in (metrics or {}).items()
        for step, value in enumerate(values)
    ]
    for start in range(0, max(len(points), 1), 1000):
        services.log_batch(
            run=created,
            metrics=points[start : start + 1000],
            params=[{"key": k, "value": v} for k, v in (params or {}).items()] if start == 0 else [],
            tags=[{"key": k, "value": v} for k, v in (tags or {}).items()] if start == 0 else [],
        )
    if finished:
        services.update_run(run=created, status="FINISHED", end_time=created.start_time + 83_000)
    return Run.objects.get(pk=created.pk)


def long_history(run: Run, key: str, values: list[float]) -> None:
    """A long metric history, fast: the points go in with one bulk insert, the last one through
    the service so the latest value (what search and the tables read) is maintained as usual."""
    from tracking.models import Metric

    Metric.objects.bulk_create(
        [Metric(run=run, key=key, value=v, timestamp=1_700_000_000_000 + s, step=s) for s, v in enumerate(values[:-1])],
        batch_size=2000,
    )
    step = len(values) - 1
    services.log_metric(run=run, key=key, value=values[-1], timestamp=1_700_000_000_000 + step, step=step)
