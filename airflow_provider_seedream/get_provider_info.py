"""Provider metadata for Airflow's ProvidersManager (entry point ``apache_airflow_provider``).

Plain data, importable without importing the hook: the connection form is declared here, and the
hook's ``get_ui_field_behaviour`` reads it back for Airflow versions that still ask the hook.
"""

from __future__ import annotations

from typing import Any

DEFAULT_BASE_URL = "https://api.novita.ai"
DEFAULT_CONN_ID = "seedream_default"

CONNECTION_EXTRA_FIELDS: dict[str, dict[str, Any]] = {
    "connect_timeout": {
        "label": "Connect timeout (s)",
        "description": "Seconds to wait for a connection to the API. Default 10.",
        "schema": {"type": ["number", "null"], "exclusiveMinimum": 0},
    },
    "read_timeout": {
        "label": "Read timeout (s)",
        "description": "Seconds to wait for a generation to answer; 4K or batch generations take minutes. "
        "Default 300.",
        "schema": {"type": ["number", "null"], "exclusiveMinimum": 0},
    },
    "max_retries": {
        "label": "Max retries",
        "description": "Retries after an overloaded API (503) or a failure to connect: failures that say "
        "nothing was generated. Default 3.",
        "schema": {"type": ["integer", "null"], "minimum": 0, "maximum": 10},
    },
    "backoff_seconds": {
        "label": "Backoff base (s)",
        "description": "First retry waits about this long, doubling each time, with jitter. Default 2.",
        "schema": {"type": ["number", "null"], "minimum": 0},
    },
    "max_backoff_seconds": {
        "label": "Max wait between retries (s)",
        "description": "Cap on any wait between retries, including one asked for by Retry-After. Default 60.",
        "schema": {"type": ["number", "null"], "minimum": 0},
    },
    "rate_limit_wait_seconds": {
        "label": "Rate-limit wait (s)",
        "description": "How long, in all, one generation may wait out rate limits (429, honouring "
        "Retry-After) before it fails. Default 600.",
        "schema": {"type": ["number", "null"], "minimum": 0},
    },
    "retry_possibly_billed": {
        "label": "Retry possibly billed requests",
        "description": "Send a generation again after a failure that came after it was sent (read timeout, "
        "broken answer, 500/502/504). It may already be generating and billed: a retry can bill twice. "
        "Off by default. Formerly retry_on_read_timeout, which still works.",
        "schema": {"type": ["boolean", "null"]},
    },
}


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-provider-seedream",
        "name": "Seedream",
        "description": "Generate images with ByteDance Seedream 4.0 and 4.5 through Novita AI.",
        "integrations": [
            {
                "integration-name": "Seedream",
                "external-doc-url": "https://novita.ai/docs/api-reference/model-apis-seedream-4.5",
                "tags": ["ai", "generative-ai", "image-generation"],
            }
        ],
        "hooks": [
            {"integration-name": "Seedream", "python-modules": ["airflow_provider_seedream.hooks.seedream"]}
        ],
        "operators": [
            {
                "integration-name": "Seedream",
                "python-modules": ["airflow_provider_seedream.operators.seedream"],
            }
        ],
        "connection-types": [
            {
                "connection-type": "seedream",
                "hook-class-name": "airflow_provider_seedream.hooks.seedream.SeedreamHook",
                "hook-name": "Seedream (Novita AI)",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port", "login"],
                    "relabeling": {"password": "API Key", "host": "API base URL"},
                    "placeholders": {"host": DEFAULT_BASE_URL, "password": "Your Novita AI API key"},
                },
                "conn-fields": CONNECTION_EXTRA_FIELDS,
            }
        ],
    }
