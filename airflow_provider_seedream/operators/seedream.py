"""Operators that generate images with Seedream and store them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_seedream.exceptions import SeedreamError
from airflow_provider_seedream.hooks.seedream import SeedreamHook
from airflow_provider_seedream.request import build_request
from airflow_provider_seedream.specs import DEFAULT_MODEL

if TYPE_CHECKING:
    from airflow.sdk import Context


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
    template_fields_renderers = {"prompt": "py"}
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
        seedream_conn_id: str = SeedreamHook.default_conn_name,
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
        hook = SeedreamHook(seedream_conn_id=self.seedream_conn_id)
        try:
            return hook.generate(**self._request_arguments(), timeout=self.request_timeout)
        except SeedreamError as err:
            raise _without_retries_if_hopeless(err) from err
