"""The gallery in the api-server trusts nothing a task wrote: a DAG author's task forges XCom, manifests
and cache records naming the api-server's files, links out of a root, URLs, and claims that do not
hold; every route that would show or serve them answers 404, reads nothing outside the configured
roots, and no byte of the secret reaches any response."""

from __future__ import annotations

import hashlib
import io
import json
import os
import socket
import threading
from pathlib import Path

import pytest
from conftest import AIRFLOW_VERSION, gallery_roots, login
from PIL import Image

pytestmark = pytest.mark.skipif(AIRFLOW_VERSION < (3, 1), reason="plugin tabs need Airflow 3.1+")
DAG_ID = "seedream_forged_test"
MARKER = b"SEEDREAM-API-SERVER-SECRET-7f3a"


def png(width: int = 64, height: int = 48) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (10, 120, 200)).save(buffer, format="PNG")
    return buffer.getvalue()


def entry(location: str, data: bytes, **claims) -> dict:
    """A manifest entry for ``location`` as a download writes one, with ``claims`` overriding."""
    facts = {
        "source": "https://forged.example/0.png",
        "location": location,
        "sha256": hashlib.sha256(data).hexdigest(),
        "bytes": len(data),
        "content_type": "image/png",
        "width": 64,
        "height": 48,
    }
    return {"index": 0, **facts, **claims}


class Listener:
    """A TCP listener that counts who connects: a forged http:// location must reach nobody."""

    def __init__(self) -> None:
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.socket.settimeout(0.2)
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.socket.getsockname()[1]}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self.socket.accept()
            except (TimeoutError, OSError):
                continue
            self.accepted += 1
            connection.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.socket.close()


def forged_cases(root: Path, outside: Path, listener: Listener) -> tuple[list[dict], dict[str, bytes]]:
    """Every forgery, as the DAG's cases, and the secrets that must never be served."""
    secret = MARKER + os.urandom(3 * 1024 * 1024)  # several of the reader's chunks
    (outside / "secret.bin").write_bytes(secret)
    small = MARKER + b" airflow.cfg: fernet_key = not-yours"
    (outside / "airflow.cfg").write_bytes(small)
    secret_path = str(outside / "secret.bin")
    (root / "link.png").symlink_to(outside / "secret.bin")
    (root / "linked").symlink_to(outside)
    real = png()
    (root / "real.png").write_bytes(real)
    big = b"\x89PNG\r\n\x1a\n" + MARKER + os.urandom(3 * 1024 * 1024)
    (root / "big.png").write_bytes(big)
    notes = MARKER + b" not an image at all"
    (root / "notes.png").write_bytes(notes)
    fingerprint, generation = "ab" + "c" * 62, "d" * 32
    cached = root / "cache" / "ab" / fingerprint / generation
    cached.mkdir(parents=True)
    (cached / "0.png").write_bytes(big)
    record = {
        "format": 1,
        "fingerprint": fingerprint,
        "generation": generation,
        "images": [{**entry("", big, sha256="0" * 64), "file": "0.png"}],
    }
    (cached / "entry.json").write_text(json.dumps(record))
    outside_cached = outside / "cache" / "ab" / fingerprint / generation
    outside_cached.mkdir(parents=True)
    (outside_cached / "0.png").write_bytes(small)
    (outside_cached / "entry.json").write_text(
        json.dumps({**record, "images": [{**entry("", small), "file": "0.png"}]})
    )

    def listed(name: str, location: str, data: bytes, where: Path = root, **claims) -> dict:
        manifest = where / f"{name}-manifest.json"
        return {
            "name": name,
            "returned": [location],
            "manifest": str(manifest),
            "write": {manifest.as_uri(): {"images": [entry(location, data, **claims)]}},
        }

    cases = [
        listed(
            "manifest_outside", secret_path, secret, where=outside, bytes=len(secret) + 1000, sha256="1" * 64
        ),
        listed("lists_a_file_outside", secret_path, secret),
        listed("dot_dot", f"{root}/x/../../{outside.name}/secret.bin", secret),
        listed("link_out", str(root / "link.png"), secret),
        listed("folder_link_out", str(root / "linked" / "secret.bin"), secret),
        listed("file_uri_outside", (outside / "airflow.cfg").as_uri(), small),
        listed("http_url", f"{listener.url}/0.png", small),
        listed("memory", "memory://forged/0.png", small),
        listed("more_bytes", str(root / "real.png"), real, bytes=len(real) + 1000),
        listed("exact_size_wrong_hash", str(root / "big.png"), big, sha256="2" * 64),
        listed("not_an_image", str(root / "notes.png"), notes),
        listed("over_the_largest_image", str(root / "big.png"), big, bytes=81 * 1024 * 1024),
        {
            "name": "location_not_text",
            "returned": [str(root / "real.png")],
            "manifest": str(root / "location_not_text-manifest.json"),
            "write": {
                (root / "location_not_text-manifest.json").as_uri(): {
                    "images": [{**entry("", real), "location": [str(root / "real.png")]}]
                }
            },
        },
        {"name": "cache_record_lies", "returned": [str(cached / "0.png")]},
        {"name": "without_end", "returned": [str(cached / "0.png")] * 5000},
        {"name": "cache_outside", "returned": [str(outside_cached / "0.png")]},
    ]
    return cases, {"secret": secret, "small": small, "big": big, "notes": notes}


