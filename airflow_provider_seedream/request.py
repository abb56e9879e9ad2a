"""
Seedream generation requests: validated against the model's spec, then turned into the wire body.

Plain Python (pydantic, no Airflow), so the operator, the hook and the sandbox server share one
source of truth. Nothing here does I/O: reference files are read by the hook, which hands their
bytes to :func:`inline_image`.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PrivateAttr,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    model_validator,
)

from airflow_provider_seedream._imageinfo import read_image_info
from airflow_provider_seedream.exceptions import SeedreamValidationError
from airflow_provider_seedream.specs import (
    DEFAULT_MODEL,
    MODEL_SPECS,
    PROMPT_RECOMMENDED_CJK_CHARACTERS,
    PROMPT_RECOMMENDED_WORDS,
    ModelSpec,
)

log = logging.getLogger(__name__)

OBJECT_STORAGE_SCHEMES = frozenset(
    {"file", "s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "wasb", "wasbs", "hdfs", "memory"}
)
"""URI schemes read through Airflow's ObjectStoragePath. Anything else with a scheme is refused."""

_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")
_DATA_URI = re.compile(r"^data:image/([a-zA-Z0-9.+-]+);base64,(.*)$", re.DOTALL)
_SIZE_WXH = re.compile(r"^([0-9]+)[xX]([0-9]+)$")
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_MEDIA_SUBTYPE_FORMAT = {"jpg": "jpeg", "pjpeg": "jpeg", "x-png": "png", "x-ms-bmp": "bmp", "tif": "tiff"}


def short_repr(value: object, limit: int = 80) -> str:
    """``repr`` short enough for an error message. A data URI shows its type and length only: its
    content is the user's image, and megabytes long."""
    if isinstance(value, str) and value.lstrip()[:5].lower() == "data:":
        head = value.lstrip().split(",", 1)[0]
        return repr(f"{head[:60]},... ({len(value):,} characters)")
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 5]}...{text[-1]}"


def _ratio(value: Fraction) -> str:
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


def _is_single_reference(value: object) -> bool:
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
                f"{label}: aspect ratio {info.width}x{info.height} is outside {_ratio(low)}..{_ratio(high)} "
                f"for {spec.name} references"
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


def _rendered_int(value: Any) -> Any:
    """A template renders ``{{ params.n }}`` to ``"3"``: ASCII digits become the number."""
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        return int(value.strip())
    return value


def _rendered_bool(value: Any) -> Any:
    """A template renders a boolean to ``"True"``/``"false"``: those two words become the boolean."""
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return value


def _rendered_none(value: Any) -> Any:
    """A template that renders an unset value gives ``"None"`` or ``""``: both mean unset."""
    return None if isinstance(value, str) and value.strip() in ("", "None") else value


