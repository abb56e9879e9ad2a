"""SeedreamHook against a real local server speaking the documented contract."""

from __future__ import annotations

import base64
import email.utils
import io
import logging
import socket
import time

import pytest
from airflow.exceptions import AirflowException
from conftest import API_KEY, json_connection
from PIL import Image

from airflow_provider_seedream.contract.connection import base_url_from_connection
from airflow_provider_seedream.contract.exceptions import (
    SeedreamAuthError,
    SeedreamBadRequestError,
    SeedreamBillingError,
    SeedreamConnectionError,
    SeedreamConnectionLostError,
    SeedreamContentPolicyError,
    SeedreamGatewayError,
    SeedreamPossiblyBilledError,
    SeedreamRateLimitError,
    SeedreamResponseError,
    SeedreamServerError,
    SeedreamTimeoutError,
    SeedreamValidationError,
    may_retry,
)
from airflow_provider_seedream.hooks.seedream import SeedreamHook
from airflow_provider_seedream.operators.seedream import SeedreamGenerateOperator
from airflow_provider_seedream.testing import Fault, SeedreamSandbox


def png(path, width=64, height=48):
    Image.new("RGB", (width, height), (10, 120, 200)).save(path, format="PNG")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class TestRequests:
    def test_seedream_45_request_is_exactly_the_documented_one(self, connection):
        urls = SeedreamHook().generate(
            "a red bicycle",
            size="2560x1440",
            images=["https://cdn.example.com/bike.png"],
            sequential_image_generation="auto",
            max_images=3,
            watermark=False,
            optimize_prompt_mode="standard",
        )
        (request,) = connection.requests
        assert request.path == "/v3/seedream-4.5"
        assert request.headers["Authorization"] == f"Bearer {API_KEY}"
        assert request.headers["Content-Type"] == "application/json"
        assert request.body == {
            "prompt": "a red bicycle",
            "size": "2560x1440",
            "image": ["https://cdn.example.com/bike.png"],
            "sequential_image_generation": "auto",
            "sequential_image_generation_options": {"max_images": 3},
            "watermark": False,
            "optimize_prompt_options": {"mode": "standard"},
        }
        assert len(urls) == 3 and all(url.startswith(f"{connection.url}/files/") for url in urls)

    def test_seedream_40_request_is_exactly_the_documented_one(self, connection):
        SeedreamHook().generate(
            "storyboard",
            model="seedream-4.0",
            size="1K",
            images=["https://x.example/a.jpg"],
            sequential_image_generation="auto",
            max_images=2,
        )
        (request,) = connection.requests
        assert request.path == "/v3/seedream-4.0"
        assert request.body == {
            "prompt": "storyboard",
            "size": "1K",
            "images": ["https://x.example/a.jpg"],
            "sequential_image_generation": "auto",
            "max_images": 2,
        }

    def test_seedream_50_lite_request_is_exactly_the_documented_one(self, connection, tmp_path):
        reference = tmp_path / "pattern.webp"
        Image.new("RGB", (48, 48), (200, 30, 30)).save(reference, format="WEBP")  # 4.0 takes no webp
        urls = SeedreamHook().generate(
            "a red bicycle on a coastal road",
            model="seedream-5.0-lite",
            size="3k",
            images=["https://cdn.example.com/bike.png", str(reference)],
            sequential_image_generation="auto",
            max_images=2,
            watermark=False,
            optimize_prompt_mode="standard",
        )
        (request,) = connection.requests
        assert request.path == "/v3/seedream-5.0-lite"
        assert request.headers["Authorization"] == f"Bearer {API_KEY}"
        assert request.headers["Content-Type"] == "application/json"
        assert request.body == {
            "prompt": "a red bicycle on a coastal road",
            "size": "3K",
            "image": [
                "https://cdn.example.com/bike.png",
                "data:image/webp;base64," + base64.b64encode(reference.read_bytes()).decode(),
            ],
            "sequential_image_generation": "auto",
            "sequential_image_generation_options": {"max_images": 2},
            "watermark": False,
            "optimize_prompt_options": {"mode": "standard"},
        }
        # 3K is 3072x3072; the test sandbox draws images at 1/32 of their size.
        sizes = [Image.open(io.BytesIO(connection.image_bytes(url))).size for url in urls]
        assert sizes == [(96, 96), (96, 96)]

    @pytest.mark.parametrize(
        ("size", "sent", "pixels"),
        [
            (None, None, (64, 64)),  # the API's default, 2048x2048
            ("2K", "2K", (64, 64)),
            ("2560x1440", "2560x1440", (80, 45)),
            ("3072x3386", "3072x3386", (96, 106)),
        ],
    )
    def test_seedream_50_lite_sizes_reach_the_api(self, connection, size, sent, pixels):
        (url,) = SeedreamHook().generate("a lamp", model="seedream-5.0-lite", size=size)
        (request,) = connection.requests
        expected = {"prompt": "a lamp"} if sent is None else {"prompt": "a lamp", "size": sent}
        assert (request.path, request.body) == ("/v3/seedream-5.0-lite", expected)
        assert Image.open(io.BytesIO(connection.image_bytes(url))).size == pixels

    def test_seedream_50_lite_takes_14_references_with_one_image(self, connection):
        references = [f"https://cdn.example.com/{number}.png" for number in range(14)]
        SeedreamHook().generate(
            "a collage",
            model="seedream-5.0-lite",
            images=references,
            sequential_image_generation="auto",
            max_images=1,
        )
        (request,) = connection.requests
        assert request.body == {
            "prompt": "a collage",
            "image": references,
            "sequential_image_generation": "auto",
            "sequential_image_generation_options": {"max_images": 1},
        }

    @pytest.mark.parametrize("style", ["image_url", "url"])
    def test_object_items_are_read(self, connection, style):
        connection.item_style = style
        urls = SeedreamHook().generate("p", sequential_image_generation="auto", max_images=2)
        assert len(urls) == 2 and all(url.startswith("http://127.0.0.1") for url in urls)

    def test_session_is_reused(self, connection):
        hook = SeedreamHook()
        hook.generate("one")
        hook.generate("two")
        assert hook.get_conn() is hook.get_conn()
        assert len(connection.generation_requests()) == 2

    def test_local_and_object_storage_references_are_inlined(self, connection, tmp_path):
        from airflow.providers.common.compat.sdk import ObjectStoragePath

        local = png(tmp_path / "local.bin", 40, 30)  # the extension is irrelevant: content decides
        stored = ObjectStoragePath("memory://refs/stored.png")
        stored.parent.mkdir(parents=True, exist_ok=True)
        stored.write_bytes(png(tmp_path / "s.png", 30, 40).read_bytes())
        SeedreamHook().generate(
            "edit", images=[str(local), f"file://{local}", stored, local, "https://x.example/u.png"]
        )
        body = connection.requests[0].body
        inline = "data:image/png;base64," + base64.b64encode(local.read_bytes()).decode()
        assert body["image"] == [
            inline,
            inline,
            "data:image/png;base64," + base64.b64encode(stored.read_bytes()).decode(),
            inline,
            "https://x.example/u.png",
        ]


