"""Downloading generated images: the hook's streaming writer, the sensor, and the deferrable trigger."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import threading
import time

import pytest
from conftest import RunningTask
from PIL import Image

from airflow_provider_seedream._internal.download import SNIFF_BYTES
from airflow_provider_seedream._internal.transport import READ_CHUNK_BYTES as DOWNLOAD_CHUNK_BYTES
from airflow_provider_seedream.contract.exceptions import (
    SeedreamDownloadError,
    SeedreamLinkExpiredError,
    SeedreamLinkNotReadyError,
    SeedreamValidationError,
)
from airflow_provider_seedream.hooks.seedream import SeedreamHook
from airflow_provider_seedream.sensors.seedream import SeedreamDownloadOperator
from airflow_provider_seedream.testing import LinkFault
from airflow_provider_seedream.triggers.seedream import SeedreamLinksTrigger


def jpeg(width=120, height=80) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (250, 200, 10)).save(buffer, format="JPEG")
    return buffer.getvalue()


def noisy_png(width, height) -> bytes:
    buffer = io.BytesIO()
    Image.frombytes("RGB", (width, height), os.urandom(width * height * 3)).save(buffer, format="PNG")
    return buffer.getvalue()


def hashing_threads() -> list[str]:
    return [thread.name for thread in threading.enumerate() if thread.name.startswith("seedream-sha256")]


def leftovers(folder) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())


class TestHookDownload:
    def test_streams_byte_exact_and_names_by_content(self, connection, tmp_path):
        data = jpeg()
        url = connection.add_image(data, extension="png", content_type="application/octet-stream")
        image = SeedreamHook().download_image(url, tmp_path / "out" / "hero.{ext}")
        assert image.location == str(tmp_path / "out" / "hero.jpg")
        assert (tmp_path / "out" / "hero.jpg").read_bytes() == data
        assert image.sha256 == hashlib.sha256(data).hexdigest()
        assert (image.bytes, image.width, image.height, image.content_type) == (
            len(data),
            120,
            80,
            "image/jpeg",
        )
        assert "X-Tos-Signature" not in image.source and image.source.split("?")[0].endswith(".png")
        assert image.source == url.split("&X-Tos-Signature=")[0]  # the link's identity, without its signature
        assert leftovers(tmp_path) == ["out/hero.jpg"]

    def test_format_comes_from_the_first_bytes_even_when_the_size_is_further(self, connection, tmp_path):
        buffer = io.BytesIO()
        # A large ICC profile puts the JPEG's size segment past the first chunk read to tell the format.
        Image.new("RGB", (40, 30)).save(
            buffer, format="JPEG", icc_profile=os.urandom(DOWNLOAD_CHUNK_BYTES + SNIFF_BYTES)
        )
        image = SeedreamHook().download_image(connection.add_image(buffer.getvalue()), tmp_path / "a.{ext}")
        assert image.location.endswith("a.jpg") and image.content_type == "image/jpeg"
        assert (image.width, image.height) == (None, None)

    def test_download_returns_the_location(self, connection, tmp_path):
        url = connection.add_image(jpeg())
        assert SeedreamHook().download(url, str(tmp_path / "a.{ext}")) == str(tmp_path / "a.jpg")

    def test_links_never_receive_the_api_key(self, connection, tmp_path):
        SeedreamHook().download(connection.add_image(jpeg()), tmp_path / "a.jpg")
        (get,) = [request for request in connection.requests if request.method == "GET"]
        assert "Authorization" not in get.headers

    def test_object_storage_destinations(self, connection, tmp_path):
        from airflow.providers.common.compat.sdk import ObjectStoragePath

        data = jpeg()
        url = connection.add_image(data)
        location = SeedreamHook().download(url, "memory://bucket/images/x.{ext}")
        assert location == "memory://bucket/images/x.jpg"
        assert ObjectStoragePath(location).read_bytes() == data
        location = SeedreamHook().download(url, f"file://{tmp_path}/y.{{ext}}")
        assert location == f"file://{tmp_path}/y.jpg" and (tmp_path / "y.jpg").read_bytes() == data

    def test_an_existing_file_is_replaced(self, connection, tmp_path):
        (tmp_path / "a.jpg").write_bytes(b"old")
        data = jpeg()
        SeedreamHook().download(connection.add_image(data), tmp_path / "a.{ext}")
        assert (tmp_path / "a.jpg").read_bytes() == data and leftovers(tmp_path) == ["a.jpg"]

    @pytest.mark.parametrize(
        ("faults", "error", "message"),
        [
            (LinkFault(ready_after=60), SeedreamLinkNotReadyError, r"is not available yet \(HTTP 404\)"),
            (LinkFault(expired=True), SeedreamLinkExpiredError, r"has expired \(HTTP 403\)"),
            (LinkFault(gone=True), SeedreamLinkExpiredError, r"has expired \(HTTP 410\)"),
            (LinkFault(html=True), SeedreamDownloadError, "did not return an image: Content-Type text/html"),
            (LinkFault(truncate_at=300), SeedreamDownloadError, "broke off after 300 bytes"),
        ],
    )
    def test_failures_leave_nothing_at_the_final_path(self, connection, tmp_path, faults, error, message):
        url = connection.add_image(jpeg(400, 300), faults)
        with pytest.raises(error, match=message) as info:
            SeedreamHook().download(url, tmp_path / "a.{ext}")
        assert leftovers(tmp_path) == []
        assert "X-Tos-Signature=" not in str(info.value) or "REDACTED" in str(info.value)

    def test_body_cut_off_mid_stream_leaves_no_file(self, connection, tmp_path):
        data = noisy_png(1000, 1000)
        assert len(data) * 2 // 3 > DOWNLOAD_CHUNK_BYTES + SNIFF_BYTES  # a partial temporary file is written
        url = connection.add_image(data, LinkFault(truncate_at=len(data) * 2 // 3))
        with pytest.raises(
            SeedreamDownloadError,
            match=r"broke off after [0-9,]+ bytes \(the body ended before its announced length\)",
        ):
            SeedreamHook().download(url, tmp_path / "a.{ext}")
        assert leftovers(tmp_path) == []
        assert hashing_threads() == []

    def test_a_body_of_many_reads_is_hashed_in_order_by_a_thread_that_ends_with_it(
        self, connection, tmp_path, monkeypatch
    ):
        from airflow_provider_seedream._internal import download

        hashed_on: list[str] = []
        sha256 = hashlib.sha256

        class Recorded:
            """hashlib's sha256, noting which thread hashes each chunk."""

            def __init__(self) -> None:
                self._hash = sha256()

            def update(self, chunk: bytes) -> None:
                hashed_on.append(threading.current_thread().name)
                self._hash.update(chunk)

            def hexdigest(self) -> str:
                return self._hash.hexdigest()

        monkeypatch.setattr(download.hashlib, "sha256", Recorded)
        data = noisy_png(1500, 1500)
        assert len(data) > 4 * DOWNLOAD_CHUNK_BYTES  # many reads, each hashed while the next arrives
        image = SeedreamHook().download_image(connection.add_image(data), tmp_path / "big.{ext}")
        monkeypatch.undo()
        assert image.sha256 == hashlib.sha256(data).hexdigest() and image.bytes == len(data)
        assert (tmp_path / "big.png").read_bytes() == data
        assert len(hashed_on) > 4 and {name.rsplit("_", 1)[0] for name in hashed_on} == {"seedream-sha256"}
        assert hashing_threads() == []

    def test_expired_link_is_not_retryable(self, connection, tmp_path):
        with pytest.raises(SeedreamLinkExpiredError) as info:
            SeedreamHook().download(connection.add_image(jpeg(), LinkFault(expired=True)), tmp_path / "a.jpg")
        assert info.value.retryable is False
        assert "must be generated again" in str(info.value)

    def test_other_errors_carry_status_and_body(self, connection, tmp_path):
        url = connection.add_image(jpeg(), LinkFault(status=503))
        with pytest.raises(
            SeedreamDownloadError, match="answered HTTP 503: storage backend unavailable"
        ) as info:
            SeedreamHook().download(url, tmp_path / "a.jpg")
        assert type(info.value) is SeedreamDownloadError and info.value.retryable
        forged = connection.add_image(jpeg()).split("X-Tos-Signature=")[0] + "X-Tos-Signature=forged"
        with pytest.raises(SeedreamDownloadError, match="access problem") as info:  # not an expiry
            SeedreamHook().download(forged, tmp_path / "a.jpg")
        assert type(info.value) is SeedreamDownloadError and "generated again" not in str(info.value)

    def test_not_ready_statuses_are_configurable(self, connection, tmp_path):
        url = connection.add_image(jpeg(), LinkFault(status=503))
        with pytest.raises(SeedreamLinkNotReadyError, match=r"not available yet \(HTTP 503\)"):
            SeedreamHook().download_image(url, tmp_path / "a.jpg", not_ready_statuses=(404, 503))

    def test_max_bytes(self, connection, tmp_path):
        data = jpeg(800, 600)
        url = connection.add_image(data)
        with pytest.raises(SeedreamDownloadError, match=f"{len(data):,} bytes, over max_bytes=1,000"):
            SeedreamHook().download_image(url, tmp_path / "a.jpg", max_bytes=1000)
        assert leftovers(tmp_path) == []
        SeedreamHook().download_image(url, tmp_path / "a.jpg", max_bytes=len(data))

    def test_signatures_are_redacted_in_logs(self, connection, tmp_path, logs):
        url = connection.add_image(jpeg())
        signature = url.split("X-Tos-Signature=")[1]
        SeedreamHook().download(url, tmp_path / "a.jpg")
        with pytest.raises(SeedreamLinkExpiredError):
            SeedreamHook().download(connection.add_image(jpeg(), LinkFault(expired=True)), tmp_path / "b.jpg")
        output = logs()
        assert "Stored" in output and "X-Tos-Signature=REDACTED" in output
        assert signature not in output