class GenerateRequest(BaseModel):
    """One generation request, checked against every rule the model's API page documents.

    Its fields are the generation parameters, defined here once: the hook's ``generate`` and the
    operator take exactly these (``GENERATION_PARAMETERS``; a test keeps their signatures in step),
    and each model's spec says where each goes in the body."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    model: StrictStr = DEFAULT_MODEL
    prompt: StrictStr
    size: Annotated[StrictStr | None, BeforeValidator(_rendered_none)] = None
    images: list[Any] | None = None
    """As given; see ``references`` for them classified."""
    sequential_image_generation: Annotated[StrictStr | None, BeforeValidator(_rendered_none)] = None
    max_images: Annotated[
        StrictInt | None, BeforeValidator(_rendered_int), BeforeValidator(_rendered_none)
    ] = None
    watermark: Annotated[
        StrictBool | None, BeforeValidator(_rendered_bool), BeforeValidator(_rendered_none)
    ] = None
    optimize_prompt_mode: Annotated[StrictStr | None, BeforeValidator(_rendered_none)] = None

    _references: list[Reference] = PrivateAttr(default_factory=list)

    @property
    def spec(self) -> ModelSpec:
        return MODEL_SPECS[self.model]

    @property
    def references(self) -> list[Reference]:
        """The reference images, classified by where their bytes are."""
        return self._references

    @model_validator(mode="before")
    @classmethod
    def _images_as_list(cls, data: Any) -> Any:
        """One reference may be given alone; a template often renders to a single string."""
        if isinstance(data, dict) and _is_single_reference(data.get("images")):
            return {**data, "images": [data["images"]]}
        return data

    @model_validator(mode="after")
    def _check_against_spec(self) -> GenerateRequest:
        spec = MODEL_SPECS.get(self.model)
        if spec is None:
            raise ValueError(
                f"model={self.model!r} is not supported; choose one of {', '.join(sorted(MODEL_SPECS))}"
            )
        problems = self._classify_references() + self._unsupported_problems(spec)
        problems += [
            problem
            for problem in (
                self._prompt_problem(),
                self._size_problem(spec),
                self._images_problem(spec),
                self._sequential_problem(spec),
                self._max_images_problem(spec),
                self._optimize_prompt_problem(spec),
            )
            if problem
        ]
        if problems:
            raise ValueError("\n".join(problems))
        self._warn_about_ignored_settings()
        return self

    def _classify_references(self) -> list[str]:
        problems = []
        for index, item in enumerate(self.images or ()):
            try:
                self._references.append(classify_reference(item))
            except ValueError as err:
                problems.append(f"images[{index}]: {err}")
        return problems

    def _prompt_problem(self) -> str | None:
        if not self.prompt.strip():
            return "prompt='': a prompt is required"
        words = len(self.prompt.split())
        cjk = len(_CJK.findall(self.prompt))
        if words > PROMPT_RECOMMENDED_WORDS or cjk > PROMPT_RECOMMENDED_CJK_CHARACTERS:
            log.warning(
                "The prompt has %d words / %d Chinese characters; Seedream recommends at most %d words or "
                "%d Chinese characters and may drop details of longer prompts.",
                words,
                cjk,
                PROMPT_RECOMMENDED_WORDS,
                PROMPT_RECOMMENDED_CJK_CHARACTERS,
            )
        return None

    def _size_problem(self, spec: ModelSpec) -> str | None:
        if self.size is None:
            return None
        low, high = spec.pixel_range
        low_ratio, high_ratio = spec.aspect_ratio
        allowed = (
            f"use one of {', '.join(spec.size_presets)}, or WIDTHxHEIGHT with total pixels "
            f"{low:,}..{high:,} and aspect ratio {_ratio(low_ratio)}..{_ratio(high_ratio)}"
        )
        if _preset(spec, self.size) is not None:
            return None
        match = _SIZE_WXH.match(self.size.strip())
        if not match:
            return f"size={self.size!r} is not valid for {spec.name}: {allowed}"
        width, height = int(match.group(1)), int(match.group(2))
        if width == 0 or height == 0:
            return f"size={self.size!r}: width and height must be positive; {allowed}"
        if not low <= width * height <= high:
            pixels = width * height
            return (
                f"size={self.size!r}: total pixels {pixels:,} are outside {low:,}..{high:,} for {spec.name}"
            )
        if not low_ratio <= Fraction(width, height) <= high_ratio:
            return (
                f"size={self.size!r}: aspect ratio {_ratio(Fraction(width, height))} is outside "
                f"{_ratio(low_ratio)}..{_ratio(high_ratio)} for {spec.name}"
            )
        return None

    def _images_problem(self, spec: ModelSpec) -> str | None:
        if self.images is None:
            return None
        if not self.images:
            return (
                "images=[]: give 1 or more references, or None for text-to-image (an empty list is refused)"
            )
        if len(self.images) > spec.max_references:
            return f"images: {len(self.images)} references; {spec.name} takes 1..{spec.max_references}"
        total = spec.max_total_images
        if self.max_images is not None and len(self.images) + self.max_images > total:
            return (
                f"max_images={self.max_images} with {len(self.images)} references: references plus generated "
                f"images may not exceed {total} for {spec.name}, so max_images can be at most "
                f"{total - len(self.images)}"
            )
        return None

    def _sequential_problem(self, spec: ModelSpec) -> str | None:
        mode = self.sequential_image_generation
        if mode is None or mode in spec.sequential_modes:
            return None
        return (
            f"sequential_image_generation={mode!r} is not supported by {spec.name}; "
            f"choose one of {', '.join(spec.sequential_modes)}"
        )

    def _max_images_problem(self, spec: ModelSpec) -> str | None:
        low, high = spec.max_images_range
        if self.max_images is not None and not low <= self.max_images <= high:
            return f"max_images={self.max_images} is outside {low}..{high} for {spec.name}"
        return None

    def _optimize_prompt_problem(self, spec: ModelSpec) -> str | None:
        if self.optimize_prompt_mode is None or "optimize_prompt_mode" not in spec.fields:
            return None  # unset, or refused as a parameter this model does not have
        if self.optimize_prompt_mode in spec.optimize_prompt_modes:
            return None
        return (
            f"optimize_prompt_mode={self.optimize_prompt_mode!r} is not supported by {spec.name}; "
            f"choose one of {', '.join(spec.optimize_prompt_modes)}"
        )

    def _unsupported_problems(self, spec: ModelSpec) -> list[str]:
        """Parameters set that this model's API does not have (its spec gives them no place)."""
        return [
            f"{name}={short_repr(getattr(self, name))}: {spec.name} has no such parameter"
            for name in GenerateRequest.model_fields
            if name != "model" and getattr(self, name) is not None and name not in spec.fields
        ]

    def _warn_about_ignored_settings(self) -> None:
        if self.max_images is not None and self.sequential_image_generation != "auto":
            log.warning(
                "max_images=%d has no effect unless sequential_image_generation='auto': "
                "one image is generated.",
                self.max_images,
            )

    @property
    def normalized_size(self) -> str | None:
        """``size`` as sent: a preset in capitals, or ``WIDTHxHEIGHT`` without spaces or leading zeros."""
        if self.size is None:
            return None
        size = self.size.strip()
        preset = _preset(self.spec, size)
        if preset is not None:
            return preset
        width, height = _SIZE_WXH.match(size).groups()  # type: ignore[union-attr]  # validated
        return f"{int(width)}x{int(height)}"

    def to_payload(self, references: list[str] | None = None) -> dict[str, Any]:
        """The JSON body for the API, each parameter where the model's spec puts it; parameters left
        unset stay out, so the API's defaults apply. ``references`` are the URLs and data URIs to send."""
        values = {
            **{name: getattr(self, name) for name in GENERATION_PARAMETERS},
            "size": self.normalized_size,
            "images": list(references) if references else None,
        }
        body: dict[str, Any] = {}
        for name, path in self.spec.fields.items():
            if values.get(name) is not None:
                _put(body, path, values[name])
        return body


