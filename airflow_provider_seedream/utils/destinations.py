"""Where a DAG may store what its tasks hand on: a local folder is one folder only when every task
runs on one machine."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from airflow.providers.common.compat.sdk import AirflowFailException, conf

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import ObjectStoragePath

SINGLE_HOST_EXECUTORS = frozenset({"LocalExecutor", "SequentialExecutor", "DebugExecutor"})
"""Executors that run every task on the scheduler's machine. Any other (Celery, Kubernetes, Edge, a
custom one) may run each task on a host of its own."""


def task_executors() -> list[str]:
    """The class names of the executors this Airflow may run a task on: every one of ``[core]
    executor`` (``LocalExecutor``, ``my_alias:my.module.MyExecutor``...), since a task can name any.
    A KubernetesExecutor worker pod says so in its environment: its own configuration often names
    LocalExecutor (the official Helm chart's pod template does)."""
    if os.environ.get("AIRFLOW_IS_K8S_EXECUTOR_POD", "").lower() == "true":
        return ["KubernetesExecutor"]
    configured = str(conf.get("core", "executor", fallback="LocalExecutor")).split(",")
    return [name.strip().rsplit(":", 1)[-1].rsplit(".", 1)[-1] for name in configured if name.strip()]


def require_shared_destination(destination: str | ObjectStoragePath, *, how_to_set: str = "") -> None:
    """Fail the task, without retries, when ``destination`` is a local folder and tasks may run on other
    hosts: what one task stores there would be missing for the next task and for the people who look.

    Call it in a DAG's first task, before anything is paid for. A folder every worker mounts (NFS, EFS)
    is shared, but nothing here can tell it from a local disk: give such a folder to the DAG without
    this check. ``how_to_set`` ends the message: how this DAG's users change its destination."""
    scheme = urlsplit(str(destination)).scheme
    elsewhere = [name for name in task_executors() if name not in SINGLE_HOST_EXECUTORS]
    if scheme not in ("", "file", "local") or not elsewhere:
        return
    executor = " and ".join(elsewhere)
    raise AirflowFailException(
        f"destination={str(destination)!r} is a folder on whichever machine runs each task, and this "
        f"Airflow runs tasks on {executor}, where tasks of one run may land on different hosts with "
        "disks of their own: what one task stores there is missing for the next and for you. Store into "
        f"object storage instead (s3://<bucket>/<prefix>, gs://..., abfs://...). {how_to_set}".rstrip()
    )
