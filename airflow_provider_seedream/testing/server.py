"""
A local Seedream-compatible API: generation endpoints for every model spec, the image links, and
Novita's OpenAI-compatible chat completions (``/openai/v1/chat/completions``) for LLM-written prompts.

It validates bodies as the API would (``testing.api``, the provider's own contract code), answers
``{"images": [...]}`` with presigned-looking links it serves itself, serves the chat endpoint
(``testing.chat``), records every request, and plays scripted faults and a rate limit, so DAGs and
the provider can be tested without a key or network. This module is the HTTP server and that
control plane.
"""

from __future__ import annotations

import math
import secrets
import threading
import time
from collections import deque
from collections.abc import Collection
from http.server import ThreadingHTTPServer
from typing import Any

from airflow_provider_seedream.contract.exceptions import SeedreamValidationError
from airflow_provider_seedream.contract.sizes import pixels
from airflow_provider_seedream.contract.specs import MODEL_SPECS
from airflow_provider_seedream.testing.api import request_from_payload
from airflow_provider_seedream.testing.chat import CHAT_COMPLETIONS_PATH, chat_error, chat_request, completion
from airflow_provider_seedream.testing.faults import (
    Fault,
    LinkFault,
    RecordedRequest,
    SandboxStats,
    StoredImage,
)
from airflow_provider_seedream.testing.handler import handler_for, token_of
from airflow_provider_seedream.testing.images import render_png

SANDBOX_API_KEY = "sk-sandbox-0f3c9a7e51"
"""The key the sandbox expects by default; it is no real key."""


