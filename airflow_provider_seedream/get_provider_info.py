"""Provider metadata for Airflow's ProvidersManager (entry point ``apache_airflow_provider``).

Plain data, as in Airflow's own providers: nothing here is imported by runtime code. The connection
form below is what ``connection.ConnectionSettings`` and ``connection.UI_FIELD_BEHAVIOUR`` define; a
test checks that they agree.
"""

from __future__ import annotations

from typing import Any


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-provider-seedream",
        "name": "Seedream",
        "description": "Generate images with ByteDance's Seedream models through Novita AI.",
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
        "sensors": [
            {
                "integration-name": "Seedream",
                "python-modules": ["airflow_provider_seedream.sensors.seedream"],
            }
        ],
        "triggers": [
            {
                "integration-name": "Seedream",
                "python-modules": ["airflow_provider_seedream.triggers.seedream"],
            }
        ],
        "plugins": [
            {
                "name": "seedream",
                "plugin-class": "airflow_provider_seedream.plugins.gallery.SeedreamGalleryPlugin",
            }
        ],
        "extra-links": ["airflow_provider_seedream.plugins.gallery.SeedreamImagesLink"],
        "config": {
            "seedream": {
                "description": "The Seedream provider's settings for the api-server.",
                "options": {
                    "gallery_roots": {
                        "description": "Where the UI's gallery may read images, manifests and cache "
                        "records: comma-separated absolute folders and object-store URIs with their "
                        "connection (s3://conn_id@bucket/prefix). Tasks write what the gallery reads, so "
                        "it reads nothing outside these roots; empty, it reads nothing. Give the "
                        "destinations and caches your DAGs store into, one root per trust domain.",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "/srv/seedream-assets,s3://aws_default@marketing-assets/seedream",
                        "default": "",
                    }
                },
            }
        },
        "task-decorators": [
            {"name": "seedream", "class-name": "airflow_provider_seedream.decorators.seedream.seedream_task"}
        ],
        "connection-types": [
            {
                "connection-type": "seedream",
                "hook-class-name": "airflow_provider_seedream.hooks.seedream.SeedreamHook",
                "hook-name": "Seedream (Novita AI)",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port", "login"],
                    "relabeling": {"password": "API Key", "host": "API base URL"},
                    "placeholders": {"host": "https://api.novita.ai", "password": "Your Novita AI API key"},
                },
                "conn-fields": {
                    "connect_timeout": {
                        "label": "Connect timeout (s)",
                        "description": "Seconds to wait for a connection to the API.",
                        "schema": {"type": ["number", "null"], "default": 10.0, "exclusiveMinimum": 0},
                    },
                    "read_timeout": {
                        "label": "Read timeout (s)",
                        "description": "Seconds to wait for a generation to answer (4K or batch "
                        "generations take minutes); also the longest one image "
                        "download may take.",
                        "schema": {"type": ["number", "null"], "default": 300.0, "exclusiveMinimum": 0},
                    },
                    "max_retries": {
                        "label": "Max retries",
                        "description": "Retries after an overloaded API (503) or a failure to "
                        "connect: failures that say nothing was generated.",
                        "schema": {"type": ["integer", "null"], "default": 3, "minimum": 0, "maximum": 10},
                    },
                    "backoff_seconds": {
                        "label": "Backoff base (s)",
                        "description": "The first retry waits about this long, doubling each time.",
                        "schema": {"type": ["number", "null"], "default": 2.0, "minimum": 0},
                    },
                    "max_backoff_seconds": {
                        "label": "Max wait between retries (s)",
                        "description": "Cap on any wait between retries, including one "
                        "asked for by Retry-After.",
                        "schema": {"type": ["number", "null"], "default": 60.0, "minimum": 0},
                    },
                    "rate_limit_wait_seconds": {
                        "label": "Rate-limit wait (s)",
                        "description": "How long, in all, one generation may wait out "
                        "rate limits (429, honouring Retry-After) before "
                        "it fails.",
                        "schema": {"type": ["number", "null"], "default": 600.0, "minimum": 0},
                    },
                    "retry_possibly_billed": {
                        "label": "Retry possibly billed requests",
                        "description": "Send a generation again after a failure that came "
                        "after it was sent (read timeout, broken answer, "
                        "500/502/504): it may already be generating and "
                        "billed, so this can bill twice.",
                        "schema": {"type": ["boolean", "null"], "default": False},
                    },
                    "max_spend_per_day_usd": {
                        "label": "Max spend per day (USD)",
                        "description": "What this connection may spend per UTC day, across every DAG, "
                        "task and worker; a generation that could exceed it is not sent. Estimates, from "
                        "the list or your price_per_image.",
                        "schema": {"type": ["number", "null"], "default": None, "minimum": 0},
                    },
                    "max_spend_per_run_usd": {
                        "label": "Max spend per DAG run (USD)",
                        "description": "What one DAG run may spend through this connection, every task, "
                        "map index and try of it together; a generation that could exceed it is not sent.",
                        "schema": {"type": ["number", "null"], "default": None, "minimum": 0},
                    },
                    "spend_ledger": {
                        "label": "Spend ledger",
                        "description": "Where the ceilings are counted: a local file (one machine; default "
                        "under $AIRFLOW_HOME) or an S3 object with its connection "
                        "(s3://conn_id@bucket/seedream/ledger.json), which every worker reaches.",
                        "schema": {"type": ["string", "null"], "default": None},
                    },
                },
            }
        ],
    }