class TestNothingInvalidIsSent:
    @pytest.mark.parametrize(
        ("arguments", "message"),
        [
            ({"size": "1K"}, "size='1K' is not valid for seedream-4.5"),
            ({"model": "seedream-4.0", "images": ["https://x/a.png"] * 11}, "11 references"),
            ({"sequential_image_generation": "auto", "max_images": 16}, "max_images=16 is outside 1..15"),
            ({"images": ["/definitely/missing.png"]}, "no such file"),
            ({"images": ["ftp://host/a.png"]}, "unsupported scheme 'ftp'"),
            ({"images": ["data:image/png;base64,bm90IGFuIGltYWdl"]}, "the content is not an image"),
        ],
    )
    def test_refused_before_any_request(self, connection, arguments, message):
        with pytest.raises(SeedreamValidationError, match=message):
            SeedreamHook().generate("p", **arguments)
        assert connection.requests == []

    @pytest.mark.parametrize(
        ("arguments", "message"),
        [
            (
                {"size": "1K"},
                (
                    "size='1K' is not valid for seedream-5.0-lite: use one of 2K, 3K, or WIDTHxHEIGHT with "
                    "total pixels 3,686,400..10,404,496 and aspect ratio 1/16..16"
                ),
            ),
            (
                {"size": "4K"},
                (
                    "size='4K' is not valid for seedream-5.0-lite: use one of 2K, 3K, or WIDTHxHEIGHT with "
                    "total pixels 3,686,400..10,404,496 and aspect ratio 1/16..16"
                ),
            ),
            (
                {"size": "4096x4096"},
                (
                    "size='4096x4096': total pixels 16,777,216 are outside 3,686,400..10,404,496 for "
                    "seedream-5.0-lite"
                ),
            ),
            (
                {"size": "1920x1080"},
                (
                    "size='1920x1080': total pixels 2,073,600 are outside 3,686,400..10,404,496 for "
                    "seedream-5.0-lite"
                ),
            ),
            ({"images": ["https://x/a.png"] * 15}, "images: 15 references; seedream-5.0-lite takes 1..14"),
            (
                {"images": ["https://x/a.png"] * 14, "sequential_image_generation": "auto", "max_images": 2},
                (
                    "max_images=2 with 14 references: references plus generated images may not exceed 15 for "
                    "seedream-5.0-lite, so max_images can be at most 1"
                ),
            ),
            (
                {"sequential_image_generation": "auto", "max_images": 16},
                "max_images=16 is outside 1..15 for seedream-5.0-lite",
            ),
            (
                {"optimize_prompt_mode": "fast"},
                "optimize_prompt_mode='fast' is not supported by seedream-5.0-lite; choose one of standard",
            ),
            (
                {"sequential_image_generation": "storyboard"},
                (
                    "sequential_image_generation='storyboard' is not supported by seedream-5.0-lite; "
                    "choose one of auto, disabled"
                ),
            ),
            ({"images": []}, "images=[]: give 1 or more references"),
        ],
    )
    def test_seedream_50_lite_rules_are_checked_before_any_request(self, connection, arguments, message):
        with pytest.raises(SeedreamValidationError) as info:
            SeedreamHook().generate("p", model="seedream-5.0-lite", **arguments)
        assert message in str(info.value)
        assert connection.requests == []

    def test_directory_reference_is_refused(self, connection, tmp_path):
        with pytest.raises(SeedreamValidationError, match="is a directory, not an image file"):
            SeedreamHook().generate("p", images=[str(tmp_path)])
        assert connection.requests == []

    def test_text_file_reference_is_refused(self, connection, tmp_path):
        text = tmp_path / "notes.png"
        text.write_text("not an image at all")
        with pytest.raises(SeedreamValidationError, match=r"notes.png'?: the content is not an image"):
            SeedreamHook().generate("p", images=[str(text)])
        assert connection.requests == []

    def test_oversized_reference_is_refused_without_reading_it_whole(self, connection, tmp_path):
        big = tmp_path / "big.png"
        big.write_bytes(png(tmp_path / "b.png").read_bytes() + b"\0" * (11 * 1024 * 1024))
        with pytest.raises(SeedreamValidationError, match="over the 10,485,760-byte limit"):
            SeedreamHook().generate("p", model="seedream-4.0", images=[str(big)])
        assert connection.requests == []


