"""What earlier tries of a task instance did with its generation, kept in Airflow's task state store.

Airflow 3.3 gives every running task ``context["task_state_store"]``, which survives retries of the
same task instance (``airflow.sdk.bases.resumablejobmixin.ResumableJobMixin`` keeps a job id there).
The generate operator records, under one key, that it is about to send, that the answer may have been
billed, or the links it got, so that the next try neither pays again nor loses paid-for images.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from airflow_provider_seedream.exceptions import SeedreamError, SeedreamPossiblyBilledError
from airflow_provider_seedream.links import link_expiry

STATE_KEY = "seedream_generation"
RESUME_MARGIN = timedelta(minutes=5)
"""Links this close to expiry are not handed on: the download needs time to fetch them."""

SENT = "sent"
POSSIBLY_BILLED = "possibly_billed"
GENERATED = "generated"


class GenerationState:
    """One task instance's record, read and written through its ``task_state_store``."""

    def __init__(self, store: Any, try_number: int) -> None:
        self._store = store
        self._try_number = try_number

    def earlier(self) -> dict[str, Any] | None:
        record = self._store.get(STATE_KEY)
        return record if isinstance(record, dict) and isinstance(record.get("status"), str) else None

    def mark_sent(self) -> None:
        """Written before the request leaves: a try killed while waiting leaves this behind."""
        self._write(SENT)

    def record_failure(self, error: SeedreamError) -> None:
        """After a failed send. A failure that may have been billed is kept, so that no later try pays
        again without the opt-in; any other says nothing was generated, so the next try may send."""
        if isinstance(error, SeedreamPossiblyBilledError):
            self._write(POSSIBLY_BILLED, error=str(error))
        else:
            self._store.delete(STATE_KEY)

    def mark_generated(self, urls: list[str]) -> None:
        now = datetime.now(timezone.utc)
        usable_until = min(link_expiry(url, now) for url in urls)
        self._write(GENERATED, urls=urls, usable_until=usable_until.isoformat())

    def _write(self, status: str, **fields: Any) -> None:
        record = {"status": status, "try_number": self._try_number, "at": _now(), **fields}
        self._store.set(STATE_KEY, record)


def usable_urls(record: dict[str, Any]) -> list[str] | None:
    """The links a generated record holds, if they will work for a while yet."""
    urls, until = record.get("urls"), record.get("usable_until")
    if (
        not isinstance(urls, list)
        or not all(isinstance(url, str) for url in urls)
        or not isinstance(until, str)
    ):
        return None
    try:
        expiry = datetime.fromisoformat(until)
    except ValueError:
        return None
    return urls if expiry - RESUME_MARGIN > datetime.now(timezone.utc) else None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
