"""
Storyboards: one request, a sequence of related images, on Seedream 4.0, 4.5 and 5.0 lite.

With ``sequential_image_generation="auto"`` the model decides from the prompt how many images to
return, up to ``max_images`` (1..15; reference images count towards 15 too). The models take the
same arguments; the provider writes ``max_images`` where each model's API expects it (top level on
4.0, ``sequential_image_generation_options`` on 4.5 and 5.0 lite). Sizes differ: 5.0 lite has a
``3K`` preset and no ``4K``.
"""

from __future__ import annotations

import os

import pendulum
from airflow.providers.common.compat.sdk import DAG, task

from airflow_provider_seedream.operators.seedream import SeedreamGenerateOperator
from airflow_provider_seedream.sensors.seedream import SeedreamDownloadOperator
from airflow_provider_seedream.utils.destinations import require_shared_destination

DESTINATION = os.environ.get("SEEDREAM_ASSETS", "file:///tmp/seedream-assets")
HOW_TO_SET_DESTINATION = "Set SEEDREAM_ASSETS for this DAG's default, or the param 'destination' for one run."
# Every run has a date: its logical date, or when it was triggered for a manual run without one (how
# Airflow 3 creates them; `{{ ds }}` is undefined there). {run_id} keeps two runs of a day apart.
RUN_FOLDER = "{{ (dag_run.logical_date or dag_run.run_after) | ds }}/{run_id}"
STORY = (
    "A four-panel storyboard for a bicycle commercial: 1) a rider unlocks a red city bicycle at dawn, "
    "2) rides through an empty market street, 3) crosses a bridge as the sun rises, 4) arrives smiling "
    "at a cafe. Consistent rider, bicycle and colour grading across panels."
)

with DAG(
    "seedream_storyboard",
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

    checked = check_destination()
    for model, size in (("seedream-4.0", "2K"), ("seedream-4.5", "2560x1440"), ("seedream-5.0-lite", "3K")):
        name = model.replace("seedream-", "v").replace(".", "")
        panels = SeedreamGenerateOperator(
            task_id=f"storyboard_{name}",
            model=model,
            prompt=STORY,
            size=size,
            sequential_image_generation="auto",
            max_images=4,
        )
        checked >> panels
        SeedreamDownloadOperator(
            task_id=f"store_{name}",
            urls=panels.output,
            destination="{{ params.destination }}",
            filename=f"storyboard/{RUN_FOLDER}/{name}-{{index}}.{{ext}}",
            poke_interval=5,
            timeout=15 * 60,
        )
