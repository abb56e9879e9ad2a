"""The generate operator: validates a Seedream request and sends it once; the download sensor
(``SeedreamDownloadOperator``, in ``sensors``) is imported here too, where DAGs have always found it."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowFailException, BaseOperator

from airflow_provider_seedream._internal import metrics
from airflow_provider_seedream._internal.generation_state import GenerationState
from airflow_provider_seedream._internal.operator_support import (
    is_literal,
    lineage_of,
    task_failure,
)
from airflow_provider_seedream.contract.connection import DEFAULT_CONN_ID
from airflow_provider_seedream.contract.exceptions import SeedreamCacheStoreError, SeedreamError
from airflow_provider_seedream.contract.records import LineageFacts
from airflow_provider_seedream.contract.request import GENERATION_PARAMETERS, build_request
from airflow_provider_seedream.contract.specs import DEFAULT_MODEL
from airflow_provider_seedream.contract.spend import usd_amount
from airflow_provider_seedream.plugins.gallery import IMAGE_LINKS
from airflow_provider_seedream.sensors.seedream import SeedreamDownloadOperator

if TYPE_CHECKING:
    import os

    from airflow.providers.common.compat.sdk import Context, ObjectStoragePath

    from airflow_provider_seedream._internal.cache.generations import GenerationCache
    from airflow_provider_seedream.contract.request import PreparedGeneration
    from airflow_provider_seedream.contract.usage import Usage
    from airflow_provider_seedream.hooks.seedream import SeedreamHook

__all__ = ["SeedreamDownloadOperator", "SeedreamGenerateOperator"]


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
    :param model: a key of ``specs.MODEL_SPECS`` (default ``seedream-4.5``); docs/operators.md's parameter
        table lists them (templated).
    :param size: one of the model's presets (``2K``, ``4K``...) or ``WIDTHxHEIGHT``; docs/operators.md's
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
    :param cache: a folder, storage URI (``s3://bucket/prefix``) or ``ObjectStoragePath`` (templated;
        DAG-wide through ``default_args``). An identical request generated before is answered from it
        with nothing sent; otherwise the images are generated and stored there. Either way the task
        returns the images' locations in the cache, which do not expire, and
        ``SeedreamDownloadOperator`` copies them as it downloads links. Unset: the API's links.
    :param cache_key: with ``cache``: stands for the prompt in the request's fingerprint, for prompts
        written anew on every run (by an LLM): what the prompt was made from, such as the catalog row,
        the brief and the LLM's model, as a str or JSON value (templated).
    :param max_spend_usd: the most this task instance may spend, all its tries and retries together
        (templated; finite, >= 0). With the connection's ``max_spend_per_run_usd`` and
        ``max_spend_per_day_usd``: a generation that could exceed a ceiling is not sent, and the task
        fails without retries (``SeedreamSpendLimitError``). Estimates: list prices or the connection's
        ``price_per_image``.

    With the OpenLineage provider, the task reports the reference files and object-storage URIs it
    read as inputs, the images it stored in ``cache`` as outputs, and a run facet ``seedream`` (models,
    images, usage).
    """

    # Every request argument can be computed: a rendered "3" or "false" is read as the number or boolean.
    template_fields: Sequence[str] = (
        *GENERATION_PARAMETERS,
        "seedream_conn_id",
        "cache",
        "cache_key",
        "max_spend_usd",
    )
    ui_color = "#e8f0fe"
    operator_extra_links = IMAGE_LINKS

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
        cache: str | os.PathLike[str] | ObjectStoragePath | None = None,
        cache_key: Any = None,
        max_spend_usd: float | str | None = None,
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
        self.cache = cache
        self.cache_key = cache_key
        self.max_spend_usd = max_spend_usd
        self._lineage: LineageFacts | None = None
        self._check_literal_arguments()

    @cached_property
    def hook(self) -> SeedreamHook:
        # requests and urllib3 come with it (about 30 ms): loaded when a task runs, not at each parse
        from airflow_provider_seedream.hooks.seedream import SeedreamHook

        return SeedreamHook(seedream_conn_id=self.seedream_conn_id)

    def _request_arguments(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in GENERATION_PARAMETERS}

    def _check_literal_arguments(self) -> None:
        """Validate now whatever is already known; what templates or XCom supply is checked at run time."""
        if not is_literal(self.model):
            return
        arguments = {name: value for name, value in self._request_arguments().items() if is_literal(value)}
        arguments.setdefault("prompt", "(templated)")
        build_request(**arguments)
        if is_literal(self.max_spend_usd):
            usd_amount(self.max_spend_usd, "max_spend_usd")

    def execute(self, context: Context) -> list[str]:
        hook = self.hook
        try:
            opt_in = hook.possibly_billed_opt_in(self.retry_possibly_billed)
            prepared = hook.prepare_generation(**self._request_arguments())
            usage = hook.usage_for(prepared.request.model)
            cache = hook.generation_cache(self.cache) if self.cache is not None else None
            if cache is not None:  # a hit is free: it goes before anything an earlier try left
                hit = cache.find(prepared, self.cache_key)
                if hit is not None:
                    usage.images_reused = len(hit.locations)
                    self._report(context, usage)
                    return self._remember(prepared, hit.locations, usage, stored=True)
            state = self._generation_state(context)
            if state is not None:
                urls = state.resume(retry_possibly_billed=opt_in, log=self.log)
                if urls is not None:
                    usage.images_reused = len(urls)  # paid for by an earlier try
                    metrics.count(metrics.IMAGES_REUSED, len(urls), model=prepared.request.model)
                    return self._hand_on(context, cache, prepared, urls, usage, state)
        except SeedreamError as err:
            raise task_failure(err) from err
        if state is not None:
            state.mark_sent()
        try:
            urls = hook.send_generation(
                prepared,
                read_timeout=self.read_timeout,
                retry_possibly_billed=opt_in,
                usage=usage,
                max_spend_usd=self.max_spend_usd,
            )
        except SeedreamError as err:
            if state is not None:
                state.record_failure(err)
            self._report(context, usage, failing=True)
            raise task_failure(err, retry_possibly_billed=opt_in) from err
        except BaseException:  # interrupted while waiting (execution_timeout, SIGTERM): it may be out
            usage.count_interrupted(prepared.request.most_images)
            self._report(context, usage, failing=True)
            raise
        if state is not None:
            state.mark_generated(urls)
        return self._hand_on(context, cache, prepared, urls, usage, state)

    def _hand_on(
        self,
        context: Context,
        cache: GenerationCache | None,
        prepared: PreparedGeneration,
        urls: list[str],
        usage: Usage,
        state: GenerationState | None,
    ) -> list[str]:
        """Report the spend and return the paid-for links, or with ``cache`` their stored locations.

        When storing fails, a retry must not pay again: with the task state store (which holds the
        links) the task fails as the storage failure says, and the retry stores them; without it the
        links are returned, so that nothing paid for is lost."""
        if cache is not None:
            try:
                urls = cache.store(prepared, urls, cache_key=self.cache_key, usage=usage)
            except SeedreamCacheStoreError as err:
                self._report(context, usage, failing=True)
                if state is None:
                    self.log.warning(
                        "%s. Returning the links instead: this Airflow cannot keep them for a retry.", err
                    )
                    return self._remember(prepared, urls, usage, stored=False)
                self.log.error("%s. The links are kept in the task state store: a retry stores them.", err)
                if err.retryable:
                    raise
                raise AirflowFailException(f"{type(err).__name__}: {err}") from err
        self._report(context, usage)
        return self._remember(prepared, urls, usage, stored=cache is not None)

    def _remember(
        self, prepared: PreparedGeneration, locations: list[str], usage: Usage, *, stored: bool
    ) -> list[str]:
        """Keep for OpenLineage what this task read and wrote: links are not data that stays."""
        request = prepared.request
        self._lineage = LineageFacts(
            inputs=[reference.value for reference in request.references if reference.kind == "path"],
            outputs=locations if stored else [],
            models=[request.model],
            images=len(locations),
            usage=usage.to_dict(),
        )
        return locations

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the reference files read, the images stored in ``cache``, the run's spend."""
        return lineage_of(self._lineage)

    def _report(self, context: Context, usage: Usage, failing: bool = False) -> None:
        """What this try spent: in the log, and as XCom ``usage``. When the try is failing, a failure
        to push is logged, so that the Seedream failure stays the one the task reports."""
        self.log.info("Seedream spend: %s", usage.summary())
        try:
            context["ti"].xcom_push(key="usage", value=usage.to_dict())
        except Exception:
            if not failing:
                raise
            self.log.exception("Could not push the usage XCom of this failing try")

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
        return GenerationState(store, context["ti"])