class TestErrors:
    @pytest.mark.parametrize(
        ("status", "body", "kind", "text"),
        [
            (
                400,
                {"code": 400, "reason": "INVALID_REQUEST_BODY", "message": "bad size"},
                SeedreamBadRequestError,
                "Seedream API error 400 INVALID_REQUEST_BODY: bad size",
            ),
            (
                400,
                {"code": 400, "reason": "ILLEGAL_PROMPT", "message": "refused"},
                SeedreamContentPolicyError,
                "ILLEGAL_PROMPT",
            ),
            (
                400,
                {"code": 400, "reason": "ILLEGAL_IMAGE_CONTENT", "message": "no"},
                SeedreamContentPolicyError,
                "no",
            ),
            (
                400,
                {"code": 400, "reason": "BILLING_BALANCE_NOT_ENOUGH", "message": "top up"},
                SeedreamBillingError,
                "top up",
            ),
            (
                401,
                {"error": {"message": "Invalid API key", "code": 401}},
                SeedreamAuthError,
                "Invalid API key",
            ),
            (
                403,
                {"code": 403, "reason": "API_NOT_ALLOWED", "message": "no access"},
                SeedreamAuthError,
                "API_NOT_ALLOWED",
            ),
            (404, b"<html><body>Not Found</body></html>", SeedreamBadRequestError, "404"),
        ],
    )
    def test_errors_are_typed_and_never_retried(self, connection, status, body, kind, text):
        connection.fail_next(status, body)
        with pytest.raises(kind, match=text) as info:
            SeedreamHook().generate("p")
        assert info.value.status == status
        assert not may_retry(info.value, retry_possibly_billed=True)
        assert len(connection.requests) == 1

    def test_gateway_html_is_truncated(self, connection):
        page = b"<html><body>" + b"Bad gateway " * 400 + b"</body></html>"
        connection.fail_next(502, page)
        with pytest.raises(SeedreamGatewayError) as info:
            SeedreamHook().generate("p")
        assert info.value.status == 502
        assert len(info.value.message) < 600 and "more characters]" in info.value.message

    def test_empty_image_list_is_an_error(self, connection):
        connection.fail_next(200, {"images": []})
        with pytest.raises(SeedreamResponseError, match="non-empty 'images' list"):
            SeedreamHook().generate("p")
        assert len(connection.requests) == 1

    def test_success_without_json_is_an_error(self, connection):
        connection.fail_next(200, b"<html>ok</html>")
        with pytest.raises(SeedreamResponseError, match="INVALID_RESPONSE"):
            SeedreamHook().generate("p")


