"""The Seedream hook: the public face of the provider's I/O with the Novita API and image storage. It
reads the connection and delegates by role: the request's rules to ``contract``, HTTP exchanges and
their bounds to ``_internal.transport``, downloads to ``_internal.download``, files to
``_internal.references`` and ``_internal.storage``."""

from __future__ import annotations

import os
import time
from functools import cached_property
from typing import TYPE_CHECKING, Any

import requests
from airflow.providers.common.compat.sdk import BaseHook

from airflow_provider_seedream._internal.cache.generations import (
    CachedGeneration,
    GenerationCache,
    copy_cached_image,
)
from airflow_provider_seedream._internal.download import stream_image
from airflow_provider_seedream._internal.references import resolve_references
from airflow_provider_seedream._internal.transport import (
    ERROR_BODY_SECONDS,
    RetryBudget,
    ThreadSessions,
    post_generation,
    probe_endpoint,
)
from airflow_provider_seedream.contract.connection import (
    DEFAULT_CONN_ID,
    UI_FIELD_BEHAVIOUR,
    ConnectionSettings,
    base_url_from_connection,
)
from airflow_provider_seedream.contract.exceptions import SeedreamError, may_retry
from airflow_provider_seedream.contract.links import DEFAULT_MAX_IMAGE_BYTES, DEFAULT_NOT_READY_STATUSES
from airflow_provider_seedream.contract.records import StoredImage
from airflow_provider_seedream.contract.redact import Secrets, mask_signatures, redact_url
from airflow_provider_seedream.contract.request import GenerationOptions, PreparedGeneration, build_request
from airflow_provider_seedream.contract.specs import MODEL_SPECS
from airflow_provider_seedream.contract.usage import Usage
from airflow_provider_seedream.version_compat import connection_form_widgets

if TYPE_CHECKING:
    from collections.abc import Collection

    from airflow.providers.common.compat.sdk import Connection, ObjectStoragePath
    from typing_extensions import Unpack

__all__ = ["CachedGeneration", "PreparedGeneration", "SeedreamHook", "StoredImage"]


