"""Checks both deployment tiers run: the example DAGs and the review through REST, the stored images
wherever they were stored (a local folder, or a bucket), the rate-limited load, and every log."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import textwrap
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests
from browser import look_at_gallery, look_at_review
from deployment import (
    API_KEY,
    HIDDEN_DAG,
    OUTSIDER_PASSWORD,
    REPOSITORY,
    S3_SECRET,
    Deployment,
    Failure,
    step,
)

EXAMPLES = ["seedream_marketing_refresh", "seedream_product_edit", "seedream_storyboard"]
REVIEW_DAG = "seedream_campaign_review"
PUBLISH_DAG = "seedream_publish_new_images"
EXAMPLE_FOLDERS = {
    "seedream_marketing_refresh": "marketing",
    "seedream_product_edit": "product-edit",
    "seedream_storyboard": "storyboard",
}
LOAD_PROMPTS = 100
LOAD_LATENCY = 2.0
"""Seconds each generation takes during the load case. What is in flight (``Deployment.in_flight``)
must cover the limit at what a whole task takes (its start on a worker, then the generation), so the
deployment could outrun the limit and the hook's pacing is what keeps it there."""
BENCHMARKS = REPOSITORY / "docs" / "benchmarks.md"
S3_CONN_ID = "moto_s3"


def run_folder(run: dict[str, Any]) -> str:
    """Where the examples store a run's files: its date, then its run id made safe for a name."""
    when = (run["logical_date"] or run["run_after"])[:10]
    return f"{when}/{re.sub(r'[^A-Za-z0-9._-]', '_', run['dag_run_id'])}"


class LocalStore:
    """A destination folder on this machine, as the DAGs see it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.destination = root.as_uri()

    def location(self, key: str) -> str:
        return (self.root / key).as_uri()

    def names(self, folder: str) -> list[str]:
        path = self.root / folder
        return sorted(child.name for child in path.iterdir()) if path.is_dir() else []

    def read(self, key: str) -> bytes:
        return (self.root / key).read_bytes()

    def key_of(self, location: str) -> str:
        return str(Path(location.removeprefix("file://")).relative_to(self.root))

    def incomplete_uploads(self) -> list[str]:
        return [str(path) for path in self.root.rglob("*.part")]

    links_possible = True

    def write(self, key: str, data: bytes) -> None:
        (self.root / key).parent.mkdir(parents=True, exist_ok=True)
        (self.root / key).write_bytes(data)

    def link(self, key: str, target: Path) -> None:
        (self.root / key).parent.mkdir(parents=True, exist_ok=True)
        (self.root / key).symlink_to(target)


@dataclass
class S3Store:
    """A prefix in a bucket of moto's S3 server, reached by the DAGs through the ``moto_s3`` connection."""

    client: Any
    bucket: str
    prefix: str

    @property
    def destination(self) -> str:
        return f"s3://{S3_CONN_ID}@{self.bucket}/{self.prefix}"

    def location(self, key: str) -> str:
        return f"{self.destination}/{key}"

    def names(self, folder: str) -> list[str]:
        start = f"{self.prefix}/{folder}/"
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=start)
        keys = [item["Key"] for page in pages for item in page.get("Contents", [])]
        return sorted({key[len(start) :].split("/")[0] for key in keys})

    def read(self, key: str) -> bytes:
        return bytes(self.client.get_object(Bucket=self.bucket, Key=f"{self.prefix}/{key}")["Body"].read())

    def key_of(self, location: str) -> str:
        if not location.startswith(f"{self.destination}/"):
            raise Failure(f"{location} is not under {self.destination}")
        return location[len(self.destination) + 1 :]

    def incomplete_uploads(self) -> list[str]:
        uploads = self.client.list_multipart_uploads(Bucket=self.bucket).get("Uploads", [])
        return [upload["Key"] for upload in uploads]

    links_possible = False
    """An object store has no symbolic links."""

    def write(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=f"{self.prefix}/{key}", Body=data)


Store = LocalStore | S3Store


