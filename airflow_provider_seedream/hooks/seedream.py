"""The Seedream hook: the public face of the provider's I/O with the Novita API and image storage.

It reads the connection, and delegates by role: request validation to ``request``, transport and
retry policy to ``_transport``, the answer to ``response``, downloads to ``_download``, storage to
``_storage``.
"""

from __future__ import annotations

import os
import threading
import time
from functools import cached_property
from typing import TYPE_CHECKING, Any

import requests
from airflow.providers.common.compat.sdk import BaseHook

from airflow_provider_seedream._download import ERROR_BODY_SECONDS, StoredImage, stream_image
from airflow_provider_seedream._redact import mask_signatures, redact_text, redact_url
from airflow_provider_seedream._storage import read_reference_file
from airflow_provider_seedream._transport import (
    GENERATION_RESPONSE_LIMIT,
    BodyError,
    RetryBudget,
    read_body,
    read_error_body,
    retry_after,
    transport_error,
)
from airflow_provider_seedream.connection import (
    DEFAULT_CONN_ID,
    UI_FIELD_BEHAVIOUR,
    ConnectionSettings,
    base_url_from_connection,
)
from airflow_provider_seedream.exceptions import (
    SeedreamAuthError,
    SeedreamError,
    SeedreamResponseError,
    SeedreamValidationError,
    api_error,
    may_retry,
)
from airflow_provider_seedream.links import DEFAULT_MAX_IMAGE_BYTES, DEFAULT_NOT_READY_STATUSES
from airflow_provider_seedream.request import (
    GENERATION_PARAMETERS,
    GenerateRequest,
    build_request,
    check_data_uri,
    inline_image,
)
from airflow_provider_seedream.response import image_urls
from airflow_provider_seedream.specs import DEFAULT_MODEL, MODEL_SPECS, REFERENCE_READ_LIMIT

if TYPE_CHECKING:
    from collections.abc import Collection, Sequence

    from airflow.providers.common.compat.sdk import Connection, ObjectStoragePath

__all__ = ["PreparedGeneration", "SeedreamHook", "StoredImage"]


class PreparedGeneration:
    """A validated request and the body to send: everything that can fail before sending has."""

    def __init__(self, request: GenerateRequest, body: dict[str, Any]) -> None:
        self.request, self.body = request, body


class _ThreadSessions(threading.local):
    """One pair of HTTP sessions per thread: a ``requests.Session`` is not safe to share between
    threads, and one hook serves several (``parallel_downloads``, a user's thread pool)."""

    def __init__(self, api_key: str | None) -> None:
        self.api = requests.Session()
        """The API's: JSON, with the key."""
        self.api.headers["Content-Type"] = "application/json"
        if api_key:
            self.api.headers["Authorization"] = f"Bearer {api_key}"
        self.links = requests.Session()
        """Image links are presigned: they must never receive the API key."""


