"""What the UI's gallery shows of a task instance: the images its XCom says it stored, each proven by
its record (a download's manifest, or a cache generation's record), read back bounded and checked,
and their thumbnails (Pillow; bounded in pixels; kept in a small in-memory cache).

Nothing here takes a path or URI from a request: a task instance's XCom names its images, and only an
image that its record lists, at the recorded location, is ever read.
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from airflow_provider_seedream._internal.cache import record_of_location, verified_chunks
from airflow_provider_seedream._internal.manifest import read_manifest
from airflow_provider_seedream._internal.storage import as_storage_path
from airflow_provider_seedream.contract.exceptions import SeedreamDownloadError
from airflow_provider_seedream.contract.imageinfo import MEDIA_TYPES
from airflow_provider_seedream.contract.response import is_api_link

THUMBNAIL_SIDE = 320
MAX_THUMBNAIL_PIXELS = 4096 * 4096
"""The largest image Seedream makes: a thumbnail of anything larger is refused, which bounds the
decoding's memory and time."""
THUMBNAILS_KEPT = 512
"""Thumbnails kept in memory, by the image's sha256 (about 20 KB each)."""


@dataclass(frozen=True)
class GalleryImage:
    """One stored image as its record describes it."""

    index: int
    location: str
    sha256: str
    bytes: int
    content_type: str
    width: int | None
    height: int | None
    prompt: str | None
    model: str | None
    estimated_cost_usd: float | None

    def record(self) -> dict[str, Any]:
        return {"sha256": self.sha256, "bytes": self.bytes}


def task_images(returned: Any, manifest: Any, log: Any) -> list[GalleryImage]:
    """The images a task instance stored, in order: a download's (``returned`` its locations, every one
    listed by its ``manifest``), or a generate task's with ``cache`` (each location listed by the cache
    record beside it). Links (a generate task without cache) show nothing: they expire."""
    locations = [item for item in returned if isinstance(item, str)] if isinstance(returned, list) else []
    if not locations or any(is_api_link(location) for location in locations):
        return []
    if isinstance(manifest, str):
        entries = {
            entry.get("location"): entry
            for entry in read_manifest(manifest, log) or []
            if isinstance(entry, dict)
        }
        return [
            _image(index, location, entries[location], entries[location].get("generation") or {})
            for index, location in enumerate(locations)
            if _is_entry(entries.get(location))
        ]
    images = []
    for index, location in enumerate(locations):
        try:
            record, entry = record_of_location(location, log)
        except SeedreamDownloadError:
            continue
        facts = {**record, "estimated_cost_usd": (record.get("usage") or {}).get("price_per_image_usd")}
        images.append(_image(index, location, {**entry, "location": location}, facts))
    return images


def _is_entry(entry: Any) -> bool:
    return (
        isinstance(entry, dict)
        and isinstance(entry.get("sha256"), str)
        and type(entry.get("bytes")) is int
        and entry.get("content_type") in MEDIA_TYPES.values()
    )


def _image(index: int, location: str, entry: dict[str, Any], facts: dict[str, Any]) -> GalleryImage:
    return GalleryImage(
        index=index,
        location=location,
        sha256=entry["sha256"],
        bytes=entry["bytes"],
        content_type=entry["content_type"],
        width=entry.get("width"),
        height=entry.get("height"),
        prompt=facts.get("prompt"),
        model=facts.get("model"),
        estimated_cost_usd=facts.get("estimated_cost_usd"),
    )


def image_chunks(image: GalleryImage) -> Iterator[bytes]:
    """The stored bytes, checked against the record: a changed file breaks off before its end, so
    nobody is shown a wrong image whole."""
    return verified_chunks(as_storage_path(image.location), image.record(), image.location)


class Thumbnails:
    """Thumbnails made with Pillow, at most ``THUMBNAIL_SIDE`` pixels a side, kept by sha256."""

    def __init__(self, kept: int = THUMBNAILS_KEPT) -> None:
        self._kept = kept
        self._made: OrderedDict[str, tuple[bytes, str]] = OrderedDict()
        self._lock = threading.Lock()

    def of(self, image: GalleryImage) -> tuple[bytes, str]:
        """The thumbnail's bytes and media type (JPEG for photographs, PNG for images with
        transparency)."""
        with self._lock:
            if image.sha256 in self._made:
                self._made.move_to_end(image.sha256)
                return self._made[image.sha256]
        made = _thumbnail(b"".join(image_chunks(image)), image.location)
        with self._lock:
            self._made[image.sha256] = made
            while len(self._made) > self._kept:
                self._made.popitem(last=False)
        return made


def _thumbnail(data: bytes, where: str) -> tuple[bytes, str]:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as picture:
            if picture.width * picture.height > MAX_THUMBNAIL_PIXELS:
                raise SeedreamDownloadError(
                    f"{where} is {picture.width}x{picture.height}: too large for a thumbnail", retryable=False
                )
            picture.draft("RGB", (THUMBNAIL_SIDE, THUMBNAIL_SIDE))  # JPEG decodes at a fraction of its size
            picture.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
            transparent = picture.mode in ("RGBA", "LA", "PA") or "transparency" in picture.info
            out = io.BytesIO()
            if transparent:
                picture.save(out, "PNG", optimize=True)
                return out.getvalue(), "image/png"
            picture.convert("RGB").save(out, "JPEG", quality=85)
            return out.getvalue(), "image/jpeg"
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise SeedreamDownloadError(
            f"{where} could not be decoded for a thumbnail: {err}", retryable=False
        ) from None
