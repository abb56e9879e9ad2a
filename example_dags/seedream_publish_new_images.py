"""
Publish the marketing refresh's new images as soon as they are stored: a DAG scheduled on the asset
that ``seedream_marketing_refresh``'s ``store`` tasks update (data-aware scheduling, the Airflow way to
chain "images stored" -> "publish").

    asset seedream://examples/marketing-refresh/images -> publish

- Each ``store`` instance of a marketing run (one per product) emits an event of ``MARKETING_IMAGES``
  whose ``extra`` says what it stored: ``locations``, ``sources`` (for a cached generation, the
  cache's image it copied), ``manifest``, ``images``, ``models`` and ``usage``. The scheduler starts
  this DAG when events arrive, so one run may see some products of a refresh and the next run the
  rest; runs go one at a time (``max_active_runs=1``).
- ``publish`` copies each product's newest image into ``params.live`` (default
  ``$SEEDREAM_ASSETS/live``) as ``marketing/<name>``, the name the refresh stored it under (its row in
  the catalog), with ``SeedreamHook.copy_stored_image``: checked against the cache's record, and
  appearing whole or not at all. ``marketing/published.json`` records what each name was published
  from: an image already published from the same cached source is not copied again, so a refresh
  that reused every image publishes nothing.
- **Only from the marketing cache.** Asset events are input, not trust: a task of any DAG with the
  asset as an outlet, and any REST user allowed to create asset events, can write one. So a source is
  copied only from ``params.cache``, the marketing refresh's cache (default ``$SEEDREAM_ASSETS/cache``,
  its cache under its default destination; ``SEEDREAM_MARKETING_CACHE`` names another): any other
  source is refused by name, and once the rest is published the task fails, so that it shows.
- A run started by hand, without asset events (the UI's Trigger button), has nothing to publish: the
  task says so and is skipped, and the run stays green.

Both DAGs name the asset by the same URI: it is the contract between them. On Airflow 2.11 it is a
Dataset, and the events are ``triggering_dataset_events``.
"""

from __future__ import annotations

import json
import logging
import os

import pendulum
from airflow.providers.common.compat.sdk import (
    DAG,
    AirflowFailException,
    AirflowSkipException,
    Asset,
    ObjectStoragePath,
    task,
)

from airflow_provider_seedream.utils.destinations import require_shared_destination

log = logging.getLogger("airflow.task")
MARKETING_IMAGES = Asset("seedream://examples/marketing-refresh/images")
ASSETS = os.environ.get("SEEDREAM_ASSETS", "file:///tmp/seedream-assets").rstrip("/")
MARKETING_CACHE = os.environ.get("SEEDREAM_MARKETING_CACHE", f"{ASSETS}/cache")
"""The only cache this DAG publishes from: the marketing refresh's."""
RECORD_LIMIT = 1024 * 1024

with DAG(
    "seedream_publish_new_images",
    schedule=[MARKETING_IMAGES],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,  # one run at a time reads and writes published.json
    params={"live": f"{ASSETS}/live", "cache": MARKETING_CACHE},
    tags=["seedream", "example"],
):

    @task
    def publish(params=None, triggering_asset_events=None, triggering_dataset_events=None) -> dict:
        """Copy what is new since the last publication; return the names published and left as they were."""
        from airflow_provider_seedream.contract.exceptions import SeedreamDownloadError
        from airflow_provider_seedream.hooks.seedream import SeedreamHook  # at run time, not at each parse

        events = triggering_asset_events if triggering_asset_events is not None else triggering_dataset_events
        received = [event for asset_events in (events or {}).values() for event in asset_events]
        if not received:
            raise AirflowSkipException(
                "This run was started without asset events (by hand, say): nothing to publish. The "
                f"scheduler starts this DAG when {MARKETING_IMAGES.uri} is updated."
            )
        require_shared_destination(params["live"], how_to_set="Set SEEDREAM_ASSETS, or the param 'live'.")
        newest: dict[str, str] = {}  # stored name -> the cached image it was copied from
        for event in sorted(received, key=lambda event: event.timestamp):  # in no set order: newest wins
            locations, sources = (event.extra or {}).get("locations"), (event.extra or {}).get("sources")
            if not all(isinstance(names, list) for names in (locations, sources)) or len(locations) != len(
                sources
            ):
                raise AirflowFailException(
                    f"An event of {MARKETING_IMAGES.uri} lists no stored images: {event}"
                )
            for location, source in zip(locations, sources, strict=True):
                newest[str(location).rsplit("/", 1)[-1]] = str(source)
        folder = ObjectStoragePath(params["live"]) / "marketing"
        record = folder / "published.json"
        published = json.loads(record.open("rb").read(RECORD_LIMIT)) if record.exists() else {}
        hook, copied, refused = SeedreamHook(), [], []
        for name, source in sorted(newest.items()):
            if published.get(name, {}).get("source") == source and (folder / name).exists():
                continue
            try:
                image = hook.copy_stored_image(
                    source, f"marketing/{name}", destination=params["live"], cache=params["cache"]
                )
            except SeedreamDownloadError as err:  # not the marketing cache's image, or no longer intact
                log.error("Not publishing %s: %s", name, err)
                refused.append(name)
                continue
            published[name] = {"source": source, "sha256": image.sha256, "published_at": image.stored_at}
            copied.append(name)
        if copied:  # the record appears whole: written beside, then moved
            partial = folder / ".published.json.partial"
            partial.write_text(json.dumps(published, indent=2))
            partial.rename(record)
        unchanged = sorted(set(newest) - set(copied) - set(refused))
        log.info(
            "Published %d new image(s) %s; %d unchanged %s", len(copied), copied, len(unchanged), unchanged
        )
        if refused:  # after the rest is published: a forged or damaged source shows as a failed run
            raise AirflowFailException(f"Refused to publish {refused}: see the errors above")
        return {"published": copied, "unchanged": unchanged}

    publish()
