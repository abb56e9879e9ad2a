"""The README's DAG, every model: generation results go downstream over XCom."""

from __future__ import annotations

import logging

import pendulum
from airflow.providers.common.compat.sdk import DAG, task

from airflow_provider_seedream.operators.seedream import SeedreamGenerateOperator

with DAG("seedream_generate_test", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")):
    gen = SeedreamGenerateOperator(
        task_id="gen",
        prompt="a red bicycle, {{ (dag_run.logical_date or dag_run.run_after) | ds }}",
        size="2560x1440",
    )
    gen_40 = SeedreamGenerateOperator(
        task_id="gen_40",
        model="seedream-4.0",
        prompt="a storyboard of a bicycle ride",
        size="2K",
        sequential_image_generation="auto",
        max_images=3,
        watermark=False,
    )
    gen_50_lite = SeedreamGenerateOperator(
        task_id="gen_50_lite",
        model="seedream-5.0-lite",
        prompt="a red bicycle on a 3K poster",
        size="3K",
        images=["https://cdn.example.com/bike.png"],
        optimize_prompt_mode="standard",
    )

    @task
    def count(urls: list[str], more: list[str], lite: list[str]) -> int:
        logging.getLogger("airflow.task").info("links received: %s", urls)
        return len(urls) + len(more) + len(lite)

    count(gen.output, gen_40.output, gen_50_lite.output)
