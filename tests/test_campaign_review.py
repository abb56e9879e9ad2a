"""The human-in-the-loop example, seedream_campaign_review: it imports cleanly everywhere, defines its
DAG only where Airflow has human-in-the-loop operators (3.1+), and on 3.3 runs end to end with
dag.test() while a reviewer answers through the real REST endpoint (in process, on the same metadata
DB). The deployment tier (tests/deploy/run.py) answers it over HTTP against a real api-server."""

from __future__ import annotations

import secrets
import sys
import threading
import time
from urllib.parse import quote

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException, AirflowOptionalProviderFeatureException
from conftest import AIRFLOW_VERSION, REPOSITORY, dag_bag

try:
    from airflow.providers.standard.operators.hitl import ApprovalOperator
except (ImportError, AirflowOptionalProviderFeatureException):
    ApprovalOperator = None

DAG_FILE = REPOSITORY / "example_dags" / "seedream_campaign_review.py"
DAG_ID = "seedream_campaign_review"
HITL_MODULE = "airflow.providers.standard.operators.hitl"
needs_hitl = pytest.mark.skipif(ApprovalOperator is None, reason="no human-in-the-loop operators here")
# dag.test() keeps a run whose task awaits input alive until someone answers: Airflow 3.3+ parks it in
# awaiting_input. (3.1 and 3.2 defer it to a trigger, which dag.test() does not run.)
runs_with_dag_test = pytest.mark.skipif(
    ApprovalOperator is None or AIRFLOW_VERSION < (3, 3), reason="needs Airflow 3.3's awaiting_input"
)


def review_dag():
    bag = dag_bag(DAG_FILE)
    assert bag.import_errors == {}
    return bag.dags[DAG_ID]


@needs_hitl
def test_imports_with_the_expected_tasks():
    dag = review_dag()
    assert sorted(dag.task_dict) == [
        "build_prompts",
        "check_destination",
        "describe",
        "generate",
        "publish",
        "review",
        "store",
    ]
    assert dag.get_task("check_destination").downstream_task_ids == {"build_prompts"}
    review = dag.get_task("review")
    assert isinstance(review, ApprovalOperator)
    assert review.options == ["Approve", "Reject"]
    assert review.defaults == ["Reject"]  # an unanswered review publishes nothing
    from airflow.sdk.definitions.param import ParamsDict

    if hasattr(ParamsDict, "filter_params_by_source"):
        assert list(review.params) == ["publish_only"]  # the run's own params stay out of the form
    else:  # Airflow 3.1: the HITL operator cannot tell a DAG's params from its own (docs/ui.md says so)
        assert sorted(review.params) == ["briefs", "candidates", "destination", "publish_only"]
    assert review.downstream_task_ids == {"publish"}  # so a rejection skips it
    assert review.upstream_task_ids == {"describe"}


@pytest.mark.skipif(ApprovalOperator is not None, reason="human-in-the-loop operators are available")
def test_without_hitl_the_file_defines_no_dag_and_no_error():
    bag = dag_bag(DAG_FILE)
    assert bag.import_errors == {}
    assert bag.dag_ids == []


@needs_hitl
def test_a_missing_hitl_module_leaves_no_dag_and_no_error(monkeypatch):
    monkeypatch.setitem(sys.modules, HITL_MODULE, None)  # as on Airflow without the standard provider
    bag = dag_bag(DAG_FILE)
    assert bag.import_errors == {}
    assert bag.dag_ids == []


@needs_hitl
def test_the_reviewers_numbers():
    chosen = review_dag().get_task("publish").python_callable.__globals__["chosen_numbers"]
    known = [1, 2, 3, 4]
    assert chosen([], known) == known
    assert chosen(None, known) == known
    assert chosen(["2", " #4 "], known) == [2, 4]
    assert chosen(["4, 2", "2"], known) == [2, 4]
    with pytest.raises(AirflowFailException, match=r"publish_only names \['5', 'two'\]"):
        chosen(["5", "two", "1"], known)


