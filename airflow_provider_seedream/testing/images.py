"""Real PNG images for the sandbox, written with the standard library alone."""

from __future__ import annotations

import hashlib
import struct
import zlib


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def render_png(width: int, height: int, prompt: str, index: int = 0) -> bytes:
    """An RGB PNG of ``width`` x ``height``: a colour derived from the prompt, with ``index + 1`` dark
    bands so images of one batch differ."""
    digest = hashlib.sha256(prompt.encode()).digest()
    colour = bytes(digest[:3])
    dark = bytes(channel // 3 for channel in colour)
    bands = index + 1
    row_light = b"\x00" + colour * width
    band_row = bytearray(row_light)
    stripe = max(1, width // (2 * bands + 1))
    for band in range(bands):
        start = 1 + 3 * stripe * (2 * band + 1)
        band_row[start : start + 3 * stripe] = dark * stripe
    raw = bytes(band_row[: len(row_light)]) * height
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(raw, 1))
        + _chunk(b"IEND", b"")
    )
