"""Operators that generate images with Seedream and store them."""

from __future__ import annotations

import json
import os
import posixpath
import re
import string
import time
from collections.abc import Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import (
    AirflowFailException,
    AirflowSensorTimeout,
    BaseOperator,
    BaseSensorOperator,
    PokeReturnValue,
    conf,
)

from airflow_provider_seedream._generation_state import (
    GENERATED,
    STATE_KEY,
    GenerationState,
    usable_urls,
)
from airflow_provider_seedream._redact import link_identity, mask_signatures, redact_url
from airflow_provider_seedream._storage import (
    as_storage_path,
    join,
    remove_partial_files,
    storage_error,
    storage_target,
    write_atomically,
)
from airflow_provider_seedream.connection import DEFAULT_CONN_ID
from airflow_provider_seedream.exceptions import (
    SeedreamDownloadError,
    SeedreamError,
    SeedreamLinkNotReadyError,
    SeedreamValidationError,
    may_retry,
)
from airflow_provider_seedream.links import DEFAULT_MAX_IMAGE_BYTES, DEFAULT_NOT_READY_STATUSES
from airflow_provider_seedream.request import GENERATION_PARAMETERS, build_request
from airflow_provider_seedream.response import url_problem
from airflow_provider_seedream.specs import DEFAULT_MODEL

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context, ObjectStoragePath

    from airflow_provider_seedream._download import StoredImage
    from airflow_provider_seedream.hooks.seedream import SeedreamHook

DEFAULT_FILENAME = "{dag_id}/{run_id}/{task_id}/{map_index}-{index}.{ext}"
FILENAME_FIELDS = frozenset({"dag_id", "run_id", "task_id", "map_index", "index", "ext"})
MAX_PARALLEL_DOWNLOADS = 15
"""A generation returns at most 15 images."""
MANIFEST_READ_LIMIT = 1024 * 1024
"""A manifest lists at most 15 images in a few KB; anything larger is not one of ours."""
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


def _sentence(text: str) -> str:
    """``text`` to start a sentence: its first letter upper-cased, the rest (a timestamp) as it is."""
    return text[:1].upper() + text[1:]


def task_failure(err: SeedreamError, *, retry_possibly_billed: bool = False) -> Exception:
    """What a task raises for ``err``: the error itself when a retry may succeed without paying twice
    (``exceptions.may_retry``), else an ``AirflowFailException`` that spends no retries. Its message
    starts with the error's type, which is also its ``__cause__`` (raise it ``from err``), so logs and
    ``on_failure_callback`` (``context["exception"]``) see which failure it was."""
    if may_retry(err, retry_possibly_billed=retry_possibly_billed):
        return err
    return AirflowFailException(f"{type(err).__name__}: {err}")


