"""HTTP exchanges with the API and with image links: bounded reads, and what a failure means for billing.

Every body is read within a byte limit and an overall deadline, whatever the server does (drip, lie
about its length, compress a bomb), and a failure with no HTTP answer is classified by what the
server may already have done (:func:`transport_error`); ``exceptions.may_retry`` then decides
whether a request may be sent again.
"""

from __future__ import annotations

import email.utils
import http.client
import random
import ssl
import threading
import time
import traceback
from collections.abc import Iterator
from typing import Any

import requests
import urllib3.exceptions

from airflow_provider_seedream._internal.causes import causes_of, describe_cause
from airflow_provider_seedream.contract.answers import api_error
from airflow_provider_seedream.contract.connection import ConnectionSettings
from airflow_provider_seedream.contract.exceptions import (
    SeedreamAPIError,
    SeedreamConnectionError,
    SeedreamConnectionLostError,
    SeedreamError,
    SeedreamPossiblyBilledError,
    SeedreamRateLimitError,
    SeedreamResponseError,
    SeedreamTimeoutError,
)
from airflow_provider_seedream.contract.redact import Secrets, redact_text, redact_url
from airflow_provider_seedream.contract.response import image_urls

READ_CHUNK_BYTES = 1024 * 1024
"""Most bytes asked of the socket at once; a read returns whatever has arrived, up to this."""
GENERATION_RESPONSE_LIMIT = 256 * 1024
"""A generation answers with at most 15 links of a few hundred bytes each: this is generous."""
ERROR_BODY_SECONDS = 30.0
"""Longest wait for an error body: it is only quoted, so a slow one is cut rather than awaited."""
ERROR_BODY_LIMIT = 64 * 1024
"""Enough of an error body to classify and quote it; a gateway's HTML page is cut here."""


class ThreadSessions(threading.local):
    """One pair of HTTP sessions per thread: a ``requests.Session`` is not safe to share between
    threads, and one hook serves several (``parallel_downloads``, a user's thread pool)."""

    def __init__(self, api_key: str | None) -> None:
        self.api = requests.Session()
        """The API's: JSON, with the key."""
        self.api.headers["Content-Type"] = "application/json"
        if api_key:
            self.api.headers["Authorization"] = f"Bearer {api_key}"
        self.links = requests.Session()
        """Image links are presigned: they must never receive the API key."""


def post_generation(
    session: requests.Session,
    url: str,
    body: dict[str, Any],
    timeouts: tuple[float, float],
    *,
    max_links: int,
    secrets: Secrets,
) -> list[str]:
    """One generation POST, and its image links. Redirects are never followed: a 307 would re-send the
    references elsewhere, and a 302 would turn into a GET whose answer is no generation."""
    started = time.monotonic()
    try:
        response = session.post(url, json=body, timeout=timeouts, stream=True, allow_redirects=False)
    except requests.RequestException as err:
        raise transport_error(err, url, timeouts) from None
    with response:  # a body read to its end has already gone back to the pool for reuse
        status = response.status_code
        if 200 <= status < 300:
            try:
                content = read_body(
                    response, limit=GENERATION_RESPONSE_LIMIT, deadline=time.monotonic() + timeouts[1]
                )
            except BodyError as err:
                raise SeedreamResponseError(status, "INCOMPLETE_BODY", str(err)) from None
            return image_urls(status, content, secrets, max_links=max_links)
        raise answer_error(response, min(timeouts[1], ERROR_BODY_SECONDS), started, secrets)


def answer_error(
    response: requests.Response, seconds: float, started: float, secrets: Secrets
) -> SeedreamAPIError | SeedreamPossiblyBilledError:
    """The typed error for an answer: its body read within ``seconds`` and the size limit, the key and
    any signature removed."""
    body = redact_text(read_error_body(response, seconds).decode("utf-8", errors="replace"), secrets)
    return api_error(
        response.status_code,
        body.encode(),
        retry_after(response),
        elapsed=time.monotonic() - started,
        location=redact_url(response.headers.get("Location", "")) or None,
    )


class BodyError(Exception):
    """A response body broke one of the reader's limits or broke off; the message says which."""

    def __init__(self, message: str, *, too_large: bool = False) -> None:
        super().__init__(message)
        self.too_large = too_large


def iter_body(response: requests.Response, *, limit: int | None, deadline: float) -> Iterator[bytes]:
    """The decoded body of a streamed response, in pieces as they arrive.

    Raises :class:`BodyError` past ``limit`` decoded bytes (so a gzip bomb is stopped, not inflated),
    past ``deadline`` (``time.monotonic()``; a server dripping a byte a second is cut off there, not
    only when one read stalls), or when the body breaks off or does not decode. ``read1`` returns as
    soon as any bytes arrive, which a plain ``iter_content`` cannot do: it blocks until a whole chunk
    is in. One read waits at most the request's read timeout, which callers cap at their deadline."""
    raw = response.raw
    size = 0
    while True:
        if deadline <= time.monotonic():
            raise _late(size)
        try:
            chunk = raw.read1(READ_CHUNK_BYTES, decode_content=True)
        except (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError, ValueError) as err:
            if deadline <= time.monotonic():
                raise _late(size) from None
            raise BodyError(f"the body broke off after {size:,} bytes ({describe_cause(err)})") from None
        if not chunk:
            return
        size += len(chunk)
        if limit is not None and size > limit:
            raise BodyError(f"the body is over the {limit:,}-byte limit", too_large=True)
        yield chunk


def _late(size: int) -> BodyError:
    return BodyError(f"the body did not arrive in time ({size:,} bytes so far)")


