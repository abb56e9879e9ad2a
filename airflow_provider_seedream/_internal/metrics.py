"""What the provider tells Airflow's metrics (StatsD or OpenTelemetry, through the ``Stats`` the core
and the official providers use): images generated and reused, generations a ceiling refused, and the
estimated spend, each tagged with the model and, in a task, the DAG (where tags are on: StatsD with
``statsd_influxdb_enabled``, Datadog, OpenTelemetry)."""

from __future__ import annotations

from airflow_provider_seedream._internal.task_context import running_task

PREFIX = "seedream"
IMAGES_GENERATED = f"{PREFIX}.images_generated"
IMAGES_REUSED = f"{PREFIX}.images_reused"
GENERATIONS_REFUSED = f"{PREFIX}.generations_refused"
ESTIMATED_COST = f"{PREFIX}.estimated_cost_usd"


def count(metric: str, value: float, *, model: str) -> None:
    """Add ``value`` to the counter ``metric``; nothing where metrics are off."""
    if not value:
        return
    from airflow.providers.common.compat.sdk import Stats

    task = running_task()
    tags = {"model": model, **({"dag_id": task["dag_id"]} if task else {})}
    Stats.incr(metric, value, tags=tags)  # type: ignore[arg-type]  # a float counter: StatsD takes one
