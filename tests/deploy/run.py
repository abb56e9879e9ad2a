"""`make test-deploy`: the provider in a real Airflow deployment on LocalExecutor, driven the way users
drive one (``deployment.py`` starts it).

Everything is done through the REST API: manual runs without a logical date (as the UI, CLI and REST
create them) and with one, the scheduled path, a deferred wait through the triggerer, reschedule mode,
connection tests, the providers listing, a human review answered over REST as a reviewer would
(approve some, approve all, reject), the marketing example into S3, and a mapped load against a
rate-limited sandbox, reported in docs/benchmarks.md. Afterwards every log Airflow wrote is searched
for the API key and for link signatures.
"""

from __future__ import annotations

import json
import secrets
import sys
from pathlib import Path

from checks import (
    CAPPED_DAG,
    EXAMPLES,
    PUBLISH_DAG,
    REVIEW_DAG,
    LocalStore,
    S3Store,
    check_cache_reuse,
    check_examples,
    check_load,
    check_logs_for_secrets,
    check_publish,
    check_review,
    check_run_ceiling,
    check_stored,
    publish_runs,
    start_publishing,
    write_report,
)
from deployment import API_KEY, Deployment, Failure, free_port, run_tier, step
from PIL import Image
from trust import FORGED_DAG, check_forged_gallery, check_forged_publication

from airflow_provider_seedream.testing import LinkFault

S3_BUCKET = "marketing-assets"


def check_s3(deployment: Deployment) -> None:
    """The marketing example with its destination in a bucket, through an ``aws`` connection whose
    extra points at the S3 API (as at MinIO): every image, manifest and the summary are objects there,
    and no upload is left incomplete."""
    client = deployment.s3_client()
    client.create_bucket(Bucket=S3_BUCKET)
    store = S3Store(client, S3_BUCKET, "assets")
    dag_id = "seedream_marketing_refresh"
    run_id = deployment.trigger(dag_id, conf={"destination": store.destination})
    run = deployment.wait_for_run(dag_id, run_id, 240)
    check_stored(store, dag_id, run)
    folder = f"marketing/{run['run_after'][:10]}"
    (run_folder,) = store.names(folder)
    names = store.names(f"{folder}/{run_folder}")
    expected = [*(f"{index}-0.png" for index in range(4)), *(f"{index}-manifest.json" for index in range(4))]
    if names != sorted([*expected, "summary.csv"]):
        raise Failure(f"the bucket holds {names}")
    step(f"{dag_id} {run_id}: 4 images, 4 manifests and the summary in {store.location(folder)}")


def check_waits(deployment: Deployment) -> None:
    """A deferred wait through the real triggerer, and one in reschedule mode, for links that 404 first."""
    for dag_id in ("seedream_deploy_deferred", "seedream_deploy_reschedule"):
        deployment.unpause(dag_id)
        deployment.sandbox.links_of_next_generation(LinkFault(ready_after=8))
        run_id = deployment.trigger(dag_id, conf={"destination": deployment.assets.as_uri()})
        deployment.wait_for_run(dag_id, run_id, 120)
        text = deployment.log_text(dag_id, run_id)
        expected = "links not available yet" if "deferred" in dag_id else "is not available yet (HTTP 404)"
        if expected not in text:
            raise Failure(f"{dag_id}: the store task's log does not say it waited ({expected!r})")
        if "deferred" in dag_id:
            tis = {ti["task_id"]: ti for ti in deployment.task_instances(dag_id, run_id)}
            if tis["store"]["try_number"] != 1:
                raise Failure(f"the deferred store took {tis['store']['try_number']} tries")
        step(f"{dag_id}: waited for the links and stored the image")


