"""The sandbox's HTTP handler: generation endpoints, image links with their scripted faults, the chat
endpoint and the control plane's stats, each answered from the ``SeedreamSandbox`` it serves (``Served``)."""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections.abc import Collection
from dataclasses import asdict
from http.server import BaseHTTPRequestHandler
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from airflow_provider_seedream.contract.specs import MODEL_SPECS
from airflow_provider_seedream.testing.chat import CHAT_COMPLETIONS_PATH, chat_error
from airflow_provider_seedream.testing.faults import Fault, RecordedRequest, SandboxStats, StoredImage


class Served(Protocol):
    """What the handler reads and calls of the sandbox it serves (``server.SeedreamSandbox``), which
    builds it: named here so that this module need not import that one."""

    api_key: str | None
    allowed_models: Collection[str] | None
    log: bool
    requests: list[RecordedRequest]
    stats: SandboxStats
    _images: dict[str, StoredImage]
    _lock: threading.Lock

    def _next_fault(self) -> Fault | None: ...
    def _generate(self, model: str, body: Any) -> tuple[int, dict[str, Any], dict[str, str]]: ...
    def _chat(self, body: Any) -> tuple[int, dict[str, Any]]: ...


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


_RANGE = re.compile(r"^bytes=(?P<start>[0-9]+)-(?P<end>[0-9]+)$")


def token_of(url: str) -> str:
    return urlsplit(url).path.rsplit("/", 1)[-1].split(".")[0]


def handler_for(sandbox: Served) -> type[BaseHTTPRequestHandler]:
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
                return self._send_json(404, chat_error(message, "invalid_request_error"))
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
                error = chat_error("Incorrect API key provided.", "invalid_request_error")
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
                image = sandbox._images.get(token_of(self.path))
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
            etag = hashlib.md5(image.data).hexdigest()
            first_bytes = _RANGE.match(self.headers.get("Range") or "")
            if first_bytes and faults.truncate_at is None:  # what an object store does with a Range
                start, end = int(first_bytes["start"]), min(int(first_bytes["end"]), len(image.data) - 1)
                part = image.data[start : end + 1]
                image.bytes_served += len(part)
                content_range = f"bytes {start}-{end}/{len(image.data)}"
                return self._send(206, part, image.content_type, {"Content-Range": content_range})
            image.downloads += 1
            image.bytes_served += len(image.data)
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
