"""What a generation task spent: requests sent, images paid for or reused, and their estimated cost.

Costs are estimates: the model's list price (``ModelSpec.list_price``, from public listings) unless
the connection's ``price_per_image`` extra gives the price you pay. Plain Python, no Airflow.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from airflow_provider_seedream.contract.exceptions import (
    SeedreamConnectionError,
    SeedreamError,
    SeedreamPossiblyBilledError,
)
from airflow_provider_seedream.contract.specs import MODEL_SPECS


@dataclass
class Usage:
    """One task's generation spend. ``images_generated`` are those the API returned (billed per image);
    ``possibly_billed_requests`` were sent and got no usable answer, so they may have generated (and
    billed) up to ``possibly_billed_images`` images nobody received."""

    model: str
    price_per_image_usd: float | None
    price_source: str
    requests_sent: int = 0
    images_generated: int = 0
    images_reused: int = 0
    possibly_billed_requests: int = 0
    possibly_billed_images: int = 0
    ceilings: list[dict[str, Any]] = field(default_factory=list)
    """The spend ceilings that applied (``contract.spend``): each one's name, scope, limit, and what
    was spent, reserved and remained after this task's last request."""

    @classmethod
    def for_model(cls, model: str, prices: Mapping[str, float], conn_id: str) -> Usage:
        """The price ``prices`` (a connection's ``price_per_image``) gives ``model``, else its list price."""
        if model in prices:
            return cls(model, prices[model], f"connection {conn_id!r} extra price_per_image")
        spec = MODEL_SPECS.get(model)
        if spec is None or spec.list_price is None:
            return cls(model, None, "no price known: set price_per_image in the connection's extra")
        listed = spec.list_price
        return cls(model, listed.usd_per_image, f"list price of {model}, {listed.source}, {listed.as_of}")

    def count_answer(self, images: int) -> None:
        """A request answered with ``images`` links: each is billed."""
        self.requests_sent += 1
        self.images_generated += images

    def count_failure(self, error: SeedreamError, most_images: int) -> None:
        """A request that failed: sent unless it could not connect; possibly billed, for up to
        ``most_images``, when it was sent and no usable answer came back."""
        if not isinstance(error, SeedreamConnectionError):
            self.requests_sent += 1
        if isinstance(error, SeedreamPossiblyBilledError):
            self.possibly_billed_requests += 1
            self.possibly_billed_images += most_images

    def count_interrupted(self, most_images: int) -> None:
        """The wait for an answer was interrupted: whether the request had left is unknown, so it
        counts as possibly billed, for up to ``most_images``."""
        self.possibly_billed_requests += 1
        self.possibly_billed_images += most_images

    @property
    def estimated_cost_usd(self) -> float | None:
        return self._at_price(self.images_generated)

    @property
    def estimated_saving_usd(self) -> float | None:
        """What the reused images would have cost."""
        return self._at_price(self.images_reused)

    def _at_price(self, images: int) -> float | None:
        return None if self.price_per_image_usd is None else round(images * self.price_per_image_usd, 6)

    def to_dict(self) -> dict[str, Any]:
        """The XCom ``usage`` and the manifest's record: JSON-serializable."""
        return {
            **asdict(self),
            "estimated_cost_usd": self.estimated_cost_usd,
            "estimated_saving_usd": self.estimated_saving_usd,
        }

    def summary(self) -> str:
        """One line for the task log: what was sent, paid and reused, and the estimate."""
        text = (
            f"{self.model}: {_count(self.requests_sent, 'request')} sent, "
            f"{_count(self.images_generated, 'image')} generated (paid), {self.images_reused} reused"
        )
        if self.price_per_image_usd is None:
            text += f"; no cost estimated ({self.price_source})"
        else:
            text += (
                f"; estimated cost ${self.estimated_cost_usd:.2f} (saved ${self.estimated_saving_usd:.2f}) "
                f"at ${self.price_per_image_usd:g} per image ({self.price_source}; an estimate)"
            )
        if self.possibly_billed_requests:
            text += (
                f"; {_count(self.possibly_billed_requests, 'request')} got no usable answer and may have "
                f"been billed for up to {_count(self.possibly_billed_images, 'image')}"
            )
            if self.price_per_image_usd is not None:
                text += f" (${self.possibly_billed_images * self.price_per_image_usd:.2f}) more"
        for ceiling in self.ceilings:
            text += (
                f"; {ceiling['ceiling']}={ceiling['limit_usd']:g}: ${ceiling['remaining_usd']:.2f} remaining "
                f"(${ceiling['spent_usd']:.2f} spent, ${ceiling['reserved_usd']:.2f} reserved)"
            )
        return text


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"