def read_body(response: requests.Response, *, limit: int | None, deadline: float) -> bytes:
    return b"".join(iter_body(response, limit=limit, deadline=deadline))


def read_error_body(response: requests.Response, seconds: float) -> bytes:
    """The start of an error body, for classifying and quoting it: what arrives within ``seconds``
    and the size limit."""
    pieces: list[bytes] = []
    size = 0
    try:
        for chunk in iter_body(response, limit=None, deadline=time.monotonic() + seconds):
            pieces.append(chunk[: ERROR_BODY_LIMIT - size])
            size += len(pieces[-1])
            if size >= ERROR_BODY_LIMIT:
                break
    except BodyError:
        pass  # a broken error body is still an error; quote what came
    return b"".join(pieces)


class RetryBudget:
    """When to stop sending again, for one generation: two budgets. Rate limits (429) are waited out
    for up to ``rate_limit_wait_seconds`` in all, however many it takes: the API says nothing was
    generated and when to come back, so pacing by Retry-After costs nothing but time. Other safe
    failures (a prompt 503, a failure to connect) get ``max_retries`` retries.

    The hook drives it with a plain loop, not tenacity: benchmark item 3 measured why
    (docs/benchmarks.md)."""

    def __init__(self, settings: ConnectionSettings) -> None:
        self.settings = settings
        self.failures = 0
        self.rate_limited_seconds = 0.0

    def spent(self, error: BaseException | None) -> bool:
        """Whether to give up after this failed try; called once per failed try."""
        if isinstance(error, SeedreamRateLimitError):
            return self.rate_limited_seconds >= self.settings.rate_limit_wait_seconds
        self.failures += 1
        return self.failures > self.settings.max_retries

    def wait(self, attempt: int, error: BaseException | None) -> float:
        """The wait before try ``attempt + 1``: Retry-After when the API gave one, else exponential
        backoff, half fixed and half random so that parallel mapped tasks do not retry in lockstep;
        every wait capped at ``max_backoff_seconds``. Rate-limit waits come out of their budget."""
        settings = self.settings
        if isinstance(error, SeedreamRateLimitError) and error.retry_after is not None:
            delay = min(error.retry_after, settings.max_backoff_seconds)
        else:
            ceiling = min(settings.backoff_seconds * 2 ** max(attempt - 1, 0), settings.max_backoff_seconds)
            delay = ceiling / 2 + random.uniform(0, ceiling / 2)
        if isinstance(error, SeedreamRateLimitError):
            # At least a second between tries, whatever Retry-After says: never a busy loop.
            left = max(settings.rate_limit_wait_seconds - self.rate_limited_seconds, 0.0)
            delay = min(max(delay, 1.0), left)
            self.rate_limited_seconds += max(delay, 1.0)
        return float(delay)

    def describe(self, error: BaseException | None) -> str:
        if isinstance(error, SeedreamRateLimitError):
            limit = self.settings.rate_limit_wait_seconds
            return f"rate limited, waited {self.rate_limited_seconds:.0f} of {limit:.0f} s"
        return f"retry {self.failures} of {self.settings.max_retries}"


def transport_error(err: requests.RequestException, url: str, timeout: tuple[float, float]) -> SeedreamError:
    """Split failures with no HTTP answer into "never sent" (safe to send again) and "sent" (may be
    billed). Only a failure to connect, to resolve the host or to agree on TLS is known to have sent
    nothing."""
    where = redact_url(url)
    if isinstance(err, requests.ConnectTimeout):
        return SeedreamConnectionError(
            f"Could not connect to {where} within {timeout[0]} s; nothing was sent"
        )
    if isinstance(err, requests.exceptions.SSLError) and _in_tls_handshake(err):
        hint = (
            "; if the API is served over plain HTTP, give the connection's host as http://..."
            if where.startswith("https://")
            and not any(isinstance(cause, ssl.SSLCertVerificationError) for cause in causes_of(err))
            else ""
        )
        return SeedreamConnectionError(
            f"Could not open a TLS connection to {where} ({describe_cause(err)}){hint}; nothing was sent"
        )
    if isinstance(err, requests.ReadTimeout):
        return SeedreamTimeoutError(f"No answer from {where} within {timeout[1]} s")
    if isinstance(err, requests.ConnectionError) and _never_sent(err):
        return SeedreamConnectionError(
            f"Could not connect to {where}: {describe_cause(err)}; nothing was sent"
        )
    return SeedreamConnectionLostError(
        f"The connection to {where} broke after the request was sent ({describe_cause(err)})"
    )


def _never_sent(err: requests.ConnectionError) -> bool:
    cause = err.args[0] if err.args else None
    if isinstance(cause, urllib3.exceptions.MaxRetryError):
        cause = cause.reason
    return isinstance(cause, urllib3.exceptions.NewConnectionError)


def _in_tls_handshake(err: BaseException) -> bool:
    """Whether a TLS error came from the handshake, before a byte of the request was written.
    urllib3 and requests raise the same ``SSLError`` for a TLS failure while the answer is read (a bad
    record on a kept-alive connection), after the request went out: only the traceback of the ``ssl``
    error they wrap tells them apart."""
    return any(
        frame.name == "do_handshake"
        for cause in causes_of(err)
        for frame in traceback.extract_tb(cause.__traceback__)
    )


def retry_after(response: requests.Response) -> float | None:
    """``Retry-After`` in seconds, from a number or an HTTP date; ``None`` when absent or unreadable."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if seconds == seconds and seconds != float("inf") else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
