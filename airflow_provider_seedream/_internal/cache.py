"""The generation cache: the images of earlier generations, stored and found again by the request's
fingerprint, so an identical request is answered from storage instead of being paid for again.

Below the cache root (a local folder or any object store)::

    <fp[:2]>/<fp>/entry.json                   the entry: a copy of its current generation's record
    <fp[:2]>/<fp>/<generation>/entry.json      one generation's record, written after its images
    <fp[:2]>/<fp>/<generation>/<index>.<ext>   its images, in the API's order

Why this shape:

- Every generation writes into a folder of its own (a random name), so two tasks racing on one
  fingerprint never write the same file; whichever writes ``entry.json`` last wins, whole.
- A record is written after the images it lists, each write atomic by the store's rules
  (``storage.write_atomically``), so a half-written generation is never found.
- A hit is a record whose every image is present with its recorded size and sha256, read back in
  full: an entry that fails that is a miss (logged), and the next generation replaces it. A location
  handed on is therefore a generation folder's file, which nothing rewrites.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import posixpath
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from airflow_provider_seedream._internal.download import StoredImage
from airflow_provider_seedream._internal.storage import (
    as_storage_path,
    check_inside,
    commits_on_upload,
    join,
    storage_error,
    storage_target,
    write_atomically,
)
from airflow_provider_seedream.contract.exceptions import SeedreamDownloadError, SeedreamValidationError
from airflow_provider_seedream.contract.imageinfo import EXTENSIONS, FORMATS_BY_MEDIA_TYPE
from airflow_provider_seedream.contract.links import DEFAULT_MAX_IMAGE_BYTES
from airflow_provider_seedream.contract.request import put_at

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    from airflow_provider_seedream.contract.specs import ModelSpec

RECORD_NAME = "entry.json"
RECORD_READ_LIMIT = 1024 * 1024
"""A record lists at most 15 images and one prompt in a few KB; anything larger is not one of ours."""
FORMAT_VERSION = 1
"""Part of every fingerprint: a change to what a fingerprint covers starts a new cache."""
READ_CHUNK = 1024 * 1024
LINK_WAIT_SECONDS = 300.0
"""How long storing a new generation waits for links that do not answer yet (404): the API's links
normally answer at once, a CDN's within seconds."""
LINK_POLL_SECONDS = 2.0
_FINGERPRINT = re.compile(r"^[0-9a-f]{64}$")
_GENERATION = re.compile(r"^[0-9a-f]{32}$")
_IMAGE_FILE = re.compile(r"^[0-9]{1,2}\.[a-z0-9]{1,5}$")
_DATA_URI = re.compile(r"^data:[^,;]*;base64,", re.IGNORECASE)


def generation_fingerprint(
    endpoint: str, body: dict[str, Any], spec: ModelSpec, cache_key: Any = None
) -> str:
    """The sha256 of what decides a generation's images: the endpoint's URL and the body as sent, each
    inlined reference image standing for the sha256 of its bytes (a reference URL stands for itself),
    and ``cache_key``, when given, standing for the prompt.

    :raises SeedreamValidationError: ``cache_key`` is not JSON (str, number, bool, list or dict)."""
    content = json.loads(json.dumps(body))  # a copy, to replace parts in
    images = _at(content, spec.fields.get("images"))
    if isinstance(images, list):
        put_at(content, spec.fields["images"], [_reference_identity(item) for item in images])
    if cache_key is not None:
        put_at(content, spec.fields["prompt"], {"cache_key": cache_key})
    try:
        text = json.dumps(
            {"format": FORMAT_VERSION, "endpoint": endpoint, "body": content},
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
            allow_nan=False,
        )
    except (TypeError, ValueError) as err:
        raise SeedreamValidationError(
            f"cache_key={cache_key!r:.80}: must be a str, number, bool, or a list or dict of them ({err})"
        ) from None
    return hashlib.sha256(text.encode()).hexdigest()


def _reference_identity(item: Any) -> Any:
    if isinstance(item, str) and _DATA_URI.match(item):
        data = base64.b64decode(item.partition(",")[2])
        return f"sha256:{hashlib.sha256(data).hexdigest()}"
    return item


def _at(body: dict[str, Any], path: tuple[str, ...] | None) -> Any:
    value: Any = body
    for key in path or ("",):
        value = value.get(key) if isinstance(value, dict) else None
    return value


@dataclass(frozen=True)
class CachedGeneration:
    """A verified entry: the durable locations of its images, in order, and its record."""

    locations: list[str]
    record: dict[str, Any]

    def describe(self) -> str:
        """When and by what the images were generated, for the log line of a reuse."""
        origin = self.record.get("generated_by") or {}
        task = origin.get("task_id")
        if task and isinstance(origin.get("map_index"), int) and origin["map_index"] >= 0:
            task = f"{task}[{origin['map_index']}]"
        by = (
            f"dag {origin.get('dag_id')}, run {origin.get('run_id')}, task {task}"
            if task
            else "a call outside an Airflow task"
        )
        return f"generated at {self.record.get('generated_at', '?')} by {by}"