class SeedreamHook(BaseHook):
    """
    Generate images with Seedream through Novita AI.

    The API key is the connection's password. The host is the API base URL: empty means
    ``https://api.novita.ai``; ``http://127.0.0.1:8080`` is used as given; a bare host name means https.
    Extras (all optional): ``connect_timeout``, ``read_timeout``, ``max_retries``, ``backoff_seconds``,
    ``max_backoff_seconds``, ``rate_limit_wait_seconds``, ``retry_possibly_billed``.

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
        return {key.replace("-", "_"): value for key, value in UI_FIELD_BEHAVIOUR.items()}

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """The extras' form fields, for Airflow versions that build the form from the hook (before 3.2)."""
        from flask_appbuilder.fieldwidgets import BS3TextFieldWidget
        from flask_babel import lazy_gettext
        from wtforms import BooleanField, IntegerField, StringField
        from wtforms.validators import Optional

        widgets: dict[str, Any] = {}
        for name, field in ConnectionSettings.form_fields().items():
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

    def possibly_billed_opt_in(self, retry_possibly_billed: bool | None) -> bool:
        """Whether a generation may be sent again after a failure that may have been billed: the task's
        or caller's ``retry_possibly_billed`` when set, else the connection's (off by default)."""
        if retry_possibly_billed is None:
            return self.settings.retry_possibly_billed
        return retry_possibly_billed

    def get_conn(self) -> requests.Session:
        """The calling thread's HTTP session for the API, authenticated with the connection's key."""
        return self._sessions.api

    @cached_property
    def _sessions(self) -> _ThreadSessions:
        return _ThreadSessions(self._connection.password)

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
        read_timeout: float | None = None,
        retry_possibly_billed: bool | None = None,
    ) -> list[str]:
        """
        Generate images and return their URLs, in the order the API gave them.

        Every documented rule is checked, and local or object-storage reference images are read,
        checked by content and inlined as data URIs, before anything is sent. The generation
        parameters are those of :class:`~airflow_provider_seedream.request.GenerateRequest`.

        :param read_timeout: seconds to wait for the answer (default: the connection's ``read_timeout``).
        :param retry_possibly_billed: send the request again after a failure that came after it left
            this machine (read timeout, broken answer, 500/502/504). The API may already be generating,
            so this can bill twice (default: the connection's, off).
        :raises SeedreamValidationError: the request breaks a documented rule; nothing was sent.
        :raises SeedreamPossiblyBilledError: the request was sent and no usable answer came back.
        :raises SeedreamAPIError: the API answered with an error, after any retries.
        :raises SeedreamConnectionError: the API could not be reached; nothing was sent.
        """
        given = locals()
        prepared = self.prepare_generation(**{name: given[name] for name in GENERATION_PARAMETERS})
        return self.send_generation(
            prepared, read_timeout=read_timeout, retry_possibly_billed=retry_possibly_billed
        )

    def prepare_generation(self, **parameters: Any) -> PreparedGeneration:
        """Validate a request and read its reference images: everything :meth:`generate` does before
        sending. ``parameters`` are the generation parameters (``GENERATION_PARAMETERS``)."""
        request = build_request(**parameters)
        return PreparedGeneration(request, request.to_payload(self._resolve_references(request)))

    def send_generation(
        self,
        prepared: PreparedGeneration,
        *,
        read_timeout: float | None = None,
        retry_possibly_billed: bool | None = None,
    ) -> list[str]:
        """Send a prepared generation and return its image URLs; :meth:`generate` describes the
        parameters and errors. Each link's signature is registered with Airflow's secret masker."""
        settings = self.settings
        opt_in = self.possibly_billed_opt_in(retry_possibly_billed)
        read = read_timeout if read_timeout is not None else settings.read_timeout
        timeouts = (settings.connect_timeout, read)
        request = prepared.request
        url = f"{self.base_url}{request.spec.path}"
        started = time.monotonic()
        budget = RetryBudget(settings)
        attempt = 0
        while True:  # see _transport.RetryBudget for why a loop rather than tenacity
            attempt += 1
            try:
                urls = self._post_generation(url, prepared.body, timeouts, request.spec.max_total_images)
                break
            except SeedreamError as err:
                if not may_retry(err, retry_possibly_billed=opt_in) or budget.spent(err):
                    raise
                wait = budget.wait(attempt, err)
                self.log.warning(
                    "Seedream request failed (%s); %s in %.1f s", err, budget.describe(err), wait
                )
                time.sleep(wait)
        mask_signatures(urls)
        self.log.info(
            "Seedream %s: size=%s, %d reference(s), %d image(s) in %.1f s",
            request.model,
            request.normalized_size or "default",
            len(request.images or ()),
            len(urls),
            time.monotonic() - started,
        )
        return urls

    def _post_generation(
        self, url: str, body: dict[str, Any], timeouts: tuple[float, float], max_links: int
    ) -> list[str]:
        """One POST. Redirects are never followed: a 307 would re-send the references elsewhere, and a
        302 would turn into a GET whose answer is no generation."""
        started = time.monotonic()
        try:
            response = self._sessions.api.post(
                url, json=body, timeout=timeouts, stream=True, allow_redirects=False
            )
        except requests.RequestException as err:
            raise transport_error(err, url, timeouts) from None
        with response:  # a body read to its end has already gone back to the pool for reuse
            status = response.status_code
            if 200 <= status < 300:
                try:
                    content = read_body(
                        response, limit=GENERATION_RESPONSE_LIMIT, deadline=time.monotonic() + timeouts[1]
                    )
                except BodyError as err:
                    raise SeedreamResponseError(status, "INCOMPLETE_BODY", str(err)) from None
                return image_urls(status, content, self._secrets, max_links=max_links)
            error_body = read_error_body(response, min(timeouts[1], ERROR_BODY_SECONDS))
            raise api_error(
                status,
                redact_text(error_body.decode("utf-8", errors="replace"), self._secrets).encode(),
                retry_after(response),
                elapsed=time.monotonic() - started,
                location=redact_url(response.headers.get("Location", "")) or None,
            )

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
        :param timeout: seconds the whole download may take, however slowly the server sends
            (default: the connection's ``read_timeout``).
        """
        mask_signatures([url])
        settings = self.settings
        image, target = stream_image(
            self._sessions.links,
            url,
            path,
            destination=destination,
            max_bytes=max_bytes,
            not_ready_statuses=not_ready_statuses,
            timeouts=(settings.connect_timeout, settings.read_timeout),
            budget=timeout if timeout is not None else settings.read_timeout,
        )
        from airflow.providers.common.compat.lineage.hook import get_hook_lineage_collector

        get_hook_lineage_collector().add_output_asset(context=self, uri=str(target))
        self.log.info("Stored %s (%d bytes) at %s", redact_url(url), image.bytes, image.location)
        return image

    def test_connection(self) -> tuple[bool, str]:
        """
        Check the base URL and the key, for every model, without generating (or billing) anything.

        It posts an empty JSON object to each model's endpoint. Without a prompt the API cannot
        generate, so an endpoint answers 400 once it has accepted the key, and 401/403 (or a
        key-related reason) when it has not; an account can be refused some models only (403
        ``API_NOT_ALLOWED``). The test passes when the key is accepted for at least one model, and its
        message names every model the key was refused for. No retries are made, and redirects are not
        followed.
        """
        accepted, refused = [], {}
        for spec in MODEL_SPECS.values():
            try:
                problem = self._probe(spec.path)
            except SeedreamError as err:  # no answer, or bad extras: every endpoint would say the same
                return False, str(err)
            if problem is None:
                accepted.append(spec.name)
            else:
                refused[spec.name] = problem
        refusals = "; ".join(f"{name}: {problem}" for name, problem in refused.items())
        if not accepted:
            reasons = set(refused.values())
            return False, reasons.pop() if len(reasons) == 1 else refusals
        message = f"Connected to {self.base_url}; the API key was accepted for {', '.join(accepted)}"
        return True, f"{message}, and refused for {refusals}" if refused else f"{message}."

    def _probe(self, path: str) -> str | None:
        """Post ``{}`` to one endpoint: ``None`` when it accepted the key, else what it answered."""
        settings = self.settings
        timeouts = (settings.connect_timeout, min(settings.read_timeout, ERROR_BODY_SECONDS))
        try:
            response = self._sessions.api.post(
                f"{self.base_url}{path}", json={}, timeout=timeouts, stream=True, allow_redirects=False
            )
        except requests.RequestException as err:
            raise transport_error(err, self.base_url, timeouts) from None
        with response:
            body = redact_text(
                read_error_body(response, timeouts[1]).decode("utf-8", "replace"), self._secrets
            )
        location = redact_url(response.headers.get("Location", "")) or None
        error = api_error(response.status_code, body.encode(), location=location)
        if response.ok or (response.status_code == 400 and not isinstance(error, SeedreamAuthError)):
            return None
        return str(error)

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
                data = read_reference_file(reference.value, label, limit)
                if len(data) > limit:
                    raise SeedreamValidationError(
                        f"{label}: over the {limit:,}-byte limit for {spec.name} reference images"
                    )
                resolved.append(inline_image(data, spec, label))
        return resolved