def check_examples(deployment: Deployment, store: Store) -> None:
    """Every example through the scheduler, manual runs without a logical date (as the UI makes them)
    and one with, and the run the scheduler makes once the scheduled DAG is unpaused (it stores into
    the DAG's default destination, which must then be ``store``)."""
    conf = {"destination": store.destination}
    runs = [(dag_id, deployment.trigger(dag_id, conf=conf)) for dag_id in EXAMPLES]
    runs.append(
        (
            "seedream_product_edit",
            deployment.trigger("seedream_product_edit", conf=conf, logical_date="2026-03-01T00:00:00Z"),
        )
    )
    for dag_id in EXAMPLES:
        deployment.unpause(dag_id)
    made = deployment.wait_for(
        lambda: next(
            (
                run["dag_run_id"]
                for run in deployment.rest("GET", "/dags/seedream_marketing_refresh/dagRuns")["dag_runs"]
                if run["run_type"] == "scheduled"
            ),
            None,
        ),
        60,
        "the scheduler to create a scheduled run",
    )
    step(f"the scheduler created {made}")
    runs.append(("seedream_marketing_refresh", made))
    for dag_id, run_id in runs:
        run = deployment.wait_for_run(dag_id, run_id, 240)
        check_stored(store, dag_id, run)
        step(f"{dag_id} {run_id}: success, files checked in {store.destination}")


def check_stored(store: Store, dag_id: str, run: dict[str, Any]) -> None:
    """The images and manifests a run stored, under its date and run id, each manifest entry there
    with its recorded size; the marketing summary lists every product's file."""
    folder = f"{EXAMPLE_FOLDERS[dag_id]}/{run_folder(run)}"
    names = store.names(folder)
    manifests = [name for name in names if name.endswith("manifest.json")]
    if not any(name.endswith(".png") for name in names) or not manifests:
        raise Failure(f"{dag_id}: no images or manifest in {store.location(folder)}: {names}")
    for manifest in manifests:
        for entry in json.loads(store.read(f"{folder}/{manifest}"))["images"]:
            if len(store.read(store.key_of(entry["location"]))) != entry["bytes"]:
                raise Failure(f"{manifest} lists {entry['location']} with {entry['bytes']} bytes; it differs")
    if dag_id == "seedream_marketing_refresh":
        rows = list(csv.DictReader(io.StringIO(store.read(f"{folder}/summary.csv").decode())))
        if [row["sku"] for row in rows] != ["BK-100", "KT-220", "LP-310", "MG-415"]:
            raise Failure(f"unexpected summary {rows}")
        if [row["file"] for row in rows] != [store.location(f"{folder}/{index}-0.png") for index in range(4)]:
            raise Failure(f"the summary lists {[row['file'] for row in rows]}")
        if {row["prompt_by"] for row in rows} != {"llm"} or not rows[0]["prompt"].startswith("Product: City"):
            raise Failure(f"the LLM did not write the prompts: {rows}")
    if uploads := store.incomplete_uploads():
        raise Failure(f"incomplete uploads left behind: {uploads}")


