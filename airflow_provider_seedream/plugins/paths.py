"""Where the gallery lives in the UI: the app's prefix, its routes, and the tabs' routes; shared by the
plugin, its app, and DAGs that link to images (the review example)."""

from __future__ import annotations

from urllib.parse import quote, urlsplit

from airflow.providers.common.compat.sdk import conf

URL_PREFIX = "/seedream"
"""Where the api-server mounts the gallery's app, below its base path."""
TAB_ROUTE = "seedream-images"
"""The task instance tab's route in the UI: ``.../plugin/seedream-images``."""
RUN_TAB_ROUTE = "seedream-run-images"
"""The DAG run tab's (routes are unique across all views)."""


def base_path() -> str:
    """The UI's path below its host (``[api] base_url``), for links made outside a request."""
    base_url = conf.get("api", "base_url", fallback="/") or "/"
    return (urlsplit(base_url).path if "://" in base_url else base_url).rstrip("/")


def image_path(kind: str, dag_id: str, run_id: str, task_id: str, map_index: int, index: int) -> str:
    """Where the gallery app serves a stored image (``kind`` "images") or its thumbnail
    ("thumbnails"), below the app's prefix."""
    parts = (dag_id, run_id, task_id, str(map_index), str(index))
    return f"/{kind}/" + "/".join(quote(part, safe="") for part in parts)


def image_url(kind: str, dag_id: str, run_id: str, task_id: str, map_index: int, index: int) -> str:
    """:func:`image_path` as the UI's pages link it (the Required Actions page's Markdown, say)."""
    return f"{base_path()}{URL_PREFIX}{image_path(kind, dag_id, run_id, task_id, map_index, index)}"