def _preset(spec: ModelSpec, size: str) -> str | None:
    """The preset ``size`` names, in the spec's own spelling, whatever its case."""
    wanted = size.strip().upper()
    return next((name for name in spec.size_presets if name.upper() == wanted), None)


def _put(body: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        body = body.setdefault(key, {})
    body[path[-1]] = value


GENERATION_PARAMETERS: tuple[str, ...] = tuple(GenerateRequest.model_fields)
"""The generation parameters, in order: what the hook, the operator and the sandbox take."""


def build_request(**fields: Any) -> GenerateRequest:
    """Validate ``fields`` into a request; every broken rule is reported in one validation error."""
    try:
        return GenerateRequest(**fields)
    except ValidationError as err:
        raise SeedreamValidationError(_describe(err)) from None


def _describe(err: ValidationError) -> str:
    lines = []
    for error in err.errors(include_url=False):
        if error["type"] == "value_error":
            lines.extend(str(error["ctx"]["error"]).splitlines())
            continue
        field = ".".join(str(part) for part in error["loc"])
        if error["type"] == "missing":
            lines.append(f"{field}: required")
        elif error["type"] == "extra_forbidden":
            lines.append(f"{field}: unknown parameter")
        else:
            lines.append(f"{field}={short_repr(error['input'])}: {error['msg']}")
    return "Invalid Seedream request:\n" + "\n".join(f"  - {line}" for line in lines)