def check_cache_reuse(deployment: Deployment, store: S3Store) -> None:
    """The marketing example triggered twice into one bucket, where it keeps its cache: the first run
    pays for each product; the second, and its generations once cleared through REST, send no
    generation (counted at the sandbox) and store the very bytes the first one paid for, whichever
    host ran which task."""
    dag_id = "seedream_marketing_refresh"
    runs = []
    for _ in range(2):
        before = len(deployment.sandbox.generation_requests())
        run = deployment.wait_for_run(
            dag_id, deployment.trigger(dag_id, conf={"destination": store.destination}), 240
        )
        check_stored(store, dag_id, run)
        hosts = {
            (ti["task_id"], ti["map_index"]): ti["hostname"]
            for ti in deployment.task_instances(dag_id, run["dag_run_id"])
            if ti["task_id"] in ("generate", "store")
        }
        runs.append((run, len(deployment.sandbox.generation_requests()) - before, hosts))
    (first, paid, first_hosts), (second, sent, second_hosts) = runs
    if (paid, sent) != (4, 0):
        raise Failure(f"{dag_id}: {paid} POSTs in the first run and {sent} in the second; expected 4 and 0")
    # Clearing the generations (and what follows them) in the UI's way: each finds its images again.
    before = len(deployment.sandbox.generation_requests())
    deployment.rest(
        "POST",
        f"/dags/{dag_id}/clearTaskInstances",
        json={
            "dry_run": False,
            "dag_run_id": second["dag_run_id"],
            "task_ids": ["generate"],
            "include_downstream": True,
            "only_failed": False,
            "reset_dag_runs": True,
        },
    )
    second = deployment.wait_for_run(dag_id, second["dag_run_id"], 240)
    tries = {
        ti["map_index"]: ti["try_number"]
        for ti in deployment.task_instances(dag_id, second["dag_run_id"])
        if ti["task_id"] == "generate"
    }
    if tries != {index: 2 for index in range(4)} or len(deployment.sandbox.generation_requests()) != before:
        raise Failure(f"{dag_id}: the cleared generations ran as tries {tries} and sent POSTs")
    folder = f"marketing/{run_folder(second)}"
    summary = list(csv.DictReader(io.StringIO(store.read(f"{folder}/summary.csv").decode())))
    if [(row["images_generated"], row["images_reused"]) for row in summary] != [("0", "1")] * 4:
        raise Failure(f"{dag_id}: the second run's summary says {summary}")
    checked = 0
    for manifest in (name for name in store.names(folder) if name.endswith("manifest.json")):
        for entry in json.loads(store.read(f"{folder}/{manifest}"))["images"]:
            generation_folder, _, name = entry["source"].rpartition("/")
            record = json.loads(store.read(store.key_of(f"{generation_folder}/entry.json")))
            (paid_for,) = [image for image in record["images"] if image["file"] == name]
            served = deployment.sandbox.image_bytes(paid_for["source"])
            if store.read(store.key_of(entry["location"])) != served or entry["sha256"] != paid_for["sha256"]:
                raise Failure(
                    f"{entry['location']} is not the image the first run paid for ({paid_for['source']})"
                )
            if entry["generation"]["generated_by"]["run_id"] != first["dag_run_id"]:
                raise Failure(f"{manifest}: generated by {entry['generation']['generated_by']}")
            checked += 1
    if checked != 4:
        raise Failure(f"{dag_id}: {checked} images in the second run's manifests")
    # generate's 4 and store's 4
    check_gallery(deployment, dag_id, second["dag_run_id"], expected=8, other_dag=REVIEW_DAG)
    step(
        f"{dag_id}: run 1 paid 4 generations; run 2, and its generations cleared and run again, sent 0 "
        "POSTs and stored the 4 cached images, byte-exact "
        f"(cache {store.location('cache')}; generate/store hosts, run 1: "
        f"{sorted(set(first_hosts.values()))}, run 2: {sorted(set(second_hosts.values()))})"
    )


def start_publishing(deployment: Deployment) -> None:
    """Unpause the publication, scheduled on the asset the marketing example's stores update, with no
    event queued: its first run then starts from the next event. That run consumes every earlier event
    too (Airflow hands a DAG's first asset-triggered run all events before it), including those of the
    marketing runs into other destinations, whose caches the publication rightly refuses: the forged
    event (``trust.check_forged_publication``) goes first, and its failed run takes them all."""
    response = deployment.session.delete(
        f"{deployment.api}/dags/{PUBLISH_DAG}/assets/queuedEvents", timeout=30
    )
    if response.status_code not in (204, 404):
        raise Failure(
            f"clearing {PUBLISH_DAG}'s queued events answered {response.status_code}: {response.text}"
        )
    deployment.unpause(PUBLISH_DAG)


def publish_runs(deployment: Deployment) -> set[str]:
    return {run["dag_run_id"] for run in deployment.rest("GET", f"/dags/{PUBLISH_DAG}/dagRuns")["dag_runs"]}


