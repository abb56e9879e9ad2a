"""Dynamic task mapping: one generation per prompt, one store per generation."""

from __future__ import annotations

import pendulum
from airflow.providers.common.compat.sdk import DAG

from airflow_provider_seedream.operators.seedream import SeedreamGenerateOperator
from airflow_provider_seedream.sensors.seedream import SeedreamDownloadOperator

with DAG(
    "seedream_mapped_test",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    params={"destination": "", "filename": "{dag_id}/{run_id}/{task_id}/{map_index}-{index}.{ext}"},
):
    gen = SeedreamGenerateOperator.partial(task_id="gen", size="2K").expand(
        prompt=["a red bicycle", "a blue kettle", "a green lamp"]
    )
    SeedreamDownloadOperator.partial(
        task_id="store",
        destination="{{ params.destination }}",
        filename="{{ params.filename }}",
        poke_interval=0.5,
        timeout=20,
    ).expand(urls=gen.output)
