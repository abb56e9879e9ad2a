"""Failures: a templated model and size that render invalid, and API errors, with retries configured."""

from __future__ import annotations

import pendulum
from airflow.providers.common.compat.sdk import DAG

from airflow_provider_seedream.operators.seedream import SeedreamGenerateOperator

with DAG(
    "seedream_failure_test",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    params={"size": "2K", "model": "seedream-4.5"},
    default_args={"retries": 2, "retry_delay": pendulum.duration(seconds=0)},
):
    SeedreamGenerateOperator(
        task_id="gen", prompt="a red bicycle", model="{{ params.model }}", size="{{ params.size }}"
    )
