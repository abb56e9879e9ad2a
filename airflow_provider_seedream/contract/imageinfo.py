"""Image format and pixel size from the header bytes, read by Pillow without decoding any pixels.

Reference images are checked by content before they are sent, and downloads are named and refused by
content; both need only the header, which ``PIL.Image.open`` reads lazily. Pillow is imported when a
task runs, never when a DAG file imports the operators.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

__all__ = ["EXTENSIONS", "FORMATS_BY_MEDIA_TYPE", "MEDIA_TYPES", "ImageInfo", "read_image_info"]

MEDIA_TYPES = {
    "png": "image/png",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "bmp": "image/bmp",
    "tiff": "image/tiff",
    "gif": "image/gif",
}
EXTENSIONS = {"png": "png", "jpeg": "jpg", "webp": "webp", "bmp": "bmp", "tiff": "tiff", "gif": "gif"}
FORMATS_BY_MEDIA_TYPE = {media_type: name for name, media_type in MEDIA_TYPES.items()}
_PILLOW_FORMATS = {"PNG": "png", "JPEG": "jpeg", "GIF": "gif", "WEBP": "webp", "TIFF": "tiff", "BMP": "bmp"}
"""Pillow's names for the formats the API takes; the only plugins asked to open anything."""
_OPENED_AS = {**_PILLOW_FORMATS, "MPO": "jpeg"}
"""What Pillow may call an opened image: a camera's JPEG with several pictures opens as MPO."""
_SIZE_MAY_BE_FURTHER = ("JPEG", "TIFF")
"""Formats whose pixel size can sit past the first bytes (after large metadata; TIFF's IFD anywhere):
known by their signature alone when only the start of the file is at hand."""


@dataclass(frozen=True)
class ImageInfo:
    """What an image is, read from its header; no size when the header holding it was not at hand."""

    format: str
    width: int | None
    height: int | None

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[self.format]


def read_image_info(data: bytes) -> ImageInfo | None:
    """Format and pixel size of ``data``, or None when it is no image of a format the API takes.

    ``data`` may be just the start of a file (the first 64 KiB of a download): a JPEG or TIFF whose size
    lies further is known by its signature, with no size."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            # Pillow warns of corrupt metadata and of huge declared sizes; only the header is read here,
            # and the answer (or None) says all the caller needs.
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data), formats=list(_PILLOW_FORMATS)) as image:
                width, height = image.size
                image_format = image.format or ""
    except Image.DecompressionBombError:
        return None
    except Exception:  # Pillow raises many kinds on a header it cannot read; each means "not readable"
        return _known_by_signature(data)
    if width <= 0 or height <= 0:
        return None
    return ImageInfo(_OPENED_AS[image_format], width, height)


def _known_by_signature(data: bytes) -> ImageInfo | None:
    from PIL import Image

    Image.init()
    for pillow_format in _SIZE_MAY_BE_FURTHER:
        accept = Image.OPEN[pillow_format][1]
        if accept is not None and accept(data[:16]):
            return ImageInfo(_PILLOW_FORMATS[pillow_format], None, None)
    return None
