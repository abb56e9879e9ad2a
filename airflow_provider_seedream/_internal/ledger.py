"""The spend ledger where the work runs: one JSON document (``contract.spend``) that every thread,
process and worker generating through a connection changes atomically, read and written whole.

- **A local file** (the default, under ``$AIRFLOW_HOME``): a file lock (``flock``) around each
  read-change-write, the document replaced atomically. One machine only: where tasks may run on
  several hosts each would count its own spend, so a local ledger is refused there, as a local
  destination is (``utils.destinations``).
- **S3** (``s3://conn_id@bucket/key.json``): conditional writes through the S3 connection's client,
  ``If-None-Match: *`` to create the ledger and ``If-Match`` on its ETag to change it; a writer that
  lost a race (412, or 409 while another write is in flight) reads again and tries again.
- Any other store offers no such primitive here, and is refused with a message that says so.

Hand-written rather than a lock library: neither ``filelock`` nor ``portalocker`` covers S3, and
the local case is a dozen lines of ``fcntl``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import random
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from airflow_provider_seedream._internal.storage import as_storage_path, commits_on_upload, is_local
from airflow_provider_seedream.contract.exceptions import SeedreamSpendLedgerError, SeedreamValidationError
from airflow_provider_seedream.contract.spend import checked_ledger, new_ledger

T = TypeVar("T")
LEDGER_READ_LIMIT = 4 * 1024 * 1024
"""A pruned ledger holds a few thousand accounts in well under this; anything larger is not ours."""
UPDATE_SECONDS = 60.0
"""Longest one change may wait for the lock, or keep losing races, before it gives up (nothing sent)."""
DEFAULT_LEDGER = "seedream/spend-ledger.json"
"""Below ``$AIRFLOW_HOME``: where a connection's ledger is when its extra ``spend_ledger`` is unset."""
_CONFLICTS = frozenset({"PreconditionFailed", "ConditionalRequestConflict", "412", "409"})


class Ledger(Protocol):
    location: str

    def update(self, change: Callable[[dict[str, Any]], T]) -> T:
        """Apply ``change`` to the document atomically and return what it returns; when it raises,
        nothing is written and the exception goes on."""


def open_ledger(location: str | None, conn_id: str) -> Ledger:
    """The ledger a connection's ``spend_ledger`` names (unset: the local default).

    :raises SeedreamValidationError: a store without conditional writes, or a local file where tasks
        run on several hosts."""
    text = (location or "").strip() or os.path.join(
        os.environ.get("AIRFLOW_HOME") or os.path.expanduser("~/airflow"), DEFAULT_LEDGER
    )
    path = as_storage_path(text)
    if is_local(path):
        _refuse_where_tasks_run_elsewhere(text, conn_id)
        return LocalLedger(path.path)
    if commits_on_upload(path):
        return S3Ledger(path, text)
    raise SeedreamValidationError(
        f"connection {conn_id!r}: spend_ledger={text!r}: {path.protocol}:// offers no conditional write "
        "here, so two workers could both take the last of a budget; give a local file (one machine) or "
        "an S3 object (s3://<conn_id>@<bucket>/seedream/spend-ledger.json)"
    )


def _refuse_where_tasks_run_elsewhere(location: str, conn_id: str) -> None:
    from airflow_provider_seedream.utils.destinations import SINGLE_HOST_EXECUTORS, task_executors

    elsewhere = [name for name in task_executors() if name not in SINGLE_HOST_EXECUTORS]
    if elsewhere:
        raise SeedreamValidationError(
            f"connection {conn_id!r} sets a spend ceiling, and its spend ledger {location!r} is a file on "
            f"whichever machine runs each task; this Airflow runs tasks on {' and '.join(elsewhere)}, "
            "where each host would count only its own spend. Set the connection's extra spend_ledger to "
            "an S3 object every worker reaches: s3://<conn_id>@<bucket>/seedream/spend-ledger.json"
        )


