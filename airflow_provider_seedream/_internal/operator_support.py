"""What the operators and the sensor share: whether an argument is known at parse time, what a task
raises for a Seedream error, and their OpenLineage, built only when the OpenLineage provider asks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_seedream.contract.exceptions import SeedreamError, may_retry

if TYPE_CHECKING:
    from airflow_provider_seedream.contract.records import LineageFacts


def is_literal(value: Any) -> bool:
    """A value known when the DAG is parsed: no Jinja, no XComArg or other deferred value."""
    if isinstance(value, str):
        return "{{" not in value and "{%" not in value
    if isinstance(value, (list, tuple)):
        return all(is_literal(item) for item in value)
    return (
        value is None
        or isinstance(value, (bool, int, float))
        or hasattr(value, "read_bytes")
        or hasattr(value, "__fspath__")
    )


def task_failure(err: SeedreamError, *, retry_possibly_billed: bool = False) -> Exception:
    """What a task raises for ``err``: the error itself when a retry may succeed without paying twice
    (``exceptions.may_retry``), else an ``AirflowFailException`` that spends no retries. Its message
    starts with the error's type, which is also its ``__cause__`` (raise it ``from err``), so logs and
    ``on_failure_callback`` (``context["exception"]``) see which failure it was."""
    if may_retry(err, retry_possibly_billed=retry_possibly_billed):
        return err
    return AirflowFailException(f"{type(err).__name__}: {err}")


def lineage_of(facts: LineageFacts | None) -> Any:
    """The ``OperatorLineage`` of ``get_openlineage_facets_on_complete``: the OpenLineage provider calls
    it, so only then is the OpenLineage client imported."""
    from airflow_provider_seedream._internal.lineage import operator_lineage

    return operator_lineage(facts)