class TestRetries:
    def test_overload_is_retried_with_backoff(self, connection, logs):
        connection.fail_next(503, times=3)
        urls = SeedreamHook().generate("p")
        assert len(urls) == 1
        assert len(connection.requests) == 4
        assert "retry 3 of 3" in logs()

    def test_attempts_are_bounded(self, connection):
        connection.fail_next(503, times=10)
        with pytest.raises(SeedreamServerError, match="503"):
            SeedreamHook().generate("p")
        assert len(connection.requests) == 4  # one try and max_retries=3 retries

    @pytest.mark.parametrize("status", [500, 502, 504])
    def test_server_failures_after_sending_are_not_retried(self, connection, status):
        connection.fail_next(status, times=4)
        with pytest.raises(SeedreamGatewayError, match=f"{status}.*may have run and been billed") as info:
            SeedreamHook().generate("p")
        assert isinstance(info.value, SeedreamPossiblyBilledError) and not may_retry(info.value)
        assert len(connection.requests) == 1

    def test_server_failures_after_sending_are_retried_when_opted_in(self, connection):
        connection.fail_next(502, times=2)
        assert len(SeedreamHook().generate("p", retry_possibly_billed=True)) == 1
        assert len(connection.requests) == 3

    def test_max_retries_comes_from_the_connection(self, sandbox, monkeypatch):
        monkeypatch.setenv(
            "AIRFLOW_CONN_SEEDREAM_DEFAULT",
            json_connection(sandbox.url, extra={"max_retries": 1, "backoff_seconds": 0}),
        )
        sandbox.fail_next(503, times=5)
        with pytest.raises(SeedreamServerError):
            SeedreamHook().generate("p")
        assert len(sandbox.requests) == 2

    def test_retry_after_seconds_is_honoured(self, connection):
        connection.fail_next(
            429,
            {"code": 429, "reason": "RATE_LIMIT_EXCEEDED", "message": "slow down"},
            headers={"Retry-After": "1"},
        )
        SeedreamHook().generate("p")
        first, second = connection.requests
        assert second.received_at - first.received_at >= 1.0

    def test_retry_after_http_date_is_honoured(self, connection):
        when = email.utils.formatdate(time.time() + 2, usegmt=True)
        connection.fail_next(429, headers={"Retry-After": when})
        SeedreamHook().generate("p")
        first, second = connection.requests
        assert second.received_at - first.received_at >= 0.9

    def test_retry_after_is_capped(self, sandbox, monkeypatch):
        monkeypatch.setenv(
            "AIRFLOW_CONN_SEEDREAM_DEFAULT", json_connection(sandbox.url, extra={"max_backoff_seconds": 0.2})
        )
        sandbox.fail_next(429, headers={"Retry-After": "3600"})
        started = time.monotonic()
        SeedreamHook().generate("p")
        assert time.monotonic() - started < 5

    def test_rate_limit_error_carries_retry_after(self, sandbox, monkeypatch):
        monkeypatch.setenv(
            "AIRFLOW_CONN_SEEDREAM_DEFAULT",
            json_connection(sandbox.url, extra={"rate_limit_wait_seconds": 2}),
        )
        sandbox.fail_next(429, headers={"Retry-After": "0"}, times=10)
        started = time.monotonic()
        with pytest.raises(SeedreamRateLimitError) as info:
            SeedreamHook().generate("p")
        assert info.value.retry_after == 0 and may_retry(info.value)
        assert len(sandbox.requests) == 3  # waits of at least 1 s each (never a busy loop), 2 s in all
        assert 2 <= time.monotonic() - started < 4

    def test_rate_limits_are_waited_out_beyond_max_retries(self, sandbox, monkeypatch):
        monkeypatch.setenv(
            "AIRFLOW_CONN_SEEDREAM_DEFAULT", json_connection(sandbox.url, extra={"max_retries": 1})
        )
        sandbox.fail_next(429, headers={"Retry-After": "1"}, times=3)
        assert len(SeedreamHook().generate("p")) == 1
        assert len(sandbox.requests) == 4  # nothing was generated by a 429: pacing costs only time

    def test_failure_to_connect_is_retried(self, monkeypatch, logs):
        monkeypatch.setenv(
            "AIRFLOW_CONN_SEEDREAM_DEFAULT",
            json_connection(f"http://127.0.0.1:{free_port()}", extra={"backoff_seconds": 0.01}),
        )
        with pytest.raises(SeedreamConnectionError, match="Could not connect"):
            SeedreamHook().generate("p")
        output = logs()
        assert "retry 3 of 3" in output and "retry 4 of" not in output

    def test_read_timeout_is_not_retried(self, sandbox, monkeypatch):
        monkeypatch.setenv(
            "AIRFLOW_CONN_SEEDREAM_DEFAULT", json_connection(sandbox.url, extra={"read_timeout": 0.5})
        )
        sandbox.inject(Fault(delay=1.5))
        with pytest.raises(
            SeedreamTimeoutError,
            match=r"within 0\.5 s; the request was sent, so the generation may have run and been billed",
        ) as info:
            SeedreamHook().generate("p")
        assert not may_retry(info.value)
        assert len(sandbox.requests) == 1

    def test_read_timeout_is_retried_when_opted_in(self, connection):
        connection.inject(Fault(delay=1.5))
        urls = SeedreamHook().generate("p", read_timeout=0.5, retry_possibly_billed=True)
        assert len(urls) == 1 and len(connection.requests) == 2

    def test_connection_dropped_after_sending_is_not_retried(self, connection):
        connection.inject(Fault(drop=True))
        with pytest.raises(SeedreamConnectionLostError, match="broke after the request was sent"):
            SeedreamHook().generate("p")
        assert len(connection.requests) == 1

    def test_a_tls_failure_while_the_answer_is_read_is_not_retried(self, tmp_path, monkeypatch):
        """TLS breaks after the request went out: possibly billed, sent once (not "nothing was sent",
        which a handshake failure is)."""
        from tls_server import TLSBreakingServer

        with TLSBreakingServer(tmp_path) as server:
            monkeypatch.setenv("AIRFLOW_CONN_SEEDREAM_DEFAULT", json_connection(server.url))
            monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(server.certificate))
            with pytest.raises(
                SeedreamConnectionLostError, match=r"broke after the request was sent \(TLS error"
            ):
                SeedreamHook().generate("p")
            assert len(server.requests) == 1 and server.requests[0].startswith(b"POST /v3/seedream-4.5 ")

    def test_a_tls_handshake_failure_sent_nothing_and_is_retried(self, tmp_path, monkeypatch):
        from tls_server import TLSBreakingServer

        with TLSBreakingServer(tmp_path) as server:  # its certificate is trusted by no one here
            monkeypatch.setenv(
                "AIRFLOW_CONN_SEEDREAM_DEFAULT",
                json_connection(server.url, extra={"max_retries": 2, "backoff_seconds": 0.01}),
            )
            with pytest.raises(SeedreamConnectionError, match="certificate could not be verified") as info:
                SeedreamHook().generate("p")
            assert "nothing was sent" in str(info.value) and "plain HTTP" not in str(info.value)
            assert may_retry(info.value)
            assert server.requests == []