def test_the_sensor_is_still_found_among_the_operators():
    from airflow_provider_seedream.operators import seedream as operators
    from airflow_provider_seedream.sensors import seedream as sensors

    assert operators.SeedreamDownloadOperator is sensors.SeedreamDownloadOperator
    assert sensors.SeedreamDownloadOperator.__module__ == "airflow_provider_seedream.sensors.seedream"


class TestFilenames:
    @pytest.mark.parametrize("pattern", ["../{index}.{ext}", "/etc/{index}.{ext}", "a/../../{index}.{ext}"])
    def test_names_cannot_escape_the_destination(self, pattern):
        from airflow_provider_seedream._internal.filenames import render_names

        with pytest.raises(SeedreamValidationError, match="outside the destination"):
            render_names(pattern, {"dag_id": "d", "run_id": "r", "task_id": "t", "map_index": "0"}, count=1)

    def test_unknown_fields_are_refused_when_built(self):
        with pytest.raises(SeedreamValidationError, match=r"unknown fields \['name'\]"):
            SeedreamDownloadOperator(
                task_id="s", urls="https://x/a.png", destination="/tmp", filename="{name}.{ext}"
            )


class TestTrigger:
    def test_serialize_round_trip_holds_no_api_key(self, connection, tmp_path, airflow_db):
        """The trigger the operator defers to, serialized as the triggerer stores it: plain data, the
        API key nowhere, and each signature only inside the link it signs (the probe needs it)."""
        from airflow.providers.common.compat.sdk import TaskDeferred
        from conftest import API_KEY

        url = connection.add_image(jpeg(), LinkFault(ready_after=60))
        operator = SeedreamDownloadOperator(
            task_id="t", urls=[url], destination=str(tmp_path), deferrable=True
        )
        with pytest.raises(TaskDeferred) as info:
            operator.execute({"ti": RunningTask(map_index=-1)})
        classpath, kwargs = info.value.trigger.serialize()
        module, name = classpath.rsplit(".", 1)
        rebuilt = getattr(__import__(module, fromlist=[name]), name)(**kwargs)
        assert rebuilt.serialize() == (classpath, kwargs)
        text = json.dumps(kwargs)
        assert json.loads(text) == kwargs  # plain data only
        assert API_KEY not in text
        signature = url.split("X-Tos-Signature=")[1]
        assert text.count(signature) == 1 and kwargs["urls"] == [url]

    @staticmethod
    def first_event(trigger):
        async def run():
            async for event in trigger.run():
                return event.payload

        return asyncio.run(run())

    def test_waits_for_links_to_appear(self, sandbox):
        urls = [sandbox.add_image(jpeg(), LinkFault(ready_after=1.0)), sandbox.add_image(jpeg())]
        started = time.monotonic()
        trigger = SeedreamLinksTrigger(urls, poll_interval=0.2, timeout=10)
        assert self.first_event(trigger) == {"status": "ready", "end_time": trigger.end_time}
        assert 1.0 <= time.monotonic() - started < 5

    def test_expired_fires_at_once(self, sandbox):
        urls = [
            sandbox.add_image(jpeg(), LinkFault(ready_after=60)),
            sandbox.add_image(jpeg(), LinkFault(expired=True)),
        ]
        started = time.monotonic()
        event = self.first_event(SeedreamLinksTrigger(urls, poll_interval=0.2, timeout=30))
        assert event["status"] == "expired" and "generated again" in event["message"]
        assert "REDACTED" in event["message"]
        assert time.monotonic() - started < 2

    def test_times_out(self, sandbox):
        urls = [sandbox.add_image(jpeg(), LinkFault(ready_after=60))]
        event = self.first_event(SeedreamLinksTrigger(urls, poll_interval=0.2, timeout=0.6))
        assert event["status"] == "timeout" and "1 of 1 links were still not available" in event["message"]

    def test_same_not_ready_codes_as_the_sensor(self, sandbox):
        urls = [sandbox.add_image(jpeg(), LinkFault(gone=True))]
        event = self.first_event(
            SeedreamLinksTrigger(urls, poll_interval=0.2, timeout=0.6, not_ready_statuses=[410])
        )
        assert event["status"] == "timeout"


