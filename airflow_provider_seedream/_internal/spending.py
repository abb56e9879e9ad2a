"""The spend ceilings of one generation call (``contract.spend`` has the rule): which apply, the
reservation made in the ledger before anything is sent, and its settlement after the answer."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from airflow_provider_seedream._internal.ledger import Ledger, open_ledger
from airflow_provider_seedream._internal.task_context import finished_runs, running_task
from airflow_provider_seedream.contract.exceptions import SeedreamSpendLimitError, SeedreamValidationError
from airflow_provider_seedream.contract.spend import (
    Ceiling,
    day_account,
    micro,
    prune,
    reserve,
    run_account,
    runs_to_ask,
    settle,
    standing,
    task_account,
    usd,
    usd_amount,
)

if TYPE_CHECKING:
    from airflow_provider_seedream.contract.connection import ConnectionSettings
    from airflow_provider_seedream.contract.usage import Usage

RUNS_ASKED = 5
"""At most this many idle runs are asked about per settlement: pruning costs a few questions, once."""


class SpendGuard:
    """The ceilings that apply to one call, counted in ``ledger``; ``call_limit`` caps a call outside a
    task, which has no task instance to count its tries under."""

    def __init__(
        self,
        *,
        conn_id: str,
        usage: Usage,
        day: float | None,
        run: float | None,
        task: float | None,
        running: dict[str, Any] | None,
        ledger: Ledger | None,
    ) -> None:
        self._conn_id, self._usage, self._running, self._ledger = conn_id, usage, running, ledger
        self._limits = {"day": day, "run": run, "task": task}
        self.call_limit = task if running is None else None
        self._call_spent = 0

    @classmethod
    def for_generation(
        cls, settings: ConnectionSettings, conn_id: str, usage: Usage, max_spend_usd: Any
    ) -> SpendGuard | None:
        """The guard of a generation priced as ``usage`` says, or ``None`` when no ceiling applies.

        :raises SeedreamValidationError: ``max_spend_usd`` is no amount, no price is known while a
            ceiling applies, or the ledger cannot be one (see ``ledger.open_ledger``)."""
        task = usd_amount(max_spend_usd, "max_spend_usd")
        day, run = settings.max_spend_per_day_usd, settings.max_spend_per_run_usd
        running = running_task()
        run = run if running is not None else None  # a call outside a task belongs to no DAG run
        if day is None and run is None and task is None:
            return None
        if usage.price_per_image_usd is None:
            raise SeedreamValidationError(
                f"a spend ceiling applies, and no price is known for {usage.model}: set price_per_image "
                f'in connection {conn_id!r}\'s extra ({{"price_per_image": {{"{usage.model}": 0.04}}}})'
            )
        counted = day is not None or run is not None or (task is not None and running is not None)
        ledger = open_ledger(settings.spend_ledger, conn_id) if counted else None
        return cls(conn_id=conn_id, usage=usage, day=day, run=run, task=task, running=running, ledger=ledger)

    def _ceilings(self, now: datetime) -> list[Ceiling]:
        conn, running, limits = self._conn_id, self._running, self._limits
        ceilings = []
        if limits["day"] is not None:
            ceilings.append(Ceiling("day", limits["day"], day_account(conn, now.date().isoformat())))
        if running is not None:
            ids = running["dag_id"], running["run_id"]
            if limits["run"] is not None:
                ceilings.append(Ceiling("run", limits["run"], run_account(conn, *ids), run=ids))
            if limits["task"] is not None:
                account = task_account(conn, *ids, running["task_id"], running["map_index"])
                ceilings.append(Ceiling("task", limits["task"], account, run=ids))
        return ceilings

    def reserve(self, images: int) -> Reservation:
        """Reserve what ``images`` may cost in every ceiling, before the request is sent.

        :raises SeedreamSpendLimitError: a ceiling would be exceeded; nothing may be sent.
        :raises SeedreamSpendLedgerError: the ledger could not be read or written."""
        usage = self._usage
        amount = micro(usage.price_per_image_usd or 0) * images
        what = f"this request (up to {images} image(s) of {usage.model} at {usage.price_per_image_usd:g} USD)"
        if self.call_limit is not None and self._call_spent + amount > micro(self.call_limit):
            raise SeedreamSpendLimitError(
                f"max_spend_usd={self.call_limit:g} USD (this call) would be exceeded: "
                f"{usd(self._call_spent):g} USD spent so far, and {what} could cost {usd(amount):g} USD; "
                "nothing was sent.",
                ceiling="max_spend_usd",
                limit_usd=self.call_limit,
                spent_usd=usd(self._call_spent),
                reserved_usd=0.0,
                request_usd=usd(amount),
            )
        now = datetime.now(timezone.utc)
        ceilings = self._ceilings(now)
        reservation = Reservation(self, uuid.uuid4().hex, ceilings, amount)
        if self._ledger is not None and ceilings:

            def change(document: dict[str, Any]) -> dict[str, Any]:
                reserve(document, ceilings, amount, reservation.id, now, what=what)
                return document

            reservation.snapshot = self._ledger.update(change)
        return reservation

    def _end(self, reservation: Reservation, spent: int | None, log: Any) -> None:
        self._call_spent += spent or 0
        ledger, ceilings = self._ledger, reservation.ceilings
        if ledger is None or not ceilings:
            self._usage.ceilings = self._call_standing()
            return
        now = datetime.now(timezone.utc)
        current = {ceiling.run for ceiling in ceilings if ceiling.run is not None}

        def change(document: dict[str, Any]) -> list[dict[str, Any]]:
            settle(document, [ceiling.account for ceiling in ceilings], reservation.id, spent, now)
            prune(document, now, finished=lambda run: run in done)
            return [_standing(document, ceiling) for ceiling in ceilings]

        try:
            asked = runs_to_ask(reservation.snapshot or {"accounts": {}}, now, keep=current, most=RUNS_ASKED)
            done = finished_runs(asked) if asked else set()
            self._usage.ceilings = ledger.update(change) + self._call_standing()
        except Exception as err:  # the answer came: a ledger failure now must not lose what was paid for
            log.warning(
                "Could not settle the spend reservation in %s (%s): it stays reserved, which counts as spent",
                ledger.location,
                err,
            )

    def _call_standing(self) -> list[dict[str, Any]]:
        if self.call_limit is None:
            return []
        spent = usd(self._call_spent)
        return [
            {
                "ceiling": "max_spend_usd",
                "scope": "call",
                "limit_usd": self.call_limit,
                "spent_usd": spent,
                "reserved_usd": 0.0,
                "remaining_usd": round(max(self.call_limit - spent, 0), 6),
            }
        ]


class Reservation:
    """What one request reserved; ended once, by :meth:`settle`, :meth:`keep` or :meth:`release`."""

    def __init__(self, guard: SpendGuard, reservation_id: str, ceilings: list[Ceiling], amount: int) -> None:
        self._guard, self.id, self.ceilings, self.amount = guard, reservation_id, ceilings, amount
        self.snapshot: dict[str, Any] | None = None
        """The ledger as the reservation left it: which idle runs to ask about when it settles."""

    def settle(self, images: int, log: Any) -> None:
        """The answer came with ``images`` images: they are what was spent."""
        price = micro(self._guard._usage.price_per_image_usd or 0)
        self._guard._end(self, price * images, log)

    def keep(self, log: Any) -> None:
        """No usable answer came, and it may have been billed: all of it counts as spent."""
        self._guard._end(self, self.amount, log)

    def release(self, log: Any) -> None:
        """The request was never sent, or the API said it generated nothing: nothing was spent."""
        self._guard._end(self, None, log)


def _standing(document: dict[str, Any], ceiling: Ceiling) -> dict[str, Any]:
    spent, reserved = standing(document, ceiling.account)
    limit = ceiling.limit_usd
    return {
        "ceiling": ceiling.name,
        "scope": ceiling.kind,
        "limit_usd": limit,
        "spent_usd": usd(spent),
        "reserved_usd": usd(reserved),
        "remaining_usd": round(max(limit - usd(spent) - usd(reserved), 0), 6),
    }
