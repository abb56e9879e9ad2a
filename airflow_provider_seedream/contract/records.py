"""One stored image's record, defined once: what a download's manifest lists, what a cache generation's
record holds of each image, and what the UI's gallery shows; and what a finished task read and wrote.

Plain Python (pydantic, no Airflow). Records are written by tasks, so wherever one is read it is
validated here first: a record that does not parse is no record.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

SHA256_PATTERN = r"^[0-9a-f]{64}$"
MediaType = Literal["image/png", "image/jpeg", "image/webp", "image/bmp", "image/tiff", "image/gif"]
"""``imageinfo.MEDIA_TYPES``' values: the formats the API takes and returns."""


class GenerationFacts(BaseModel):
    """What made a cached image: its generation's model, prompt, when and by which task, and the price
    per image it was estimated at (each image of a generation is billed alike)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    model: str | None = None
    prompt: str | None = None
    generated_at: str | None = None
    generated_by: dict[str, Any] | None = None
    estimated_cost_usd: float | None = None
    price_source: str | None = None

    @classmethod
    def of_record(cls, record: dict[str, Any]) -> GenerationFacts:
        """The facts of a cache generation's record (``_internal.cache.records``)."""
        usage = record.get("usage")
        usage = usage if isinstance(usage, dict) else {}
        return cls.model_validate(
            {
                **record,
                "estimated_cost_usd": usage.get("price_per_image_usd"),
                "price_source": usage.get("price_source"),
            }
        )


class StoredImage(BaseModel):
    """One stored image: where it is, what it is (sha256, size, type, pixels), what it was stored from
    (a link without its signature, or the cache location it was copied from), and for a copy of a
    cached image its generation's facts."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    source: str
    location: str
    sha256: str = Field(pattern=SHA256_PATTERN)
    bytes: int = Field(gt=0)
    content_type: MediaType
    width: int | None = Field(default=None, gt=0)
    height: int | None = Field(default=None, gt=0)
    stored_at: str | None = None
    generation: GenerationFacts | None = None

    def to_dict(self) -> dict[str, Any]:
        """The manifest's entry (JSON-serializable)."""
        return self.model_dump(mode="json")


def parse_image(entry: Any) -> StoredImage | None:
    """``entry`` as a stored image, or ``None`` when it is not one (a record written by a task is input,
    not trust)."""
    try:
        return StoredImage.model_validate(entry)
    except ValidationError:
        return None


@dataclass
class LineageFacts:
    """What a finished task read and wrote, kept on the operator for OpenLineage (``_internal.lineage``):
    locations (paths, URIs or ``ObjectStoragePath``), never links, whose signatures must not leave."""

    inputs: list[Any]
    outputs: list[Any]
    models: list[str]
    images: int
    usage: dict[str, Any]
