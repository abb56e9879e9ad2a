"""pytest plugin (entry point ``pytest11``): the ``seedream_sandbox`` fixture for testing DAGs.

Loaded by every pytest run where the provider is installed, so it imports nothing at module level
beyond pytest itself.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from airflow_provider_seedream.testing.server import SeedreamSandbox


@pytest.fixture
def seedream_sandbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[SeedreamSandbox]:
    """A Seedream sandbox on a free port, with the ``seedream_default`` connection pointing at it.

    Images are served at 1/32 of the requested size, and retries wait at most 2 s, to keep tests
    fast. Script faults with ``seedream_sandbox.fail_next(...)``, ``.inject(Fault(...))`` and
    ``.links_of_next_generation(LinkFault(...))``; read what was sent in ``seedream_sandbox.requests``.
    """
    from airflow_provider_seedream.testing.server import SANDBOX_API_KEY, SeedreamSandbox

    with SeedreamSandbox(SANDBOX_API_KEY, image_scale=1 / 32) as sandbox:
        connection = {
            "conn_type": "seedream",
            "host": sandbox.url,
            "password": SANDBOX_API_KEY,
            "extra": {"backoff_seconds": 0.01, "max_backoff_seconds": 2},
        }
        monkeypatch.setenv("AIRFLOW_CONN_SEEDREAM_DEFAULT", json.dumps(connection))
        yield sandbox
