"""``@task.seedream``: a TaskFlow function writes the prompt; the task generates as
``SeedreamGenerateOperator`` does and returns the image URLs."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.providers.common.compat.sdk import (
    SET_DURING_EXECUTION,
    DecoratedOperator,
    TaskDecorator,
    context_merge,
    determine_kwargs,
    task_decorator_factory,
)

from airflow_provider_seedream._internal.operator_support import task_failure
from airflow_provider_seedream.contract.exceptions import SeedreamValidationError
from airflow_provider_seedream.contract.request import GENERATION_PARAMETERS
from airflow_provider_seedream.operators.seedream import SeedreamGenerateOperator

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context


RETURNABLE_ARGUMENTS = (*GENERATION_PARAMETERS, "cache_key")
"""What the function may return: the generation parameters, and the cache key of what it wrote the
prompt from (only the function knows that, for a prompt written from its arguments)."""


def generation_arguments(returned: Any) -> dict[str, Any]:
    """What the decorated function returned, as generation arguments: a prompt, or a dict of them."""
    if isinstance(returned, str):
        return {"prompt": returned}
    if isinstance(returned, Mapping):
        unknown = sorted(str(key) for key in returned if key not in RETURNABLE_ARGUMENTS)
        if unknown:
            raise SeedreamValidationError(
                f"@task.seedream: the returned dict has {', '.join(map(repr, unknown))}, which is not a "
                f"generation argument; allowed: {', '.join(RETURNABLE_ARGUMENTS)}."
            )
        if "prompt" not in returned:
            raise SeedreamValidationError(
                f"@task.seedream: the returned dict has no 'prompt' (keys: {', '.join(returned) or 'none'})."
            )
        return dict(returned)
    raise SeedreamValidationError(
        "@task.seedream: the function must return the prompt (a str) or a dict of generation arguments "
        f"such as {{'prompt': ..., 'size': ...}}; it returned {type(returned).__name__}: {returned!r:.80}."
    )


class _SeedreamDecoratedOperator(DecoratedOperator, SeedreamGenerateOperator):
    """Calls the function when the task runs; what it returns sets the prompt (and any other generation
    argument, over the decorator's), then the generation runs exactly as ``SeedreamGenerateOperator``'s:
    same validation, spend safety and XCom."""

    template_fields: Sequence[str] = (
        *DecoratedOperator.template_fields,
        *SeedreamGenerateOperator.template_fields,
    )
    template_fields_renderers: ClassVar[dict[str, str]] = {**DecoratedOperator.template_fields_renderers}
    custom_operator_name = "@task.seedream"

    def __init__(
        self,
        *,
        python_callable: Callable[..., Any],
        op_args: Collection[Any] | None = None,
        op_kwargs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            python_callable=python_callable,
            op_args=op_args,
            op_kwargs=op_kwargs,
            prompt=SET_DURING_EXECUTION,
            **kwargs,
        )

    def execute(self, context: Context) -> list[str]:
        context_merge(context, self.op_kwargs)
        returned = self.python_callable(
            *self.op_args, **determine_kwargs(self.python_callable, self.op_args, context)
        )
        try:
            arguments = generation_arguments(returned)
        except SeedreamValidationError as err:  # the same function returns the same thing on a retry
            raise task_failure(err) from err
        for name, value in arguments.items():
            setattr(self, name, value)
        return SeedreamGenerateOperator.execute(self, context)


def seedream_task(python_callable: Callable[..., Any] | None = None, **kwargs: Any) -> TaskDecorator:
    """
    Generate images from what a function returns: the prompt (a ``str``), or a dict of generation
    arguments (``{"prompt": ..., "size": ..., "images": [...]}``, and ``cache_key``). The task returns
    the image URLs (XCom), as ``SeedreamGenerateOperator`` does, and takes its arguments (``model``,
    ``size``, ``seedream_conn_id``, ``retry_possibly_billed``, ``cache``...); a returned dict
    overrides them.

    Usage::

        @task.seedream(size="2K", watermark=False)
        def poster(product: dict) -> str:
            return f"Poster of a {product['colour']} {product['name']}, studio light"

        urls = poster.expand(product=catalog)
    """
    if "multiple_outputs" in kwargs:
        raise TypeError("@task.seedream returns the list of image URLs: multiple_outputs is not supported.")
    return task_decorator_factory(
        python_callable=python_callable,
        multiple_outputs=False,
        decorated_operator_class=_SeedreamDecoratedOperator,
        **kwargs,
    )
