"""Spend ceilings, as plain data: what a task, a DAG run and a UTC day may spend, and the ledger that
counts it (one JSON document; ``_internal.ledger`` keeps it where every worker sees it, and changes it
atomically). Plain Python, no Airflow and no I/O.

The rule: before a generation is sent it reserves what it may cost at most (the most images it may
return, times the price) in every ceiling that applies; if one would be exceeded nothing is sent.
After the answer the reservation settles to the images returned. A request that may have been billed
keeps its reservation (never under-count); one that was never sent releases it.

Amounts are kept in micro-dollars (integers), so that ten reservations of $0.04 fill a $0.40 ceiling
exactly.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from airflow_provider_seedream.contract.exceptions import SeedreamSpendLimitError, SeedreamValidationError

LEDGER_FORMAT = 1
MICRO = 1_000_000
DAYS_KEPT = 7
"""Day accounts are kept this long (UTC days), then pruned."""
RUN_IDLE = timedelta(hours=1)
"""A run account untouched this long is asked about: pruned once its run has finished."""
RUNS_KEPT = timedelta(days=30)
"""A run or task account untouched this long is pruned whatever its run's state: the ledger is bounded
even where nobody can say whether a run finished (a call outside a task)."""
CEILING_NAMES = {
    "day": "max_spend_per_day_usd",
    "run": "max_spend_per_run_usd",
    "task": "max_spend_usd",
}
"""Each ceiling's setting: two connection extras and the task parameter."""


def usd_amount(value: Any, field: str) -> float | None:
    """A ceiling's value as given (a number, or a rendered template's text): ``None`` for unset.

    :raises SeedreamValidationError: it is no finite number >= 0; names ``field``."""
    if value is None or (isinstance(value, str) and value.strip() in ("", "None")):
        return None
    try:
        amount = float(value.strip() if isinstance(value, str) else value)
        if isinstance(value, bool):
            raise ValueError
    except (TypeError, ValueError):
        amount = math.nan
    if not (math.isfinite(amount) and amount >= 0):
        raise SeedreamValidationError(f"{field}={value!r}: must be a finite number of USD >= 0")
    return amount


def micro(usd: float) -> int:
    return round(usd * MICRO)


def usd(amount: int) -> float:
    return round(amount / MICRO, 6)


@dataclass(frozen=True)
class Ceiling:
    """One ceiling that applies to a generation: its kind (``day``, ``run``, ``task``), its limit, and
    the ledger account that counts against it."""

    kind: str
    limit_usd: float
    account: str
    run: tuple[str, str] | None = None
    """The DAG run an account of kind ``run`` or ``task`` belongs to (dag_id, run_id)."""

    @property
    def name(self) -> str:
        return CEILING_NAMES[self.kind]


def day_account(conn_id: str, day: str) -> str:
    return f"day/{conn_id}/{day}"


def run_account(conn_id: str, dag_id: str, run_id: str) -> str:
    return f"run/{conn_id}/{dag_id}/{run_id}"


def task_account(conn_id: str, dag_id: str, run_id: str, task_id: str, map_index: int) -> str:
    return f"task/{conn_id}/{dag_id}/{run_id}/{task_id}/{map_index}"


def new_ledger() -> dict[str, Any]:
    return {"format": LEDGER_FORMAT, "accounts": {}}


def checked_ledger(document: Any) -> dict[str, Any]:
    """``document`` if it is a ledger, else a refusal: a broken ledger cannot prove a ceiling holds.

    :raises ValueError: it is not one."""
    if not isinstance(document, dict) or document.get("format") != LEDGER_FORMAT:
        raise ValueError("it is not a spend ledger of this provider")
    accounts = document.get("accounts")
    if not isinstance(accounts, dict) or not all(
        isinstance(account, dict)
        and type(account.get("spent")) is int
        and isinstance(account.get("reserved"), dict)
        and all(type(amount) is int for amount in account["reserved"].values())
        for account in accounts.values()
    ):
        raise ValueError("its accounts are malformed")
    return document


def standing(document: dict[str, Any], account: str) -> tuple[int, int]:
    """(spent, reserved) in micro-dollars."""
    entry = document["accounts"].get(account) or {}
    return int(entry.get("spent", 0)), sum(entry.get("reserved", {}).values())


