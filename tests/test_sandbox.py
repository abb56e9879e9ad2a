"""The sandbox itself: it validates like the API, serves real images, and plays every fault it offers."""

from __future__ import annotations

import base64
import http.client
import io
import os
import re
import signal
import socket
import subprocess
import sys
import time
from urllib.parse import urlsplit

import pytest
import requests
from conftest import API_KEY
from PIL import Image

from airflow_provider_seedream.contract.exceptions import SeedreamValidationError
from airflow_provider_seedream.contract.request import build_request
from airflow_provider_seedream.contract.specs import MODEL_SPECS
from airflow_provider_seedream.testing import Fault, LinkFault, SeedreamSandbox
from airflow_provider_seedream.testing.api import request_from_payload

HEADERS = {"Authorization": f"Bearer {API_KEY}"}


def post(sandbox, body, model="seedream-4.5", headers=HEADERS, **kwargs):
    return requests.post(f"{sandbox.url}/v3/{model}", json=body, headers=headers, timeout=10, **kwargs)


class TestValidation:
    @pytest.mark.parametrize(
        ("body", "model", "message"),
        [
            ({"prompt": "p", "size": "1K"}, "seedream-4.5", "size='1K' is not valid for seedream-4.5"),
            ({"prompt": "p", "max_images": 3}, "seedream-4.5", "unknown fields for seedream-4.5: max_images"),
            ({"size": "2K"}, "seedream-4.0", "prompt: a prompt is required"),
            ({"prompt": "p", "image": []}, "seedream-4.5", "images=[]"),
            ({"prompt": "p", "images": ["/local/file.png"]}, "seedream-4.0", "URLs and data URIs only"),
            (
                {"prompt": "p", "images": ["data:image/png;base64," + base64.b64encode(b"text").decode()]},
                "seedream-4.0",
                "the content is not an image",
            ),
            (
                {"prompt": "p", "size": "4K"},
                "seedream-5.0-lite",
                "size='4K' is not valid for seedream-5.0-lite",
            ),
            (
                {"prompt": "p", "size": "1K"},
                "seedream-5.0-lite",
                "size='1K' is not valid for seedream-5.0-lite",
            ),
            (
                {"prompt": "p", "size": "1920x1080"},
                "seedream-5.0-lite",
                "total pixels 2,073,600 are outside 3,686,400..10,404,496",
            ),
            ({"prompt": "p", "images": ["https://x/a.png"]}, "seedream-5.0-lite", "unknown fields"),
            (
                {"prompt": "p", "image": ["https://x/a.png"] * 15},
                "seedream-5.0-lite",
                "15 references; seedream-5.0-lite takes 1..14",
            ),
        ],
    )
    def test_invalid_bodies_get_400_with_the_contracts_message(self, sandbox, body, model, message):
        response = post(sandbox, body, model)
        assert response.status_code == 400
        assert response.json()["reason"] == "INVALID_REQUEST_BODY"
        assert message in response.json()["message"]

    def test_seedream_50_lite_3k_is_served_at_3072x3072(self):
        with SeedreamSandbox(API_KEY) as sandbox:  # full size: what the API would send
            response = post(sandbox, {"prompt": "a 3K poster", "size": "3K"}, "seedream-5.0-lite")
            (url,) = response.json()["images"]
            image = Image.open(io.BytesIO(requests.get(url, timeout=30).content))
        assert (response.status_code, image.format, image.size) == (200, "PNG", (3072, 3072))

    def test_a_model_the_key_may_not_use_is_refused(self):
        with SeedreamSandbox(API_KEY, allowed_models={"seedream-4.5"}) as sandbox:
            refused = post(sandbox, {"prompt": "p"}, "seedream-5.0-lite")
            allowed = post(sandbox, {"prompt": "p"}, "seedream-4.5")
        assert (refused.status_code, refused.json()["reason"]) == (403, "API_NOT_ALLOWED")
        assert allowed.status_code == 200 and sandbox.stats.generations == 1

    def test_keys(self, sandbox):
        assert post(sandbox, {"prompt": "p"}, headers={}).json()["reason"] == "MISSING_API_KEY"
        wrong = post(sandbox, {"prompt": "p"}, headers={"Authorization": "Bearer nope"})
        assert (wrong.status_code, wrong.json()["reason"]) == (401, "INVALID_API_KEY")

    def test_unknown_endpoint_and_bad_content_type(self, sandbox):
        assert post(sandbox, {"prompt": "p"}, model="seedream-9").status_code == 404
        response = requests.post(
            f"{sandbox.url}/v3/seedream-4.5", data="prompt=p", headers=HEADERS, timeout=10
        )
        assert response.status_code == 400 and "application/json" in response.json()["message"]

    @pytest.mark.parametrize(
        ("body", "count"),
        [
            ({"prompt": "p"}, 1),
            ({"prompt": "p", "sequential_image_generation": "disabled"}, 1),
            ({"prompt": "p", "sequential_image_generation": "auto"}, 3),
            (
                {
                    "prompt": "p",
                    "sequential_image_generation": "auto",
                    "sequential_image_generation_options": {"max_images": 5},
                },
                5,
            ),
            (
                {
                    "prompt": "p",
                    "sequential_image_generation": "auto",
                    "image": ["https://x.example/r.png"] * 13,
                },
                2,
            ),
        ],
    )
    def test_image_count_follows_the_request(self, sandbox, body, count):
        assert len(post(sandbox, body).json()["images"]) == count

    def test_item_styles(self, sandbox):
        sandbox.item_style = "image_url"
        (item,) = post(sandbox, {"prompt": "p"}).json()["images"]
        assert item["image_url"].startswith(sandbox.url)


