"""The ``seedream`` connection, defined once: its extras (timeouts, retry policy, the billing opt-in,
prices, spend ceilings) as one pydantic model, from which the connection form's fields, their defaults
and the runtime parsing all come, and the form's layout.

Plain Python (pydantic, no Airflow). ``get_provider_info`` holds the same form as plain data, as
Airflow requires; a test checks it against :meth:`ConnectionSettings.form_fields`.
"""

from __future__ import annotations

import difflib
import logging
import math
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from airflow_provider_seedream.contract.exceptions import SeedreamValidationError
from airflow_provider_seedream.contract.specs import MODEL_SPECS

log = logging.getLogger(__name__)
DEFAULT_BASE_URL = "https://api.novita.ai"
DEFAULT_CONN_ID = "seedream_default"
UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden-fields": ["schema", "port", "login"],
    "relabeling": {"password": "API Key", "host": "API base URL"},
    "placeholders": {"host": DEFAULT_BASE_URL, "password": "Your Novita AI API key"},
}
"""The connection form's layout: the API key is the password, the base URL the host."""


class ConnectionSettings(BaseModel):
    """Timeouts and retry policy, from the connection's extra (every field optional)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    connect_timeout: float = Field(
        10.0, gt=0, title="Connect timeout (s)", description="Seconds to wait for a connection to the API."
    )
    read_timeout: float = Field(
        300.0,
        gt=0,
        title="Read timeout (s)",
        description="Seconds to wait for a generation to answer (4K or batch generations take minutes); "
        "also the longest one image download may take.",
    )
    max_retries: int = Field(
        3,
        ge=0,
        le=10,
        title="Max retries",
        description="Retries after an overloaded API (503) or a failure to connect: failures that say "
        "nothing was generated.",
    )
    backoff_seconds: float = Field(
        2.0,
        ge=0,
        title="Backoff base (s)",
        description="The first retry waits about this long, doubling each time.",
    )
    max_backoff_seconds: float = Field(
        60.0,
        ge=0,
        title="Max wait between retries (s)",
        description="Cap on any wait between retries, including one asked for by Retry-After.",
    )
    rate_limit_wait_seconds: float = Field(
        600.0,
        ge=0,
        title="Rate-limit wait (s)",
        description="How long, in all, one generation may wait out rate limits (429, honouring Retry-After) "
        "before it fails.",
    )
    retry_possibly_billed: bool = Field(
        False,
        title="Retry possibly billed requests",
        description="Send a generation again after a failure that came after it was sent (read timeout, "
        "broken answer, 500/502/504): it may already be generating and billed, so this can bill twice.",
    )

    max_spend_per_day_usd: float | None = Field(
        None,
        ge=0,
        title="Max spend per day (USD)",
        description="What this connection may spend per UTC day, across every DAG, task and worker; a "
        "generation that could exceed it is not sent. Estimates, from the list or your price_per_image.",
    )
    max_spend_per_run_usd: float | None = Field(
        None,
        ge=0,
        title="Max spend per DAG run (USD)",
        description="What one DAG run may spend through this connection, every task, map index and try "
        "of it together; a generation that could exceed it is not sent.",
    )
    spend_ledger: str | None = Field(
        None,
        title="Spend ledger",
        description="Where the ceilings are counted: a local file (one machine; default under "
        "$AIRFLOW_HOME) or an S3 object with its connection (s3://conn_id@bucket/seedream/ledger.json), "
        "which every worker reaches.",
    )
    price_per_image: dict[str, float] = Field(
        default_factory=dict,
        title="Price per image (USD)",
        description='What one generated image costs you, per model ({"seedream-4.5": 0.04}), for the '
        "spend each task reports; models not named use their list price (an estimate).",
        json_schema_extra={"connection_form": False},
    )

    @field_validator("price_per_image")
    @classmethod
    def _known_models_and_prices(cls, prices: dict[str, float]) -> dict[str, float]:
        for model, price in prices.items():
            if model not in MODEL_SPECS:
                raise ValueError(f"{model!r} is not a model; known: {', '.join(MODEL_SPECS)}")
            if not (math.isfinite(price) and price >= 0):
                raise ValueError(f"{model}: {price!r} is not a price in USD (a finite number >= 0)")
        return prices

    @field_validator(
        "connect_timeout", "read_timeout", "backoff_seconds", "max_backoff_seconds", "rate_limit_wait_seconds"
    )
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("must be a finite number of seconds")
        return value

    @field_validator("max_spend_per_day_usd", "max_spend_per_run_usd")
    @classmethod
    def _finite_amount(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("must be a finite number of USD >= 0")
        return value

    @classmethod
    def from_extra(cls, extra: dict[str, Any], conn_id: str = DEFAULT_CONN_ID) -> ConnectionSettings:
        """Settings from a connection's extra; empty values mean the default. A bad value is a
        :class:`SeedreamValidationError` naming the connection, the field, the value and the rule."""
        given = {name: value for name, value in extra.items() if value is not None and value != ""}
        _warn_about_unknown(given, conn_id)
        try:
            return cls.model_validate(given)
        except ValidationError as err:
            problems = [
                f"{'.'.join(str(part) for part in error['loc'])}={error['input']!r}: "
                f"{error['msg'].removeprefix('Value error, ')}"
                for error in err.errors(include_url=False)
            ]
            raise SeedreamValidationError(
                f"connection {conn_id!r} has invalid extras: {'; '.join(problems)}"
            ) from None

    @classmethod
    def form_fields(cls) -> dict[str, dict[str, Any]]:
        """The connection form's extra fields (provider info's ``conn-fields``): label, description,
        and a JSON schema with the default and the limits, each from this model."""
        fields = {}
        for name, schema in cls.model_json_schema()["properties"].items():
            if schema.get("connection_form") is False:  # a mapping: set in the extra's JSON
                continue
            # An optional field's schema is anyOf [its type, null]: the form's is the same, flattened.
            kind = next(
                (part for part in schema.get("anyOf", [schema]) if part.get("type") != "null"), schema
            )
            limits = {key: kind[key] for key in ("minimum", "maximum", "exclusiveMinimum") if key in kind}
            fields[name] = {
                "label": schema["title"],
                "description": schema["description"],
                "schema": {"type": [kind["type"], "null"], "default": schema["default"], **limits},
            }
        return fields


def _warn_about_unknown(given: dict[str, Any], conn_id: str) -> None:
    """A typo (``max_retires``) would leave a setting out of force that its author believes in: say so,
    with the closest known name. Not refused: a connection can be shared with other tools, which keep
    their own keys in the same extra."""
    known = list(ConnectionSettings.model_fields)
    for name in sorted(set(given) - set(known)):
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else f"; the settings are {', '.join(known)}"
        log.warning(
            "Connection %r has an extra %r, which is no setting of the Seedream provider and is ignored%s",
            conn_id,
            name,
            hint,
        )


def base_url_from_connection(host: str | None, port: int | None) -> str:
    """Empty host: the Novita API. A URL with a scheme: as given. A bare host name: https."""
    host = (host or "").strip().rstrip("/")
    if not host:
        return DEFAULT_BASE_URL
    url = host if "://" in host else f"https://{host}"
    if port and url.count(":") == 1:
        url = f"{url}:{port}"
    return url
