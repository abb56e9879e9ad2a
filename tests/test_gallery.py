"""The gallery plugin in the api-server Airflow builds (``create_app``), reached over HTTP as a browser
reaches it, logged in through the auth manager: what it shows, what it serves, and whom it refuses."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from conftest import AIRFLOW_VERSION, API_KEY, gallery_roots, login

from airflow_provider_seedream.plugins import gallery, paths

pytestmark = pytest.mark.skipif(AIRFLOW_VERSION < (3, 1), reason="plugin tabs need Airflow 3.1+")
DAG_ID = "seedream_cache_test"


@pytest.fixture(scope="module")
def stored(tmp_path_factory, airflow_db):
    """One run of the cache test DAG: generate tasks with a cache, downloads copying into a destination."""
    import os

    from conftest import DAGS_FOLDER, dag_bag, json_connection

    from airflow_provider_seedream.testing import SANDBOX_API_KEY, SeedreamSandbox

    root = tmp_path_factory.mktemp("gallery")
    with SeedreamSandbox(SANDBOX_API_KEY, image_scale=1 / 16) as sandbox:
        ceiling = {"max_spend_per_run_usd": 1, "spend_ledger": str(root / "ledger.json")}
        os.environ["AIRFLOW_CONN_SEEDREAM_DEFAULT"] = json_connection(sandbox.url, extra=ceiling)
        try:
            dag = dag_bag(DAGS_FOLDER).get_dag(DAG_ID)
            run = dag.test(run_conf={"cache": str(root / "cache"), "destination": str(root / "assets")})
        finally:
            del os.environ["AIRFLOW_CONN_SEEDREAM_DEFAULT"]
    assert run.state == "success"
    return run, root


@pytest.fixture
def client(gallery_client, stored, monkeypatch):
    """The api-server, its gallery reading below the run's cache and destination."""
    _, root = stored
    gallery_roots(monkeypatch, root / "cache", root / "assets")
    return gallery_client


def routes(run) -> list[str]:
    base = paths.URL_PREFIX
    return [
        f"{base}/runs/{DAG_ID}/{run.run_id}",
        f"{base}/tasks/{DAG_ID}/{run.run_id}/store?map_index={{MAP_INDEX}}",
        f"{base}/thumbnails/{DAG_ID}/{run.run_id}/store/-1/0",
        f"{base}/images/{DAG_ID}/{run.run_id}/store/-1/0",
    ]


def test_the_run_page_shows_every_stored_image(client, stored):
    run, _ = stored
    page = client.get(f"/seedream/runs/{DAG_ID}/{run.run_id}", headers=login(client, "viewer"))
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["x-content-type-options"] == "nosniff"
    sources = re.findall(r'<img src="([^"]+)"', page.text)
    # gen (2 images, in the cache), store (2), gen_mapped and store_mapped (3 each) and written. Not the
    # @task that called hook.generate(cache=...): no task of ours, its return value is not read.
    shown = {src.split("/")[5] for src in sources}
    assert shown == {"gen", "store", "gen_mapped", "store_mapped", "written"}
    assert len(sources) == 2 + 2 + 3 + 3 + 1
    assert "a red bicycle" in page.text and "seedream-4.5" in page.text and "$0.040 (estimate)" in page.text
    assert "store_mapped [1]" in page.text  # grouped by map index
    assert API_KEY not in page.text and "X-Tos-Signature" not in page.text


def test_the_run_page_shows_what_the_run_spent_and_its_ceiling(client, stored):
    run, _ = stored
    page = client.get(f"/seedream/runs/{DAG_ID}/{run.run_id}", headers=login(client, "viewer"))
    said = re.search(
        r"This run spent an estimated \$([0-9.]+) on (\d+) image\(s\); its ceiling \(max_spend_per_run_usd\) "
        r"is \$1\.00, \$([0-9.]+) remaining",
        page.text,
    )
    assert said, page.text[:2000]
    spent, images, remaining = float(said[1]), int(said[2]), float(said[3])
    # gen (2), gen_mapped (3) and written (1) report usage; the @task's own hook.generate() counts in
    # the run's ledger account only
    assert images == 6 and spent == pytest.approx(6 * 0.04)
    assert remaining == pytest.approx(1 - spent - 0.04)


def test_thumbnails_and_images_are_the_stored_files(client, stored):
    from PIL import Image

    run, _ = stored
    headers = login(client, "viewer")
    locations = run.get_task_instance("store").xcom_pull(task_ids="store")
    for index, location in enumerate(locations):
        full = client.get(f"/seedream/images/{DAG_ID}/{run.run_id}/store/-1/{index}", headers=headers)
        assert full.status_code == 200 and full.content == Path(location).read_bytes()
        assert (
            full.headers["content-type"] == "image/png"
            and full.headers["x-content-type-options"] == "nosniff"
        )
        small = client.get(f"/seedream/thumbnails/{DAG_ID}/{run.run_id}/store/-1/{index}", headers=headers)
        assert small.status_code == 200 and small.headers["content-type"] in ("image/jpeg", "image/png")
        with Image.open(io.BytesIO(small.content)) as picture:
            assert max(picture.size) <= gallery_side() and picture.size[0] > 0


