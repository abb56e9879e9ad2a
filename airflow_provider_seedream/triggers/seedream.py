"""Deferrable waiting for generated image links, in the triggerer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_seedream.contract.exceptions import (
    SeedreamDownloadError,
    SeedreamLinkExpiredError,
    SeedreamLinkNotReadyError,
)
from airflow_provider_seedream.contract.links import (
    DEFAULT_NOT_READY_STATUSES,
    ERROR_BODY_PREFIX,
    link_failure,
)
from airflow_provider_seedream.contract.redact import mask_signatures, redact_url

PROBE_SECONDS = 60.0
"""Longest one probe (connect, headers and the start of an error body) may take."""


class SeedreamLinksTrigger(BaseTrigger):
    """
    Wait until every link answers 200, with the sensor's own semantics (:func:`link_failure`).

    Fires one event: ``{"status": "ready", "end_time": ...}`` (the deadline, for a deferral that
    follows); ``"expired"`` or ``"error"`` with a ``message`` as soon as
    one link fails for good; or ``"timeout"`` once ``end_time`` (seconds since the epoch) has passed.
    The deadline is absolute and serialized with the trigger, so a triggerer restart does not restart
    the clock. Links are probed with a GET of their first byte (``Range: bytes=0-0``; presigned links
    are signed for GET only, and object stores answer 206 with that byte), so the image itself is
    fetched once, by the download; a server that ignores the range answers 200, whose body is not
    read. Each probe is bounded in time. The API key is never serialized (presigned links need none);
    the links are, signatures included, in the trigger's kwargs, which Airflow encrypts in its database
    when a Fernet key is configured.

    :param timeout: seconds from now, for callers that have no end time (``end_time`` wins).
    """

    def __init__(
        self,
        urls: list[str],
        *,
        poll_interval: float,
        end_time: float | None = None,
        timeout: float | None = None,
        not_ready_statuses: list[int] | tuple[int, ...] = DEFAULT_NOT_READY_STATUSES,
        connect_timeout: float = 10.0,
    ) -> None:
        super().__init__()
        if end_time is None:
            if timeout is None:
                raise ValueError("SeedreamLinksTrigger needs end_time or timeout")
            end_time = time.time() + timeout
        self.urls = list(urls)
        self.poll_interval = poll_interval
        self.end_time = end_time
        self.not_ready_statuses = list(not_ready_statuses)
        self.connect_timeout = connect_timeout

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "urls": self.urls,
                "poll_interval": self.poll_interval,
                "end_time": self.end_time,
                "not_ready_statuses": self.not_ready_statuses,
                "connect_timeout": self.connect_timeout,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        import httpx

        mask_signatures(self.urls)
        pending = list(self.urls)
        timeout = httpx.Timeout(PROBE_SECONDS, connect=self.connect_timeout)
        async with httpx.AsyncClient(timeout=timeout, follow_redirects=True) as client:
            while True:
                waiting = []
                for url in pending:
                    failure = await self._probe_within_deadline(client, url)
                    if isinstance(failure, SeedreamLinkNotReadyError):
                        waiting.append(url)
                    elif failure is not None:
                        status = "expired" if isinstance(failure, SeedreamLinkExpiredError) else "error"
                        yield TriggerEvent({"status": status, "message": str(failure)})
                        return
                if not waiting:
                    yield TriggerEvent({"status": "ready", "end_time": self.end_time})
                    return
                remaining = self.end_time - time.time()
                if remaining <= 0:
                    yield TriggerEvent(
                        {
                            "status": "timeout",
                            "message": f"{len(waiting)} of {len(self.urls)} links were still not available "
                            f"at the sensor's timeout, e.g. {redact_url(waiting[0])}",
                        }
                    )
                    return
                self.log.info("%d of %d links not available yet", len(waiting), len(self.urls))
                pending = waiting
                await asyncio.sleep(min(self.poll_interval, remaining))

    async def _probe_within_deadline(self, client: Any, url: str) -> SeedreamDownloadError | None:
        """A probe that cannot outlast ``end_time`` or :data:`PROBE_SECONDS`, however slowly the server
        answers; one cut short counts as "not ready", so the deadline decides what happens next."""
        budget = min(PROBE_SECONDS, max(self.end_time - time.time(), 0.001))
        try:
            return await asyncio.wait_for(self._probe(client, url), timeout=budget)
        except asyncio.TimeoutError:
            return SeedreamLinkNotReadyError(f"{redact_url(url)} did not answer within {budget:.0f} s")

    async def _probe(self, client: Any, url: str) -> SeedreamDownloadError | None:
        import httpx

        try:
            async with client.stream("GET", url, headers={"Range": "bytes=0-0"}) as response:
                if response.status_code in (200, 206):
                    return None
                body = b""
                async for chunk in response.aiter_raw():
                    body += chunk
                    if len(body) >= ERROR_BODY_PREFIX:
                        break
                return link_failure(response.status_code, body, url, self.not_ready_statuses)
        except httpx.TimeoutException:
            return SeedreamLinkNotReadyError(f"{redact_url(url)} did not answer in time")
        except httpx.HTTPError as err:
            from airflow_provider_seedream._internal.causes import describe_cause

            return SeedreamDownloadError(f"Could not fetch {redact_url(url)}: {describe_cause(err)}")
