"""
Weekly marketing-asset refresh: one fresh Seedream image per product in the catalog, its prompt
written by an LLM from the product's fields and a brand brief.

    load_catalog -> per product (mapped): write_prompt -> generate -> store -> write_summary

- The catalog is ``data/products.csv`` beside this file (``params.catalog`` points elsewhere). Each
  product is one instance of the ``product`` task group, so a product whose LLM call or generation
  fails fails alone: the others are generated, stored and summarized.
- ``write_prompt`` is an ``@task.llm`` (``apache-airflow-providers-common-ai``, installed by
  ``pip install 'airflow-provider-seedream[llm]'``) on the ``novita_llm`` connection: Novita's
  OpenAI-compatible chat API with the same key as Seedream (type ``pydanticai``, host
  ``https://api.novita.ai/openai/v1``, extra ``{"model": "openai-chat:<model>"}``; ``openai-chat:``
  because pydantic-ai's ``openai:`` speaks OpenAI's Responses API, which Novita does not serve).
  Without that connection or provider, ``write_prompt`` skips itself and ``generate`` uses
  ``PROMPT_TEMPLATE``: the DAG runs either way.
- ``generate`` is a ``@task.seedream`` on ``SEEDREAM_MODEL`` (default ``seedream-4.5``; its size,
  2560x1440, is valid on every model). Novita limits image models in images per minute (about 10-20
  by default), so at most ``IN_FLIGHT`` generations run at once (``max_active_tis_per_dag``: nothing
  to create first). Size it from your limit: in flight = images per minute x seconds per generation
  / 60 (20 per minute at 15 s each: 5). A 429 that still happens is waited out by the hook, which
  honours Retry-After and sends nothing that was billed again.
- ``generate`` keeps a cache under ``params.destination`` (``cache/``): a product whose request is
  unchanged since an earlier run is not generated again, its stored image is reused. An LLM words
  every prompt anew, so the cache key of an LLM prompt is what it was written from (the product's
  row, the brief, the question and the LLM's model) instead of its words: an unchanged catalog costs
  no generation, a changed row one. (The LLM is still asked each time: a chat answer costs a
  fraction of an image.)
- Images are stored in ``params.destination`` (a local ``file://`` folder by default, or any object
  store such as ``s3://bucket/prefix``) under ``marketing/<date>/<run id>/``, copied from the cache.
  The date is the run's logical date, or for a manual run without one (how Airflow 3 creates them)
  the time it was triggered: every run has one, and two runs never share a folder.
- Each ``store`` instance updates the asset ``MARKETING_IMAGES``: its event lists the stored images,
  what they were copied from, their models and usage. ``seedream_publish_new_images`` is scheduled on
  it and publishes the new images.
- The last task writes ``summary.csv`` beside the images: per product, the prompt, who wrote it
  (``llm`` or ``template``), the file, or ``(not stored)``, and what its generation spent (the
  ``usage`` XCom: images generated and reused, the estimated cost and saving); it logs the run's total, then
  fails if any product was not stored, so that the run shows it.
"""

from __future__ import annotations

import csv
import io
import logging
import os
from pathlib import Path

import pendulum
from airflow.providers.common.compat.sdk import (
    DAG,
    AirflowNotFoundException,
    AirflowSkipException,
    Asset,
    BaseHook,
    ObjectStoragePath,
    get_current_context,
    task,
    task_group,
)

from airflow_provider_seedream.sensors.seedream import SeedreamDownloadOperator
from airflow_provider_seedream.utils.destinations import require_shared_destination

try:
    # Imports pydantic-ai (about 0.6 s) whenever this file is parsed (docs/operators.md, LLM-written prompts).
    from airflow.providers.common.ai.decorators.llm import llm_task
except ImportError:  # without airflow-provider-seedream[llm], the template writes every prompt
    llm_task = None

