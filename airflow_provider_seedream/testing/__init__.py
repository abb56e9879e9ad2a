"""A local Seedream-compatible sandbox, for testing DAGs without an API key or network.

``SeedreamSandbox`` is the server; the pytest plugin's ``seedream_sandbox`` fixture starts one per test
and points the ``seedream_default`` connection at it; ``python -m airflow_provider_seedream.testing``
runs one standalone.
"""

from airflow_provider_seedream.testing.faults import Fault, LinkFault, RecordedRequest, SandboxStats
from airflow_provider_seedream.testing.server import SANDBOX_API_KEY, SeedreamSandbox

__all__ = ["SANDBOX_API_KEY", "Fault", "LinkFault", "RecordedRequest", "SandboxStats", "SeedreamSandbox"]
