"""The example DAGs import cleanly and run to success with dag.test() against the sandbox."""

from __future__ import annotations

import base64
import csv
import io
import json
from pathlib import Path

import pytest
from conftest import AIRFLOW_VERSION, API_KEY, REPOSITORY, dag_bag
from PIL import Image

EXAMPLES = REPOSITORY / "example_dags"


@pytest.fixture
def assets(tmp_path, airflow_db):
    """A file:// destination: the examples need nothing else set up (no pool, no variable)."""
    return tmp_path


def run_folder(dag_run) -> str:
    """Where the examples store a run's images: its date, then its run id made safe for a name."""
    safe_run_id = "".join(c if c.isalnum() or c in "._-" else "_" for c in dag_run.run_id)
    return f"{dag_run.logical_date:%Y-%m-%d}/{safe_run_id}"


def test_examples_import_without_errors(airflow_db):
    bag = dag_bag(EXAMPLES)
    assert bag.import_errors == {}
    # The review example needs human-in-the-loop operators (Airflow 3.1+); elsewhere it defines no DAG.
    review = ["seedream_campaign_review"] if AIRFLOW_VERSION >= (3, 1) else []
    assert sorted(bag.dag_ids) == [
        *review,
        "seedream_marketing_refresh",
        "seedream_product_edit",
        "seedream_publish_new_images",
        "seedream_storyboard",
    ]


def test_publishing_is_scheduled_on_the_asset_the_marketing_store_updates(airflow_db):
    """The contract between the two DAGs: one asset URI. (The scheduler starting the publication from a
    marketing run's events is checked in a real deployment: make test-deploy.)"""
    bag = dag_bag(EXAMPLES)
    (outlet,) = bag.get_dag("seedream_marketing_refresh").get_task("store").outlets
    publish = bag.get_dag("seedream_publish_new_images")
    scheduled_on = (
        publish.timetable.asset_condition if hasattr(publish.timetable, "asset_condition") else None
    )
    scheduled_on = scheduled_on or publish.timetable.dataset_condition  # Airflow 2.11
    assert [asset.uri for asset in scheduled_on.objects] == [outlet.uri]


def test_a_manual_publication_without_asset_events_skips_and_stays_green(run_dag, connection, logs):
    """What the UI's Trigger button does: a run without asset events, which has nothing to publish."""
    dag_run = run_dag("seedream_publish_new_images")
    assert dag_run.state == "success"
    assert dag_run.get_task_instance("publish").state == "skipped"
    assert "This run was started without asset events (by hand, say): nothing to publish" in logs()
    assert connection.generation_requests() == []


class Event:
    """An asset event as a triggered run receives it: ``dag.test()`` cannot start an asset-triggered
    run (make test-deploy has the scheduler do it), so the task's function is handed these."""

    def __init__(self, extra: dict, timestamp: int) -> None:
        self.extra, self.timestamp = extra, timestamp


def test_a_publication_copies_only_from_the_marketing_cache(connection, tmp_path):
    from airflow.providers.common.compat.sdk import AirflowFailException

    from airflow_provider_seedream.hooks.seedream import SeedreamHook

    cache, elsewhere = tmp_path / "assets" / "cache", tmp_path / "other-cache"
    (trusted,) = SeedreamHook().generate("a red bicycle", cache=str(cache))
    (other,) = SeedreamHook().generate("a blue kettle", cache=str(elsewhere))
    secret = tmp_path / "secret.png"
    secret.write_bytes(Path(other).read_bytes())
    publish = dag_bag(EXAMPLES).get_dag("seedream_publish_new_images").get_task("publish").python_callable
    events = [
        Event(
            {"locations": ["a/0-0.png", "a/1-0.png", "a/2-0.png"], "sources": [trusted, other, str(secret)]},
            1,
        )
    ]
    params = {"live": str(tmp_path / "assets" / "live"), "cache": str(cache)}
    with pytest.raises(AirflowFailException, match=r"Refused to publish \['1-0.png', '2-0.png'\]"):
        publish(params=params, triggering_asset_events={"asset": events})
    live = tmp_path / "assets" / "live" / "marketing"
    assert sorted(path.name for path in live.iterdir()) == ["0-0.png", "published.json"]
    assert (live / "0-0.png").read_bytes() == Path(trusted).read_bytes()


