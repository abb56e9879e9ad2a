"""The API's error answers, classified by what they may have cost: the exception a DAG author can act
on for an error status and its body (``exceptions`` has the hierarchy). Plain Python, no Airflow."""

from __future__ import annotations

import json

from airflow_provider_seedream.contract.exceptions import (
    SeedreamAPIError,
    SeedreamAuthError,
    SeedreamBadRequestError,
    SeedreamBillingError,
    SeedreamContentPolicyError,
    SeedreamGatewayError,
    SeedreamPossiblyBilledError,
    SeedreamRateLimitError,
    SeedreamResponseError,
    SeedreamServerError,
)

_AUTH_REASONS = frozenset({"INVALID_API_KEY", "MISSING_API_KEY", "API_NOT_ALLOWED", "NEED_REAL_NAME_VERIFY"})
_CONTENT_POLICY_REASONS = frozenset({"ILLEGAL_PROMPT", "ILLEGAL_IMAGE_CONTENT"})
_BILLING_REASONS = frozenset({"BILLING_BALANCE_NOT_ENOUGH"})


def parse_error_body(body: bytes) -> tuple[str | None, str]:
    """``(reason, message)`` from any error body the API or a gateway sends.

    Known shapes: ``{"code", "reason", "message"}``, ``{"error": {"message", "code"}}``, plain text
    or an HTML page (returned whole; callers truncate)."""
    text = body.decode("utf-8", errors="replace")
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser's stack
        return None, text.strip() or "(empty body)"
    if isinstance(document, dict):
        inner = document.get("error")
        details = inner if isinstance(inner, dict) else document
        reason = details.get("reason") or (
            details.get("code") if isinstance(details.get("code"), str) else None
        )
        message = details.get("message") or details.get("msg") or (inner if isinstance(inner, str) else None)
        return (str(reason) if reason else None), str(message if message else text)
    return None, text


OVERLOAD_ANSWER_SECONDS = 30.0
"""A 503 that comes back sooner than this is the service refusing work it did not start; a later one
may be a gateway giving up on a generation that goes on (Novita warns of 503/504 on long requests)."""


def api_error(
    status: int,
    body: bytes,
    retry_after: float | None = None,
    *,
    elapsed: float = 0.0,
    location: str | None = None,
) -> SeedreamAPIError | SeedreamPossiblyBilledError:
    """The exception type a DAG author can act on, for an error status and its body.

    This is the billing classification of answers: only 429 and a prompt 503 say the request was not
    processed (safe to send again); other 5xx may hide a generation that ran. ``elapsed`` is how long
    the answer took; ``location`` the redirect target of a 3xx, already redacted."""
    reason, message = parse_error_body(body)
    upper_reason = (reason or "").upper()
    if 300 <= status < 400:
        return SeedreamBadRequestError(
            status,
            "REDIRECT",
            f"the API answered with a redirect to {location or '(no Location)'}; redirects are not "
            "followed for generations (they would re-send the request, references included, elsewhere): "
            "set the connection's host to the API's real base URL",
        )
    if status == 401 or upper_reason in _AUTH_REASONS:
        return SeedreamAuthError(status, reason, message)
    if upper_reason in _CONTENT_POLICY_REASONS:
        return SeedreamContentPolicyError(status, reason, message)
    if upper_reason in _BILLING_REASONS:
        return SeedreamBillingError(status, reason, message)
    if status == 429:
        return SeedreamRateLimitError(status, reason, message, retry_after)
    if status == 403:
        return SeedreamAuthError(status, reason, message)
    if 400 <= status < 500:
        return SeedreamBadRequestError(status, reason, message)
    if status == 503 and elapsed < OVERLOAD_ANSWER_SECONDS:
        return SeedreamServerError(status, reason, message)
    if status >= 500:
        return SeedreamGatewayError(status, reason, message)
    return SeedreamResponseError(status, reason, message)
