"""Generations through a cache: the operator, a mapped generation and ``@task.seedream`` with a
``cache_key``, each stored by a download; a generation whose storing into the cache fails once; and a
download announcing what it stored to an asset."""

from __future__ import annotations

import pendulum
from airflow.providers.common.compat.sdk import DAG, Asset, task

from airflow_provider_seedream.decorators.seedream import seedream_task
from airflow_provider_seedream.operators.seedream import SeedreamGenerateOperator
from airflow_provider_seedream.sensors.seedream import SeedreamDownloadOperator

STORE = {"poke_interval": 0.5, "timeout": 20, "destination": "{{ params.destination }}"}

with DAG(
    "seedream_cache_test",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    params={"cache": "", "destination": "", "prompt": "a red bicycle"},
    default_args={"cache": "{{ params.cache }}"},  # DAG-wide, as a user would set it
):
    gen = SeedreamGenerateOperator(
        task_id="gen", prompt="{{ params.prompt }}", sequential_image_generation="auto", max_images=2
    )
    # No {run_id} in the name: a second run finds the first one's files in the destination.
    SeedreamDownloadOperator(task_id="store", urls=gen.output, filename="{task_id}/{index}.{ext}", **STORE)

    mapped = SeedreamGenerateOperator.partial(task_id="gen_mapped", size="2K").expand(
        prompt=["a blue kettle", "a green lamp", "a yellow chair"]
    )
    SeedreamDownloadOperator.partial(
        task_id="store_mapped", filename="{task_id}/{map_index}-{index}.{ext}", **STORE
    ).expand(urls=mapped.output)

    @seedream_task(task_id="written")
    def written(dag_run=None):
        # A new wording on every run, as an LLM writes it; the key is what it was written from.
        return {"prompt": f"Poster of a kettle, take {dag_run.run_id}", "cache_key": {"product": "kettle"}}

    @task
    def through_the_hook(params=None) -> list[str]:
        from airflow_provider_seedream.hooks.seedream import SeedreamHook

        return SeedreamHook().generate("a hook's kettle", cache=params["cache"])

    # In this order, "written"'s usage shows the run's ledger account with the hook's spend in it.
    through_the_hook() >> written()

with DAG(
    "seedream_cache_store_fails_test",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    params={"cache": ""},
    default_args={"retries": 2, "retry_delay": pendulum.duration(seconds=2)},
):
    SeedreamGenerateOperator(task_id="gen", prompt="a red bicycle", cache="{{ params.cache }}")

with DAG(
    "seedream_cache_outlets_test",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    params={"cache": "", "destination": ""},
):
    cached = SeedreamGenerateOperator(
        task_id="gen",
        prompt="a red bicycle",
        max_images=2,
        sequential_image_generation="auto",
        cache="{{ params.cache }}",
    )
    SeedreamDownloadOperator(
        task_id="store",
        urls=cached.output,
        filename="{task_id}/{index}.{ext}",
        outlets=[Asset("seedream://tests/cache-outlets/store")],  # an event per run saying what was stored
        **STORE,
    )
