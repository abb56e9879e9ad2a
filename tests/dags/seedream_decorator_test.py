"""@task.seedream: a plain task, a dict return, a mapped one with .partial(), and a wrong return type."""

from __future__ import annotations

import pendulum
from airflow.providers.common.compat.sdk import DAG, task

START = pendulum.datetime(2026, 1, 1, tz="UTC")

with DAG("seedream_decorator_test", schedule=None, start_date=START, params={"product": "kettle"}):

    @task.seedream(size="2K", watermark=False)
    def poster(params=None) -> str:
        return f"a poster of a {params['product']}"

    @task.seedream(model="seedream-4.0", size="1K")
    def storyboard(scenes: int) -> dict:  # a dict annotation does not turn on multiple_outputs
        return {"prompt": "a storyboard", "sequential_image_generation": "auto", "max_images": scenes}

    @task.seedream(size="2K", map_index_template="{{ task.prompt }}")
    def variant(colour: str, product: str) -> str:
        return f"a {colour} {product}"

    @task.seedream(model="seedream-5.0-lite", size="3K")
    def lite(product: str) -> dict:
        return {
            "prompt": f"a {product} catalog page",
            "images": ["https://cdn.example.com/lamp.png"],
            "sequential_image_generation": "auto",
            "max_images": 2,
        }

    @task
    def count(posters: list[str], boards: list[str], variants, lites: list[str]) -> int:
        return len(posters) + len(boards) + sum(len(urls) for urls in variants) + len(lites)

    count(
        poster(),
        storyboard(3),
        variant.partial(product="lamp").expand(colour=["red", "blue"]),
        lite("lamp"),
    )

with DAG("seedream_decorator_failure_test", schedule=None, start_date=START, params={"returned": "42"}):

    @task.seedream(retries=2, retry_delay=0)
    def wrong(params=None):
        return {"42": 42, "prompt-less": {"size": "2K"}, "unknown": {"prompt": "p", "colour": "red"}}[
            params["returned"]
        ]

    wrong()
