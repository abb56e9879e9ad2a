"""Generations across task tries: a try that fails after getting links, and one killed while waiting."""

from __future__ import annotations

import pendulum
from airflow.providers.common.compat.sdk import DAG

from airflow_provider_seedream.operators.seedream import SeedreamGenerateOperator


class FailsOnceAfterGenerating(SeedreamGenerateOperator):
    """Stands for any failure after the links arrived: a lost worker, an XCom backend that is down."""

    def post_execute(self, context, result=None):
        if context["ti"].try_number == 1:
            raise RuntimeError("the worker was lost after the generation answered")


with DAG(
    "seedream_durable_after_generating_test",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    default_args={"retries": 2, "retry_delay": pendulum.duration(seconds=0)},
):
    FailsOnceAfterGenerating(task_id="gen", prompt="a red bicycle", sequential_image_generation="auto")

with DAG(
    "seedream_durable_killed_while_waiting_test",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    default_args={"retries": 2, "retry_delay": pendulum.duration(seconds=0)},
):
    # execution_timeout interrupts the wait for the answer, as a killed worker would: the request was sent.
    SeedreamGenerateOperator(
        task_id="gen", prompt="a red bicycle", execution_timeout=pendulum.duration(seconds=1)
    )
