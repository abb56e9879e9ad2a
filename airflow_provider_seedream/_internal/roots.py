"""Reading what tasks wrote only where it is expected: below a root (a cache's, a destination's, one of
the gallery's configured roots), each location proven inside it before anything is opened, and each
stored image checked against its record as it is read.

A location is inside a root when it lies below it compared as a resolved path. Locally: no ``.`` or
``..`` segment, below the root as written, and its real path (links resolved) below the root's real
path; it is then opened from the root down without following any link, so a link swapped in after
the check is refused too. On an object store: the root's scheme, connection and bucket, and a key
below its prefix with no empty, ``.`` or ``..`` segment. Anything else (another scheme, bucket or
connection; ``http(s)``, ``memory``...) is outside: nothing of it is opened, stat-ed or fetched.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import re
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow_provider_seedream._internal.storage import (
    LOCAL_PROTOCOLS,
    as_storage_path,
    is_local,
    open_folder,
    storage_error,
)
from airflow_provider_seedream.contract.exceptions import SeedreamDownloadError

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    from airflow_provider_seedream.contract.records import StoredImage

READ_CHUNK = 1024 * 1024
READ_SECONDS = 300.0
"""Longest one stored image may take to read, however slowly its store answers."""
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Root:
    """A folder or object-store prefix below which locations may be read."""

    text: str
    """As given (for messages)."""
    scheme: str
    """``file`` for a local root."""
    store: tuple[str, str]
    """An object store's connection id (``""`` for none) and bucket; ``("", "")`` locally."""
    parts: tuple[str, ...]
    """A local root's real path, or an object store's key prefix, in segments."""
    storage: ObjectStoragePath | None = None
    """An object-store root as a path, with its connection, to open what lies below it."""

    @classmethod
    def of(cls, value: str | os.PathLike[str] | ObjectStoragePath) -> Root:
        """The root ``value`` names: a local path, a ``file://`` or object-store URI
        (``s3://conn_id@bucket/prefix``), or an ``ObjectStoragePath``.

        :raises ValueError: it is no absolute local path or object-store URI."""
        path: ObjectStoragePath | None
        if hasattr(value, "protocol"):
            path = value  # type: ignore[assignment]  # an ObjectStoragePath
            text = str(path)
        else:
            text, path = os.fspath(value).strip(), None
            if "://" not in text:  # a folder a task names, as storage reads it
                text = os.path.abspath(os.path.expanduser(text))
        scheme, store, parts = _split(text, path)
        if scheme == "file":
            real = os.path.realpath(posixpath.join("/", *parts))
            return cls(text, scheme, store, tuple(part for part in real.split("/") if part))
        return cls(text, scheme, store, parts, path if path is not None else as_storage_path(text))

    def __str__(self) -> str:
        return self.text

    @property
    def through_link(self) -> bool:
        """Whether a local root, as written, is or lies below a symbolic link: what it admits then
        changes with whoever can replace that link."""
        return self.scheme == "file" and _split(self.text, None)[2] != self.parts

    def place(self, location: Any) -> Place | None:
        """Where ``location`` lies below this root, or ``None`` when it is outside (or no location)."""
        if not isinstance(location, str):
            return None
        try:
            scheme, store, parts = _split(location, None)
        except ValueError:
            return None
        if (scheme, store) != (self.scheme, self.store):
            return None
        if self.scheme != "file":
            below = _below(parts, self.parts)
            return Place(self, below, location) if below else None
        # Lexically below the root as written or as resolved, before anything is asked of the disk;
        # then its real path, which is what is opened.
        written = _split(self.text, None)[2] if "://" in self.text or self.text.startswith("/") else ()
        if not (_below(parts, self.parts) or (written and _below(parts, written))):
            return None
        real = os.path.realpath(posixpath.join("/", *parts))
        below = _below(tuple(part for part in real.split("/") if part), self.parts)
        return Place(self, below, location) if below else None

    def at(self, *parts: str) -> Place:
        """The place of a name this code made (a cache's layout) below the root."""
        relative = tuple(part for name in parts for part in name.split("/") if part)
        if any(part in (".", "..") for part in relative):
            raise ValueError(f"{'/'.join(parts)!r} leaves {self}")
        shown = posixpath.join(self.text.rstrip("/"), *relative) if relative else self.text
        return Place(self, relative, shown)