def check_publish(deployment: Deployment, cached: S3Store, live: Store, earlier: set[str]) -> None:
    """Nobody triggers the publication: the scheduler starts it from the marketing runs' asset events
    (``check_cache_reuse`` made them, into ``cached``; the runs in ``earlier`` came before). live/ (in
    ``live``) then holds each product's image, byte-exact from the cache, and the last publication
    copied nothing: those runs reused every image."""

    def settled() -> list[dict] | None:
        runs = deployment.rest("GET", f"/dags/{PUBLISH_DAG}/dagRuns", params={"order_by": "run_after"})
        queued = deployment.rest("GET", f"/dags/{PUBLISH_DAG}/assets/queuedEvents", params={})
        new = [run for run in runs["dag_runs"] if run["dag_run_id"] not in earlier]
        busy = [run for run in new if run["state"] in ("queued", "running")]
        return new if new and not busy and not queued["queued_events"] else None

    runs = deployment.wait_for(settled, 180, f"the scheduler to start and finish {PUBLISH_DAG}")
    if [(run["run_type"], run["state"]) for run in runs] != [("asset_triggered", "success")] * len(runs):
        failed = [run["dag_run_id"] for run in runs if run["state"] != "success"]
        text = "".join(deployment.log_text(PUBLISH_DAG, run_id, ("failed",)) for run_id in failed)
        said = "\n".join(line[:600] for line in text.splitlines() if "Not publishing" in line)
        raise Failure(f"{PUBLISH_DAG} ran {[(run['run_type'], run['state']) for run in runs]}:\n{said}")
    if len(runs) < 2:
        raise Failure(f"{PUBLISH_DAG} ran once for two marketing runs: {runs}")
    last = runs[-1]["dag_run_id"]
    upstream = deployment.rest("GET", f"/dags/{PUBLISH_DAG}/dagRuns/{last}/upstreamAssetEvents")
    if {event["source_dag_id"] for event in upstream["asset_events"]} != {"seedream_marketing_refresh"}:
        raise Failure(f"{PUBLISH_DAG} {last} consumed {upstream}")
    folder = "live/marketing"
    published = json.loads(live.read(f"{folder}/published.json"))
    names = live.names(folder)
    if (
        names != ["0-0.png", "1-0.png", "2-0.png", "3-0.png", "published.json"]
        or sorted(published) != names[:4]
    ):
        raise Failure(f"{live.location(folder)} holds {names}, and published.json lists {sorted(published)}")
    for name, entry in published.items():
        image = live.read(f"{folder}/{name}")
        if image != cached.read(cached.key_of(entry["source"])):
            raise Failure(f"{live.location(f'{folder}/{name}')} is not the cached image {entry['source']}")
        if hashlib.sha256(image).hexdigest() != entry["sha256"]:
            raise Failure(
                f"{live.location(f'{folder}/{name}')} does not have the sha256 published.json records"
            )
        if datetime.fromisoformat(entry["published_at"]) >= datetime.fromisoformat(runs[-1]["start_date"]):
            raise Failure(
                f"the last publication ({last}, started {runs[-1]['start_date']}) copied {name} again at "
                f"{entry['published_at']} from {entry['source']}; runs: "
                f"{[(run['dag_run_id'], run['start_date']) for run in runs]}"
            )
    step(
        f"{PUBLISH_DAG}: {len(runs)} asset-triggered runs from the marketing runs' events; live/ holds "
        f"the 4 products' cached images byte-exact, and the last run "
        f"({len(upstream['asset_events'])} events) copied none"
    )


