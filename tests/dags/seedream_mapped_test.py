"""Dynamic task mapping: one generation per prompt."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG

from airflow_provider_seedream.operators.seedream import SeedreamGenerateOperator

with DAG("seedream_mapped_test", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")):
    SeedreamGenerateOperator.partial(task_id="gen", size="2K").expand(
        prompt=["a red bicycle", "a blue kettle", "a green lamp"]
    )
