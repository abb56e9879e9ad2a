"""Reading a reference image's file: local paths, storage URIs and ObjectStoragePath, bounded, and
only regular files (a FIFO or a device could block or never end)."""

from __future__ import annotations

import os
import stat
from typing import TYPE_CHECKING

from airflow_provider_seedream._internal.storage import as_storage_path, is_local
from airflow_provider_seedream.contract.exceptions import SeedreamValidationError
from airflow_provider_seedream.contract.references import check_data_uri, inline_image
from airflow_provider_seedream.contract.specs import REFERENCE_READ_LIMIT

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    from airflow_provider_seedream.contract.request import GenerateRequest


def read_reference_file(value: str | os.PathLike[str] | ObjectStoragePath, label: str, limit: int) -> bytes:
    """A reference file's bytes, at most ``limit`` + 1 (one byte over is enough to refuse). Only a
    regular file is read: a FIFO or a device could block or never end."""
    path = as_storage_path(value)
    try:
        if is_local(path):
            # O_NONBLOCK: opening a FIFO must not wait for a writer; the check below refuses it.
            fd = os.open(path.path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            with os.fdopen(fd, "rb") as handle:
                mode = os.fstat(fd).st_mode
                if not stat.S_ISREG(mode):
                    kind = (
                        "a directory"
                        if stat.S_ISDIR(mode)
                        else "not a regular file (a FIFO, socket or device)"
                    )
                    raise SeedreamValidationError(f"{label}: is {kind}, not an image file")
                return handle.read(limit + 1)
        if path.is_dir():
            raise SeedreamValidationError(f"{label}: is a directory, not an image file")
        with path.open("rb") as handle:
            return bytes(handle.read(limit + 1))
    except FileNotFoundError:
        raise SeedreamValidationError(f"{label}: no such file") from None
    except IsADirectoryError:
        raise SeedreamValidationError(f"{label}: is a directory, not an image file") from None
    except OSError as err:
        raise SeedreamValidationError(
            f"{label}: cannot be read ({err.strerror or type(err).__name__})"
        ) from None


def resolve_references(request: GenerateRequest) -> list[str]:
    """URLs as given; data URIs checked; files read, checked by content and inlined."""
    spec = request.spec
    resolved = []
    for index, reference in enumerate(request.references):
        label = f"images[{index}]={reference}"
        if reference.kind == "url":
            resolved.append(reference.value)
        elif reference.kind == "data_uri":
            check_data_uri(reference.value, spec, label)
            resolved.append(reference.value)
        else:
            limit = spec.reference_limits.max_bytes or REFERENCE_READ_LIMIT
            data = read_reference_file(reference.value, label, limit)
            if len(data) > limit:
                raise SeedreamValidationError(
                    f"{label}: over the {limit:,}-byte limit for {spec.name} reference images"
                )
            resolved.append(inline_image(data, spec, label))
    return resolved
