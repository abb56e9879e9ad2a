"""Run the Seedream sandbox standalone: ``python -m airflow_provider_seedream.testing``.

It listens on a free port unless told otherwise (8080 is Airflow's api-server port), prints the URL
and the connection to export, logs each request (``--quiet`` to stop), and plays the waiting and
failure modes of the Python API, so a deployment can be watched waiting for links or a rate limit.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import signal
import sys
import threading

from airflow_provider_seedream.testing import SANDBOX_API_KEY, Fault, LinkFault, SeedreamSandbox


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_seedream.testing",
        description="A local Seedream-compatible API for testing DAGs.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port (default 0: a free one)")
    parser.add_argument("--api-key", default=SANDBOX_API_KEY, help="the Bearer key requests must carry")
    parser.add_argument(
        "--image-scale", type=float, default=1.0, help="scale of the served images (default 1)"
    )
    parser.add_argument("--auto-images", type=int, default=3, help="images for auto mode without max_images")
    parser.add_argument("--quiet", action="store_true", help="do not log each request")
    faults = parser.add_argument_group("waiting and failure modes")
    faults.add_argument(
        "--latency", type=float, default=0.0, metavar="SECONDS", help="seconds each generation takes"
    )
    faults.add_argument(
        "--rate-limit",
        type=int,
        metavar="IMAGES",
        help="images per minute; over it, generations get 429 RATE_LIMIT_EXCEEDED with Retry-After",
    )
    faults.add_argument(
        "--links-ready-after",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="image links answer 404 for this long after the generation",
    )
    faults.add_argument(
        "--links-expired", action="store_true", help="image links answer 403 'Request has expired'"
    )
    faults.add_argument(
        "--fail",
        type=int,
        metavar="STATUS",
        help="answer generations with this status (502, 503, 429...) instead of images",
    )
    faults.add_argument(
        "--fail-times", type=int, default=1, metavar="N", help="how many generations --fail answers"
    )
    options = parser.parse_args(argv)
    try:
        sandbox = SeedreamSandbox(
            options.api_key,
            host=options.host,
            port=options.port,
            image_scale=options.image_scale,
            auto_images=options.auto_images,
            rate_limit=options.rate_limit,
            latency=options.latency,
            link_faults=LinkFault(ready_after=options.links_ready_after, expired=options.links_expired),
            log=not options.quiet,
        )
    except OSError as err:
        if err.errno != errno.EADDRINUSE:
            raise
        print(
            f"Port {options.port} on {options.host} is already in use (8080 is Airflow's api-server port). "
            "Choose another with --port, or leave it out to get a free one.",
            file=sys.stderr,
        )
        return 2
    if options.fail is not None:
        sandbox.inject(Fault(status=options.fail), times=options.fail_times)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with sandbox:
        connection = {"conn_type": "seedream", "host": sandbox.url, "password": options.api_key}
        print(f"Seedream sandbox listening on {sandbox.url}", flush=True)
        print(f"export AIRFLOW_CONN_SEEDREAM_DEFAULT='{json.dumps(connection)}'", flush=True)
        llm = {
            "conn_type": "pydanticai",
            "host": f"{sandbox.url}/openai/v1",
            "password": options.api_key,
            "extra": {"model": "openai-chat:sandbox-llm"},
        }
        print(
            f"export AIRFLOW_CONN_NOVITA_LLM='{json.dumps(llm)}'  # LLM prompts (the [llm] extra)", flush=True
        )
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
