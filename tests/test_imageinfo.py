"""Header-only image identification (Pillow reading headers lazily), checked against real images of
every format and layout the API takes, truncated and mutated ones included."""

from __future__ import annotations

import io
import random
import struct
from typing import Any

import pytest
from PIL import Image

from airflow_provider_seedream.contract.imageinfo import ImageInfo, read_image_info

SIZES = [(17, 9), (300, 1200), (4000, 30)]


def _image(mode: str, size: tuple[int, int]) -> Image.Image:
    if mode in ("L", "RGB", "RGBA"):
        # Noise, so that WebP keeps a real alpha channel and nothing compresses to a trivial stream.
        return Image.frombytes(mode, size, random.Random(1).randbytes(size[0] * size[1] * len(mode)))
    return Image.new(mode, size)


def _encode(image: Image.Image, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, **options)
    return buffer.getvalue()


def _exif(maker_note: bytes = b"") -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = "Seedream"
    if maker_note:
        exif.get_ifd(0x8769)[0x927C] = maker_note
    return exif


# (mode, save options, bytes that prove the variant is the one meant)
CASES: dict[str, tuple[str, dict[str, Any], bytes]] = {
    "png": ("RGB", {"format": "PNG"}, b"IHDR"),
    "jpeg": ("RGB", {"format": "JPEG"}, b"\xff\xc0\x00\x11"),
    "jpeg-gray": ("L", {"format": "JPEG"}, b"\xff\xc0\x00\x0b"),
    "jpeg-progressive": ("RGB", {"format": "JPEG", "progressive": True}, b"\xff\xc2\x00\x11"),
    "jpeg-exif": ("RGB", {"format": "JPEG", "exif": _exif()}, b"\xff\xe1"),
    "webp-lossy": ("RGB", {"format": "WEBP", "quality": 80}, b"WEBPVP8 "),
    "webp-lossless": ("RGB", {"format": "WEBP", "lossless": True, "method": 0}, b"WEBPVP8L"),
    "webp-alpha": ("RGBA", {"format": "WEBP"}, b"WEBPVP8X"),
    "bmp": ("RGB", {"format": "BMP"}, b"BM"),
    "gif": ("L", {"format": "GIF"}, b"GIF87a"),
    "tiff-little-endian": ("RGB", {"format": "TIFF"}, b"II*\x00"),
    "tiff-big-endian": ("I;16B", {"format": "TIFF"}, b"MM\x00*"),
    # libtiff writes ImageWidth/ImageLength as SHORT and puts the IFD after the pixels.
    "tiff-libtiff": ("RGB", {"format": "TIFF", "compression": "tiff_lzw"}, b"\x00\x01\x03\x00\x01\x00"),
}


def _check_like_pillow(data: bytes, expected_size: tuple[int, int]) -> ImageInfo:
    with Image.open(io.BytesIO(data)) as pillow:
        pillow_format, pillow_size = pillow.format, pillow.size
    assert pillow_format is not None
    assert pillow_size == expected_size
    info = read_image_info(data)
    assert info is not None
    assert (info.format, info.width, info.height) == (pillow_format.lower(), *pillow_size)
    assert info.media_type == Image.MIME[pillow_format]
    return info


@pytest.mark.parametrize("size", SIZES, ids=lambda size: "x".join(map(str, size)))
@pytest.mark.parametrize("case", CASES)
def test_images_written_by_pillow(case: str, size: tuple[int, int]) -> None:
    mode, options, evidence = CASES[case]
    data = _encode(_image(mode, size), **options)
    assert evidence in data
    _check_like_pillow(data, size)


@pytest.mark.parametrize("case", CASES)
def test_every_prefix_gives_none_or_the_right_answer(case: str) -> None:
    mode, options, _ = CASES[case]
    data = _encode(_image(mode, (17, 9)), **options)
    expected = read_image_info(data)
    assert expected is not None
    answers = {read_image_info(data[:length]) for length in range(min(len(data), 2048))}
    # A JPEG or TIFF prefix without its size is still known by its signature.
    assert answers <= {None, expected, ImageInfo(expected.format, None, None)}


def test_mutated_headers_read_as_pillow_reads_them() -> None:
    """Corrupted headers: whatever is answered, Pillow reads the same bytes the same way (format and
    size), and every answer has a media type; many mutations stay readable, so answers are checked."""
    import warnings

    rng = random.Random(7)
    samples = [_encode(_image(mode, (17, 9)), **options)[:512] for mode, options, _ in CASES.values()]
    sized = 0
    for _ in range(3000):
        sample = bytearray(rng.choice(samples))
        for _ in range(rng.randint(1, 4)):
            sample[rng.randrange(len(sample))] = rng.randrange(256)
        data = bytes(sample[: rng.randrange(len(sample) + 1)])
        info = read_image_info(data)
        if info is None:
            continue
        assert info.media_type.startswith("image/")
        if info.width is None:
            continue
        sized += 1
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(
                io.BytesIO(data), formats=["PNG", "JPEG", "GIF", "WEBP", "TIFF", "BMP"]
            ) as pillow:
                seen = ({"mpo": "jpeg"}.get(pillow.format.lower(), pillow.format.lower()), *pillow.size)
        assert (info.format, info.width, info.height) == seen
    assert sized > 300


def _jpeg_segments(data: bytes) -> tuple[list[bytes], bytes]:
    """The header segments after SOI, each with its marker, and the rest of the file from SOS on."""
    segments, pos = [], 2
    while data[pos + 1] != 0xDA:
        end = pos + 2 + struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        segments.append(data[pos:end])
        pos = end
    return segments, data[pos:]


