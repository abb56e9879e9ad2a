"""Keep presigned-URL credentials out of logs, messages and manifests."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

_SECRET_PARAMETERS = frozenset(
    {
        "signature",
        "sig",
        "token",
        "access_token",
        "x-amz-signature",
        "x-amz-credential",
        "x-amz-security-token",
        "x-tos-signature",
        "x-tos-credential",
        "x-tos-security-token",
        "x-goog-signature",
        "x-goog-credential",
        "x-oss-signature",
        "x-oss-credential",
        "x-oss-security-token",
        "ossaccesskeyid",
        "awsaccesskeyid",
        "googleaccessid",
    }
)
"""Query parameters that sign or authorise a presigned URL (TOS, S3, GCS, OSS, Azure SAS)."""


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
    return key in _SECRET_PARAMETERS or key.endswith(("signature", "credential", "token"))