def check_gallery(deployment: Deployment, dag_id: str, run_id: str, expected: int, other_dag: str) -> None:
    """The UI's gallery of a run, through the api-server as a browser asks it: the page lists the
    run's stored images, each thumbnail and image decodes; every route is 401 without a login, 403 for
    a user the auth manager refuses this DAG (as the DAG's own REST route is), and 404 for the same run
    under another DAG's id. Then the same in a real browser, logged in."""
    from PIL import Image

    root = deployment.api_root
    page_path = f"/seedream/runs/{quote(dag_id, safe='')}/{quote(run_id, safe='')}"
    page = deployment.session.get(root + page_path, timeout=60)
    if page.status_code != 200:
        raise Failure(f"the gallery of {dag_id} {run_id} answered {page.status_code}: {page.text[:300]}")
    thumbnails = re.findall(r'<img src="([^"]+)"', page.text)
    if len(thumbnails) != expected:
        raise Failure(f"the gallery of {dag_id} {run_id} shows {len(thumbnails)} images, not {expected}")
    images = re.findall(r'<a href="([^"]+)"', page.text)
    task_path = f"/seedream/tasks/{quote(dag_id, safe='')}/{quote(run_id, safe='')}/store?map_index=0"
    if deployment.session.get(root + task_path, timeout=60).text.count("<img ") != 1:
        raise Failure(f"{task_path} does not show the one image of store[0]")
    if dag_id != HIDDEN_DAG:
        raise Failure(f"the outsider is refused {HIDDEN_DAG}, not {dag_id}: this check would prove nothing")
    outsider = {"Authorization": deployment.authorization("outsider", OUTSIDER_PASSWORD)}
    own_pages = {
        dag: requests.get(f"{deployment.api}/dags/{dag}", headers=outsider, timeout=30).status_code
        for dag in (dag_id, other_dag)
    }
    if own_pages != {dag_id: 403, other_dag: 200}:
        raise Failure(f"the outsider's access to the DAGs' own REST pages is {own_pages}")
    for path in [page_path, task_path, *thumbnails, *images]:
        if requests.get(root + path, timeout=30).status_code != 401:
            raise Failure(f"{path} answered without a login")
        if (refused := requests.get(root + path, headers=outsider, timeout=30)).status_code != 403:
            raise Failure(f"{path} answered {refused.status_code} to a user refused {dag_id}")
        elsewhere = path.replace(f"/{quote(dag_id, safe='')}/", f"/{other_dag}/", 1)
        if (refused := deployment.session.get(root + elsewhere, timeout=30)).status_code != 404:
            raise Failure(f"{elsewhere} (this run under another DAG) answered {refused.status_code}")
        answer = deployment.session.get(root + path, timeout=60)
        if path not in (page_path, task_path):
            if answer.headers.get("X-Content-Type-Options") != "nosniff":
                raise Failure(f"{path} has no X-Content-Type-Options: nosniff")
            with Image.open(io.BytesIO(answer.content)) as picture:
                picture.load()
    step(
        f"{dag_id} {run_id}: the UI gallery shows {expected} images, every thumbnail and image decodes; "
        f"every route 401 without a login, 403 to a user refused the DAG, 404 under {other_dag}"
    )
    look_at_gallery(deployment, dag_id, run_id, expected, f"gallery-{dag_id}")


def check_review(deployment: Deployment, store: Store) -> None:
    """The human-in-the-loop example: each run waits for a reviewer, who answers over REST as the UI's
    Required Actions page does. Only what was approved lands under published/; a rejection publishes
    nothing and skips ``publish``."""
    # (answer, the stored names that must be published): 2 briefs x 3 candidates, numbered #1..#6.
    cases = [
        (
            {"chosen_options": ["Approve"], "params_input": {"publish_only": ["2", "#4"]}},
            ["0-1.png", "1-0.png"],
        ),
        (
            {"chosen_options": ["Approve"]},
            [f"{brief}-{index}.png" for brief in range(2) for index in range(3)],
        ),
        ({"chosen_options": ["Reject"]}, []),
    ]
    deployment.unpause(REVIEW_DAG)
    runs = [deployment.trigger(REVIEW_DAG, conf={"destination": store.destination}) for _ in cases]
    for number, run_id in enumerate(runs):
        check_review_body(wait_for_review(deployment, REVIEW_DAG, run_id))
        if number == 0:  # what the reviewer sees: the six candidates, on the Required Actions page
            look_at_review(deployment, REVIEW_DAG, run_id, expected=6, name="review-required-actions")
        # Airflow 3.3.2 fails a review answered before the scheduler has handled the end of the try
        # that parked it: the answer queues the resume under the same try number, the late "success"
        # of the parking try then removes it from the executor, and the scheduler takes the task for
        # killed externally. The parking try ends up to ~5 s after the task shows awaiting_input (the
        # supervisor notices its exit at its next heartbeat). A person reading the request takes
        # longer; the test waits for the scheduler's log line instead of guessing.
        deployment.wait_for(
            lambda run_id=run_id: scheduler_saw_try_end(deployment, REVIEW_DAG, run_id, "review"),
            60,
            f"the scheduler to see the try that parked {REVIEW_DAG} {run_id} review end",
        )
    for run_id, (answer, _) in zip(runs, cases, strict=True):
        path = f"/dags/{REVIEW_DAG}/dagRuns/{run_id}/taskInstances/review/-1/hitlDetails"
        refused = deployment.session.patch(
            f"{deployment.api}{path}", json={"chosen_options": ["Maybe"]}, timeout=30
        )
        if refused.status_code != 400:
            raise Failure(
                f"an option the review does not offer answered {refused.status_code}: {refused.text}"
            )
        response = deployment.rest("PATCH", path, json=answer)
        if (
            response["responded_by"]["name"] != "admin"
            or response["chosen_options"] != answer["chosen_options"]
        ):
            raise Failure(f"the review recorded {response}")
        again = deployment.session.patch(
            f"{deployment.api}{path}", json={"chosen_options": ["Reject"]}, timeout=30
        )
        if again.status_code != 409:
            raise Failure(f"a second answer to the review answered {again.status_code}: {again.text}")
        step(f"{REVIEW_DAG} {run_id}: answered {json.dumps(answer)}")
    for run_id, (answer, expected) in zip(runs, cases, strict=True):
        run = deployment.wait_for_run(REVIEW_DAG, run_id, 180)
        check_published(store, run, expected)
        states = {ti["task_id"]: ti["state"] for ti in deployment.task_instances(REVIEW_DAG, run_id)}
        if states["publish"] != ("success" if expected else "skipped"):
            raise Failure(f"{REVIEW_DAG} {run_id}: publish ended {states['publish']} after {answer}")
        if (
            expected
            and f"Approved by admin: published {len(expected)} of 6 images"
            not in deployment.log_text(REVIEW_DAG, run_id)
        ):
            raise Failure(f"{REVIEW_DAG} {run_id}: the publish log does not say who approved what")
        step(f"{REVIEW_DAG} {run_id}: {answer['chosen_options'][0]}, published {expected or 'nothing'}")


