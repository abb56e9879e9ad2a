"""What an image link's answer means: shared by the sensor's pokes and the deferrable trigger, so
both wait, expire and fail on exactly the same answers."""

from __future__ import annotations

import re
from collections.abc import Collection

from airflow_provider_seedream._redact import redact_url
from airflow_provider_seedream.exceptions import (
    SeedreamDownloadError,
    SeedreamLinkExpiredError,
    SeedreamLinkNotReadyError,
    truncate,
)

DEFAULT_NOT_READY_STATUSES: tuple[int, ...] = (404,)
"""A link that was just issued may 404 until the object store has it."""

ERROR_BODY_PREFIX = 4096
"""Bytes of an error body read to classify it; an object store's XML error fits easily."""

_EXPIRED_BODY = re.compile(rb"request has expired|accessdenied|access denied|expired", re.IGNORECASE)


def link_failure(
    status: int, body: bytes, url: str, not_ready_statuses: Collection[int] = DEFAULT_NOT_READY_STATUSES
) -> SeedreamDownloadError:
    """The error for a link that did not answer 200 with its image."""
    where = redact_url(url)
    if status in not_ready_statuses:
        return SeedreamLinkNotReadyError(f"{where} is not available yet (HTTP {status})")
    if status == 410 or (status == 403 and _EXPIRED_BODY.search(body)):
        return SeedreamLinkExpiredError(
            f"{where} has expired (HTTP {status}); generated image links are short-lived, so the image "
            "must be generated again"
        )
    text = truncate(body.decode("utf-8", errors="replace")) or "(empty body)"
    return SeedreamDownloadError(f"{where} answered HTTP {status}: {text}")
