"""Finding, storing and copying cache generations: what ``SeedreamHook.generate(cache=...)`` and the
operators do with a cache root. Images are fetched through the hook's download, handed in."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from airflow_provider_seedream._internal import metrics
from airflow_provider_seedream._internal.cache.fingerprint import generation_fingerprint
from airflow_provider_seedream._internal.cache.records import (
    GENERATION,
    RECORD_NAME,
    cached_image,
    new_record,
    read_record,
    record_images,
)
from airflow_provider_seedream._internal.roots import Root
from airflow_provider_seedream._internal.storage import (
    as_storage_path,
    check_inside,
    commits_on_upload,
    join,
    storage_error,
    storage_target,
    write_atomically,
)
from airflow_provider_seedream._internal.task_context import running_task
from airflow_provider_seedream.contract.exceptions import (
    SeedreamCacheStoreError,
    SeedreamDownloadError,
    SeedreamLinkNotReadyError,
    SeedreamValidationError,
)
from airflow_provider_seedream.contract.imageinfo import EXTENSIONS, FORMATS_BY_MEDIA_TYPE
from airflow_provider_seedream.contract.records import GenerationFacts, StoredImage

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    from airflow_provider_seedream.contract.request import PreparedGeneration
    from airflow_provider_seedream.contract.usage import Usage

LINK_WAIT_SECONDS = 300.0
"""How long storing a new generation waits for links that do not answer yet (404): the API's links
normally answer at once, a CDN's within seconds."""
LINK_POLL_SECONDS = 2.0


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
    """One cache root, for the generations of one API (``base_url``): finding verified entries, and
    storing a new generation's images (fetched with ``download``, the hook's) and its record."""

    def __init__(
        self,
        root: str | os.PathLike[str] | ObjectStoragePath,
        *,
        base_url: str,
        download: Callable[..., StoredImage],
        log: Any,
    ) -> None:
        if root is None or (isinstance(root, str) and not root.strip()):
            raise SeedreamValidationError(
                f"cache={root!r}: give a folder, a storage URI (s3://bucket/prefix) or an ObjectStoragePath"
            )
        try:
            self._root = Root.of(root)
        except ValueError as err:
            raise SeedreamValidationError(f"cache={root!r}: {err}") from None
        self.root = root
        self._base_url, self._download, self._log = base_url, download, log

    def __str__(self) -> str:
        return str(self.root)

    def fingerprint(self, prepared: PreparedGeneration, cache_key: Any) -> str:
        spec = prepared.request.spec
        return generation_fingerprint(f"{self._base_url}{spec.path}", prepared.body, spec, cache_key)

    def find(self, prepared: PreparedGeneration, cache_key: Any = None) -> CachedGeneration | None:
        """The verified entry for this request, or ``None``. Every image of an entry is read back and
        checked against its recorded size and sha256; an entry that fails is logged, and is a miss.

        :raises SeedreamDownloadError: the cache could not be read (not a missing or broken entry)."""
        fingerprint = self.fingerprint(prepared, cache_key)
        entry = f"{fingerprint[:2]}/{fingerprint}"
        try:
            found = self._lookup(fingerprint, entry)
        except SeedreamDownloadError as err:
            raise SeedreamDownloadError(
                f"Could not read the cache {self}: {err}", retryable=err.retryable
            ) from None
        if found is None:
            self._log.info("No generation of this request in the cache (%s/%s): generating.", self, entry)
            return None
        metrics.count(metrics.IMAGES_REUSED, len(found.locations), model=prepared.request.model)
        self._log.info(
            "Reusing %d image(s) from the cache (%s/%s), %s: nothing was sent.",
            len(found.locations),
            self,
            entry,
            found.describe(),
        )
        return found

    def _lookup(self, fingerprint: str, entry: str) -> CachedGeneration | None:
        record = read_record(self._root.at(entry, RECORD_NAME), self._log)
        if record is None:
            return None
        if record["fingerprint"] != fingerprint or not GENERATION.match(str(record.get("generation"))):
            self._log.warning(
                "Ignoring the cache entry %s/%s: it is not this request's; it will be replaced", self, entry
            )
            return None
        images = record_images(record, self._root.at(entry, record["generation"], RECORD_NAME))
        for place, image in images:
            try:
                for _ in place.verified_chunks(image):
                    pass
            except SeedreamDownloadError as err:
                if err.retryable:
                    raise
                self._log.warning("Ignoring the cache entry %s/%s: %s; it will be replaced", self, entry, err)
                return None
        return CachedGeneration([place.location for place, _ in images], record)

    def store(
        self,
        prepared: PreparedGeneration,
        urls: list[str],
        *,
        cache_key: Any = None,
        usage: Usage | None = None,
    ) -> list[str]:
        """Store this request's generation (its ``urls``) and return the images' locations. Links that
        do not answer yet are waited for (up to ``LINK_WAIT_SECONDS``).

        :raises SeedreamCacheStoreError: storing failed; its ``urls`` are the links, still paid for."""
        fingerprint = self.fingerprint(prepared, cache_key)
        generation = uuid.uuid4().hex
        folder = f"{fingerprint[:2]}/{fingerprint}/{generation}"
        try:
            stored = [self._when_ready(url, f"{folder}/{index}.{{ext}}") for index, url in enumerate(urls)]
            request = prepared.request
            record = new_record(
                fingerprint,
                generation,
                model=request.model,
                endpoint=f"{self._base_url}{request.spec.path}",
                prompt=request.prompt,
                cache_key=cache_key,
                images=stored,
                usage=usage.to_dict() if usage is not None else None,
                generated_by=running_task(),
            )
            self.write_record(fingerprint, generation, record)
        except SeedreamDownloadError as err:
            raise SeedreamCacheStoreError(
                f"Could not store the generated images into the cache {self}: {err}",
                urls,
                retryable=err.retryable,
            ) from None
        self._log.info("Stored %d generated image(s) in the cache (%s/%s)", len(stored), self, folder)
        return [image.location for image in stored]

    def _when_ready(self, url: str, name: str) -> StoredImage:
        deadline = time.monotonic() + LINK_WAIT_SECONDS
        while True:
            try:
                return self._download(url, name, destination=self.root)
            except SeedreamLinkNotReadyError:
                if time.monotonic() + LINK_POLL_SECONDS > deadline:
                    raise
                time.sleep(LINK_POLL_SECONDS)

    def write_record(self, fingerprint: str, generation: str, record: dict[str, Any]) -> None:
        """The generation's record, then the entry's: only now can the generation be found."""
        data = [json.dumps(record, indent=2).encode()]
        entry = f"{fingerprint[:2]}/{fingerprint}"
        root = as_storage_path(self.root)
        for name in (f"{entry}/{generation}/{RECORD_NAME}", f"{entry}/{RECORD_NAME}"):
            write_atomically(as_storage_path(join(self.root, name)), data, root)