class SeedreamGenerateOperator(BaseOperator):
    """
    Generate images with a Seedream model and return their URLs (XCom), in the API's order.

    Every rule the API documents is checked before a request is sent: literal arguments when the
    operator is built (so a broken DAG fails at parse time), templated ones after rendering.
    Validation, authentication and content-policy failures fail the task without retries; so does any
    failure after the request was sent (a read timeout, a broken answer, 500/502/504), because the
    generation may already be billed, unless ``retry_possibly_billed`` is set.

    On Airflow 3.3+, with ``durable=True`` (the default), the task instance remembers its generation
    across tries in Airflow's task state store: a later try returns the links an earlier try got (while
    they still work) instead of paying again, and refuses to send again after a try that may have been
    billed (unless ``retry_possibly_billed``).

    :param prompt: what to generate (templated).
    :param model: a key of ``specs.MODEL_SPECS`` (default ``seedream-4.5``); the README's parameter
        table lists them (templated).
    :param size: one of the model's presets (``2K``, ``4K``...) or ``WIDTHxHEIGHT``; the README's
        parameter table gives each model's (templated).
    :param images: reference images: http(s) URLs, data URIs, local paths, object-storage URIs or
        ``ObjectStoragePath`` objects (templated). Files are checked and inlined as data URIs.
    :param sequential_image_generation: ``auto`` (the model may return several images) or ``disabled``.
    :param max_images: 1..15, with ``sequential_image_generation="auto"``; references plus images <= 15.
    :param watermark: add the "AI generated" watermark (API default: true).
    :param optimize_prompt_mode: ``standard``, on the models that have it (not 4.0).
    :param seedream_conn_id: the ``seedream`` connection holding the API key.
    :param read_timeout: seconds to wait for the generation's answer (default: the connection's
        ``read_timeout``).
    :param retry_possibly_billed: send the request again, by the hook and by task retries, after a
        failure that may already have been billed (default: the connection's extra, off).
    :param durable: remember the generation across tries of this task instance (Airflow 3.3+).
    """

    # Every request argument can be computed: a rendered "3" or "false" is read as the number or boolean.
    template_fields: Sequence[str] = (*GENERATION_PARAMETERS, "seedream_conn_id")
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
        read_timeout: float | None = None,
        retry_possibly_billed: bool | None = None,
        durable: bool = True,
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
        self.read_timeout = read_timeout
        self.retry_possibly_billed = retry_possibly_billed
        self.durable = durable
        self._check_literal_arguments()

    @cached_property
    def hook(self) -> SeedreamHook:
        return _hook(self.seedream_conn_id)

    def _request_arguments(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in GENERATION_PARAMETERS}

    def _check_literal_arguments(self) -> None:
        """Validate now whatever is already known; what templates or XCom supply is checked at run time."""
        if not _is_literal(self.model):
            return
        arguments = {name: value for name, value in self._request_arguments().items() if _is_literal(value)}
        arguments.setdefault("prompt", "(templated)")
        build_request(**arguments)

    def execute(self, context: Context) -> list[str]:
        hook = self.hook
        try:
            opt_in = hook.possibly_billed_opt_in(self.retry_possibly_billed)
            state = self._generation_state(context)
            if state is not None and (urls := self._resume(state, context, opt_in)) is not None:
                return urls
            prepared = hook.prepare_generation(**self._request_arguments())
        except SeedreamError as err:
            raise task_failure(err) from err
        if state is not None:
            state.mark_sent()
        try:
            urls = hook.send_generation(
                prepared, read_timeout=self.read_timeout, retry_possibly_billed=opt_in
            )
        except SeedreamError as err:
            if state is not None:
                state.record_failure(err)
            raise task_failure(err, retry_possibly_billed=opt_in) from err
        if state is not None:
            state.mark_generated(urls)
        return urls

    def _generation_state(self, context: Context) -> GenerationState | None:
        if not self.durable:
            return None
        store = context.get("task_state_store")
        if store is None:
            self.log.info(
                "This Airflow has no task state store (it arrived in 3.3): a retry of this task cannot "
                "know what an earlier try sent, so cross-try protection against paying twice is off."
            )
            return None
        return GenerationState(store, context["ti"].try_number)

    def _resume(self, state: GenerationState, context: Context, opt_in: bool) -> list[str] | None:
        """The links an earlier try got, if they still work; refuse to send again after a try that may
        have been billed, unless opted in; otherwise ``None``: generate."""
        earlier = state.earlier()
        if earlier is None:
            return None
        when = f"try {earlier.get('try_number', '?')} of this task at {earlier.get('at', '?')}"
        if earlier["status"] == GENERATED:
            urls = usable_urls(earlier)
            if urls is not None:
                self.log.info(
                    "Returning the %d image link(s) generated by %s instead of paying for a new "
                    "generation (durable=True; valid until %s).",
                    len(urls),
                    when,
                    earlier["usable_until"],
                )
                mask_signatures(urls)
                return urls
            self.log.warning(
                "The images generated by %s were paid for, but their links expired at %s: generating again.",
                when,
                earlier.get("usable_until"),
            )
            return None
        if opt_in:
            self.log.warning(
                "%s sent this generation and got no usable answer; sending it again because "
                "retry_possibly_billed is set: it may be billed twice.",
                _sentence(when),
            )
            return None
        ti = context["ti"]
        map_index = getattr(ti, "map_index", -1)
        raise AirflowFailException(
            f"{_sentence(when)} sent this generation and got no usable answer "
            f"({earlier.get('error', 'the try ended while waiting for it')}): it may have been billed, "
            "so it is not sent again. To generate anyway, set retry_possibly_billed=True on the task or the "
            f"connection, or delete the task state key {STATE_KEY!r} (REST: DELETE /api/v2/dags/{ti.dag_id}/"
            f"dagRuns/{ti.run_id}/taskInstances/{ti.task_id}/state-store/{STATE_KEY}"
            f"{f'?map_index={map_index}' if map_index is not None and map_index >= 0 else ''})."
        )


