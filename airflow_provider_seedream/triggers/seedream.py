"""Deferrable waiting for generated image links, in the triggerer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_seedream._redact import redact_url
from airflow_provider_seedream.exceptions import (
    SeedreamDownloadError,
    SeedreamLinkExpiredError,
    SeedreamLinkNotReadyError,
)
from airflow_provider_seedream.links import DEFAULT_NOT_READY_STATUSES, ERROR_BODY_PREFIX, link_failure


class SeedreamLinksTrigger(BaseTrigger):
    """
    Wait until every link answers 200, with the sensor's own semantics (:func:`link_failure`).

    Fires one event: ``{"status": "ready"}``; ``"expired"`` or ``"error"`` with a ``message`` as soon as
    one link fails for good; or ``"timeout"`` once ``timeout`` seconds have passed on the monotonic clock.
    Links are probed with a GET whose body is not read (presigned links are signed for GET only).
    Nothing secret is serialized: presigned links need no API key.
    """

    def __init__(
        self,
        urls: list[str],
        *,
        poll_interval: float,
        timeout: float,
        not_ready_statuses: list[int] | tuple[int, ...] = DEFAULT_NOT_READY_STATUSES,
        connect_timeout: float = 10.0,
    ) -> None:
        super().__init__()
        self.urls = list(urls)
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.not_ready_statuses = list(not_ready_statuses)
        self.connect_timeout = connect_timeout

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "urls": self.urls,
                "poll_interval": self.poll_interval,
                "timeout": self.timeout,
                "not_ready_statuses": self.not_ready_statuses,
                "connect_timeout": self.connect_timeout,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        import httpx

        deadline = time.monotonic() + self.timeout
        pending = list(self.urls)
        timeout = httpx.Timeout(self.connect_timeout, read=60.0)
        async with httpx.AsyncClient(timeout=timeout, follow_redirects=True) as client:
            while True:
                waiting = []
                for url in pending:
                    failure = await self._probe(client, url)
                    if isinstance(failure, SeedreamLinkNotReadyError):
                        waiting.append(url)
                    elif failure is not None:
                        status = "expired" if isinstance(failure, SeedreamLinkExpiredError) else "error"
                        yield TriggerEvent({"status": status, "message": str(failure)})
                        return
                if not waiting:
                    yield TriggerEvent({"status": "ready"})
                    return
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    yield TriggerEvent(
                        {
                            "status": "timeout",
                            "message": f"{len(waiting)} of {len(self.urls)} links were still not available "
                            f"after {self.timeout} s, e.g. {redact_url(waiting[0])}",
                        }
                    )
                    return
                self.log.info("%d of %d links not available yet", len(waiting), len(self.urls))
                pending = waiting
                await asyncio.sleep(min(self.poll_interval, remaining))

    async def _probe(self, client: Any, url: str) -> SeedreamDownloadError | None:
        import httpx

        try:
            async with client.stream("GET", url) as response:
                if response.status_code == 200:
                    return None
                body = b""
                async for chunk in response.aiter_raw():
                    body += chunk
                    if len(body) >= ERROR_BODY_PREFIX:
                        break
                return link_failure(
                    response.status_code, body[:ERROR_BODY_PREFIX], url, self.not_ready_statuses
                )
        except httpx.HTTPError as err:
            return SeedreamDownloadError(f"Could not fetch {redact_url(url)}: {type(err).__name__}")
