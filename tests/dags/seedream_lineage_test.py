"""What the operators tell OpenLineage (tests/test_lineage.py): a cached generation from a reference
file, its images copied into a bucket, and a generation whose links are downloaded."""

from __future__ import annotations

import pendulum
from airflow.providers.common.compat.sdk import DAG

from airflow_provider_seedream.operators.seedream import SeedreamGenerateOperator
from airflow_provider_seedream.sensors.seedream import SeedreamDownloadOperator

STORE = {"destination": "{{ params.destination }}", "filename": "{task_id}/{index}.{ext}", "timeout": 30}

with DAG(
    "seedream_lineage_test",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    params={"reference": "", "cache": "", "destination": ""},
):
    cached = SeedreamGenerateOperator(
        task_id="cached",
        prompt="the bicycle of the reference, in red",
        images=["{{ params.reference }}"],
        sequential_image_generation="auto",
        max_images=2,
        cache="{{ params.cache }}",
    )
    SeedreamDownloadOperator(task_id="copy", urls=cached.output, **STORE)
    links = SeedreamGenerateOperator(task_id="links", prompt="a blue travel mug", model="seedream-4.0")
    SeedreamDownloadOperator(task_id="fetch", urls=links.output, **STORE)
