"""The download's name patterns: ``{dag_id}/{run_id}/{task_id}/{map_index}-{index}.{ext}`` and the
like, checked so that no name leaves the destination or takes another image's (or the manifest's)."""

from __future__ import annotations

import posixpath
import re
import string

from airflow_provider_seedream.contract.exceptions import SeedreamValidationError

DEFAULT_FILENAME = "{dag_id}/{run_id}/{task_id}/{map_index}-{index}.{ext}"
FILENAME_FIELDS = frozenset({"dag_id", "run_id", "task_id", "map_index", "index", "ext"})
_UNSAFE_NAME_CHARACTERS = re.compile(r"[^A-Za-z0-9._-]")


def filename_fields(dag_id: str, run_id: str, task_id: str, map_index: int | None) -> dict[str, str]:
    """The task instance's fields, each made safe as one path segment; ``map_index`` 0 when not mapped."""
    values = {
        "dag_id": dag_id,
        "run_id": run_id,
        "task_id": task_id,
        "map_index": str(max(map_index if map_index is not None else -1, 0)),
    }
    return {name: _UNSAFE_NAME_CHARACTERS.sub("_", value) for name, value in values.items()}


def check_filename_pattern(pattern: str) -> None:
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(pattern) if name is not None}
    except ValueError as err:
        raise SeedreamValidationError(f"filename={pattern!r} is not a valid pattern: {err}") from None
    if unknown := fields - FILENAME_FIELDS:
        raise SeedreamValidationError(
            f"filename={pattern!r} uses unknown fields {sorted(unknown)}; use {sorted(FILENAME_FIELDS)}"
        )
    if "{ext}" in posixpath.dirname(pattern):
        raise SeedreamValidationError(f"filename={pattern!r}: {{ext}} may only appear in the file's own name")
    if not {"index", "ext"} & fields:
        raise SeedreamValidationError(
            f"filename={pattern!r} has neither {{index}} nor {{ext}}, so the manifest (named with "
            "index=manifest, ext=json) would take the image's name; add {index} or end it in .{ext}"
        )


def task_names(
    pattern: str, dag_id: str, run_id: str, task_id: str, map_index: int | None, count: int
) -> list[str]:
    """The names of a task instance's ``count`` images, then its manifest's. Refuses patterns that
    would make mapped instances, or several links, overwrite each other."""
    if map_index is not None and map_index >= 0 and "{map_index}" not in pattern:
        raise SeedreamValidationError(
            f"filename={pattern!r} needs {{map_index}}: this task is mapped, and its instances would "
            "overwrite each other's images"
        )
    if count > 1 and "{index}" not in pattern:
        raise SeedreamValidationError(f"filename={pattern!r} needs {{index}}: there are {count} links")
    return render_names(pattern, filename_fields(dag_id, run_id, task_id, map_index), count)


def render_names(pattern: str, fields: dict[str, str], count: int) -> list[str]:
    """The relative name of each of ``count`` images (``{ext}`` still open), then the manifest's."""
    check_filename_pattern(pattern)
    images = [_render_name(pattern, {**fields, "index": str(index)}) for index in range(count)]
    return [*images, _render_name(pattern, {**fields, "index": "manifest", "ext": "json"})]


def _render_name(pattern: str, fields: dict[str, str]) -> str:
    """The relative name for ``fields`` (``{ext}`` kept when not given), refused if it leaves the
    destination."""
    name = pattern.format_map({"ext": "{ext}", **fields})
    normal = posixpath.normpath(name)
    if (
        "\\" in name
        or "\x00" in name
        or name.startswith("/")
        or normal == ".."
        or normal.startswith("../")
        or "://" in name
    ):
        raise SeedreamValidationError(
            f"filename={pattern!r} gives {name!r}, which is outside the destination or not a valid name"
        )
    return normal
