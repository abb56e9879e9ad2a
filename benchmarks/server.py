"""The benchmark's local HTTP server, run in its own process on 127.0.0.1.

It is deliberately minimal, so that the client is what gets measured:

* ``GET /files/<name>`` sends ``<root>/<name>`` with ``socket.sendfile`` (zero copy). The query string
  (a presigned-looking signature) is ignored.
* ``POST`` to every model's endpoint (``specs.MODEL_SPECS``) reads the body, checks the Bearer key
  and answers at once with ``{"images": [<one link>]}``, the documented shape. No validation, no
  image rendering: the provider's own ``SeedreamSandbox`` renders an image per generation, which
  would measure the server, not the client.

The hook and every baseline (curl, raw ``requests``) talk to the same server in the same run.

Usage: ``python benchmarks/server.py ROOT API_KEY``; prints ``PORT <n>`` once listening and serves
until its stdin closes.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from airflow_provider_seedream.contract.specs import MODEL_SPECS

GENERATE_PATHS = frozenset(spec.path for spec in MODEL_SPECS.values())
CONTENT_TYPES = {".bmp": "image/bmp", ".png": "image/png", ".jpg": "image/jpeg"}


def make_handler(root: str, api_key: str, port_holder: list[int]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: sessions reuse their connection
        # The status line and headers go out in one write and the body in another: without
        # TCP_NODELAY, Nagle holds the body until the client's delayed ACK (40 ms) comes.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _reply(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            name = self.path.split("?", 1)[0].removeprefix("/files/")
            path = os.path.join(root, os.path.basename(name))
            if not self.path.startswith("/files/") or not os.path.isfile(path):
                return self._reply(404, b"not found", "text/plain")
            size = os.path.getsize(path)
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPES.get(os.path.splitext(path)[1], "image/png"))
            self.send_header("Content-Length", str(size))
            self.end_headers()
            with open(path, "rb") as handle:
                self.connection.sendfile(handle)

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path not in GENERATE_PATHS:
                return self._reply(404, b'{"code": 404, "reason": "NOT_FOUND"}', "application/json")
            if self.headers.get("Authorization") != f"Bearer {api_key}":
                return self._reply(401, b'{"code": 401, "reason": "INVALID_API_KEY"}', "application/json")
            link = f"http://127.0.0.1:{port_holder[0]}/files/generated.png?X-Tos-Signature=0123456789abcdef"
            self._reply(200, json.dumps({"images": [link]}).encode(), "application/json")

    return Handler


def main() -> None:
    root, api_key = sys.argv[1], sys.argv[2]
    port_holder = [0]
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(root, api_key, port_holder))
    server.daemon_threads = True
    port_holder[0] = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"PORT {port_holder[0]}", flush=True)
    sys.stdin.read()  # the parent closes our stdin (or dies) to stop us
    server.shutdown()


if __name__ == "__main__":
    main()
