"""Reference images as the API takes them: classified by where their bytes are (URL, data URI, file),
and checked by content against the model's limits before they are inlined as data URIs.

Plain Python, no Airflow and no I/O: the hook reads files and hands their bytes to :func:`inline_image`.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal

from airflow_provider_seedream.contract.exceptions import SeedreamValidationError
from airflow_provider_seedream.contract.imageinfo import read_image_info
from airflow_provider_seedream.contract.specs import ModelSpec

OBJECT_STORE_SCHEMES = frozenset({"s3", "s3a", "gs", "gcs", "abfs", "abfss", "az", "adl"})
"""Object stores: keys, no folders (and a ``mkdir`` there would create a missing bucket)."""
COMMIT_ON_UPLOAD_SCHEMES = frozenset({"s3", "s3a"})
"""Stores written through a managed upload whose object appears only once complete (S3, by boto3's
transfer); the other object stores get a temporary object and a move."""
OBJECT_STORAGE_SCHEMES = OBJECT_STORE_SCHEMES | {"file", "wasb", "wasbs", "hdfs", "memory"}
"""URI schemes read through Airflow's ObjectStoragePath. Anything else with a scheme is refused."""

_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")
_DATA_URI = re.compile(r"^data:image/([a-zA-Z0-9.+-]+);base64,(.*)$", re.DOTALL)
_MEDIA_SUBTYPE_FORMAT = {"jpg": "jpeg", "pjpeg": "jpeg", "x-png": "png", "x-ms-bmp": "bmp", "tif": "tiff"}


def short_repr(value: object, limit: int = 80) -> str:
    """``repr`` short enough for an error message. A data URI shows its type and length only: its
    content is the user's image, and megabytes long."""
    if isinstance(value, str) and value.lstrip()[:5].lower() == "data:":
        head = value.lstrip().split(",", 1)[0]
        return repr(f"{head[:60]},... ({len(value):,} characters)")
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 5]}...{text[-1]}"


def ratio_text(value: Fraction) -> str:
    return str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"


@dataclass(frozen=True)
class Reference:
    """A reference image as given, classified by where its bytes are."""

    kind: Literal["url", "data_uri", "path"]
    value: Any
    """The URL or data URI string, or a path: a local path string, a storage URI or a path object."""

    def __str__(self) -> str:
        return short_repr(str(self.value))


def classify_reference(value: object) -> Reference:
    """Tell a URL, a data URI and a file to read apart, refusing anything the API cannot take."""
    if isinstance(value, str):
        text = value.strip()
        lowered = text.lower()
        if lowered.startswith(("http://", "https://")):
            if not re.match(r"^https?://[^/\s?#]+", text, re.IGNORECASE):
                raise ValueError(f"{short_repr(value)} is not a valid URL")
            return Reference("url", text)
        if lowered.startswith("data:"):
            match = _DATA_URI.match(text)
            if not match:
                raise ValueError(
                    f"{short_repr(value)} is not a data URI of the form data:image/<format>;base64,<data>"
                )
            return Reference("data_uri", text)
        scheme = _SCHEME.match(text)
        if scheme:
            if scheme.group(1).lower() not in OBJECT_STORAGE_SCHEMES:
                raise ValueError(
                    f"{short_repr(value)} has an unsupported scheme {scheme.group(1)!r}; use an http(s) URL, "
                    f"a data URI, a local path or one of {', '.join(sorted(OBJECT_STORAGE_SCHEMES))}"
                )
            return Reference("path", text)
        if not text:
            raise ValueError("an empty string is not a reference image")
        return Reference("path", text)
    # pathlib.Path, ObjectStoragePath and other path objects: read by the hook.
    if isinstance(value, os.PathLike) or hasattr(value, "read_bytes"):
        return Reference("path", value)
    raise ValueError(f"{short_repr(value)} ({type(value).__name__}) is not a URL, data URI or path")


def is_single_reference(value: object) -> bool:
    return isinstance(value, (str, os.PathLike)) or hasattr(value, "read_bytes")


def check_image_bytes(data: bytes, spec: ModelSpec, label: str) -> str:
    """Check reference bytes against the model's limits by content; returns the media type."""
    limits = spec.reference_limits
    if limits.max_bytes is not None and len(data) > limits.max_bytes:
        raise SeedreamValidationError(
            f"{label}: {len(data):,} bytes is over the {limits.max_bytes:,}-byte limit of {spec.name}"
        )
    info = read_image_info(data)
    if info is None or info.width is None or info.height is None:
        raise SeedreamValidationError(f"{label}: the content is not an image ({', '.join(limits.formats)})")
    if info.format not in limits.formats:
        raise SeedreamValidationError(
            f"{label}: {info.format} images are not accepted by {spec.name}; use {', '.join(limits.formats)}"
        )
    if limits.min_side_exclusive is not None and min(info.width, info.height) <= limits.min_side_exclusive:
        raise SeedreamValidationError(
            f"{label}: {info.width}x{info.height} px; {spec.name} needs width and height over "
            f"{limits.min_side_exclusive} px"
        )
    if limits.max_pixels is not None and info.width * info.height > limits.max_pixels:
        raise SeedreamValidationError(
            f"{label}: {info.width}x{info.height} px is {info.width * info.height:,} pixels; "
            f"{spec.name} takes at most {limits.max_pixels:,}"
        )
    if limits.aspect_ratio is not None:
        low, high = limits.aspect_ratio
        if not low <= Fraction(info.width, info.height) <= high:
            raise SeedreamValidationError(
                f"{label}: aspect ratio {info.width}x{info.height} is outside "
                f"{ratio_text(low)}..{ratio_text(high)} for {spec.name} references"
            )
    return info.media_type


def inline_image(data: bytes, spec: ModelSpec, label: str) -> str:
    """Check a reference image's bytes and return them as the data URI the API takes."""
    media_type = check_image_bytes(data, spec, label)
    return f"data:{media_type};base64,{base64.b64encode(data).decode('ascii')}"


def check_data_uri(uri: str, spec: ModelSpec, label: str) -> None:
    """A data URI must decode, and hold an image the model accepts, in the format it declares."""
    match = _DATA_URI.match(uri.strip())
    if not match:
        raise SeedreamValidationError(
            f"{label}: not a data URI of the form data:image/<format>;base64,<data>"
        )
    declared = match.group(1).lower()
    declared = _MEDIA_SUBTYPE_FORMAT.get(declared, declared)
    try:
        data = base64.b64decode(match.group(2), validate=True)
    except (binascii.Error, ValueError):
        raise SeedreamValidationError(f"{label}: the base64 data of the data URI does not decode") from None
    media_type = check_image_bytes(data, spec, label)
    if media_type != f"image/{declared}":
        raise SeedreamValidationError(
            f"{label}: declared image/{match.group(1)} but the content is {media_type}"
        )
