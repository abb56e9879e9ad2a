"""
Every error this provider raises, in one hierarchy a DAG author can act on, split first by what the
failure may have cost: nothing can be caught as a class that also holds failures that may have been
billed, so ``except SeedreamAPIError: retry()`` never pays twice.

Our exception hierarchy (billed: was a generation paid for?):

* SeedreamError
  + SeedreamValidationError       no     refused before any request was sent.
  + SeedreamSpendLimitError       no     a spend ceiling (task, run, day) would be exceeded: refused
  |                                      before sending, never retried (``ceiling``, ``limit_usd``...).
  + SeedreamSpendLedgerError      no     the spend ledger could not be read or written, so no ceiling
  |                                      could be checked: nothing was sent (``retryable``).
  + SeedreamAPIError              no     the API answered with an error and generated nothing
    |                                    (``status``, ``reason``, ``message``).
    - SeedreamAuthError           no     401/403, or a key the API refused: fix the connection.
    - SeedreamBadRequestError     no     400/404/422, or a redirect: the request itself is wrong.
      · SeedreamContentPolicyError  no   the prompt or a reference image was refused by moderation.
      · SeedreamBillingError        no   the account has no balance left.
    - SeedreamRateLimitError      no     429: images-per-minute limit (``retry_after`` when given).
    - SeedreamServerError         no     503 answered at once: overloaded, the request not taken.
  + SeedreamConnectionError       no     could not connect: the request was never sent.
  + SeedreamPossiblyBilledError   maybe  the request left this machine and no usable answer came
    |                                    back. Never sent again without ``retry_possibly_billed``.
    - SeedreamTimeoutError        maybe  sent, and no answer within the read timeout.
    - SeedreamConnectionLostError maybe  sent, then the connection broke before an answer.
    - SeedreamGatewayError        maybe  500/502/504, or a 503 after a long wait: the API behind the
    |                                    gateway may still be generating (``status``, ``reason``...).
    - SeedreamResponseError       yes    a 2xx that is not the documented ``{"images": [...]}``, or
    |                                    whose body broke off: the generation ran.
    - SeedreamCacheStoreError     yes    generated, then storing the images into the ``cache`` failed:
                                         ``urls`` holds the paid links, to store without paying again.
  + SeedreamDownloadError         no     fetching or storing a generated image failed; ``retryable``
    |                                    says whether the cause can pass (a full disk, a broken body).
    - SeedreamLinkNotReadyError   no     the link does not answer yet (a sensor keeps waiting).
    - SeedreamLinkExpiredError    no     the presigned link expired: only a new generation helps.

:func:`may_retry` is the one billing rule: whether the hook may send a generation again, and whether
a task may spend a retry on a failure. Operators fail without retries when it says no.

This module imports nothing from Airflow, so the request layer stays usable on its own.
"""

from __future__ import annotations

__all__ = [
    "SeedreamAPIError",
    "SeedreamAuthError",
    "SeedreamBadRequestError",
    "SeedreamBillingError",
    "SeedreamCacheStoreError",
    "SeedreamConnectionError",
    "SeedreamConnectionLostError",
    "SeedreamContentPolicyError",
    "SeedreamDownloadError",
    "SeedreamError",
    "SeedreamGatewayError",
    "SeedreamLinkExpiredError",
    "SeedreamLinkNotReadyError",
    "SeedreamPossiblyBilledError",
    "SeedreamRateLimitError",
    "SeedreamResponseError",
    "SeedreamServerError",
    "SeedreamSpendLedgerError",
    "SeedreamSpendLimitError",
    "SeedreamTimeoutError",
    "SeedreamValidationError",
    "may_retry",
]

MESSAGE_LIMIT = 500
"""API messages and bodies are cut to this many characters: a gateway's HTML page can be huge."""


POSSIBLY_BILLED_NOTE = (
    "the request was sent, so the generation may have run and been billed; it is not sent again "
    "unless retry_possibly_billed=True"
)


def truncate(text: str, limit: int = MESSAGE_LIMIT) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else f"{text[:limit]}... [{len(text) - limit} more characters]"


def _answer(status: int, reason: str | None, message: str) -> str:
    return f"Seedream API error {status}{f' {reason}' if reason else ''}: {message}"


class SeedreamError(Exception):
    """Base class of every error raised by this provider."""


class SeedreamValidationError(SeedreamError, ValueError):
    """A request broke a documented rule; it was refused before anything was sent."""


class SeedreamSpendLimitError(SeedreamError):
    """A spend ceiling would be exceeded by what the request could cost: nothing was sent. ``ceiling``
    names it (``max_spend_usd``, ``max_spend_per_run_usd``, ``max_spend_per_day_usd``), with its
    ``limit_usd``, what was ``spent_usd`` and ``reserved_usd`` already, and the ``request_usd``."""

    def __init__(
        self,
        message: str,
        *,
        ceiling: str,
        limit_usd: float,
        spent_usd: float,
        reserved_usd: float,
        request_usd: float,
    ) -> None:
        super().__init__(message)
        self.ceiling, self.limit_usd = ceiling, limit_usd
        self.spent_usd, self.reserved_usd, self.request_usd = spent_usd, reserved_usd, request_usd


