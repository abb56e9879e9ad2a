"""
Seedream generation requests: validated against the model's spec, then turned into the wire body.

Plain Python (pydantic, no Airflow), so the operator, the hook and the sandbox server share one
source of truth. Nothing here does I/O; reference images are classified and checked in
``references``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Annotated, Any, NamedTuple, TypedDict

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

from airflow_provider_seedream.contract.exceptions import SeedreamValidationError
from airflow_provider_seedream.contract.references import (
    Reference,
    classify_reference,
    is_single_reference,
    short_repr,
)
from airflow_provider_seedream.contract.rendered import rendered_bool, rendered_int, rendered_none
from airflow_provider_seedream.contract.sizes import normalized_size, size_problem
from airflow_provider_seedream.contract.specs import (
    DEFAULT_MODEL,
    MODEL_SPECS,
    PROMPT_RECOMMENDED_CJK_CHARACTERS,
    PROMPT_RECOMMENDED_WORDS,
    ModelSpec,
)

log = logging.getLogger(__name__)
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


class GenerateRequest(BaseModel):
    """One generation request, checked against every rule the model's API page documents.

    Its fields are the generation parameters, defined here once: the hook's ``generate`` and the
    operator take exactly these (``GENERATION_PARAMETERS``; a test keeps their signatures in step),
    and each model's spec says where each goes in the body."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    model: StrictStr = DEFAULT_MODEL
    prompt: StrictStr
    size: Annotated[StrictStr | None, BeforeValidator(rendered_none)] = None
    images: list[Any] | None = None
    """As given; see ``references`` for them classified."""
    sequential_image_generation: Annotated[StrictStr | None, BeforeValidator(rendered_none)] = None
    max_images: Annotated[StrictInt | None, BeforeValidator(rendered_int), BeforeValidator(rendered_none)] = (
        None
    )
    watermark: Annotated[
        StrictBool | None, BeforeValidator(rendered_bool), BeforeValidator(rendered_none)
    ] = None
    optimize_prompt_mode: Annotated[StrictStr | None, BeforeValidator(rendered_none)] = None

    _references: list[Reference] = PrivateAttr(default_factory=list)

    @property
    def spec(self) -> ModelSpec:
        return MODEL_SPECS[self.model]

    @property
    def references(self) -> list[Reference]:
        """The reference images, classified by where their bytes are."""
        return self._references

    @property
    def most_images(self) -> int:
        """The most images this request can return, so be billed for: one, or with ``auto`` its
        ``max_images`` (else what the references leave of the model's total)."""
        if self.sequential_image_generation != "auto":
            return 1
        return self.max_images or self.spec.max_total_images - len(self.references)

    @model_validator(mode="before")
    @classmethod
    def _images_as_list(cls, data: Any) -> Any:
        """One reference may be given alone; a template often renders to a single string."""
        if isinstance(data, dict) and is_single_reference(data.get("images")):
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
        return size_problem(spec, self.size) if self.size is not None else None

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
        return normalized_size(self.spec, self.size) if self.size is not None else None

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
                put_at(body, path, values[name])
        return body


def put_at(body: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    """Set ``value`` at ``path`` in a request body (a spec's ``fields`` entry), making nested objects."""
    for key in path[:-1]:
        body = body.setdefault(key, {})
    body[path[-1]] = value


GENERATION_PARAMETERS: tuple[str, ...] = tuple(GenerateRequest.model_fields)
"""The generation parameters, in order: what the hook, the operator and the sandbox take."""


class GenerationOptions(TypedDict, total=False):
    """The generation parameters besides the prompt, as ``SeedreamHook.generate`` types its
    ``**options`` for editors and type checkers (the defaults are GenerateRequest's). A test keeps
    this, the operator's signature and GenerateRequest in step."""

    model: str
    size: str | None
    images: Sequence[Any] | str | None
    sequential_image_generation: str | None
    max_images: int | None
    watermark: bool | None
    optimize_prompt_mode: str | None


class PreparedGeneration(NamedTuple):
    """A validated request and the body to send: everything that can fail before sending has."""

    request: GenerateRequest
    body: dict[str, Any]


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
