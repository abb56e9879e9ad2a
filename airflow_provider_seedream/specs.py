"""
The Seedream API contract as data: one entry per model.

Validation, payload building and the sandbox server all read these entries, so supporting a new
model is one more ``ModelSpec`` in ``MODEL_SPECS``. Sources: ``shared/seeds/`` (Novita's reference
pages for Seedream 4.0 and 4.5).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from airflow_provider_seedream.exceptions import SeedreamValidationError

DEFAULT_MODEL = "seedream-4.5"

SEQUENTIAL_MODES = ("auto", "disabled")
MAX_IMAGES_RANGE = (1, 15)
MAX_TOTAL_IMAGES = 15
"""References plus generated images may not exceed this, for every model."""

REFERENCE_READ_LIMIT = 32 * 1024 * 1024
"""Largest reference file read for a model whose page documents no byte limit (Seedream 4.5). The
provider's own bound, not the API's: inlined as base64 it makes a body of about 43 MB, which is
already more than most proxies pass."""

PROMPT_RECOMMENDED_WORDS = 600
PROMPT_RECOMMENDED_CJK_CHARACTERS = 300


@dataclass(frozen=True)
class ReferenceLimits:
    """What a reference image must satisfy, for the checks we can make on its bytes."""

    formats: tuple[str, ...]
    max_bytes: int | None = None
    min_side_exclusive: int | None = None
    max_pixels: int | None = None
    aspect_ratio: tuple[Fraction, Fraction] | None = None


@dataclass(frozen=True)
class ModelSpec:
    name: str
    path: str
    """Endpoint path below the API base URL."""
    reference_field: str
    max_references: int
    reference_limits: ReferenceLimits
    size_presets: tuple[str, ...]
    pixel_range: tuple[int, int]
    """Inclusive range of width*height for a ``WxH`` size."""
    max_images_path: tuple[str, ...]
    """Where ``max_images`` goes in the body: top level, or nested in an options object."""
    optimize_prompt_mode_path: tuple[str, ...] | None = None
    """Where the prompt-optimisation mode goes; ``None`` when the model has no such option."""
    optimize_prompt_modes: tuple[str, ...] = ()
    aspect_ratio: tuple[Fraction, Fraction] = (Fraction(1, 16), Fraction(16))


MODEL_SPECS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="seedream-4.0",
            path="/v3/seedream-4.0",
            reference_field="images",
            max_references=10,
            reference_limits=ReferenceLimits(
                formats=("jpeg", "png"),
                max_bytes=10 * 1024 * 1024,
                min_side_exclusive=14,
                max_pixels=6000 * 6000,
                aspect_ratio=(Fraction(1, 3), Fraction(3)),
            ),
            size_presets=("1K", "2K", "4K"),
            pixel_range=(1024 * 1024, 4096 * 4096),
            max_images_path=("max_images",),
        ),
        ModelSpec(
            name="seedream-4.5",
            path="/v3/seedream-4.5",
            reference_field="image",
            max_references=14,
            reference_limits=ReferenceLimits(formats=("jpeg", "png", "webp", "bmp", "tiff", "gif")),
            size_presets=("2K", "4K"),
            pixel_range=(3_686_400, 16_777_216),
            max_images_path=("sequential_image_generation_options", "max_images"),
            optimize_prompt_mode_path=("optimize_prompt_options", "mode"),
            optimize_prompt_modes=("standard",),
        ),
    )
}


def get_spec(model: str) -> ModelSpec:
    """The spec of ``model``, or a validation error listing the models there are."""
    try:
        return MODEL_SPECS[model]
    except (KeyError, TypeError):
        raise SeedreamValidationError(
            f"model={model!r} is not supported; choose one of {', '.join(sorted(MODEL_SPECS))}"
        ) from None
