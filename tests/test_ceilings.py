"""Spend ceilings: what a task, a DAG run and a UTC day may spend, held atomically by every thread,
process and worker, counted at the sandbox (every ``posts`` is the generations it received)."""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import pytest
from conftest import json_connection

from airflow_provider_seedream.contract.exceptions import (
    SeedreamSpendLedgerError,
    SeedreamSpendLimitError,
    SeedreamValidationError,
)
from airflow_provider_seedream.hooks.seedream import SeedreamHook
from airflow_provider_seedream.testing import Fault

PRICE = 0.04  # seedream-4.5's list price: ten images are $0.40


def posts(sandbox) -> int:
    return len(sandbox.generation_requests())


def read_ledger(path: str) -> dict:
    with open(path) as handle:
        return json.load(handle)


@pytest.fixture
def capped(connection, monkeypatch, tmp_path):
    """Set the ``seedream_default`` connection's ceilings (extras), with its ledger in this test's
    folder unless ``spend_ledger`` is given; returns the sandbox."""

    def cap(**extra) -> str:
        extra.setdefault("spend_ledger", str(tmp_path / "ledger.json"))
        fast = {"backoff_seconds": 0.01, "max_backoff_seconds": 0.05}
        monkeypatch.setenv(
            "AIRFLOW_CONN_SEEDREAM_DEFAULT", json_connection(connection.url, extra={**fast, **extra})
        )
        return extra["spend_ledger"]

    return cap


def race(count: int, generate) -> tuple[int, int]:
    """``count`` generations at once: how many were sent, and how many a ceiling refused."""
    start = threading.Barrier(count)

    def one(index: int) -> str:
        start.wait()
        try:
            generate(index)
        except SeedreamSpendLimitError:
            return "refused"
        return "sent"

    with ThreadPoolExecutor(count) as pool:
        outcomes = list(pool.map(one, range(count)))
    return outcomes.count("sent"), outcomes.count("refused")


GENERATE_IN_A_PROCESS = """
import sys, threading
from airflow_provider_seedream.contract.exceptions import SeedreamSpendLimitError
from airflow_provider_seedream.hooks.seedream import SeedreamHook
hook, outcomes = SeedreamHook(), []
def one(index):
    try:
        hook.generate(f"process {sys.argv[1]} image {index}")
        outcomes.append("sent")
    except SeedreamSpendLimitError:
        outcomes.append("refused")
threads = [threading.Thread(target=one, args=(index,)) for index in range(int(sys.argv[2]))]
for thread in threads: thread.start()
for thread in threads: thread.join()
print("SENT", outcomes.count("sent"), "REFUSED", outcomes.count("refused"))
"""


