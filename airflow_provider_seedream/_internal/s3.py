"""S3 uploads as boto3 writes them: one PUT up to a part's size, else a multipart upload of
``UPLOAD_PART_BYTES`` parts, each with its CRC32, aborted on any failure."""

from __future__ import annotations

import base64
import contextlib
import io
import zlib
from collections.abc import Iterable, Iterator
from typing import Any

UPLOAD_PART_BYTES = 8 * 1024 * 1024
"""What an object-store upload holds in memory before sending a part, whatever the image's size (S3's
smallest part is 5 MiB; s3fs's default of 50 MiB would hold most images whole); boto3's transfer
uses the same."""


def is_s3fs(fs: Any) -> bool:
    try:
        from s3fs import S3FileSystem  # type: ignore[import-untyped]
    except ImportError:
        return False
    return isinstance(fs, S3FileSystem)


def write_s3(fs: Any, path: str, chunks: Iterable[bytes]) -> None:
    """Upload to S3 as boto3's ``upload_file`` does, through the file system's own client (its
    credentials, endpoint, signer and extra arguments): one PUT when the body fits in one part,
    otherwise a multipart upload in parts of ``UPLOAD_PART_BYTES``, one part held at a time, aborted on
    any failure. When the client sends checksums (botocore's default), every part carries its CRC32:
    S3 checks each part and keeps a checksum of the object.

    Hand-written rather than s3fs's file object, for the throughput benchmark item 5 measured
    (docs/benchmarks.md)."""
    bucket, key, _ = fs.split_path(path)
    config = fs.connect().meta.config
    with_checksums = getattr(config, "request_checksum_calculation", None) == "when_supported"
    algorithm = {"ChecksumAlgorithm": "CRC32"} if with_checksums else {}

    def call(method: str, **arguments: Any) -> Any:
        return fs.call_s3(method, Bucket=bucket, Key=key, **arguments)

    def checksum(data: bytes) -> dict[str, str]:
        # zlib's CRC32 releases the GIL; botocore would compute it on the file system's one loop thread.
        crc = zlib.crc32(data).to_bytes(4, "big")
        return {"ChecksumCRC32": base64.b64encode(crc).decode("ascii")} if with_checksums else {}

    try:
        parts = _parts(chunks, UPLOAD_PART_BYTES)
        data, last = next(parts)
        if last:
            call("put_object", Body=data, **algorithm, **checksum(data))
            return
        upload_id = call("create_multipart_upload", **algorithm)["UploadId"]
        try:
            completed: list[dict[str, Any]] = []
            while True:
                part = {"PartNumber": len(completed) + 1, **checksum(data)}
                sent = call("upload_part", UploadId=upload_id, Body=data, **algorithm, **part)
                completed.append({**part, "ETag": sent["ETag"]})
                del data, sent  # one part held at a time
                if last:
                    break
                data, last = next(parts)
            call("complete_multipart_upload", UploadId=upload_id, MultipartUpload={"Parts": completed})
        except BaseException:
            # Should the abort fail too, the first failure is the one to report.
            with contextlib.suppress(Exception):
                call("abort_multipart_upload", UploadId=upload_id)
            raise
    finally:
        fs.invalidate_cache(path)


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
