"""A cache generation's record: what was asked, what came back (each image a ``StoredImage``, less the
location its reader knows), when, by which task, and what it cost; written after its images, and read
as a task's input, not as trust."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from airflow_provider_seedream._internal.cache.fingerprint import FORMAT_VERSION
from airflow_provider_seedream._internal.roots import Place, Root
from airflow_provider_seedream.contract.exceptions import SeedreamDownloadError
from airflow_provider_seedream.contract.links import DEFAULT_MAX_IMAGE_BYTES
from airflow_provider_seedream.contract.records import StoredImage, parse_image

if TYPE_CHECKING:
    import os

    from airflow.providers.common.compat.sdk import ObjectStoragePath

RECORD_NAME = "entry.json"
RECORD_READ_LIMIT = 1024 * 1024
"""A record lists at most 15 images and one prompt in a few KB; anything larger is not one of ours."""
FINGERPRINT = re.compile(r"^[0-9a-f]{64}$")
GENERATION = re.compile(r"^[0-9a-f]{32}$")
IMAGE_FILE = re.compile(r"^[0-9]{1,2}\.[a-z0-9]{1,5}$")
_IMAGE_FIELDS = {"source", "sha256", "bytes", "content_type", "width", "height"}
"""What a record keeps of each ``StoredImage``: its location is the record's folder and ``file``."""


def new_record(
    fingerprint: str,
    generation: str,
    *,
    model: str,
    endpoint: str,
    prompt: str,
    cache_key: Any,
    images: list[StoredImage],
    usage: dict[str, Any] | None,
    generated_by: dict[str, Any] | None,
) -> dict[str, Any]:
    """A generation's record, for its images in the API's order."""
    return {
        "format": FORMAT_VERSION,
        "fingerprint": fingerprint,
        "generation": generation,
        "model": model,
        "endpoint": endpoint,
        "prompt": prompt,
        "cache_key": cache_key,
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "generated_by": generated_by,
        "usage": usage,
        "images": [
            {
                "index": index,
                "file": image.location.rsplit("/", 1)[-1],
                **image.model_dump(include=_IMAGE_FIELDS),
            }
            for index, image in enumerate(images)
        ],
    }


def read_record(place: Place, log: Any) -> dict[str, Any] | None:
    """The record at ``place`` if it is one of ours (bounded, well formed); ``None`` when missing or
    broken (a broken one is logged).

    :raises SeedreamDownloadError: the store could not be read."""
    then = "it will be replaced"
    record = place.read_json(RECORD_READ_LIMIT, log, "cache record", then)
    if record is None:
        return None
    if not _is_record(record):
        log.warning("Ignoring the cache record %s: it is not a complete record; %s", place, then)
        return None
    return record  # type: ignore[no-any-return]


def _is_record(record: Any) -> bool:
    if not isinstance(record, dict) or record.get("format") != FORMAT_VERSION:
        return False
    if not FINGERPRINT.match(str(record.get("fingerprint"))):
        return False
    images = record.get("images")
    if not isinstance(images, list) or not images:
        return False
    return all(
        isinstance(image, dict)
        and image.get("index") == index
        and IMAGE_FILE.match(str(image.get("file")))
        and _image_of(image, "") is not None
        for index, image in enumerate(images)
    )


def _image_of(entry: dict[str, Any], location: str) -> StoredImage | None:
    image = parse_image({**entry, "location": location})
    return image if image is not None and image.bytes <= DEFAULT_MAX_IMAGE_BYTES else None


def record_images(record: dict[str, Any], beside: Place) -> list[tuple[Place, StoredImage]]:
    """A checked record's images, each at its place in the folder of ``beside`` (its generation's)."""
    places = [beside.sibling(entry["file"]) for entry in record["images"]]
    images = [_image_of(entry, place.location) for entry, place in zip(record["images"], places, strict=True)]
    return [(place, image) for place, image in zip(places, images, strict=True) if image is not None]


def cached_image(
    location: str, cache: str | os.PathLike[str] | ObjectStoragePath | None, log: Any
) -> tuple[Place, StoredImage, dict[str, Any]]:
    """The place, the image and the generation record of a cached location: one below the ``cache``
    root in its layout (``<fp[:2]>/<fp>/<generation>/<index>.<ext>``), or, without ``cache``, below
    the root that layout gives it; never a location outside it (a link out of it included).

    :raises SeedreamDownloadError: the location is no image of a cache generation."""
    refusal = SeedreamDownloadError(
        f"{location} is not an image of a Seedream generation cache"
        + (f" below {cache}" if cache is not None else "")
        + f" (no record of it in {RECORD_NAME} beside it): urls takes the API's links or the locations "
        "a generate task with cache returned",
        retryable=False,
    )
    try:
        root = Root.of(cache if cache is not None else location.rsplit("/", 4)[0])
    except ValueError:
        raise refusal from None
    place = root.place(location)
    if place is None or not _in_layout(place.parts):
        raise refusal
    found = image_in_record(place, log)
    if found is None:
        raise refusal
    record, image = found
    if (record["fingerprint"], record["generation"]) != place.parts[1:3]:
        raise refusal
    return place, image, record


def image_in_record(
    place: Place, log: Any, read: dict[str, Any] | None = None
) -> tuple[dict[str, Any], StoredImage] | None:
    """The record beside the image at ``place`` and the image's entry in it, or ``None``; ``read``
    keeps the records read so far, by location, for the next image of the same generation.

    :raises SeedreamDownloadError: the store could not be read."""
    record_place = place.sibling(RECORD_NAME)
    if read is not None and record_place.location in read:
        record = read[record_place.location]
    else:
        record = read_record(record_place, log)
        if read is not None:
            read[record_place.location] = record
    if record is None:
        return None
    found = (image for image_place, image in record_images(record, place) if image_place.name == place.name)
    image = next(found, None)
    return None if image is None else (record, image)


def _in_layout(parts: tuple[str, ...]) -> bool:
    return (
        len(parts) == 4
        and FINGERPRINT.match(parts[1]) is not None
        and parts[0] == parts[1][:2]
        and GENERATION.match(parts[2]) is not None
        and IMAGE_FILE.match(parts[3]) is not None
    )