class TestConnection:
    @pytest.mark.parametrize(
        ("host", "port", "expected"),
        [
            (None, None, "https://api.novita.ai"),
            ("", None, "https://api.novita.ai"),
            ("http://127.0.0.1:8080/", None, "http://127.0.0.1:8080"),
            ("api.example.com", None, "https://api.example.com"),
            ("api.example.com", 8443, "https://api.example.com:8443"),
        ],
    )
    def test_base_url(self, host, port, expected):
        assert base_url_from_connection(host, port) == expected

    def test_test_connection_accepts_a_good_key_without_generating(self, connection):
        ok, message = SeedreamHook().test_connection()
        accepted = "seedream-4.0, seedream-4.5, seedream-5.0-lite"
        assert (ok, message) == (
            True,
            f"Connected to {connection.url}; the API key was accepted for {accepted}.",
        )
        assert [(request.path, request.body) for request in connection.requests] == [
            ("/v3/seedream-4.0", {}),
            ("/v3/seedream-4.5", {}),
            ("/v3/seedream-5.0-lite", {}),
        ]
        assert connection._images == {}  # nothing was generated

    def test_test_connection_names_a_model_the_key_may_not_use(self, monkeypatch):
        with SeedreamSandbox(API_KEY, allowed_models={"seedream-4.0", "seedream-4.5"}) as sandbox:
            monkeypatch.setenv("AIRFLOW_CONN_SEEDREAM_DEFAULT", json_connection(sandbox.url))
            ok, message = SeedreamHook().test_connection()
            with pytest.raises(SeedreamAuthError, match="403 API_NOT_ALLOWED"):
                SeedreamHook().generate("p", model="seedream-5.0-lite")
        assert ok
        assert message == (
            f"Connected to {sandbox.url}; the API key was accepted for seedream-4.0, seedream-4.5, and "
            "refused for seedream-5.0-lite: Seedream API error 403 API_NOT_ALLOWED: this API key may not "
            "use seedream-5.0-lite"
        )
        assert len(sandbox.generation_requests()) == 4  # three probes, one refused generation: no retry

    def test_test_connection_reports_a_bad_key(self, sandbox, monkeypatch):
        monkeypatch.setenv(
            "AIRFLOW_CONN_SEEDREAM_DEFAULT", json_connection(sandbox.url, password="wrong-key-123")
        )
        ok, message = SeedreamHook().test_connection()
        assert not ok and "401" in message and "INVALID_API_KEY" in message

    def test_tls_to_a_plain_http_server_says_to_use_http(self, sandbox, monkeypatch):
        host = sandbox.url.replace("http://", "https://")
        monkeypatch.setenv("AIRFLOW_CONN_SEEDREAM_DEFAULT", json_connection(host, extra={"max_retries": 0}))
        with pytest.raises(SeedreamConnectionError, match="give the connection's host as http://") as info:
            SeedreamHook().generate("p")
        assert "nothing was sent" in str(info.value)
        assert sandbox.requests == []

    def test_test_connection_reports_an_unreachable_host(self, monkeypatch):
        monkeypatch.setenv(
            "AIRFLOW_CONN_SEEDREAM_DEFAULT", json_connection(f"http://127.0.0.1:{free_port()}")
        )
        ok, message = SeedreamHook().test_connection()
        assert not ok and "connection refused; nothing was sent" in message

    def test_bad_extra_is_named(self, sandbox, monkeypatch):
        monkeypatch.setenv(
            "AIRFLOW_CONN_SEEDREAM_DEFAULT", json_connection(sandbox.url, extra={"max_retries": "many"})
        )
        with pytest.raises(
            SeedreamValidationError,
            match="has invalid extras: max_retries='many': Input should be a valid integer",
        ):
            SeedreamHook().generate("p")

    def test_ui_field_behaviour(self):
        behaviour = SeedreamHook.get_ui_field_behaviour()
        assert behaviour["hidden_fields"] == ["schema", "port", "login"]
        assert behaviour["relabeling"]["password"] == "API Key"
        assert behaviour["placeholders"]["host"] == "https://api.novita.ai"