@pytest.fixture(scope="module")
def forged(tmp_path_factory, airflow_db):
    from conftest import DAGS_FOLDER, dag_bag

    base = tmp_path_factory.mktemp("forged")
    root, outside = base / "root", base / "outside"
    root.mkdir()
    outside.mkdir()
    listener = Listener()
    try:
        cases, secrets = forged_cases(root, outside, listener)
        run = dag_bag(DAGS_FOLDER).get_dag(DAG_ID).test(run_conf={"cases": cases})
        assert run.state == "success"
        yield run, root, cases, secrets, listener
    finally:
        listener.close()


def every_route(run, cases) -> list[str]:
    routes = [f"/seedream/runs/{DAG_ID}/{run.run_id}"]
    for index, _ in enumerate(cases):
        routes.append(f"/seedream/tasks/{DAG_ID}/{run.run_id}/forge?map_index={index}")
        routes += [
            f"/seedream/{kind}/{DAG_ID}/{run.run_id}/forge/{index}/0" for kind in ("images", "thumbnails")
        ]
    return routes


def leaks(body: bytes, secrets: dict[str, bytes]) -> list[str]:
    """Which secrets (their marker, or any 64-byte piece of the first 4 MB) a response holds."""
    found = ["marker"] if MARKER in body else []
    for name, secret in secrets.items():
        pieces = {secret[start : start + 64] for start in range(8, min(len(secret), 4 << 20), 65536)}
        found += [name for piece in pieces if len(piece) == 64 and piece in body][:1]
    return found


def test_nothing_a_forged_record_names_is_served(gallery_client, forged, monkeypatch, caplog):
    run, root, cases, secrets, listener = forged
    gallery_roots(monkeypatch, root)
    headers = login(gallery_client, "viewer")
    for route in every_route(run, cases):
        answer = gallery_client.get(route, headers=headers)
        # Pages list what records inside the roots claim (never a byte of it); images are proven first.
        expected = 404 if "/images/" in route or "/thumbnails/" in route else 200
        assert answer.status_code == expected, route
        assert not leaks(answer.content, secrets), route
    assert listener.accepted == 0  # the http:// location reached nobody
    # Each refusal names the task that wrote it; links (what a generate task without cache returns)
    # are simply not shown: they expire.
    for index, case in enumerate(cases):
        if case["name"] != "http_url":
            assert f"{DAG_ID} {run.run_id} forge[{index}]" in caplog.text, case["name"]
    assert "its manifest" in caplog.text and "is outside every gallery root" in caplog.text
    assert "does not hold what its record claims" in caplog.text
    assert (
        f"forge[{[case['name'] for case in cases].index('without_end')}]: shows its first 100 images of 5000"
        in caplog.text
    )