class TestImages:
    def open(self, url):
        return Image.open(io.BytesIO(requests.get(url, timeout=10).content))

    @pytest.mark.parametrize(
        ("size", "pixels"), [("2K", (64, 64)), ("2560x1440", (80, 45)), (None, (64, 64))]
    )
    def test_pixel_size_follows_the_request_scaled(self, sandbox, size, pixels):
        body = {"prompt": "a red bicycle"} | ({"size": size} if size else {})
        (url,) = post(sandbox, body).json()["images"]
        image = self.open(url)
        assert (image.format, image.size) == ("PNG", pixels)

    def test_images_show_their_prompt(self, sandbox):
        sandbox.image_scale = 0.25
        first, second = (
            self.open(post(sandbox, {"prompt": p}).json()["images"][0]) for p in ("kettle", "lamp")
        )
        assert first.getpixel((500, 500)) != second.getpixel((500, 500))  # the background follows the prompt
        assert len(first.getcolors(1 << 16)) > 2  # text is drawn on it


class TestFaults:
    def test_scripted_status_and_headers(self, sandbox):
        sandbox.fail_next(
            429, {"code": 429, "reason": "RATE_LIMIT_EXCEEDED", "message": "slow"}, {"Retry-After": "7"}
        )
        response = post(sandbox, {"prompt": "p"})
        assert (response.status_code, response.headers["Retry-After"]) == (429, "7")
        assert post(sandbox, {"prompt": "p"}).status_code == 200  # one fault, one request

    def test_server_error_repeats(self, sandbox):
        sandbox.fail_next(503, times=2)
        assert [post(sandbox, {"prompt": "p"}).status_code for _ in range(3)] == [503, 503, 200]

    def test_html_body(self, sandbox):
        sandbox.fail_next(502, b"<html>Bad gateway</html>")
        response = post(sandbox, {"prompt": "p"})
        assert response.status_code == 502 and response.headers["Content-Type"] == "text/html"

    def test_latency(self, sandbox):
        sandbox.inject(Fault(delay=0.5))
        started = time.monotonic()
        assert post(sandbox, {"prompt": "p"}).status_code == 200
        assert time.monotonic() - started >= 0.5

    def test_dropped_connection(self, sandbox):
        sandbox.inject(Fault(drop=True))
        with pytest.raises(requests.ConnectionError):
            post(sandbox, {"prompt": "p"})

    def test_links_not_ready_then_ready(self, sandbox):
        sandbox.links_of_next_generation(LinkFault(ready_after=0.5))
        (url,) = post(sandbox, {"prompt": "p"}).json()["images"]
        assert requests.get(url, timeout=10).status_code == 404
        time.sleep(0.6)
        assert requests.get(url, timeout=10).status_code == 200

    @pytest.mark.parametrize(
        ("fault", "status", "content"),
        [
            (LinkFault(expired=True), 403, b"Request has expired"),
            (LinkFault(gone=True), 410, b"gone"),
            (LinkFault(html=True), 200, b"<!DOCTYPE html>"),
        ],
    )
    def test_link_faults(self, sandbox, fault, status, content):
        sandbox.links_of_next_generation(fault)
        (url,) = post(sandbox, {"prompt": "p"}).json()["images"]
        response = requests.get(url, timeout=10)
        assert response.status_code == status and content in response.content

    def test_forged_signature_is_refused(self, sandbox):
        (url,) = post(sandbox, {"prompt": "p"}).json()["images"]
        assert (
            requests.get(url.split("X-Tos-Signature=")[0] + "X-Tos-Signature=x", timeout=10).status_code
            == 403
        )

    def test_truncated_body(self, sandbox):
        url = urlsplit(sandbox.add_image(b"\x89PNG\r\n\x1a\n" + b"\0" * 5000, LinkFault(truncate_at=1000)))
        connection = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
        connection.request("GET", f"{url.path}?{url.query}")
        response = connection.getresponse()
        assert response.getheader("Content-Length") == "5008"
        with pytest.raises(http.client.IncompleteRead) as info:
            response.read()
        assert len(info.value.partial) == 1000