class TestUnknownExtras:
    def test_a_typo_is_warned_about_with_the_closest_name_and_the_rest_still_applies(
        self, connection, monkeypatch, caplog
    ):
        extra = {"max_retires": 5, "read_timeout": 30, "owner_team": "marketing"}
        monkeypatch.setenv("AIRFLOW_CONN_SEEDREAM_DEFAULT", json_connection(connection.url, extra=extra))
        with caplog.at_level(logging.WARNING):
            hook = SeedreamHook()
            assert hook.generate("a red bicycle")  # not refused: shared extras keep other tools' keys
        warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
        assert (
            "Connection 'seedream_default' has an extra 'max_retires', which is no setting of the Seedream "
            "provider and is ignored; did you mean 'max_retries'?"
        ) in warnings
        (other,) = [warning for warning in warnings if "'owner_team'" in warning]
        assert "the settings are connect_timeout, read_timeout" in other
        assert hook.settings.read_timeout == 30 and hook.settings.max_retries != 5
        assert len(connection.generation_requests()) == 1


class TestSecrets:
    def test_key_never_shows(self, sandbox, monkeypatch, caplog, logs):
        monkeypatch.setenv(
            "AIRFLOW_CONN_SEEDREAM_DEFAULT", json_connection(sandbox.url, password="sk-wrong-5d1f0a")
        )
        hook = SeedreamHook()
        with caplog.at_level(logging.DEBUG), pytest.raises(SeedreamAuthError) as info:
            hook.generate("p")
        seen = logs() + repr(hook) + str(info.value) + repr(info.value)
        assert "sk-wrong-5d1f0a" not in seen

    def test_key_is_registered_with_the_secret_masker(self, connection):
        from airflow.providers.common.compat.sdk import redact

        SeedreamHook().generate("p")
        assert API_KEY not in str(redact(f"the key is {API_KEY}"))


