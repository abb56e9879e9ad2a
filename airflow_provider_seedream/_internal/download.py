"""Streaming one generated image from its link into storage: checked by content, counted, hashed,
bounded in size and time, and written so that nothing half-written ever sits at the final name."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Collection, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timezone
from typing import TYPE_CHECKING

import requests

from airflow_provider_seedream._internal.causes import describe_cause
from airflow_provider_seedream._internal.storage import (
    as_storage_path,
    join,
    storage_target,
    write_atomically,
)
from airflow_provider_seedream._internal.transport import (
    ERROR_BODY_SECONDS,
    BodyError,
    iter_body,
    read_error_body,
)
from airflow_provider_seedream.contract.exceptions import SeedreamDownloadError
from airflow_provider_seedream.contract.imageinfo import EXTENSIONS, read_image_info
from airflow_provider_seedream.contract.links import link_failure
from airflow_provider_seedream.contract.records import StoredImage
from airflow_provider_seedream.contract.redact import link_identity, redact_text, redact_url

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import ObjectStoragePath

SNIFF_BYTES = 64 * 1024
"""Enough of an image's start to know its format and, for all but odd JPEGs, its pixel size."""


def stream_image(
    session: requests.Session,
    url: str,
    path: str | os.PathLike[str] | ObjectStoragePath,
    *,
    destination: str | os.PathLike[str] | ObjectStoragePath | None,
    max_bytes: int | None,
    not_ready_statuses: Collection[int],
    timeouts: tuple[float, float],
    budget: float,
) -> tuple[StoredImage, ObjectStoragePath]:
    """Fetch ``url`` and store it at ``path`` (below ``destination`` when given); the stored image and
    its final storage path. ``budget`` is the seconds the whole download may take."""
    where = redact_url(url)
    deadline = time.monotonic() + budget
    read_timeout = min(timeouts[1], budget)
    try:
        response = session.get(url, stream=True, timeout=(timeouts[0], read_timeout))
    except requests.RequestException as err:
        raise SeedreamDownloadError(f"Could not fetch {where}: {describe_cause(err)}") from None
    # One thread per download for the sha256, shut down with it (a pool kept across downloads would be
    # left broken in a process forked after them).
    with response, ThreadPoolExecutor(1, thread_name_prefix="seedream-sha256") as hasher:
        if response.status_code != 200:
            error_body = read_error_body(response, min(read_timeout, ERROR_BODY_SECONDS))
            raise link_failure(response.status_code, error_body, url, not_ready_statuses)
        body = _ImageBody(response, where, max_bytes, deadline, hasher)
        info = read_image_info(body.head)
        if info is None:
            raise SeedreamDownloadError(
                f"{where} did not return an image: Content-Type "
                f"{response.headers.get('Content-Type', 'none')}, body starts "
                f"{redact_text(body.head[:48].decode('latin-1'))!r}"
            )
        full = path if destination is None else join(destination, str(path))
        target, location = storage_target(full, EXTENSIONS[info.format])
        try:
            write_atomically(target, body, None if destination is None else as_storage_path(destination))
        except SeedreamDownloadError as err:
            if not body.broke:
                raise  # a storage failure, which names the file
            raise SeedreamDownloadError(
                f"{err}; nothing was stored at {location}", retryable=err.retryable
            ) from None
        sha256 = body.sha256_hex()
    image = StoredImage(
        source=link_identity(url),
        location=location,
        sha256=sha256,
        bytes=body.size,
        content_type=info.media_type,
        width=info.width,
        height=info.height,
        stored_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    return image, target


class _ImageBody:
    """A response body as chunks: counted and hashed on the way, refused when it breaks the limits
    or is cut off. ``head`` is its first bytes, read ahead to tell the format.

    Each chunk is hashed in ``hasher``'s thread while the next is received and the last written:
    hashing was 38% of a download's time on one thread, and hashlib releases the GIL (bench item 2,
    docs/benchmarks.md)."""

    def __init__(
        self,
        response: requests.Response,
        where: str,
        max_bytes: int | None,
        deadline: float,
        hasher: ThreadPoolExecutor,
    ) -> None:
        self._where, self._max_bytes = where, max_bytes
        declared = _declared_length(response)
        if max_bytes is not None and declared is not None and declared > max_bytes:
            raise SeedreamDownloadError(
                f"{where} is {declared:,} bytes, over max_bytes={max_bytes:,}", retryable=False
            )
        self._chunks = iter_body(response, limit=max_bytes, deadline=deadline)
        self.size = 0
        self.broke = False
        """Whether the body failed (cut off, too large, too slow) while it was being stored."""
        self._sha256 = hashlib.sha256()
        self._hasher = hasher
        self._hashing: Future[None] | None = None
        self._head_chunks: list[bytes] = []
        for chunk in self._checked():
            self._head_chunks.append(chunk)
            if self.size >= SNIFF_BYTES:
                break
        self.head = b"".join(self._head_chunks)

    def __iter__(self) -> Iterator[bytes]:
        yield from self._head_chunks
        yield from self._checked()

    def _checked(self) -> Iterator[bytes]:
        try:
            for chunk in self._chunks:
                self.size += len(chunk)
                self._hash(chunk)
                yield chunk
        except BodyError as err:
            self.broke = True
            message = (
                f"{self._where} is over max_bytes={self._max_bytes:,}"
                if err.too_large
                else f"The transfer of {self._where} failed: {err}"
            )
            raise SeedreamDownloadError(message, retryable=not err.too_large) from None

    def _hash(self, chunk: bytes) -> None:
        if self._hashing is not None:
            self._hashing.result()  # in order: one chunk at a time
        self._hashing = self._hasher.submit(self._sha256.update, chunk)

    def sha256_hex(self) -> str:
        if self._hashing is not None:
            self._hashing.result()
        return self._sha256.hexdigest()


def _declared_length(response: requests.Response) -> int | None:
    """Content-Length, when it counts the bytes we will see (no content encoding)."""
    if response.headers.get("Content-Encoding", "identity") != "identity":
        return None
    try:
        return int(response.headers["Content-Length"])
    except (KeyError, ValueError):
        return None