def wait_for_review(
    deployment: Deployment, dag_id: str, run_id: str, task_id: str = "review"
) -> dict[str, Any]:
    """The task's human-in-the-loop request, once it waits for an answer (Airflow 3.3 parks it in
    ``awaiting_input``; 3.1 and 3.2 defer it)."""

    def waiting() -> dict[str, Any] | None:
        states = {ti["task_id"]: ti["state"] for ti in deployment.task_instances(dag_id, run_id)}
        if "failed" in states.values() or "upstream_failed" in states.values():
            raise Failure(f"{dag_id} {run_id}: {states}", deployment.task_logs(dag_id, run_id, ("failed",)))
        if states.get(task_id) not in ("awaiting_input", "deferred"):
            return None
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/-1/hitlDetails"
        return dict(deployment.rest("GET", path))

    return dict(deployment.wait_for(waiting, 180, f"{dag_id} {run_id} to wait for a review"))


def scheduler_saw_try_end(deployment: Deployment, dag_id: str, run_id: str, task_id: str) -> bool:
    """Whether the scheduler has received the executor's event for a try of this task ending well."""
    key = f"TaskInstanceKey(dag_id='{dag_id}', task_id='{task_id}', run_id='{run_id}'"
    log = (deployment.work / "process-logs" / "scheduler.log").read_text(errors="replace")
    return any(
        "Received executor event with state success" in line and key in line for line in log.splitlines()
    )


def check_review_body(detail: dict[str, Any]) -> None:
    """The reviewer sees every candidate: its number, where it is stored, its pixel size (from the
    manifest), under the prompt that made it."""
    body = detail["body"] or ""
    wanted = [f"**#{number}**" for number in range(1, 7)]
    wanted += ["### Brief 1", "### Brief 2", "red bicycle", "travel mug", "160 x 90 px", "/campaign/"]
    if missing := [text for text in wanted if text not in body]:
        raise Failure(f"the review's body lacks {missing}:\n{body}")
    if detail["options"] != ["Approve", "Reject"] or "publish_only" not in detail["params"]:
        raise Failure(f"the review offers {detail['options']} with params {detail['params']}")


def check_published(store: Store, run: dict[str, Any], expected: list[str]) -> None:
    """published/ holds exactly the approved images of this run, byte for byte what was stored."""
    stored, published = f"campaign/{run_folder(run)}", f"published/campaign/{run_folder(run)}"
    names = store.names(stored)
    if (
        len([n for n in names if n.endswith(".png")]) != 6
        or len([n for n in names if n.endswith("-manifest.json")]) != 2
    ):
        raise Failure(f"{store.location(stored)} holds {names}")
    names = store.names(published)
    if names != sorted(expected):
        raise Failure(f"{store.location(published)} holds {names}, not {sorted(expected)}")
    for name in names:
        if store.read(f"{published}/{name}") != store.read(f"{stored}/{name}"):
            raise Failure(f"{store.location(f'{published}/{name}')} differs from what was stored")


