"""A scripted hostile HTTP server on 127.0.0.1: each answer is written byte for byte by a test.

The sandbox speaks the API correctly and plays the faults it knows; networks fail in more ways. Here
a test queues answers (``server.answer(...)``) that drop mid-body, lie in Content-Length, drip, never
end, compress a bomb, redirect or echo what they received, and counts the requests that arrived.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import socket
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    received_at: float = field(default_factory=time.monotonic)


Answer = Callable[[Request, socket.socket], None]


class HostileServer:
    """Answers requests in order with the queued answers; once they run out, with ``default``."""

    def __init__(self, default: Answer | None = None) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self._answers: deque[Answer] = deque()
        self._default = default or status(404, b"nothing scripted")
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="hostile-server", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def answer(self, *answers: Answer) -> HostileServer:
        with self._lock:
            self._answers.extend(answers)
        return self

    def count(self, method: str | None = None) -> int:
        return sum(1 for request in self.requests if method is None or request.method == method)

    def __enter__(self) -> HostileServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stopped.set()
        self._thread.join(timeout=5)
        self._listener.close()

    def _serve(self) -> None:
        while not self._stopped.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._handle, args=(connection,), daemon=True).start()

    def _handle(self, connection: socket.socket) -> None:
        with connection:
            connection.settimeout(10)
            try:
                request = _read_request(connection)
            except (OSError, ValueError):
                return
            if request is None:
                return
            with self._lock:
                self.requests.append(request)
                handler = self._answers.popleft() if self._answers else self._default
            with contextlib.suppress(OSError):  # the client gave up: that is what several answers are for
                handler(request, connection)


def _read_request(connection: socket.socket) -> Request | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    request_line, *header_lines = head.decode("latin-1").split("\r\n")
    method, path, _ = request_line.split(" ", 2)
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", 0))
    while len(body) < length:
        chunk = connection.recv(65536)
        if not chunk:
            break
        body += chunk
    return Request(method, path, headers, body)


def _head(code: int, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {code} Scripted", *(f"{name}: {value}" for name, value in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


# Answers -----------------------------------------------------------------------------------------


def status(code: int, body: bytes = b"", headers: dict[str, str] | None = None) -> Answer:
    """A well-formed answer."""

    def answer(request: Request, connection: socket.socket) -> None:
        all_headers = {"Content-Length": str(len(body)), "Connection": "close", **(headers or {})}
        connection.sendall(_head(code, all_headers) + body)

    return answer


def json_answer(code: int, document: object) -> Answer:
    return status(code, json.dumps(document).encode(), {"Content-Type": "application/json"})


def cut_short(code: int, body: bytes, announced: int) -> Answer:
    """Announces ``announced`` bytes, sends ``body`` (fewer), then closes: a drop mid-body."""

    def answer(request: Request, connection: socket.socket) -> None:
        connection.sendall(
            _head(code, {"Content-Length": str(announced), "Content-Type": "application/json"})
        )
        connection.sendall(body)

    return answer


def broken_chunked(code: int = 200) -> Answer:
    """A chunked body whose second chunk size is not hexadecimal."""

    def answer(request: Request, connection: socket.socket) -> None:
        connection.sendall(_head(code, {"Transfer-Encoding": "chunked", "Content-Type": "application/json"}))
        connection.sendall(b'5\r\n{"ima\r\nzz\r\nnot a chunk\r\n')

    return answer


def bad_gzip(code: int = 200) -> Answer:
    body = b"\x1f\x8b\x08\x00garbage that does not inflate" * 4
    return status(code, body, {"Content-Encoding": "gzip", "Content-Type": "application/json"})


def gzip_bomb(code: int = 200, inflated: int = 200 * 1024 * 1024) -> Answer:
    """A small gzip body that inflates to ``inflated`` bytes of JSON-looking text."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = b"a" * (1024 * 1024)
    pieces = [compressor.compress(b'{"images": ["')]
    pieces += [compressor.compress(block) for _ in range(inflated // len(block))]
    body = b"".join(pieces) + compressor.flush()
    return status(code, body, {"Content-Encoding": "gzip", "Content-Type": "application/json"})


def gzip_json(code: int, document: object) -> Answer:
    body = gzip.compress(json.dumps(document).encode())
    return status(code, body, {"Content-Encoding": "gzip", "Content-Type": "application/json"})


def silence(seconds: float) -> Answer:
    """Reads the request, answers nothing for ``seconds``, then closes."""

    def answer(request: Request, connection: socket.socket) -> None:
        time.sleep(seconds)

    return answer


def reset_after_headers(code: int = 200) -> Answer:
    """Sends the status line and headers, then resets the connection."""

    def answer(request: Request, connection: socket.socket) -> None:
        connection.sendall(_head(code, {"Content-Length": "1000", "Content-Type": "application/json"}))
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")

    return answer


def drip(code: int, body: Iterable[bytes], interval: float, headers: dict[str, str] | None = None) -> Answer:
    """Sends the headers, then one piece of ``body`` every ``interval`` seconds (no Content-Length)."""

    def answer(request: Request, connection: socket.socket) -> None:
        connection.sendall(_head(code, {"Connection": "close", **(headers or {})}))
        for piece in body:
            connection.sendall(piece)
            time.sleep(interval)

    return answer


def endless(
    code: int, first: bytes = b"", seconds: float = 60.0, headers: dict[str, str] | None = None
) -> Answer:
    """``first``, then filler as fast as the client reads, for at most ``seconds``."""

    def answer(request: Request, connection: socket.socket) -> None:
        connection.sendall(_head(code, {"Connection": "close", **(headers or {})}) + first)
        filler = b"a" * 65536
        stop = time.monotonic() + seconds
        while time.monotonic() < stop:
            connection.sendall(filler)

    return answer


def redirect(code: int, location: str) -> Answer:
    return status(code, b"", {"Location": location})


def echo(code: int) -> Answer:
    """Answers with everything it received, headers first, as a careless server's error page does."""

    def answer(request: Request, connection: socket.socket) -> None:
        lines = [f"{request.method} {request.path}", *(f"{k}: {v}" for k, v in request.headers.items())]
        status(code, "\n".join(lines).encode() + b"\n" + request.body[:2000])(request, connection)

    return answer