def gallery_side() -> int:
    from airflow_provider_seedream._internal.gallery import THUMBNAIL_SIDE

    return THUMBNAIL_SIDE


def test_a_task_tab_shows_its_own_images(client, stored):
    run, _ = stored
    headers = login(client, "viewer")
    mapped = client.get(f"/seedream/tasks/{DAG_ID}/{run.run_id}/store_mapped?map_index=2", headers=headers)
    assert mapped.status_code == 200
    assert re.findall(r'<img src="[^"]+/store_mapped/2/(\d+)"', mapped.text) == ["0"]
    # The UI leaves {MAP_INDEX} unfilled for a task that is not mapped.
    plain = client.get(f"/seedream/tasks/{DAG_ID}/{run.run_id}/gen?map_index={{MAP_INDEX}}", headers=headers)
    assert len(re.findall(r"<img ", plain.text)) == 2


def test_anonymous_requests_are_refused(client, stored):
    run, _ = stored
    for route in routes(run):
        assert client.get(route).status_code == 401, route


def test_a_user_without_access_to_the_dag_is_refused(client, stored):
    run, _ = stored
    headers = login(client, "outsider")
    for route in routes(run):
        assert client.get(route, headers=headers).status_code == 403, route


@pytest.mark.parametrize(
    "path",
    [
        "images/{dag}/other-run/store/-1/0",
        "images/{dag}/{run}/no_such_task/-1/0",
        "images/{dag}/{run}/store_mapped/7/0",
        "images/{dag}/{run}/store/-1/9",
        "images/{dag}/{run}/..%2F..%2Fetc/-1/0",
        "images/seedream_generate_test/{run}/store/-1/0",
        "runs/{dag}/other-run",
        "thumbnails/{dag}/{run}/gen_mapped/-1/0",
        "thumbnails/{dag}/{run}/through_the_hook/-1/0",
    ],
)
def test_nothing_but_what_a_manifest_lists_is_served(client, stored, path):
    run, _ = stored
    route = "/seedream/" + path.format(dag=DAG_ID, run=run.run_id)
    assert client.get(route, headers=login(client, "viewer")).status_code == 404


def test_a_changed_file_is_not_served_at_all(client, stored, caplog):
    run, _ = stored
    (location,) = run.get_task_instance("written").xcom_pull(task_ids="written")
    original = Path(location).read_bytes()
    Path(location).write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    try:
        headers = login(client, "viewer")
        for kind in ("thumbnails", "images"):
            answer = client.get(f"/seedream/{kind}/{DAG_ID}/{run.run_id}/written/-1/0", headers=headers)
            assert answer.status_code == 404 and original[:64] not in answer.content
        assert f"{DAG_ID} {run.run_id} written: image 0 does not hold what its record claims" in caplog.text
    finally:
        Path(location).write_bytes(original)


def test_without_roots_the_gallery_reads_nothing_and_says_how_to_configure_it(
    gallery_client, stored, monkeypatch
):
    run, _ = stored
    monkeypatch.delenv("AIRFLOW__SEEDREAM__GALLERY_ROOTS", raising=False)
    headers = login(gallery_client, "viewer")
    page = gallery_client.get(f"/seedream/runs/{DAG_ID}/{run.run_id}", headers=headers)
    assert page.status_code == 200 and "<img" not in page.text
    assert "[seedream] gallery_roots" in page.text and "AIRFLOW__SEEDREAM__GALLERY_ROOTS" in page.text
    for route in routes(run)[2:]:
        assert gallery_client.get(route, headers=headers).status_code == 404


def test_the_plugin_registers_its_tabs_and_app(client, stored):
    listed = client.get("/api/v2/plugins", headers=login(client, "viewer")).json()
    (plugin,) = [item for item in listed["plugins"] if item["name"] == "seedream"]
    assert [view["destination"] for view in plugin["external_views"]] == ["dag_run", "task_instance"]
    assert [app["url_prefix"] for app in plugin["fastapi_apps"]] == ["/seedream"]


def test_the_images_link_opens_the_task_tab():
    from airflow.models.taskinstancekey import TaskInstanceKey

    from airflow_provider_seedream.operators.seedream import SeedreamGenerateOperator
    from airflow_provider_seedream.sensors.seedream import SeedreamDownloadOperator

    for operator in (SeedreamGenerateOperator, SeedreamDownloadOperator):
        assert [link.name for link in operator.operator_extra_links] == ["Images"]
    link = gallery.SeedreamImagesLink()
    key = TaskInstanceKey(
        dag_id="d", task_id="store", run_id="manual__2026-01-01T00:00:00+00:00", try_number=1, map_index=2
    )
    assert link.get_link(None, ti_key=key) == (
        "/dags/d/runs/manual__2026-01-01T00%3A00%3A00%2B00%3A00/tasks/store/mapped/2/plugin/seedream-images"
    )