def test_a_new_model_is_one_spec_entry(connection, monkeypatch):
    """A fictional model: a new preset, other limits, renamed and nested fields; one ModelSpec, and the
    validation, the payload, the hook and the sandbox all follow, with no code change elsewhere."""
    from fractions import Fraction

    from PIL import Image

    from airflow_provider_seedream.contract.specs import MODEL_SPECS, ModelSpec, ReferenceLimits, body_fields

    spec = ModelSpec(
        name="seedream-9.0-fictional",
        path="/v3/seedream-9.0-fictional",
        fields=body_fields(
            prompt=("text",),
            images=("reference_images",),
            max_images=("options", "max_images"),
            watermark=None,  # this model has no watermark switch
        ),
        max_references=4,
        reference_limits=ReferenceLimits(formats=("png",), aspect_ratio=(Fraction(1, 2), Fraction(2))),
        size_presets={"2K": (2048, 2048), "8K-wide": (8192, 2048)},
        pixel_range=(1024 * 1024, 8192 * 2048),
        max_images_range=(1, 6),
        max_total_images=8,
        sequential_modes=("auto", "disabled", "storyboard"),
    )
    monkeypatch.setitem(MODEL_SPECS, spec.name, spec)
    urls = SeedreamHook().generate(
        "p",
        model=spec.name,
        size="8k-wide",
        images=["https://x.example/a.png"],
        sequential_image_generation="storyboard",
        max_images=6,
    )
    (request,) = connection.requests
    assert request.path == "/v3/seedream-9.0-fictional"
    assert request.body == {
        "text": "p",
        "size": "8K-wide",
        "reference_images": ["https://x.example/a.png"],
        "sequential_image_generation": "storyboard",
        "options": {"max_images": 6},
    }
    # The sandbox draws the new preset at its pixel size (scaled by 1/32).
    assert Image.open(io.BytesIO(connection.image_bytes(urls[0]))).size == (256, 64)
    for arguments, message in [
        ({"images": ["https://x.example/a.png"] * 5}, r"5 references; seedream-9\.0-fictional takes 1\.\.4"),
        ({"sequential_image_generation": "auto", "max_images": 7}, r"max_images=7 is outside 1\.\.6"),
        ({"images": ["https://x.example/a.png"] * 3, "max_images": 6}, "may not exceed 8"),
        ({"size": "1K"}, r"use one of 2K, 8K-wide"),
        ({"watermark": False}, "watermark=False: seedream-9.0-fictional has no such parameter"),
        ({"sequential_image_generation": "loop"}, "choose one of auto, disabled, storyboard"),
    ]:
        with pytest.raises(SeedreamValidationError, match=message):
            SeedreamHook().generate("p", model=spec.name, **arguments)
    assert len(connection.requests) == 1


