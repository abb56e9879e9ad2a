"""@task.seedream: what the function returns is generated as SeedreamGenerateOperator generates it."""

from __future__ import annotations

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_seedream.contract.exceptions import SeedreamValidationError


def _xcom(dag_run, task_id, map_index=-1):
    return dag_run.get_task_instance(task_id, map_index=map_index).xcom_pull(
        task_ids=task_id, map_indexes=map_index
    )


def test_registered_with_airflow_task():
    from airflow.providers.common.compat.sdk import task

    from airflow_provider_seedream.decorators.seedream import seedream_task

    assert task.seedream is seedream_task


@pytest.mark.parametrize(("model", "size"), [("seedream-4.5", "1K"), ("seedream-5.0-lite", "4K")])
def test_decorator_arguments_are_validated_when_the_dag_is_parsed(model, size):
    from airflow.providers.common.compat.sdk import DAG, task

    message = f"size='{size}' is not valid for {model}"
    with DAG("parse_check", schedule=None), pytest.raises(SeedreamValidationError, match=message):

        @task.seedream(model=model, size=size)  # 1K is Seedream 4.0's, 4K not 5.0 lite's
        def poster() -> str:
            return "p"

        poster()


def test_multiple_outputs_is_refused():
    from airflow.providers.common.compat.sdk import task

    with pytest.raises(TypeError, match="multiple_outputs"):
        task.seedream(multiple_outputs=True)


def test_plain_dict_and_mapped(run_dag, connection):
    dag_run = run_dag("seedream_decorator_test", run_conf={"product": "teapot"})
    assert dag_run.state == "success"
    bodies = sorted(
        ((request.path, request.body) for request in connection.generation_requests()),
        key=lambda item: item[1]["prompt"],
    )
    assert bodies == [
        ("/v3/seedream-4.5", {"prompt": "a blue lamp", "size": "2K"}),
        (
            "/v3/seedream-5.0-lite",
            {
                "prompt": "a lamp catalog page",
                "size": "3K",
                "image": ["https://cdn.example.com/lamp.png"],
                "sequential_image_generation": "auto",
                "sequential_image_generation_options": {"max_images": 2},
            },
        ),
        ("/v3/seedream-4.5", {"prompt": "a poster of a teapot", "size": "2K", "watermark": False}),
        ("/v3/seedream-4.5", {"prompt": "a red lamp", "size": "2K"}),
        (
            "/v3/seedream-4.0",
            {"prompt": "a storyboard", "size": "1K", "sequential_image_generation": "auto", "max_images": 3},
        ),
    ]
    (url,) = _xcom(dag_run, "poster")
    assert url.startswith(f"{connection.url}/files/")
    assert len(_xcom(dag_run, "storyboard")) == 3
    assert len(_xcom(dag_run, "lite")) == 2
    assert _xcom(dag_run, "count") == 1 + 3 + 2 + 2
    mapped = dag_run.get_task_instances()
    names = {ti.rendered_map_index for ti in mapped if ti.task_id == "variant"}
    assert names == {"a red lamp", "a blue lamp"}


@pytest.mark.parametrize(
    ("returned", "message"),
    [
        ("42", "must return the prompt (a str) or a dict of generation arguments"),
        ("prompt-less", "the returned dict has no 'prompt'"),
        ("unknown", "the returned dict has 'colour', which is not a generation argument"),
    ],
)
def test_a_wrong_return_fails_without_retries_or_requests(
    run_dag, connection, failure_logged, returned, message
):
    dag_run = run_dag("seedream_decorator_failure_test", run_conf={"returned": returned})
    assert dag_run.state == "failed"
    assert dag_run.get_task_instance("wrong").try_number == 1
    assert connection.requests == []
    assert failure_logged(message, AirflowFailException)
