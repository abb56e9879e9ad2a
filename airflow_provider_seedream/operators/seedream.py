"""Operators that generate images with Seedream and store them."""

from __future__ import annotations

import json
import os
import posixpath
import re
import string
from collections.abc import Collection, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import (
    AirflowFailException,
    AirflowSensorTimeout,
    BaseOperator,
    BaseSensorOperator,
    PokeReturnValue,
    conf,
)

from airflow_provider_seedream._redact import redact_url, strip_query
from airflow_provider_seedream._storage import as_storage_path, write_atomically
from airflow_provider_seedream.exceptions import (
    SeedreamDownloadError,
    SeedreamError,
    SeedreamLinkNotReadyError,
    SeedreamValidationError,
)
from airflow_provider_seedream.get_provider_info import DEFAULT_CONN_ID
from airflow_provider_seedream.links import DEFAULT_NOT_READY_STATUSES
from airflow_provider_seedream.request import build_request
from airflow_provider_seedream.specs import DEFAULT_MODEL

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context, ObjectStoragePath

    from airflow_provider_seedream.hooks.seedream import SeedreamHook

DEFAULT_FILENAME = "{dag_id}/{run_id}/{task_id}/{map_index}-{index}.{ext}"
FILENAME_FIELDS = frozenset({"dag_id", "run_id", "task_id", "map_index", "index", "ext"})
_UNSAFE_NAME_CHARACTERS = re.compile(r"[^A-Za-z0-9._-]")


def _hook(seedream_conn_id: str) -> SeedreamHook:
    # The hook brings in requests and urllib3 (about 30 ms): load it when a task runs, not at DAG parse.
    from airflow_provider_seedream.hooks.seedream import SeedreamHook

    return SeedreamHook(seedream_conn_id=seedream_conn_id)


def _is_literal(value: Any) -> bool:
    """A value known when the DAG is parsed: no Jinja, no XComArg or other deferred value."""
    if isinstance(value, str):
        return "{{" not in value and "{%" not in value
    if isinstance(value, (list, tuple)):
        return all(_is_literal(item) for item in value)
    return (
        value is None
        or isinstance(value, (bool, int, float))
        or hasattr(value, "read_bytes")
        or hasattr(value, "__fspath__")
    )


def _without_retries_if_hopeless(err: SeedreamError) -> Exception:
    """Errors that a retry cannot fix fail the task without spending its retries."""
    return err if err.retryable else AirflowFailException(str(err))


