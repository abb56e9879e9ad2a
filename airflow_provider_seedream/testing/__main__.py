"""Run the Seedream sandbox standalone: ``python -m airflow_provider_seedream.testing --port 8080``."""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import threading

from airflow_provider_seedream.testing.server import SANDBOX_API_KEY, SeedreamSandbox


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A local Seedream-compatible API for testing DAGs.")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port (default 8080; 0 picks a free one)")
    parser.add_argument("--api-key", default=SANDBOX_API_KEY, help="the Bearer key requests must carry")
    parser.add_argument(
        "--image-scale", type=float, default=1.0, help="scale of the served images (default 1)"
    )
    parser.add_argument("--auto-images", type=int, default=3, help="images for auto mode without max_images")
    options = parser.parse_args(argv)
    sandbox = SeedreamSandbox(
        options.api_key,
        host=options.host,
        port=options.port,
        image_scale=options.image_scale,
        auto_images=options.auto_images,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with sandbox:
        connection = {"conn_type": "seedream", "host": sandbox.url, "password": options.api_key}
        print(f"Seedream sandbox listening on {sandbox.url}", flush=True)
        print(f"export AIRFLOW_CONN_SEEDREAM_DEFAULT='{json.dumps(connection)}'", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()


if __name__ == "__main__":
    main()
