"""Sandbox images: real PNGs of the requested pixel size that show the prompt that made them."""

from __future__ import annotations

import hashlib
import io
import textwrap


def render_png(width: int, height: int, prompt: str, index: int = 0, count: int = 1) -> bytes:
    """A ``width`` x ``height`` PNG: a colour derived from the prompt, the prompt's text, and which
    image of the batch it is, so a person can tell which prompt made which image."""
    try:
        from PIL import Image, ImageDraw, ImageFont
    except ImportError as err:  # pragma: no cover - the testing extra installs Pillow
        raise ImportError(
            "The Seedream sandbox draws its images with Pillow: "
            "pip install 'airflow-provider-seedream[testing]'"
        ) from err
    digest = hashlib.sha256(prompt.encode()).digest()
    background = (digest[0] // 2 + 32, digest[1] // 2 + 32, digest[2] // 2 + 32)
    image = Image.new("RGB", (width, height), background)
    font_size = max(8, min(width, height * 2) // 24)
    margin = max(2, font_size // 2)
    columns = max(8, int((width - 2 * margin) / (font_size * 0.55)))
    lines = textwrap.wrap(prompt, columns)[: max(1, (height - 2 * margin) // (font_size + 4) - 1)]
    caption = "\n".join([*lines, f"image {index + 1} of {count} - {width}x{height}"])
    draw = ImageDraw.Draw(image)
    draw.multiline_text(
        (margin, margin),
        caption,
        font=ImageFont.load_default(size=font_size),
        fill=(255, 255, 255),
        spacing=4,
    )
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()