def summary_rows(assets, dag_run) -> list[dict[str, str]]:
    folder = assets / "marketing" / run_folder(dag_run)
    return list(csv.DictReader(io.StringIO((folder / "summary.csv").read_text())))


def test_marketing_refresh_without_an_llm_uses_the_template(run_dag, connection, assets, logs):
    dag_run = run_dag("seedream_marketing_refresh", run_conf={"destination": assets.as_uri()})
    assert dag_run.state == "success"
    assert connection.chat_requests() == []
    prompts = sorted(request.body["prompt"] for request in connection.generation_requests())
    assert len(prompts) == 4 and prompts[0].startswith(
        "City bicycle: product photo of a red steel city bicycle"
    )
    folder = assets / "marketing" / run_folder(dag_run)
    rows = summary_rows(assets, dag_run)
    assert [row["sku"] for row in rows] == ["BK-100", "KT-220", "LP-310", "MG-415"]
    for map_index, row in enumerate(rows):
        assert row["file"] == (folder / f"{map_index}-0.png").as_uri()
        assert row["prompt"] in prompts and row["prompt_by"] == "template"
        assert (folder / f"{map_index}-0.png").read_bytes().startswith(b"\x89PNG")
        assert (row["images_generated"], row["images_reused"], row["estimated_cost_usd"]) == (
            "1",
            "0",
            "0.04",
        )
    assert "This run: generated 4, reused 0, estimated cost $0.16 (saved $0.00)" in logs()
    for task_id in ("write_prompt", "generate"):
        names = [dag_run.get_task_instance(task_id, map_index=i).rendered_map_index for i in range(4)]
        assert names == [
            "City bicycle",
            "Electric kettle",
            "Desk lamp",
            "Travel mug",
        ]  # the grid shows products
    assert {dag_run.get_task_instance("write_prompt", map_index=i).state for i in range(4)} == {"skipped"}


@pytest.fixture
def llm_connection(connection, monkeypatch):
    """``novita_llm`` pointing at the sandbox's OpenAI-compatible chat endpoint, as at Novita."""
    pytest.importorskip("airflow.providers.common.ai", reason="needs airflow-provider-seedream[llm]")
    extra = {"model": "openai-chat:meta-llama/llama-3.3-70b-instruct"}
    monkeypatch.setenv(
        "AIRFLOW_CONN_NOVITA_LLM",
        json.dumps(
            {
                "conn_type": "pydanticai",
                "host": f"{connection.url}/openai/v1",
                "password": API_KEY,
                "extra": extra,
            }
        ),
    )
    return connection


