"""Spend ceilings in DAG runs: a mapped generation under the connection's run ceiling, a task whose
tries share its ``max_spend_usd``, and a templated ceiling."""

from __future__ import annotations

import pendulum
from airflow.providers.common.compat.sdk import DAG, task

from airflow_provider_seedream.operators.seedream import SeedreamGenerateOperator

START = pendulum.datetime(2026, 1, 1, tz="UTC")

with DAG("seedream_ceiling_mapped_test", schedule=None, start_date=START, params={"prompts": 9}):

    @task
    def prompts(params=None) -> list[str]:
        return [f"catalog item {number}" for number in range(int(params["prompts"]))]

    # Retries are there to be refused: a ceiling's refusal spends none.
    SeedreamGenerateOperator.partial(task_id="generate", size="2K", retries=2).expand(prompt=prompts())

with DAG("seedream_ceiling_tries_test", schedule=None, start_date=START):

    @task(retries=1, retry_delay=pendulum.duration(seconds=0))
    def twice(ti=None) -> list[str]:
        from airflow_provider_seedream.hooks.seedream import SeedreamHook

        urls = SeedreamHook().generate("a red bicycle", max_spend_usd=0.05)
        if ti.try_number == 1:
            raise RuntimeError("the first try fails after paying")
        return urls

    twice()

with DAG(
    "seedream_ceiling_templated_test",
    schedule=None,
    start_date=START,
    params={"ceiling": "0.05"},
):
    SeedreamGenerateOperator(
        task_id="generate",
        prompt="a red bicycle",
        sequential_image_generation="auto",
        max_images=2,
        max_spend_usd="{{ params.ceiling }}",
    )
