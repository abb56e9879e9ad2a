"""Failures: a templated model and size that render invalid, and API errors, with retries configured;
a failure callback records what it was handed."""

from __future__ import annotations

import json

import pendulum
from airflow.providers.common.compat.sdk import DAG

from airflow_provider_seedream.operators.seedream import SeedreamGenerateOperator


def record_failure(context) -> None:
    """What an ``on_failure_callback`` sees: the exception, its type and the Seedream error behind it."""
    if not context["params"].get("callback_file"):
        return
    exception = context.get("exception")  # Airflow 3.0's dag.test() hands callbacks none
    seen = {
        "type": type(exception).__name__,
        "message": str(exception),
        "cause": type(exception.__cause__).__name__
        if exception is not None and exception.__cause__
        else None,
    }
    with open(context["params"]["callback_file"], "w") as handle:
        json.dump(seen, handle)


with DAG(
    "seedream_failure_test",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    params={"size": "2K", "model": "seedream-4.5", "callback_file": ""},
    default_args={"retries": 2, "retry_delay": pendulum.duration(seconds=0)},
):
    SeedreamGenerateOperator(
        task_id="gen",
        prompt="a red bicycle",
        model="{{ params.model }}",
        size="{{ params.size }}",
        on_failure_callback=record_failure,
    )