log = logging.getLogger("airflow.task")  # the task log, on every supported Airflow
CATALOG = Path(__file__).parent / "data" / "products.csv"
DESTINATION = os.environ.get("SEEDREAM_ASSETS", "file:///tmp/seedream-assets")
HOW_TO_SET_DESTINATION = "Set SEEDREAM_ASSETS for this DAG's default, or the param 'destination' for one run."
IN_FLIGHT = int(os.environ.get("SEEDREAM_IN_FLIGHT", "4"))
MODEL = os.environ.get("SEEDREAM_MODEL", "seedream-4.5")
LLM_CONN_ID = os.environ.get("SEEDREAM_LLM_CONN_ID", "novita_llm")
# Every run has a date: its logical date, or when it was triggered for a manual run without one (how
# Airflow 3 creates them; `{{ ds }}` is undefined there). {run_id} keeps two runs of a day apart.
RUN_FOLDER = "{{ (dag_run.logical_date or dag_run.run_after) | ds }}/{run_id}"
CACHE = "{{ params.destination.rstrip('/') }}/cache"
"""Where ``generate`` keeps the images it paid for, by request: under the destination, for all runs."""
MARKETING_IMAGES = Asset("seedream://examples/marketing-refresh/images")
"""Updated by every ``store``; ``seedream_publish_new_images`` is scheduled on it (the same URI)."""
PROMPT_TEMPLATE = (
    "{name}: product photo of a {colour} {material} {name_lower}, in {scene}. "
    "Natural light, shallow depth of field, clean composition with room for a headline on the left."
)
BRAND_BRIEF = (
    "You write prompts for an image model that makes product photographs for a home-goods brand. "
    "The brand is calm, warm and uncluttered: natural light, honest materials, one product per image, "
    "room on the left for a headline, no text or logos in the picture. Answer with the prompt only: one "
    "paragraph of at most 80 words that starts with the product's name followed by a colon."
)
PRODUCT_QUESTION = "Product: {name}. Colour: {colour}. Material: {material}. Scene: {scene}."
PRODUCT_NAME = "{{ product_name | default('') }}"
"""Shown in the grid instead of map indexes: the tasks put ``product_name`` in their context."""


def template_prompt(product: dict[str, str]) -> str:
    return PROMPT_TEMPLATE.format(**product, name_lower=product["name"].lower())


def _why_no_llm() -> str | None:
    if llm_task is None:
        return "apache-airflow-providers-common-ai is not installed (airflow-provider-seedream[llm])"
    try:
        BaseHook.get_connection(LLM_CONN_ID)
    except AirflowNotFoundException:
        return f"there is no {LLM_CONN_ID!r} connection"
    return None


def llm_cache_key(product: dict[str, str]) -> dict[str, object]:
    """What an LLM prompt is written from: the same on every run while the row, the brief, the question
    and the LLM's model stay the same, whatever words the LLM picks."""
    model = BaseHook.get_connection(LLM_CONN_ID).extra_dejson.get("model")
    return {"product": product, "brief": BRAND_BRIEF, "question": PRODUCT_QUESTION, "llm": model}


def show_in_grid(product: dict[str, str]) -> None:
    get_current_context()["product_name"] = product["name"]


def write_prompt(product: dict[str, str]) -> str:
    """What the LLM is asked for this product; with no LLM, the task skips and the template writes."""
    show_in_grid(product)
    if (reason := _why_no_llm()) is not None:
        raise AirflowSkipException(f"No LLM prompt: {reason}. The template writes this product's prompt.")
    return PRODUCT_QUESTION.format(**product)


write_prompt_task = (
    llm_task(llm_conn_id=LLM_CONN_ID, system_prompt=BRAND_BRIEF, map_index_template=PRODUCT_NAME)
    if llm_task is not None
    else task(map_index_template=PRODUCT_NAME)
)(write_prompt)

