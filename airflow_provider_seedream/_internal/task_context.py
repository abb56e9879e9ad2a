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


FINISHED_STATES = ("success", "failed")


def finished_runs(runs: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """Which of ``runs`` (dag_id, run_id) Airflow says have finished: asked of the task's own Airflow,
    one question per DAG. Outside a task, or where the question cannot be asked, none."""
    from airflow.providers.common.compat.sdk import get_current_context

    try:
        ti = get_current_context()["ti"]
    except Exception:  # no task is running
        return set()
    by_dag: dict[str, list[str]] = {}
    for dag_id, run_id in runs:
        by_dag.setdefault(dag_id, []).append(run_id)
    finished = set()
    for dag_id, run_ids in by_dag.items():
        try:
            finished |= {(dag_id, run_id) for run_id in _finished(ti, dag_id, run_ids)}
        except Exception:  # the answer is only used to prune: without one, the accounts stay
            continue
    return finished


def _finished(ti: Any, dag_id: str, run_ids: list[str]) -> list[str]:
    if hasattr(ti, "get_dr_count"):  # Airflow 3: the task asks its supervisor
        return [
            run_id
            for run_id in run_ids
            if ti.get_dr_count(dag_id=dag_id, run_ids=[run_id], states=list(FINISHED_STATES))
        ]
    from airflow.models.dagrun import DagRun  # Airflow 2: tasks read the metadata DB

    found = DagRun.find(dag_id=dag_id, run_id=run_ids)
    return [run.run_id for run in found if run.state in FINISHED_STATES]