class SeedreamSandbox:
    """
    A Seedream-compatible HTTP server on 127.0.0.1, run in a background thread.

    >>> with SeedreamSandbox(api_key="test-key") as sandbox:
    ...     sandbox.url  # 'http://127.0.0.1:<port>'

    :param api_key: the Bearer key requests must carry (``None``: accept any).
    :param image_scale: factor applied to the requested pixel size of the images it serves; tests use a
        small one (1/64 turns 2048x2048 into 32x32) to stay fast.
    :param auto_images: images returned in ``auto`` mode when the request sets no ``max_images``.
    :param item_style: how items of ``images`` look: ``"string"`` (as documented), ``"image_url"`` or
        ``"url"`` objects (as some responses show).
    :param rate_limit: images per minute, as Novita limits image models (a token bucket holding ten
        seconds' worth); a generation that would exceed it is answered 429 ``RATE_LIMIT_EXCEEDED`` with
        ``Retry-After`` (whole seconds until it would fit). ``None``: no limit.
    :param latency: seconds every generation takes before it answers, as a real one does.
    :param link_faults: how the links of every generation behave unless
        :meth:`links_of_next_generation` says otherwise (``LinkFault(ready_after=5)``: links 404 for 5 s).
    :param log: print one line per request (method, path, status) to stdout.
    :param allowed_models: the models the key may use (``None``: all); the others answer 403
        ``API_NOT_ALLOWED``, as Novita answers an account without access to a model.
    """

    def __init__(
        self,
        api_key: str | None = SANDBOX_API_KEY,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        image_scale: float = 1.0,
        auto_images: int = 3,
        item_style: str = "string",
        rate_limit: int | None = None,
        latency: float = 0.0,
        link_faults: LinkFault | None = None,
        log: bool = False,
        allowed_models: Collection[str] | None = None,
    ) -> None:
        self.api_key = api_key
        self.allowed_models = allowed_models
        self._host = host
        self.image_scale = image_scale
        self.auto_images = auto_images
        self.item_style = item_style
        self.rate_limit = rate_limit
        self.latency = latency
        self.default_link_faults = link_faults or LinkFault()
        self.log = log
        self.stats = SandboxStats()
        self._tokens: float | None = None
        self._refilled_at = 0.0
        self.requests: list[RecordedRequest] = []
        self._faults: deque[Fault] = deque()
        self._link_faults: deque[LinkFault] = deque()
        self._chat_faults: dict[str, int] = {}
        self._images: dict[str, StoredImage] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((host, port), handler_for(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self._server.server_port}"

    def start(self) -> SeedreamSandbox:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="seedream-sandbox", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread:
            self._thread.join(timeout=5)

    def __enter__(self) -> SeedreamSandbox:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # Scripting ---------------------------------------------------------------------------------

    def inject(self, fault: Fault, times: int = 1) -> None:
        """Answer the next ``times`` generation requests with ``fault``."""
        with self._lock:
            self._faults.extend([fault] * times)

    def fail_next(
        self,
        status: int,
        body: bytes | dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        times: int = 1,
    ) -> None:
        self.inject(Fault(status=status, body=body, headers=headers or {}), times)

    def links_of_next_generation(self, faults: LinkFault) -> None:
        """Give the image links of the next generation these faults."""
        with self._lock:
            self._link_faults.append(faults)

    def add_image(
        self,
        data: bytes,
        faults: LinkFault | None = None,
        *,
        extension: str = "png",
        content_type: str = "image/png",
    ) -> str:
        """Serve ``data`` under a new presigned-looking link and return the link."""
        token = secrets.token_hex(8)
        image = StoredImage(
            data, secrets.token_hex(16), time.monotonic(), faults or LinkFault(), content_type
        )
        with self._lock:
            self._images[token] = image
        signed = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        query = (
            f"X-Tos-Algorithm=TOS4-HMAC-SHA256&X-Tos-Date={signed}&X-Tos-Expires=3600"
            f"&X-Tos-Signature={image.signature}"
        )
        return f"{self.url}/files/{token}.{extension}?{query}"

    def fail_chat_about(self, text: str, status: int = 500) -> None:
        """Answer ``status`` (an OpenAI-style error) to every chat completion whose last user message
        contains ``text``: an LLM failing for one product, say."""
        with self._lock:
            self._chat_faults[text] = status

    def generation_requests(self) -> list[RecordedRequest]:
        paths = {spec.path for spec in MODEL_SPECS.values()}
        return [request for request in self.requests if request.method == "POST" and request.path in paths]

    def chat_requests(self) -> list[RecordedRequest]:
        return [request for request in self.requests if request.path == CHAT_COMPLETIONS_PATH]

    def downloads_of(self, url: str) -> int:
        return self._images[token_of(url)].downloads

    def bytes_served_of(self, url: str) -> int:
        return self._images[token_of(url)].bytes_served

    def image_bytes(self, url: str) -> bytes:
        return self._images[token_of(url)].data

    def served_images(self) -> list[bytes]:
        """The bytes of every image it has links for (generated or added), oldest first: what a test
        compares stored files with when it has no link, such as a cache's."""
        with self._lock:
            return [image.data for image in self._images.values()]

    # Handling ------------------------------------------------------------------------------------

    def _chat(self, body: Any) -> tuple[int, dict[str, Any]]:
        """One chat completion, unless a fault was set for its last user message."""
        try:
            model, question = chat_request(body)
        except ValueError as err:
            return 400, chat_error(str(err), "invalid_request_error")
        with self._lock:
            status = next((code for text, code in self._chat_faults.items() if text in question), None)
            if status is None:
                self.stats.chat_completions += 1
        if status is not None:
            return status, chat_error("the sandbox was told to fail this completion", "server_error")
        return 200, completion(model, question)

    def _next_fault(self) -> Fault | None:
        with self._lock:
            return self._faults.popleft() if self._faults else None

    def _admit(self, count: int) -> float | None:
        """Take ``count`` images from the rate budget; or the seconds until they would fit.

        A token bucket: ``rate_limit`` images per minute, refilled continuously, holding at most ten
        seconds' worth, so a burst cannot outrun the limit for long."""
        if self.rate_limit is None:
            return None
        with self._lock:
            now = time.monotonic()
            rate = self.rate_limit / 60
            capacity = max(float(count), self.rate_limit / 6)
            if self._tokens is None:
                self._tokens, self._refilled_at = capacity, now
            self._tokens = min(capacity, self._tokens + (now - self._refilled_at) * rate)
            self._refilled_at = now
            if self._tokens >= count:
                self._tokens -= count
                return None
            self.stats.rate_limited += 1
            return (count - self._tokens) / rate

    def _generate(self, model: str, body: Any) -> tuple[int, dict[str, Any], dict[str, str]]:
        try:
            request = request_from_payload(model, body)
        except SeedreamValidationError as err:
            invalid = {"code": 400, "reason": "INVALID_REQUEST_BODY", "message": str(err), "metadata": {}}
            return 400, invalid, {}
        count = 1
        if request.sequential_image_generation == "auto":
            count = min(
                request.max_images or self.auto_images,
                request.spec.max_total_images - len(request.references),
            )
        wait = self._admit(count)
        if wait is not None:
            message = f"rate limit of {self.rate_limit} images per minute exceeded"
            limited = {"code": 429, "reason": "RATE_LIMIT_EXCEEDED", "message": message, "metadata": {}}
            return 429, limited, {"Retry-After": str(math.ceil(wait))}
        time.sleep(self.latency)
        width, height = pixels(request.spec, request.normalized_size)
        scaled = (max(1, round(width * self.image_scale)), max(1, round(height * self.image_scale)))
        with self._lock:
            link_faults = self._link_faults.popleft() if self._link_faults else self.default_link_faults
        urls = []
        for index in range(count):
            data = render_png(scaled[0], scaled[1], request.prompt, index, count)
            urls.append(self.add_image(data, link_faults))
        with self._lock:
            self.stats.generations += 1
            self.stats.images += count
            self.stats.first_image_at = self.stats.first_image_at or time.time()
            self.stats.last_image_at = time.time()
        items: list[Any] = urls if self.item_style == "string" else [{self.item_style: url} for url in urls]
        return 200, {"images": items}, {}
