"""What the UI's gallery shows of a task instance, and the bytes it serves.

The gallery runs in the api-server, whose files and network Airflow keeps away from DAG authors, and
it finds what to show in XCom, manifests and cache records, which DAG authors' tasks write: all of it
is untrusted input here. So:

- it reads only below the roots an administrator configured (``[seedream] gallery_roots``, read at
  every request; unset, it reads nothing), each location proven inside one (``_internal.roots``)
  before anything is opened: a manifest, a cache record, an image;
- an image is served only after all of its bytes matched its record's size and sha256 and its first
  bytes are those of the recorded type, its size capped before reading at the largest image the
  models make; until then it waits in a spooled file, so not a byte of a false claim leaves;
- a thumbnail is made from such proven bytes only.
"""

from __future__ import annotations

import io
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import IO, Any

from airflow_provider_seedream._internal.cache.records import image_in_record
from airflow_provider_seedream._internal.manifest import read_manifest
from airflow_provider_seedream._internal.roots import Place, Root
from airflow_provider_seedream.contract.exceptions import SeedreamDownloadError
from airflow_provider_seedream.contract.imageinfo import read_image_info
from airflow_provider_seedream.contract.links import DEFAULT_MAX_IMAGE_BYTES
from airflow_provider_seedream.contract.records import GenerationFacts, StoredImage, parse_image
from airflow_provider_seedream.contract.response import is_api_link

ROOTS_OPTION = ("seedream", "gallery_roots")
"""The Airflow option (``AIRFLOW__SEEDREAM__GALLERY_ROOTS``): comma-separated local folders and
object-store URIs (``s3://conn_id@bucket/prefix``) below which the gallery may read."""
MAX_IMAGE_BYTES = DEFAULT_MAX_IMAGE_BYTES
"""The largest image the models make (a 4096x4096 image, ``links.DEFAULT_MAX_IMAGE_BYTES``): a record
claiming more is refused before anything is read."""
READ_SECONDS = 60.0
"""Longest the api-server reads one image, however slowly its store answers."""
MAX_TASK_IMAGES = 100
"""The most images one task's tab shows (a generation returns at most 15): each is checked against its
record, and a page must not read a task's claims without end."""
SPOOL_BYTES = 8 * 1024 * 1024
"""Proven images up to this size wait in memory, larger ones in a temporary file."""
SERVE_CHUNK = 1024 * 1024
THUMBNAIL_SIDE = 320
MAX_THUMBNAIL_PIXELS = 4096 * 4096
"""The largest image Seedream makes: a thumbnail of anything larger is refused, which bounds the
decoding's memory and time."""
THUMBNAILS_KEPT = 512
"""Thumbnails kept in memory, by the proven image's sha256 (about 20 KB each)."""
NOT_CONFIGURED = (
    "The gallery shows only images stored below the roots an administrator configured, and none is: "
    "set the Airflow option [seedream] gallery_roots (AIRFLOW__SEEDREAM__GALLERY_ROOTS) on the "
    "api-server to the destinations and caches your DAGs store into, comma-separated "
    "(/srv/seedream-assets, s3://aws_conn@bucket/prefix)."
)


def gallery_roots(log: Any) -> list[Root]:
    """The configured roots, as the api-server's configuration says now; a root it cannot read as an
    absolute folder or an object-store URI is left out, with a warning."""
    from airflow.providers.common.compat.sdk import conf

    roots = []
    for text in str(conf.get(*ROOTS_OPTION, fallback="") or "").split(","):
        text = text.strip()
        if not text:
            continue
        if "://" not in text and not text.startswith("/"):
            log.warning("Ignoring the gallery root %r: give an absolute folder or a storage URI", text)
            continue
        try:
            root = Root.of(text)
        except ValueError as err:
            log.warning("Ignoring the gallery root %r: %s", text, err)
            continue
        if root.scheme == "file" and not root.parts:
            log.warning("Ignoring the gallery root %r: it admits every file of the api-server", text)
            continue
        if root.through_link:  # checked at every request: a folder swapped for a link is refused
            log.warning(
                "Ignoring the gallery root %r: it is, or lies below, a symbolic link (to %r); give the "
                "folder it resolves to, in no folder that DAG authors can write",
                text,
                "/" + "/".join(root.parts),
            )
            continue
        roots.append(root)
    return roots


def place_in(roots: list[Root], location: Any) -> Place | None:
    """Where ``location`` lies below one of ``roots``, or ``None`` (outside every one: never opened)."""
    return next((place for root in roots if (place := root.place(location)) is not None), None)


@dataclass(frozen=True)
class GalleryImage:
    """One image a task instance stored, as its record describes it, at its place below a root."""

    index: int
    place: Place
    image: StoredImage

    @property
    def facts(self) -> GenerationFacts:
        return self.image.generation or GenerationFacts()