@pytest.fixture
def reviewer(monkeypatch, airflow_db):
    """Answers the review through the real PATCH .../hitlDetails endpoint, in a thread, as soon as the
    task waits; dag.test() runs the DAG meanwhile. Records the request it answered."""
    from airflow.api_fastapi.app import create_app, purge_cached_app
    from fastapi.testclient import TestClient

    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "True")
    monkeypatch.setenv("AIRFLOW__API_AUTH__JWT_SECRET", secrets.token_hex(32))
    client = TestClient(create_app("core"))
    seen: dict = {}
    stop = threading.Event()

    def answer(body: dict) -> None:
        def loop() -> None:
            while not stop.is_set():
                waiting = client.get(
                    f"/api/v2/dags/{DAG_ID}/dagRuns/~/hitlDetails", params={"response_received": False}
                ).json()
                for detail in waiting.get("hitl_details", []):
                    ti = detail["task_instance"]
                    path = f"/api/v2/dags/{DAG_ID}/dagRuns/{ti['dag_run_id']}/taskInstances/review/-1"
                    seen["detail"] = detail
                    seen["response"] = client.patch(f"{path}/hitlDetails", json=body)
                    if seen["response"].status_code != 200:  # end the run, or dag.test() waits forever
                        client.patch(path, json={"new_state": "failed"})
                    return
                time.sleep(0.5)

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        seen["thread"] = thread

    yield answer, seen
    stop.set()
    if "thread" in seen:
        seen["thread"].join(10)
    purge_cached_app()


def run_folder(dag_run) -> str:
    safe_run_id = "".join(c if c.isalnum() or c in "._-" else "_" for c in dag_run.run_id)
    return f"{(dag_run.logical_date or dag_run.run_after):%Y-%m-%d}/{safe_run_id}"


@runs_with_dag_test
@pytest.mark.parametrize(
    ("answer", "published"),
    [
        pytest.param(
            {"chosen_options": ["Approve"], "params_input": {"publish_only": ["2", "4"]}},
            ["0-1.png", "1-0.png"],
            id="approve-two",
        ),
        pytest.param({"chosen_options": ["Reject"]}, [], id="reject"),
    ],
)
def test_a_review_publishes_what_was_approved(run_dag, connection, tmp_path, reviewer, answer, published):
    answer_with, seen = reviewer
    answer_with(answer)
    dag_run = run_dag(DAG_ID, run_conf={"destination": tmp_path.as_uri()})
    assert seen["response"].status_code == 200, seen["response"].text
    assert dag_run.state == "success"

    body = seen["detail"]["body"]
    for number in range(1, 7):
        assert f"**#{number}**" in body
    assert "### Brief 2" in body and "travel mug" in body
    assert f"`{(tmp_path / 'campaign' / run_folder(dag_run) / '1-2.png').as_uri()}`" in body
    # Each candidate is a picture: the gallery's thumbnail of the store task's image, linking to the image.
    run = quote(dag_run.run_id, safe="")
    thumbnail = f"/seedream/thumbnails/{DAG_ID}/{run}/store/1/2"
    assert f"- [![#6]({thumbnail})](/seedream/images/{DAG_ID}/{run}/store/1/2) **#6**" in body
    width, height = 2560 // 32, 1440 // 32  # the sandbox's image_scale; read from the manifest
    assert f"{width} x {height} px" in body

    stored = tmp_path / "campaign" / run_folder(dag_run)
    assert len(list(stored.glob("*.png"))) == 6
    folder = tmp_path / "published" / "campaign" / run_folder(dag_run)
    names = sorted(path.name for path in folder.iterdir()) if folder.exists() else []
    assert names == published
    for name in published:
        assert (folder / name).read_bytes() == (stored / name).read_bytes()
    publish = dag_run.get_task_instance("publish")
    assert publish.state == ("success" if published else "skipped")
    # The candidates live in the cache under the destination, where links would expire within hours.
    assert len(connection.generation_requests()) == 2
    for brief in range(2):
        ti = dag_run.get_task_instance("generate", map_index=brief)
        locations = ti.xcom_pull(task_ids="generate", map_indexes=brief)
        assert len(locations) == 3 and all(
            location.startswith(f"{tmp_path.as_uri()}/cache/") for location in locations
        )