class GenerationCache:
    """One cache root: finding verified entries, and writing a generation's images and record."""

    def __init__(self, root: str | os.PathLike[str] | ObjectStoragePath) -> None:
        if root is None or (isinstance(root, str) and not root.strip()):
            raise SeedreamValidationError(
                f"cache={root!r}: give a folder, a storage URI (s3://bucket/prefix) or an ObjectStoragePath"
            )
        self.root = root
        self._root_path = as_storage_path(root)

    def __str__(self) -> str:
        return str(self.root)

    def entry_name(self, fingerprint: str) -> str:
        return f"{fingerprint[:2]}/{fingerprint}"

    def lookup(self, fingerprint: str, log: Any) -> CachedGeneration | None:
        """The entry for ``fingerprint`` when it is complete and every image checks; else ``None``
        (with a warning when there was an entry that did not check).

        :raises SeedreamDownloadError: the cache could not be read (not a missing or broken entry)."""
        entry = self.entry_name(fingerprint)
        record = read_record(join(self.root, f"{entry}/{RECORD_NAME}"), log)
        if record is None:
            return None
        if record.get("fingerprint") != fingerprint or not _GENERATION.match(str(record.get("generation"))):
            log.warning(
                "Ignoring the cache entry %s/%s: it is not this request's; it will be replaced", self, entry
            )
            return None
        folder = join(self.root, f"{entry}/{record['generation']}")
        locations = []
        for image in record["images"]:
            target, location = storage_target(join(folder, image["file"]), "")
            problem = file_problem(target, image, location)
            if problem is not None:
                log.warning("Ignoring the cache entry %s/%s: %s; it will be replaced", self, entry, problem)
                return None
            locations.append(location)
        return CachedGeneration(locations, record)

    def generation_folder(self, fingerprint: str) -> tuple[str, str]:
        """A new generation's name and folder (below the root) for ``fingerprint``'s images."""
        generation = uuid.uuid4().hex
        return generation, f"{self.entry_name(fingerprint)}/{generation}"

    def write_record(self, fingerprint: str, generation: str, record: dict[str, Any]) -> None:
        """The generation's record, then the entry's: only now can the generation be found."""
        data = [json.dumps(record, indent=2).encode()]
        entry = self.entry_name(fingerprint)
        for name in (f"{entry}/{generation}/{RECORD_NAME}", f"{entry}/{RECORD_NAME}"):
            write_atomically(as_storage_path(join(self.root, name)), data, self._root_path)


def new_record(
    fingerprint: str,
    generation: str,
    *,
    model: str,
    endpoint: str,
    prompt: str,
    cache_key: Any,
    images: list[dict[str, Any]],
    usage: dict[str, Any] | None,
    generated_by: dict[str, Any] | None,
) -> dict[str, Any]:
    """A generation's record: what was asked, what came back (per image: file, sha256, bytes, type,
    pixel size, link without its signature), when, by which task, and what it cost."""
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
        "images": images,
    }


def read_record(location: Any, log: Any) -> dict[str, Any] | None:
    """The record at ``location`` if it is one of ours (bounded, well formed); ``None`` when missing
    or broken (a broken one is logged).

    :raises SeedreamDownloadError: the store could not be read."""
    path = as_storage_path(location)
    try:
        with path.open("rb") as handle:
            raw = handle.read(RECORD_READ_LIMIT + 1)
        record = json.loads(raw) if len(raw) <= RECORD_READ_LIMIT else None
    except FileNotFoundError:
        return None
    except (OSError, ValueError, RecursionError) as err:
        log.warning("Ignoring the unreadable cache record %s (%s): it will be replaced", location, err)
        return None
    except Exception as err:  # an object store's client error that fsspec did not translate
        raise storage_error(err, location, "read") from None
    if not _is_record(record):
        log.warning(
            "Ignoring the cache record %s: it is not a complete record; it will be replaced", location
        )
        return None
    return record


def _is_record(record: Any) -> bool:
    if not isinstance(record, dict) or record.get("format") != FORMAT_VERSION:
        return False
    if not _FINGERPRINT.match(str(record.get("fingerprint"))):
        return False
    images = record.get("images")
    if not isinstance(images, list) or not images:
        return False
    for index, image in enumerate(images):
        if (
            not isinstance(image, dict)
            or image.get("index") != index
            or not _IMAGE_FILE.match(str(image.get("file")))
            or not _FINGERPRINT.match(str(image.get("sha256")))
            or type(image.get("bytes")) is not int
            or not 0 < image["bytes"] <= DEFAULT_MAX_IMAGE_BYTES
        ):
            return False
    return True


def file_problem(path: ObjectStoragePath, image: dict[str, Any], where: str) -> str | None:
    """Why the file at ``path`` is not the recorded image (missing, another size, other bytes), or
    ``None``. It is read in full, at most one byte past the recorded size."""
    try:
        for _ in verified_chunks(path, image, where):
            pass
    except SeedreamDownloadError as err:
        return str(err)
    return None