def task_images(returned: Any, manifest: Any, roots: list[Root], log: Any, task: str) -> list[GalleryImage]:
    """The images ``task`` (its name, for warnings) stored, in order: a download's (``returned`` its
    locations, each listed by its ``manifest``), or a generate task's with ``cache`` (each listed by the
    cache record beside it). Links (a generate task without cache) show nothing: they expire. Only what
    lies below ``roots`` is read; what does not is left out, with a warning naming the task.

    :raises SeedreamDownloadError: a store could not be read."""
    locations = [item for item in returned if isinstance(item, str)] if isinstance(returned, list) else []
    if not roots or not locations or any(is_api_link(location) for location in locations):
        return []
    if len(locations) > MAX_TASK_IMAGES:
        log.warning("%s: shows its first %d images of %d", task, MAX_TASK_IMAGES, len(locations))
        locations = locations[:MAX_TASK_IMAGES]
    entries: dict[Any, Any] | None = None
    if isinstance(manifest, str):
        manifest_place = place_in(roots, manifest)
        if manifest_place is None:
            log.warning("%s: its manifest %r is outside every gallery root: not read", task, manifest[:300])
            return []
        listed = read_manifest(manifest_place, log) or []
        entries = {
            entry["location"]: entry
            for entry in listed
            if isinstance(entry, dict) and isinstance(entry.get("location"), str)
        }
    records: dict[str, Any] = {}  # one read per cache record, however many of its images are listed
    images = []
    for index, location in enumerate(locations):
        place = place_in(roots, location)
        if place is None:
            log.warning(
                "%s: image %d, %r, is outside every gallery root: not read", task, index, location[:300]
            )
            continue
        if entries is not None:
            image = parse_image(entries.get(location))
        else:
            found = image_in_record(place, log, records)
            image = (
                None
                if found is None
                else found[1].model_copy(update={"generation": GenerationFacts.of_record(found[0])})
            )
        if image is None:
            log.warning("%s: image %d, %s, has no record that describes it: not shown", task, index, place)
            continue
        images.append(GalleryImage(index, place, image))
    return images


def proven_bytes(image: GalleryImage, log: Any, task: str) -> IO[bytes] | None:
    """The image's bytes, once all of them matched the record (size, sha256) and its first bytes are
    those of the recorded type; ``None`` (with a warning naming the task) when its claims do not hold.
    The caller closes what it gets."""
    claimed = image.image
    if claimed.bytes > MAX_IMAGE_BYTES:
        log.warning(
            "%s: image %d claims %d bytes, over the %d a Seedream image can have: not read",
            task,
            image.index,
            claimed.bytes,
            MAX_IMAGE_BYTES,
        )
        return None
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115  # handed to the caller
    try:
        for chunk in image.place.verified_chunks(claimed, READ_SECONDS):
            spool.write(chunk)
        spool.seek(0)
        info = read_image_info(spool.read(64 * 1024))
        if info is None or info.media_type != claimed.content_type:
            raise SeedreamDownloadError(f"{image.place} is not the {claimed.content_type} its record says")
    except SeedreamDownloadError as err:
        spool.close()
        log.warning(
            "%s: image %d does not hold what its record claims (%s): not served", task, image.index, err
        )
        return None
    spool.seek(0)
    return spool


class Thumbnails:
    """Thumbnails made with Pillow from proven bytes, at most ``THUMBNAIL_SIDE`` pixels a side, kept by
    sha256."""

    def __init__(self, kept: int = THUMBNAILS_KEPT) -> None:
        self._kept = kept
        self._made: OrderedDict[str, tuple[bytes, str]] = OrderedDict()
        self._lock = threading.Lock()

    def of(self, image: GalleryImage, data: bytes) -> tuple[bytes, str]:
        """The thumbnail of ``data`` (the image's proven bytes) and its media type (JPEG for
        photographs, PNG for images with transparency)."""
        sha256 = image.image.sha256
        with self._lock:
            if sha256 in self._made:
                self._made.move_to_end(sha256)
                return self._made[sha256]
        made = _thumbnail(data, str(image.place))
        with self._lock:
            self._made[sha256] = made
            while len(self._made) > self._kept:
                self._made.popitem(last=False)
        return made


def _thumbnail(data: bytes, where: str) -> tuple[bytes, str]:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as picture:
            if picture.width * picture.height > MAX_THUMBNAIL_PIXELS:
                raise SeedreamDownloadError(
                    f"{where} is {picture.width}x{picture.height}: too large for a thumbnail", retryable=False
                )
            picture.draft("RGB", (THUMBNAIL_SIDE, THUMBNAIL_SIDE))  # JPEG decodes at a fraction of its size
            picture.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
            transparent = picture.mode in ("RGBA", "LA", "PA") or "transparency" in picture.info
            out = io.BytesIO()
            if transparent:
                picture.save(out, "PNG", optimize=True)
                return out.getvalue(), "image/png"
            picture.convert("RGB").save(out, "JPEG", quality=85)
            return out.getvalue(), "image/jpeg"
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise SeedreamDownloadError(
            f"{where} could not be decoded for a thumbnail: {err}", retryable=False
        ) from None


def run_spend(usages: list[Any]) -> str | None:
    """One line for a run's gallery: what its generation tasks spent (their ``usage`` XCom) and the
    run's ceiling, with what remained after the last of them; ``None`` when no task reported spend.
    Tasks wrote these values: anything that is not a finite amount >= 0 is left out."""
    spent, images, ceiling = 0.0, 0, None
    for usage in usages:
        if not isinstance(usage, dict):
            continue
        spent += _amount(usage.get("estimated_cost_usd")) or 0.0
        generated = usage.get("images_generated")
        images += generated if isinstance(generated, int) and not isinstance(generated, bool) else 0
        for standing in usage.get("ceilings") or []:
            if isinstance(standing, dict) and standing.get("scope") == "run":
                limit, used = _amount(standing.get("limit_usd")), _amount(standing.get("spent_usd"))
                if limit is not None and used is not None and (ceiling is None or used >= ceiling[1]):
                    ceiling = (limit, used, _amount(standing.get("remaining_usd")) or 0.0)
    if not images and ceiling is None:
        return None
    line = f"This run spent an estimated ${spent:.2f} on {images} image(s)"
    if ceiling is not None:
        line += f"; its ceiling (max_spend_per_run_usd) is ${ceiling[0]:.2f}, ${ceiling[2]:.2f} remaining"
    return line + ". Estimates at the connection's prices: the bill is Novita's."


def _amount(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < float("inf"):
        return None
    return float(value)