def in_processes(processes: int, generations: int) -> tuple[int, int]:
    """``processes`` interpreters generating ``generations`` each, at once, through the environment's
    connection: how many were sent and refused in all."""
    running = [
        subprocess.Popen(
            [sys.executable, "-c", GENERATE_IN_A_PROCESS, str(number), str(generations)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for number in range(processes)
    ]
    sent = refused = 0
    for process in running:
        out, err = process.communicate(timeout=240)
        (line,) = [line for line in out.splitlines() if line.startswith("SENT")] or [f"none: {err[-2000:]}"]
        _, done, _, said_no = line.split()
        sent, refused = sent + int(done), refused + int(said_no)
    return sent, refused


class TestDayCeiling:
    def test_thirty_threads_on_one_hook_send_exactly_what_the_day_allows(self, capped, connection):
        capped(max_spend_per_day_usd=10 * PRICE)
        connection.latency = 0.05  # all of them in flight together
        hook = SeedreamHook()
        assert race(30, lambda index: hook.generate(f"image {index}")) == (10, 20)
        assert posts(connection) == 10

    def test_three_processes_share_one_local_ledger(self, capped, connection):
        capped(max_spend_per_day_usd=10 * PRICE)
        connection.latency = 0.05
        assert in_processes(3, 8) == (10, 14)
        assert posts(connection) == 10

    def test_the_refusal_says_which_ceiling_and_what_is_left(self, capped, connection):
        capped(max_spend_per_day_usd=2.5 * PRICE)
        hook = SeedreamHook()
        hook.generate("first")
        hook.generate("second")
        with pytest.raises(SeedreamSpendLimitError) as refused:
            hook.generate("third")
        err = refused.value
        assert posts(connection) == 2
        today = datetime.now(timezone.utc).date().isoformat()
        assert f"max_spend_per_day_usd=0.1 USD (connection 'seedream_default' on {today} UTC)" in str(err)
        assert "0.08 USD spent and 0 USD reserved so far, and this request" in str(err)
        assert "could cost 0.04 USD; nothing was sent" in str(err)
        assert (err.ceiling, err.limit_usd, err.spent_usd, err.request_usd) == (
            "max_spend_per_day_usd",
            0.1,
            0.08,
            0.04,
        )

    def test_a_sequential_generation_reserves_its_max_images(self, capped, connection):
        capped(max_spend_per_day_usd=4 * PRICE)
        hook = SeedreamHook()
        with pytest.raises(SeedreamSpendLimitError, match=r"could cost 0\.2 USD"):
            hook.generate("a storyboard", sequential_image_generation="auto", max_images=5)
        assert posts(connection) == 0
        # Without max_images the API may return up to 15: that is what it reserves.
        with pytest.raises(SeedreamSpendLimitError, match=r"up to 15 image\(s\)"):
            hook.generate("a storyboard", sequential_image_generation="auto")
        # 4 fit, and settle to what came back; what is left then fits the rest.
        assert len(hook.generate("a storyboard", sequential_image_generation="auto", max_images=4)) == 4
        with pytest.raises(SeedreamSpendLimitError, match=r"0\.16 USD spent and 0 USD reserved"):
            hook.generate("one more")
        assert posts(connection) == 1

    def test_a_try_that_died_after_sending_stays_counted(self, capped, connection):
        capped(max_spend_per_day_usd=1.5 * PRICE)
        connection.inject(Fault(delay=60))  # the answer never comes before the process dies
        process = subprocess.Popen([sys.executable, "-c", GENERATE_IN_A_PROCESS, "killed", "1"])
        deadline = time.monotonic() + 60
        while posts(connection) == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert posts(connection) == 1
        process.send_signal(signal.SIGKILL)
        process.wait()
        with pytest.raises(SeedreamSpendLimitError, match=r"0 USD spent and 0\.04 USD reserved"):
            SeedreamHook().generate("after the kill")
        assert posts(connection) == 1

    def test_a_request_never_sent_releases_its_reservation(self, capped, connection, monkeypatch):
        connection.fail_next(429, {"reason": "RATE_LIMIT_EXCEEDED"}, times=100)
        ledger = capped(max_spend_per_day_usd=PRICE, max_retries=0, rate_limit_wait_seconds=0)
        from airflow_provider_seedream.contract.exceptions import SeedreamRateLimitError

        with pytest.raises(SeedreamRateLimitError):
            SeedreamHook().generate("rate limited")
        (account,) = read_ledger(ledger)["accounts"].values()
        assert (account["spent"], account["reserved"]) == (0, {})

    def test_a_possibly_billed_failure_counts_as_spent(self, capped, connection):
        ledger = capped(max_spend_per_day_usd=PRICE)
        connection.fail_next(502, times=1)
        from airflow_provider_seedream.contract.exceptions import SeedreamGatewayError

        with pytest.raises(SeedreamGatewayError):
            SeedreamHook().generate("maybe billed")
        (account,) = read_ledger(ledger)["accounts"].values()
        assert (account["spent"], account["reserved"]) == (40_000, {})
        with pytest.raises(SeedreamSpendLimitError):
            SeedreamHook().generate("no more today")
        assert posts(connection) == 1

    def test_a_cache_hit_reserves_nothing(self, capped, connection, tmp_path):
        capped(max_spend_per_day_usd=PRICE)
        hook = SeedreamHook()
        first = hook.generate("a red bicycle", cache=str(tmp_path / "cache"))
        assert (
            hook.generate("a red bicycle", cache=str(tmp_path / "cache")) == first
        )  # over the ceiling if paid
        assert posts(connection) == 1


class TestLedgers:
    def test_races_on_s3_through_conditional_writes(self, capped, connection, bucket, fresh_filesystems):
        capped(max_spend_per_day_usd=10 * PRICE, spend_ledger=bucket.uri("seedream/ledger.json"))
        connection.latency = 0.05
        hook = SeedreamHook()
        assert race(30, lambda index: hook.generate(f"image {index}")) == (10, 20)
        assert posts(connection) == 10
        document = json.loads(bucket.read("seedream/ledger.json"))
        (account,) = document["accounts"].values()
        assert (account["spent"], account["reserved"]) == (400_000, {})

    def test_processes_race_on_s3(self, capped, connection, bucket, fresh_filesystems):
        capped(max_spend_per_day_usd=10 * PRICE, spend_ledger=bucket.uri("seedream/ledger.json"))
        connection.latency = 0.05
        assert in_processes(3, 8) == (10, 14)
        assert posts(connection) == 10

    def test_a_store_without_conditional_writes_is_refused(self, capped, connection):
        capped(max_spend_per_day_usd=1, spend_ledger="memory://ledgers/seedream.json")
        with pytest.raises(SeedreamValidationError, match=r"memory:// offers no conditional write"):
            SeedreamHook().generate("x")
        assert posts(connection) == 0

    def test_a_local_ledger_is_refused_where_tasks_run_on_other_hosts(self, capped, connection, monkeypatch):
        capped(max_spend_per_day_usd=1)
        monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "CeleryExecutor")
        with pytest.raises(SeedreamValidationError, match="each host would count only its own spend"):
            SeedreamHook().generate("x")
        assert posts(connection) == 0

    def test_a_broken_ledger_refuses_rather_than_guess(self, capped, connection):
        ledger = capped(max_spend_per_day_usd=1)
        with open(ledger, "w") as handle:
            handle.write('{"format": 1, "accounts": {"day/x": {"spent": "lots"}}}')
        with pytest.raises(SeedreamSpendLedgerError, match=r"cannot be read .* Move it aside"):
            SeedreamHook().generate("x")
        assert posts(connection) == 0

    def test_old_days_and_finished_runs_are_pruned(self, capped, connection, run_dag):
        ledger = capped(max_spend_per_run_usd=1)
        finished = run_dag("seedream_ceiling_tries_test")
        long_ago = (datetime.now(timezone.utc) - timedelta(days=40)).isoformat()
        an_hour_ago = (datetime.now(timezone.utc) - timedelta(hours=2)).isoformat()
        accounts = read_ledger(ledger)["accounts"]
        accounts |= {
            "day/seedream_default/2026-01-01": {"spent": 1, "reserved": {}},
            "run/seedream_default/gone/forgotten": {
                "spent": 1,
                "reserved": {},
                "touched": long_ago,
                "run": ["gone", "forgotten"],
            },
            "run/seedream_default/unknown/recent": {
                "spent": 1,
                "reserved": {},
                "touched": datetime.now(timezone.utc).isoformat(),
                "run": ["unknown", "recent"],
            },
        }
        for entry in accounts.values():
            if entry.get("run") == ["seedream_ceiling_tries_test", finished.run_id]:
                entry["touched"] = an_hour_ago
        with open(ledger, "w") as handle:
            json.dump({"format": 1, "accounts": accounts}, handle)
        second = run_dag("seedream_ceiling_mapped_test", run_conf={"prompts": 1})
        assert second.state == "success"
        kept = read_ledger(ledger)["accounts"]
        assert sorted(kept) == sorted(
            [
                f"run/seedream_default/seedream_ceiling_mapped_test/{second.run_id}",
                "run/seedream_default/unknown/recent",
            ]
        )


class TestRunAndTaskCeilings:
    def test_nine_mapped_tasks_under_a_five_image_run_ceiling(
        self, capped, connection, run_dag, failure_logged
    ):
        capped(max_spend_per_run_usd=5 * PRICE)
        dag_run = run_dag("seedream_ceiling_mapped_test")
        tis = [dag_run.get_task_instance("generate", map_index=index) for index in range(9)]
        assert posts(connection) == 5
        assert sorted(ti.state for ti in tis) == ["failed"] * 4 + ["success"] * 5
        assert all(ti.try_number == 1 for ti in tis)  # a refusal spends no retry
        scope = f"(DAG run {dag_run.run_id} of seedream_ceiling_mapped_test)"
        assert failure_logged(f"max_spend_per_run_usd=0.2 USD {scope} would be exceeded", Exception)
        usage = [
            ti.xcom_pull(task_ids="generate", map_indexes=ti.map_index, key="usage")
            for ti in tis
            if ti.state == "success"
        ]
        last = max(usage, key=lambda one: one["ceilings"][0]["spent_usd"])["ceilings"]
        assert last == [
            {
                "ceiling": "max_spend_per_run_usd",
                "scope": "run",
                "limit_usd": 0.2,
                "spent_usd": 0.2,
                "reserved_usd": 0.0,
                "remaining_usd": 0.0,
            }
        ]

    def test_every_try_of_a_task_counts_against_its_ceiling(
        self, capped, connection, run_dag, failure_logged
    ):
        capped()
        dag_run = run_dag("seedream_ceiling_tries_test")
        ti = dag_run.get_task_instance("twice")
        assert ti.state == "failed" and ti.try_number == 2
        assert posts(connection) == 1
        message = "max_spend_usd=0.05 USD (every try of this task instance) would be exceeded"
        assert failure_logged(message, SeedreamSpendLimitError)

    def test_a_templated_ceiling_is_rendered_and_checked(self, capped, connection, run_dag, failure_logged):
        capped()
        dag_run = run_dag("seedream_ceiling_templated_test")
        assert dag_run.state == "failed" and posts(connection) == 0  # 2 images could cost $0.08
        assert failure_logged("max_spend_usd=0.05 USD", Exception)
        assert run_dag("seedream_ceiling_templated_test", run_conf={"ceiling": "0.08"}).state == "success"
        assert posts(connection) == 1

    def test_outside_a_task_the_ceiling_caps_the_call(self, capped, connection):
        capped()
        with pytest.raises(SeedreamSpendLimitError, match=r"max_spend_usd=0\.03 USD \(this call\)"):
            SeedreamHook().generate("x", max_spend_usd=0.03)
        assert len(SeedreamHook().generate("x", max_spend_usd=0.04)) == 1


class TestValues:
    @pytest.mark.parametrize("value", [-1, math.nan, math.inf, "abc", True, [1]])
    def test_a_ceiling_that_is_no_amount_is_refused_before_sending(self, capped, connection, value):
        capped()
        with pytest.raises(
            SeedreamValidationError, match=r"max_spend_usd=.*: must be a finite number of USD >= 0"
        ):
            SeedreamHook().generate("x", max_spend_usd=value)
        assert posts(connection) == 0

    def test_the_operator_refuses_a_literal_one_when_the_dag_is_parsed(self):
        from airflow_provider_seedream.operators.seedream import SeedreamGenerateOperator

        with pytest.raises(SeedreamValidationError, match=r"max_spend_usd=-0\.5"):
            SeedreamGenerateOperator(task_id="t", prompt="x", max_spend_usd=-0.5)

    @pytest.mark.parametrize("field", ["max_spend_per_day_usd", "max_spend_per_run_usd"])
    @pytest.mark.parametrize("value", [-1, "nan", "lots"])
    def test_a_connection_ceiling_that_is_no_amount_is_refused(self, capped, connection, field, value):
        capped(**{field: value})
        with pytest.raises(
            SeedreamValidationError, match=rf"connection 'seedream_default' has invalid extras: {field}="
        ):
            SeedreamHook().generate("x")
        assert posts(connection) == 0


RUN_MAPPED = """
import sys
try:
    from airflow.dag_processing.dagbag import DagBag
except ImportError:  # before Airflow 3.1
    from airflow.models.dagbag import DagBag
dag = DagBag(dag_folder=sys.argv[1]).get_dag("seedream_ceiling_mapped_test")
print("STATE", dag.test(run_conf={"prompts": 3}).state)
"""


class TestMetrics:
    def test_statsd_hears_what_was_generated_refused_and_spent(
        self, capped, connection, airflow_db, tmp_path
    ):
        """A ``dag.test()`` run with Airflow's StatsD on, listened to over UDP: 3 mapped tasks under a
        2-image run ceiling tell 2 images, 1 refusal and $0.08, tagged (InfluxDB style)."""
        from conftest import DAGS_FOLDER

        capped(max_spend_per_run_usd=2 * PRICE)
        listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        listener.bind(("127.0.0.1", 0))
        listener.settimeout(0.2)
        env = {
            **os.environ,
            "AIRFLOW__METRICS__STATSD_ON": "True",
            "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
            "AIRFLOW__METRICS__STATSD_PORT": str(listener.getsockname()[1]),
            "AIRFLOW__METRICS__STATSD_INFLUXDB_ENABLED": "True",
        }
        # The run's output goes to a file, not a pipe: a run that logs more than a pipe holds would
        # block on it while this loop waits for the run to end.
        output = tmp_path / "run.log"
        with output.open("w") as log:
            run = subprocess.Popen(
                [sys.executable, "-c", RUN_MAPPED, str(DAGS_FOLDER)], env=env, stdout=log, stderr=log
            )
        deadline = time.monotonic() + 300
        packets = []
        while run.poll() is None:
            if time.monotonic() > deadline:
                run.kill()
                pytest.fail(f"the dag.test() run took over 300 s; its output:\n{output.read_text()[-4000:]}")
            with contextlib.suppress(TimeoutError):
                packets.append(listener.recv(65536).decode())
        with contextlib.suppress(TimeoutError):
            while True:
                packets.append(listener.recv(65536).decode())
        listener.close()
        assert "STATE failed" in output.read_text()  # one mapped task was refused
        totals: dict[str, float] = {}
        for line in "\n".join(packets).splitlines():
            name, _, value = line.partition(":")
            if name.startswith("airflow.seedream."):
                totals[name] = totals.get(name, 0) + float(value.split("|")[0])
        tags = ",model=seedream-4.5,dag_id=seedream_ceiling_mapped_test"
        assert totals == {
            f"airflow.seedream.images_generated{tags}": 2,
            f"airflow.seedream.estimated_cost_usd{tags}": pytest.approx(2 * PRICE),
            f"airflow.seedream.generations_refused{tags}": 1,
        }
        assert posts(connection) == 2


class TestLedgerDocument:
    """The ledger's rules on its document, as every ledger applies them inside one atomic change."""

    NOW = datetime(2026, 12, 6, 12, tzinfo=timezone.utc)

    @staticmethod
    def run_ceiling(run_id: str, limit_usd: float = 1.0):
        from airflow_provider_seedream.contract.spend import Ceiling, run_account

        return Ceiling("run", limit_usd, run_account("c", "d", run_id), run=("d", run_id))

    def test_a_reservation_applied_twice_counts_once(self):
        """A conditional write that landed but whose answer was lost is retried by the store's client,
        after a 412, on the document it already changed: it must not reserve twice."""
        from airflow_provider_seedream.contract.spend import micro, new_ledger, reserve, standing

        document, ceiling = new_ledger(), self.run_ceiling("r", limit_usd=PRICE)
        for _ in range(2):  # room for exactly one: a second reservation would be refused
            reserve(document, [ceiling], micro(PRICE), "reservation-1", self.NOW, what="one image")
        assert standing(document, ceiling.account) == (0, micro(PRICE))
        with pytest.raises(SeedreamSpendLimitError):
            reserve(document, [ceiling], micro(PRICE), "reservation-2", self.NOW, what="one image")

    def test_a_finished_run_busy_again_keeps_its_accounts(self):
        """Asked about on an earlier read, then cleared and reserving again: its reservation stays."""
        from airflow_provider_seedream.contract.spend import micro, new_ledger, prune, reserve, standing

        document = new_ledger()
        idle, busy = self.run_ceiling("idle"), self.run_ceiling("cleared")
        two_hours_ago = self.NOW - timedelta(hours=2)
        reserve(document, [idle], micro(PRICE), "old", two_hours_ago, what="one image")
        reserve(document, [busy], micro(PRICE), "old", two_hours_ago, what="one image")
        reserve(document, [busy], micro(PRICE), "new try", self.NOW, what="one image")
        prune(document, self.NOW, finished=lambda run: True)
        assert list(document["accounts"]) == [busy.account]
        assert standing(document, busy.account) == (0, 2 * micro(PRICE))

    def test_runs_that_never_finish_do_not_keep_the_others_from_being_asked(self):
        from airflow_provider_seedream.contract.spend import micro, new_ledger, reserve, runs_to_ask

        document, long_ago = new_ledger(), self.NOW - timedelta(days=2)
        for number in range(12):  # eleven stuck or deleted runs sort before the one that finished
            run_id = f"a-stuck-{number:02}" if number < 11 else "z-finished"
            reserve(document, [self.run_ceiling(run_id)], micro(PRICE), "r", long_ago, what="one image")
        asked: set[tuple[str, str]] = set()
        for _ in range(40):
            sample = runs_to_ask(document, self.NOW, most=5)
            assert len(sample) == 5
            asked |= sample
        assert ("d", "z-finished") in asked and len(asked) == 12

    def test_a_time_without_a_zone_counts_as_long_untouched(self):
        """A ledger edited by hand must not make a paid generation fail to settle."""
        from airflow_provider_seedream.contract.spend import new_ledger, prune, runs_to_ask

        document = new_ledger()
        document["accounts"]["run/c/d/r"] = {
            "spent": 1,
            "reserved": {},
            "touched": "2026-12-06T11:00:00",
            "run": ["d", "r"],
        }
        assert runs_to_ask(document, self.NOW) == {("d", "r")}
        prune(document, self.NOW, finished=lambda run: False)
        assert document["accounts"] == {}
