"""What an image link's answer means: shared by the sensor's pokes and the deferrable trigger, so
both wait, expire and fail on exactly the same answers."""

from __future__ import annotations

import re
from collections.abc import Collection
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qsl, urlsplit

from airflow_provider_seedream.contract.exceptions import (
    SeedreamDownloadError,
    SeedreamLinkExpiredError,
    SeedreamLinkNotReadyError,
    truncate,
)
from airflow_provider_seedream.contract.redact import redact_text, redact_url, signature_values

DEFAULT_NOT_READY_STATUSES: tuple[int, ...] = (404,)
"""A link that was just issued may 404 until the object store has it."""

DEFAULT_MAX_IMAGE_BYTES = 80 * 1024 * 1024
"""Downloads larger than this are refused unless ``max_bytes`` says otherwise. A generated image has
at most 4096x4096 pixels; stored as uncompressed 8-bit RGBA that is 64 MiB, and no PNG or JPEG of it
is larger, so 80 MiB is an honest upper bound with room for metadata."""

DEFAULT_LINK_LIFETIME = timedelta(hours=1)
"""How long a link is assumed to work when it does not say: the shortest lifetime documented (Novita's
async API: 1 hour; the upstream API: 24 hours)."""

ERROR_BODY_PREFIX = 4096
"""Bytes of an error body read to classify and quote it; an object store's XML error fits easily."""

_EXPIRED_BODY = re.compile(rb"request has expired|expiredtoken|token has expired|\bexpired\b", re.IGNORECASE)
"""What S3, TOS, OSS and GCS say of a presigned link past its expiry (403 AccessDenied "Request has
expired", GCS's ExpiredToken). AccessDenied alone is a permission problem, not an expiry."""


def link_failure(
    status: int, body: bytes, url: str, not_ready_statuses: Collection[int] = DEFAULT_NOT_READY_STATUSES
) -> SeedreamDownloadError:
    """The error for a link that did not answer 200 with its image. The body is quoted without the
    link's signature, whatever the server echoed."""
    where = redact_url(url)
    body = body[:ERROR_BODY_PREFIX]
    if status in not_ready_statuses:
        return SeedreamLinkNotReadyError(f"{where} is not available yet (HTTP {status})")
    if status == 410 or (status == 403 and _EXPIRED_BODY.search(body)):
        return SeedreamLinkExpiredError(
            f"{where} has expired (HTTP {status}); generated image links are short-lived, so the image "
            "must be generated again"
        )
    text = (
        truncate(redact_text(body.decode("utf-8", errors="replace"), signature_values(url))) or "(empty body)"
    )
    if status == 403:
        return SeedreamDownloadError(
            f"{where} was refused (HTTP 403) without saying it expired: {text}. This is an access problem "
            "(a bucket policy, the wrong region, a proxy), not an expired link; check access to the "
            "storage before generating again"
        )
    return SeedreamDownloadError(f"{where} answered HTTP {status}: {text}")


def link_expiry(url: str, issued_at: datetime) -> datetime:
    """When a presigned link stops working: from its own signing parameters (TOS, S3 and GCS
    ``X-*-Date`` + ``X-*-Expires``, OSS/GCS v2 ``Expires``, Azure ``se``), else ``issued_at`` plus
    :data:`DEFAULT_LINK_LIFETIME`."""
    try:
        query = {key.lower(): value for key, value in parse_qsl(urlsplit(url).query)}
    except ValueError:
        query = {}
    try:
        for prefix in ("x-tos-", "x-amz-", "x-goog-"):
            signed, lifetime = query.get(f"{prefix}date"), query.get(f"{prefix}expires")
            if signed and lifetime:
                start = datetime.strptime(signed, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
                return start + timedelta(seconds=int(lifetime))
        if "expires" in query:
            return datetime.fromtimestamp(int(query["expires"]), tz=timezone.utc)
        if "se" in query:
            expiry = datetime.fromisoformat(query["se"].replace("Z", "+00:00"))
            return expiry if expiry.tzinfo else expiry.replace(tzinfo=timezone.utc)
    except (ValueError, OverflowError):
        pass  # unreadable: assume the shortest documented lifetime
    return issued_at + DEFAULT_LINK_LIFETIME
