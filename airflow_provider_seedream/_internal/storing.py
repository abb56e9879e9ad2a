"""One poke of a download task: the images whose links answer stored at once, by the hook's
``download_image`` and ``copy_stored_image`` (given as ``download`` and ``copy``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from airflow_provider_seedream.contract.exceptions import SeedreamError, SeedreamLinkNotReadyError
from airflow_provider_seedream.contract.response import is_api_link

if TYPE_CHECKING:
    import os

    from airflow.providers.common.compat.sdk import ObjectStoragePath

    from airflow_provider_seedream.contract.records import StoredImage


def store_batch(
    pending: dict[int, tuple[str, str]],
    *,
    download: Callable[..., StoredImage],
    copy: Callable[..., StoredImage],
    read_timeout: float,
    destination: str | os.PathLike[str] | ObjectStoragePath,
    max_bytes: int | None,
    not_ready_statuses: Collection[int],
    deadline: float,
    parallel: int,
    log: Any,
) -> tuple[dict[int, StoredImage], SeedreamError | None]:
    """Store each ``pending`` image (index: its link or cached location, and its name below
    ``destination``), ``parallel`` at once, until ``deadline`` (``time.monotonic()``). Returns those
    stored, and the first failure other than a link not available yet: it is raised by the caller once
    the manifest lists the others."""

    def store(url: str, name: str) -> StoredImage:
        if not is_api_link(url):  # a cached image, copied
            return copy(url, name, destination=destination, max_bytes=max_bytes)
        return download(
            url,
            name,
            destination=destination,
            max_bytes=max_bytes,
            not_ready_statuses=not_ready_statuses,
            timeout=max(min(read_timeout, deadline - time.monotonic()), 0.001),
        )

    stored: dict[int, StoredImage] = {}
    failure: SeedreamError | None = None
    # Several at once: one image's upload waits on the store's answers while another streams.
    with ThreadPoolExecutor(max(min(parallel, len(pending)), 1)) as pool:
        futures = {index: pool.submit(store, *where) for index, where in pending.items()}
        for index, future in futures.items():
            try:
                stored[index] = future.result()
            except SeedreamLinkNotReadyError as err:
                log.info("%s", err)
            except SeedreamError as err:
                failure = failure or err
    return stored, failure
