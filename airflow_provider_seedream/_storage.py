"""Where images are written: local paths, storage URIs and ObjectStoragePath, all written atomically.

No HTTP here, and Airflow's ObjectStoragePath is imported only when a path is made, so the operators
can import this module at DAG-parse time for nothing.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import ObjectStoragePath


def as_storage_path(value: str | os.PathLike[str] | ObjectStoragePath) -> ObjectStoragePath:
    """An ObjectStoragePath for a URI, a local path, or an ObjectStoragePath (kept with its conn_id)."""
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    if isinstance(value, ObjectStoragePath):
        return value
    text = os.fspath(value)
    if "://" in text:
        return ObjectStoragePath(text)
    return ObjectStoragePath(Path(text).expanduser().resolve().as_uri())


def storage_target(
    path: str | os.PathLike[str] | ObjectStoragePath, extension: str
) -> tuple[ObjectStoragePath, str]:
    """The final storage path with ``{ext}`` filled in, and the location to report for it: a plain
    path for a local path given plainly, the URI otherwise."""
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    if isinstance(path, ObjectStoragePath):
        # with_name keeps the path's connection and storage options, whatever the Airflow version.
        target = path.with_name(path.name.replace("{ext}", extension))
        return target, str(target)
    directory, separator, name = os.fspath(path).rpartition("/")
    text = directory + separator + name.replace("{ext}", extension)
    target = as_storage_path(text)
    # Report a URI as it was given: how ObjectStoragePath prints one differs between Airflow versions.
    return target, (text if "://" in text else target.path)


def write_atomically(target: ObjectStoragePath, chunks: Iterable[bytes]) -> None:
    """Write ``chunks`` to a temporary sibling of ``target`` and move it into place once complete.

    Whatever fails, including the chunks' own iterator, the temporary object is removed and ``target``
    is left as it was: a reader never sees a partial file or object at the final path. The file system
    is used directly so that lineage never reports the temporary name."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.parent / f".{target.name}.{uuid.uuid4().hex[:12]}.part"
    fs = target.fs
    try:
        with fs.open(temporary.path, "wb") as handle:
            for chunk in chunks:
                handle.write(chunk)
        fs.mv(temporary.path, target.path)
    except BaseException:
        if fs.exists(temporary.path):
            fs.rm(temporary.path)
        raise