class SeedreamSpendLedgerError(SeedreamError):
    """The spend ledger could not be read or written, so the ceilings could not be checked: nothing was
    sent. ``retryable`` says whether the cause can pass (a store that is down, a race lost too often)."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class SeedreamAPIError(SeedreamError):
    """The API answered with an error status and generated nothing."""

    def __init__(self, status: int, reason: str | None, message: str) -> None:
        self.status = status
        self.reason = reason
        self.message = truncate(message)
        super().__init__(self.status, self.reason, self.message)

    def __str__(self) -> str:
        return _answer(self.status, self.reason, self.message)


class SeedreamAuthError(SeedreamAPIError):
    """The API key is missing, wrong, or not allowed to use this model."""


class SeedreamBadRequestError(SeedreamAPIError):
    """The API refused the request as invalid; sending it again cannot succeed."""


class SeedreamContentPolicyError(SeedreamBadRequestError):
    """The prompt or a reference image was refused by content moderation."""


class SeedreamBillingError(SeedreamBadRequestError):
    """The account balance does not cover the request."""


class SeedreamRateLimitError(SeedreamAPIError):
    """Too many images per minute; ``retry_after`` holds the wait the API asked for, in seconds."""

    def __init__(self, status: int, reason: str | None, message: str, retry_after: float | None) -> None:
        super().__init__(status, reason, message)
        self.retry_after = retry_after


class SeedreamServerError(SeedreamAPIError):
    """The service refused the request for now (a prompt 503, overloaded): it was not processed."""


class SeedreamConnectionError(SeedreamError):
    """The connection could not be made; the request was never sent."""


class SeedreamPossiblyBilledError(SeedreamError):
    """The request left this machine and no usable answer came back: the generation may have run,
    and been billed. Sending it again could pay twice, so neither the hook nor a task retry does that
    unless ``retry_possibly_billed`` is set. ``status`` and ``reason`` are the answer's, when one came."""

    def __init__(self, message: str, *, status: int | None = None, reason: str | None = None) -> None:
        self.status = status
        self.reason = reason
        self.message = truncate(message)
        super().__init__(self.message)

    def __str__(self) -> str:
        said = self.message if self.status is None else _answer(self.status, self.reason, self.message)
        return f"{said}; {POSSIBLY_BILLED_NOTE}"


class SeedreamTimeoutError(SeedreamPossiblyBilledError):
    """The request was sent, and no answer came within the read timeout."""


class SeedreamConnectionLostError(SeedreamPossiblyBilledError):
    """The request was sent, then the connection broke before an answer came."""


class SeedreamGatewayError(SeedreamPossiblyBilledError):
    """500/502/504, or a 503 after a long wait: the server or a gateway failed while the request was
    being handled, and the API behind it may still be generating."""

    def __init__(self, status: int, reason: str | None, message: str) -> None:
        super().__init__(message, status=status, reason=reason)


class SeedreamResponseError(SeedreamPossiblyBilledError):
    """A success status whose body is not the documented ``{"images": [...]}``, or broke off: the
    generation ran and was billed, but its links could not be read."""

    def __init__(self, status: int, reason: str | None, message: str) -> None:
        super().__init__(message, status=status, reason=reason)


class SeedreamCacheStoreError(SeedreamPossiblyBilledError):
    """The images were generated, and billed, then storing them into the cache failed. ``urls`` are
    the paid links (never in the message: they carry signatures), so that a caller can store them
    while they work instead of generating again; ``retryable`` says whether the storage cause can pass."""

    def __init__(self, message: str, urls: list[str], *, retryable: bool) -> None:
        super().__init__(message)
        self.urls = urls
        self.retryable = retryable

    def __str__(self) -> str:
        return (
            f"{self.message}; the {len(self.urls)} image(s) were generated and paid for: store their links "
            "(this error's urls) instead of generating again"
        )


class SeedreamDownloadError(SeedreamError):
    """A generated image could not be fetched or stored; ``retryable`` tells whether the cause can
    pass (a broken body, a full disk) or not (not an image, too large, a name outside the destination)."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class SeedreamLinkNotReadyError(SeedreamDownloadError):
    """The link does not serve the image yet; waiting may help."""


class SeedreamLinkExpiredError(SeedreamDownloadError):
    """The presigned link has expired; only a new generation can produce the image again."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


_NOTHING_BILLED_AND_MAY_PASS = (SeedreamConnectionError, SeedreamRateLimitError, SeedreamServerError)


def may_retry(error: BaseException, *, retry_possibly_billed: bool = False) -> bool:
    """Whether trying again after ``error`` can succeed without risking a second bill: the one rule for
    the hook's retry loop (sending a generation again) and for the operators (spending a task retry).

    Yes: the request never left (could not connect, the ledger could not be reached), the API said it
    did not take it (429, a prompt 503), or a download failed for a cause that can pass. Only with
    ``retry_possibly_billed``: anything after a generation left this machine. No: everything else
    (invalid, over a spend ceiling, refused, expired)."""
    if isinstance(error, SeedreamPossiblyBilledError):
        return retry_possibly_billed
    if isinstance(error, (SeedreamDownloadError, SeedreamSpendLedgerError)):
        return error.retryable
    return isinstance(error, _NOTHING_BILLED_AND_MAY_PASS)