def copy_cached_image(
    location: str,
    path: str,
    *,
    destination: str | os.PathLike[str] | ObjectStoragePath,
    cache: str | os.PathLike[str] | ObjectStoragePath | None,
    max_bytes: int | None,
    log: Any,
) -> tuple[StoredImage, ObjectStoragePath]:
    """Copy the cached image at ``location`` (below ``cache`` when given) to ``path`` below
    ``destination`` (``{ext}`` from its recorded type), atomically; the stored image, carrying its
    generation's facts, and its final path.

    Between objects of one S3 connection the copy is server-side (CopyObject, which S3 commits whole)
    and its size is checked; otherwise the bytes are streamed, and checked against the record's size
    and sha256 before the copy appears."""
    place, image, record = cached_image(location, cache, log)
    if max_bytes is not None and image.bytes > max_bytes:
        raise SeedreamDownloadError(
            f"{location} is {image.bytes:,} bytes, over max_bytes={max_bytes:,}", retryable=False
        )
    root = as_storage_path(destination)
    target, stored_location = storage_target(
        join(destination, path), EXTENSIONS[FORMATS_BY_MEDIA_TYPE[image.content_type]]
    )
    source = place.root.storage.joinpath(*place.parts) if place.root.storage is not None else None
    if source is not None and _same_s3_connection(source, target):
        check_inside(target, root)
        try:
            target.fs.copy(source.path, target.path)
            copied = target.fs.info(target.path)["size"]
        except Exception as err:
            raise storage_error(err, target, "copy to") from None
        if copied != image.bytes:
            raise SeedreamDownloadError(
                f"The copy of {location} at {stored_location} has {copied:,} bytes, not the recorded "
                f"{image.bytes:,}",
                retryable=True,
            )
    else:
        write_atomically(target, place.verified_chunks(image), root)
    stored = image.model_copy(
        update={
            "source": location,
            "location": stored_location,
            "stored_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "generation": GenerationFacts.of_record(record),
        }
    )
    return stored, target


def _same_s3_connection(source: ObjectStoragePath, target: ObjectStoragePath) -> bool:
    return (
        commits_on_upload(source)
        and source.protocol == target.protocol
        and source.storage_options == target.storage_options
    )
