"""What Airflow's templates render request arguments to, read back as the values they stand for: a
rendered ``"3"``, ``"false"`` or ``"None"`` where the parameter's type is clear."""

from __future__ import annotations

from typing import Any


def rendered_int(value: Any) -> Any:
    """A template renders ``{{ params.n }}`` to ``"3"``: ASCII digits become the number."""
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        return int(value.strip())
    return value


def rendered_bool(value: Any) -> Any:
    """A template renders a boolean to ``"True"``/``"false"``: those two words become the boolean."""
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return value


def rendered_none(value: Any) -> Any:
    """A template that renders an unset value gives ``"None"`` or ``""``: both mean unset."""
    return None if isinstance(value, str) and value.strip() in ("", "None") else value
