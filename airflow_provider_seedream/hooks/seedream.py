"""The Seedream hook: the one place that talks to the Novita API and reads or writes image bytes."""

from __future__ import annotations

import hashlib
import os
import random
import stat
import time
from collections.abc import Collection, Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from functools import cached_property
from typing import TYPE_CHECKING, Any

import requests
from airflow.providers.common.compat.sdk import BaseHook

from airflow_provider_seedream._imageinfo import EXTENSIONS, MEDIA_TYPES, read_image_info, sniff_format
from airflow_provider_seedream._redact import link_identity, mask_signatures, redact_text, redact_url
from airflow_provider_seedream._storage import (
    as_storage_path,
    is_local,
    join,
    storage_target,
    write_atomically,
)
from airflow_provider_seedream._transport import (
    GENERATION_RESPONSE_LIMIT,
    BodyError,
    describe_cause,
    hook_may_resend,
    iter_body,
    read_body,
    read_error_body,
    retry_after,
    transport_error,
)
from airflow_provider_seedream.connection import ConnectionSettings
from airflow_provider_seedream.exceptions import (
    SeedreamAuthError,
    SeedreamDownloadError,
    SeedreamError,
    SeedreamRateLimitError,
    SeedreamResponseError,
    SeedreamValidationError,
    api_error,
)
from airflow_provider_seedream.get_provider_info import (
    CONNECTION_EXTRA_FIELDS,
    DEFAULT_BASE_URL,
    DEFAULT_CONN_ID,
    get_provider_info,
)
from airflow_provider_seedream.links import DEFAULT_MAX_IMAGE_BYTES, DEFAULT_NOT_READY_STATUSES, link_failure
from airflow_provider_seedream.request import (
    GenerateRequest,
    Reference,
    build_request,
    check_data_uri,
    inline_image,
)
from airflow_provider_seedream.response import image_urls
from airflow_provider_seedream.specs import DEFAULT_MODEL, MODEL_SPECS, REFERENCE_READ_LIMIT

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.providers.common.compat.sdk import Connection, ObjectStoragePath

SNIFF_BYTES = 64 * 1024
"""Enough of an image's start to know its format and, for all but odd JPEGs, its pixel size."""
ERROR_BODY_SECONDS = 30.0
"""Longest wait for an error body: it is only quoted, so a slow one is cut rather than awaited."""


