"""Valid PNG files of a chosen size, written with the standard library alone.

The pixel data is stored (deflate level 0), so the file size is the pixel count times three plus a
small overhead, and the content is a real image: Pillow opens it, and the provider's content sniffing
reads its format and pixel size from the header like any other PNG.
"""

from __future__ import annotations

import random
import struct
import zlib

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bytes(width: int, height: int, *, noise: bool = False, seed: int = 0) -> bytes:
    """An RGB PNG of ``width`` x ``height``. ``noise`` fills it with pseudo-random pixels (what a photo
    looks like to base64 and to a network); otherwise rows of a colour gradient."""
    if noise:
        rng = random.Random(seed)
        row_bytes = 3 * width
        raw = b"".join(b"\x00" + rng.randbytes(row_bytes) for _ in range(height))
    else:
        row = b"\x00" + bytes((x * 7 + c * 85) & 0xFF for x in range(width) for c in range(3))
        raw = row * height
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        PNG_SIGNATURE
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(raw, 0))
        + _chunk(b"IEND", b"")
    )


def png_of_about(size_bytes: int, width: int = 4096, **kwargs: object) -> bytes:
    """A PNG ``width`` pixels wide, as many rows high as keeps it at or just under ``size_bytes``."""
    row = 1 + 3 * width
    # Framing is 63 bytes plus 5 per stored deflate block; zlib's blocks hold at least 16 KiB.
    rows = int((size_bytes - 63) / (row * (1 + 5 / 16384)))
    data = png_bytes(width, rows, **kwargs)  # type: ignore[arg-type]
    assert size_bytes - 2 * row - 64 * 1024 < len(data) <= size_bytes, (len(data), size_bytes)
    return data
