"""A generation's fingerprint: the sha256 of what decides its images."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from typing import TYPE_CHECKING, Any

from airflow_provider_seedream.contract.exceptions import SeedreamValidationError
from airflow_provider_seedream.contract.request import put_at

if TYPE_CHECKING:
    from airflow_provider_seedream.contract.specs import ModelSpec

FORMAT_VERSION = 1
"""Part of every fingerprint and record: a change to what a fingerprint covers starts a new cache."""
_DATA_URI = re.compile(r"^data:[^,;]*;base64,", re.IGNORECASE)


def generation_fingerprint(
    endpoint: str, body: dict[str, Any], spec: ModelSpec, cache_key: Any = None
) -> str:
    """The sha256 of what decides a generation's images: the endpoint's URL and the body as sent, each
    inlined reference image standing for the sha256 of its bytes (a reference URL stands for itself),
    and ``cache_key``, when given, standing for the prompt.

    :raises SeedreamValidationError: ``cache_key`` is not JSON (str, number, bool, list or dict)."""
    content = json.loads(json.dumps(body))  # a copy, to replace parts in
    images = _at(content, spec.fields.get("images"))
    if isinstance(images, list):
        put_at(content, spec.fields["images"], [_reference_identity(item) for item in images])
    if cache_key is not None:
        put_at(content, spec.fields["prompt"], {"cache_key": cache_key})
    try:
        text = json.dumps(
            {"format": FORMAT_VERSION, "endpoint": endpoint, "body": content},
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
            allow_nan=False,
        )
    except (TypeError, ValueError) as err:
        raise SeedreamValidationError(
            f"cache_key={cache_key!r:.80}: must be a str, number, bool, or a list or dict of them ({err})"
        ) from None
    return hashlib.sha256(text.encode()).hexdigest()


def _reference_identity(item: Any) -> Any:
    if isinstance(item, str) and _DATA_URI.match(item):
        data = base64.b64decode(item.partition(",")[2])
        return f"sha256:{hashlib.sha256(data).hexdigest()}"
    return item


def _at(body: dict[str, Any], path: tuple[str, ...] | None) -> Any:
    value: Any = body
    for key in path or ("",):
        value = value.get(key) if isinstance(value, dict) else None
    return value