def check_seedream_50_lite(deployment: Deployment) -> None:
    """One Seedream 5.0 lite generation at 3K through the scheduler, stored by the download operator."""
    dag_id = "seedream_deploy_lite"
    deployment.unpause(dag_id)
    destination = deployment.assets / "deploy-lite"
    before = len(deployment.sandbox.generation_requests())
    run_id = deployment.trigger(dag_id, conf={"destination": destination.as_uri()})
    deployment.wait_for_run(dag_id, run_id, 120)
    sent = [
        request.body
        for request in deployment.sandbox.generation_requests()[before:]
        if request.path == "/v3/seedream-5.0-lite"
    ]
    expected = {
        "prompt": "a 3K poster of a lighthouse, on seedream 5.0 lite",
        "size": "3K",
        "watermark": False,
    }
    if sent != [expected]:
        raise Failure(f"{dag_id}: the sandbox received {sent} at /v3/seedream-5.0-lite, not one {expected}")
    (manifest,) = (destination / "lite").rglob("*manifest.json")
    (entry,) = json.loads(manifest.read_text())["images"]
    stored = Path(entry["location"].removeprefix("file://"))
    with Image.open(stored) as image:
        size = image.size
    if size != (192, 192):  # 3K is 3072x3072; the deployment's sandbox draws at 1/16
        raise Failure(f"{dag_id}: the stored 3K image is {size}, not 192x192 (3072x3072 at 1/16)")
    step(f"{dag_id}: one POST to /v3/seedream-5.0-lite with the documented body, 3K stored at {size}")


def check_connections(deployment: Deployment) -> None:
    unreachable = f"http://127.0.0.1:{free_port()}"
    cases = [
        (
            "good key",
            deployment.sandbox.url,
            API_KEY,
            True,
            "API key was accepted for seedream-4.0, seedream-4.5, seedream-5.0-lite.",
        ),
        ("bad key", deployment.sandbox.url, "sk-wrong-key-123456", False, "INVALID_API_KEY"),
        ("unreachable host", unreachable, API_KEY, False, "connection refused"),
    ]
    for name, host, key, ok, text in cases:
        body = {"connection_id": "seedream_check", "conn_type": "seedream", "host": host, "password": key}
        result = deployment.rest("POST", "/connections/test", json=body)
        if result["status"] is not ok or text not in result["message"]:
            raise Failure(f"connection test ({name}) answered {result}")
        if API_KEY in result["message"]:
            raise Failure(f"connection test ({name}) shows the key")
        step(f"connection test, {name}: {result['message'][:100]}")
    providers = deployment.rest("GET", "/providers", params={"limit": 200})["providers"]
    ours = [provider for provider in providers if provider["package_name"] == "airflow-provider-seedream"]
    if not ours or "github.com" not in json.dumps(ours[0]):
        raise Failure(f"/providers does not list the provider with its documentation URL: {ours}")
    step(
        f"/providers lists {ours[0]['package_name']} {ours[0]['version']}: {ours[0].get('documentation_url')}"
    )


def checks(deployment: Deployment) -> None:
    deployment.wait_for_dags(
        [
            *EXAMPLES,
            "seedream_deploy_load",
            "seedream_deploy_lite",
            REVIEW_DAG,
            PUBLISH_DAG,
            FORGED_DAG,
            CAPPED_DAG,
        ]
    )
    store = LocalStore(deployment.assets)
    check_connections(deployment)
    check_waits(deployment)
    check_seedream_50_lite(deployment)
    check_examples(deployment, store)
    check_review(deployment, store)
    check_s3(deployment)
    start_publishing(deployment)
    check_forged_publication(deployment, live=store)
    earlier = publish_runs(deployment)
    cached = S3Store(deployment.s3_client(), S3_BUCKET, "cached")
    check_cache_reuse(deployment, cached)
    check_publish(deployment, cached, live=store, earlier=earlier)
    check_forged_gallery(
        deployment, store, outside=(Path("/tmp") / f"forged-{secrets.token_hex(6)}.json").as_uri()
    )
    check_run_ceiling(deployment)
    load = check_load(deployment, target=0.85, rate_limit=90)
    check_logs_for_secrets(deployment)
    write_report(
        load,
        "test-deploy",
        "Airflow 3.3.2 with LocalExecutor on PostgreSQL, scheduler, dag-processor, triggerer and "
        "api-server as separate processes on this 2-core machine.",
    )


def deployment_for(work: Path) -> Deployment:
    return Deployment(
        work,
        gallery_roots=[f"s3://moto_s3@{S3_BUCKET}"],
        settings={"SEEDREAM_MARKETING_CACHE": f"s3://moto_s3@{S3_BUCKET}/cached/cache"},
    )


if __name__ == "__main__":
    sys.exit(run_tier("make test-deploy", deployment_for, checks))
