"""The Seedream hook: the one place that talks to the Novita API and reads or writes image bytes."""

from __future__ import annotations

import email.utils
import hashlib
import os
import random
import time
from collections.abc import Collection, Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from functools import cached_property
from typing import TYPE_CHECKING, Any

import requests
from airflow.providers.common.compat.sdk import BaseHook

from airflow_provider_seedream._imageinfo import EXTENSIONS, MEDIA_TYPES, read_image_info, sniff_format
from airflow_provider_seedream._redact import redact_url, strip_query
from airflow_provider_seedream._storage import as_storage_path, storage_target, write_atomically
from airflow_provider_seedream.exceptions import (
    SeedreamAuthError,
    SeedreamConnectionError,
    SeedreamDownloadError,
    SeedreamError,
    SeedreamRateLimitError,
    SeedreamResponseError,
    SeedreamTimeoutError,
    SeedreamValidationError,
    api_error,
)
from airflow_provider_seedream.get_provider_info import (
    CONNECTION_EXTRA_FIELDS,
    DEFAULT_BASE_URL,
    DEFAULT_CONN_ID,
    get_provider_info,
)
from airflow_provider_seedream.links import DEFAULT_NOT_READY_STATUSES, ERROR_BODY_PREFIX, link_failure
from airflow_provider_seedream.request import (
    GenerateRequest,
    Reference,
    build_request,
    check_data_uri,
    inline_image,
)
from airflow_provider_seedream.specs import DEFAULT_MODEL, MODEL_SPECS

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.providers.common.compat.sdk import Connection, ObjectStoragePath

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
DOWNLOAD_CHUNK_BYTES = 1024 * 1024
SNIFF_BYTES = 64 * 1024
"""Enough of an image's start to know its format and, for all but odd JPEGs, its pixel size."""


@dataclass(frozen=True)
class StoredImage:
    """One downloaded image: a manifest entry."""

    source: str
    """The link without its query string, so without its signature."""
    location: str
    sha256: str
    bytes: int
    content_type: str
    width: int | None
    height: int | None
    stored_at: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ClientSettings:
    """Timeouts and retry policy, from the connection's extra (every field optional)."""

    connect_timeout: float = 10.0
    read_timeout: float = 300.0
    max_retries: int = 3
    backoff_seconds: float = 2.0
    max_backoff_seconds: float = 60.0
    retry_on_read_timeout: bool = False

    @classmethod
    def from_extra(cls, extra: dict[str, Any]) -> ClientSettings:
        values: dict[str, Any] = {}
        for name, field in cls.__dataclass_fields__.items():
            raw = extra.get(name)
            if raw is None or raw == "":
                continue
            kind = field.type
            try:
                if kind == "bool":
                    values[name] = (
                        raw if isinstance(raw, bool) else str(raw).strip().lower() in {"1", "true", "yes"}
                    )
                else:
                    values[name] = int(raw) if kind == "int" else float(raw)
            except (TypeError, ValueError):
                raise SeedreamValidationError(
                    f"connection extra {name}={raw!r} is not a valid {kind}"
                ) from None
        return cls(**values)


def base_url_from_connection(host: str | None, port: int | None) -> str:
    """Empty host: the Novita API. A URL with a scheme: as given. A bare host name: https."""
    host = (host or "").strip().rstrip("/")
    if not host:
        return DEFAULT_BASE_URL
    url = host if "://" in host else f"https://{host}"
    if port and url.count(":") == 1:
        url = f"{url}:{port}"
    return url


