"""The download sensor: waits until generated image links answer, then streams the images into local
or object storage, with a manifest, poking, rescheduling or deferred to the triggerer."""

from __future__ import annotations

import os
import time
from collections.abc import Collection, Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import (
    AirflowFailException,
    AirflowSensorTimeout,
    BaseSensorOperator,
    PokeReturnValue,
    conf,
)

from airflow_provider_seedream._internal.filenames import (
    DEFAULT_FILENAME,
    check_filename_pattern,
    task_names,
)
from airflow_provider_seedream._internal.manifest import stored_entries, stored_summary, write_manifest
from airflow_provider_seedream._internal.operator_support import (
    is_literal,
    lineage_of,
    task_failure,
)
from airflow_provider_seedream._internal.storage import (
    as_storage_path,
    join,
    remove_partial_files,
    storage_target,
)
from airflow_provider_seedream._internal.storing import store_batch
from airflow_provider_seedream.contract.connection import DEFAULT_CONN_ID
from airflow_provider_seedream.contract.exceptions import (
    SeedreamDownloadError,
    SeedreamError,
    SeedreamValidationError,
)
from airflow_provider_seedream.contract.links import DEFAULT_MAX_IMAGE_BYTES, DEFAULT_NOT_READY_STATUSES
from airflow_provider_seedream.contract.records import LineageFacts
from airflow_provider_seedream.contract.redact import mask_signatures, redact_url
from airflow_provider_seedream.contract.response import is_api_link, location_problem, url_problem
from airflow_provider_seedream.contract.specs import MAX_GENERATED_IMAGES
from airflow_provider_seedream.plugins.gallery import IMAGE_LINKS

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context, ObjectStoragePath

    from airflow_provider_seedream.hooks.seedream import SeedreamHook

__all__ = ["SeedreamDownloadOperator"]