@dataclass(frozen=True)
class StoredImage:
    """One downloaded image: a manifest entry."""

    source: str
    """The link without its signing parameters: which image it is, with no credential in it."""
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
class PreparedGeneration:
    """A validated request and the body to send: everything that can fail before sending has."""

    request: GenerateRequest
    body: dict[str, Any]


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
    ``max_backoff_seconds``, ``rate_limit_wait_seconds``, ``retry_possibly_billed`` (formerly
    ``retry_on_read_timeout``).

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
    def _secrets(self) -> tuple[str, ...]:
        """What a server may echo back and must never be shown: the API key."""
        return (self._connection.password,) if self._connection.password else ()

    @cached_property
    def base_url(self) -> str:
        return base_url_from_connection(self._connection.host, self._connection.port)

    @cached_property
    def settings(self) -> ConnectionSettings:
        return ConnectionSettings.from_extra(self._connection.extra_dejson, self.seedream_conn_id)

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
        retry_possibly_billed: bool | None = None,
        retry_on_read_timeout: bool | None = None,
    ) -> list[str]:
        """
        Generate images and return their URLs, in the order the API gave them.

        Every documented rule is checked, and local or object-storage reference images are read,
        checked by content and inlined as data URIs, before anything is sent.

        :param timeout: read timeout in seconds for this call (default: the connection's).
        :param retry_possibly_billed: send the request again after a failure that came after it left
            this machine (read timeout, broken answer, 500/502/504). The API may already be generating,
            so this can bill twice (default: the connection's, off).
        :param retry_on_read_timeout: the former name of ``retry_possibly_billed``.
        :raises SeedreamValidationError: the request breaks a documented rule; nothing was sent.
        :raises SeedreamPossiblyBilledError: the request was sent and no usable answer came back.
        :raises SeedreamAPIError: the API answered with an error, after any retries.
        :raises SeedreamConnectionError: the API could not be reached; nothing was sent.
        """
        prepared = self.prepare_generation(
            prompt,
            model=model,
            size=size,
            images=images,
            sequential_image_generation=sequential_image_generation,
            max_images=max_images,
            watermark=watermark,
            optimize_prompt_mode=optimize_prompt_mode,
        )
        opt_in = retry_possibly_billed if retry_possibly_billed is not None else retry_on_read_timeout
        return self.send_generation(prepared, timeout=timeout, retry_possibly_billed=opt_in)

    def prepare_generation(self, prompt: str, **options: Any) -> PreparedGeneration:
        """Validate a request and read its reference images: everything :meth:`generate` does before
        sending. ``options`` are :meth:`generate`'s generation parameters."""
        request = build_request(prompt=prompt, **options)
        return PreparedGeneration(request, request.to_payload(self._resolve_references(request)))

    def send_generation(
        self,
        prepared: PreparedGeneration,
        *,
        timeout: float | None = None,
        retry_possibly_billed: bool | None = None,
    ) -> list[str]:
        """Send a prepared generation and return its image URLs; :meth:`generate` describes the
        parameters and errors. Each link's signature is registered with Airflow's secret masker."""
        from tenacity import Retrying, retry_if_exception

        settings = self.settings
        opt_in = settings.retry_possibly_billed if retry_possibly_billed is None else retry_possibly_billed
        timeouts = (settings.connect_timeout, timeout if timeout is not None else settings.read_timeout)
        url = f"{self.base_url}{prepared.request.spec.path}"
        started = time.monotonic()
        budget = _RetryBudget(settings.max_retries, settings.rate_limit_wait_seconds)
        # tenacity runs the loop; which failures may be sent again is hook_may_resend's decision alone.
        retrying = Retrying(
            retry=retry_if_exception(
                lambda err: (
                    isinstance(err, SeedreamError) and hook_may_resend(err, retry_possibly_billed=opt_in)
                )
            ),
            stop=lambda state: budget.spent(state.outcome.exception()),  # type: ignore[union-attr]
            wait=lambda state: budget.wait(
                state.outcome.exception(),  # type: ignore[union-attr]
                self._backoff(state.attempt_number, state.outcome.exception()),  # type: ignore[union-attr]
            ),
            before_sleep=lambda state: self.log.warning(
                "Seedream request failed (%s); %s in %.1f s",
                state.outcome.exception(),  # type: ignore[union-attr]
                budget.describe(state.outcome.exception()),  # type: ignore[union-attr]
                state.upcoming_sleep,
            ),
            sleep=time.sleep,
            reraise=True,
        )
        urls: list[str] = retrying(self._post_generation, url, prepared.body, timeouts)
        mask_signatures(urls)
        request = prepared.request
        self.log.info(
            "Seedream %s: size=%s, %d reference(s), %d image(s) in %.1f s",
            request.model,
            request.normalized_size or "default",
            len(request.images or ()),
            len(urls),
            time.monotonic() - started,
        )
        return urls

    def _post_generation(self, url: str, body: dict[str, Any], timeouts: tuple[float, float]) -> list[str]:
        """One POST. Redirects are never followed: a 307 would re-send the references elsewhere, and a
        302 would turn into a GET whose answer is no generation."""
        started = time.monotonic()
        try:
            response = self._session.post(
                url, json=body, timeout=timeouts, stream=True, allow_redirects=False
            )
        except requests.RequestException as err:
            raise transport_error(err, url, timeouts) from None
        with response:
            status = response.status_code
            if 200 <= status < 300:
                try:
                    content = read_body(
                        response,
                        limit=GENERATION_RESPONSE_LIMIT,
                        deadline=time.monotonic() + timeouts[1],
                        read_timeout=timeouts[1],
                    )
                except BodyError as err:
                    raise SeedreamResponseError(status, "INCOMPLETE_BODY", str(err)) from None
                return image_urls(status, content, self._secrets)
            error_body = read_error_body(response, min(timeouts[1], ERROR_BODY_SECONDS))
            raise api_error(
                status,
                redact_text(error_body.decode("utf-8", errors="replace"), self._secrets).encode(),
                retry_after(response),
                elapsed=time.monotonic() - started,
                location=redact_url(response.headers.get("Location", "")) or None,
            )

    def _backoff(self, attempt: int, error: BaseException | None) -> float:
        settings = self.settings
        if isinstance(error, SeedreamRateLimitError) and error.retry_after is not None:
            return min(error.retry_after, settings.max_backoff_seconds)
        delay = min(settings.backoff_seconds * 2 ** max(attempt - 1, 0), settings.max_backoff_seconds)
        # Half fixed, half random: waits still grow, and parallel mapped tasks do not retry in lockstep.
        return float(delay / 2 + random.uniform(0, delay / 2))

    def download(self, url: str, path: str | os.PathLike[str] | ObjectStoragePath) -> str:
        """
        Stream the image at ``url`` into ``path`` and return where it was stored.

        ``path`` is a local path, an object-storage URI (``s3://...``, ``file://...``) or an
        ``ObjectStoragePath``; ``{ext}`` in its file name is replaced by the extension of the content. The
        body must be an image by content. It is written under a temporary name beside the target and
        renamed when complete, so a failed download never leaves anything at ``path``; a symbolic link
        at ``path`` is replaced, not written through.

        :raises SeedreamLinkNotReadyError: the link answers 404: not available yet.
        :raises SeedreamLinkExpiredError: the link has expired (403 "Request has expired", 410).
        :raises SeedreamDownloadError: any other failure, including a body that is not an image or is cut off.
        """
        return self.download_image(url, path).location

    def download_image(
        self,
        url: str,
        path: str | os.PathLike[str] | ObjectStoragePath,
        *,
        destination: str | os.PathLike[str] | ObjectStoragePath | None = None,
        max_bytes: int | None = DEFAULT_MAX_IMAGE_BYTES,
        not_ready_statuses: Collection[int] = DEFAULT_NOT_READY_STATUSES,
        timeout: float | None = None,
    ) -> StoredImage:
        """:meth:`download`, returning the stored image's details (size, sha256, pixel size...).

        :param destination: when given, ``path`` is a name below it, and nothing is written outside
            it: no symbolic link below a local destination is followed.
        :param max_bytes: refuse bodies larger than this (default 80 MiB, above any 4K image);
            ``None`` for no limit.
        :param not_ready_statuses: statuses meaning "not available yet" (default 404).
        :param timeout: seconds the whole download may take (default: the connection's read timeout),
            however slowly the server sends.
        """
        where = redact_url(url)
        mask_signatures([url])
        settings = self.settings
        budget = timeout if timeout is not None else settings.read_timeout
        deadline = time.monotonic() + budget
        read_timeout = min(settings.read_timeout, budget)
        try:
            response = self._download_session.get(
                url, stream=True, timeout=(settings.connect_timeout, read_timeout)
            )
        except requests.RequestException as err:
            raise SeedreamDownloadError(f"Could not fetch {where}: {describe_cause(err)}") from None
        with response:
            if response.status_code != 200:
                body = read_error_body(response, min(read_timeout, ERROR_BODY_SECONDS))
                raise link_failure(response.status_code, body, url, not_ready_statuses)
            body_chunks = _ImageBody(response, where, max_bytes, deadline, read_timeout)
            image_format = sniff_format(body_chunks.head)
            if image_format is None:
                raise SeedreamDownloadError(
                    f"{where} did not return an image: Content-Type "
                    f"{response.headers.get('Content-Type', 'none')}, body starts "
                    f"{redact_text(body_chunks.head[:48].decode('latin-1'))!r}"
                )
            # The pixel size, when the header fits in the first bytes (a JPEG's may not).
            info = read_image_info(body_chunks.head)
            full = path if destination is None else join(destination, str(path))
            target, location = storage_target(full, EXTENSIONS[image_format])
            root = None if destination is None else as_storage_path(destination)
            write_atomically(target, body_chunks, root)
        from airflow.providers.common.compat.lineage.hook import get_hook_lineage_collector

        get_hook_lineage_collector().add_output_asset(context=self, uri=str(target))
        self.log.info("Stored %s (%d bytes) at %s", where, body_chunks.size, location)
        return StoredImage(
            source=link_identity(url),
            location=location,
            sha256=body_chunks.sha256.hexdigest(),
            bytes=body_chunks.size,
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
        reason) when it has not. No retries are made, and redirects are not followed.
        """
        try:
            settings = self.settings
            read_timeout = min(settings.read_timeout, ERROR_BODY_SECONDS)
            response = self._session.post(
                f"{self.base_url}{MODEL_SPECS[DEFAULT_MODEL].path}",
                json={},
                timeout=(settings.connect_timeout, read_timeout),
                stream=True,
                allow_redirects=False,
            )
        except requests.RequestException as err:
            return False, str(transport_error(err, self.base_url, (settings.connect_timeout, read_timeout)))
        except SeedreamError as err:
            return False, str(err)
        with response:
            body = redact_text(
                read_error_body(response, read_timeout).decode("utf-8", "replace"), self._secrets
            )
        location = redact_url(response.headers.get("Location", "")) or None
        error = api_error(response.status_code, body.encode(), location=location)
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
                limit = spec.reference_limits.max_bytes or REFERENCE_READ_LIMIT
                data = _read_reference(reference, label, limit)
                if len(data) > limit:
                    raise SeedreamValidationError(
                        f"{label}: over the {limit:,}-byte limit for {spec.name} reference images"
                    )
                resolved.append(inline_image(data, spec, label))
        return resolved


class _RetryBudget:
    """Two budgets for sending again. Rate limits (429) are waited out for up to
    ``rate_limit_seconds`` in all, however many it takes: the API says nothing was generated and when
    to come back, so pacing by Retry-After costs nothing but time. Other safe failures (a prompt 503,
    a failure to connect) get ``max_retries`` retries."""

    def __init__(self, max_retries: int, rate_limit_seconds: float) -> None:
        self.max_retries, self.rate_limit_seconds = max_retries, rate_limit_seconds
        self.failures = 0
        self.rate_limited_seconds = 0.0

    def spent(self, error: BaseException | None) -> bool:
        """Called once per failed try (tenacity's ``stop``)."""
        if isinstance(error, SeedreamRateLimitError):
            return self.rate_limited_seconds >= self.rate_limit_seconds
        self.failures += 1
        return self.failures > self.max_retries

    def wait(self, error: BaseException | None, backoff: float) -> float:
        """The wait before the next try; rate-limit waits are taken from their budget."""
        if isinstance(error, SeedreamRateLimitError):
            # At least a second between tries, whatever Retry-After says: never a busy loop.
            backoff = min(max(backoff, 1.0), max(self.rate_limit_seconds - self.rate_limited_seconds, 0.0))
            self.rate_limited_seconds += max(backoff, 1.0)
        return backoff

    def describe(self, error: BaseException | None) -> str:
        if isinstance(error, SeedreamRateLimitError):
            return f"rate limited, waited {self.rate_limited_seconds:.0f} of {self.rate_limit_seconds:.0f} s"
        return f"retry {self.failures} of {self.max_retries}"


def _read_reference(reference: Reference, label: str, limit: int) -> bytes:
    """A reference file's bytes, at most ``limit`` + 1 (one byte over is enough to refuse). Only a
    regular file is read: a FIFO or a device could block or never end."""
    path = as_storage_path(reference.value)
    try:
        if is_local(path):
            # O_NONBLOCK: opening a FIFO must not wait for a writer; the check below refuses it.
            fd = os.open(path.path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            with os.fdopen(fd, "rb") as handle:
                mode = os.fstat(fd).st_mode
                if not stat.S_ISREG(mode):
                    kind = (
                        "a directory"
                        if stat.S_ISDIR(mode)
                        else "not a regular file (a FIFO, socket or device)"
                    )
                    raise SeedreamValidationError(f"{label}: is {kind}, not an image file")
                return handle.read(limit + 1)
        if path.is_dir():
            raise SeedreamValidationError(f"{label}: is a directory, not an image file")
        with path.open("rb") as handle:
            return bytes(handle.read(limit + 1))
    except FileNotFoundError:
        raise SeedreamValidationError(f"{label}: no such file") from None
    except IsADirectoryError:
        raise SeedreamValidationError(f"{label}: is a directory, not an image file") from None
    except OSError as err:
        raise SeedreamValidationError(
            f"{label}: cannot be read ({err.strerror or type(err).__name__})"
        ) from None


class _ImageBody:
    """A response body as chunks: counted and hashed on the way, refused when it breaks the limits
    or is cut off. ``head`` is its first bytes, read ahead to tell the format."""

    def __init__(
        self,
        response: requests.Response,
        where: str,
        max_bytes: int | None,
        deadline: float,
        read_timeout: float,
    ) -> None:
        self._where, self._max_bytes = where, max_bytes
        declared = _declared_length(response)
        if max_bytes is not None and declared is not None and declared > max_bytes:
            raise SeedreamDownloadError(
                f"{where} is {declared:,} bytes, over max_bytes={max_bytes:,}", retryable=False
            )
        self._chunks = iter_body(response, limit=max_bytes, deadline=deadline, read_timeout=read_timeout)
        self.size = 0
        self.sha256 = hashlib.sha256()
        self._head_chunks: list[bytes] = []
        for chunk in self._checked():
            self._head_chunks.append(chunk)
            if self.size >= SNIFF_BYTES:
                break
        self.head = b"".join(self._head_chunks)

    def __iter__(self) -> Iterator[bytes]:
        yield from self._head_chunks
        yield from self._checked()

    def _checked(self) -> Iterator[bytes]:
        try:
            for chunk in self._chunks:
                self.size += len(chunk)
                self.sha256.update(chunk)
                yield chunk
        except BodyError as err:
            message = (
                f"{self._where} is over max_bytes={self._max_bytes:,}"
                if err.too_large
                else f"The transfer of {self._where} failed: {err}"
            )
            raise SeedreamDownloadError(message, retryable=not err.too_large) from None


def _declared_length(response: requests.Response) -> int | None:
    """Content-Length, when it counts the bytes we will see (no content encoding)."""
    if response.headers.get("Content-Encoding", "identity") != "identity":
        return None
    try:
        return int(response.headers["Content-Length"])
    except (KeyError, ValueError):
        return None