class SeedreamHook(BaseHook):
    """
    Generate images with Seedream through Novita AI.

    The API key is the connection's password. The host is the API base URL: empty means
    ``https://api.novita.ai``; ``http://127.0.0.1:8080`` is used as given; a bare host name means https.
    Extras (all optional): ``connect_timeout``, ``read_timeout``, ``max_retries``, ``backoff_seconds``,
    ``max_backoff_seconds``, ``retry_on_read_timeout``.

    :param seedream_conn_id: the Airflow connection of type ``seedream`` to use.
    """

    conn_name_attr = "seedream_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = "seedream"
    hook_name = "Seedream (Novita AI)"

    def __init__(self, seedream_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.seedream_conn_id = seedream_conn_id

    def __repr__(self) -> str:
        return f"{type(self).__name__}(seedream_conn_id={self.seedream_conn_id!r})"

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """The connection form, for Airflow versions that ask the hook rather than provider info."""
        behaviour = get_provider_info()["connection-types"][0]["ui-field-behaviour"]
        return {key.replace("-", "_"): value for key, value in behaviour.items()}

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """The extras' form fields, for Airflow versions that build the form from the hook (before 3.2)."""
        from flask_appbuilder.fieldwidgets import BS3TextFieldWidget
        from flask_babel import lazy_gettext
        from wtforms import BooleanField, IntegerField, StringField
        from wtforms.validators import Optional

        widgets: dict[str, Any] = {}
        for name, field in CONNECTION_EXTRA_FIELDS.items():
            label, kinds = lazy_gettext(field["label"]), field["schema"]["type"]
            if "boolean" in kinds:
                widgets[name] = BooleanField(label, description=field["description"])
            else:
                kind = IntegerField if "integer" in kinds else StringField
                widgets[name] = kind(
                    label,
                    widget=BS3TextFieldWidget(),
                    validators=[Optional()],
                    description=field["description"],
                )
        return widgets

    @cached_property
    def _connection(self) -> Connection:
        connection = self.get_connection(self.seedream_conn_id)
        if connection.password:
            from airflow.providers.common.compat.sdk import mask_secret

            mask_secret(connection.password)
        return connection

    @cached_property
    def base_url(self) -> str:
        return base_url_from_connection(self._connection.host, self._connection.port)

    @cached_property
    def settings(self) -> ClientSettings:
        return ClientSettings.from_extra(self._connection.extra_dejson)

    def get_conn(self) -> requests.Session:
        """The hook's one HTTP session, authenticated with the connection's key."""
        return self._session

    @cached_property
    def _session(self) -> requests.Session:
        session = requests.Session()
        session.headers["Content-Type"] = "application/json"
        if self._connection.password:
            session.headers["Authorization"] = f"Bearer {self._connection.password}"
        return session

    def generate(
        self,
        prompt: str,
        *,
        model: str = DEFAULT_MODEL,
        size: str | None = None,
        images: Sequence[Any] | str | None = None,
        sequential_image_generation: str | None = None,
        max_images: int | None = None,
        watermark: bool | None = None,
        optimize_prompt_mode: str | None = None,
        timeout: float | None = None,
        retry_on_read_timeout: bool | None = None,
    ) -> list[str]:
        """
        Generate images and return their URLs, in the order the API gave them.

        Every documented rule is checked, and local or object-storage reference images are read,
        checked by content and inlined as data URIs, before anything is sent.

        :param timeout: read timeout in seconds for this call (default: the connection's).
        :param retry_on_read_timeout: retry a request that timed out after being sent. It may already be
            generating, so a retry can bill twice (default: the connection's, off).
        :raises SeedreamValidationError: the request breaks a documented rule; nothing was sent.
        :raises SeedreamAPIError: the API answered with an error, after any retries.
        :raises SeedreamTransportError: no answer came, after any retries.
        """
        request = build_request(
            model=model,
            prompt=prompt,
            size=size,
            images=images,
            sequential_image_generation=sequential_image_generation,
            max_images=max_images,
            watermark=watermark,
            optimize_prompt_mode=optimize_prompt_mode,
        )
        body = request.to_payload(self._resolve_references(request))
        started = time.monotonic()
        response = self._post(
            request.spec.path,
            body,
            read_timeout=timeout,
            retry_on_read_timeout=retry_on_read_timeout,
        )
        urls = image_urls(response)
        self.log.info(
            "Seedream %s: size=%s, %d reference(s), %d image(s) in %.1f s",
            request.model,
            request.size or "default",
            len(request.images or ()),
            len(urls),
            time.monotonic() - started,
        )
        return urls

    def download(self, url: str, path: str | os.PathLike[str] | ObjectStoragePath) -> str:
        """
        Stream the image at ``url`` into ``path`` and return where it was stored.

        ``path`` is a local path, an object-storage URI (``s3://...``, ``file://...``) or an
        ``ObjectStoragePath``; ``{ext}`` in its file name is replaced by the extension of the content. The
        body must be an image by content. It is written under a temporary name beside the target and
        renamed when complete, so a failed download never leaves anything at ``path``.

        :raises SeedreamLinkNotReadyError: the link answers 404: not available yet.
        :raises SeedreamLinkExpiredError: the link has expired (403 "Request has expired"/AccessDenied, 410).
        :raises SeedreamDownloadError: any other failure, including a body that is not an image or is cut off.
        """
        return self.download_image(url, path).location

    def download_image(
        self,
        url: str,
        path: str | os.PathLike[str] | ObjectStoragePath,
        *,
        max_bytes: int | None = None,
        not_ready_statuses: Collection[int] = DEFAULT_NOT_READY_STATUSES,
    ) -> StoredImage:
        """:meth:`download`, returning the stored image's details (size, sha256, pixel size...).

        :param max_bytes: refuse bodies larger than this.
        :param not_ready_statuses: statuses meaning "not available yet" (default 404).
        """
        where = redact_url(url)
        settings = self.settings
        try:
            response = self._download_session.get(
                url, stream=True, timeout=(settings.connect_timeout, settings.read_timeout)
            )
        except requests.RequestException as err:
            raise SeedreamDownloadError(f"Could not fetch {where}: {_root_cause(err)}") from None
        with response:
            if response.status_code != 200:
                raise link_failure(
                    response.status_code, response.raw.read(ERROR_BODY_PREFIX), url, not_ready_statuses
                )
            body = _CheckedBody(response, where, max_bytes)
            image_format = sniff_format(body.head)
            if image_format is None:
                raise SeedreamDownloadError(
                    f"{where} did not return an image: Content-Type "
                    f"{response.headers.get('Content-Type', 'none')}, body starts {body.head[:48]!r}"
                )
            # The pixel size, when the header fits in the first bytes (a JPEG's may not).
            info = read_image_info(body.head)
            target, location = storage_target(path, EXTENSIONS[image_format])
            write_atomically(target, body)
        from airflow.providers.common.compat.lineage.hook import get_hook_lineage_collector

        get_hook_lineage_collector().add_output_asset(context=self, uri=str(target))
        self.log.info("Stored %s (%d bytes) at %s", where, body.size, location)
        return StoredImage(
            source=strip_query(url),
            location=location,
            sha256=body.sha256.hexdigest(),
            bytes=body.size,
            content_type=MEDIA_TYPES[image_format],
            width=info.width if info else None,
            height=info.height if info else None,
            stored_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        )

    @cached_property
    def _download_session(self) -> requests.Session:
        """Image links are presigned: they must never receive the API key."""
        return requests.Session()

    def test_connection(self) -> tuple[bool, str]:
        """
        Check the base URL and key without generating (or billing) anything.

        It posts an empty JSON object to the Seedream 4.5 endpoint. Without a prompt the API cannot
        generate, so it answers 400 once it has accepted the key, and 401/403 (or a key-related
        reason) when it has not. No retries are made.
        """
        try:
            timeout = (self.settings.connect_timeout, min(self.settings.read_timeout, 30.0))
            response = self._session.post(
                f"{self.base_url}{MODEL_SPECS[DEFAULT_MODEL].path}", json={}, timeout=timeout
            )
        except requests.RequestException as err:
            return False, f"Could not reach {self.base_url}: {type(err).__name__}"
        except SeedreamError as err:
            return False, str(err)
        error = api_error(response.status_code, response.content)
        if response.ok or (response.status_code == 400 and not isinstance(error, SeedreamAuthError)):
            return True, f"Connected to {self.base_url}; the API key was accepted."
        return False, str(error)

    def _resolve_references(self, request: GenerateRequest) -> list[str]:
        """URLs as given; data URIs checked; files read, checked by content and inlined."""
        spec = request.spec
        resolved = []
        for index, reference in enumerate(request.references):
            label = f"images[{index}]={reference}"
            if reference.kind == "url":
                resolved.append(reference.value)
            elif reference.kind == "data_uri":
                check_data_uri(reference.value, spec, label)
                resolved.append(reference.value)
            else:
                data = self._read_reference(reference, label, spec.reference_limits.max_bytes)
                resolved.append(inline_image(data, spec, label))
        return resolved

    @staticmethod
    def _read_reference(reference: Reference, label: str, max_bytes: int | None) -> bytes:
        try:
            with as_storage_path(reference.value).open("rb") as handle:
                # One byte over the limit is enough to refuse; never read a huge file whole.
                return bytes(handle.read(-1 if max_bytes is None else max_bytes + 1))
        except FileNotFoundError:
            raise SeedreamValidationError(f"{label}: no such file") from None
        except IsADirectoryError:
            raise SeedreamValidationError(f"{label}: is a directory, not an image file") from None
        except OSError as err:
            raise SeedreamValidationError(f"{label}: cannot be read ({err.strerror or err})") from None

    def _post(
        self,
        path: str,
        body: dict[str, Any],
        *,
        read_timeout: float | None,
        retry_on_read_timeout: bool | None,
    ) -> requests.Response:
        """POST with bounded retries. Retried: 429, 500/502/503/504, and failures to connect (nothing
        was sent). A request that was sent and got no answer is retried only when opted in."""
        settings = self.settings
        timeout = (
            settings.connect_timeout,
            read_timeout if read_timeout is not None else settings.read_timeout,
        )
        retry_timeouts = (
            settings.retry_on_read_timeout if retry_on_read_timeout is None else retry_on_read_timeout
        )
        url = f"{self.base_url}{path}"
        attempt = 0
        while True:
            attempt += 1
            error: SeedreamError
            try:
                response = self._session.post(url, json=body, timeout=timeout)
            except requests.RequestException as err:
                error = transport_error(err, url, timeout)
                if isinstance(error, SeedreamTimeoutError) and not retry_timeouts:
                    raise error from err
            else:
                if response.ok:
                    return response
                error = api_error(response.status_code, response.content, retry_after(response))
                if response.status_code not in RETRYABLE_STATUSES:
                    raise error
            if attempt > settings.max_retries:
                raise error
            wait = self._backoff(attempt, error)
            self.log.warning(
                "Seedream request failed (%s); retry %d of %d in %.1f s",
                error,
                attempt,
                settings.max_retries,
                wait,
            )
            time.sleep(wait)

    def _backoff(self, attempt: int, error: SeedreamError) -> float:
        settings = self.settings
        if isinstance(error, SeedreamRateLimitError) and error.retry_after is not None:
            return min(error.retry_after, settings.max_backoff_seconds)
        delay = min(settings.backoff_seconds * 2 ** (attempt - 1), settings.max_backoff_seconds)
        # Half fixed, half random: waits still grow, and parallel mapped tasks do not retry in lockstep.
        return float(delay / 2 + random.uniform(0, delay / 2))


def transport_error(err: requests.RequestException, url: str, timeout: tuple[float, float]) -> SeedreamError:
    """Split failures into "never sent" (safe to retry) and "sent, no answer" (may be billed)."""
    where = redact_url(url)
    if isinstance(err, requests.ConnectTimeout):
        return SeedreamConnectionError(f"Could not connect to {where} within {timeout[0]} s")
    if isinstance(err, requests.ReadTimeout):
        return SeedreamTimeoutError(
            f"No answer from {where} within {timeout[1]} s; the generation may still run and be billed"
        )
    if isinstance(err, requests.ConnectionError) and _never_sent(err):
        return SeedreamConnectionError(f"Could not connect to {where}: {_root_cause(err)}")
    if isinstance(err, requests.ConnectionError):
        return SeedreamTimeoutError(
            f"The connection to {where} broke after the request was sent ({_root_cause(err)}); "
            "the generation may still run and be billed"
        )
    return SeedreamConnectionError(f"Request to {where} failed: {type(err).__name__}")


class _CheckedBody:
    """A response body as chunks: counted and hashed on the way, refused when it breaks the limits
    or is cut off. ``head`` is its first bytes, read ahead to tell the format."""

    def __init__(self, response: requests.Response, where: str, max_bytes: int | None) -> None:
        self._chunks = response.iter_content(DOWNLOAD_CHUNK_BYTES)
        self._where, self._max_bytes = where, max_bytes
        self._declared = _declared_length(response)
        if max_bytes is not None and self._declared is not None and self._declared > max_bytes:
            raise SeedreamDownloadError(f"{where} is {self._declared:,} bytes, over max_bytes={max_bytes:,}")
        self.size = 0
        self.sha256 = hashlib.sha256()
        self._head_chunks: list[bytes] = []
        for chunk in self._checked(self._chunks):
            self._head_chunks.append(chunk)
            if self.size >= SNIFF_BYTES:
                break
        self.head = b"".join(self._head_chunks)

    def __iter__(self) -> Iterator[bytes]:
        yield from self._head_chunks
        yield from self._checked(self._chunks)
        if self._declared is not None and self.size != self._declared:
            raise SeedreamDownloadError(
                f"{self._where} sent {self.size:,} of its {self._declared:,} bytes; the transfer was cut off"
            )

    def _checked(self, chunks: Iterator[bytes]) -> Iterator[bytes]:
        try:
            for chunk in chunks:
                self.size += len(chunk)
                if self._max_bytes is not None and self.size > self._max_bytes:
                    raise SeedreamDownloadError(f"{self._where} is over max_bytes={self._max_bytes:,}")
                self.sha256.update(chunk)
                yield chunk
        except requests.RequestException as err:
            raise SeedreamDownloadError(
                f"The transfer of {self._where} broke after {self.size:,} bytes ({_root_cause(err)})"
            ) from None


def _declared_length(response: requests.Response) -> int | None:
    """Content-Length, when it counts the bytes we will see (no content encoding)."""
    if response.headers.get("Content-Encoding", "identity") != "identity":
        return None
    try:
        return int(response.headers["Content-Length"])
    except (KeyError, ValueError):
        return None


def _never_sent(err: requests.ConnectionError) -> bool:
    from urllib3.exceptions import MaxRetryError, NameResolutionError, NewConnectionError

    cause = err.args[0] if err.args else None
    if isinstance(cause, MaxRetryError):
        cause = cause.reason
    return isinstance(cause, (NewConnectionError, NameResolutionError))


def _root_cause(err: BaseException) -> str:
    cause: BaseException = err
    while cause.__context__ is not None and cause.__context__ is not cause:
        cause = cause.__context__
    return type(cause).__name__


def retry_after(response: requests.Response) -> float | None:
    """``Retry-After`` in seconds, from a number or an HTTP date; ``None`` when absent or unreadable."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def image_urls(response: requests.Response) -> list[str]:
    """The URLs in ``{"images": [...]}``; items may be strings or objects with ``image_url``/``url``."""
    try:
        document = response.json()
    except ValueError:
        raise SeedreamResponseError(response.status_code, "INVALID_RESPONSE", response.text) from None
    items = document.get("images") if isinstance(document, dict) else None
    if not isinstance(items, list) or not items:
        raise SeedreamResponseError(
            response.status_code, "NO_IMAGES", f"expected a non-empty 'images' list, got: {response.text}"
        )
    urls = []
    for item in items:
        url = (
            item
            if isinstance(item, str)
            else (item.get("image_url") or item.get("url"))
            if isinstance(item, dict)
            else None
        )
        if not isinstance(url, str) or not url.lower().startswith(("http://", "https://")):
            raise SeedreamResponseError(
                response.status_code, "INVALID_IMAGE_ITEM", f"not an image URL: {item!r}"
            )
        urls.append(url)
    return urls