class TestWireBodies:
    """The sandbox reads a wire body back with the model's spec, as the API would."""

    @pytest.mark.parametrize("model", sorted(MODEL_SPECS))
    def test_reads_back_what_the_provider_writes(self, model):
        request = build_request(
            model=model,
            prompt="p",
            size="2K",
            sequential_image_generation="auto",
            max_images=2,
            watermark=False,
        )
        body = request.to_payload(["https://example.com/r.png"])
        assert request_from_payload(model, body).to_payload(["https://example.com/r.png"]) == body

    def test_refuses_fields_of_the_other_model(self):
        with pytest.raises(
            SeedreamValidationError, match=r"unknown fields for seedream-4\.5: images, max_images"
        ):
            request_from_payload(
                "seedream-4.5", {"prompt": "p", "images": ["https://x/y.png"], "max_images": 2}
            )

    def test_refuses_local_paths(self):
        with pytest.raises(SeedreamValidationError, match="URLs and data URIs only"):
            request_from_payload("seedream-4.0", {"prompt": "p", "images": ["/tmp/a.png"]})


class TestLimits:
    def test_images_per_minute_limit_answers_429_with_retry_after(self):
        with SeedreamSandbox(API_KEY, image_scale=1 / 64, rate_limit=12) as sandbox:  # a burst of 2
            statuses = [post(sandbox, {"prompt": "p"}) for _ in range(3)]
            assert [response.status_code for response in statuses] == [200, 200, 429]
            limited = statuses[-1]
            assert limited.json()["reason"] == "RATE_LIMIT_EXCEEDED"
            assert 1 <= int(limited.headers["Retry-After"]) <= 5  # one image every 5 s
            time.sleep(int(limited.headers["Retry-After"]))
            assert post(sandbox, {"prompt": "p"}).status_code == 200
            stats = requests.get(f"{sandbox.url}/_sandbox/stats", timeout=10).json()
            assert (stats["images"], stats["rate_limited"]) == (3, 1)

    def test_latency_and_default_link_faults(self):
        with SeedreamSandbox(API_KEY, latency=0.4, link_faults=LinkFault(ready_after=0.5)) as sandbox:
            started = time.monotonic()
            (url,) = post(sandbox, {"prompt": "p"}).json()["images"]
            assert time.monotonic() - started >= 0.4
            assert requests.get(url, timeout=10).status_code == 404