def test_one_hook_serves_twenty_threads(connection, tmp_path):
    """What parallel_downloads does with four, and a user's thread pool in a @task with more: one hook,
    20 threads x 5 rounds of generate and download, with rate limits mixed in."""
    from concurrent.futures import ThreadPoolExecutor

    rate_limited = {"code": 429, "reason": "RATE_LIMIT_EXCEEDED", "message": "slow down"}
    connection.fail_next(429, rate_limited, {"Retry-After": "0"}, times=10)
    hook = SeedreamHook()

    def rounds(thread: int) -> list[tuple[str, str]]:
        stored = []
        for round_ in range(5):
            (url,) = hook.generate(f"thread {thread} round {round_}")
            stored.append((url, hook.download(url, tmp_path / f"{thread}-{round_}.{{ext}}")))
        return stored

    with ThreadPoolExecutor(20) as pool:
        results = [pair for stored in pool.map(rounds, range(20)) for pair in stored]
    assert len(results) == 100
    assert len(connection.generation_requests()) == 100 + 10  # each generation once, plus the 429s
    prompts = sorted(request.body["prompt"] for request in connection.generation_requests())
    assert len(set(prompts)) == 100
    for url, location in results:
        with open(location, "rb") as handle:
            assert handle.read() == connection.image_bytes(url)
        assert connection.downloads_of(url) == 1


def test_a_parameter_only_one_model_has_costs_a_field_a_path_and_the_signatures(connection, monkeypatch):
    """What adding ``seed``, which only the fictional model has, costs: one field of GenerateRequest and
    one path in that model's spec. Validation, the body and the sandbox follow; every other model
    refuses it by name; the hook's ``generate`` passes it through (its ``**options`` are checked by
    GenerateRequest), though its typed options and the operator's explicit signature do not name it
    until they are given it (``test_public_signatures_take_every_generation_parameter`` then demands
    both)."""
    from pydantic import StrictInt

    from airflow_provider_seedream.contract import request as request_module
    from airflow_provider_seedream.contract.specs import MODEL_SPECS, ModelSpec, ReferenceLimits, body_fields

    class WithSeed(request_module.GenerateRequest):
        seed: StrictInt | None = None  # the one field

    monkeypatch.setattr(request_module, "GenerateRequest", WithSeed)
    monkeypatch.setattr(request_module, "GENERATION_PARAMETERS", tuple(WithSeed.model_fields))
    spec = ModelSpec(
        name="seedream-9.0-fictional",
        path="/v3/seedream-9.0-fictional",
        fields=body_fields(seed=("options", "seed")),  # the one path
        max_references=4,
        reference_limits=ReferenceLimits(formats=("png",)),
        size_presets={"2K": (2048, 2048)},
        pixel_range=(1024 * 1024, 4096 * 4096),
    )
    monkeypatch.setitem(MODEL_SPECS, spec.name, spec)
    hook = SeedreamHook()
    prepared = hook.prepare_generation(prompt="p", model=spec.name, size="2K", seed=42)
    hook.send_generation(prepared)
    (request,) = connection.requests
    assert (request.path, request.body) == (spec.path, {"prompt": "p", "size": "2K", "options": {"seed": 42}})
    with pytest.raises(SeedreamValidationError, match=r"seed=42: seedream-4\.5 has no such parameter"):
        hook.prepare_generation(prompt="p", model="seedream-4.5", seed=42)
    with pytest.raises(SeedreamValidationError, match="seed='7x': Input should be a valid integer"):
        hook.prepare_generation(prompt="p", model=spec.name, seed="7x")
    hook.generate("p", model=spec.name, seed=42)  # type: ignore[call-arg]
    assert len(connection.requests) == 2 and connection.requests[1].body == {
        "prompt": "p",
        "options": {"seed": 42},
    }
    assert "seed" not in request_module.GenerationOptions.__annotations__
    # Airflow 3 raises TypeError, 2.11 AirflowException.
    with pytest.raises((TypeError, AirflowException), match=r"Invalid arguments(.|\n)*seed"):
        SeedreamGenerateOperator(task_id="gen", prompt="p", model=spec.name, seed=42)  # type: ignore[call-arg]
    assert len(connection.requests) == 2


def test_an_unknown_generation_option_is_refused_by_name_before_sending(connection):
    with pytest.raises(SeedreamValidationError, match="sizes: unknown parameter"):
        SeedreamHook().generate("p", sizes="2K")  # type: ignore[call-arg]
    assert connection.requests == []