def reserve(
    document: dict[str, Any],
    ceilings: Iterable[Ceiling],
    amount: int,
    reservation: str,
    now: datetime,
    *,
    what: str,
) -> None:
    """Reserve ``amount`` under ``reservation`` in every ceiling's account, or in none.

    :raises SeedreamSpendLimitError: a ceiling would be exceeded; ``what`` says what the request is."""
    ceilings = list(ceilings)
    if ceilings and all(
        reservation in document["accounts"].get(ceiling.account, {}).get("reserved", {})
        for ceiling in ceilings
    ):
        return  # already made: a conditional write that landed, retried by the store's client
    for ceiling in ceilings:
        spent, reserved = standing(document, ceiling.account)
        if spent + reserved + amount > micro(ceiling.limit_usd):
            raise SeedreamSpendLimitError(
                f"{ceiling.name}={ceiling.limit_usd:g} USD ({_scope(ceiling)}) would be exceeded: "
                f"{usd(spent):g} USD spent and {usd(reserved):g} USD reserved so far, and {what} could cost "
                f"{usd(amount):g} USD; nothing was sent. Raise the ceiling, or wait for the next "
                f"{'UTC day' if ceiling.kind == 'day' else 'run'}. Costs are estimates (the model's list "
                "price, or the connection's price_per_image); the real bill is Novita's.",
                ceiling=ceiling.name,
                limit_usd=ceiling.limit_usd,
                spent_usd=usd(spent),
                reserved_usd=usd(reserved),
                request_usd=usd(amount),
            )
    for ceiling in ceilings:
        entry = document["accounts"].setdefault(ceiling.account, {"spent": 0, "reserved": {}})
        entry["reserved"][reservation] = amount
        entry["touched"] = now.isoformat(timespec="seconds")
        if ceiling.run is not None:
            entry["run"] = list(ceiling.run)


def settle(
    document: dict[str, Any], accounts: Iterable[str], reservation: str, spent: int | None, now: datetime
) -> None:
    """End ``reservation`` in ``accounts``: ``spent`` micro-dollars were spent (``None``: nothing was,
    the reservation is released). An account pruned meanwhile is left pruned."""
    for account in accounts:
        entry = document["accounts"].get(account)
        if entry is None or reservation not in entry["reserved"]:
            continue
        del entry["reserved"][reservation]
        entry["spent"] += spent or 0
        entry["touched"] = now.isoformat(timespec="seconds")


def runs_to_ask(
    document: dict[str, Any], now: datetime, keep: Iterable[tuple[str, str]] = (), most: int = 5
) -> set[tuple[str, str]]:
    """At most ``most`` runs whose accounts nobody touched for ``RUN_IDLE``, worth asking whether they
    finished: a random sample, so that runs that never finish (stuck, deleted) cannot keep the others
    from being asked, and pruned, forever."""
    kept = set(keep)
    runs = set()
    for entry in document["accounts"].values():
        run = tuple(entry.get("run") or ())
        if len(run) == 2 and run not in kept and _age(entry, now) > RUN_IDLE:
            runs.add((str(run[0]), str(run[1])))
    return set(random.sample(sorted(runs), min(most, len(runs))))


def prune(document: dict[str, Any], now: datetime, finished: Callable[[tuple[str, str]], bool]) -> None:
    """Drop day accounts older than ``DAYS_KEPT``, run and task accounts of ``finished`` runs that are
    still idle, and any run or task account untouched for ``RUNS_KEPT``."""
    oldest_day = (now - timedelta(days=DAYS_KEPT)).date().isoformat()
    for key in list(document["accounts"]):
        entry = document["accounts"][key]
        run = tuple(entry.get("run") or ())
        if key.startswith("day/"):
            stale = key.rsplit("/", 1)[-1] < oldest_day
        else:
            # "Finished" was asked of an earlier read: a run cleared since then is busy again.
            idle = _age(entry, now) > RUN_IDLE
            stale = _age(entry, now) > RUNS_KEPT or (
                idle and len(run) == 2 and finished((str(run[0]), str(run[1])))
            )
        if stale:
            del document["accounts"][key]


def _age(entry: dict[str, Any], now: datetime) -> timedelta:
    try:
        return now - datetime.fromisoformat(str(entry.get("touched")))
    except (TypeError, ValueError):  # unreadable, or without a time zone
        return RUNS_KEPT * 2


def _scope(ceiling: Ceiling) -> str:
    if ceiling.kind == "day":
        _, conn_id, day = ceiling.account.rsplit("/", 2)
        return f"connection {conn_id!r} on {day} UTC"
    if ceiling.kind == "run" and ceiling.run is not None:
        return f"DAG run {ceiling.run[1]} of {ceiling.run[0]}"
    return "every try of this task instance"