class SeedreamGenerateOperator(BaseOperator):
    """
    Generate images with Seedream 4.0 or 4.5 and return their URLs (XCom), in the API's order.

    Every rule the API documents is checked before a request is sent: literal arguments when the
    operator is built (so a broken DAG fails at parse time), templated ones after rendering.
    Validation, authentication and content-policy failures fail the task without retries; so does a
    read timeout, because the generation may already be billed.

    :param prompt: what to generate (templated).
    :param model: ``seedream-4.5`` (default) or ``seedream-4.0``.
    :param size: ``1K``/``2K``/``4K`` (4.0), ``2K``/``4K`` (4.5), or ``WIDTHxHEIGHT`` (templated).
    :param images: reference images: http(s) URLs, data URIs, local paths, object-storage URIs or
        ``ObjectStoragePath`` objects (templated). Files are checked and inlined as data URIs.
    :param sequential_image_generation: ``auto`` (the model may return several images) or ``disabled``.
    :param max_images: 1..15, with ``sequential_image_generation="auto"``; references plus images <= 15.
    :param watermark: add the "AI generated" watermark (API default: true).
    :param optimize_prompt_mode: ``standard`` (Seedream 4.5 only).
    :param seedream_conn_id: the ``seedream`` connection holding the API key.
    :param request_timeout: read timeout in seconds for the generation request (default: the connection's).
    """

    template_fields: Sequence[str] = ("prompt", "images", "size")
    ui_color = "#e8f0fe"

    def __init__(
        self,
        *,
        prompt: str,
        model: str = DEFAULT_MODEL,
        size: str | None = None,
        images: Sequence[Any] | str | None = None,
        sequential_image_generation: str | None = None,
        max_images: int | None = None,
        watermark: bool | None = None,
        optimize_prompt_mode: str | None = None,
        seedream_conn_id: str = DEFAULT_CONN_ID,
        request_timeout: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.prompt = prompt
        self.model = model
        self.size = size
        self.images = images
        self.sequential_image_generation = sequential_image_generation
        self.max_images = max_images
        self.watermark = watermark
        self.optimize_prompt_mode = optimize_prompt_mode
        self.seedream_conn_id = seedream_conn_id
        self.request_timeout = request_timeout
        self._check_literal_arguments()

    def _request_arguments(self) -> dict[str, Any]:
        return {
            "prompt": self.prompt,
            "model": self.model,
            "size": self.size,
            "images": self.images,
            "sequential_image_generation": self.sequential_image_generation,
            "max_images": self.max_images,
            "watermark": self.watermark,
            "optimize_prompt_mode": self.optimize_prompt_mode,
        }

    def _check_literal_arguments(self) -> None:
        """Validate now whatever is already known; what templates or XCom supply is checked at run time."""
        if not _is_literal(self.model):
            return
        arguments = {name: value for name, value in self._request_arguments().items() if _is_literal(value)}
        arguments.setdefault("prompt", "(templated)")
        build_request(**arguments)

    def execute(self, context: Context) -> list[str]:
        hook = _hook(self.seedream_conn_id)
        try:
            return hook.generate(**self._request_arguments(), timeout=self.request_timeout)
        except SeedreamError as err:
            raise _without_retries_if_hopeless(err) from err


class SeedreamDownloadOperator(BaseSensorOperator):
    """
    Wait until generated image links can be fetched, then stream the images into storage.

    Returns (XCom) the stored locations, in the order of ``urls``. Beside the images it writes a JSON
    manifest (the filename pattern with ``{index}`` as ``manifest`` and ``{ext}`` as ``json``) listing,
    per image, the link without its signature, sha256, bytes, content type, pixel size, location and
    time. Images the manifest already lists for the same links are not fetched again, whether on the
    next poke, after a reschedule or on a retry.

    A link answering 404 (or another of ``not_ready_statuses``) is not ready: the sensor keeps poking
    until ``timeout``. An expired link (403 "Request has expired"/AccessDenied, or 410) fails the task
    at once, without retries: only a new generation can produce the image. Any other failure fails
    with the status and the start of the body.

    :param urls: one link, a list, or an upstream ``XComArg`` such as ``gen.output`` (templated). A list
        of lists, as a mapped generation returns, is flattened.
    :param destination: a local folder, a URI (``file://``, ``s3://bucket/prefix``, ``gs://...``), or an
        ``ObjectStoragePath`` (templated).
    :param filename: the name pattern below ``destination`` (templated). Fields: ``{dag_id}``,
        ``{run_id}``, ``{task_id}``, ``{map_index}`` (0 when not mapped), ``{index}`` (position in
        ``urls``) and ``{ext}`` (from the content). Default
        ``{dag_id}/{run_id}/{task_id}/{map_index}-{index}.{ext}``, so a rerun overwrites.
    :param max_bytes: refuse images larger than this many bytes.
    :param not_ready_statuses: statuses that mean "not available yet" (default ``(404,)``).
    :param deferrable: wait in the triggerer instead of a worker slot.
    """

    template_fields: Sequence[str] = ("urls", "destination", "filename")
    ui_color = "#e6f4ea"

    def __init__(
        self,
        *,
        urls: str | Sequence[str],
        destination: str | os.PathLike[str] | ObjectStoragePath,
        filename: str | None = None,
        seedream_conn_id: str = DEFAULT_CONN_ID,
        max_bytes: int | None = None,
        not_ready_statuses: Collection[int] = DEFAULT_NOT_READY_STATUSES,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.urls = urls
        self.destination = destination
        self.filename = filename or DEFAULT_FILENAME
        self.seedream_conn_id = seedream_conn_id
        self.max_bytes = max_bytes
        self.not_ready_statuses = tuple(not_ready_statuses)
        self.deferrable = deferrable
        if _is_literal(self.filename):
            _check_filename_fields(self.filename)

    def execute(self, context: Context) -> list[str] | None:
        if not self.deferrable:
            locations: list[str] | None = super().execute(context)  # the sensor loop around poke()
            return locations
        return self._store_or_defer(context)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> list[str] | None:
        """Resume on a worker after the trigger fired: store the images, or fail as the trigger said."""
        if event["status"] == "timeout":
            raise AirflowSensorTimeout(event["message"])
        if event["status"] == "expired":
            raise AirflowFailException(event["message"])
        if event["status"] == "error":
            raise SeedreamDownloadError(event["message"])
        return self._store_or_defer(context)

    def _store_or_defer(self, context: Context) -> list[str] | None:
        locations, waiting = self._store_available(context)
        if locations is not None:
            return locations
        from airflow_provider_seedream.triggers.seedream import SeedreamLinksTrigger

        self.defer(
            trigger=SeedreamLinksTrigger(
                waiting,
                poll_interval=self.poke_interval,
                timeout=self.timeout,
                not_ready_statuses=list(self.not_ready_statuses),
                connect_timeout=_hook(self.seedream_conn_id).settings.connect_timeout,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout),
        )

    def poke(self, context: Context) -> PokeReturnValue:
        locations, _ = self._store_available(context)
        return PokeReturnValue(is_done=locations is not None, xcom_value=locations)

    def _store_available(self, context: Context) -> tuple[list[str] | None, list[str]]:
        """Store every image whose link answers. Returns the locations of all once all are stored (else
        None), and the links still waiting: only those go to the trigger, so a stored image's link
        expiring meanwhile fails nothing."""
        urls = self._url_list()
        destination = self._destination()
        hook = _hook(self.seedream_conn_id)
        fields = _filename_fields(context)
        if len(urls) > 1 and "{index}" not in self.filename:
            raise AirflowFailException(
                f"filename={self.filename!r} needs {{index}}: there are {len(urls)} links"
            )
        manifest_path = as_storage_path(
            _join(destination, _render_name(self.filename, {**fields, "index": "manifest", "ext": "json"}))
        )
        stored = _already_stored(manifest_path, urls)
        stored_before = len(stored)
        for index, url in enumerate(urls):
            if index in stored:
                continue
            target = _join(destination, _render_name(self.filename, {**fields, "index": str(index)}))
            try:
                image = hook.download_image(
                    url, target, max_bytes=self.max_bytes, not_ready_statuses=self.not_ready_statuses
                )
            except SeedreamLinkNotReadyError as err:
                self.log.info("%s", err)
                continue
            except SeedreamError as err:
                raise _without_retries_if_hopeless(err) from err
            stored[index] = {"index": index, **image.to_dict()}
        if len(stored) > stored_before:
            document = {"images": [stored[index] for index in sorted(stored)]}
            write_atomically(manifest_path, [json.dumps(document, indent=2).encode()])
        self.log.info("%d of %d images stored", len(stored), len(urls))
        waiting = [url for index, url in enumerate(urls) if index not in stored]
        if waiting:
            return None, waiting
        return [stored[index]["location"] for index in range(len(urls))], []

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
            if not isinstance(url, str) or not url.lower().startswith(("http://", "https://")):
                raise AirflowFailException(f"urls[{index}]={redact_url(str(url))!r} is not an http(s) URL")
        if not urls:
            raise AirflowFailException("urls is empty: there is nothing to download")
        return urls


def _filename_fields(context: Context) -> dict[str, str]:
    ti = context["ti"]
    values = {
        "dag_id": ti.dag_id,
        "run_id": ti.run_id,
        "task_id": ti.task_id,
        "map_index": str(max(ti.map_index if ti.map_index is not None else -1, 0)),
    }
    return {name: _UNSAFE_NAME_CHARACTERS.sub("_", value) for name, value in values.items()}


def _check_filename_fields(pattern: str) -> None:
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(pattern) if name is not None}
    except ValueError as err:
        raise SeedreamValidationError(f"filename={pattern!r} is not a valid pattern: {err}") from None
    if unknown := fields - FILENAME_FIELDS:
        raise SeedreamValidationError(
            f"filename={pattern!r} uses unknown fields {sorted(unknown)}; use {sorted(FILENAME_FIELDS)}"
        )
    if "{ext}" in posixpath.dirname(pattern):
        raise SeedreamValidationError(f"filename={pattern!r}: {{ext}} may only appear in the file's own name")


def _render_name(pattern: str, fields: dict[str, str]) -> str:
    """The relative name for ``fields`` (``{ext}`` kept when not given), refused if it leaves the
    destination."""
    _check_filename_fields(pattern)
    name = pattern.format_map({"ext": "{ext}", **fields})
    normal = posixpath.normpath(name)
    if "\\" in name or name.startswith("/") or normal == ".." or normal.startswith("../") or "://" in name:
        raise SeedreamValidationError(
            f"filename={pattern!r} gives {name!r}, which is outside the destination"
        )
    return normal


def _join(destination: str | os.PathLike[str] | ObjectStoragePath, name: str) -> Any:
    """``destination/name``, keeping the destination's kind (plain path, URI or ObjectStoragePath)."""
    if hasattr(destination, "protocol"):
        return destination / name  # type: ignore[operator]
    text = os.fspath(destination)
    return f"{text.rstrip('/')}/{name}" if "://" in text else os.path.join(text, name)


def _already_stored(manifest_path: ObjectStoragePath, urls: list[str]) -> dict[int, dict[str, Any]]:
    """Manifest entries for these very links whose files still exist."""
    if not manifest_path.exists():
        return {}
    try:
        entries = json.loads(manifest_path.read_text())["images"]
    except (ValueError, KeyError, TypeError):
        return {}
    sources = [strip_query(url) for url in urls]
    return {
        entry["index"]: entry
        for entry in entries
        if isinstance(entry, dict)
        and isinstance(entry.get("index"), int)
        and entry["index"] < len(urls)
        and entry.get("source") == sources[entry["index"]]
        and as_storage_path(entry["location"]).exists()
    }
