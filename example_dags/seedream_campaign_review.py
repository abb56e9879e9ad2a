"""
Campaign review: Seedream proposes a few images per brief, a person approves or rejects them, and only
approved images are published.

    build_prompts -> generate (mapped, one per brief) -> store (mapped) -> describe -> review -> publish

- ``params.briefs`` is the list of briefs (two by default). Each brief is one generation with
  ``sequential_image_generation="auto"``, which returns up to ``params.candidates`` (default 3)
  alternative images.
- The images are stored in ``params.destination`` (a local ``file://`` folder by default, or any object
  store such as ``s3://bucket/prefix``) under ``campaign/<date>/<run id>/``, one manifest per brief
  beside them. The date is the run's logical date, or when it was triggered for a manual run without
  one: every run has one, and two runs never share a folder.
- ``generate`` stores its candidates in a cache under the destination (``cache/``) and hands on
  their locations there, which do not expire as the API's links do: a review answered days later, or
  a ``store``/``publish`` cleared after it, still has every image. Running the same briefs again
  reuses them instead of paying again.
- ``describe`` writes the review's body: every stored image as a picture (the gallery's thumbnail,
  linking to the full image; the Required Actions page renders Markdown images), its number,
  location and pixel size (read from the manifest the store task wrote), under the prompt that made
  it.
- ``review`` waits for a person, in the UI (Browse > Required Actions, or the task's Required Actions
  tab) or through the REST API (``PATCH /api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/review/-1/
  hitlDetails`` with ``{"chosen_options": ["Approve"], "params_input": {"publish_only": ["2"]}}``).
  **Approve** publishes every image, or only those whose numbers the reviewer enters in
  *publish_only* (the best candidate of each brief, say). **Reject** publishes nothing: ``publish`` is
  skipped and the run still succeeds, because a rejection is a review's outcome, not a failure.
  Without an answer within ``REVIEW_TIMEOUT`` the review ends as rejected. (On Airflow 3.3.2 an answer
  sent within seconds of the task starting to wait can fail it, the scheduler taking it for killed
  externally: a person is slower than that, a script should wait; clear ``review`` to ask again.)
- ``publish`` copies the approved images to ``published/campaign/<date>/<run id>/`` under the
  destination with ``ObjectStoragePath.copy``, so it works the same on object stores. That folder holds
  exactly the latest approval: approving again (``review`` cleared and answered) replaces the earlier
  choice; rejecting then leaves it, as ``publish`` is skipped. A number the review did not list fails
  ``publish`` before anything is copied.

Human-in-the-loop operators need Airflow 3.1+ and ``apache-airflow-providers-standard``. On older
Airflow (2.11, 3.0), or without that provider, this file defines no DAG (and raises no import error).
"""

from __future__ import annotations

import json
import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pendulum
from airflow.providers.common.compat.sdk import (
    DAG,
    AirflowFailException,
    AirflowOptionalProviderFeatureException,
    ObjectStoragePath,
    Param,
    task,
)

from airflow_provider_seedream.operators.seedream import SeedreamGenerateOperator
from airflow_provider_seedream.plugins.paths import image_url
from airflow_provider_seedream.sensors.seedream import SeedreamDownloadOperator
from airflow_provider_seedream.utils.destinations import require_shared_destination

try:
    # Why ApprovalOperator rather than an HITLOperator with one option per candidate: options are fixed
    # when the DAG is parsed (they are not templated), while the candidates exist only at run time (the
    # briefs are a run parameter, and "auto" may return fewer images than asked). So the decision is
    # Approve/Reject, whose Reject skips ``publish`` by itself, and the choice among candidates is a
    # form field (``publish_only``) the reviewer fills in on the same page.
    from airflow.providers.standard.operators.hitl import ApprovalOperator
except (ImportError, AirflowOptionalProviderFeatureException):  # Airflow < 3.1, or no standard provider
    ApprovalOperator = None

DESTINATION = os.environ.get("SEEDREAM_ASSETS", "file:///tmp/seedream-assets")
HOW_TO_SET_DESTINATION = "Set SEEDREAM_ASSETS for this DAG's default, or the param 'destination' for one run."
BRIEFS = [
    "Spring sale banner for a city bicycle shop: a red bicycle leaning on a flower stall, morning light.",
    "Launch visual for a travel mug: the mug on a train window ledge, countryside blurred outside.",
]
# Every run has a date: its logical date, or when it was triggered for a manual run without one (how
# Airflow 3 creates them; `{{ ds }}` is undefined there). {run_id} keeps two runs of a day apart.
RUN_FOLDER = "{{ (dag_run.logical_date or dag_run.run_after) | ds }}/{run_id}"
FOLDER = "campaign"
PUBLISHED = "published"
REVIEW_TIMEOUT = timedelta(days=3)


def candidates(prompts: list[str], stored: Any) -> list[dict[str, Any]]:
    """Every stored image, numbered from 1 across briefs as the review shows them."""
    found = []
    for brief, (prompt, locations) in enumerate(zip(prompts, list(stored), strict=True)):
        for index, location in enumerate(locations):
            found.append(
                {
                    "number": len(found) + 1,
                    "brief": brief,
                    "index": index,
                    "prompt": prompt,
                    "location": location,
                }
            )
    return found


def storage_path(location: str) -> ObjectStoragePath:
    """A stored location (a URI, or a plain path for a local destination given plainly) as a path."""
    return ObjectStoragePath(location if "://" in location else Path(location).absolute().as_uri())


