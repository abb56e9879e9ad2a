"""Keep presigned-URL credentials out of logs, messages and manifests."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

_SECRET_SUFFIXES = ("signature", "credential", "token")
"""Signing parameters of TOS, S3, GCS and OSS (X-Tos-Signature, X-Amz-Credential, X-Amz-Security-Token...)."""
_SECRET_PARAMETERS = frozenset({"sig", "awsaccesskeyid", "googleaccessid", "ossaccesskeyid"})
"""The rest: Azure SAS's signature and the key ids of older presigned-URL schemes."""


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


def strip_query(url: str) -> str:
    """The URL without its query string: a stable, credential-free name for the image."""
    try:
        return urlunsplit(urlsplit(url)._replace(query="", fragment=""))
    except ValueError:
        return "<unparseable URL>"


def _is_secret(key: str) -> bool:
    key = key.lower()
    return key in _SECRET_PARAMETERS or key.endswith(_SECRET_SUFFIXES)
