"""The Seedream generation API as the sandbox emulates it: a wire body read back and validated the way
the API would (with the provider's own contract code), and the pixel size of what it generates."""

from __future__ import annotations

import copy
from typing import Any

from airflow_provider_seedream.contract.exceptions import SeedreamValidationError
from airflow_provider_seedream.contract.references import check_data_uri, short_repr
from airflow_provider_seedream.contract.request import GenerateRequest, build_request
from airflow_provider_seedream.contract.specs import MODEL_SPECS


def request_from_payload(model: str, body: object) -> GenerateRequest:
    """Validate a wire body as the API would: each parameter where the model's spec puts it and
    nothing else; references must be URLs or data URIs, and data URIs must hold acceptable images."""
    spec = MODEL_SPECS.get(model)
    if spec is None:
        raise SeedreamValidationError(f"model={model!r} is not supported")
    if not isinstance(body, dict):
        raise SeedreamValidationError("the request body must be a JSON object")
    body = copy.deepcopy(body)  # consumed field by field below; the caller's body stays intact
    fields: dict[str, Any] = {"model": model}
    for name, path in spec.fields.items():
        if _has(body, path):
            fields[name] = _pop(body, path)
    if body:
        raise SeedreamValidationError(f"unknown fields for {spec.name}: {', '.join(sorted(body))}")
    if "prompt" not in fields:
        raise SeedreamValidationError("prompt: a prompt is required")
    reference_field = ".".join(spec.fields["images"])
    if isinstance(fields.get("images"), list):
        for index, item in enumerate(fields["images"]):
            if not isinstance(item, str) or not item.lower().startswith(("http://", "https://", "data:")):
                raise SeedreamValidationError(
                    f"{reference_field}[{index}]={short_repr(item)}: the API takes URLs and data URIs only"
                )
    request = build_request(**fields)
    for index, reference in enumerate(request.references):
        if reference.kind == "data_uri":
            check_data_uri(reference.value, spec, f"{reference_field}[{index}]")
    return request


def _has(body: dict[str, Any], path: tuple[str, ...]) -> bool:
    for key in path:
        if not isinstance(body, dict) or key not in body:
            return False
        body = body[key]
    return True


def _pop(body: dict[str, Any], path: tuple[str, ...]) -> Any:
    """Remove ``path`` from ``body``, and any option object it leaves empty."""
    if len(path) == 1:
        return body.pop(path[0])
    inner = body[path[0]]
    value = _pop(inner, path[1:])
    if not inner:
        del body[path[0]]
    return value
