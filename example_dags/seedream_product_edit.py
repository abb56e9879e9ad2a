"""
Multi-image edit with Seedream 4.5: a product shot and a pattern swatch in, the product wearing the
pattern out.

The two reference images ship beside this file (``data/references/``). Local files and object-storage
paths are read by the hook, checked by their content against the model's limits, and sent inline as
data URIs, so the API never needs to reach your storage. Public ``https://`` URLs are passed as they are.
"""

from __future__ import annotations

import os
from pathlib import Path

import pendulum
from airflow.providers.common.compat.sdk import DAG, task

from airflow_provider_seedream.operators.seedream import SeedreamGenerateOperator
from airflow_provider_seedream.sensors.seedream import SeedreamDownloadOperator
from airflow_provider_seedream.utils.destinations import require_shared_destination

REFERENCES = Path(__file__).parent / "data" / "references"
DESTINATION = os.environ.get("SEEDREAM_ASSETS", "file:///tmp/seedream-assets")
HOW_TO_SET_DESTINATION = "Set SEEDREAM_ASSETS for this DAG's default, or the param 'destination' for one run."
# Every run has a date: its logical date, or when it was triggered for a manual run without one (how
# Airflow 3 creates them; `{{ ds }}` is undefined there). {run_id} keeps two runs of a day apart.
RUN_FOLDER = "{{ (dag_run.logical_date or dag_run.run_after) | ds }}/{run_id}"

with DAG(
    "seedream_product_edit",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    params={"destination": DESTINATION},
    tags=["seedream", "example"],
):

    @task
    def check_destination(params=None) -> None:
        """A local folder is a trap where tasks run on other hosts (Celery, Kubernetes): refuse it
        before anything is paid for (docs/deploying.md)."""
        require_shared_destination(params["destination"], how_to_set=HOW_TO_SET_DESTINATION)

    edit = SeedreamGenerateOperator(
        task_id="edit",
        model="seedream-4.5",
        prompt=(
            "Apply the pattern from image 2 to the body of the mug in image 1. Keep the mug's shape, "
            "handle and lighting; studio product photo on a light grey background."
        ),
        images=[str(REFERENCES / "mug.png"), str(REFERENCES / "pattern.png")],
        size="2K",
        watermark=False,
    )

    check_destination() >> edit

    SeedreamDownloadOperator(
        task_id="store",
        urls=edit.output,
        destination="{{ params.destination }}",
        filename=f"product-edit/{RUN_FOLDER}/mug-{{index}}.{{ext}}",
        poke_interval=5,
        timeout=15 * 60,
    )
