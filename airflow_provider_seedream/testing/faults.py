"""What a test scripts and reads on the sandbox: faults for the next generations and their links,
the requests it recorded, and its stats."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    """The parsed JSON body, or the raw bytes when it is not JSON."""
    received_at: float
    """``time.monotonic()`` when the request arrived."""


@dataclass
class Fault:
    """What the next generation request gets instead of (or before) a normal answer."""

    status: int | None = None
    body: bytes | dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    """Seconds to wait before answering (or before dropping the connection)."""
    drop: bool = False
    """Close the connection without answering."""


@dataclass
class LinkFault:
    """How the image links of the next generation behave."""

    ready_after: float = 0.0
    """Links answer 404 for this many seconds after the generation."""
    expired: bool = False
    """Links answer 403 with the object store's "Request has expired" XML."""
    gone: bool = False
    """Links answer 410."""
    html: bool = False
    """Links answer 200 with an HTML page instead of the image."""
    truncate_at: int | None = None
    """Links send this many bytes of the image, announced with its full Content-Length, then close."""
    status: int | None = None
    """Links answer this status with a short plain-text body (a storage outage, say)."""


@dataclass
class SandboxStats:
    """What the sandbox answered, for load tests: also served as JSON at ``GET /_sandbox/stats``."""

    generations: int = 0
    images: int = 0
    rate_limited: int = 0
    chat_completions: int = 0
    first_image_at: float | None = None
    """``time.time()`` of the first generated image."""
    last_image_at: float | None = None


@dataclass
class StoredImage:
    data: bytes
    signature: str
    created: float
    faults: LinkFault
    content_type: str = "image/png"
    downloads: int = 0
    """Whole-body answers."""
    bytes_served: int = 0
    """Bytes of the image sent, ranged answers (a probe's first byte) included."""