def test_a_root_that_is_or_lies_below_a_link_is_refused(
    gallery_client, forged, monkeypatch, caplog, tmp_path
):
    """A root folder that someone swapped for a link (a root inside a folder DAG authors write), and
    ``/``, would admit whatever the link points to: they are left out, so nothing below them shows."""
    run, root, cases, _, _ = forged
    names = [case["name"] for case in cases]
    manifest = root / "more_bytes-manifest.json"
    original = manifest.read_text()
    real = (root / "real.png").read_bytes()
    manifest.write_text(json.dumps({"images": [entry(str(root / "real.png"), real)]}))
    (tmp_path / "swapped").symlink_to(root)
    route = f"/seedream/images/{DAG_ID}/{run.run_id}/forge/{names.index('more_bytes')}/0"
    try:
        for configured in (tmp_path / "swapped", tmp_path / "swapped" / "cache", "/"):
            gallery_roots(monkeypatch, configured)
            answer = gallery_client.get(route, headers=login(gallery_client, "viewer"))
            assert answer.status_code == 404, configured
        for configured in (tmp_path / "swapped", tmp_path / "swapped" / "cache"):
            assert (
                f"Ignoring the gallery root '{configured}': it is, or lies below, a symbolic link"
                in caplog.text
            )
        assert "Ignoring the gallery root '/': it admits every file" in caplog.text
    finally:
        manifest.write_text(original)


def test_a_root_of_another_store_admits_no_local_file(
    gallery_client, forged, monkeypatch, bucket, fresh_filesystems
):
    run, _, cases, _, _ = forged
    gallery_roots(monkeypatch, f"s3://moto_s3@{bucket.name}/seedream")  # only S3: files are outside
    headers = login(gallery_client, "viewer")
    names = [case["name"] for case in cases]
    for name in ("more_bytes", "exact_size_wrong_hash", "cache_record_lies"):
        route = f"/seedream/images/{DAG_ID}/{run.run_id}/forge/{names.index(name)}/0"
        assert gallery_client.get(route, headers=headers).status_code == 404


def test_a_true_record_in_the_same_root_is_served(gallery_client, forged, monkeypatch, tmp_path):
    """The control: the same route serves an image whose record holds, so the 404s above are the
    claims' doing, not the route's."""
    run, root, cases, _, _ = forged
    gallery_roots(monkeypatch, root)
    names = [case["name"] for case in cases]
    manifest = root / "more_bytes-manifest.json"
    original = manifest.read_text()
    real = (root / "real.png").read_bytes()
    manifest.write_text(json.dumps({"images": [entry(str(root / "real.png"), real)]}))
    try:
        route = f"/seedream/images/{DAG_ID}/{run.run_id}/forge/{names.index('more_bytes')}/0"
        answer = gallery_client.get(route, headers=login(gallery_client, "viewer"))
        assert answer.status_code == 200 and answer.content == real
        assert answer.headers["content-type"] == "image/png"
    finally:
        manifest.write_text(original)


def test_a_forged_usage_adds_nothing_to_the_run_spend_line():
    """``usage`` XCom is written by tasks: what is not a finite amount >= 0 is left out of the line."""
    from airflow_provider_seedream._internal.gallery import run_spend

    forged = [
        {"estimated_cost_usd": float("nan"), "images_generated": True},
        {"estimated_cost_usd": -5, "images_generated": "9", "ceilings": [{"scope": "run", "limit_usd": "1"}]},
        {"estimated_cost_usd": 1e309, "ceilings": "all of them"},
        "not a dict",
    ]
    real = {
        "estimated_cost_usd": 0.08,
        "images_generated": 2,
        "ceilings": [{"scope": "run", "limit_usd": 1.0, "spent_usd": 0.08, "remaining_usd": 0.92}],
    }
    assert run_spend(forged) is None
    assert run_spend([*forged, real]) == (
        "This run spent an estimated $0.08 on 2 image(s); its ceiling (max_spend_per_run_usd) is $1.00, "
        "$0.92 remaining. Estimates at the connection's prices: the bill is Novita's."
    )
