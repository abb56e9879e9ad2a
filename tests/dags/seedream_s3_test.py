"""Images stored in S3 (tests/test_s3.py): by poking and deferred, and a rerun of the same links."""

from __future__ import annotations

import pendulum
from airflow.providers.common.compat.sdk import DAG

from airflow_provider_seedream.operators.seedream import SeedreamGenerateOperator
from airflow_provider_seedream.sensors.seedream import SeedreamDownloadOperator

START = pendulum.datetime(2026, 1, 1, tz="UTC")
PARAMS = {"destination": "", "filename": "{dag_id}/{run_id}/{index}.{ext}"}

for dag_id, deferrable in (("seedream_s3_test", False), ("seedream_s3_deferred_test", True)):
    with DAG(dag_id, schedule=None, start_date=START, params=PARAMS):
        gen = SeedreamGenerateOperator(
            task_id="gen",
            prompt="three takes of a red bicycle",
            model="seedream-4.0",
            size="1K",
            sequential_image_generation="auto",
            max_images=3,
        )
        SeedreamDownloadOperator(
            task_id="store",
            urls=gen.output,
            destination="{{ params.destination }}",
            filename="{{ params.filename }}",
            deferrable=deferrable,
            poke_interval=0.5,
            timeout=30,
        )

with DAG(
    "seedream_s3_rerun_test",
    schedule=None,
    start_date=START,
    params={**PARAMS, "urls": []},
    render_template_as_native_obj=True,
):
    SeedreamDownloadOperator(
        task_id="store",
        urls="{{ params.urls }}",
        destination="{{ params.destination }}",
        filename="{{ params.filename }}",
        poke_interval=0.5,
        timeout=30,
    )
