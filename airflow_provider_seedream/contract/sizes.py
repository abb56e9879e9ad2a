"""The ``size`` parameter: a model's presets (``2K``, ``4K``...) or ``WIDTHxHEIGHT`` within its total
pixel range and aspect ratios (``ModelSpec``), and the spelling it is sent in."""

from __future__ import annotations

import re
from fractions import Fraction

from airflow_provider_seedream.contract.references import ratio_text
from airflow_provider_seedream.contract.specs import ModelSpec

_SIZE_WXH = re.compile(r"^([0-9]+)[xX]([0-9]+)$")


def size_problem(spec: ModelSpec, size: str) -> str | None:
    """What is wrong with ``size`` on ``spec``'s model, naming what is allowed; ``None`` when valid."""
    low, high = spec.pixel_range
    low_ratio, high_ratio = spec.aspect_ratio
    allowed = (
        f"use one of {', '.join(spec.size_presets)}, or WIDTHxHEIGHT with total pixels "
        f"{low:,}..{high:,} and aspect ratio {ratio_text(low_ratio)}..{ratio_text(high_ratio)}"
    )
    if _preset(spec, size) is not None:
        return None
    match = _SIZE_WXH.match(size.strip())
    if not match:
        return f"size={size!r} is not valid for {spec.name}: {allowed}"
    width, height = int(match.group(1)), int(match.group(2))
    if width == 0 or height == 0:
        return f"size={size!r}: width and height must be positive; {allowed}"
    if not low <= width * height <= high:
        return f"size={size!r}: total pixels {width * height:,} are outside {low:,}..{high:,} for {spec.name}"
    if not low_ratio <= Fraction(width, height) <= high_ratio:
        return (
            f"size={size!r}: aspect ratio {ratio_text(Fraction(width, height))} is outside "
            f"{ratio_text(low_ratio)}..{ratio_text(high_ratio)} for {spec.name}"
        )
    return None


def normalized_size(spec: ModelSpec, size: str) -> str:
    """A valid ``size`` as sent: a preset in the spec's spelling, or ``WIDTHxHEIGHT`` without spaces or
    leading zeros."""
    size = size.strip()
    preset = _preset(spec, size)
    if preset is not None:
        return preset
    width, height = _SIZE_WXH.match(size).groups()  # type: ignore[union-attr]  # validated
    return f"{int(width)}x{int(height)}"


def pixels(spec: ModelSpec, size: str | None) -> tuple[int, int]:
    """Width and height of a valid ``size`` (unset: the model's default)."""
    if size is None:
        return spec.default_size
    normalized = normalized_size(spec, size)
    if normalized in spec.size_presets:
        return spec.size_presets[normalized]
    width, height = normalized.split("x")
    return int(width), int(height)


def _preset(spec: ModelSpec, size: str) -> str | None:
    """The preset ``size`` names, in the spec's own spelling, whatever its case."""
    wanted = size.strip().upper()
    return next((name for name in spec.size_presets if name.upper() == wanted), None)
