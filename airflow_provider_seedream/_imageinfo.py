"""
Image format and pixel size from the header bytes, so reference images and downloaded images can be
checked by their content without importing Pillow.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = ["EXTENSIONS", "MEDIA_TYPES", "ImageInfo", "read_image_info", "sniff_format"]

MEDIA_TYPES = {
    "png": "image/png",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "bmp": "image/bmp",
    "tiff": "image/tiff",
    "gif": "image/gif",
}
EXTENSIONS = {"png": "png", "jpeg": "jpg", "webp": "webp", "bmp": "bmp", "tiff": "tiff", "gif": "gif"}

# Every DIB header size Pillow can read; "BM" alone is too weak a signature (plain text may start with it).
_BMP_HEADER_SIZES = frozenset({12, 40, 52, 56, 64, 108, 124})
# SOF0..SOF15 without DHT (0xC4), JPG (0xC8) and DAC (0xCC), which share the range.
_JPEG_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers that stand alone, without a length: TEM, RST0..RST7, SOI.
_JPEG_STANDALONE_MARKERS = frozenset({0x01, *range(0xD0, 0xD9)})
_TIFF_IMAGE_WIDTH, _TIFF_IMAGE_LENGTH = 256, 257
_TIFF_SHORT, _TIFF_LONG = 3, 4


@dataclass(frozen=True)
class ImageInfo:
    """What an image is, read from its header."""

    format: str
    width: int
    height: int

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[self.format]

    @property
    def extension(self) -> str:
        return EXTENSIONS[self.format]


def sniff_format(head: bytes) -> str | None:
    """Format from the first bytes (at least 32 are enough), or None when it is no image we know."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "webp"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "tiff"
    if head.startswith(b"BM"):
        header_size = _unpack("<I", head, 14)
        if header_size is not None and header_size[0] in _BMP_HEADER_SIZES:
            return "bmp"
    return None


def read_image_info(data: bytes) -> ImageInfo | None:
    """Format and pixel size from the header bytes, or None when `data` is not a recognisable image
    or its header is truncated/corrupt.

    `data` may be just a prefix of the file (e.g. the first 64 KiB). A TIFF whose first IFD lies
    beyond that prefix gives None."""
    image_format = sniff_format(data)
    if image_format == "png":
        size = _png_size(data)
    elif image_format == "jpeg":
        size = _jpeg_size(data)
    elif image_format == "gif":
        size = _gif_size(data)
    elif image_format == "webp":
        size = _webp_size(data)
    elif image_format == "tiff":
        size = _tiff_size(data)
    elif image_format == "bmp":
        size = _bmp_size(data)
    else:
        return None
    if size is None or size[0] <= 0 or size[1] <= 0:
        return None
    return ImageInfo(image_format, size[0], size[1])


def _unpack(fmt: str, data: bytes, offset: int) -> tuple[int, ...] | None:
    """``struct.unpack_from`` that answers None instead of raising when `data` is too short."""
    if offset < 0 or offset + struct.calcsize(fmt) > len(data):
        return None
    return struct.unpack_from(fmt, data, offset)


def _png_size(data: bytes) -> tuple[int, int] | None:
    # IHDR must be the first chunk.
    size = _unpack(">II", data, 16)
    if size is None or data[12:16] != b"IHDR":
        return None
    return size[0], size[1]


def _gif_size(data: bytes) -> tuple[int, int] | None:
    # Logical screen descriptor, right after the 6-byte signature.
    size = _unpack("<HH", data, 6)
    return None if size is None else (size[0], size[1])


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    end = len(data)
    pos = 2
    while True:
        # Like libjpeg, skip stray bytes up to the next 0xFF; any number of 0xFF fill bytes may follow.
        pos = data.find(b"\xff", pos)
        if pos < 0:
            return None
        while pos < end and data[pos] == 0xFF:
            pos += 1
        if pos >= end:
            return None
        marker = data[pos]
        pos += 1
        if marker == 0x00 or marker in _JPEG_STANDALONE_MARKERS:
            continue
        if marker in (0xD9, 0xDA):
            # End of image, or a scan starts: no frame header came before it.
            return None
        length = _unpack(">H", data, pos)
        if length is None or length[0] < 2:
            return None
        if marker in _JPEG_SOF_MARKERS:
            frame = _unpack(">HBHHB", data, pos)
            if frame is None:
                return None
            frame_length, _precision, height, width, components = frame
            # libjpeg refuses a frame header whose length does not match its component count.
            if components == 0 or frame_length != 8 + 3 * components:
                return None
            return width, height
        pos += length[0]


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8 ":
        # 3-byte frame tag, start code, then 14-bit dimensions (the top 2 bits are a scaling hint).
        frame = _unpack("<HH", data, 26)
        if frame is None or data[23:26] != b"\x9d\x01\x2a":
            return None
        return frame[0] & 0x3FFF, frame[1] & 0x3FFF
    if chunk == b"VP8L":
        lossless = _unpack("<BI", data, 20)
        if lossless is None or lossless[0] != 0x2F:
            return None
        bits = lossless[1]
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        # Flags and 3 reserved bytes, then 24-bit canvas width - 1 and height - 1.
        canvas = _unpack("<HBHB", data, 24)
        if canvas is None:
            return None
        return (canvas[0] | canvas[1] << 16) + 1, (canvas[2] | canvas[3] << 16) + 1
    return None


def _tiff_size(data: bytes) -> tuple[int, int] | None:
    order = "<" if data.startswith(b"II") else ">"
    ifd_offset = _unpack(order + "I", data, 4)
    if ifd_offset is None:
        return None
    count = _unpack(order + "H", data, ifd_offset[0])
    if count is None:
        return None
    width = height = 0
    for index in range(count[0]):
        entry = ifd_offset[0] + 2 + 12 * index
        fields = _unpack(order + "HHI", data, entry)
        if fields is None:
            return None
        tag, field_type, value_count = fields
        if tag not in (_TIFF_IMAGE_WIDTH, _TIFF_IMAGE_LENGTH):
            continue
        if value_count != 1 or field_type not in (_TIFF_SHORT, _TIFF_LONG):
            return None
        # A single SHORT or LONG sits left-justified in the 4-byte value field.
        value = _unpack(order + ("H" if field_type == _TIFF_SHORT else "I"), data, entry + 8)
        if value is None:
            return None
        if tag == _TIFF_IMAGE_WIDTH:
            width = value[0]
        else:
            height = value[0]
        if width and height:
            return width, height
    return None


def _bmp_size(data: bytes) -> tuple[int, int] | None:
    header_size = _unpack("<I", data, 14)
    if header_size is None:
        return None
    if header_size[0] == 12:
        # BITMAPCOREHEADER: unsigned 16-bit dimensions.
        core = _unpack("<HH", data, 18)
        return None if core is None else (core[0], core[1])
    info = _unpack("<ii", data, 18)
    if info is None:
        return None
    # A negative height marks a top-down bitmap.
    return info[0], abs(info[1])