def check_load(deployment: Deployment, target: float, rate_limit: int) -> dict[str, Any]:
    """~100 mapped generations through the real scheduler against a sandbox that allows ``rate_limit``
    images per minute, each generation slow. The limit must lie below what the deployment can start,
    so that the limit binds, 429s happen, and the figure measures the hook's pacing."""
    sandbox = deployment.sandbox
    sandbox.rate_limit, sandbox.latency = rate_limit, LOAD_LATENCY
    before = (sandbox.stats.images, sandbox.stats.rate_limited)
    sandbox.stats.first_image_at = None
    deployment.unpause("seedream_deploy_load")
    started = time.time()
    run_id = deployment.trigger("seedream_deploy_load", conf={"prompts": LOAD_PROMPTS})
    deployment.wait_for_run("seedream_deploy_load", run_id, 300)
    tis = deployment.task_instances("seedream_deploy_load", run_id)
    generated = [ti for ti in tis if ti["task_id"] == "generate"]
    images = sandbox.stats.images - before[0]
    span = (sandbox.stats.last_image_at or 0) - (sandbox.stats.first_image_at or 0)
    result = {
        "prompts": LOAD_PROMPTS,
        "images": images,
        "failed_tasks": sum(ti["state"] != "success" for ti in tis),
        "retried_tasks": sum(ti["try_number"] > 1 for ti in generated),
        "rate_limited": sandbox.stats.rate_limited - before[1],
        "seconds": round(time.time() - started, 1),
        "images_per_minute": round(images / span * 60, 1) if span > 0 else None,
        "limit": rate_limit,
        "latency": LOAD_LATENCY,
        "in_flight": deployment.in_flight,
        "hosts": dict(sorted(Counter(ti["hostname"] for ti in generated).items())),
        "target": target,
    }
    # The bucket starts full (ten seconds' worth): those images come at once. The limit governs the
    # rest, so the sustained rate is what came after the burst, over the time it all took.
    burst = rate_limit / 6
    sustained = round((images - burst) / span * 60, 1) if span > 0 else None
    result["sustained_images_per_minute"] = sustained
    result["ratio"] = round(sustained / rate_limit, 2) if sustained else None
    sandbox.rate_limit, sandbox.latency = None, 0.0
    step(f"load: {json.dumps(result)}")
    if result["failed_tasks"] or images != LOAD_PROMPTS:
        raise Failure(f"load case: {result}")
    return result


def check_logs_for_secrets(deployment: Deployment) -> None:
    """No API key, S3 secret or link signature in any log of any process: Airflow's components, the
    workers (each with its own task logs), Redis, PostgreSQL."""
    signatures = [image.signature for image in deployment.sandbox._images.values()]
    homes = [deployment.home, *(worker.home for worker in deployment.workers.values())]
    files = {path for path in deployment.work.rglob("*.log") if path.is_file()}
    files |= {path for path in (deployment.work / "pg").glob("log*") if path.is_file()}  # PostgreSQL's
    files |= {path for home in homes for path in (home / "logs").rglob("*") if path.is_file()}
    found = []
    for path in files:
        text = path.read_text(errors="replace")
        if API_KEY in text:
            found.append(f"{path}: the API key")
        if S3_SECRET in text:
            found.append(f"{path}: the S3 connection's secret")
        found += [f"{path}: a link signature" for signature in signatures if signature in text]
    if found:
        raise Failure("secrets in logs:\n" + "\n".join(sorted(set(found))[:20]))
    step(f"no API key, S3 secret or any of {len(signatures)} link signatures in {len(files)} log files")