@pytest.mark.parametrize("variant", ["fill-bytes", "tables-before-frame", "stray-bytes"])
def test_jpeg_marker_layouts_pillow_accepts(variant: str) -> None:
    segments, rest = _jpeg_segments(_encode(_image("RGB", (300, 1200)), format="JPEG", exif=_exif()))
    if variant == "fill-bytes":
        segments = [b"\xff\xff\xff" + segment for segment in segments]
    elif variant == "tables-before-frame":
        # DHT (0xC4) is in the SOF range of marker codes but is no frame header.
        segments = sorted(segments, key=lambda segment: segment[1] != 0xC4)
        assert segments[0][1] == 0xC4
    else:
        # Pillow, like libjpeg, skips bytes that are no marker (it only needs 0xFF right after SOI).
        segments = segments[:1] + [b"\x00\x17" + segment for segment in segments[1:]]
    _check_like_pillow(b"\xff\xd8" + b"".join(segments) + rest, (300, 1200))


def test_64k_prefix_of_large_jpeg_skips_embedded_thumbnail() -> None:
    thumbnail = _encode(_image("RGB", (160, 120)), format="JPEG")
    # The thumbnail sits inside APP1, ahead of the real frame header: it must be skipped by length.
    maker_note = thumbnail + bytes(30_000)
    data = _encode(Image.effect_noise((4032, 3024), 60).convert("RGB"), format="JPEG", exif=_exif(maker_note))
    assert len(data) > 1_000_000
    assert thumbnail in data[:65536]
    assert read_image_info(data[:65536]) == ImageInfo("jpeg", 4032, 3024)
    _check_like_pillow(data, (4032, 3024))


def test_webp_lossy_scaling_bits_are_no_part_of_the_size() -> None:
    data = bytearray(_encode(_image("RGB", (300, 1200)), format="WEBP"))
    assert data[12:16] == b"VP8 "
    data[27] |= 0x40  # the top 2 bits of each 14-bit dimension are an upscaling hint
    data[29] |= 0x80
    _check_like_pillow(bytes(data), (300, 1200))


def _tiff(order: bytes, field_type: int, width: int, height: int) -> bytes:
    end = "<" if order == b"II" else ">"
    entries = [(256, field_type, width), (257, field_type, height), (258, 3, 8), (259, 3, 1), (262, 3, 1)]
    entries += [(273, 4, 8 + 2 + 12 * 9 + 4), (277, 3, 1), (278, 4, height), (279, 4, width * height)]
    ifd = struct.pack(end + "H", len(entries))
    for tag, kind, value in entries:
        field = struct.pack(end + "HH", value, 0) if kind == 3 else struct.pack(end + "I", value)
        ifd += struct.pack(end + "HHI", tag, kind, 1) + field
    return order + struct.pack(end + "HI", 42, 8) + ifd + bytes(4) + bytes(width * height)


@pytest.mark.parametrize("order", [b"II", b"MM"])
@pytest.mark.parametrize(("field_type", "size"), [(3, (17, 9)), (3, (65535, 2)), (4, (70000, 3))])
def test_tiff_short_and_long_dimensions(order: bytes, field_type: int, size: tuple[int, int]) -> None:
    assert _check_like_pillow(_tiff(order, field_type, *size), size).format == "tiff"


def test_bmp_core_header_and_top_down() -> None:
    width, height = 17, 9
    row = bytes((width * 3 + 3) // 4 * 4)
    core = b"BM" + struct.pack("<IHHI", 26 + len(row) * height, 0, 0, 26)
    core += struct.pack("<IHHHH", 12, width, height, 1, 24) + row * height
    _check_like_pillow(core, (width, height))

    bottom_up = bytearray(_encode(_image("RGB", (300, 1200)), format="BMP"))
    bottom_up[22:26] = struct.pack("<i", -1200)
    _check_like_pillow(bytes(bottom_up), (300, 1200))


PNG_17x9 = _encode(_image("RGB", (17, 9)), format="PNG")
JPEG_17x9 = _encode(_image("RGB", (17, 9)), format="JPEG")
JPEG_FRAME = next(segment for segment in _jpeg_segments(JPEG_17x9)[0] if segment[1] == 0xC0)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"Hello, world! This is plain text, not an image at all.",
        b"<!DOCTYPE html><html><head><title>403 Forbidden</title></head></html>",
        b"BMW and BMX are not bitmaps, even though they start with BM.",
        b"BM" + bytes(30),
        b'{"images": ["https://example.com/a.png"]}',
        random.Random(3).randbytes(4096),
        PNG_17x9[:8],
        PNG_17x9[:20],
        PNG_17x9[:12] + b"IDAT" + PNG_17x9[16:],
        b"GIF89a\x11",
        b"RIFF\x24\x00\x00\x00WEBPVP8 \x18\x00\x00\x00" + bytes(24),
    ],
    ids=lambda data: repr(data[:12]),
)
def test_not_an_image_or_truncated_header_gives_none(data: bytes) -> None:
    assert read_image_info(data) is None


@pytest.mark.parametrize(
    ("data", "image_format"),
    [
        (JPEG_17x9[: JPEG_17x9.index(b"\xff\xc0")], "jpeg"),
        (JPEG_17x9[: JPEG_17x9.index(b"\xff\xc0") + 6], "jpeg"),
        (b"\xff\xd8\xff\xd9", "jpeg"),
        (b"II*\x00\x00\x10\x00\x00" + bytes(64), "tiff"),
    ],
    ids=lambda value: repr(value[:12]) if isinstance(value, bytes) else value,
)
def test_a_jpeg_or_tiff_without_a_readable_size_is_known_by_its_signature(
    data: bytes, image_format: str
) -> None:
    """The start of a download may end before the size; a reference image like this is refused."""
    assert read_image_info(data) == ImageInfo(image_format, None, None)