class LocalLedger:
    """A ledger file on this machine, changed under a file lock."""

    _locks: dict[str, threading.Lock] = {}
    _locks_lock = threading.Lock()

    def __init__(self, path: str) -> None:
        self.location = path
        with self._locks_lock:  # threads of one process queue here, processes at the file lock
            self._thread_lock = self._locks.setdefault(path, threading.Lock())

    def update(self, change: Callable[[dict[str, Any]], T]) -> T:
        deadline = time.monotonic() + UPDATE_SECONDS
        if not self._thread_lock.acquire(timeout=UPDATE_SECONDS):
            raise self._late()
        try:
            os.makedirs(os.path.dirname(self.location), exist_ok=True)
            fd = os.open(f"{self.location}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                while True:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if time.monotonic() > deadline:
                            raise self._late() from None
                        time.sleep(0.002)
                document = self._read()
                result = change(document)
                self._write(document)
                return result
            finally:
                os.close(fd)  # releases the file lock
        except OSError as err:
            raise SeedreamSpendLedgerError(
                f"The spend ledger {self.location} could not be used: {err}"
            ) from None
        finally:
            self._thread_lock.release()

    def _late(self) -> SeedreamSpendLedgerError:
        return SeedreamSpendLedgerError(
            f"The spend ledger {self.location} stayed locked for {UPDATE_SECONDS:.0f} s; nothing was sent"
        )

    def _read(self) -> dict[str, Any]:
        try:
            with open(self.location, "rb") as handle:
                raw = handle.read(LEDGER_READ_LIMIT + 1)
        except FileNotFoundError:
            return new_ledger()
        return _parsed(raw, self.location)

    def _write(self, document: dict[str, Any]) -> None:
        temporary = f"{self.location}.{uuid.uuid4().hex[:12]}.part"
        try:
            with open(temporary, "wb") as handle:
                handle.write(json.dumps(document, separators=(",", ":")).encode())
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.location)
            # The rename itself is durable only once its folder is: else a power cut can bring back
            # the ledger from before a reservation.
            folder = os.open(os.path.dirname(os.path.abspath(self.location)), os.O_RDONLY)
            try:
                os.fsync(folder)
            finally:
                os.close(folder)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)


class S3Ledger:
    """A ledger object in S3, changed by conditional writes."""

    def __init__(self, path: Any, location: str) -> None:
        self.location = location
        self._path = path
        self._bucket, self._key, _ = path.fs.split_path(path.path)

    def update(self, change: Callable[[dict[str, Any]], T]) -> T:
        from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

        from airflow_provider_seedream._internal.s3 import s3_client

        client = s3_client(self._path)
        deadline, attempt = time.monotonic() + UPDATE_SECONDS, 0
        while True:
            attempt += 1
            try:
                document, etag = self._read(client)
                result = change(document)
                body = json.dumps(document, separators=(",", ":")).encode()
                condition = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
                client.put_object(Bucket=self._bucket, Key=self._key, Body=body, **condition)
                return result
            except ClientError as err:
                error = err.response.get("Error", {})
                status = str(err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
                if error.get("Code") not in _CONFLICTS and status not in _CONFLICTS:
                    raise SeedreamSpendLedgerError(
                        f"The spend ledger {self.location} could not be used: {error.get('Code')}: "
                        f"{error.get('Message')}"
                    ) from None
            except (OSError, BotoCoreError) as err:  # the endpoint is unreachable; a body cut short
                raise SeedreamSpendLedgerError(
                    f"The spend ledger {self.location} could not be used: {err}"
                ) from None
            if time.monotonic() > deadline:
                raise SeedreamSpendLedgerError(
                    f"The spend ledger {self.location} kept changing under {attempt} attempts in "
                    f"{UPDATE_SECONDS:.0f} s; nothing was sent"
                )
            time.sleep(random.uniform(0, min(0.001 * 2**attempt, 0.25)))  # lost a race: read again

    def _read(self, client: Any) -> tuple[dict[str, Any], str | None]:
        from botocore.exceptions import ClientError

        try:
            answer = client.get_object(Bucket=self._bucket, Key=self._key)
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return new_ledger(), None
            raise
        with answer["Body"] as body:
            raw = body.read(LEDGER_READ_LIMIT + 1)
        return _parsed(raw, self.location), str(answer["ETag"])


def _unusable(location: str, err: BaseException) -> SeedreamSpendLedgerError:
    return SeedreamSpendLedgerError(
        f"The spend ledger {location} could not be used ({err}); nothing was sent"
    )


def _parsed(raw: bytes, location: str) -> dict[str, Any]:
    try:
        if len(raw) > LEDGER_READ_LIMIT:
            raise ValueError(f"it is over {LEDGER_READ_LIMIT:,} bytes")
        return checked_ledger(json.loads(raw))
    except (ValueError, RecursionError) as err:
        raise SeedreamSpendLedgerError(
            f"The spend ledger {location} cannot be read ({err}): no ceiling can be checked against it. "
            "Move it aside to start counting anew.",
            retryable=False,
        ) from None
