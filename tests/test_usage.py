"""What a generation task spent: requests counted at the server, images paid, and the estimate, in the
XCom ``usage`` and the log, on success and on failure after sending."""

from __future__ import annotations

import pytest
from conftest import json_connection

from airflow_provider_seedream.contract.connection import ConnectionSettings
from airflow_provider_seedream.contract.exceptions import (
    SeedreamConnectionError,
    SeedreamPossiblyBilledError,
    SeedreamValidationError,
)
from airflow_provider_seedream.contract.usage import Usage
from airflow_provider_seedream.hooks.seedream import SeedreamHook
from airflow_provider_seedream.testing import Fault

LISTINGS = "public list prices seen on third-party pages, not Novita's own pricing page"


def usage_of(dag_run, task_id: str) -> dict:
    return dag_run.get_task_instance(task_id).xcom_pull(task_ids=task_id, key="usage")


@pytest.mark.parametrize(
    ("model", "price"), [("seedream-4.0", 0.03), ("seedream-4.5", 0.04), ("seedream-5.0-lite", 0.035)]
)
def test_every_model_has_a_list_price_with_its_source(model, price):
    usage = Usage.for_model(model, {}, "seedream_default")
    assert (usage.price_per_image_usd, usage.price_source) == (
        price,
        f"list price of {model}, {LISTINGS}, 2026-11",
    )


def test_the_connection_price_overrides_the_list_price():
    usage = Usage.for_model("seedream-4.5", {"seedream-4.5": 0.05}, "novita_prod")
    usage.count_answer(3)
    assert usage.to_dict() == {
        "model": "seedream-4.5",
        "price_per_image_usd": 0.05,
        "price_source": "connection 'novita_prod' extra price_per_image",
        "requests_sent": 1,
        "images_generated": 3,
        "images_reused": 0,
        "possibly_billed_requests": 0,
        "possibly_billed_images": 0,
        "ceilings": [],
        "estimated_cost_usd": 0.15,
        "estimated_saving_usd": 0.0,
    }


def test_prices_in_the_connection_are_checked():
    with pytest.raises(
        SeedreamValidationError,
        match=r"price_per_image=\{'seedream-9': 0.1\}: 'seedream-9' is not a model; known: seedream-4.0, ",
    ):
        ConnectionSettings.from_extra({"price_per_image": {"seedream-9": 0.1}})
    with pytest.raises(SeedreamValidationError, match=r"seedream-4.5: -0.01 is not a price in USD"):
        ConnectionSettings.from_extra({"price_per_image": {"seedream-4.5": -0.01}})
    with pytest.raises(SeedreamValidationError, match=r"price_per_image\.seedream-4\.5='cheap'"):
        ConnectionSettings.from_extra({"price_per_image": {"seedream-4.5": "cheap"}})
    assert ConnectionSettings.from_extra({"price_per_image": {"seedream-4.0": 0.02}}).price_per_image == {
        "seedream-4.0": 0.02
    }
    assert "price_per_image" not in ConnectionSettings.form_fields()  # a mapping: set in the extra's JSON


def test_the_hook_counts_what_was_sent_and_what_may_have_been_billed(connection):
    hook = SeedreamHook()
    connection.fail_next(429, headers={"Retry-After": "0"})
    connection.fail_next(503)
    prepared = hook.prepare_generation(prompt="p", sequential_image_generation="auto", max_images=4)
    usage = hook.usage_for("seedream-4.5")
    assert len(hook.send_generation(prepared, usage=usage)) == 4
    assert (usage.requests_sent, usage.images_generated) == (3, 4) == (len(connection.requests), 4)
    assert usage.estimated_cost_usd == 0.16

    connection.inject(Fault(drop=True))  # sent, then the connection closed: possibly billed
    with pytest.raises(SeedreamPossiblyBilledError, match="may have run and been billed"):
        hook.send_generation(prepared, usage=usage)
    assert (usage.requests_sent, usage.possibly_billed_requests, usage.possibly_billed_images) == (4, 1, 4)
    assert len(connection.requests) == 4
    assert usage.summary() == (
        "seedream-4.5: 4 requests sent, 4 images generated (paid), 0 reused; estimated cost $0.16 "
        f"(saved $0.00) at $0.04 per image (list price of seedream-4.5, {LISTINGS}, 2026-11; an "
        "estimate); 1 request got no usable answer and may have been billed for up to 4 images ($0.16) more"
    )


def test_a_request_that_could_not_connect_was_not_sent(monkeypatch, airflow_db):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        refused = f"http://127.0.0.1:{sock.getsockname()[1]}"
    monkeypatch.setenv(
        "AIRFLOW_CONN_SEEDREAM_DEFAULT",
        json_connection(refused, extra={"max_retries": 1, "backoff_seconds": 0}),
    )
    hook = SeedreamHook()
    usage = hook.usage_for("seedream-4.5")
    with pytest.raises(SeedreamConnectionError, match="connection refused"):
        hook.send_generation(hook.prepare_generation(prompt="p"), usage=usage)
    assert (usage.requests_sent, usage.possibly_billed_requests, usage.estimated_cost_usd) == (0, 0, 0.0)


class TestDagRuns:
    def test_each_task_reports_its_spend(self, run_dag, connection, logs):
        dag_run = run_dag("seedream_generate_test")
        assert dag_run.state == "success"
        spent = {task_id: usage_of(dag_run, task_id) for task_id in ("gen", "gen_40", "gen_50_lite")}
        assert {
            task_id: (u["requests_sent"], u["images_generated"], u["estimated_cost_usd"])
            for task_id, u in spent.items()
        } == {
            "gen": (1, 1, 0.04),
            "gen_40": (1, 3, 0.09),
            "gen_50_lite": (1, 1, 0.035),
        }
        assert len(connection.generation_requests()) == 3
        assert (
            "Seedream spend: seedream-4.0: 1 request sent, 3 images generated (paid), 0 reused; "
            "estimated cost $0.09" in logs()
        )

    def test_a_try_that_failed_after_sending_reports_what_it_may_have_cost(self, run_dag, connection):
        connection.inject(Fault(drop=True))
        dag_run = run_dag("seedream_failure_test")
        assert dag_run.state == "failed"
        assert dag_run.get_task_instance("gen").try_number == 1  # possibly billed: no retry spent
        assert len(connection.generation_requests()) == 1
        assert usage_of(dag_run, "gen") == {
            "model": "seedream-4.5",
            "price_per_image_usd": 0.04,
            "price_source": f"list price of seedream-4.5, {LISTINGS}, 2026-11",
            "requests_sent": 1,
            "images_generated": 0,
            "images_reused": 0,
            "possibly_billed_requests": 1,
            "possibly_billed_images": 1,
            "ceilings": [],
            "estimated_cost_usd": 0.0,
            "estimated_saving_usd": 0.0,
        }

    def test_a_retry_reports_its_own_try(self, run_dag, connection, logs):
        connection.fail_next(503, times=4)  # the first try spends the hook's retries; the second succeeds
        dag_run = run_dag("seedream_failure_test")
        assert dag_run.state == "success" and dag_run.get_task_instance("gen").try_number == 2
        assert len(connection.requests) == 5
        assert (usage_of(dag_run, "gen")["requests_sent"], usage_of(dag_run, "gen")["images_generated"]) == (
            1,
            1,
        )
        assert "Seedream spend: seedream-4.5: 4 requests sent, 0 images generated (paid)" in logs()
