"""DAGs that only the deployment tier (make test-deploy) runs: waits through the real triggerer and in
reschedule mode, a Seedream 5.0 lite generation, and a mapped load of generations against a
rate-limited sandbox."""

from __future__ import annotations

import os

import pendulum
from airflow.providers.common.compat.sdk import DAG, task

from airflow_provider_seedream.operators.seedream import SeedreamGenerateOperator
from airflow_provider_seedream.sensors.seedream import SeedreamDownloadOperator

DESTINATION = os.environ.get("SEEDREAM_ASSETS", "file:///tmp/seedream-assets")
START = pendulum.datetime(2026, 1, 1, tz="UTC")

# Reschedule mode pokes every 5 s, with quick retries: Airflow 3.3's scheduler can take the late
# "success" of one poke for a task killed externally and fail it (apache/airflow#71172). It failed two
# of five runs here before the retries; a retry resumes the wait, and the manifest fetches nothing twice.
WAITS = (
    ("seedream_deploy_deferred", {"deferrable": True, "poke_interval": 2}),
    (
        "seedream_deploy_reschedule",
        {"mode": "reschedule", "poke_interval": 5, "retries": 3, "retry_delay": pendulum.duration(seconds=1)},
    ),
)

for dag_id, wait in WAITS:
    with DAG(dag_id, schedule=None, start_date=START, params={"destination": DESTINATION}, tags=["deploy"]):
        gen = SeedreamGenerateOperator(task_id="gen", prompt=f"waiting in {dag_id}", size="2K")
        SeedreamDownloadOperator(
            task_id="store",
            urls=gen.output,
            destination="{{ params.destination }}",
            timeout=120,
            **wait,
        )

LITE_PROMPT = "a 3K poster of a lighthouse, on seedream 5.0 lite"

with DAG("seedream_deploy_lite", schedule=None, start_date=START, params={"destination": DESTINATION}):
    lite = SeedreamGenerateOperator(
        task_id="gen", model="seedream-5.0-lite", prompt=LITE_PROMPT, size="3K", watermark=False
    )
    SeedreamDownloadOperator(task_id="store", urls=lite.output, destination="{{ params.destination }}/lite")

with DAG(
    "seedream_deploy_load",
    schedule=None,
    start_date=START,
    params={"prompts": 100},
    max_active_runs=1,
    tags=["deploy"],
):

    @task
    def prompts(params=None) -> list[str]:
        return [f"catalog item {number}, studio photo" for number in range(int(params["prompts"]))]

    generated = SeedreamGenerateOperator.partial(
        task_id="generate",
        size="2K",
        max_active_tis_per_dag=int(os.environ.get("SEEDREAM_IN_FLIGHT", "4")),
        retries=2,
    ).expand(prompt=prompts())

    @task
    def count(urls) -> int:
        return sum(len(batch) for batch in urls)

    count(generated.output)
