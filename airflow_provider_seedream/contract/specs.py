"""
The Seedream API contract as data: one entry per model.

Everything that differs between models lives in its ``ModelSpec``: the endpoint, where each request
parameter goes in the body, the reference-image rules, the size presets with their pixel sizes, the
pixel range, the ``max_images`` limits and the list price per image. Validation, payload building,
the spend report and the sandbox server all read these entries, so supporting a new model is one
more ``ModelSpec`` in ``MODEL_SPECS`` (the test suite proves it with a fictional one). Sources:
Novita's API reference pages for Seedream 4.0, 4.5 and 5.0 lite; prices, ``ListPrice``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from fractions import Fraction

DEFAULT_MODEL = "seedream-4.5"

PROMPT_RECOMMENDED_WORDS = 600
PROMPT_RECOMMENDED_CJK_CHARACTERS = 300

REFERENCE_READ_LIMIT = 32 * 1024 * 1024
"""Largest reference file read for a model whose page documents no byte limit (Seedream 4.5). The
provider's own bound, not the API's: inlined as base64 it makes a body of about 43 MB, which is
already more than most proxies pass."""


def body_fields(**overrides: tuple[str, ...] | None) -> dict[str, tuple[str, ...]]:
    """Where each request parameter goes in the JSON body: its own name at the top level, unless
    ``overrides`` names another path; ``None`` leaves a parameter out (the model has no such option)."""
    names = ("prompt", "size", "images", "sequential_image_generation", "max_images", "watermark")
    fields: dict[str, tuple[str, ...] | None] = {name: (name,) for name in names}
    fields.update(overrides)
    return {name: path for name, path in fields.items() if path is not None}


@dataclass(frozen=True)
class ReferenceLimits:
    """What a reference image must satisfy, for the checks we can make on its bytes."""

    formats: tuple[str, ...]
    max_bytes: int | None = None
    min_side_exclusive: int | None = None
    max_pixels: int | None = None
    aspect_ratio: tuple[Fraction, Fraction] | None = None


@dataclass(frozen=True)
class ListPrice:
    """What one generated image costs at list price, and where that figure comes from."""

    usd_per_image: float
    source: str
    as_of: str
    """When the figure was seen (YYYY-MM)."""


PUBLIC_LISTINGS = "public list prices seen on third-party pages, not Novita's own pricing page"
"""Novita publishes no per-image price for these models (../shared/api-contract.md): an estimate."""


@dataclass(frozen=True)
class ModelSpec:
    name: str
    path: str
    """Endpoint path below the API base URL."""
    fields: Mapping[str, tuple[str, ...]]
    """Request parameter -> its path in the body (see :func:`body_fields`)."""
    max_references: int
    reference_limits: ReferenceLimits
    size_presets: Mapping[str, tuple[int, int]]
    """Preset name -> the pixel size it stands for."""
    pixel_range: tuple[int, int]
    """Inclusive range of width*height for a ``WxH`` size."""
    default_size: tuple[int, int] = (2048, 2048)
    """What the API generates when no size is sent."""
    aspect_ratio: tuple[Fraction, Fraction] = (Fraction(1, 16), Fraction(16))
    sequential_modes: tuple[str, ...] = ("auto", "disabled")
    max_images_range: tuple[int, int] = (1, 15)
    max_total_images: int = 15
    """References plus generated images may not exceed this."""
    optimize_prompt_modes: tuple[str, ...] = field(default=())
    list_price: ListPrice | None = None
    """Billing is per generated image. None: no price known, so no cost is estimated unless the
    connection's ``price_per_image`` gives one."""


SEEDREAM_40 = ModelSpec(
    name="seedream-4.0",
    path="/v3/seedream-4.0",
    fields=body_fields(),
    max_references=10,
    reference_limits=ReferenceLimits(
        formats=("jpeg", "png"),
        max_bytes=10 * 1024 * 1024,
        min_side_exclusive=14,
        max_pixels=6000 * 6000,
        aspect_ratio=(Fraction(1, 3), Fraction(3)),
    ),
    size_presets={"1K": (1024, 1024), "2K": (2048, 2048), "4K": (4096, 4096)},
    pixel_range=(1024 * 1024, 4096 * 4096),
    list_price=ListPrice(0.03, PUBLIC_LISTINGS, "2026-11"),
)
SEEDREAM_45 = ModelSpec(
    name="seedream-4.5",
    path="/v3/seedream-4.5",
    fields=body_fields(
        images=("image",),
        max_images=("sequential_image_generation_options", "max_images"),
        optimize_prompt_mode=("optimize_prompt_options", "mode"),
    ),
    max_references=14,
    reference_limits=ReferenceLimits(formats=("jpeg", "png", "webp", "bmp", "tiff", "gif")),
    size_presets={"2K": (2048, 2048), "4K": (4096, 4096)},
    pixel_range=(3_686_400, 16_777_216),
    optimize_prompt_modes=("standard",),
    list_price=ListPrice(0.04, PUBLIC_LISTINGS, "2026-11"),
)
# Its page: the body shape and reference rules of 4.5; only the presets and the pixel range differ,
# 2560x1440 .. 3072x3072x1.1025 (10,404,495.36, rounded up as the page gives it).
SEEDREAM_50_LITE = replace(
    SEEDREAM_45,
    name="seedream-5.0-lite",
    path="/v3/seedream-5.0-lite",
    size_presets={"2K": (2048, 2048), "3K": (3072, 3072)},
    pixel_range=(3_686_400, 10_404_496),
    list_price=ListPrice(0.035, PUBLIC_LISTINGS, "2026-11"),
)

MODEL_SPECS: dict[str, ModelSpec] = {spec.name: spec for spec in (SEEDREAM_40, SEEDREAM_45, SEEDREAM_50_LITE)}

MAX_GENERATED_IMAGES = max(spec.max_total_images for spec in MODEL_SPECS.values())
"""The most images one generation can return, over every model."""
