"""Where images are written: local paths, storage URIs and ObjectStoragePath, all written atomically.

No HTTP here, and Airflow's ObjectStoragePath is imported only when a path is made, so the operators
can import this module at DAG-parse time for nothing.

A file appears under its final name only once complete, and a failed write leaves nothing there. One
rule decides how, per file system (:func:`commits_on_upload`):

- S3 makes an object visible only when its upload completes: the final key is written directly by
  boto3's managed transfer (``s3.write_s3``), which aborts the upload on any failure. A temporary
  object and a "rename" would cost a second full copy and a delete per image.
- Every other file system shows a file while it is written, so it gets a temporary sibling and a
  rename (on GCS and Azure Blob, a server-side copy). Local destinations are written through
  directory file descriptors: no symbolic link below the destination is followed, a link at the final
  name is replaced rather than written through, and the file is synced before the rename. Object
  stores are never ``mkdir``-ed: keys need no folders, and their file systems would create a missing
  bucket instead of failing.
"""

from __future__ import annotations

import contextlib
import errno
import os
import posixpath
import re
import stat
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_provider_seedream._internal.s3 import write_s3
from airflow_provider_seedream.contract.exceptions import (
    SeedreamDownloadError,
    SeedreamError,
)
from airflow_provider_seedream.contract.references import COMMIT_ON_UPLOAD_SCHEMES, OBJECT_STORE_SCHEMES

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import ObjectStoragePath

LOCAL_PROTOCOLS = frozenset({"file", "local", ""})
_NOT_RETRYABLE_ERRNOS = frozenset(
    {
        errno.EROFS,
        errno.EACCES,
        errno.EPERM,
        errno.ENAMETOOLONG,
        errno.EINVAL,
        errno.ELOOP,
        errno.ENOTDIR,
        errno.EISDIR,
        errno.ENOENT,
    }
)
"""Storage failures a task retry cannot mend; a full disk (ENOSPC, EDQUOT) may be freed meanwhile."""


def as_storage_path(value: str | os.PathLike[str] | ObjectStoragePath) -> ObjectStoragePath:
    """An ObjectStoragePath for a URI, a local path, or an ObjectStoragePath (kept with its conn_id).

    Local paths are made absolute without resolving symbolic links: a link at a name must stay
    visible as a link, so that writing replaces it instead of writing through it."""
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    if isinstance(value, ObjectStoragePath):
        return value
    text = os.fspath(value)
    if "://" in text:
        return ObjectStoragePath(text)
    return ObjectStoragePath(Path(os.path.abspath(os.path.expanduser(text))).as_uri())


def is_local(path: ObjectStoragePath) -> bool:
    return path.protocol in LOCAL_PROTOCOLS


def commits_on_upload(path: ObjectStoragePath) -> bool:
    """Whether a file written here is invisible until its upload completes: then the final key is
    written directly; otherwise through a temporary name and a rename."""
    return path.protocol in COMMIT_ON_UPLOAD_SCHEMES


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
    if "\x00" in text:
        raise SeedreamDownloadError(
            f"Could not store {text!r}: the name contains a NUL character", retryable=False
        )
    target = as_storage_path(text)
    # Report a URI as it was given: how ObjectStoragePath prints one differs between Airflow versions.
    return target, (text if "://" in text else target.path)


def join(destination: str | os.PathLike[str] | ObjectStoragePath, name: str) -> Any:
    """``destination/name``, keeping the destination's kind (plain path, URI or ObjectStoragePath)."""
    if hasattr(destination, "protocol"):
        return destination / name  # type: ignore[operator]
    text = os.fspath(destination)
    return f"{text.rstrip('/')}/{name}" if "://" in text else os.path.join(text, name)


def write_atomically(
    target: ObjectStoragePath, chunks: Iterable[bytes], root: ObjectStoragePath | None = None
) -> None:
    """Write ``chunks`` to ``target``, which appears only once complete; ``root`` (default: the
    target's folder) is the destination nothing may be written outside of.

    Whatever fails, including the chunks' own iterator, the temporary file is removed and ``target``
    is left as it was. Storage failures become a :class:`SeedreamDownloadError` naming the file and
    the cause. The file system is used directly so that lineage never reports the temporary name."""
    root = target.parent if root is None else root
    relative = check_inside(target, root)
    try:
        if is_local(target):
            _write_local(root.path, relative, chunks)
        elif commits_on_upload(target):
            write_s3(target, chunks)
        else:
            _write_then_move(target, chunks)
    except SeedreamError:
        raise  # the body's own failure
    except Exception as err:
        raise storage_error(err, target) from None


def check_inside(target: ObjectStoragePath, root: ObjectStoragePath) -> str:
    """``target``'s path relative to ``root``; refuses a target outside it."""
    relative = posixpath.relpath(target.path, root.path)
    if relative.startswith("../") or relative == ".." or posixpath.isabs(relative):
        raise SeedreamDownloadError(f"{target} is outside the destination {root}", retryable=False)
    return relative


