"""One generation sent: its spend reserved first in every ceiling that applies, the POST retried only as
the billing rule allows (``exceptions.may_retry``), and the reservation settled after the answer."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from airflow_provider_seedream._internal import metrics
from airflow_provider_seedream._internal.spending import SpendGuard
from airflow_provider_seedream._internal.transport import RetryBudget, post_generation
from airflow_provider_seedream.contract.exceptions import (
    SeedreamError,
    SeedreamPossiblyBilledError,
    SeedreamSpendLimitError,
    may_retry,
)
from airflow_provider_seedream.contract.redact import mask_signatures

if TYPE_CHECKING:
    import requests

    from airflow_provider_seedream._internal.spending import Reservation
    from airflow_provider_seedream.contract.connection import ConnectionSettings
    from airflow_provider_seedream.contract.redact import Secrets
    from airflow_provider_seedream.contract.request import PreparedGeneration
    from airflow_provider_seedream.contract.usage import Usage


def send_generation(
    session: requests.Session,
    base_url: str,
    prepared: PreparedGeneration,
    *,
    conn_id: str,
    settings: ConnectionSettings,
    read_timeout: float | None,
    secrets: Secrets,
    retry_possibly_billed: bool,
    usage: Usage,
    max_spend_usd: Any,
    log: Any,
) -> list[str]:
    """POST ``prepared`` to its model's endpoint below ``base_url`` until it answers or may not be sent
    again, and return its links, their signatures registered with Airflow's secret masker.

    A retry after a failure that said nothing was generated (429, a prompt 503, no connection) keeps
    the reservation; a resend after one that may have been billed (only with
    ``retry_possibly_billed``) keeps the first as spent and reserves anew; a try interrupted while
    waiting leaves its reservation as it is, counted."""
    request = prepared.request
    most, started = request.most_images, time.monotonic()
    url = f"{base_url}{request.spec.path}"
    timeouts = (settings.connect_timeout, read_timeout if read_timeout is not None else settings.read_timeout)
    budget = RetryBudget(settings)
    guard = SpendGuard.for_generation(settings, conn_id, usage, max_spend_usd)
    reservation = _reserve(guard, most, request.model)
    attempt = 0
    while True:  # a plain loop, not tenacity: see RetryBudget
        attempt += 1
        try:
            urls = post_generation(
                session,
                url,
                prepared.body,
                timeouts,
                max_links=request.spec.max_total_images,
                secrets=secrets,
            )
            break
        except SeedreamError as err:
            usage.count_failure(err, most)
            again = may_retry(err, retry_possibly_billed=retry_possibly_billed) and not budget.spent(err)
            billed = isinstance(err, SeedreamPossiblyBilledError)
            if reservation is not None and (billed or not again):
                (reservation.keep if billed else reservation.release)(log)
            if not again:
                raise
            if billed:
                reservation = _reserve(guard, most, request.model)  # the resend may bill again
            wait = budget.wait(attempt, err)
            log.warning("Seedream request failed (%s); %s in %.1f s", err, budget.describe(err), wait)
            time.sleep(wait)
    usage.count_answer(len(urls))
    if reservation is not None:
        reservation.settle(len(urls), log)
    metrics.count(metrics.IMAGES_GENERATED, len(urls), model=request.model)
    metrics.count(metrics.ESTIMATED_COST, len(urls) * (usage.price_per_image_usd or 0), model=request.model)
    mask_signatures(urls)
    log.info(
        "Seedream %s: size=%s, %d reference(s), %d image(s) in %.1f s",
        request.model,
        request.normalized_size or "default",
        len(request.images or ()),
        len(urls),
        time.monotonic() - started,
    )
    return urls


def _reserve(guard: SpendGuard | None, images: int, model: str) -> Reservation | None:
    if guard is None:
        return None
    try:
        return guard.reserve(images)
    except SeedreamSpendLimitError:
        metrics.count(metrics.GENERATIONS_REFUSED, 1, model=model)
        raise