with DAG(
    "seedream_marketing_refresh",
    schedule="@weekly",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"destination": DESTINATION, "catalog": str(CATALOG)},
    tags=["seedream", "example"],
):

    @task
    def check_destination(params=None) -> None:
        """A local folder is a trap where tasks run on other hosts (Celery, Kubernetes): refuse it
        before anything is paid for (docs/deploying.md)."""
        require_shared_destination(params["destination"], how_to_set=HOW_TO_SET_DESTINATION)

    @task
    def load_catalog(params=None) -> list[dict[str, str]]:
        with open(params["catalog"], newline="") as handle:
            return list(csv.DictReader(handle))

    # none_failed: runs after a skipped write_prompt (no LLM: the template), not after a failed one.
    @task.seedream(
        model=MODEL,
        size="2560x1440",
        watermark=False,
        cache=CACHE,
        trigger_rule="none_failed",
        max_active_tis_per_dag=IN_FLIGHT,
        retries=2,
        map_index_template=PRODUCT_NAME,
    )
    def generate(product: dict[str, str], llm_prompt: str | None, ti=None) -> dict[str, object]:
        show_in_grid(product)
        if llm_prompt:
            prompt, by, cache_key = llm_prompt.strip(), "llm", llm_cache_key(product)
        else:  # the template's words are the same on every run: the prompt itself is the key
            prompt, by, cache_key = template_prompt(product), "template", None
        ti.xcom_push(key="prompt", value={"prompt": prompt, "by": by})  # for the summary
        return {"prompt": prompt, "cache_key": cache_key}

    @task_group(group_id="product", prefix_group_id=False)
    def product_asset(product: dict[str, str]):
        urls = generate(product, write_prompt_task(product))
        return SeedreamDownloadOperator(
            task_id="store",
            urls=urls,
            destination="{{ params.destination }}",
            filename=f"marketing/{RUN_FOLDER}/{{map_index}}-{{index}}.{{ext}}",
            poke_interval=10,
            timeout=30 * 60,
            outlets=[MARKETING_IMAGES],
        )

    @task(trigger_rule="all_done")  # summarize the products that made it, and say which did not
    def write_summary(products: list[dict[str, str]], ti=None) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(
            [
                "sku",
                "name",
                "prompt",
                "prompt_by",
                "file",
                "images_generated",
                "images_reused",
                "estimated_cost_usd",
                "estimated_saving_usd",
            ]
        )
        folder, missing, spent = None, [], {"generated": 0, "reused": 0, "cost": 0.0, "saved": 0.0}
        for map_index, product in enumerate(products):
            used = ti.xcom_pull(task_ids="generate", key="prompt", map_indexes=map_index)
            files = ti.xcom_pull(task_ids="store", map_indexes=map_index) or []
            usage = ti.xcom_pull(task_ids="generate", key="usage", map_indexes=map_index) or {}
            if used is None:  # generate never ran: write_prompt failed
                used = {"prompt": "", "by": "llm (failed)"}
            if not files:
                missing.append(f"{product['sku']} ({product['name']})")
            generated, reused = usage.get("images_generated", 0), usage.get("images_reused", 0)
            cost, saved = usage.get("estimated_cost_usd") or 0.0, usage.get("estimated_saving_usd") or 0.0
            spent["generated"] += generated
            spent["reused"] += reused
            spent["cost"] += cost
            spent["saved"] += saved
            spend = [generated, reused, cost, saved]
            for file in files or ["(not stored)"]:
                writer.writerow([product["sku"], product["name"], used["prompt"], used["by"], file, *spend])
                spend = [0, 0, 0.0, 0.0]  # a generation's spend on its first image's row only: rows add up
            folder = folder or (ObjectStoragePath(files[0]).parent if files else None)
        if folder is None:
            raise RuntimeError("No product was stored: see the failed tasks of this run.")
        summary = folder / "summary.csv"  # beside this run's images
        summary.write_text(buffer.getvalue())
        # Estimates: list prices from public listings, or the connection's price_per_image.
        log.info(
            "This run: generated %d, reused %d, estimated cost $%.2f (saved $%.2f)",
            spent["generated"],
            spent["reused"],
            spent["cost"],
            spent["saved"],
        )
        if missing:  # the summary is written; the run still shows that it is incomplete
            raise RuntimeError(f"Not stored: {', '.join(missing)}; see {summary} and the failed tasks.")
        return str(summary)

    products = load_catalog()
    check_destination() >> products
    product_asset.expand(product=products) >> write_summary(products)