def stored_files(run_dir):
    return sorted(path.name for path in run_dir.iterdir())


class TestDagRuns:
    @pytest.mark.parametrize("dag_id", ["seedream_download_test", "seedream_download_deferrable_test"])
    def test_generate_then_store_locally(self, run_dag, connection, tmp_path, dag_id):
        # Long enough that the store task still finds the links not ready and waits (defers), also on
        # a loaded machine: at 1.5 s, Airflow 3.0's dag.test() once reached it after they were ready.
        connection.links_of_next_generation(LinkFault(ready_after=4))
        dag_run = run_dag(dag_id, run_conf={"destination": str(tmp_path)})
        assert dag_run.state == "success"
        urls = dag_run.get_task_instance("gen").xcom_pull(task_ids="gen")
        locations = dag_run.get_task_instance("store").xcom_pull(task_ids="store")
        assert len(locations) == 3
        for index, (url, location) in enumerate(zip(urls, locations, strict=True)):
            assert location.endswith(f"/store/0-{index}.png") and location.startswith(str(tmp_path / dag_id))
            with open(location, "rb") as handle:
                assert handle.read() == connection.image_bytes(url)
            assert connection.downloads_of(url) == 1
            # Fetched once: the trigger's probe asked for the first byte only.
            probe = 1 if "deferrable" in dag_id else 0
            assert connection.bytes_served_of(url) == len(connection.image_bytes(url)) + probe
        run_dir = (tmp_path / locations[0]).parent
        assert stored_files(run_dir) == ["0-0.png", "0-1.png", "0-2.png", "0-manifest.json"]
        manifest = json.loads((run_dir / "0-manifest.json").read_text())["images"]
        assert [entry["location"] for entry in manifest] == locations
        assert [entry["source"] for entry in manifest] == [url.split("&X-Tos-Signature=")[0] for url in urls]
        assert manifest[0]["width"] == 2048 // 32 and manifest[0]["content_type"] == "image/png"
        assert manifest[0]["sha256"] == hashlib.sha256(connection.image_bytes(urls[0])).hexdigest()

    def test_generate_then_store_in_object_storage(self, run_dag, connection):
        from airflow.providers.common.compat.sdk import ObjectStoragePath

        dag_run = run_dag("seedream_download_test", run_conf={"destination": "memory://assets/seedream/"})
        assert dag_run.state == "success"
        urls = dag_run.get_task_instance("gen").xcom_pull(task_ids="gen")
        locations = dag_run.get_task_instance("store").xcom_pull(task_ids="store")
        assert all(
            location.startswith("memory://assets/seedream/seedream_download_test/") for location in locations
        )
        assert [ObjectStoragePath(location).read_bytes() for location in locations] == [
            connection.image_bytes(url) for url in urls
        ]

    def test_expired_links_fail_fast_without_retries(self, run_dag, connection, tmp_path, failure_logged):
        connection.links_of_next_generation(LinkFault(expired=True))
        started = time.monotonic()
        dag_run = run_dag("seedream_download_test", run_conf={"destination": str(tmp_path)})
        assert dag_run.state == "failed"
        assert time.monotonic() - started < 15  # the sensor's timeout is 20 s
        assert dag_run.get_task_instance("store").try_number == 1
        assert failure_logged("has expired (HTTP 403)", SeedreamLinkExpiredError)
        assert leftovers(tmp_path) == []

    def test_html_instead_of_an_image_fails(self, run_dag, connection, tmp_path, failure_logged):
        connection.links_of_next_generation(LinkFault(html=True))
        dag_run = run_dag("seedream_download_test", run_conf={"destination": str(tmp_path)})
        assert dag_run.state == "failed"
        assert failure_logged("did not return an image: Content-Type text/html", SeedreamDownloadError)
        assert leftovers(tmp_path) == []

    def test_deferred_expiry_fails_fast(self, run_dag, connection, tmp_path, failure_logged):
        connection.links_of_next_generation(LinkFault(expired=True))
        dag_run = run_dag("seedream_download_deferrable_test", run_conf={"destination": str(tmp_path)})
        assert dag_run.state == "failed"
        assert dag_run.get_task_instance("store").try_number == 1
        assert failure_logged("has expired", SeedreamLinkExpiredError)

    def test_no_signature_in_logs(self, run_dag, connection, tmp_path, logs):
        dag_run = run_dag("seedream_download_test", run_conf={"destination": str(tmp_path)})
        urls = dag_run.get_task_instance("gen").xcom_pull(task_ids="gen")
        output = logs()
        assert "Stored" in output
        for url in urls:
            assert url.split("X-Tos-Signature=")[1] not in output


