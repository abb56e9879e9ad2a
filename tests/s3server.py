"""moto's S3 server on 127.0.0.1, as the suite and the deployment tiers run it.

S3 checks a conditional write's precondition (``If-Match``, ``If-None-Match``) and stores the object
as one step: two writers racing on one ETag cannot both win. moto's threaded server checks, then
stores, in two steps, so both can; here its conditional writes take turns, as S3 guarantees, and
every other request stays concurrent."""

from __future__ import annotations

import logging
import threading
from typing import Any

from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import make_server


class AtomicConditionalWrites:
    """WSGI middleware: one conditional PUT at a time, each answered whole before the next."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        conditional = "HTTP_IF_MATCH" in environ or "HTTP_IF_NONE_MATCH" in environ
        if environ.get("REQUEST_METHOD") != "PUT" or not conditional:
            return self.app(environ, start_response)
        with self.lock:
            return list(self.app(environ, start_response))


class S3Server(ThreadedMotoServer):
    def __init__(self) -> None:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log
        super().__init__(ip_address="127.0.0.1", port=0, verbose=False)

    def _server_entry(self) -> None:
        app = AtomicConditionalWrites(DomainDispatcherApplication(create_backend_app))
        self._server = make_server(
            self._ip_address, self._port, app, True, request_handler=MotoRequestHandler
        )
        self._server_ready_event.set()
        self._server.serve_forever()

    @property
    def endpoint(self) -> str:
        host, port = self.get_host_and_port()
        return f"http://{host}:{port}"