class TestChatCompletions:
    """Novita's OpenAI-compatible chat endpoint, as much as a plain-text ``@task.llm`` uses."""

    @staticmethod
    def chat(sandbox, body, headers=HEADERS, path="/openai/v1/chat/completions"):
        return requests.post(f"{sandbox.url}{path}", json=body, headers=headers, timeout=10)

    BODY = {
        "model": "meta-llama/llama-3.3-70b-instruct",
        "stream": False,
        "messages": [
            {"role": "system", "content": "You write image prompts."},
            {"role": "user", "content": "Product:  Kettle.\n Colour: red."},
        ],
    }

    def test_answers_a_deterministic_prompt_from_the_user_message(self, sandbox):
        first, second = self.chat(sandbox, self.BODY), self.chat(sandbox, self.BODY)
        assert first.status_code == 200
        answer = first.json()
        assert answer["object"] == "chat.completion" and answer["model"] == self.BODY["model"]
        (choice,) = answer["choices"]
        assert choice["message"] == {
            "role": "assistant",
            "content": "Product: Kettle. Colour: red. Photorealistic, soft natural light, clean composition.",
        }
        assert choice["finish_reason"] == "stop"
        assert second.json()["choices"] == answer["choices"]
        assert sandbox.generation_requests() == [] and len(sandbox.chat_requests()) == 2
        assert sandbox.stats.chat_completions == 2

    def test_text_parts_are_read_like_a_string(self, sandbox):
        body = {**self.BODY, "messages": [{"role": "user", "content": [{"type": "text", "text": "a mug"}]}]}
        answer = self.chat(sandbox, body).json()
        assert answer["choices"][0]["message"]["content"].startswith("a mug. Photorealistic")

    def test_checks_the_key(self, sandbox):
        response = self.chat(sandbox, self.BODY, headers={"Authorization": "Bearer sk-wrong"})
        assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_api_key"
        assert self.chat(sandbox, self.BODY, headers={}).status_code == 401

    @pytest.mark.parametrize(
        ("change", "message"),
        [
            ({"model": ""}, "'model' must be a non-empty string"),
            ({"stream": True}, "does not stream"),
            ({"n": 2}, "'n' must be 1"),
            ({"tools": [{"type": "function"}]}, "plain text only"),
            ({"response_format": {"type": "json_schema"}}, "plain text only"),
            ({"messages": []}, "'messages' must be a non-empty list"),
            ({"messages": [{"role": "robot", "content": "x"}]}, "messages[0] needs a 'role'"),
            ({"messages": [{"role": "user", "content": 3}]}, "messages[0].content must be a string"),
            ({"messages": [{"role": "system", "content": "x"}]}, "no message has the role 'user'"),
        ],
    )
    def test_refuses_what_it_does_not_emulate(self, sandbox, change, message):
        response = self.chat(sandbox, {**self.BODY, **change})
        assert response.status_code == 400
        assert message in response.json()["error"]["message"]

    def test_other_openai_endpoints_say_what_is_served(self, sandbox):
        response = self.chat(sandbox, self.BODY, path="/openai/v1/responses")
        assert response.status_code == 404
        assert "'openai-chat:'" in response.json()["error"]["message"]

    def test_scripted_failure_for_one_subject(self, sandbox):
        sandbox.fail_chat_about("Kettle", status=503)
        assert self.chat(sandbox, self.BODY).status_code == 503
        other = {**self.BODY, "messages": [{"role": "user", "content": "Product: Lamp"}]}
        assert self.chat(sandbox, other).status_code == 200

    def test_generation_faults_leave_chat_alone(self, sandbox):
        sandbox.fail_next(500)
        assert self.chat(sandbox, self.BODY).status_code == 200
        assert post(sandbox, {"prompt": "p"}).status_code == 500