class SeedreamDownloadOperator(BaseSensorOperator):
    """
    Wait until generated image links can be fetched, then stream the images into storage.

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
        of lists, as a mapped generation returns, is flattened.
    :param destination: a local folder, a URI (``file://``, ``s3://bucket/prefix``, ``gs://...``), or an
        ``ObjectStoragePath`` (templated). Nothing is written outside it, and no symbolic link below a
        local destination is followed.
    :param filename: the name pattern below ``destination`` (templated). Fields: ``{dag_id}``,
        ``{run_id}``, ``{task_id}``, ``{map_index}`` (0 when not mapped; required when mapped),
        ``{index}`` (position in ``urls``) and ``{ext}`` (from the content); ``{index}`` or ``{ext}`` must
        appear, so the manifest cannot take an image's name. Default
        ``{dag_id}/{run_id}/{task_id}/{map_index}-{index}.{ext}``, so a rerun overwrites.
    :param max_bytes: refuse images larger than this many bytes (default 80 MiB, above any 4K image;
        ``None`` for no limit).
    :param not_ready_statuses: statuses that mean "not available yet" (default ``(404,)``).
    :param deferrable: wait in the triggerer instead of a worker slot.
    :param parallel_downloads: images fetched and stored at once (1-15, default 4). Memory grows with
        it, not with the images' size (an S3 upload holds one 8 MiB part and, while it is sent, the
        HTTP client's copy).
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
        max_bytes: int | None = DEFAULT_MAX_IMAGE_BYTES,
        not_ready_statuses: Collection[int] = DEFAULT_NOT_READY_STATUSES,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        parallel_downloads: int = 4,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if type(parallel_downloads) is not int or not 1 <= parallel_downloads <= MAX_PARALLEL_DOWNLOADS:
            raise SeedreamValidationError(
                f"parallel_downloads={parallel_downloads!r}: must be an integer from 1 to "
                f"{MAX_PARALLEL_DOWNLOADS}"
            )
        self.parallel_downloads = parallel_downloads
        self.urls = urls
        self.destination = destination
        self.filename = filename or DEFAULT_FILENAME
        self.seedream_conn_id = seedream_conn_id
        self.max_bytes = max_bytes
        self.not_ready_statuses = tuple(not_ready_statuses)
        self.deferrable = deferrable
        if _is_literal(self.filename):
            _check_filename_pattern(self.filename)
        self._mask_link_signatures()

    @cached_property
    def hook(self) -> SeedreamHook:
        return _hook(self.seedream_conn_id)

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
        urls = self._url_list()
        destination = self._destination()
        names = self._names(context, len(urls))
        hook = self.hook
        manifest_name = names[-1]
        stored = self._already_stored(destination, manifest_name, names[:-1], urls)
        stored_before = len(stored)
        poke_deadline = time.monotonic() + self.timeout
        read_timeout = hook.settings.read_timeout

        def store(index: int) -> StoredImage:
            return hook.download_image(
                urls[index],
                names[index],
                destination=destination,
                max_bytes=self.max_bytes,
                not_ready_statuses=self.not_ready_statuses,
                timeout=max(min(read_timeout, poke_deadline - time.monotonic()), 0.001),
            )

        pending = [index for index in range(len(urls)) if index not in stored]
        failure: SeedreamError | None = None
        # Several at once: one image's upload waits on the store's answers while another streams.
        with ThreadPoolExecutor(max(min(self.parallel_downloads, len(pending)), 1)) as pool:
            futures = {index: pool.submit(store, index) for index in pending}
            for index, future in futures.items():
                try:
                    image = future.result()
                except SeedreamLinkNotReadyError as err:
                    self.log.info("%s", err)
                    continue
                except SeedreamError as err:
                    failure = failure or err  # after the others finish, and the manifest lists them
                    continue
                stored[index] = {"index": index, **image.to_dict()}
        if len(stored) > stored_before:
            document = {"images": [stored[index] for index in sorted(stored)]}
            manifest_path = as_storage_path(join(destination, manifest_name))
            try:
                write_atomically(
                    manifest_path, [json.dumps(document, indent=2).encode()], as_storage_path(destination)
                )
            except SeedreamError as err:
                raise task_failure(err) from err
        if failure is not None:
            raise task_failure(failure) from failure
        self.log.info("%d of %d images stored", len(stored), len(urls))
        waiting = [url for index, url in enumerate(urls) if index not in stored]
        if waiting:
            return None, waiting
        return [stored[index]["location"] for index in range(len(urls))], []

    def _names(self, context: Context, count: int | None = None) -> list[str]:
        """The relative name of each image (``{ext}`` still open), then the manifest's. Refuses patterns
        that would make mapped instances, or several links, overwrite each other."""
        map_index = context["ti"].map_index
        if map_index is not None and map_index >= 0 and "{map_index}" not in self.filename:
            raise AirflowFailException(
                f"filename={self.filename!r} needs {{map_index}}: this task is mapped, and its instances "
                "would overwrite each other's images"
            )
        count = len(self._url_list()) if count is None else count
        if count > 1 and "{index}" not in self.filename:
            raise AirflowFailException(f"filename={self.filename!r} needs {{index}}: there are {count} links")
        fields = _filename_fields(context)
        try:
            _check_filename_pattern(self.filename)
            images = [_render_name(self.filename, {**fields, "index": str(index)}) for index in range(count)]
            manifest = _render_name(self.filename, {**fields, "index": "manifest", "ext": "json"})
        except SeedreamValidationError as err:
            raise task_failure(err) from err
        return [*images, manifest]

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
            problem = url_problem(url)
            if problem:
                shown = redact_url(url) if isinstance(url, str) else type(url).__name__
                raise AirflowFailException(f"urls[{index}]={shown[:200]!r} {problem}")
        if not urls:
            raise AirflowFailException("urls is empty: there is nothing to download")
        return urls

    def _already_stored(
        self,
        destination: str | os.PathLike[str] | ObjectStoragePath,
        manifest_name: str,
        names: list[str],
        urls: list[str],
    ) -> dict[int, dict[str, Any]]:
        """Manifest entries that prove an image of these very links is stored here: the entry names the
        same link, the location this index is written to, and a file of the recorded size. The manifest
        is input, not trust: anything else is fetched again, and an unreadable manifest is rebuilt."""
        manifest = as_storage_path(join(destination, manifest_name))
        try:
            with manifest.open("rb") as handle:
                raw = handle.read(MANIFEST_READ_LIMIT + 1)
            entries = json.loads(raw)["images"] if len(raw) <= MANIFEST_READ_LIMIT else None
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, KeyError, TypeError, RecursionError) as err:
            self.log.warning("Ignoring the unreadable manifest %s (%s): it will be rebuilt", manifest, err)
            return {}
        except Exception as err:  # an object store's client error that fsspec did not translate
            raise task_failure(storage_error(err, manifest, "read")) from None
        if not isinstance(entries, list):
            self.log.warning("Ignoring the manifest %s: it lists no images; it will be rebuilt", manifest)
            return {}
        stored: dict[int, dict[str, Any]] = {}
        for entry in entries:
            index = entry.get("index") if isinstance(entry, dict) else None
            if (
                isinstance(index, int)
                and not isinstance(index, bool)
                and 0 <= index < len(urls)
                and entry.get("source") == link_identity(urls[index])
                and _entry_is_stored_file(entry, join(destination, names[index]))
            ):
                stored[index] = entry
        return stored


def _entry_is_stored_file(entry: dict[str, Any], target: Any) -> bool:
    """The entry's location is where this index is written (for its content type), and a file of the
    recorded size is there."""
    from airflow_provider_seedream._imageinfo import EXTENSIONS, MEDIA_TYPES

    formats = {media_type: name for name, media_type in MEDIA_TYPES.items()}
    content_type, size, location = entry.get("content_type"), entry.get("bytes"), entry.get("location")
    if content_type not in formats or not isinstance(size, int) or not isinstance(location, str):
        return False
    path, expected = storage_target(target, EXTENSIONS[formats[content_type]])
    try:
        return location == expected and path.is_file() and path.stat().st_size == size
    except (OSError, ValueError):
        return False


def _filename_fields(context: Context) -> dict[str, str]:
    ti = context["ti"]
    values = {
        "dag_id": ti.dag_id,
        "run_id": ti.run_id,
        "task_id": ti.task_id,
        "map_index": str(max(ti.map_index if ti.map_index is not None else -1, 0)),
    }
    return {name: _UNSAFE_NAME_CHARACTERS.sub("_", value) for name, value in values.items()}


def _check_filename_pattern(pattern: str) -> None:
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
    if not {"index", "ext"} & fields:
        raise SeedreamValidationError(
            f"filename={pattern!r} has neither {{index}} nor {{ext}}, so the manifest (named with "
            "index=manifest, ext=json) would take the image's name; add {index} or end it in .{ext}"
        )


def _render_name(pattern: str, fields: dict[str, str]) -> str:
    """The relative name for ``fields`` (``{ext}`` kept when not given), refused if it leaves the
    destination."""
    name = pattern.format_map({"ext": "{ext}", **fields})
    normal = posixpath.normpath(name)
    if (
        "\\" in name
        or "\x00" in name
        or name.startswith("/")
        or normal == ".."
        or normal.startswith("../")
        or "://" in name
    ):
        raise SeedreamValidationError(
            f"filename={pattern!r} gives {name!r}, which is outside the destination or not a valid name"
        )
    return normal