def test_marketing_refresh_with_an_llm(run_dag, llm_connection, assets, logs):
    sandbox = llm_connection
    sandbox.fail_chat_about("Desk lamp")
    dag_run = run_dag("seedream_marketing_refresh", run_conf={"destination": assets.as_uri()})
    assert dag_run.state == "failed"  # one product's LLM call failed
    states = {
        task_id: [dag_run.get_task_instance(task_id, map_index=i).state for i in range(4)]
        for task_id in ("write_prompt", "generate", "store")
    }
    assert states == {
        "write_prompt": ["success", "success", "failed", "success"],
        "generate": ["success", "success", "upstream_failed", "success"],
        "store": ["success", "success", "upstream_failed", "success"],
    }
    assert dag_run.get_task_instance("write_summary").state == "failed"  # after writing the summary
    chats = {request.body["messages"][-1]["content"]: request for request in sandbox.chat_requests()}
    assert len(chats) == 4
    for request in chats.values():  # the brand brief is the system prompt
        assert request.body["messages"][0]["role"] == "system"
        assert request.body["messages"][0]["content"].startswith("You write prompts for an image model")
    headers = [{name.lower(): value for name, value in request.headers.items()} for request in chats.values()]
    assert all(header["authorization"] == f"Bearer {API_KEY}" for header in headers)
    rows = {row["sku"]: row for row in summary_rows(assets, dag_run)}
    generated = sorted(request.body["prompt"] for request in sandbox.generation_requests())
    assert generated == sorted(row["prompt"] for sku, row in rows.items() if sku != "LP-310")
    bicycle = rows["BK-100"]
    assert bicycle["prompt_by"] == "llm"
    # The sandbox's LLM answers with the question it was asked, tidied: the prompt came from the LLM.
    assert bicycle["prompt"].startswith("Product: City bicycle. Colour: red. Material: steel.")
    assert bicycle["file"].endswith("/0-0.png")
    assert rows["LP-310"] == {
        "sku": "LP-310",
        "name": "Desk lamp",
        "prompt": "",
        "prompt_by": "llm (failed)",
        "file": "(not stored)",
        "images_generated": "0",
        "images_reused": "0",
        "estimated_cost_usd": "0.0",
        "estimated_saving_usd": "0.0",
    }
    assert API_KEY not in logs()


def test_marketing_refresh_pays_only_for_changed_rows(run_dag, llm_connection, assets, tmp_path, logs):
    """The example keeps its cache under the destination, keyed for LLM prompts by what they were
    written from: an unchanged catalog costs nothing on the next run, one changed row one generation."""
    sandbox = llm_connection
    catalog = tmp_path / "products.csv"
    catalog.write_text((EXAMPLES / "data" / "products.csv").read_text())
    conf = {"destination": (assets / "assets").as_uri(), "catalog": str(catalog)}
    first = run_dag("seedream_marketing_refresh", run_conf=conf)
    assert first.state == "success" and len(sandbox.generation_requests()) == 4

    second = run_dag("seedream_marketing_refresh", run_conf=conf)
    assert second.state == "success" and len(sandbox.generation_requests()) == 4  # nothing sent
    assert len(sandbox.chat_requests()) == 8  # the LLM is still asked: a chat costs little
    assert "This run: generated 0, reused 4, estimated cost $0.00 (saved $0.16)" in logs()
    before, after = summary_rows(assets / "assets", first), summary_rows(assets / "assets", second)
    assert [(row["images_generated"], row["images_reused"]) for row in after] == [("0", "1")] * 4
    for old, new in zip(before, after, strict=True):  # the same images, copied into the new run's folder
        assert old["file"] != new["file"]
        assert (
            Path(new["file"].removeprefix("file://")).read_bytes()
            == Path(old["file"].removeprefix("file://")).read_bytes()
        )

    rows = list(csv.DictReader(io.StringIO(catalog.read_text())))
    rows[2]["colour"] = "forest green"  # the desk lamp
    with catalog.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    third = run_dag("seedream_marketing_refresh", run_conf=conf)
    assert third.state == "success" and len(sandbox.generation_requests()) == 5  # one changed row
    assert "Colour: forest green" in sandbox.generation_requests()[-1].body["prompt"]
    spent = [
        (row["sku"], row["images_generated"], row["images_reused"])
        for row in summary_rows(assets / "assets", third)
    ]
    assert spent == [("BK-100", "0", "1"), ("KT-220", "0", "1"), ("LP-310", "1", "0"), ("MG-415", "0", "1")]
    records = [json.loads(path.read_text()) for path in (assets / "assets" / "cache").glob("*/*/entry.json")]
    assert len(records) == 5
    for record in records:  # each LLM prompt's key: its row, the brief, the question and the LLM's model
        key = record["cache_key"]
        assert set(key) == {"product", "brief", "question", "llm"}
        assert key["llm"] == "openai-chat:meta-llama/llama-3.3-70b-instruct"
        assert record["prompt"].startswith(f"Product: {key['product']['name']}.")


