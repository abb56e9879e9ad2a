"""
A local Seedream-compatible API: generation endpoints for every model spec, the image links, and
Novita's OpenAI-compatible chat completions (``/openai/v1/chat/completions``) for LLM-written prompts.

It validates bodies with the provider's own contract code (:func:`request_from_payload`), answers
``{"images": [...]}`` with presigned-looking links it serves itself, records every request, and plays
scripted faults, so DAGs and the provider can be tested without a key or network.

The chat endpoint is deliberately small: one non-streaming completion per request, answered with a
prompt derived deterministically from the last user message (what pydantic-ai sends for a plain-text
``@task.llm``). It does not stream, call tools, produce structured output, count tokens or emulate
other OpenAI endpoints; those requests get a 400.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import secrets
import threading
import time
from collections import deque
from collections.abc import Collection
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from airflow_provider_seedream.exceptions import SeedreamValidationError
from airflow_provider_seedream.request import GenerateRequest, build_request, check_data_uri, short_repr
from airflow_provider_seedream.specs import MODEL_SPECS, ModelSpec
from airflow_provider_seedream.testing.images import render_png

SANDBOX_API_KEY = "sk-sandbox-0f3c9a7e51"
"""The key the sandbox expects by default; it is no real key."""

EXPIRED_BODY = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code>'
    b"<Message>Request has expired</Message></Error>"
)
SIGNATURE_MISMATCH_BODY = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SignatureDoesNotMatch</Code>'
    b"<Message>The request signature we calculated does not match the signature you provided."
    b"</Message></Error>"
)
HTML_BODY = b"<!DOCTYPE html><html><head><title>Sign in</title></head><body>Please sign in</body></html>"
CHAT_COMPLETIONS_PATH = "/openai/v1/chat/completions"
"""Where Novita serves its OpenAI-compatible chat API (base URL ``https://api.novita.ai/openai/v1``)."""
CHAT_ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    """The parsed JSON body, or the raw bytes when it is not JSON."""
    received_at: float
    """``time.monotonic()`` when the request arrived."""


@dataclass
class Fault:
    """What the next generation request gets instead of (or before) a normal answer."""

    status: int | None = None
    body: bytes | dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    """Seconds to wait before answering (or before dropping the connection)."""
    drop: bool = False
    """Close the connection without answering."""


@dataclass
class LinkFault:
    """How the image links of the next generation behave."""

    ready_after: float = 0.0
    """Links answer 404 for this many seconds after the generation."""
    expired: bool = False
    """Links answer 403 with the object store's "Request has expired" XML."""
    gone: bool = False
    """Links answer 410."""
    html: bool = False
    """Links answer 200 with an HTML page instead of the image."""
    truncate_at: int | None = None
    """Links send this many bytes of the image, announced with its full Content-Length, then close."""
    status: int | None = None
    """Links answer this status with a short plain-text body (a storage outage, say)."""


@dataclass
class SandboxStats:
    """What the sandbox answered, for load tests: also served as JSON at ``GET /_sandbox/stats``."""

    generations: int = 0
    images: int = 0
    rate_limited: int = 0
    chat_completions: int = 0
    first_image_at: float | None = None
    """``time.time()`` of the first generated image."""
    last_image_at: float | None = None


@dataclass
class _StoredImage:
    data: bytes
    signature: str
    created: float
    faults: LinkFault
    content_type: str = "image/png"
    downloads: int = 0


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
        self._images: dict[str, _StoredImage] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((host, port), _handler_for(self))
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
        image = _StoredImage(
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
        return self._images[_token(url)].downloads

    def image_bytes(self, url: str) -> bytes:
        return self._images[_token(url)].data

    # Handling ------------------------------------------------------------------------------------

    def _chat(self, body: Any) -> tuple[int, dict[str, Any]]:
        """One chat completion: the request checked for the shape pydantic-ai's OpenAI chat model sends,
        the answer derived from the last user message."""
        try:
            model, question = _chat_request(body)
        except ValueError as err:
            return 400, _chat_error(str(err), "invalid_request_error")
        with self._lock:
            status = next((code for text, code in self._chat_faults.items() if text in question), None)
            if status is None:
                self.stats.chat_completions += 1
        if status is not None:
            return status, _chat_error("the sandbox was told to fail this completion", "server_error")
        answer = _prompt_from(question)
        created = int(time.time())
        return 200, {
            "id": f"chatcmpl-{hashlib.sha256(question.encode()).hexdigest()[:24]}",
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": answer},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": {
                "prompt_tokens": len(question.split()),
                "completion_tokens": len(answer.split()),
                "total_tokens": len(question.split()) + len(answer.split()),
            },
        }

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
        width, height = _pixels(request.spec, request.normalized_size)
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


def _token(url: str) -> str:
    return urlsplit(url).path.rsplit("/", 1)[-1].split(".")[0]


def _pixels(spec: ModelSpec, size: str | None) -> tuple[int, int]:
    if size is None:
        return spec.default_size
    if size in spec.size_presets:
        return spec.size_presets[size]
    width, height = size.split("x")
    return int(width), int(height)


def request_from_payload(model: str, body: object) -> GenerateRequest:
    """Validate a wire body as the API would: each parameter where the model's spec puts it and
    nothing else; references must be URLs or data URIs, and data URIs must hold acceptable images."""
    spec = MODEL_SPECS.get(model)
    if spec is None:
        raise SeedreamValidationError(f"model={model!r} is not supported")
    if not isinstance(body, dict):
        raise SeedreamValidationError("the request body must be a JSON object")
    body = copy.deepcopy(body)  # consumed field by field below; the caller's body stays intact
    fields: dict[str, Any] = {"model": model}
    for name, path in spec.fields.items():
        if _has(body, path):
            fields[name] = _pop(body, path)
    if body:
        raise SeedreamValidationError(f"unknown fields for {spec.name}: {', '.join(sorted(body))}")
    if "prompt" not in fields:
        raise SeedreamValidationError("prompt: a prompt is required")
    reference_field = ".".join(spec.fields["images"])
    if isinstance(fields.get("images"), list):
        for index, item in enumerate(fields["images"]):
            if not isinstance(item, str) or not item.lower().startswith(("http://", "https://", "data:")):
                raise SeedreamValidationError(
                    f"{reference_field}[{index}]={short_repr(item)}: the API takes URLs and data URIs only"
                )
    request = build_request(**fields)
    for index, reference in enumerate(request.references):
        if reference.kind == "data_uri":
            check_data_uri(reference.value, spec, f"{reference_field}[{index}]")
    return request


def _chat_request(body: Any) -> tuple[str, str]:
    """The model and the last user message's text of a chat-completions body; ``ValueError`` says what
    is wrong with it."""
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ValueError("'model' must be a non-empty string")
    if body.get("stream"):
        raise ValueError("the sandbox does not stream: send 'stream': false")
    if body.get("n", 1) != 1:
        raise ValueError("the sandbox answers one choice: 'n' must be 1")
    if body.get("tools") or (body.get("response_format") or {}).get("type", "text") != "text":
        raise ValueError("the sandbox answers plain text only: no tools or structured output")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ValueError("'messages' must be a non-empty list")
    texts: dict[str, str] = {}
    for position, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in CHAT_ROLES:
            raise ValueError(f"messages[{position}] needs a 'role', one of {', '.join(sorted(CHAT_ROLES))}")
        content = message.get("content")
        if isinstance(content, list):
            parts = [part.get("text") for part in content if isinstance(part, dict)]
            texts_only = [text for text in parts if isinstance(text, str)]
            if not parts or len(texts_only) != len(content):
                raise ValueError(f"messages[{position}].content: only text parts are supported")
            content = "\n".join(texts_only)
        if not isinstance(content, str):
            raise ValueError(f"messages[{position}].content must be a string or a list of text parts")
        texts[message["role"]] = content
    if "user" not in texts:
        raise ValueError("no message has the role 'user'")
    return model, texts["user"]


def _chat_error(message: str, kind: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


def _prompt_from(question: str) -> str:
    """A deterministic image prompt for a user message: its words, tidied, with a photographer's brief."""
    words = " ".join(question.split())
    return f"{words[:400].rstrip('.')}. Photorealistic, soft natural light, clean composition."


def _has(body: dict[str, Any], path: tuple[str, ...]) -> bool:
    for key in path:
        if not isinstance(body, dict) or key not in body:
            return False
        body = body[key]
    return True


def _pop(body: dict[str, Any], path: tuple[str, ...]) -> Any:
    """Remove ``path`` from ``body``, and any option object it leaves empty."""
    if len(path) == 1:
        return body.pop(path[0])
    inner = body[path[0]]
    value = _pop(inner, path[1:])
    if not inner:
        del body[path[0]]
    return value


def _handler_for(sandbox: SeedreamSandbox) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in separate writes: without this, every request on a kept-alive
        # connection waits for the client's delayed ACK (about 40 ms).
        disable_nagle_algorithm = True
        server_version = "SeedreamSandbox/1"

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: tests read ``sandbox.requests`` instead; ``log=True`` prints :meth:`log_request`."""

        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            if sandbox.log:
                path = urlsplit(self.path).path  # the query holds a link's signature: never printed
                print(f"{self.command} {path} {code}", flush=True)

        def _send(
            self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def _send_json(self, status: int, document: Any, headers: dict[str, str] | None = None) -> None:
            self._send(status, json.dumps(document).encode(), "application/json", headers)

        def _error(self, status: int, reason: str, message: str) -> None:
            self._send_json(status, {"code": status, "reason": reason, "message": message, "metadata": {}})

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                body: Any = json.loads(raw)
            except ValueError:
                body = raw
            sandbox.requests.append(
                RecordedRequest("POST", self.path, dict(self.headers.items()), body, time.monotonic())
            )
            path = urlsplit(self.path).path
            if path == CHAT_COMPLETIONS_PATH:
                return self._chat(body)
            if path.startswith("/openai/"):
                message = (
                    f"the sandbox serves only {CHAT_COMPLETIONS_PATH} (pydantic-ai's 'openai-chat:' models), "
                    f"not {path}"
                )
                return self._send_json(404, _chat_error(message, "invalid_request_error"))
            fault = sandbox._next_fault()
            if fault:
                time.sleep(fault.delay)
                if fault.drop:
                    self.close_connection = True
                    self.connection.close()
                    return
                if fault.status is not None:
                    payload = (
                        fault.body
                        if fault.body is not None
                        else {"code": fault.status, "message": "injected"}
                    )
                    if isinstance(payload, dict):
                        self._send_json(fault.status, payload, fault.headers)
                    else:
                        self._send(
                            fault.status,
                            payload,
                            fault.headers.get("Content-Type", "text/html"),
                            fault.headers,
                        )
                    return
            authorization = self.headers.get("Authorization")
            if sandbox.api_key is not None and not authorization:
                return self._error(401, "MISSING_API_KEY", "missing Authorization header")
            if sandbox.api_key is not None and authorization != f"Bearer {sandbox.api_key}":
                return self._error(401, "INVALID_API_KEY", "invalid API key")
            model = next((spec.name for spec in MODEL_SPECS.values() if spec.path == path), None)
            if model is None:
                return self._error(404, "NOT_FOUND", f"no such endpoint: {path}")
            if sandbox.allowed_models is not None and model not in sandbox.allowed_models:
                return self._error(403, "API_NOT_ALLOWED", f"this API key may not use {model}")
            if (self.headers.get("Content-Type") or "").split(";")[0].strip() != "application/json":
                return self._error(400, "INVALID_REQUEST_BODY", "Content-Type must be application/json")
            status, document, headers = sandbox._generate(model, body)
            self._send_json(status, document, headers)

        def _chat(self, body: Any) -> None:
            if (
                sandbox.api_key is not None
                and self.headers.get("Authorization") != f"Bearer {sandbox.api_key}"
            ):
                error = _chat_error("Incorrect API key provided.", "invalid_request_error")
                error["error"]["code"] = "invalid_api_key"
                return self._send_json(401, error)
            status, document = sandbox._chat(body)
            self._send_json(status, document)

        def do_GET(self) -> None:
            sandbox.requests.append(
                RecordedRequest("GET", self.path, dict(self.headers.items()), None, time.monotonic())
            )
            parts = urlsplit(self.path)
            if parts.path == "/_sandbox/stats":
                with sandbox._lock:
                    return self._send_json(200, asdict(sandbox.stats))
            if not parts.path.startswith("/files/"):
                return self._send(404, b"not found", "text/plain")
            with sandbox._lock:
                image = sandbox._images.get(_token(self.path))
            signature = parse_qs(parts.query).get("X-Tos-Signature", [""])[0]
            if image is None:
                return self._send(404, b"<Error><Code>NoSuchKey</Code></Error>", "application/xml")
            faults = image.faults
            if faults.expired:
                return self._send(403, EXPIRED_BODY, "application/xml")
            if signature != image.signature:
                return self._send(403, SIGNATURE_MISMATCH_BODY, "application/xml")
            if faults.gone:
                return self._send(410, b"gone", "text/plain")
            if faults.status is not None:
                return self._send(faults.status, b"storage backend unavailable", "text/plain")
            if time.monotonic() - image.created < faults.ready_after:
                return self._send(404, b"<Error><Code>NoSuchKey</Code></Error>", "application/xml")
            if faults.html:
                return self._send(200, HTML_BODY, "text/html; charset=utf-8")
            image.downloads += 1
            etag = hashlib.md5(image.data).hexdigest()
            if faults.truncate_at is not None:
                self.send_response(200)
                self.send_header("Content-Type", image.content_type)
                self.send_header("Content-Length", str(len(image.data)))
                self.end_headers()
                self.wfile.write(image.data[: faults.truncate_at])
                self.wfile.flush()
                self.close_connection = True
                return
            self._send(200, image.data, image.content_type, {"ETag": f'"{etag}"'})

    return Handler


__all__ = ["SANDBOX_API_KEY", "Fault", "LinkFault", "RecordedRequest", "SandboxStats", "SeedreamSandbox"]
