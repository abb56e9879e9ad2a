"""Spend safety under failure: against a scripted hostile server, one generation is paid for once, and a
broken or hostile network cannot fill a disk, write outside the destination or leak a secret.

Every case counts the requests the server received and looks at the files left on disk.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import time

import hostile
import pytest
from airflow.providers.common.compat.sdk import AirflowFailException
from conftest import AIRFLOW_VERSION, API_KEY, RunningTask, json_connection
from PIL import Image

from airflow_provider_seedream.contract.exceptions import (
    SeedreamAPIError,
    SeedreamAuthError,
    SeedreamBadRequestError,
    SeedreamBillingError,
    SeedreamConnectionError,
    SeedreamConnectionLostError,
    SeedreamContentPolicyError,
    SeedreamDownloadError,
    SeedreamError,
    SeedreamGatewayError,
    SeedreamLinkExpiredError,
    SeedreamLinkNotReadyError,
    SeedreamPossiblyBilledError,
    SeedreamRateLimitError,
    SeedreamResponseError,
    SeedreamServerError,
    SeedreamTimeoutError,
    SeedreamValidationError,
    may_retry,
)
from airflow_provider_seedream.hooks.seedream import SeedreamHook
from airflow_provider_seedream.testing import Fault, LinkFault

HAS_TASK_STATE_STORE = AIRFLOW_VERSION >= (3, 3)
KILLED_TRIES_RETRY = pytest.mark.skipif(
    AIRFLOW_VERSION < (3, 0),
    reason="Airflow 2's dag.test() lets AirflowTaskTimeout (a BaseException) escape instead of retrying",
)
ONE_LINK = {"images": ["https://cdn.example.com/a.png"]}


def png(width=40, height=30) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (20, 90, 200)).save(buffer, format="PNG")
    return buffer.getvalue()


def files_under(folder) -> list[str]:
    return sorted(
        str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file() or path.is_symlink()
    )


# 1. A request that may have been billed is never sent again ------------------------------------------

AFTER_SENDING = {
    "200 cut short of its Content-Length": lambda: hostile.cut_short(
        200, b'{"images": ["https://cdn.ex', 400
    ),
    "broken chunked body": hostile.broken_chunked,
    "bad gzip body": hostile.bad_gzip,
    "reset after the headers": hostile.reset_after_headers,
    "200 that is not JSON": lambda: hostile.status(200, b"<html>OK</html>"),
    "200 JSON without images": lambda: hostile.json_answer(200, {"data": []}),
    "closed without an answer": lambda: hostile.silence(0),
    "500": lambda: hostile.json_answer(500, {"code": 500, "reason": "TASK_FAILED", "message": "failed"}),
    "502": lambda: hostile.status(502, b"<html>Bad Gateway</html>"),
    "504": lambda: hostile.status(504, b"<html>Gateway Timeout</html>"),
}


class TestBillingClassification:
    @pytest.mark.parametrize("fault", list(AFTER_SENDING))
    def test_failures_after_sending_are_not_sent_again(self, hostile_server, fault):
        hostile_server.answer(*(AFTER_SENDING[fault]() for _ in range(5)))
        with pytest.raises(SeedreamPossiblyBilledError, match="may have run and been billed") as info:
            SeedreamHook().generate("p")
        assert not may_retry(info.value)
        assert hostile_server.count("POST") == 1

    @pytest.mark.parametrize("fault", ["200 cut short of its Content-Length", "502"])
    def test_they_are_sent_again_only_when_opted_in(self, hostile_server, fault):
        hostile_server.answer(AFTER_SENDING[fault](), hostile.json_answer(200, ONE_LINK))
        assert SeedreamHook().generate("p", retry_possibly_billed=True) == ONE_LINK["images"]
        assert hostile_server.count("POST") == 2

    def test_the_former_opt_in_name_still_works(self, hostile_server, monkeypatch):
        monkeypatch.setenv(
            "AIRFLOW_CONN_SEEDREAM_DEFAULT",
            json_connection(hostile_server.url, extra={"retry_possibly_billed": True, "backoff_seconds": 0}),
        )
        hostile_server.answer(hostile.bad_gzip(), hostile.json_answer(200, ONE_LINK))
        assert SeedreamHook().generate("p") == ONE_LINK["images"]
        assert hostile_server.count("POST") == 2

    def test_a_read_timeout_is_not_sent_again(self, hostile_server):
        hostile_server.answer(hostile.silence(3))
        started = time.monotonic()
        with pytest.raises(SeedreamTimeoutError, match=r"within 0\.5 s"):
            SeedreamHook().generate("p", read_timeout=0.5)
        assert time.monotonic() - started < 2.5
        assert hostile_server.count("POST") == 1

    @pytest.mark.parametrize(
        ("answer", "error"),
        [
            (
                lambda: hostile.json_answer(429, {"reason": "RATE_LIMIT_EXCEEDED", "message": "slow"}),
                SeedreamRateLimitError,
            ),
            (lambda: hostile.status(503, b"overloaded"), SeedreamServerError),
        ],
    )
    def test_refusals_are_sent_again(self, hostile_server, answer, error):
        hostile_server.answer(answer(), answer(), hostile.json_answer(200, ONE_LINK))
        assert SeedreamHook().generate("p") == ONE_LINK["images"]
        assert hostile_server.count("POST") == 3

    def test_an_overload_answer_that_took_long_may_be_billed(self):
        from airflow_provider_seedream.contract.answers import OVERLOAD_ANSWER_SECONDS, api_error

        assert type(api_error(503, b"busy", elapsed=1.0)) is SeedreamServerError
        late = api_error(503, b"gateway gave up", elapsed=OVERLOAD_ANSWER_SECONDS + 1)
        assert isinstance(late, SeedreamGatewayError) and isinstance(late, SeedreamPossiblyBilledError)

    @pytest.mark.parametrize(
        ("error", "without_opt_in", "with_opt_in"),
        [
            (SeedreamValidationError("bad"), False, False),
            (SeedreamAuthError(401, "INVALID_API_KEY", "bad key"), False, False),
            (SeedreamBadRequestError(400, "INVALID_REQUEST_BODY", "bad"), False, False),
            (SeedreamContentPolicyError(400, "ILLEGAL_PROMPT", "refused"), False, False),
            (SeedreamBillingError(400, "BILLING_BALANCE_NOT_ENOUGH", "empty"), False, False),
            (SeedreamRateLimitError(429, "RATE_LIMIT_EXCEEDED", "slow", 2.0), True, True),
            (SeedreamServerError(503, None, "busy"), True, True),
            (SeedreamConnectionError("refused"), True, True),
            (SeedreamTimeoutError("no answer"), False, True),
            (SeedreamConnectionLostError("reset"), False, True),
            (SeedreamGatewayError(504, None, "gateway"), False, True),
            (SeedreamResponseError(200, "INCOMPLETE_BODY", "cut"), False, True),
            (SeedreamDownloadError("broke off"), True, True),
            (SeedreamDownloadError("not an image", retryable=False), False, False),
            (SeedreamLinkNotReadyError("404"), True, True),
            (SeedreamLinkExpiredError("expired"), False, False),
            (ValueError("not ours"), False, False),
        ],
        ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else str(value),
    )
    def test_the_billing_rule_over_every_failure_kind(self, error, without_opt_in, with_opt_in):
        assert may_retry(error) is without_opt_in
        assert may_retry(error, retry_possibly_billed=True) is with_opt_in

    def test_no_possibly_billed_failure_can_be_caught_as_a_safe_one(self):
        """``except SeedreamAPIError: retry()`` and its like never catch a failure that may have been
        billed: the tree splits on billing first."""
        import inspect

        from airflow_provider_seedream.contract import exceptions

        classes = [
            value
            for _, value in inspect.getmembers(exceptions, inspect.isclass)
            if issubclass(value, SeedreamError)
        ]
        billed = [kind for kind in classes if issubclass(kind, SeedreamPossiblyBilledError)]
        assert {kind.__name__ for kind in billed} == {
            "SeedreamPossiblyBilledError",
            "SeedreamTimeoutError",
            "SeedreamConnectionLostError",
            "SeedreamCacheStoreError",
            "SeedreamGatewayError",
            "SeedreamResponseError",
        }
        safe = [
            SeedreamAPIError,
            SeedreamServerError,
            SeedreamRateLimitError,
            SeedreamConnectionError,
            SeedreamDownloadError,
        ]
        for kind in billed:
            assert [ancestor for ancestor in kind.__mro__ if ancestor in safe] == []

    @pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
    def test_redirects_are_not_followed(self, hostile_server, code):
        with hostile.HostileServer(default=hostile.json_answer(200, ONE_LINK)) as elsewhere:
            hostile_server.answer(
                hostile.redirect(code, f"{elsewhere.url}/v3/seedream-4.5?X-Amz-Signature=s3cr3t")
            )
            with pytest.raises(SeedreamBadRequestError, match="redirect") as info:
                SeedreamHook().generate("p", images=["data:image/png;base64," + _b64(png())])
            assert elsewhere.count() == 0
        assert hostile_server.count("POST") == 1
        assert "s3cr3t" not in str(info.value)

    def test_a_task_with_retries_sends_one_post(self, hostile_server, run_dag, monkeypatch, failure_logged):
        """The reported case: retries=2 and a 200 cut short once sent 12 billable POSTs."""
        # Set after run_dag's own connection fixture, which points at the sandbox.
        monkeypatch.setenv("AIRFLOW_CONN_SEEDREAM_DEFAULT", json_connection(hostile_server.url))
        hostile_server.answer(*(hostile.cut_short(200, b'{"images": [', 300) for _ in range(12)))
        dag_run = run_dag("seedream_failure_test")
        assert dag_run.state == "failed"
        assert dag_run.get_task_instance("gen").try_number == 1
        assert hostile_server.count("POST") == 1
        assert failure_logged("may have run and been billed", SeedreamResponseError)


def _b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode()


class TestAcrossTries:
    """The task state store (Airflow 3.3+) carries what a try did to the next try of the same task."""

    def test_links_from_a_try_that_failed_later_are_returned_not_paid_again(self, run_dag, connection, logs):
        dag_run = run_dag("seedream_durable_after_generating_test")
        assert dag_run.state == "success"
        ti = dag_run.get_task_instance("gen")
        assert ti.try_number == 2
        urls = ti.xcom_pull(task_ids="gen")
        if HAS_TASK_STATE_STORE:
            assert len(connection.generation_requests()) == 1
            assert all(url.startswith(connection.url) for url in urls) and len(urls) == 3
            assert "instead of paying for a new generation" in logs()
            usage = ti.xcom_pull(task_ids="gen", key="usage")
            assert (usage["requests_sent"], usage["images_generated"], usage["images_reused"]) == (0, 0, 3)
            assert usage["estimated_saving_usd"] == 0.12  # 3 images at seedream-4.5's list price
        else:
            assert len(connection.generation_requests()) == 2
            assert "no task state store" in logs()

    @KILLED_TRIES_RETRY
    def test_a_try_killed_while_waiting_is_not_sent_again(self, run_dag, connection, logs):
        connection.inject(Fault(delay=4))
        dag_run = run_dag("seedream_durable_killed_while_waiting_test")
        ti = dag_run.get_task_instance("gen")
        if HAS_TASK_STATE_STORE:
            assert dag_run.state == "failed"
            assert ti.try_number == 2  # the second try refused; the third was never spent
            assert len(connection.generation_requests()) == 1
            output = logs()
            assert "it may have been billed, so it is not sent again" in output
            assert "retry_possibly_billed=True" in output and "state-store/seedream_generation" in output
            # The interrupted try still said what it may have cost.
            assert (
                "1 request got no usable answer and may have been billed for up to 1 image ($0.04)" in output
            )
        else:
            assert dag_run.state == "success"
            assert len(connection.generation_requests()) == 2

    @KILLED_TRIES_RETRY
    def test_the_opt_in_sends_again(self, run_dag, connection, monkeypatch):
        monkeypatch.setenv(
            "AIRFLOW_CONN_SEEDREAM_DEFAULT",
            json_connection(connection.url, extra={"retry_possibly_billed": True, "backoff_seconds": 0.01}),
        )
        connection.inject(Fault(delay=4))
        dag_run = run_dag("seedream_durable_killed_while_waiting_test")
        assert dag_run.state == "success"
        assert len(connection.generation_requests()) == 2

    def test_expired_links_are_not_handed_on(self):
        from airflow_provider_seedream._internal.generation_state import usable_urls

        record = {
            "status": "generated",
            "urls": ["https://x/a.png"],
            "usable_until": "2026-01-01T00:00:00+00:00",
        }
        assert usable_urls(record) is None
        assert usable_urls({**record, "usable_until": "2999-01-01T00:00:00+00:00"}) == ["https://x/a.png"]

    @pytest.mark.parametrize(
        ("query", "expiry"),
        [
            ("X-Tos-Date=20261121T100000Z&X-Tos-Expires=86400", "2026-11-22T10:00:00+00:00"),
            ("X-Amz-Date=20261121T100000Z&X-Amz-Expires=600", "2026-11-21T10:10:00+00:00"),
            ("Expires=1795262400&Signature=x", "2026-11-21T12:00:00+00:00"),
            ("se=2026-11-21T13:00:00Z&sig=x", "2026-11-21T13:00:00+00:00"),
            ("id=7", "2026-11-21T09:00:00+00:00"),  # says nothing: the shortest documented lifetime, 1 h
            ("X-Tos-Date=garbage&X-Tos-Expires=1", "2026-11-21T09:00:00+00:00"),
        ],
    )
    def test_link_expiry(self, query, expiry):
        from datetime import datetime, timezone

        from airflow_provider_seedream.contract.links import link_expiry

        issued = datetime(2026, 11, 21, 8, 0, tzinfo=timezone.utc)
        assert link_expiry(f"https://b.example/a.png?{query}", issued).isoformat() == expiry


class TestTriggerDeadline:
    def test_the_deadline_is_absolute_and_survives_a_restart(self, sandbox):
        from airflow_provider_seedream.triggers.seedream import SeedreamLinksTrigger

        url = sandbox.add_image(png(), LinkFault(ready_after=60))
        trigger = SeedreamLinksTrigger([url], poll_interval=0.2, timeout=4)
        _, kwargs = trigger.serialize()
        assert "timeout" not in kwargs and abs(kwargs["end_time"] - (time.time() + 4)) < 1
        time.sleep(3)  # the triggerer restarts: the trigger is rebuilt from what was serialized
        restarted = SeedreamLinksTrigger(**kwargs)
        started = time.monotonic()
        event = asyncio.run(_first_event(restarted))
        assert event["status"] == "timeout"
        # What was left of 4 s (1 s), not 4 s again. The margin covers a loaded machine's start of the
        # event loop and HTTP client (1.35 s for a 0.5 s remainder in one CI run).
        assert time.monotonic() - started < 3

    def test_a_dripping_error_body_cannot_hold_the_trigger(self, hostile_server):
        from airflow_provider_seedream.triggers.seedream import SeedreamLinksTrigger

        hostile_server.answer(hostile.drip(403, (b"x" for _ in range(1000)), 0.5))
        started = time.monotonic()
        event = asyncio.run(
            _first_event(
                SeedreamLinksTrigger([f"{hostile_server.url}/a.png"], poll_interval=0.1, timeout=1.5)
            )
        )
        assert event["status"] == "timeout"
        assert time.monotonic() - started < 4


async def _first_event(trigger):
    async for event in trigger.run():
        return event.payload
    return None


# 2. Everything read from the network is bounded ------------------------------------------------------


class TestBoundedReads:
    def test_an_endless_generation_body_is_cut_off(self, hostile_server):
        hostile_server.answer(hostile.endless(200, b'{"images": ["', seconds=20))
        started = time.monotonic()
        with pytest.raises(SeedreamResponseError, match="over the 262,144-byte limit"):
            SeedreamHook().generate("p")
        assert time.monotonic() - started < 5 and hostile_server.count("POST") == 1

    def test_a_gzip_bomb_is_not_inflated(self, hostile_server):
        import resource

        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        hostile_server.answer(hostile.gzip_bomb(200, inflated=512 * 1024 * 1024))
        with pytest.raises(SeedreamResponseError, match="over the 262,144-byte limit"):
            SeedreamHook().generate("p")
        grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
        assert grown_kib < 64 * 1024  # far from the 512 MiB it inflates to
        assert hostile_server.count("POST") == 1

    def test_a_gzip_answer_is_still_read(self, hostile_server):
        hostile_server.answer(hostile.gzip_json(200, ONE_LINK))
        assert SeedreamHook().generate("p") == ONE_LINK["images"]

    def test_a_dripping_generation_body_is_cut_off_at_the_read_timeout(self, hostile_server):
        hostile_server.answer(
            hostile.drip(200, (b" " for _ in range(100)), 0.2, {"Content-Type": "application/json"})
        )
        started = time.monotonic()
        with pytest.raises(SeedreamResponseError, match="did not arrive in time"):
            SeedreamHook().generate("p", read_timeout=1)
        assert time.monotonic() - started < 3

    def test_json_too_deep_is_a_response_error(self, hostile_server):
        hostile_server.answer(hostile.status(200, b"[" * 200_000, {"Content-Type": "application/json"}))
        with pytest.raises(SeedreamResponseError, match="INVALID_RESPONSE"):
            SeedreamHook().generate("p")

    @pytest.mark.parametrize(
        ("status", "kind"),
        [(200, SeedreamResponseError), (500, SeedreamGatewayError), (400, SeedreamBadRequestError)],
    )
    def test_json_nested_100000_deep_is_typed(self, hostile_server, status, kind):
        deep = b'{"images": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
        hostile_server.answer(hostile.status(status, deep, {"Content-Type": "application/json"}))
        with pytest.raises(kind):
            SeedreamHook().generate("p")
        assert hostile_server.count("POST") == 1

    @pytest.mark.parametrize(
        ("images", "message"),
        [
            (
                [f"https://cdn.example.com/{n}.png" for n in range(16)],
                "16 images; the API returns at most 15",
            ),
            (["https://cdn.example.com/a b.png"], "spaces or control characters"),
            (["https://cdn.example.com/a\x00.png"], "spaces or control characters"),
            (["https:///a.png"], "has no host"),
            (["file:///etc/passwd"], "is not an http"),
            ([{"image_url": 7}], "is not a link"),
        ],
    )
    def test_unusable_links_are_refused(self, hostile_server, images, message):
        hostile_server.answer(hostile.json_answer(200, {"images": images}))
        with pytest.raises(SeedreamResponseError, match=message):
            SeedreamHook().generate("p")
        assert hostile_server.count("POST") == 1

    def test_downloads_have_a_default_size_limit(self, hostile_server, tmp_path):
        from airflow_provider_seedream.contract.links import DEFAULT_MAX_IMAGE_BYTES

        hostile_server.answer(hostile.endless(200, png(), seconds=30, headers={"Content-Type": "image/png"}))
        with pytest.raises(
            SeedreamDownloadError, match=f"over max_bytes={DEFAULT_MAX_IMAGE_BYTES:,}"
        ) as info:
            SeedreamHook().download(f"{hostile_server.url}/a.png", tmp_path / "a.{ext}")
        assert info.value.retryable is False
        assert files_under(tmp_path) == []

    def test_unlimited_when_asked(self, hostile_server, tmp_path):
        body = png() + b"\0" * (2 * 1024 * 1024)
        hostile_server.answer(hostile.status(200, body, {"Content-Type": "image/png"}))
        image = SeedreamHook().download_image(
            f"{hostile_server.url}/a.png", tmp_path / "a.{ext}", max_bytes=None
        )
        assert image.bytes == len(body)

    def test_a_dripping_download_is_cut_off_at_its_deadline(self, hostile_server, tmp_path):
        pieces = [png()[:40]] + [b"x"] * 1000
        hostile_server.answer(hostile.drip(200, pieces, 0.1, {"Content-Type": "image/png"}))
        started = time.monotonic()
        with pytest.raises(SeedreamDownloadError, match="did not arrive in time"):
            SeedreamHook().download_image(f"{hostile_server.url}/a.png", tmp_path / "a.{ext}", timeout=1.5)
        assert time.monotonic() - started < 3
        assert files_under(tmp_path) == []

    def test_a_sensor_cannot_be_held_past_its_timeout(self, hostile_server, tmp_path, airflow_db):
        from airflow_provider_seedream.sensors.seedream import SeedreamDownloadOperator

        hostile_server.answer(
            hostile.drip(200, [png()[:40]] + [b"x"] * 1000, 0.1, {"Content-Type": "image/png"})
        )
        operator = SeedreamDownloadOperator(
            task_id="t", urls=f"{hostile_server.url}/a.png", destination=str(tmp_path), timeout=1.5
        )
        started = time.monotonic()
        with pytest.raises(SeedreamDownloadError, match="did not arrive in time"):
            operator.poke(_context())
        assert time.monotonic() - started < 3

    def test_error_bodies_are_read_within_limits(self, hostile_server):
        hostile_server.answer(
            hostile.endless(400, b'{"reason": "INVALID_REQUEST_BODY", "message": "', seconds=20)
        )
        started = time.monotonic()
        with pytest.raises(SeedreamBadRequestError) as info:
            SeedreamHook().generate("p")
        assert time.monotonic() - started < 5 and len(str(info.value)) < 700

    @pytest.mark.parametrize(
        ("destination", "name", "message", "retryable"),
        [
            (
                "/sys/seedream-cannot-write-here",
                "a.{ext}",
                "(Permission denied|Operation not permitted)",
                False,
            ),
            (None, "n" * 300 + ".{ext}", "File name too long", False),
            (None, "bad\x00name.{ext}", "contains a NUL character", False),
        ],
    )
    def test_storage_failures_are_typed_and_name_the_file(
        self, connection, tmp_path, destination, name, message, retryable
    ):
        url = connection.add_image(png())
        folder = destination or str(tmp_path)
        with pytest.raises(SeedreamDownloadError, match=message) as info:
            SeedreamHook().download(url, os.path.join(folder, name))
        assert info.value.retryable is retryable
        assert "Could not store" in str(info.value)
        assert files_under(tmp_path) == []

    def test_a_full_disk_may_be_retried(self):
        import errno

        from airflow_provider_seedream._internal.storage import storage_error

        full = storage_error(OSError(errno.ENOSPC, "No space left on device"), "/data/a.png")
        assert full.retryable and "/data/a.png: No space left on device" in str(full)
        read_only = storage_error(OSError(errno.EROFS, "Read-only file system"), "/data/a.png")
        assert not read_only.retryable


def _context(map_index=-1, task_id="t"):
    return {"ti": RunningTask(map_index=map_index, task_id=task_id)}


# 3. Nothing is written outside the destination, and nothing stored is lost ----------------------------


class TestDestination:
    def test_a_link_below_the_destination_is_not_followed(self, connection, tmp_path, airflow_db):
        from airflow.providers.common.compat.sdk import AirflowFailException

        from airflow_provider_seedream.sensors.seedream import SeedreamDownloadOperator

        destination, outside = tmp_path / "dest", tmp_path / "outside"
        destination.mkdir()
        outside.mkdir()
        (destination / "d").symlink_to(outside)
        operator = SeedreamDownloadOperator(
            task_id="t", urls=connection.add_image(png()), destination=str(destination)
        )
        with pytest.raises(AirflowFailException, match="is a symbolic link inside"):
            operator.poke(_context())  # fails without retries: a retry would meet the same link
        assert files_under(outside) == []

    def test_a_link_at_the_final_name_is_replaced_not_written_through(self, connection, tmp_path):
        victim = tmp_path / "victim.txt"
        victim.write_text("keep me")
        (tmp_path / "out").mkdir()
        (tmp_path / "out" / "a.png").symlink_to(victim)
        url = connection.add_image(png())
        SeedreamHook().download(url, tmp_path / "out" / "a.{ext}")
        assert victim.read_text() == "keep me"
        assert not (tmp_path / "out" / "a.png").is_symlink()
        assert (tmp_path / "out" / "a.png").read_bytes() == connection.image_bytes(url)

    def test_the_destination_itself_may_be_a_link(self, connection, tmp_path, airflow_db):
        from airflow_provider_seedream.sensors.seedream import SeedreamDownloadOperator

        (tmp_path / "real").mkdir()
        (tmp_path / "assets").symlink_to(tmp_path / "real")
        operator = SeedreamDownloadOperator(
            task_id="t", urls=connection.add_image(png()), destination=str(tmp_path / "assets")
        )
        assert operator.poke(_context()).is_done
        assert files_under(tmp_path / "real") == ["d/r/t/0-0.png", "d/r/t/0-manifest.json"]

    @pytest.mark.parametrize("pattern", ["hero.png", "{map_index}/hero.png", "images/{task_id}"])
    def test_a_pattern_the_manifest_would_share_is_refused_at_parse(self, pattern):
        from airflow_provider_seedream.sensors.seedream import SeedreamDownloadOperator

        with pytest.raises(SeedreamValidationError, match="has neither"):
            SeedreamDownloadOperator(
                task_id="s", urls="https://x/a.png", destination="/tmp", filename=pattern
            )

    def test_a_templated_pattern_is_checked_when_it_runs(self, connection, tmp_path, airflow_db):
        from airflow.providers.common.compat.sdk import AirflowFailException

        from airflow_provider_seedream.sensors.seedream import SeedreamDownloadOperator

        operator = SeedreamDownloadOperator(
            task_id="t", urls=connection.add_image(png()), destination=str(tmp_path), filename="{{ x }}"
        )
        operator.filename = "hero.png"  # as rendered
        with pytest.raises(AirflowFailException, match="has neither"):
            operator.execute(_context())
        assert files_under(tmp_path) == []

    def test_a_mapped_download_needs_map_index(self, run_dag, connection, tmp_path, failure_logged):
        dag_run = run_dag(
            "seedream_mapped_test",
            run_conf={"destination": str(tmp_path), "filename": "{index}.{ext}"},
        )
        assert dag_run.state == "failed"
        assert failure_logged("needs {map_index}: this task is mapped", AirflowFailException)
        assert files_under(tmp_path) == []

    def test_manifest_entries_pointing_elsewhere_are_not_trusted(self, connection, tmp_path, airflow_db):
        from airflow_provider_seedream.sensors.seedream import SeedreamDownloadOperator

        outside = tmp_path / "elsewhere.png"
        outside.write_bytes(png())
        url = connection.add_image(png(50, 50))
        operator = SeedreamDownloadOperator(task_id="t", urls=url, destination=str(tmp_path / "dest"))
        operator.poke(_context())
        manifest = tmp_path / "dest/d/r/t/0-manifest.json"
        document = json.loads(manifest.read_text())
        document["images"][0]["location"] = str(outside)
        document["images"][0]["bytes"] = outside.stat().st_size
        manifest.write_text(json.dumps(document))
        (location,) = operator.poke(_context()).xcom_value
        assert location == str(tmp_path / "dest/d/r/t/0-0.png")
        assert connection.downloads_of(url) == 2  # fetched again, not taken on the manifest's word
        assert json.loads(manifest.read_text())["images"][0]["location"] == location

    @pytest.mark.parametrize(
        "content",
        [b"not json", b'{"images": 5}', b'{"images": [{"index": "0"}]}', b"[" * 100_000, b"{" * 2_000_000],
    )
    def test_an_unreadable_manifest_is_rebuilt(self, connection, tmp_path, airflow_db, content):
        from airflow_provider_seedream.sensors.seedream import SeedreamDownloadOperator

        folder = tmp_path / "d/r/t"
        folder.mkdir(parents=True)
        (folder / "0-manifest.json").write_bytes(content)
        url = connection.add_image(png())
        operator = SeedreamDownloadOperator(task_id="t", urls=url, destination=str(tmp_path))
        assert operator.poke(_context()).is_done
        assert json.loads((folder / "0-manifest.json").read_text())["images"][0]["index"] == 0

    def test_links_are_matched_by_their_whole_identity(self, hostile_server, tmp_path, airflow_db):
        """``/download?id=1`` and ``/download?id=2`` are different images, though the path is the same."""
        from airflow_provider_seedream.sensors.seedream import SeedreamDownloadOperator

        first, second = png(40, 30), png(60, 50)
        hostile_server.answer(hostile.status(200, first), hostile.status(200, second))
        operator = SeedreamDownloadOperator(
            task_id="t",
            urls=f"{hostile_server.url}/download?id=1&X-Amz-Signature=a",
            destination=str(tmp_path),
        )
        operator.poke(_context())
        operator.urls = f"{hostile_server.url}/download?id=2&X-Amz-Signature=b"
        (location,) = operator.poke(_context()).xcom_value
        with open(location, "rb") as handle:
            assert handle.read() == second
        assert hostile_server.count("GET") == 2

    def test_partial_files_of_an_interrupted_try_are_removed(self, connection, tmp_path, airflow_db):
        from airflow_provider_seedream.sensors.seedream import SeedreamDownloadOperator

        folder = tmp_path / "d/r/t"
        folder.mkdir(parents=True)
        for stale in (".0-0.png.0123456789ab.part", ".0-manifest.json.abcdef012345.part"):
            (folder / stale).write_bytes(b"half")
        (folder / "keep.part").write_bytes(b"not ours")
        operator = SeedreamDownloadOperator(
            task_id="t", urls=connection.add_image(png()), destination=str(tmp_path), poke_interval=0.1
        )
        operator.execute(_context())
        assert files_under(folder) == ["0-0.png", "0-manifest.json", "keep.part"]


# 4. Secrets never leave through error messages --------------------------------------------------------


class TestSecrets:
    def test_an_echoed_key_is_removed_from_errors(self, hostile_server):
        hostile_server.answer(hostile.echo(400))
        with pytest.raises(SeedreamBadRequestError) as info:
            SeedreamHook().generate("p")
        assert "Bearer" in str(info.value) and API_KEY not in str(info.value)

    def test_an_echoed_key_is_removed_from_the_connection_test(self, hostile_server):
        hostile_server.answer(hostile.echo(401))
        ok, message = SeedreamHook().test_connection()
        assert not ok and "authorization" in message.lower() and API_KEY not in message

    def test_an_echoed_signature_is_removed_from_link_errors(self, hostile_server, tmp_path):
        hostile_server.answer(hostile.echo(500))
        url = f"{hostile_server.url}/a.png?X-Amz-Credential=AKIAEXAMPLE&X-Amz-Signature=f00dfeedbeef1234"
        with pytest.raises(SeedreamDownloadError) as info:
            SeedreamHook().download(url, tmp_path / "a.{ext}")
        assert "f00dfeedbeef1234" not in str(info.value) and "AKIAEXAMPLE" not in str(info.value)
        assert "answered HTTP 500" in str(info.value)

    def test_signatures_are_masked_in_task_logs(self, run_dag, connection, console):
        """The DAG's own task logs the links it got, as users' tasks do: the log shows them masked."""
        dag_run = run_dag("seedream_generate_test")
        assert dag_run.state == "success"
        urls = dag_run.get_task_instance("gen").xcom_pull(task_ids="gen")
        if AIRFLOW_VERSION >= (3, 1):
            output = console()
            assert "links received: ['http://127.0.0.1" in output
        else:
            # dag.test() of Airflow 2 and 3.0 prints task logs without the masker that a deployment's
            # task log handler applies; ask that masker what it would show.
            from airflow.providers.common.compat.sdk import redact

            output = str(redact(f"links received: {urls}"))
        for url in urls:
            assert url.split("X-Tos-Signature=")[1] not in output

    def test_access_denied_is_not_an_expiry(self, hostile_server, tmp_path):
        denied = b"<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"
        hostile_server.answer(hostile.status(403, denied))
        with pytest.raises(SeedreamDownloadError, match="access problem") as info:
            SeedreamHook().download(f"{hostile_server.url}/a.png?X-Amz-Signature=x", tmp_path / "a.{ext}")
        assert not isinstance(info.value, SeedreamLinkExpiredError)
        assert "generate" not in str(info.value).replace("before generating again", "")

    def test_rendered_links_are_masked(self, run_dag, connection, tmp_path):
        dag_run = run_dag("seedream_download_test", run_conf={"destination": str(tmp_path)})
        assert dag_run.state == "success"
        urls = dag_run.get_task_instance("gen").xcom_pull(task_ids="gen")
        from airflow.models.renderedtifields import RenderedTaskInstanceFields

        rendered = RenderedTaskInstanceFields.get_templated_fields(dag_run.get_task_instance("store"))
        assert "/files/" in repr(rendered["urls"])
        for url in urls:
            assert url.split("X-Tos-Signature=")[1] not in repr(rendered)


# 5. Input that looks valid is valid ------------------------------------------------------------------


class TestInput:
    @pytest.mark.parametrize(
        ("size", "sent"),
        [(" 2560x1440 ", "2560x1440"), ("02560X01440", "2560x1440"), ("4k\n", "4K")],
    )
    def test_sizes_are_normalised(self, connection, size, sent):
        SeedreamHook().generate("p", size=size)
        assert connection.generation_requests()[0].body["size"] == sent

    @pytest.mark.parametrize(
        "size",
        ["\uff12\uff15\uff16\uff10x\uff11\uff14\uff14\uff10", "2560 x 1440", "2560x1440x1", "+2560x1440"],
    )
    def test_sizes_that_only_look_valid_are_refused(self, connection, size):
        with pytest.raises(SeedreamValidationError, match="size="):
            SeedreamHook().generate("p", size=size)
        assert connection.requests == []

    @pytest.mark.parametrize(
        ("extra", "message"),
        [
            ({"connect_timeout": 0}, "connect_timeout=0: Input should be greater than 0"),
            ({"read_timeout": -5}, "read_timeout=-5: Input should be greater than 0"),
            ({"read_timeout": "inf"}, "read_timeout='inf': must be a finite number of seconds"),
            ({"connect_timeout": "nan"}, "connect_timeout='nan'"),
            ({"max_retries": 11}, "max_retries=11: Input should be less than or equal to 10"),
            ({"max_retries": -1}, "max_retries=-1"),
            (
                {"retry_possibly_billed": "maybe"},
                "retry_possibly_billed='maybe': Input should be a valid boolean",
            ),
        ],
    )
    def test_connection_extras_are_validated_with_ranges(self, sandbox, monkeypatch, extra, message):
        monkeypatch.setenv("AIRFLOW_CONN_SEEDREAM_DEFAULT", json_connection(sandbox.url, extra=extra))
        with pytest.raises(
            SeedreamValidationError, match=f"connection 'seedream_default' has invalid extras: {message}"
        ):
            SeedreamHook().generate("p")
        assert sandbox.requests == []

    @pytest.mark.parametrize(
        ("value", "parsed"), [("true", True), ("false", False), (False, False), ("1", True)]
    )
    def test_boolean_extras(self, value, parsed):
        from airflow_provider_seedream.contract.connection import ConnectionSettings

        assert ConnectionSettings.from_extra({"retry_possibly_billed": value}).retry_possibly_billed is parsed

    def test_a_fifo_is_refused_without_blocking(self, connection, tmp_path):
        fifo = tmp_path / "pipe.png"
        os.mkfifo(fifo)
        started = time.monotonic()
        with pytest.raises(SeedreamValidationError, match="not a regular file"):
            SeedreamHook().generate("p", images=[str(fifo)])
        assert time.monotonic() - started < 2 and connection.requests == []

    def test_a_device_is_refused(self, connection):
        with pytest.raises(SeedreamValidationError, match="not a regular file"):
            SeedreamHook().generate("p", images=["/dev/zero"])
        assert connection.requests == []

    def test_seedream_45_references_are_read_with_a_cap(self, connection, tmp_path):
        from airflow_provider_seedream.contract.specs import REFERENCE_READ_LIMIT

        big = tmp_path / "big.png"
        big.write_bytes(png() + b"\0" * REFERENCE_READ_LIMIT)
        with pytest.raises(
            SeedreamValidationError, match=f"over the {REFERENCE_READ_LIMIT:,}-byte limit for seedream-4.5"
        ):
            SeedreamHook().generate("p", images=[str(big)])
        assert connection.requests == []

    def test_file_content_is_never_echoed(self, connection, tmp_path):
        secret = tmp_path / "notes.png"
        secret.write_text("password=hunter2 do not show")
        with pytest.raises(SeedreamValidationError) as info:
            SeedreamHook().generate("p", images=[str(secret)])
        assert "hunter2" not in str(info.value)
        uri = "data:image/png;base64," + _b64(b"password=hunter2 do not show")
        with pytest.raises(SeedreamValidationError) as info:
            SeedreamHook().generate("p", images=[uri])
        assert _b64(b"password=hunter2")[:12] not in str(info.value)


def test_every_error_is_a_seedream_error():
    import airflow_provider_seedream.contract.exceptions as exceptions

    kinds = [getattr(exceptions, name) for name in exceptions.__all__ if name != "may_retry"]
    assert len(kinds) == 21 and all(issubclass(kind, SeedreamError) for kind in kinds)
