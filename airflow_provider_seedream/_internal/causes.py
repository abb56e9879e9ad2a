"""What went wrong on the wire, in words: "connection refused" rather than ``ConnectionError``."""

from __future__ import annotations

import http.client
import socket
import ssl

import urllib3.exceptions

_CAUSES: tuple[tuple[type[BaseException], str], ...] = (
    (ConnectionRefusedError, "connection refused"),
    (socket.gaierror, "the host name could not be resolved"),
    (ConnectionResetError, "connection reset by the server"),
    (BrokenPipeError, "the server closed the connection"),
    (http.client.RemoteDisconnected, "the server closed the connection without answering"),
    (http.client.IncompleteRead, "the body ended before its announced length"),
    (ssl.SSLCertVerificationError, "the server's certificate could not be verified"),
    (ssl.SSLError, "TLS error"),
    (TimeoutError, "timed out"),
    (urllib3.exceptions.DecodeError, "the body could not be decoded (Content-Encoding)"),
)


def describe_cause(err: BaseException) -> str:
    """What went wrong, in words: "connection refused" rather than ``ConnectionError``."""
    chain = causes_of(err)
    for kind, words in _CAUSES:
        found = next((cause for cause in chain if isinstance(cause, kind)), None)
        if found is not None:
            reason = getattr(found, "reason", None) if kind is ssl.SSLError else None  # OpenSSL's name
            return f"{words}: {reason}" if reason else words
    return type(chain[-1]).__name__


def causes_of(err: BaseException) -> list[BaseException]:
    """``err`` and everything it wraps: requests and urllib3 nest causes in args and ``reason``."""
    seen: list[BaseException] = []
    stack = [err]
    while stack:
        cause = stack.pop()
        if any(cause is known for known in seen):
            continue
        seen.append(cause)
        wrapped = (getattr(cause, "reason", None), cause.args[0] if cause.args else None)
        stack.extend(
            item for item in (*wrapped, cause.__cause__, cause.__context__) if isinstance(item, BaseException)
        )
    return seen