def chosen_numbers(publish_only: Any, known: list[int]) -> list[int]:
    """The numbers a reviewer entered ("2", "#2", "2, 5" on one line or one a line); none means all."""
    text = " ".join(str(item) for item in (publish_only or []))
    tokens = [token.lstrip("#") for token in re.split(r"[\s,;]+", text) if token]
    if not tokens:
        return known
    unknown = [token for token in tokens if not token.isdigit() or int(token) not in known]
    if unknown:
        raise AirflowFailException(
            f"publish_only names {unknown}, which the review did not list (it listed {known}): nothing "
            "was published. Clear the review task to answer again."
        )
    return sorted({int(token) for token in tokens})


if ApprovalOperator is not None:
    with DAG(
        "seedream_campaign_review",
        schedule=None,
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        params={
            "destination": DESTINATION,
            "briefs": Param(BRIEFS, type="array", items={"type": "string"}, minItems=1),
            "candidates": Param(3, type="integer", minimum=1, maximum=15),
        },
        tags=["seedream", "example"],
    ):

        @task
        def check_destination(params=None) -> None:
            """A local folder is a trap where tasks run on other hosts (Celery, Kubernetes): refuse it
            before anything is paid for (docs/deploying.md)."""
            require_shared_destination(params["destination"], how_to_set=HOW_TO_SET_DESTINATION)

        @task
        def build_prompts(params=None) -> list[str]:
            count = int(params["candidates"])
            takes = "one take" if count == 1 else f"a set of {count} alternative takes"
            return [
                f"{brief.strip()} Make {takes}, each with its own composition." for brief in params["briefs"]
            ]

        prompts = build_prompts()
        check_destination() >> prompts

        generate = SeedreamGenerateOperator.partial(
            task_id="generate",
            size="2560x1440",
            watermark=False,
            sequential_image_generation="auto",
            max_images="{{ params.candidates }}",
            cache="{{ params.destination.rstrip('/') }}/cache",
            map_index_template="{{ task.prompt[:40] }}",
        ).expand(prompt=prompts)

        store = SeedreamDownloadOperator.partial(
            task_id="store",
            destination="{{ params.destination }}",
            filename=f"{FOLDER}/{RUN_FOLDER}/{{map_index}}-{{index}}.{{ext}}",
            poke_interval=5,
            timeout=15 * 60,
        ).expand(urls=generate.output)

        @task
        def describe(prompt_list: list[str], stored, ti=None) -> str:
            """The review's body (Markdown): each image as a picture (the gallery's thumbnail, linking
            to the full image), with its number, location and pixel size, by prompt."""
            images = candidates(prompt_list, stored)
            manifests: dict[int, dict[str, dict[str, Any]]] = {}
            header = (
                f"**{len(images)} images** for {len(prompt_list)} briefs. **Approve** publishes every image "
                f"below to `{PUBLISHED}/`, or only those whose numbers you enter in *publish_only*, one "
                "per line. **Reject** publishes nothing."
            )
            lines = [header]
            for image in images:
                brief = image["brief"]
                if brief not in manifests:  # the store task's manifest, beside the brief's images
                    manifest = storage_path(image["location"]).parent / f"{brief}-manifest.json"
                    entries = json.loads(manifest.read_text())["images"]
                    manifests[brief] = {entry["location"]: entry for entry in entries}
                    lines += ["", f"### Brief {brief + 1}", "", f"> {' '.join(image['prompt'].split())}", ""]
                entry = manifests[brief].get(image["location"], {})
                pixels = (
                    f"{entry['width']} x {entry['height']} px"
                    if entry.get("width") and entry.get("height")
                    else "size unknown"
                )
                where = (ti.dag_id, ti.run_id, "store", brief, image["index"])
                picture = f"![#{image['number']}]({image_url('thumbnails', *where)})"
                lines.append(
                    f"- [{picture}]({image_url('images', *where)}) **#{image['number']}** "
                    f"`{image['location']}`: {pixels}"
                )
            return "\n".join(lines)

        review = ApprovalOperator(
            task_id="review",
            subject="Publish the campaign images of {{ (dag_run.logical_date or dag_run.run_after) | ds }}?",
            body=describe(prompts, store.output),
            params={
                "publish_only": Param(
                    [],
                    type="array",
                    items={"type": "string"},
                    title="Publish only",
                    description="Numbers of the images to publish, one per line. Empty: all of them.",
                ),
            },
            # An unanswered review is a rejection: nothing is published without a person's approval.
            defaults="Reject",
            response_timeout=REVIEW_TIMEOUT,
        )

        @task
        def publish(prompt_list: list[str], stored, response: dict[str, Any], params=None) -> list[str]:
            """Copy the approved images to published/ (runs on Approve only: Reject skips this task)."""
            images = candidates(prompt_list, stored)
            answer = response.get("params_input") or {}
            chosen = chosen_numbers(answer.get("publish_only"), [image["number"] for image in images])
            # The run's folder below the destination (campaign/<date>/<run id>), mirrored under published/.
            date, run = images[0]["location"].rsplit("/", 3)[-3:-1]
            folder = storage_path(params["destination"]) / PUBLISHED / FOLDER / date / run
            folder.mkdir(parents=True, exist_ok=True)
            published = []
            for image in images:
                if image["number"] in chosen:
                    source = storage_path(image["location"])
                    source.copy(folder / source.name)
                    published.append(folder / source.name)
            # The folder holds this approval only: an earlier one (the review was cleared and answered
            # again) does not linger.
            names = {path.name for path in published}
            for path in folder.iterdir():
                if path.name not in names:
                    path.unlink()
            who = (response.get("responded_by_user") or {}).get("name")
            print(f"Approved by {who}: published {len(published)} of {len(images)} images to {folder}")
            return [str(path) for path in published]

        publish(prompts, store.output, review.output)
