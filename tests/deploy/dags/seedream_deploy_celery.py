"""DAGs that only the CeleryExecutor tier (make test-deploy-celery) runs: a mapped batch spread over
the workers, a generation and a download whose worker is killed while they wait, and a mapped run
under a run ceiling whose ledger is in S3."""

from __future__ import annotations

import os

import pendulum
from airflow.providers.common.compat.sdk import DAG, task

from airflow_provider_seedream.operators.seedream import SeedreamGenerateOperator
from airflow_provider_seedream.sensors.seedream import SeedreamDownloadOperator

DESTINATION = os.environ.get("SEEDREAM_ASSETS", "file:///tmp/seedream-assets")
START = pendulum.datetime(2026, 1, 1, tz="UTC")
ONE_RETRY = {"retries": 1, "retry_delay": pendulum.duration(seconds=1)}

with DAG(
    "seedream_deploy_batch",
    schedule=None,
    start_date=START,
    params={"prompts": 24, "destination": DESTINATION},
    tags=["deploy"],
):

    @task
    def batch_prompts(params=None) -> list[str]:
        return [f"batch item {number}, on whichever worker" for number in range(int(params["prompts"]))]

    batch = SeedreamGenerateOperator.partial(task_id="generate", size="2K").expand(prompt=batch_prompts())
    SeedreamDownloadOperator.partial(
        task_id="store",
        destination="{{ params.destination }}",
        filename="batch/{run_id}/{map_index}-{index}.{ext}",
        poke_interval=2,
        timeout=300,
    ).expand(urls=batch.output)

with DAG(
    "seedream_deploy_killed_generation",
    schedule=None,
    start_date=START,
    tags=["deploy"],
):
    SeedreamGenerateOperator(
        task_id="generate", prompt="a worker dies while this generation is under way", size="2K", **ONE_RETRY
    )

with DAG(
    "seedream_deploy_killed_download",
    schedule=None,
    start_date=START,
    params={"destination": DESTINATION},
    tags=["deploy"],
):
    killed = SeedreamGenerateOperator(
        task_id="generate", prompt="a worker dies while these links wait", size="2K"
    )
    SeedreamDownloadOperator(
        task_id="store",
        urls=killed.output,
        destination="{{ params.destination }}",
        filename="killed/{run_id}/{index}.{ext}",
        mode="poke",  # the try holds its worker slot while it waits: the kill finds it there
        poke_interval=2,
        timeout=300,
        **ONE_RETRY,
    )

with DAG(
    "seedream_deploy_capped",
    schedule=None,
    start_date=START,
    params={"prompts": 24},
    tags=["deploy"],
):

    @task
    def capped_prompts(params=None) -> list[str]:
        return [f"capped item {number}" for number in range(int(params["prompts"]))]

    # seedream_capped allows 10 images a run; retries are there to be refused: a refusal spends none.
    SeedreamGenerateOperator.partial(
        task_id="generate", seedream_conn_id="seedream_capped", size="2K", retries=2
    ).expand(prompt=capped_prompts())