@dataclass(frozen=True)
class Place:
    """A location proven inside its root: the only thing here that is ever opened."""

    root: Root
    parts: tuple[str, ...]
    """Below the root."""
    location: str

    def __str__(self) -> str:
        return self.location

    @property
    def name(self) -> str:
        return self.parts[-1] if self.parts else ""

    def sibling(self, name: str) -> Place:
        """The file ``name`` in the same folder (a record beside its images)."""
        folder = self.location.rsplit("/", 1)[0] if "/" in self.location else self.location
        return Place(self.root, (*self.parts[:-1], name), f"{folder}/{name}")

    def open(self) -> IO[bytes]:
        """The file, for reading: locally opened from the root down without following any link, and
        only a regular file (a FIFO or a device could block or never end).

        :raises FileNotFoundError: there is no such file.
        :raises SeedreamDownloadError: it is no regular file, a link, or the store failed."""
        if self.root.storage is not None:
            try:
                return self.root.storage.joinpath(*self.parts).open("rb")  # type: ignore[no-any-return]
            except FileNotFoundError:
                raise
            except Exception as err:
                raise storage_error(err, self, "read") from None
        root = "/" + "/".join(self.root.parts)
        try:
            with open_folder(root, list(self.parts[:-1]), create=False) as folder:
                flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
                fd = os.open(self.parts[-1], flags, dir_fd=folder)
        except OSError as err:
            if isinstance(err, FileNotFoundError):
                raise
            raise storage_error(err, self, "read") from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise SeedreamDownloadError(f"{self} is not a regular file", retryable=False)
        return os.fdopen(fd, "rb")

    def read_json(self, limit: int, log: Any, kind: str, then: str) -> Any:
        """The JSON document here, read within ``limit`` bytes; ``None`` when there is none, or it is
        too large or unreadable (logged as "Ignoring the unreadable <kind> ...: <then>").

        :raises SeedreamDownloadError: the store could not be read."""
        try:
            with self.open() as handle:
                raw = handle.read(limit + 1)
            if len(raw) > limit:
                raise ValueError(f"over {limit:,} bytes")
            return json.loads(raw)
        except FileNotFoundError:
            return None
        except (ValueError, RecursionError) as err:
            log.warning("Ignoring the unreadable %s %s (%s): %s", kind, self, err, then)
            return None
        except SeedreamDownloadError:
            raise
        except Exception as err:  # an object store's client error that fsspec did not translate
            raise storage_error(err, self, "read") from None

    def size(self) -> int | None:
        """The size of the regular file here; ``None`` when there is none (or a link stands here)."""
        try:
            if self.root.storage is not None:
                path = self.root.storage.joinpath(*self.parts)
                return int(path.stat().st_size) if path.is_file() else None
            root = "/" + "/".join(self.root.parts)
            with open_folder(root, list(self.parts[:-1]), create=False) as folder:
                status = os.stat(self.parts[-1], dir_fd=folder, follow_symlinks=False)
            return status.st_size if stat.S_ISREG(status.st_mode) else None
        except (OSError, ValueError, SeedreamDownloadError):
            return None

    def verified_chunks(self, image: StoredImage, seconds: float = READ_SECONDS) -> Iterator[bytes]:
        """The file's bytes in chunks, within ``seconds``; raises before handing on its last chunk
        unless it has the recorded size and sha256, so a write fed from it
        (``storage.write_atomically``) then leaves nothing behind."""
        expected, digest, size = image.bytes, hashlib.sha256(), 0
        deadline = time.monotonic() + seconds
        try:
            with self.open() as handle:
                while chunk := handle.read(min(READ_CHUNK, expected + 1 - size)):
                    size += len(chunk)
                    digest.update(chunk)
                    if size > expected or (size == expected and handle.read(1)):
                        raise SeedreamDownloadError(
                            f"{self} is larger than the recorded {expected:,} bytes", retryable=False
                        )
                    if size == expected and digest.hexdigest() != image.sha256:
                        raise SeedreamDownloadError(
                            f"{self} does not have the recorded sha256: its bytes changed", retryable=False
                        )
                    if time.monotonic() > deadline:
                        raise SeedreamDownloadError(f"{self} did not arrive within {seconds:.0f} s")
                    yield chunk
        except FileNotFoundError:
            raise SeedreamDownloadError(f"{self} is missing", retryable=False) from None
        except SeedreamDownloadError:
            raise
        except Exception as err:
            raise storage_error(err, self, "read") from None
        if size != expected:
            raise SeedreamDownloadError(
                f"{self} has {size:,} bytes, not the recorded {expected:,}", retryable=False
            )


def _split(text: str, path: ObjectStoragePath | None) -> tuple[str, tuple[str, str], tuple[str, ...]]:
    """(scheme, (connection, bucket), segments) of a location; ``file`` and no store for a local one.

    :raises ValueError: a relative or malformed location, or one with ``.``/``..``/empty segments."""
    if path is not None and not is_local(path):
        from airflow_provider_seedream.version_compat import storage_conn_id

        segments = str(path.path).split("/")
        bucket = segments[0].rpartition("@")[2]  # Airflow 3.0 keeps "conn_id@" in the path
        return path.protocol, (storage_conn_id(path) or "", bucket), _segments(segments[1:], text)
    if path is not None:
        text = str(path.path)
    if _CONTROL.search(text) or "?" in text or "#" in text:
        raise ValueError(f"{text!r} is not a location")
    if "://" not in text:
        if not text.startswith("/"):
            raise ValueError(f"{text!r} is not an absolute path")
        return "file", ("", ""), _segments(text.split("/"), text)
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme in LOCAL_PROTOCOLS:
        if parts.netloc not in ("", "localhost"):
            raise ValueError(f"{text!r} names another host")
        return "file", ("", ""), _segments(parts.path.split("/"), text)
    connection, _, bucket = parts.netloc.rpartition("@")
    if not bucket:
        raise ValueError(f"{text!r} names no bucket")
    return scheme, (connection, bucket), _segments(parts.path.split("/"), text)


def _segments(segments: list[str], text: str) -> tuple[str, ...]:
    """The path's segments: a leading or trailing empty one aside, none may be empty, ``.`` or ``..``."""
    inner = segments[1:] if segments and segments[0] == "" else segments
    inner = inner[:-1] if inner and inner[-1] == "" else inner
    if any(segment in ("", ".", "..") for segment in inner):
        raise ValueError(f"{text!r} has an empty, '.' or '..' segment")
    return tuple(inner)


def _below(parts: tuple[str, ...], root: tuple[str, ...]) -> tuple[str, ...]:
    """The segments of ``parts`` below ``root``; empty when it is not strictly below."""
    return parts[len(root) :] if len(parts) > len(root) and parts[: len(root)] == root else ()