def _standalone(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_seedream.testing", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_standalone_cli_plays_waits_and_logs_requests():
    process = _standalone("--api-key", "k-cli-1", "--links-ready-after", "30", "--fail", "503")
    try:
        url = process.stdout.readline().split()[-1]
        assert url.startswith("http://127.0.0.1:") and not url.endswith(":8080")  # a free port by default
        process.stdout.readline()
        process.stdout.readline()
        headers = {"Authorization": "Bearer k-cli-1"}
        assert (
            requests.post(
                f"{url}/v3/seedream-4.5", json={"prompt": "p"}, headers=headers, timeout=10
            ).status_code
            == 503
        )
        (image,) = requests.post(
            f"{url}/v3/seedream-4.5", json={"prompt": "p"}, headers=headers, timeout=10
        ).json()["images"]
        assert requests.get(image, timeout=10).status_code == 404  # not ready for 30 s
        assert process.stdout.readline().strip() == "POST /v3/seedream-4.5 503"
        assert process.stdout.readline().strip() == "POST /v3/seedream-4.5 200"
        line = process.stdout.readline().strip()
        assert line.startswith("GET /files/") and line.endswith(" 404") and "Signature" not in line
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0


def test_standalone_says_when_the_port_is_busy():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        process = _standalone("--port", str(port))
        _, error = process.communicate(timeout=30)
    assert process.returncode == 2
    assert f"Port {port} on 127.0.0.1 is already in use" in error
    assert "Traceback" not in error


def test_standalone_server():
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "airflow_provider_seedream.testing",
            "--port",
            "0",
            "--api-key",
            "k-standalone-1",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        url = process.stdout.readline().split()[-1]
        assert "AIRFLOW_CONN_SEEDREAM_DEFAULT" in process.stdout.readline()
        llm_line = process.stdout.readline()
        assert llm_line.startswith("export AIRFLOW_CONN_NOVITA_LLM=") and f'"{url}/openai/v1"' in llm_line
        chat = requests.post(
            f"{url}/openai/v1/chat/completions",
            json={"model": "m", "messages": [{"role": "user", "content": "a kettle"}]},
            headers={"Authorization": "Bearer k-standalone-1"},
            timeout=10,
        )
        assert chat.json()["choices"][0]["message"]["content"].startswith("a kettle.")
        response = requests.post(
            f"{url}/v3/seedream-4.0",
            json={"prompt": "p", "size": "1K"},
            headers={"Authorization": "Bearer k-standalone-1"},
            timeout=10,
        )
        (image,) = response.json()["images"]
        assert Image.open(io.BytesIO(requests.get(image, timeout=10).content)).size == (1024, 1024)
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0


@pytest.mark.parametrize("model", [None, "seedream-5.0-lite"])
def test_demo_script_end_to_end(tmp_path, model):
    """`make demo` after its venv bootstrap: the marketing example run by the Airflow CLI, its prompts
    written by the sandbox's LLM endpoint through the common.ai provider; SEEDREAM_MODEL switches the
    Seedream model."""
    pytest.importorskip("airflow.providers.common.ai", reason="needs airflow-provider-seedream[llm]")
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AIRFLOW", "SEEDREAM_"))}
    env["SEEDREAM_DEMO_DIR"] = str(tmp_path)
    if model:
        env["SEEDREAM_MODEL"] = model
    result = subprocess.run(
        [sys.executable, "scripts/demo.py"],
        env=env,
        capture_output=True,
        text=True,
        cwd=os.path.dirname(os.path.dirname(__file__)),
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "using the local Seedream sandbox" in result.stdout
    expected = model or "seedream-4.5"
    assert f"Seedream model: {expected} (SEEDREAM_MODEL)" in result.stdout
    assert f"The sandbox answered 4 generation(s) at /v3/{expected}." in result.stdout
    assert "Spend ceiling: $1.00 per DAG run (max_spend_per_run_usd on seedream_default" in result.stdout
    assert re.search(r"estimated cost \$0\.1[0-9] of its \$1\.00 ceiling", result.stdout), result.stdout[
        -2000:
    ]
    images = sorted((tmp_path / "assets" / "marketing").rglob("*.png"))
    assert len(images) == 4 and all(Image.open(path).size == (2560, 1440) for path in images)
    (summary,) = (tmp_path / "assets").rglob("summary.csv")
    assert f"Summary: {summary}" in result.stdout
    # Per product, the prompt the sandbox's LLM wrote from the product's fields, and the file.
    assert "    prompt (llm): Product: City bicycle. Colour: red. Material: steel." in result.stdout
    assert f"    file: {images[0]}" in result.stdout
