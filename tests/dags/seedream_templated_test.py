"""Every request argument computed by a template, as a DAG author does with params."""

from __future__ import annotations

import pendulum
from airflow.providers.common.compat.sdk import DAG

from airflow_provider_seedream.operators.seedream import SeedreamGenerateOperator

with DAG(
    "seedream_templated_test",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    params={"model": "seedream-4.0", "max_images": 2, "watermark": False, "conn_id": "seedream_default"},
):
    SeedreamGenerateOperator(
        task_id="gen",
        prompt="a red bicycle",
        model="{{ params.model }}",
        size="{{ '2K' }}",
        sequential_image_generation="{{ 'auto' }}",
        max_images="{{ params.max_images }}",
        watermark="{{ params.watermark }}",
        seedream_conn_id="{{ params.conn_id }}",
    )
