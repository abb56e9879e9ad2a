"""The Seedream hook: the connection, its sessions, and the calls to the Novita API and image storage,
each delegated by role (``contract`` for the rules, ``_internal`` for the work: ``sending``,
``download``, ``probe``, ``cache``)."""

from __future__ import annotations

import os
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
from airflow_provider_seedream._internal.probe import check_models
from airflow_provider_seedream._internal.references import resolve_references
from airflow_provider_seedream._internal.sending import send_generation
from airflow_provider_seedream._internal.transport import ERROR_BODY_SECONDS, ThreadSessions
from airflow_provider_seedream.contract.connection import (
    DEFAULT_CONN_ID,
    UI_FIELD_BEHAVIOUR,
    ConnectionSettings,
    base_url_from_connection,
)
from airflow_provider_seedream.contract.links import DEFAULT_MAX_IMAGE_BYTES, DEFAULT_NOT_READY_STATUSES
from airflow_provider_seedream.contract.records import StoredImage
from airflow_provider_seedream.contract.redact import Secrets, mask_signatures, redact_url
from airflow_provider_seedream.contract.request import GenerationOptions, PreparedGeneration, build_request
from airflow_provider_seedream.contract.usage import Usage
from airflow_provider_seedream.version_compat import connection_form_widgets

if TYPE_CHECKING:
    from collections.abc import Collection

    from airflow.providers.common.compat.sdk import Connection, ObjectStoragePath
    from typing_extensions import Unpack

__all__ = ["CachedGeneration", "PreparedGeneration", "SeedreamHook", "StoredImage"]


class SeedreamHook(BaseHook):
    """Generate images with Seedream through Novita AI, with the API key of the ``seedream`` connection
    ``seedream_conn_id``; its host, port and extras are described in docs/connection.md
    (``contract.connection.ConnectionSettings``)."""

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
        max_spend_usd: float | str | None = None,
        **options: Unpack[GenerationOptions],
    ) -> list[str]:
        """Generate images and return their URLs in the API's order; with ``cache``, their locations
        in the cache, reusing an identical earlier generation (docs/cache.md).

        Every documented rule is checked, and reference images are read, checked by content and
        inlined, before anything is sent. ``options`` are the other parameters (``model``, ``size``,
        ``images``...) of :class:`~airflow_provider_seedream.contract.request.GenerateRequest`; an
        unknown one is refused by name.

        :param read_timeout: seconds to wait for the answer (default: the connection's).
        :param retry_possibly_billed: send again after a failure that came after the request left
            (read timeout, broken answer, 500/502/504): this can bill twice (default: the connection's, off).
        :param cache: a folder, storage URI or ``ObjectStoragePath`` keeping paid generations by request.
        :param cache_key: with ``cache``, stands for the prompt in the request's fingerprint: what an
            LLM-written prompt was made from, as a str or JSON value.
        :param max_spend_usd: the most this task instance may spend, all its tries together (outside a
            task: this call), besides the connection's ceilings (docs/spend.md).
        :raises SeedreamValidationError: a documented rule is broken; nothing was sent.
        :raises SeedreamSpendLimitError: a spend ceiling would be exceeded; nothing was sent.
        :raises SeedreamPossiblyBilledError: the request was sent and no usable answer came back.
        :raises SeedreamCacheStoreError: paid for, then storing into ``cache`` failed (``urls``: the links).
        :raises SeedreamAPIError: the API answered with an error, after any retries.
        :raises SeedreamConnectionError: the API could not be reached; nothing was sent.
        """
        prepared = self.prepare_generation(prompt=prompt, **options)
        generation_cache = self.generation_cache(cache) if cache is not None else None
        if generation_cache is not None and (hit := generation_cache.find(prepared, cache_key)) is not None:
            return hit.locations
        usage = self.usage_for(prepared.request.model)  # the cache's record keeps what it cost
        urls = self.send_generation(
            prepared,
            usage=usage,
            read_timeout=read_timeout,
            retry_possibly_billed=retry_possibly_billed,
            max_spend_usd=max_spend_usd,
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
        max_spend_usd: float | str | None = None,
    ) -> list[str]:
        """Send a prepared generation and return its image URLs; :meth:`generate` describes the
        parameters and errors. Each link's signature is registered with Airflow's secret masker.
        ``usage`` (see :meth:`usage_for`) counts every request sent, what it was billed for, and the
        spend ceilings that applied."""
        return send_generation(
            self._sessions.api,
            self.base_url,
            prepared,
            conn_id=self.seedream_conn_id,
            settings=self.settings,
            read_timeout=read_timeout,
            secrets=self._secrets,
            retry_possibly_billed=self.possibly_billed_opt_in(retry_possibly_billed),
            usage=usage if usage is not None else self.usage_for(prepared.request.model),
            max_spend_usd=max_spend_usd,
            log=self.log,
        )

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
        to ``path`` below ``destination``, checked against the cache's record of it (size, sha256).

        :param cache: the cache root the location must lie in: give it whenever the location comes from
            someone else (an asset event); without it, it must lie in some cache's layout.
        :raises SeedreamDownloadError: the location is no cached image (below ``cache``), or it no
            longer checks."""
        image, target = copy_cached_image(
            location, path, destination=destination, cache=cache, max_bytes=max_bytes, log=self.log
        )
        self._wrote(target)
        self.log.info("Copied %s (%d bytes) to %s", location, image.bytes, image.location)
        return image

    def download(self, url: str, path: str | os.PathLike[str] | ObjectStoragePath) -> str:
        """Stream the image at ``url`` into ``path`` (a local path, storage URI or ``ObjectStoragePath``;
        ``{ext}`` becomes the content's extension) and return where it was stored. The body must be an
        image by content, and appears at ``path`` only once whole (``_internal.storage``).

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
        :param max_bytes: refuse larger bodies (default 80 MiB, above any 4K image; ``None``: no limit).
        :param not_ready_statuses: statuses meaning "not available yet" (default 404).
        :param timeout: seconds the whole download may take (default: the connection's ``read_timeout``).
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
        self._wrote(target)
        self.log.info("Stored %s (%d bytes) at %s", redact_url(url), image.bytes, image.location)
        return image

    def _wrote(self, target: Any) -> None:
        """Tell Airflow's hook-level lineage (the OpenLineage provider reads it) what was written."""
        from airflow.providers.common.compat.lineage.hook import get_hook_lineage_collector

        get_hook_lineage_collector().add_output_asset(context=self, uri=str(target))

    def test_connection(self) -> tuple[bool, str]:
        """
        Check the base URL and the key, for every model, without generating (or billing) anything:
        an empty JSON object is posted to each model's endpoint (``_internal.probe``). It passes when
        the key is accepted for at least one model, and its message names every model that refused it.
        """
        settings = self.settings
        timeouts = settings.connect_timeout, min(settings.read_timeout, ERROR_BODY_SECONDS)
        return check_models(self._sessions.api, self.base_url, timeouts, self._secrets)
