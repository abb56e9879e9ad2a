"""Generate, then store: waiting in poke mode and deferred, into a destination given at run time. The
sensor is imported from ``operators.seedream``, where DAGs written before ``sensors`` find it."""

from __future__ import annotations

import pendulum
from airflow.providers.common.compat.sdk import DAG

from airflow_provider_seedream.operators.seedream import SeedreamDownloadOperator, SeedreamGenerateOperator

for dag_id, deferrable in (("seedream_download_test", False), ("seedream_download_deferrable_test", True)):
    with DAG(
        dag_id,
        schedule=None,
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        params={"destination": "", "max_images": 3},
        default_args={"retries": 2, "retry_delay": pendulum.duration(seconds=0)},
    ):
        gen = SeedreamGenerateOperator(
            task_id="gen", prompt="a red bicycle", sequential_image_generation="auto", max_images=3
        )
        SeedreamDownloadOperator(
            task_id="store",
            urls=gen.output,
            destination="{{ params.destination }}",
            poke_interval=0.5,
            timeout=20,
            deferrable=deferrable,
        )
