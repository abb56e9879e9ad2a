"""S3 uploads as boto3's ``upload_file`` sends a file: one PUT when the body fits in one part, else a
multipart upload of ``UPLOAD_PART_BYTES`` parts, each with its CRC32 when the client sends checksums
(botocore's default), aborted on any failure.

Only public APIs: the amazon provider's ``S3Hook`` gives the boto3 client of the path's Airflow
connection (the credentials, endpoint and ``config_kwargs`` Airflow's own S3 file system is built
from), the client's documented S3 calls send the object, and s3fs translates the client's errors as
it does for every other S3 access. The parts are cut here rather than by boto3's managed transfer
(``upload_fileobj``), which holds more of a body in memory the larger it is; docs/benchmarks.md,
item 5, has the figures.
"""

from __future__ import annotations

import base64
import contextlib
import io
import threading
import weakref
import zlib
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import ObjectStoragePath

UPLOAD_PART_BYTES = 8 * 1024 * 1024
"""What an upload holds in memory, whatever the image's size: one part, of the size boto3's transfer
uses (S3's smallest part is 5 MiB)."""

_clients: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
"""A boto3 client per S3 file system Airflow made: the same connection, and the same lifetime."""
_clients_lock = threading.Lock()


def write_s3(target: ObjectStoragePath, chunks: Iterable[bytes]) -> None:
    """Upload ``chunks`` to ``target``; the object appears only once the whole body is in, one part
    held at a time. Each part's CRC32 is computed here, in the downloading thread (zlib releases the
    GIL), and S3 checks each part on arrival and keeps the object's checksum."""
    from botocore.exceptions import ClientError  # type: ignore[import-untyped]
    from s3fs.errors import translate_boto_error  # type: ignore[import-untyped]

    client = s3_client(target)
    with_checksums = getattr(client.meta.config, "request_checksum_calculation", None) == "when_supported"
    algorithm = {"ChecksumAlgorithm": "CRC32"} if with_checksums else {}
    bucket, key, _ = target.fs.split_path(target.path)  # target.bucket keeps a conn_id@ on Airflow 3.0
    where = {"Bucket": bucket, "Key": key}

    def checksum(data: bytes) -> dict[str, str]:
        crc = zlib.crc32(data).to_bytes(4, "big")
        return {"ChecksumCRC32": base64.b64encode(crc).decode("ascii")} if with_checksums else {}

    try:
        parts = _parts(chunks, UPLOAD_PART_BYTES)
        data, last = next(parts)
        if last:
            client.put_object(Body=data, **where, **algorithm, **checksum(data))
            return
        upload_id = client.create_multipart_upload(**where, **algorithm)["UploadId"]
        try:
            completed: list[dict[str, Any]] = []
            while True:
                part = {"PartNumber": len(completed) + 1, **checksum(data)}
                sent = client.upload_part(UploadId=upload_id, Body=data, **where, **algorithm, **part)
                completed.append({**part, "ETag": sent["ETag"]})
                del data, sent  # one part held at a time
                if last:
                    break
                data, last = next(parts)
            client.complete_multipart_upload(
                UploadId=upload_id, MultipartUpload={"Parts": completed}, **where
            )
        except BaseException:
            # Should the abort fail too, the first failure is the one to report.
            with contextlib.suppress(Exception):
                client.abort_multipart_upload(UploadId=upload_id, **where)
            raise
    except ClientError as err:
        raise translate_boto_error(err) from None
    finally:
        target.fs.invalidate_cache(target.path)


def s3_client(target: ObjectStoragePath) -> Any:
    """The boto3 client of the path's Airflow connection, one per S3 file system Airflow made."""
    fs = target.fs
    with _clients_lock:
        client = _clients.get(fs)
        if client is None:
            from airflow.providers.amazon.aws.hooks.s3 import S3Hook

            from airflow_provider_seedream.version_compat import storage_conn_id

            client = _clients[fs] = S3Hook(aws_conn_id=storage_conn_id(target)).get_conn()
    return client


def _parts(chunks: Iterable[bytes], size: int) -> Iterator[tuple[bytes, bool]]:
    """``chunks`` regrouped in parts of ``size`` bytes, each with whether it is the last. A part is
    given out once a byte beyond it has arrived, so a body of exactly ``size`` bytes is one last part."""
    part = io.BytesIO()
    for chunk in chunks:
        view = memoryview(chunk)
        while part.tell() + len(view) > size:
            cut = size - part.tell()
            part.write(view[:cut])
            view = view[cut:]
            yield part.getvalue(), False  # the buffer itself, not a copy
            part = io.BytesIO()
        part.write(view)
    yield part.getvalue(), True
