"""
Weekly marketing-asset refresh: one fresh Seedream image per product in the catalog.

    load_catalog -> build_prompts -> generate (mapped, one per product) -> store (mapped) -> write_summary

- The catalog is ``data/products.csv`` beside this file; each row becomes one prompt through
  ``PROMPT_TEMPLATE``.
- Generation is mapped over the prompts. Novita limits image models in images per minute (about
  10-20 by default), so every generation runs in the ``seedream_api`` pool: its slots cap how many
  are in flight at once, whatever the size of the catalog. Create it once:
  ``airflow pools set seedream_api 2 "Seedream generations in flight"``. A 429 that still happens is
  retried by the hook, honouring Retry-After.
- Images are stored under a dated prefix, ``marketing/<ds>/``, in ``params.destination``: a local
  ``file://`` folder by default, or any object store (``s3://bucket/prefix``).
- The last task writes ``summary.csv`` there: which product, which prompt, which file.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import pendulum
from airflow.providers.common.compat.sdk import DAG, ObjectStoragePath, task

from airflow_provider_seedream.operators.seedream import SeedreamDownloadOperator, SeedreamGenerateOperator

CATALOG = Path(__file__).parent / "data" / "products.csv"
DESTINATION = os.environ.get("SEEDREAM_ASSETS", "file:///tmp/seedream-assets")
PROMPT_TEMPLATE = (
    "Product photo of a {colour} {material} {name}, in {scene}. "
    "Natural light, shallow depth of field, clean composition with room for a headline on the left."
)

with DAG(
    "seedream_marketing_refresh",
    schedule="@weekly",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"destination": DESTINATION},
    tags=["seedream", "example"],
):

    @task
    def load_catalog() -> list[dict[str, str]]:
        with CATALOG.open(newline="") as handle:
            return list(csv.DictReader(handle))

    @task
    def build_prompts(products: list[dict[str, str]]) -> list[str]:
        return [PROMPT_TEMPLATE.format(**product) for product in products]

    products = load_catalog()
    prompts = build_prompts(products)

    generate = SeedreamGenerateOperator.partial(
        task_id="generate",
        size="2560x1440",
        watermark=False,
        pool="seedream_api",
        retries=2,
    ).expand(prompt=prompts)

    store = SeedreamDownloadOperator.partial(
        task_id="store",
        destination="{{ params.destination }}",
        filename="marketing/{{ ds }}/{map_index}-{index}.{ext}",
        poke_interval=10,
        timeout=30 * 60,
    ).expand(urls=generate.output)

    @task
    def write_summary(
        products: list[dict[str, str]], prompts: list[str], stored, params=None, ds=None
    ) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["sku", "name", "prompt", "file"])
        for product, prompt, files in zip(products, prompts, stored, strict=True):
            for file in files:
                writer.writerow([product["sku"], product["name"], prompt, file])
        summary = ObjectStoragePath(params["destination"]) / "marketing" / ds / "summary.csv"
        summary.write_text(buffer.getvalue())
        return str(summary)

    write_summary(products, prompts, store.output)
