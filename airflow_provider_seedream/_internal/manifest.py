"""The download's manifest beside the images: per image, the link without its signature (or the cached
location it was copied from), sha256, bytes, content type, pixel size, location, time, and for a copy
its generation's facts. It is read as input, not trust: an entry counts only if
it proves that an image of these very links is stored where this index is written."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

from airflow_provider_seedream._internal.storage import (
    as_storage_path,
    join,
    storage_error,
    storage_target,
    write_atomically,
)
from airflow_provider_seedream.contract.imageinfo import EXTENSIONS, FORMATS_BY_MEDIA_TYPE
from airflow_provider_seedream.contract.redact import link_identity
from airflow_provider_seedream.contract.response import is_api_link

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import ObjectStoragePath

MANIFEST_READ_LIMIT = 1024 * 1024
"""A manifest lists at most 15 images in a few KB; anything larger is not one of ours."""


def stored_entries(
    destination: str | os.PathLike[str] | ObjectStoragePath,
    manifest_name: str,
    names: list[str],
    urls: list[str],
    log: Any,
) -> dict[int, dict[str, Any]]:
    """Index -> manifest entry, for every image the manifest proves is stored: the entry names the same
    link, the location this index is written to, and a file of the recorded size. Anything else is
    fetched again, and an unreadable manifest is rebuilt.

    :raises SeedreamDownloadError: the store could not be read (not a missing or broken manifest)."""
    entries = read_manifest(join(destination, manifest_name), log)
    if entries is None:
        return {}
    stored: dict[int, dict[str, Any]] = {}
    for entry in entries:
        index = entry.get("index") if isinstance(entry, dict) else None
        if (
            isinstance(index, int)
            and not isinstance(index, bool)
            and 0 <= index < len(urls)
            and entry.get("source")
            == (link_identity(urls[index]) if is_api_link(urls[index]) else urls[index])
            and _is_stored_file(entry, join(destination, names[index]))
        ):
            stored[index] = entry
    return stored


def read_manifest(location: Any, log: Any) -> list[Any] | None:
    """The image entries of the manifest at ``location`` (bounded); ``None`` when there is none, or
    it is unreadable or lists no images (logged: it will be rebuilt).

    :raises SeedreamDownloadError: the store could not be read."""
    manifest = as_storage_path(location)
    try:
        with manifest.open("rb") as handle:
            raw = handle.read(MANIFEST_READ_LIMIT + 1)
        entries = json.loads(raw)["images"] if len(raw) <= MANIFEST_READ_LIMIT else None
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as err:
        log.warning("Ignoring the unreadable manifest %s (%s): it will be rebuilt", manifest, err)
        return None
    except Exception as err:  # an object store's client error that fsspec did not translate
        raise storage_error(err, manifest, "read") from None
    if not isinstance(entries, list):
        log.warning("Ignoring the manifest %s: it lists no images; it will be rebuilt", manifest)
        return None
    return entries


def write_manifest(
    destination: str | os.PathLike[str] | ObjectStoragePath, manifest_name: str, stored: dict[int, Any]
) -> None:
    """Write the entries of ``stored`` (index -> entry), in index order, as the store commits whole."""
    document = {"images": [stored[index] for index in sorted(stored)]}
    write_atomically(
        as_storage_path(join(destination, manifest_name)),
        [json.dumps(document, indent=2).encode()],
        as_storage_path(destination),
    )


def _is_stored_file(entry: dict[str, Any], target: Any) -> bool:
    """The entry's location is where this index is written (for its content type), and a file of the
    recorded size is there."""
    content_type, size, location = entry.get("content_type"), entry.get("bytes"), entry.get("location")
    if (
        content_type not in FORMATS_BY_MEDIA_TYPE
        or not isinstance(size, int)
        or not isinstance(location, str)
    ):
        return False
    path, expected = storage_target(target, EXTENSIONS[FORMATS_BY_MEDIA_TYPE[content_type]])
    try:
        return location == expected and path.is_file() and path.stat().st_size == size
    except (OSError, ValueError):
        return False


def stored_summary(entries: list[dict[str, Any]], run_id: str, manifest: str) -> dict[str, Any]:
    """What a download's asset events carry (their ``extra``): the stored locations in order, what
    each was stored from (a cache location, which a later download can copy, or a link without its
    signature), the manifest, how many images, their models, and what they cost. An image a cache
    gave from an earlier run counts as reused; one generated by this run, or fetched from a link
    (which records no generation, so no price), as generated: the estimate is then unknown
    (``None``)."""
    facts = [entry.get("generation") or {} for entry in entries]
    this_run = [(fact.get("generated_by") or {}).get("run_id", run_id) == run_id for fact in facts]

    def cost(selected: list[bool]) -> float | None:
        prices = [
            fact.get("estimated_cost_usd") for fact, chosen in zip(facts, selected, strict=True) if chosen
        ]
        known = [price for price in prices if isinstance(price, (int, float))]
        return round(sum(known), 6) if len(known) == len(prices) else None

    return {
        "locations": [entry["location"] for entry in entries],
        "sources": [entry["source"] for entry in entries],
        "manifest": manifest,
        "images": len(entries),
        "models": sorted({fact["model"] for fact in facts if fact.get("model")}),
        "usage": {
            "images_generated": sum(this_run),
            "images_reused": len(entries) - sum(this_run),
            "estimated_cost_usd": cost(this_run),
            "estimated_saving_usd": cost([not chosen for chosen in this_run]),
        },
    }