class SeedreamHook(BaseHook):
    """
    Generate images with Seedream through Novita AI.

    The API key is the connection's password. The host is the API base URL: empty means
    ``https://api.novita.ai``; ``http://127.0.0.1:8080`` is used as given; a bare host name means https.
    Extras (all optional) are ``contract.connection.ConnectionSettings``' fields.

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
        return connection_form_widgets(ConnectionSettings.form_fields())

    @cached_property
    def _connection(self) -> Connection:
        connection = self.get_connection(self.seedream_conn_id)
        if connection.password:
            from airflow.providers.common.compat.sdk import mask_secret

            mask_secret(connection.password)
        return connection

    @cached_property
    def _secrets(self) -> Secrets:
        """What a server may echo back and must never be shown: the API key."""
        return Secrets(self._connection.password or "")

    @cached_property
    def base_url(self) -> str:
        return base_url_from_connection(self._connection.host, self._connection.port)

    @cached_property
    def settings(self) -> ConnectionSettings:
        return ConnectionSettings.from_extra(self._connection.extra_dejson, self.seedream_conn_id)

    def possibly_billed_opt_in(self, retry_possibly_billed: bool | None) -> bool:
        """``retry_possibly_billed`` as given by a task or caller, else the connection's (default off)."""
        if retry_possibly_billed is None:
            return self.settings.retry_possibly_billed
        return retry_possibly_billed

    def usage_for(self, model: str) -> Usage:
        """An empty spend record for ``model``, priced by the connection's ``price_per_image`` or the
        model's list price."""
        return Usage.for_model(model, self.settings.price_per_image, self.seedream_conn_id)

    def get_conn(self) -> requests.Session:
        """The calling thread's HTTP session for the API, authenticated with the connection's key."""
        return self._sessions.api

    @cached_property
    def _sessions(self) -> ThreadSessions:
        return ThreadSessions(self._connection.password)

    def generate(
        self,
        prompt: str,
        *,
        read_timeout: float | None = None,
        retry_possibly_billed: bool | None = None,
        cache: str | os.PathLike[str] | ObjectStoragePath | None = None,
        cache_key: Any = None,
        **options: Unpack[GenerationOptions],
    ) -> list[str]:
        """
        Generate images and return their URLs, in the order the API gave them; with ``cache``, return
        the images' locations in the cache instead, reusing an identical earlier generation.

        Every documented rule is checked, and local or object-storage reference images are read,
        checked by content and inlined as data URIs, before anything is sent. ``options`` are the
        other generation parameters (``model``, ``size``, ``images``...), with the meanings and
        defaults of :class:`~airflow_provider_seedream.contract.request.GenerateRequest`; an unknown
        one is refused by name.

        :param read_timeout: seconds to wait for the answer (default: the connection's ``read_timeout``).
        :param retry_possibly_billed: send the request again after a failure that came after it left
            this machine (read timeout, broken answer, 500/502/504). The API may already be generating,
            so this can bill twice (default: the connection's, off).
        :param cache: a folder, storage URI (``s3://bucket/prefix``) or ``ObjectStoragePath``. When it
            holds a complete, verified generation of an identical request, nothing is sent and its
            images' locations are returned; otherwise the images are generated, stored there, and their
            locations returned. Locations, unlike links, do not expire.
        :param cache_key: with ``cache``: stands for the prompt in the request's fingerprint, for a
            prompt that is written anew each time (by an LLM): what it was made from (a catalog row, the
            brief, the LLM's model), as a str or JSON value. Everything else in the request still counts.
        :raises SeedreamValidationError: the request breaks a documented rule; nothing was sent.
        :raises SeedreamPossiblyBilledError: the request was sent and no usable answer came back.
        :raises SeedreamCacheStoreError: generated and paid for, then storing into ``cache`` failed; the
            error's ``urls`` are the paid links.
        :raises SeedreamAPIError: the API answered with an error, after any retries.
        :raises SeedreamConnectionError: the API could not be reached; nothing was sent.
        """
        prepared = self.prepare_generation(prompt=prompt, **options)
        generation_cache = self.generation_cache(cache) if cache is not None else None
        if generation_cache is not None and (hit := generation_cache.find(prepared, cache_key)) is not None:
            return hit.locations
        usage = self.usage_for(prepared.request.model)  # the cache's record keeps what it cost
        urls = self.send_generation(
            prepared, usage=usage, read_timeout=read_timeout, retry_possibly_billed=retry_possibly_billed
        )
        if generation_cache is None:
            return urls
        return generation_cache.store(prepared, urls, cache_key=cache_key, usage=usage)

    def prepare_generation(self, **parameters: Any) -> PreparedGeneration:
        """Validate a request and read its reference images: everything :meth:`generate` does before
        sending. ``parameters`` are the generation parameters (``GENERATION_PARAMETERS``)."""
        request = build_request(**parameters)
        return PreparedGeneration(request, request.to_payload(resolve_references(request)))

    def send_generation(
        self,
        prepared: PreparedGeneration,
        *,
        usage: Usage | None = None,
        read_timeout: float | None = None,
        retry_possibly_billed: bool | None = None,
    ) -> list[str]:
        """Send a prepared generation and return its image URLs; :meth:`generate` describes the
        parameters and errors. Each link's signature is registered with Airflow's secret masker.
        ``usage`` (see :meth:`usage_for`) counts every request sent and what it was billed for."""
        settings = self.settings
        opt_in = self.possibly_billed_opt_in(retry_possibly_billed)
        read = read_timeout if read_timeout is not None else settings.read_timeout
        timeouts = (settings.connect_timeout, read)
        request = prepared.request
        url = f"{self.base_url}{request.spec.path}"
        started = time.monotonic()
        budget = RetryBudget(settings)
        attempt = 0
        while True:  # a plain loop, not tenacity: see RetryBudget
            attempt += 1
            try:
                urls = post_generation(
                    self._sessions.api,
                    url,
                    prepared.body,
                    timeouts,
                    max_links=request.spec.max_total_images,
                    secrets=self._secrets,
                )
                break
            except SeedreamError as err:
                if usage is not None:
                    usage.count_failure(err, request.most_images)
                if not may_retry(err, retry_possibly_billed=opt_in) or budget.spent(err):
                    raise
                wait = budget.wait(attempt, err)
                self.log.warning(
                    "Seedream request failed (%s); %s in %.1f s", err, budget.describe(err), wait
                )
                time.sleep(wait)
        if usage is not None:
            usage.count_answer(len(urls))
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

    def generation_cache(self, root: str | os.PathLike[str] | ObjectStoragePath) -> GenerationCache:
        """The generation cache at ``root`` for this connection's API: what :meth:`generate` finds
        earlier generations in and stores new ones into (the operators use it the same way).

        :raises SeedreamValidationError: ``root`` is empty or no location."""
        return GenerationCache(root, base_url=self.base_url, download=self.download_image, log=self.log)

    def copy_stored_image(
        self,
        location: str,
        path: str,
        *,
        destination: str | os.PathLike[str] | ObjectStoragePath,
        cache: str | os.PathLike[str] | ObjectStoragePath | None = None,
        max_bytes: int | None = DEFAULT_MAX_IMAGE_BYTES,
    ) -> StoredImage:
        """Copy an image a generation cache holds (a location :meth:`generate` returned with ``cache``)
        to ``path`` below ``destination``, as :meth:`download_image` stores a link's: checked against the
        cache's record of it (size, sha256), server-side between objects of one S3 connection.

        :param cache: the cache root the location must lie in. Give it whenever the location comes from
            someone else (an asset event, which REST users can create too); without it, the location
            must lie in the layout of some cache, below the root that layout gives it.
        :raises SeedreamDownloadError: the location is no cached image (below ``cache``), or it no
            longer checks."""
        image, target = copy_cached_image(
            location, path, destination=destination, cache=cache, max_bytes=max_bytes, log=self.log
        )
        from airflow.providers.common.compat.lineage.hook import get_hook_lineage_collector

        get_hook_lineage_collector().add_output_asset(context=self, uri=str(target))
        self.log.info("Copied %s (%d bytes) to %s", location, image.bytes, image.location)
        return image

    def download(self, url: str, path: str | os.PathLike[str] | ObjectStoragePath) -> str:
        """
        Stream the image at ``url`` into ``path`` and return where it was stored.

        ``path`` is a local path, an object-storage URI (``s3://...``, ``file://...``) or an
        ``ObjectStoragePath``; ``{ext}`` in its file name becomes the content's extension. The body must
        be an image by content, and appears at ``path`` only once whole (``_internal.storage``).

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

    def _probe_timeouts(self) -> tuple[float, float]:
        settings = self.settings
        return settings.connect_timeout, min(settings.read_timeout, ERROR_BODY_SECONDS)

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
                problem = probe_endpoint(
                    self._sessions.api, self.base_url, spec.path, self._probe_timeouts(), self._secrets
                )
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