class SeedreamDownloadOperator(BaseSensorOperator):
    """Wait until generated image links can be fetched, then stream the images into storage.

    Returns (XCom) the stored locations, in the order of ``urls``. Beside the images it writes a JSON
    manifest (the filename pattern with ``{index}`` as ``manifest`` and ``{ext}`` as ``json``) listing,
    per image, the link without its signature, sha256, bytes, content type, pixel size, location and
    time. Images the manifest already lists for the same links, still present with their size, are not
    fetched again, whether on the next poke, after a reschedule or on a retry.

    A link answering 404 (or another of ``not_ready_statuses``) is not ready: the sensor keeps poking
    until ``timeout``. An expired link (403 "Request has expired", or 410) fails the task at once,
    without retries: only a new generation can produce the image. Any other failure fails with the
    status and the start of the body.

    :param urls: one link, a list, or an upstream ``XComArg`` such as ``gen.output`` (templated). A list
        of lists, as a mapped generation returns, is flattened. Locations a generate task with ``cache``
        returned are copied (checked against the cache's record; server-side between objects of one S3
        connection), and their manifest entries carry their generation's facts (``generation``).
    :param destination: a local folder, a URI (``file://``, ``s3://bucket/prefix``, ``gs://...``), or an
        ``ObjectStoragePath`` (templated). Nothing is written outside it, and no symbolic link below a
        local destination is followed.
    :param filename: the name pattern below ``destination`` (templated). Fields: ``{dag_id}``,
        ``{run_id}``, ``{task_id}``, ``{map_index}`` (0 when not mapped; required when mapped),
        ``{index}`` (position in ``urls``) and ``{ext}`` (from the content); ``{index}`` or ``{ext}`` must
        appear, so the manifest cannot take an image's name. Default
        ``{dag_id}/{run_id}/{task_id}/{map_index}-{index}.{ext}``, so a rerun overwrites.
    :param max_bytes: refuse larger images (default 80 MiB, above any 4K image; ``None``: no limit).
    :param not_ready_statuses: statuses that mean "not available yet" (default ``(404,)``).
    :param deferrable: wait in the triggerer instead of a worker slot.
    :param parallel_downloads: images fetched and stored at once (1-15, default 4). Memory grows with
        it, not with the images' size (an S3 upload holds one 8 MiB part and, while it is sent, the
        HTTP client's copy).

    Each asset in ``outlets`` gets an event whose ``extra`` says what was stored, and from what
    (docs/storage.md); OpenLineage gets the copied and the stored images and a run facet ``seedream``.
    """

    template_fields: Sequence[str] = ("urls", "destination", "filename")
    ui_color = "#e6f4ea"
    operator_extra_links = IMAGE_LINKS

    def __init__(
        self,
        *,
        urls: str | Sequence[str],
        destination: str | os.PathLike[str] | ObjectStoragePath,
        filename: str | None = None,
        seedream_conn_id: str = DEFAULT_CONN_ID,
        max_bytes: int | None = DEFAULT_MAX_IMAGE_BYTES,
        not_ready_statuses: Collection[int] = DEFAULT_NOT_READY_STATUSES,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        parallel_downloads: int = 4,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if type(parallel_downloads) is not int or not 1 <= parallel_downloads <= MAX_GENERATED_IMAGES:
            raise SeedreamValidationError(
                f"parallel_downloads={parallel_downloads!r}: must be an integer from 1 to "
                f"{MAX_GENERATED_IMAGES}"
            )
        self.parallel_downloads = parallel_downloads
        self.urls = urls
        self.destination = destination
        self.filename = filename or DEFAULT_FILENAME
        self.seedream_conn_id = seedream_conn_id
        self.max_bytes = max_bytes
        self.not_ready_statuses = tuple(not_ready_statuses)
        self.deferrable = deferrable
        self._lineage: LineageFacts | None = None
        if is_literal(self.filename):
            check_filename_pattern(self.filename)
        self._mask_link_signatures()

    @cached_property
    def hook(self) -> SeedreamHook:
        # requests and urllib3 come with it (about 30 ms): loaded when a task runs, not at each parse
        from airflow_provider_seedream.hooks.seedream import SeedreamHook

        return SeedreamHook(seedream_conn_id=self.seedream_conn_id)

    def render_template_fields(self, context: Context, jinja_env: Any = None) -> None:
        super().render_template_fields(context, jinja_env)
        # Before Airflow stores the rendered fields for the UI, which it masks with what it knows.
        self._mask_link_signatures()

    def _mask_link_signatures(self) -> None:
        """Links arrive as literals, mapped values (given to __init__) or rendered XCom: mask each."""
        items = [self.urls] if isinstance(self.urls, str) else self.urls
        if isinstance(items, (list, tuple)):
            mask_signatures(
                url
                for item in items
                for url in (item if isinstance(item, (list, tuple)) else [item])
                if isinstance(url, str)
            )

    def execute(self, context: Context) -> list[str] | None:
        removed = remove_partial_files(self._root(), self._names(context))
        if removed:
            self.log.info("Removed %d partial file(s) an interrupted try left: %s", len(removed), removed)
        if not self.deferrable:
            locations: list[str] | None = super().execute(context)  # the sensor loop around poke()
            return locations
        return self._store_or_defer(context, end_time=time.time() + self.timeout)

    def execute_complete(self, context: Context, event: dict[str, Any] | None) -> list[str] | None:
        """Resume on a worker after the trigger fired: store the images, or fail as the trigger said."""
        event = event if isinstance(event, dict) else {}
        status, message = event.get("status"), str(event.get("message", ""))
        if status == "timeout":
            raise AirflowSensorTimeout(message)
        if status == "expired":
            raise AirflowFailException(message)
        if status == "error":
            raise SeedreamDownloadError(message)
        if status != "ready":
            raise SeedreamDownloadError(
                f"the links trigger sent an event this operator does not know: {event!r}"
            )
        return self._store_or_defer(
            context, end_time=float(event.get("end_time") or time.time() + self.timeout)
        )

    def _store_or_defer(self, context: Context, end_time: float) -> list[str] | None:
        locations, waiting = self._store_available(context)
        if locations is not None:
            return locations
        from airflow_provider_seedream.triggers.seedream import SeedreamLinksTrigger

        self.defer(
            trigger=SeedreamLinksTrigger(
                waiting,
                poll_interval=self.poke_interval,
                end_time=end_time,
                not_ready_statuses=list(self.not_ready_statuses),
                connect_timeout=self.hook.settings.connect_timeout,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=max(end_time - time.time(), 1)),
        )

    def poke(self, context: Context) -> PokeReturnValue:
        locations, _ = self._store_available(context)
        return PokeReturnValue(is_done=locations is not None, xcom_value=locations)

    def _store_available(self, context: Context) -> tuple[list[str] | None, list[str]]:
        """Store every image whose link answers. Returns the locations of all once all are stored (else
        None), and the links still waiting: only those go to the trigger, so a stored image's link
        expiring meanwhile fails nothing."""
        urls, destination, hook = self._url_list(), self._destination(), self.hook
        names = self._names(context, len(urls))
        manifest_name = names[-1]
        try:
            stored = stored_entries(destination, manifest_name, names[:-1], urls, self.log)
        except SeedreamError as err:
            raise task_failure(err) from err
        stored_before = len(stored)
        images, failure = store_batch(
            {index: (urls[index], names[index]) for index in range(len(urls)) if index not in stored},
            download=hook.download_image,
            copy=hook.copy_stored_image,
            read_timeout=hook.settings.read_timeout,
            destination=destination,
            max_bytes=self.max_bytes,
            not_ready_statuses=self.not_ready_statuses,
            deadline=time.monotonic() + self.timeout,
            parallel=self.parallel_downloads,
            log=self.log,
        )
        stored.update({index: {"index": index, **image.to_dict()} for index, image in images.items()})
        if len(stored) > stored_before:
            try:
                write_manifest(destination, manifest_name, stored)
            except SeedreamError as err:
                raise task_failure(err) from err
        if failure is not None:
            raise task_failure(failure) from failure
        self.log.info("%d of %d images stored", len(stored), len(urls))
        waiting = [url for index, url in enumerate(urls) if index not in stored]
        if waiting:
            return None, waiting
        entries = [stored[index] for index in range(len(urls))]
        manifest = storage_target(join(destination, manifest_name), "json")[1]
        # Where the images' record is, for what shows them (the UI's gallery) and finds nothing else.
        context["ti"].xcom_push(key="manifest", value=manifest)
        summary = stored_summary(entries, context["ti"].run_id, manifest)
        self._describe_outlets(context, summary)
        self._lineage = LineageFacts(
            inputs=[url for url in urls if not is_api_link(url)],  # cached images copied
            outputs=summary["locations"],
            models=summary["models"],
            images=summary["images"],
            usage=summary["usage"],
        )
        return summary["locations"], []

    def _describe_outlets(self, context: Context, summary: dict[str, Any]) -> None:
        """Each asset in ``outlets`` gets an event saying what was stored (``manifest.stored_summary``),
        so that a DAG scheduled on it knows which images are new."""
        events = context.get("outlet_events")
        assets = [outlet for outlet in self.outlets if getattr(outlet, "uri", None)]  # not an alias
        if events is None or not assets:
            return
        for asset in assets:
            events[asset].extra.update(summary)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the cached images copied, the images stored, and what they cost."""
        return lineage_of(self._lineage)

    def _names(self, context: Context, count: int | None = None) -> list[str]:
        """The relative name of each image (``{ext}`` still open), then the manifest's."""
        ti, count = context["ti"], len(self._url_list()) if count is None else count
        try:
            return task_names(self.filename, ti.dag_id, ti.run_id, ti.task_id, ti.map_index, count)
        except SeedreamValidationError as err:
            raise task_failure(err) from err

    def _root(self) -> ObjectStoragePath:
        return as_storage_path(self._destination())

    def _destination(self) -> str | os.PathLike[str] | ObjectStoragePath:
        if isinstance(self.destination, str) and not self.destination.strip():
            # os.path.join("", name) would write into the worker's current directory.
            raise AirflowFailException(
                "destination is empty: give a folder, a storage URI or an ObjectStoragePath"
            )
        return self.destination

    def _url_list(self) -> list[str]:
        items: list[Any] = [self.urls] if isinstance(self.urls, str) else list(self.urls)
        urls = [url for item in items for url in (item if isinstance(item, (list, tuple)) else [item])]
        for index, url in enumerate(urls):
            problem = url_problem(url) if is_api_link(url) else location_problem(url)
            if problem:
                shown = redact_url(url) if isinstance(url, str) else type(url).__name__
                raise AirflowFailException(f"urls[{index}]={shown[:200]!r} {problem}")
        if not urls:
            raise AirflowFailException("urls is empty: there is nothing to download")
        return urls
