"""The ``seedream`` connection's extras, validated once: timeouts, retry policy and the billing opt-in.

Plain Python (pydantic, no Airflow), so the hook and the tests read the same rules.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from airflow_provider_seedream.exceptions import SeedreamValidationError


class ConnectionSettings(BaseModel):
    """Timeouts and retry policy, from the connection's extra (every field optional)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    connect_timeout: float = Field(10.0, gt=0)
    read_timeout: float = Field(300.0, gt=0)
    max_retries: int = Field(3, ge=0, le=10)
    backoff_seconds: float = Field(2.0, ge=0)
    max_backoff_seconds: float = Field(60.0, ge=0)
    rate_limit_wait_seconds: float = Field(600.0, ge=0)
    """How long, in all, one generation may wait out 429s (they say nothing was generated)."""
    retry_possibly_billed: bool = False
    """Send a generation again after a failure that may already have been billed."""

    @field_validator(
        "connect_timeout", "read_timeout", "backoff_seconds", "max_backoff_seconds", "rate_limit_wait_seconds"
    )
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("must be a finite number of seconds")
        return value

    @model_validator(mode="before")
    @classmethod
    def _renamed_opt_in(cls, data: Any) -> Any:
        """``retry_on_read_timeout`` was the opt-in's name when it covered read timeouts only."""
        if isinstance(data, dict) and "retry_possibly_billed" not in data and "retry_on_read_timeout" in data:
            return {**data, "retry_possibly_billed": data["retry_on_read_timeout"]}
        return data

    @classmethod
    def from_extra(cls, extra: dict[str, Any], conn_id: str = "seedream") -> ConnectionSettings:
        """Settings from a connection's extra; empty values mean the default. A bad value is a
        :class:`SeedreamValidationError` naming the connection, the field, the value and the rule."""
        given = {name: value for name, value in extra.items() if value is not None and value != ""}
        try:
            return cls.model_validate(given)
        except ValidationError as err:
            problems = [
                f"{'.'.join(str(part) for part in error['loc'])}={error['input']!r}: {error['msg']}"
                for error in err.errors(include_url=False)
            ]
            raise SeedreamValidationError(
                f"connection {conn_id!r} has invalid extras: {'; '.join(problems)}"
            ) from None