class TestRerun:
    def test_rerun_overwrites_instead_of_duplicating(self, connection, tmp_path, airflow_db):
        """The same task instance poked twice with new links stores the same names."""
        context = {"ti": RunningTask(map_index=-1)}
        first = [connection.add_image(jpeg(50, 50)), connection.add_image(jpeg(60, 60))]
        operator = SeedreamDownloadOperator(task_id="t", urls=first, destination=str(tmp_path))
        assert operator.poke(context).xcom_value == [
            str(tmp_path / "d/r/t/0-0.jpg"),
            str(tmp_path / "d/r/t/0-1.jpg"),
        ]
        assert operator.poke(context)  # the manifest says both are stored: nothing fetched again
        assert context["ti"].pushed["manifest"] == str(tmp_path / "d/r/t/0-manifest.json")  # for the gallery
        assert [connection.downloads_of(url) for url in first] == [1, 1]
        second = [connection.add_image(jpeg(70, 70)), connection.add_image(jpeg(80, 80))]
        operator.urls = second
        operator.poke(context)
        assert leftovers(tmp_path) == ["d/r/t/0-0.jpg", "d/r/t/0-1.jpg", "d/r/t/0-manifest.json"]
        assert (tmp_path / "d/r/t/0-1.jpg").read_bytes() == connection.image_bytes(second[1])

    def test_one_failure_keeps_what_the_others_stored(self, connection, tmp_path, airflow_db):
        """Images are stored several at once: a failing one does not stop the others, the manifest
        lists them, and the retry fetches only the one that failed."""
        context = {"ti": RunningTask(map_index=-1)}
        urls = [connection.add_image(jpeg(50 + index, 50)) for index in range(5)]
        broken = connection.add_image(jpeg(90, 90), LinkFault(status=500))
        operator = SeedreamDownloadOperator(
            task_id="t", urls=[*urls[:2], broken, *urls[2:]], destination=str(tmp_path), parallel_downloads=3
        )
        with pytest.raises(SeedreamDownloadError, match="500"):
            operator.poke(context)
        manifest = json.loads((tmp_path / "d/r/t/0-manifest.json").read_text())
        assert [entry["index"] for entry in manifest["images"]] == [0, 1, 3, 4, 5]
        operator.urls = [*urls[:2], connection.add_image(jpeg(90, 90)), *urls[2:]]
        assert len(operator.poke(context).xcom_value) == 6
        assert [connection.downloads_of(url) for url in urls] == [1] * 5

    @pytest.mark.parametrize("value", [0, 16, True, "4"])
    def test_parallel_downloads_is_checked_when_built(self, value):
        with pytest.raises(
            SeedreamValidationError, match=f"parallel_downloads={value!r}: must be an integer"
        ):
            SeedreamDownloadOperator(task_id="t", urls=["u"], destination="/tmp", parallel_downloads=value)

    def test_object_storage_path_destination(self, connection, airflow_db):
        from airflow.providers.common.compat.sdk import ObjectStoragePath

        context = {"ti": RunningTask(map_index=2)}
        url = connection.add_image(jpeg())
        operator = SeedreamDownloadOperator(
            task_id="t", urls=url, destination=ObjectStoragePath("memory://osp-bucket/out")
        )
        (location,) = operator.poke(context).xcom_value
        assert location.endswith("osp-bucket/out/d/r/t/2-0.jpg")
        assert ObjectStoragePath(location).read_bytes() == connection.image_bytes(url)


