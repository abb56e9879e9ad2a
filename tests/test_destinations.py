"""require_shared_destination: which destinations and executors it lets through."""

from __future__ import annotations

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_seedream.utils.destinations import require_shared_destination, task_executors


@pytest.mark.parametrize(
    ("configured", "names"),
    [
        ("LocalExecutor", ["LocalExecutor"]),
        ("CeleryExecutor,LocalExecutor", ["CeleryExecutor", "LocalExecutor"]),
        (
            "airflow.providers.cncf.kubernetes.executors.kubernetes_executor.KubernetesExecutor",
            ["KubernetesExecutor"],
        ),
        (
            " my_local:my_company.executors.LocalExecutor , CeleryExecutor",
            ["LocalExecutor", "CeleryExecutor"],
        ),
    ],
)
def test_every_configured_executor_counts(monkeypatch, configured, names):
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", configured)
    assert task_executors() == names


def test_a_kubernetes_worker_pod_is_known_by_its_environment(monkeypatch, tmp_path):
    """The official Helm chart's pod template sets LocalExecutor in worker pods; the executor marks them."""
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "LocalExecutor")
    monkeypatch.setenv("AIRFLOW_IS_K8S_EXECUTOR_POD", "True")
    with pytest.raises(AirflowFailException, match="runs tasks on KubernetesExecutor,"):
        require_shared_destination(tmp_path.as_uri())


@pytest.mark.parametrize(
    "executor", ["LocalExecutor", "SequentialExecutor", "LocalExecutor,SequentialExecutor"]
)
@pytest.mark.parametrize("destination", ["file:///tmp/assets", "/tmp/assets", "local:///tmp/assets"])
def test_a_local_folder_is_fine_where_every_task_runs_on_one_host(monkeypatch, executor, destination):
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", executor)
    require_shared_destination(destination)


@pytest.mark.parametrize("executor", ["CeleryExecutor", "KubernetesExecutor", "my.company.SpotExecutor"])
def test_object_storage_is_fine_anywhere(monkeypatch, executor):
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", executor)
    for destination in ("s3://bucket/assets", "gs://bucket/a", "abfs://container/a"):
        require_shared_destination(destination)
    require_shared_destination(ObjectStoragePath("s3://aws_default@bucket/assets"))


@pytest.mark.parametrize(
    "executor",
    ["CeleryExecutor", "KubernetesExecutor", "my.company.SpotExecutor", "LocalExecutor,CeleryExecutor"],
)
@pytest.mark.parametrize("destination", ["file:///tmp/assets", "/tmp/assets", "assets"])
def test_a_local_folder_is_refused_where_tasks_may_run_elsewhere(monkeypatch, executor, destination):
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", executor)
    with pytest.raises(AirflowFailException) as raised:
        require_shared_destination(destination, how_to_set="Set the param 'out'.")
    message = str(raised.value)
    assert message.startswith(f"destination='{destination}' is a folder on whichever machine runs each task")
    assert f"runs tasks on {executor.rsplit('.', 1)[-1].removeprefix('LocalExecutor,')}," in message
    assert message.endswith("(s3://<bucket>/<prefix>, gs://..., abfs://...). Set the param 'out'.")