def verified_chunks(path: ObjectStoragePath, image: dict[str, Any], where: str) -> Iterator[bytes]:
    """The file's bytes in chunks; raises before handing on its last chunk unless it has the recorded
    size and sha256, so a write fed from it (``storage.write_atomically``) then leaves nothing behind.
    ``where`` names the file in messages."""
    expected, digest, size = image["bytes"], hashlib.sha256(), 0
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(min(READ_CHUNK, expected + 1 - size)):
                size += len(chunk)
                digest.update(chunk)
                if size > expected or (size == expected and handle.read(1)):
                    raise SeedreamDownloadError(
                        f"{where} is larger than the recorded {expected:,} bytes", retryable=False
                    )
                if size == expected and digest.hexdigest() != image["sha256"]:
                    raise SeedreamDownloadError(
                        f"{where} does not have the recorded sha256: its bytes changed", retryable=False
                    )
                yield chunk
    except FileNotFoundError:
        raise SeedreamDownloadError(f"{where} is missing", retryable=False) from None
    except SeedreamDownloadError:
        raise
    except Exception as err:
        raise storage_error(err, where, "read") from None
    if size != expected:
        raise SeedreamDownloadError(
            f"{where} has {size:,} bytes, not the recorded {expected:,}", retryable=False
        )


def record_of_location(location: str, log: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """A stored location's generation record and its image's entry in it.

    :raises SeedreamDownloadError: the location is not an image of a cache generation."""
    path = as_storage_path(location)
    record = read_record(path.parent / RECORD_NAME, log)
    name = posixpath.basename(path.path)
    image = next((item for item in (record or {}).get("images", []) if item.get("file") == name), None)
    if record is None or image is None:
        raise SeedreamDownloadError(
            f"{location} is not an image of a Seedream generation cache (no record of it in "
            f"{RECORD_NAME} beside it): urls takes the API's links or the locations a generate task with "
            "cache returned",
            retryable=False,
        )
    return record, image


def copy_cached_image(
    location: str,
    path: str,
    *,
    destination: str | os.PathLike[str] | ObjectStoragePath,
    max_bytes: int | None,
    log: Any,
) -> tuple[StoredImage, ObjectStoragePath]:
    """Copy the cached image at ``location`` to ``path`` below ``destination`` (``{ext}`` from its
    recorded type), atomically; the stored image, carrying its generation's facts, and its final path.

    Between objects of one S3 connection the copy is server-side (CopyObject, which S3 commits whole)
    and its size is checked; otherwise the bytes are streamed, and checked against the record's size
    and sha256 before the copy appears."""
    record, image = record_of_location(location, log)
    if max_bytes is not None and image["bytes"] > max_bytes:
        raise SeedreamDownloadError(
            f"{location} is {image['bytes']:,} bytes, over max_bytes={max_bytes:,}", retryable=False
        )
    media_type = str(image.get("content_type"))
    extension = EXTENSIONS.get(FORMATS_BY_MEDIA_TYPE.get(media_type, ""))
    if extension is None:
        raise SeedreamDownloadError(f"{location}: its record names no known image type", retryable=False)
    source = as_storage_path(location)
    root = as_storage_path(destination)
    target, stored_location = storage_target(join(destination, path), extension)
    if _same_s3_connection(source, target):
        check_inside(target, root)
        try:
            target.fs.copy(source.path, target.path)
            copied = target.fs.info(target.path)["size"]
        except Exception as err:
            raise storage_error(err, target, "copy to") from None
        if copied != image["bytes"]:
            raise SeedreamDownloadError(
                f"The copy of {location} at {stored_location} has {copied:,} bytes, not the recorded "
                f"{image['bytes']:,}",
                retryable=True,
            )
    else:
        write_atomically(target, verified_chunks(source, image, location), root)
    stored = StoredImage(
        source=location,
        location=stored_location,
        sha256=image["sha256"],
        bytes=image["bytes"],
        content_type=media_type,
        width=image.get("width"),
        height=image.get("height"),
        stored_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        generation=generation_facts(record),
    )
    return stored, target


def generation_facts(record: dict[str, Any]) -> dict[str, Any]:
    """What a manifest keeps of an image's generation: model, prompt, when and by which task, and the
    price per image it was estimated at (each image of a generation is billed alike)."""
    usage = record.get("usage") or {}
    return {
        "model": record.get("model"),
        "prompt": record.get("prompt"),
        "generated_at": record.get("generated_at"),
        "generated_by": record.get("generated_by"),
        "estimated_cost_usd": usage.get("price_per_image_usd"),
        "price_source": usage.get("price_source"),
    }


def _same_s3_connection(source: ObjectStoragePath, target: ObjectStoragePath) -> bool:
    return (
        commits_on_upload(source)
        and source.protocol == target.protocol
        and source.storage_options == target.storage_options
    )