def test_hook_lineage_sees_the_stored_image_only(connection, tmp_path, mocker):
    from airflow.providers.common.compat.sdk import HookLineageCollector

    collector = HookLineageCollector()
    # Airflow enables the collector only when a lineage-reader plugin is installed; install none, use it.
    mocker.patch(
        "airflow.providers.common.compat.sdk.get_hook_lineage_collector", return_value=collector, create=True
    )
    SeedreamHook().download(connection.add_image(jpeg()), f"file://{tmp_path}/a.{{ext}}")
    assert [info.asset.uri for info in collector.collected_assets.outputs] == [f"file://{tmp_path}/a.jpg"]


def test_deferral_waits_only_for_links_not_stored_yet(connection, tmp_path, airflow_db):
    """A stored image's link may expire while the others are awaited: the trigger must not probe it."""
    from airflow.providers.common.compat.sdk import TaskDeferred

    ready, late = connection.add_image(jpeg()), connection.add_image(jpeg(), LinkFault(ready_after=60))
    operator = SeedreamDownloadOperator(
        task_id="t", urls=[ready, late], destination=str(tmp_path), deferrable=True
    )
    with pytest.raises(TaskDeferred) as info:
        operator.execute({"ti": RunningTask(map_index=-1)})
    assert info.value.trigger.urls == [late]
    assert leftovers(tmp_path) == ["d/r/t/0-0.jpg", "d/r/t/0-manifest.json"]


@pytest.mark.parametrize(
    ("query", "kept"),
    [
        ("X-Tos-Credential=AK%2F20261121&X-Tos-Signature=abc123&X-Tos-Expires=3600", "X-Tos-Expires=3600"),
        (
            "X-Amz-Credential=AKIA&X-Amz-Security-Token=tok&X-Amz-Signature=abc123&X-Amz-Date=20261121",
            "X-Amz-Date",
        ),
        ("sv=2024&sig=abc123&se=2026-11-22", "se=2026-11-22"),
        ("Expires=1&GoogleAccessId=svc&Signature=abc123", "Expires=1"),
        ("OSSAccessKeyId=LTAI&Signature=abc123&token=abc123", "OSSAccessKeyId=REDACTED"),
    ],
)
def test_signatures_of_every_store_are_redacted(query, kept):
    from airflow_provider_seedream.contract.redact import redact_url

    redacted = redact_url(f"https://bucket.example.com/image.png?{query}")
    assert "abc123" not in redacted and "AKIA" not in redacted and "LTAI" not in redacted
    assert kept in redacted and redacted.startswith("https://bucket.example.com/image.png?")