def storage_error(err: Exception, where: object, action: str = "store") -> SeedreamDownloadError:
    """A storage failure, naming the file and the cause; retryable only when a retry can help."""
    if isinstance(err, ValueError):  # "embedded null byte" and other names the OS cannot take
        return SeedreamDownloadError(f"Could not {action} {where}: {err}", retryable=False)
    if not isinstance(err, OSError):  # an object store client's error that fsspec did not translate
        return SeedreamDownloadError(
            f"Could not {action} {where}: {type(err).__name__}: {err}", retryable=False
        )
    cause = os.strerror(err.errno) if err.errno else (str(err) or type(err).__name__)
    if isinstance(err, PermissionError) and not err.errno:  # an object store's 403
        cause = f"access denied ({cause}): check the credentials of its connection and the bucket's policy"
    retryable = err.errno not in _NOT_RETRYABLE_ERRNOS and not isinstance(
        err, (PermissionError, FileNotFoundError, NotADirectoryError, IsADirectoryError)
    )
    return SeedreamDownloadError(f"Could not {action} {where}: {cause}", retryable=retryable)


def remove_partial_files(root: ObjectStoragePath, names: Iterable[str]) -> list[str]:
    """Remove the temporary files an interrupted write left for ``names`` (relative to ``root``, with
    ``{ext}`` standing for any extension). Returns what was removed."""
    by_folder: dict[str, list[re.Pattern[str]]] = {}
    for name in names:
        folder, _, base = name.rpartition("/")
        pattern = re.escape(base).replace(re.escape("{ext}"), "[A-Za-z0-9]+")
        by_folder.setdefault(folder, []).append(re.compile(rf"^\.{pattern}\.[0-9a-f]{{12}}\.part$"))
    removed: list[str] = []
    if commits_on_upload(root):
        return removed  # no temporary objects are made there
    for folder, patterns in by_folder.items():
        for entry in _list_folder(root, folder):
            if any(pattern.match(entry) for pattern in patterns):
                _remove(root, posixpath.join(folder, entry))
                removed.append(posixpath.join(folder, entry))
    return removed


def _write_then_move(target: ObjectStoragePath, chunks: Iterable[bytes]) -> None:
    if target.protocol not in OBJECT_STORE_SCHEMES:
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


def _write_local(root: str, relative: str, chunks: Iterable[bytes]) -> None:
    *folders, name = relative.split("/")
    with open_folder(root, folders) as folder_fd:
        temporary = f".{name}.{uuid.uuid4().hex[:12]}.part"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(temporary, flags, 0o666, dir_fd=folder_fd)
        try:
            with os.fdopen(fd, "wb") as handle:
                for chunk in chunks:
                    handle.write(chunk)
                handle.flush()
                os.fdatasync(handle.fileno())
            # rename() replaces a link at the final name; it never writes through it.
            os.replace(temporary, name, src_dir_fd=folder_fd, dst_dir_fd=folder_fd)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary, dir_fd=folder_fd)
            raise


@contextlib.contextmanager
def open_folder(root: str, folders: list[str], create: bool = True):  # type: ignore[no-untyped-def]
    """A descriptor of ``root/folders...``, made as needed when ``create``, refusing any link below
    ``root``.

    ``root`` itself (the destination the DAG names, a root an administrator configured) may be a link:
    that is its owner's choice."""
    if create:
        os.makedirs(root, exist_ok=True)
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for index, folder in enumerate(folders):
            if create:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(folder, 0o777, dir_fd=fd)
            try:
                child = os.open(
                    folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd
                )
            except OSError as err:
                if err.errno in (errno.ELOOP, errno.ENOTDIR) and stat.S_ISLNK(
                    os.lstat(folder, dir_fd=fd).st_mode
                ):
                    below = "/".join(folders[: index + 1])
                    raise SeedreamDownloadError(
                        f"{posixpath.join(root, below)} is a symbolic link inside {root}; links below it "
                        "are not followed",
                        retryable=False,
                    ) from None
                raise
            os.close(fd)
            fd = child
        yield fd
    finally:
        os.close(fd)


def _list_folder(root: ObjectStoragePath, folder: str) -> list[str]:
    try:
        if is_local(root):
            with open_folder(root.path, [part for part in folder.split("/") if part], create=False) as fd:
                return os.listdir(fd)
        fs = root.fs
        listed = fs.ls(posixpath.join(root.path, folder), detail=False)
        return [posixpath.basename(str(item).rstrip("/")) for item in listed]
    except (OSError, SeedreamDownloadError):
        return []  # no folder yet, or one that writing will refuse anyway


def _remove(root: ObjectStoragePath, relative: str) -> None:
    folder, _, name = relative.rpartition("/")
    with contextlib.suppress(FileNotFoundError):
        if is_local(root):
            with open_folder(root.path, [part for part in folder.split("/") if part], create=False) as fd:
                os.unlink(name, dir_fd=fd)
        else:
            root.fs.rm(posixpath.join(root.path, relative))
