"""Keep the API key and presigned-URL credentials out of logs, messages and manifests."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

_SECRET_SUFFIXES = ("signature", "credential", "token")
"""Signing parameters of TOS, S3, GCS and OSS (X-Tos-Signature, X-Amz-Credential, X-Amz-Security-Token...)."""
_SECRET_PARAMETERS = frozenset({"sig", "awsaccesskeyid", "googleaccessid", "ossaccesskeyid"})
"""The rest: Azure SAS's signature and the key ids of older presigned-URL schemes."""
_SECRET_IN_TEXT = re.compile(
    r"(?P<name>\b[\w.-]*(?:signature|credential|token)|\b(?:sig|awsaccesskeyid|googleaccessid|ossaccesskeyid))"
    r"(?P<separator>=|%3D)(?P<value>[^&\s\"'<>\\]+)",
    re.IGNORECASE,
)
"""A signing parameter anywhere in free text: a server may echo a presigned link in an error page."""
MASK = "***"


class Secrets:
    """Values that must never be shown (the API key), handed to what quotes a server's words so that
    it can remove them. Its repr shows none of them: a traceback that prints its frames' locals (as
    Airflow 3.0's console renderer does) prints ``<1 secret>``."""

    def __init__(self, *values: str) -> None:
        self._values = tuple(value for value in values if value)

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __repr__(self) -> str:
        return f"<{len(self._values)} secret{'s' if len(self._values) != 1 else ''}>"


def redact_url(url: str) -> str:
    """The URL with every signing parameter's value replaced, for logs and error messages."""
    try:
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
    except ValueError:
        return "<unparseable URL>"
    if not query:
        return url
    redacted = [(key, "REDACTED" if _is_secret(key) else value) for key, value in query]
    return urlunsplit(parts._replace(query=urlencode(redacted, safe="/:")))


def link_identity(url: str) -> str:
    """The link without its signing parameters: which image it names, with no credential in it.

    Other query parameters stay, so ``/download?id=1`` and ``/download?id=2`` are different images."""
    try:
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
    except ValueError:
        return "<unparseable URL>"
    kept = [(key, value) for key, value in query if not _is_secret(key)]
    return urlunsplit(parts._replace(query=urlencode(kept, safe="/:"), fragment=""))


def signature_values(url: str) -> list[str]:
    """The values of the link's signing parameters: what must never be shown."""
    try:
        query = parse_qsl(urlsplit(url).query, keep_blank_values=True)
    except ValueError:
        return []
    return [value for key, value in query if _is_secret(key) and value]


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` (a response body, say) without the given secrets or any signing parameter's value."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    return _SECRET_IN_TEXT.sub(lambda match: f"{match['name']}{match['separator']}REDACTED", text)


def mask_signatures(urls: Iterable[str]) -> None:
    """Register each link's signing values with Airflow's secret masker, so that logs (urllib3's debug
    lines included) and rendered templates show ``***``. The links themselves stay usable."""
    values = [value for url in urls for value in signature_values(url)]
    if values:
        from airflow.providers.common.compat.sdk import mask_secret

        for value in values:
            mask_secret(value)


def _is_secret(key: str) -> bool:
    key = key.lower()
    return key in _SECRET_PARAMETERS or key.endswith(_SECRET_SUFFIXES)