def write_report(load: dict[str, Any], tier: str, setup: str) -> None:
    """The load case's figures, as one section of docs/benchmarks.md per tier (``tier`` names the make
    target; ``setup`` describes the deployment)."""
    start, end = f"<!-- {tier}-load:start -->", f"<!-- {tier}-load:end -->"
    hosts = ", ".join(f"{host}: {count}" for host, count in load["hosts"].items())
    intro = textwrap.fill(
        f"Produced by the last `make {tier}` run ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}): "
        f"{setup} `seedream_deploy_load` maps `SeedreamGenerateOperator` over {load['prompts']} prompts, "
        f"at most {load['in_flight']} in flight (`max_active_tis_per_dag`), against the sandbox limiting "
        f"images to {load['limit']} per minute (a token bucket holding ten seconds' worth; 429 with "
        f"`Retry-After` past it) with {load['latency']} s per generation.",
        width=100,
    )
    report = f"""{start}
## Deployment load (`make {tier}`)

{intro}

| figure | value | target |
|---|---|---|
| images generated / prompts | {load["images"]} / {load["prompts"]} | all |
| images per minute, first to last image | {load["images_per_minute"]} | |
| sustained images per minute, burst excluded | {load["sustained_images_per_minute"]} | |
| sustained / limit | {load["ratio"]}x | >= {load["target"]}x |
| failed tasks | {load["failed_tasks"]} | 0 |
| task retries spent | {load["retried_tasks"]} | |
| 429 answers | {load["rate_limited"]} | |
| generations per host | {hosts} | |
| wall time of the run | {load["seconds"]} s | |

The hook waits out 429s within `rate_limit_wait_seconds` (default 600) rather than a retry count:
a 429 says nothing was generated and when to come back, so pacing by `Retry-After` costs only time,
and no task fails or spends a retry on the limit. The number in flight should cover the limit at what
a whole task takes: in flight = images per minute x seconds per task / 60, where a task's seconds are
the generation's plus its start on a worker (about 4 s on a Celery worker of this machine, which is
why the Celery tier runs 12 in flight where LocalExecutor's 8 suffice).
{end}"""
    text = BENCHMARKS.read_text()
    if start in text:
        text = text[: text.index(start)] + report + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip("\n") + "\n\n" + report + "\n"
    BENCHMARKS.write_text(text)
    step(f"wrote the load report to {BENCHMARKS.relative_to(REPOSITORY)}")
    if not load["rate_limited"]:
        raise Failure(
            f"the rate limit ({load['limit']}/min) never bound (no 429): the machine, not the hook, set "
            f"the pace ({load['ratio']}x), so the figure says nothing of the hook's pacing; lower the limit"
        )
    if load["ratio"] is None or load["ratio"] < load["target"]:
        raise Failure(f"the load reached {load['ratio']}x of the rate limit; the target is {load['target']}x")


CAPPED_DAG = "seedream_deploy_capped"
CAPPED_TASKS = 24
CAPPED_IMAGES = 10


def check_run_ceiling(deployment: Deployment) -> dict[str, int]:
    """24 mapped generations under ``seedream_capped``'s 10-image run ceiling, over every worker: exactly
    10 POSTs, 14 tasks failed by the ceiling on their first try. Returns the generations per host."""
    deployment.unpause(CAPPED_DAG)
    before = len(deployment.sandbox.generation_requests())
    run_id = deployment.trigger(CAPPED_DAG, conf={"prompts": CAPPED_TASKS})
    deployment.wait_for_run(CAPPED_DAG, run_id, 300, expect="failed")
    posts = len(deployment.sandbox.generation_requests()) - before
    tis = [ti for ti in deployment.task_instances(CAPPED_DAG, run_id) if ti["task_id"] == "generate"]
    states = Counter(ti["state"] for ti in tis)
    retried = [ti["map_index"] for ti in tis if ti["try_number"] != 1]
    if posts != CAPPED_IMAGES or states != {"success": CAPPED_IMAGES, "failed": CAPPED_TASKS - CAPPED_IMAGES}:
        raise Failure(f"{CAPPED_DAG}: {posts} POSTs, task states {dict(states)}")
    if retried:
        raise Failure(f"{CAPPED_DAG}: map indexes {retried} were retried after the ceiling refused them")
    text = deployment.log_text(CAPPED_DAG, run_id, ("failed",))
    said = f"max_spend_per_run_usd=0.4 USD (DAG run {run_id} of {CAPPED_DAG}) would be exceeded"
    if text.count(said) < CAPPED_TASKS - CAPPED_IMAGES:
        raise Failure(f"{CAPPED_DAG}: the failed tasks' logs do not all say {said!r}:\n{text[-2000:]}")
    hosts = dict(Counter(ti["hostname"] for ti in tis))
    step(
        f"{CAPPED_DAG}: {CAPPED_TASKS} mapped generations under a {CAPPED_IMAGES}-image run ceiling: "
        f"{posts} POSTs, {states['failed']} refused on their first try, tasks per host {hosts}"
    )
    return hosts
