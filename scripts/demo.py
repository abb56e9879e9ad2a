"""`make demo`: the marketing example DAG, run for real by Airflow, with images left on disk.

The whole chain: an LLM writes each product's prompt (Novita's OpenAI-compatible chat API through
Airflow's common.ai provider), Seedream generates the image, and the image is stored. Without
SEEDREAM_API_KEY it starts a local sandbox that serves both APIs and points the connections at it, so
no key or network is needed; with SEEDREAM_API_KEY set it calls the real Novita API for both (and is
billed), with the chat model SEEDREAM_LLM_MODEL (default below). SEEDREAM_MODEL picks the Seedream
model (default seedream-4.5, the provider's). Everything it writes goes under SEEDREAM_DEMO_DIR
(default: .demo/ in the repository), the example's cache included: run it again and nothing is
generated, the images are reused.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DAG_ID = "seedream_marketing_refresh"
NOVITA_LLM_BASE_URL = "https://api.novita.ai/openai/v1"
# pydantic-ai's "openai-chat:" speaks the chat-completions API Novita serves ("openai:" is Responses).
LLM_MODEL = "openai-chat:" + os.environ.get("SEEDREAM_LLM_MODEL", "meta-llama/llama-3.3-70b-instruct")
SANDBOX_PORT = int(os.environ.get("SEEDREAM_DEMO_PORT", "18089"))
RUN_CEILING_USD = float(os.environ.get("SEEDREAM_MAX_SPEND_PER_RUN_USD", "1.00"))
"""The same sandbox URL on every run, so that the next demo finds this one's images in the cache."""


def airflow(*args: str, env: dict[str, str]) -> None:
    print(f"$ airflow {' '.join(args)}", flush=True)
    subprocess.run([sys.executable, "-m", "airflow", *args], env=env, check=True)


def main() -> int:
    work = Path(os.environ.get("SEEDREAM_DEMO_DIR", ROOT / ".demo")).resolve()
    assets = work / "assets"
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(work / "airflow-home"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "example_dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{work / 'airflow.db'}",
        "SEEDREAM_ASSETS": assets.as_uri(),
    }
    sandbox = None
    if key := os.environ.get("SEEDREAM_API_KEY"):
        print("SEEDREAM_API_KEY is set: using the real Novita API (generations are billed).")
        connection = {"conn_type": "seedream", "password": key}
        llm_base_url = NOVITA_LLM_BASE_URL
    else:
        from airflow_provider_seedream.testing import SANDBOX_API_KEY, SeedreamSandbox

        try:
            sandbox = SeedreamSandbox(SANDBOX_API_KEY, port=SANDBOX_PORT).start()
        except OSError:  # taken: any port, and this run's cache misses (the API's URL is in its key)
            sandbox = SeedreamSandbox(SANDBOX_API_KEY).start()
        print(f"No SEEDREAM_API_KEY: using the local Seedream sandbox at {sandbox.url}.")
        key = SANDBOX_API_KEY
        connection = {"conn_type": "seedream", "host": sandbox.url, "password": key}
        llm_base_url = f"{sandbox.url}/openai/v1"
    # A run may spend at most this (estimated, at list prices), however many products the catalog has.
    connection["extra"] = {"max_spend_per_run_usd": RUN_CEILING_USD}
    env["AIRFLOW_CONN_SEEDREAM_DEFAULT"] = json.dumps(connection)
    llm = {"conn_type": "pydanticai", "host": llm_base_url, "password": key, "extra": {"model": LLM_MODEL}}
    env["AIRFLOW_CONN_NOVITA_LLM"] = json.dumps(llm)
    from airflow_provider_seedream.contract.specs import DEFAULT_MODEL

    print(f"Seedream model: {os.environ.get('SEEDREAM_MODEL', DEFAULT_MODEL)} (SEEDREAM_MODEL)")
    print(
        f"Spend ceiling: ${RUN_CEILING_USD:.2f} per DAG run (max_spend_per_run_usd on seedream_default; "
        "SEEDREAM_MAX_SPEND_PER_RUN_USD changes it)"
    )
    try:
        (work / "airflow-home").mkdir(parents=True, exist_ok=True)
        airflow("db", "migrate", env=env)
        # What a DAG processor does first: the DAGs and their assets registered. `dags test` does not
        # before Airflow 3.1, and 3.0's then refuses the marketing store's outlet.
        airflow("dags", "reserialize", env=env)
        logical_date = datetime.now(timezone.utc).replace(microsecond=0)
        airflow("dags", "test", DAG_ID, logical_date.isoformat(), env=env)
    finally:
        if sandbox:
            sandbox.stop()
    if sandbox:
        generations = sandbox.generation_requests()
        paths = ", ".join(sorted({request.path for request in generations}))
        print(
            f"The sandbox answered {len(generations)} generation(s) at {paths}."
            if generations
            else "The sandbox answered no generation: every image came from the cache."
        )
    summaries = sorted((assets / "marketing" / f"{logical_date:%Y-%m-%d}").glob("*/summary.csv"))
    if not summaries:
        print(f"The DAG run left no summary under {assets}: see the Airflow output above.", file=sys.stderr)
        return 1
    summary = max(summaries, key=lambda path: path.stat().st_mtime)
    print(f"\nImages from {DAG_ID}:")
    with summary.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        print(f"  {row['sku']} {row['name']}")
        print(f"    prompt ({row['prompt_by']}): {row['prompt']}")
        print(f"    file: {row['file'].removeprefix('file://')}")
    generated = sum(int(row["images_generated"]) for row in rows)
    reused = sum(int(row["images_reused"]) for row in rows)
    cost = sum(float(row["estimated_cost_usd"]) for row in rows)
    saved = sum(float(row["estimated_saving_usd"]) for row in rows)
    print(
        f"This run: generated {generated}, reused {reused}, estimated cost ${cost:.2f} of its "
        f"${RUN_CEILING_USD:.2f} ceiling (saved ${saved:.2f}); list prices, an estimate"
    )
    print(f"Summary: {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