def test_product_edit_inlines_the_shipped_references(run_dag, connection, assets):
    dag_run = run_dag("seedream_product_edit", run_conf={"destination": assets.as_uri()})
    assert dag_run.state == "success"
    (request,) = connection.generation_requests()
    assert request.path == "/v3/seedream-4.5"
    assert request.body["image"] == [
        "data:image/png;base64,"
        + base64.b64encode((EXAMPLES / "data/references" / name).read_bytes()).decode()
        for name in ("mug.png", "pattern.png")
    ]
    (stored,) = (assets / "product-edit").rglob("mug-0.png")
    assert stored.read_bytes().startswith(b"\x89PNG")


def test_storyboard_on_every_model(run_dag, connection, assets):
    dag_run = run_dag("seedream_storyboard", run_conf={"destination": assets.as_uri()})
    assert dag_run.state == "success"
    bodies = {request.path: request.body for request in connection.generation_requests()}
    story = bodies["/v3/seedream-4.0"]["prompt"]
    assert story.startswith("A four-panel storyboard for a bicycle commercial")
    assert bodies == {
        "/v3/seedream-4.0": {
            "prompt": story,
            "size": "2K",
            "sequential_image_generation": "auto",
            "max_images": 4,
        },
        "/v3/seedream-4.5": {
            "prompt": story,
            "size": "2560x1440",
            "sequential_image_generation": "auto",
            "sequential_image_generation_options": {"max_images": 4},
        },
        "/v3/seedream-5.0-lite": {
            "prompt": story,
            "size": "3K",
            "sequential_image_generation": "auto",
            "sequential_image_generation_options": {"max_images": 4},
        },
    }
    folder = assets / "storyboard" / run_folder(dag_run)
    names = sorted(path.name for path in folder.iterdir())
    assert names == [
        *(f"v40-{i}.png" for i in range(4)),
        "v40-manifest.json",
        *(f"v45-{i}.png" for i in range(4)),
        "v45-manifest.json",
        *(f"v50-lite-{i}.png" for i in range(4)),
        "v50-lite-manifest.json",
    ]
    assert Image.open(folder / "v50-lite-0.png").size == (96, 96)  # 3K: 3072x3072 at the sandbox's 1/32


EXAMPLE_DAG_IDS = [
    "seedream_marketing_refresh",
    "seedream_product_edit",
    "seedream_storyboard",
    *(["seedream_campaign_review"] if AIRFLOW_VERSION >= (3, 1) else []),
]


@pytest.mark.parametrize("dag_id", EXAMPLE_DAG_IDS)
def test_where_tasks_run_on_other_hosts_a_local_destination_is_refused_before_paying(
    run_dag, connection, assets, monkeypatch, failure_logged, dag_id
):
    """On CeleryExecutor (or any executor that is not single-host), the first task refuses a local
    folder, naming it, the executor and what to set; nothing is sent. (The marketing summary runs
    after failures by design, and says that nothing was stored.)"""
    from airflow.providers.common.compat.sdk import AirflowFailException

    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "CeleryExecutor")
    dag_run = run_dag(dag_id, run_conf={"destination": assets.as_uri()})
    assert dag_run.state == "failed"
    states = {ti.task_id: ti.state for ti in dag_run.get_task_instances()}
    assert states.pop("check_destination") == "failed"
    if dag_id == "seedream_marketing_refresh":
        assert states.pop("write_summary") == "failed"
    assert set(states.values()) <= {"upstream_failed", None}, states
    assert connection.generation_requests() == [] and connection.chat_requests() == []
    assert failure_logged(
        f"destination='{assets.as_uri()}' is a folder on whichever machine runs each task, and this "
        "Airflow runs tasks on CeleryExecutor",
        AirflowFailException,
    )
    assert failure_logged("Set SEEDREAM_ASSETS for this DAG's default", AirflowFailException)
