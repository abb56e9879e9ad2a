"""The running task instance, for what records who did what (a cache record, the spend ledger)."""

from __future__ import annotations

from typing import Any


def running_task() -> dict[str, Any] | None:
    """The running task instance's ids and try; ``None`` outside a task."""
    from airflow.providers.common.compat.sdk import get_current_context

    try:
        ti = get_current_context()["ti"]
    except Exception:  # no task is running (each Airflow version says so with its own error)
        return None
    return {
        "dag_id": ti.dag_id,
        "run_id": ti.run_id,
        "task_id": ti.task_id,
        "map_index": ti.map_index,
        "try_number": ti.try_number,
    }
