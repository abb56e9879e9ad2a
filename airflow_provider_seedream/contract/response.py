"""The generation's answer: ``{"images": [...]}`` read into image links, refusing anything else.

Plain Python, no Airflow and no I/O: the hook hands it a body it read within limits. A body that is
not the documented shape was still billed, so every refusal is a :class:`SeedreamResponseError`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from airflow_provider_seedream.contract.exceptions import SeedreamResponseError
from airflow_provider_seedream.contract.redact import redact_text, redact_url
from airflow_provider_seedream.contract.references import OBJECT_STORAGE_SCHEMES

_CONTROL_CHARACTERS = re.compile(r"[\x00-\x20\x7f]")


def image_urls(status: int, body: bytes, secrets: Iterable[str] = (), *, max_links: int) -> list[str]:
    """The links in ``{"images": [...]}``; items may be strings or objects with ``image_url``/``url``.

    At most ``max_links`` (the model's own limit, 15), each an http(s) URL with a host and no control
    characters or spaces. ``secrets`` are removed from any body quoted in an error."""

    def refuse(reason: str, message: str) -> SeedreamResponseError:
        return SeedreamResponseError(status, reason, redact_text(message, secrets))

    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        # RecursionError: JSON nested deeper than the parser's stack, which no answer of the API is.
        text = body.decode("utf-8", errors="replace")
        raise refuse("INVALID_RESPONSE", f"the body is not JSON: {text}") from None
    items = document.get("images") if isinstance(document, dict) else None
    if not isinstance(items, list) or not items:
        raise refuse(
            "NO_IMAGES", f"expected a non-empty 'images' list, got: {body.decode('utf-8', 'replace')}"
        )
    if len(items) > max_links:
        raise refuse("TOO_MANY_IMAGES", f"{len(items)} images; the API returns at most {max_links}")
    urls = []
    for index, item in enumerate(items):
        url = (
            item
            if isinstance(item, str)
            else item.get("image_url") or item.get("url")
            if isinstance(item, dict)
            else None
        )
        problem = url_problem(url)
        if problem or not isinstance(url, str):
            shown = redact_url(url) if isinstance(url, str) else type(item).__name__
            raise refuse("INVALID_IMAGE_ITEM", f"images[{index}] ({shown[:200]!r}) {problem}")
        urls.append(url)
    return urls


def url_problem(url: object) -> str | None:
    """Why ``url`` is no usable image link, or ``None``."""
    if not isinstance(url, str):
        return "is not a link"
    if _CONTROL_CHARACTERS.search(url):
        return "contains spaces or control characters"
    try:
        parts = urlsplit(url)
    except ValueError:
        return "is not a valid URL"
    if parts.scheme.lower() not in ("http", "https"):
        return "is not an http(s) link"
    if not parts.hostname:
        return "has no host"
    return None


def is_api_link(value: object) -> bool:
    """An http(s) link, as the API returns; any other string a download takes is a stored location."""
    return isinstance(value, str) and value[:8].lower().startswith(("http://", "https://"))


def location_problem(location: object) -> str | None:
    """Why ``location`` is no stored location (a path, or a URI of a scheme Airflow's ObjectStoragePath
    reads), or ``None``."""
    if not isinstance(location, str):
        return "is not a link or a stored location"
    scheme = location.split("://", 1)[0].lower() if "://" in location else ""
    if not location.strip() or "\x00" in location or (scheme and scheme not in OBJECT_STORAGE_SCHEMES):
        return "is not a link (http, https) or a stored location (a path, file:// or an object-store URI)"
    return None
