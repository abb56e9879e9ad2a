"""A local Seedream-compatible sandbox, for testing DAGs without an API key or network."""

from airflow_provider_seedream.testing.server import Fault, LinkFault, RecordedRequest, SeedreamSandbox

__all__ = ["Fault", "LinkFault", "RecordedRequest", "SeedreamSandbox"]
