"""OpenLineage: what the operators report, through the OpenLineage provider's own listener, extractor
and client. The DAG runs in a fresh interpreter with the provider configured as a user configures it
(``[openlineage] transport``, here its file transport), so that its plugin loads as in a deployment;
the events are read from the file the client wrote."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import API_KEY, DAGS_FOLDER, S3_CONN_ID

from airflow_provider_seedream.testing.images import render_png

RUN_DAG = """
import json, sys
try:
    from airflow.dag_processing.dagbag import DagBag
except ImportError:  # before Airflow 3.1
    from airflow.models.dagbag import DagBag
dag = DagBag(dag_folder=sys.argv[1]).get_dag("seedream_lineage_test")
for _ in range(2):
    print("STATE", dag.test(run_conf=json.loads(sys.argv[2])).state)
"""


@pytest.fixture
def lineage(airflow_db, connection, bucket, tmp_path):
    """Two runs of ``seedream_lineage_test`` with OpenLineage on (one interpreter, 20 s): the task
    COMPLETE events of each run, by task id, and the events file's text."""
    reference = tmp_path / "reference.png"
    reference.write_bytes(render_png(96, 64, "a bicycle"))
    conf = {
        "reference": str(reference),
        "cache": str(tmp_path / "cache"),
        "destination": f"s3://{S3_CONN_ID}@{bucket.name}/lineage",
    }
    events_file = tmp_path / "events.jsonl"
    env = {
        **os.environ,
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
            {"type": "file", "log_file_path": str(events_file), "append": True}
        ),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "seedream-tests",
    }
    result = subprocess.run(
        [sys.executable, "-c", RUN_DAG, str(DAGS_FOLDER), json.dumps(conf)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.stdout.count("STATE success") == 2, result.stdout[-3000:] + result.stderr[-3000:]
    text = events_file.read_text()
    events = [json.loads(line) for line in text.splitlines() if line.strip()]
    runs: dict[str, dict[str, dict]] = {}  # by the DAG run's OpenLineage run id, in order
    for event in events:
        job = event["job"]["name"]
        if event["eventType"] == "COMPLETE" and job.startswith("seedream_lineage_test."):
            dag_run = event["run"]["facets"]["parent"]["run"]["runId"]
            runs.setdefault(dag_run, {})[job.split(".", 1)[1]] = event
    return conf, reference, bucket, list(runs.values()), text


def datasets(event: dict, kind: str) -> list[tuple[str, str]]:
    return [(dataset["namespace"], dataset["name"]) for dataset in event[kind]]


def seedream_facet(event: dict) -> dict:
    facet = dict(event["run"]["facets"]["seedream"])
    assert facet.pop("_producer").startswith("https://github.com/apache/airflow")
    assert facet.pop("_schemaURL")
    return facet


def test_each_task_reports_what_it_read_wrote_and_spent_and_no_link(lineage, connection):
    conf, reference, bucket, (first, second), text = lineage
    assert set(first) == set(second) == {"cached", "copy", "links", "fetch"}
    assert len(connection.generation_requests()) == 3  # cached, then links twice: the cache answered

    # The generation read the reference file and wrote its two images into the cache.
    assert datasets(first["cached"], "inputs") == [("file://", str(reference))]
    cache_images = datasets(first["cached"], "outputs")
    assert len(cache_images) == 2
    assert all(
        namespace == "file://" and name.startswith(conf["cache"] + "/") and name.endswith(".png")
        for namespace, name in cache_images
    )
    assert os.path.isfile(cache_images[0][1])
    usage = seedream_facet(first["cached"])
    assert usage["models"] == ["seedream-4.5"] and usage["images"] == 2
    assert usage["usage"]["images_generated"] == 2 and usage["usage"]["images_reused"] == 0
    assert usage["usage"]["estimated_cost_usd"] == pytest.approx(0.08)

    # The copy read those cached images and wrote objects in the bucket: the namespace is the bucket,
    # without the connection id the destination names.
    assert datasets(first["copy"], "inputs") == cache_images
    assert datasets(first["copy"], "outputs") == [
        (f"s3://{bucket.name}", "lineage/copy/0.png"),
        (f"s3://{bucket.name}", "lineage/copy/1.png"),
    ]
    assert bucket.client.head_object(Bucket=bucket.name, Key="lineage/copy/1.png")["ContentLength"] > 0
    copied = seedream_facet(first["copy"])
    assert copied["models"] == ["seedream-4.5"] and copied["images"] == 2
    assert copied["usage"]["images_generated"] == 2

    # Links are no dataset: nothing stays at them, and their signatures must not leave. (A task that
    # reports no dataset gets what Airflow's hook-lineage collector saw instead, which under dag.test()
    # includes what earlier tasks read: every task runs in this one process.)
    links = seedream_facet(first["links"])
    assert links["models"] == ["seedream-4.0"] and links["usage"]["requests_sent"] == 1
    assert datasets(first["fetch"], "inputs") == []
    assert datasets(first["fetch"], "outputs") == [(f"s3://{bucket.name}", "lineage/fetch/0.png")]
    fetched = seedream_facet(first["fetch"])
    assert fetched["models"] == [] and fetched["images"] == 1  # a link records no model

    # The second run: the same request is answered by the cache, which the facets say.
    assert datasets(second["cached"], "outputs") == cache_images
    reused = seedream_facet(second["cached"])["usage"]
    assert reused["requests_sent"] == 0 and reused["images_reused"] == 2
    assert reused["estimated_cost_usd"] == 0 and reused["estimated_saving_usd"] == pytest.approx(0.08)
    again = seedream_facet(second["copy"])["usage"]
    assert again["images_generated"] == 0 and again["images_reused"] == 2

    # Nothing of a link, the key or a signature anywhere in what was sent.
    events = [json.loads(line) for line in text.splitlines()]
    namespaces = {dataset["namespace"] for event in events for dataset in event["inputs"] + event["outputs"]}
    assert namespaces and not any(namespace.startswith(("http:", "https:")) for namespace in namespaces)
    assert connection.url.split("//")[1] not in text  # the sandbox's host: no link anywhere
    assert API_KEY not in text
    assert "X-Tos-Signature" not in text and "X-Tos-Credential" not in text
