"""
Weekly marketing-asset refresh: one fresh Seedream image per product in the catalog.

    load_catalog -> build_prompts -> generate (mapped, one per product) -> store (mapped) -> write_summary

- The catalog is ``data/products.csv`` beside this file (``params.catalog`` points elsewhere); each
  row becomes one prompt through ``PROMPT_TEMPLATE``, which leads with the product's name so that the
  grid shows products rather than map indexes.
- Generation is mapped over the prompts. Novita limits image models in images per minute (about
  10-20 by default), so at most ``IN_FLIGHT`` generations of this task run at once
  (``max_active_tis_per_dag``: nothing to create first). Size it from your limit: in flight =
  images per minute x seconds per generation / 60 (20 per minute at 15 s each: 5). A 429 that still
  happens is waited out by the hook, which honours Retry-After and sends nothing that was billed again.
- Images are stored in ``params.destination`` (a local ``file://`` folder by default, or any object
  store such as ``s3://bucket/prefix``) under ``marketing/<date>/<run id>/``. The date is the run's
  logical date, or for a manual run without one (how Airflow 3 creates them) the time it was
  triggered: every run has one, and two runs never share a folder.
- The last task writes ``summary.csv`` beside the images: which product, which prompt, which file.
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
IN_FLIGHT = int(os.environ.get("SEEDREAM_IN_FLIGHT", "4"))
# Every run has a date: its logical date, or when it was triggered for a manual run without one (how
# Airflow 3 creates them; `{{ ds }}` is undefined there). {run_id} keeps two runs of a day apart.
RUN_FOLDER = "{{ (dag_run.logical_date or dag_run.run_after) | ds }}/{run_id}"
PROMPT_TEMPLATE = (
    "{name}: product photo of a {colour} {material} {name_lower}, in {scene}. "
    "Natural light, shallow depth of field, clean composition with room for a headline on the left."
)

with DAG(
    "seedream_marketing_refresh",
    schedule="@weekly",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"destination": DESTINATION, "catalog": str(CATALOG)},
    tags=["seedream", "example"],
):

    @task
    def load_catalog(params=None) -> list[dict[str, str]]:
        with open(params["catalog"], newline="") as handle:
            return list(csv.DictReader(handle))

    @task
    def build_prompts(products: list[dict[str, str]]) -> list[str]:
        return [PROMPT_TEMPLATE.format(**product, name_lower=product["name"].lower()) for product in products]

    products = load_catalog()
    prompts = build_prompts(products)

    generate = SeedreamGenerateOperator.partial(
        task_id="generate",
        size="2560x1440",
        watermark=False,
        max_active_tis_per_dag=IN_FLIGHT,
        retries=2,
        map_index_template="{{ task.prompt.split(':')[0] }}",
    ).expand(prompt=prompts)

    store = SeedreamDownloadOperator.partial(
        task_id="store",
        destination="{{ params.destination }}",
        filename=f"marketing/{RUN_FOLDER}/{{map_index}}-{{index}}.{{ext}}",
        poke_interval=10,
        timeout=30 * 60,
    ).expand(urls=generate.output)

    @task
    def write_summary(products: list[dict[str, str]], prompts: list[str], stored) -> str:
        stored = list(stored)
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["sku", "name", "prompt", "file"])
        for product, prompt, files in zip(products, prompts, stored, strict=True):
            for file in files:
                writer.writerow([product["sku"], product["name"], prompt, file])
        summary = ObjectStoragePath(stored[0][0]).parent / "summary.csv"  # beside this run's images
        summary.write_text(buffer.getvalue())
        return str(summary)

    write_summary(products, prompts, store.output)
