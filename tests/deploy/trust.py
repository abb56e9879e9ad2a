"""What a DAG author or a REST user writes is untrusted in the api-server, checked in a running one:
forged XCom, manifests and asset events name a file only the api-server's host has, a link out of a
root, a URL, and claims that do not hold; the gallery serves none of it, and the publication copies
nothing from outside the marketing cache."""

from __future__ import annotations

import hashlib
import os
import secrets
import socket
import threading
from pathlib import Path
from typing import Any
from urllib.parse import quote

from deployment import Deployment, Failure, step

FORGED_DAG = "seedream_forged_test"
PUBLISH_DAG = "seedream_publish_new_images"
MARKETING_IMAGES = "seedream://examples/marketing-refresh/images"


class Listener:
    """Counts who connects: a forged http:// location must reach nobody."""

    def __init__(self) -> None:
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.socket.settimeout(0.5)
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
            except OSError:
                continue
            self.accepted += 1
            connection.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.socket.close()


def api_server_secret() -> tuple[Path, bytes]:
    """A file only the api-server's host has (this machine's /tmp, which no Celery worker sees), several
    read chunks long, starting with a marker no response may hold."""
    data = f"SEEDREAM-API-SERVER-SECRET-{secrets.token_hex(8)}\n".encode() + os.urandom(3 * 1024 * 1024)
    path = Path("/tmp") / f"seedream-api-server-secret-{secrets.token_hex(6)}.bin"
    path.write_bytes(data)
    return path, data


def claim(location: str, data: bytes, **claims: Any) -> dict[str, Any]:
    facts = {
        "index": 0,
        "source": "https://forged.example/0.png",
        "location": location,
        "sha256": hashlib.sha256(data).hexdigest(),
        "bytes": len(data),
        "content_type": "image/png",
    }
    return {**facts, **claims}


def check_forged_gallery(deployment: Deployment, store: Any, outside: str) -> None:
    """A DAG whose task writes forged manifests (into ``store``, one of the gallery's roots, and at
    ``outside``, a location no root holds) and pushes them as its XCom; an authorised user then asks
    the running api-server for every gallery route of the run: pages answer, every image and thumbnail
    is 404, the secret's marker and bytes are in no response, and the forged URL reached nobody."""
    secret, data = api_server_secret()
    marker = data.split(b"\n", 1)[0]
    listener = Listener()
    wrong = b"\x89PNG\r\n\x1a\n" + marker + os.urandom(3 * 1024 * 1024)
    store.write("forged/wrong-hash.png", wrong)
    cases = [
        ("lists_the_secret", str(secret), data, store.location("forged/lists.json"), {}),
        ("manifest_outside_the_roots", str(secret), data, outside, {}),
        ("exact_size_wrong_hash", store.location("forged/wrong-hash.png"), wrong, None, {"sha256": "3" * 64}),
        (
            "claims_more_bytes",
            store.location("forged/wrong-hash.png"),
            wrong,
            None,
            {"bytes": len(wrong) + 9},
        ),
        ("a_url", f"{listener.url}/0.png", data, None, {}),
        ("file_uri", secret.as_uri(), data, None, {}),
    ]
    if store.links_possible:
        store.link("forged/link.png", secret)
        cases.append(("a_link_out_of_the_root", store.location("forged/link.png"), data, None, {}))
    conf_cases = []
    for name, location, content, manifest, claims in cases:
        manifest = manifest or store.location(f"forged/{name}.json")
        document = {"images": [claim(location, content, **claims)]}
        conf_cases.append(
            {"name": name, "returned": [location], "manifest": manifest, "write": {manifest: document}}
        )
    deployment.unpause(FORGED_DAG)
    run_id = deployment.trigger(FORGED_DAG, conf={"cases": conf_cases})
    deployment.wait_for_run(FORGED_DAG, run_id, 180)
    root = f"{deployment.api_root}/seedream"
    run = f"{FORGED_DAG}/{quote(run_id, safe='')}"
    routes = [f"{root}/runs/{run}"]
    for index in range(len(conf_cases)):
        routes.append(f"{root}/tasks/{run}/forge?map_index={index}")
        routes += [f"{root}/{kind}/{run}/forge/{index}/0" for kind in ("images", "thumbnails")]
    pieces = [data[start : start + 64] for start in range(len(marker), len(data) - 64, 256 * 1024)]
    try:
        for route in routes:
            answer = deployment.session.get(route, timeout=60)
            expected = 404 if "/images/" in route or "/thumbnails/" in route else 200
            if answer.status_code != expected:
                raise Failure(f"{route} answered {answer.status_code}, not {expected}: {answer.text[:300]}")
            if marker in answer.content or any(piece in answer.content for piece in pieces):
                raise Failure(f"{route} answered with the api-server's secret")
            if wrong[:64] in answer.content:
                raise Failure(f"{route} served a file whose record does not hold")
        if listener.accepted:
            raise Failure(f"the forged URL {listener.url} was connected to {listener.accepted} times")
    finally:
        listener.close()
        secret.unlink()
    names = ", ".join(case["name"] for case in conf_cases)
    step(
        f"{FORGED_DAG} {run_id}: {len(conf_cases)} forged records ({names}); every one of {len(routes)} "
        "gallery routes answered without a byte of them, nothing fetched"
    )


def check_forged_publication(deployment: Deployment, live: Any) -> None:
    """A REST user with asset-event rights posts an event whose ``sources`` name a file outside the
    marketing cache: the scheduler starts the publication, which refuses it by name and fails, and
    nothing of it reaches live/."""
    secret, data = api_server_secret()
    assets = deployment.rest("GET", "/assets", params={"uri_pattern": MARKETING_IMAGES})["assets"]
    (asset,) = [asset for asset in assets if asset["uri"] == MARKETING_IMAGES]
    before = {run["dag_run_id"] for run in deployment.rest("GET", f"/dags/{PUBLISH_DAG}/dagRuns")["dag_runs"]}
    extra = {"locations": ["forged/9-0.png"], "sources": [str(secret)]}
    deployment.rest("POST", "/assets/events", json={"asset_id": asset["id"], "extra": extra})

    def started() -> dict[str, Any] | None:
        runs = deployment.rest("GET", f"/dags/{PUBLISH_DAG}/dagRuns")["dag_runs"]
        return next((run for run in runs if run["dag_run_id"] not in before), None)

    try:
        run = deployment.wait_for(started, 120, f"the scheduler to start {PUBLISH_DAG} from the forged event")
        deployment.wait_for_run(PUBLISH_DAG, run["dag_run_id"], 120, expect="failed")
        text = deployment.log_text(PUBLISH_DAG, run["dag_run_id"], ("failed",))
        if (
            "Not publishing 9-0.png" not in text
            or "is not an image of a Seedream generation cache" not in text
        ):
            raise Failure(f"{PUBLISH_DAG} did not say why it refused the forged source:\n{text[-2000:]}")
        if "9-0.png" in live.names("live/marketing") or data[:48] in b"".join(
            live.read(f"live/marketing/{name}") for name in live.names("live/marketing")
        ):
            raise Failure(f"the forged source reached {live.location('live/marketing')}")
    finally:
        secret.unlink()
    step(f"{PUBLISH_DAG}: a REST user's forged event started a run that refused its source and failed")
