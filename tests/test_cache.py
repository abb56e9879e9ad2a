"""The generation cache: identical requests answered from stored images, verified, with every case
counting generation requests at the sandbox and reading the stored bytes back."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path

import pytest
from conftest import AIRFLOW_VERSION, REPOSITORY

from airflow_provider_seedream.contract.exceptions import (
    SeedreamCacheStoreError,
    SeedreamDownloadError,
    SeedreamValidationError,
)
from airflow_provider_seedream.contract.specs import MODEL_SPECS
from airflow_provider_seedream.hooks.seedream import SeedreamHook
from airflow_provider_seedream.testing import LinkFault

REFERENCE = REPOSITORY / "example_dags" / "data" / "references" / "mug.png"
HAS_TASK_STATE_STORE = AIRFLOW_VERSION >= (3, 3)


def fingerprint(hook: SeedreamHook, cache_key=None, **parameters) -> str:
    return hook.generation_cache("/cache").fingerprint(hook.prepare_generation(**parameters), cache_key)


def entry_folder(cache: Path) -> Path:
    (record,) = [path for path in cache.glob("*/*/entry.json")]
    return record.parent


def posts(sandbox) -> int:
    return len(sandbox.generation_requests())


class TestFingerprint:
    def test_same_request_same_fingerprint_and_every_parameter_counts(self, connection):
        hook = SeedreamHook()
        base = fingerprint(hook, prompt="a red bicycle", size="2K")
        assert base == fingerprint(hook, prompt="a red bicycle", size="2k")  # sent alike: "2K"
        assert (
            len(
                {
                    base,
                    fingerprint(hook, prompt="a red bicycle ", size="2K"),  # prompt text exactly as sent
                    fingerprint(hook, prompt="a red bicycle", size="4K"),
                    fingerprint(hook, prompt="a red bicycle", size="2K", watermark=False),
                    fingerprint(hook, prompt="a red bicycle", size="2K", model="seedream-4.0"),
                }
            )
            == 5
        )

    def test_an_inlined_reference_stands_for_its_bytes(self, connection, tmp_path):
        hook = SeedreamHook()
        reference = tmp_path / "ref.png"
        reference.write_bytes(REFERENCE.read_bytes())
        first = fingerprint(hook, prompt="the mug", images=[str(reference)])
        moved = tmp_path / "elsewhere.png"
        reference.rename(moved)
        assert fingerprint(hook, prompt="the mug", images=[str(moved)]) == first  # same bytes, new name
        from PIL import Image

        Image.open(REFERENCE).rotate(90).save(moved)
        assert fingerprint(hook, prompt="the mug", images=[str(moved)]) != first  # changed bytes
        # What the fingerprint hashes: the bytes' sha256 in place of the data URI.
        prepared = hook.prepare_generation(prompt="the mug", images=[str(moved)])
        spec = MODEL_SPECS["seedream-4.5"]
        body = {**prepared.body, "image": [f"sha256:{hashlib.sha256(moved.read_bytes()).hexdigest()}"]}
        text = json.dumps(
            {"format": 1, "endpoint": f"{hook.base_url}{spec.path}", "body": body},
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        )
        assert (
            hook.generation_cache("/cache").fingerprint(prepared, None)
            == hashlib.sha256(text.encode()).hexdigest()
        )

    def test_a_reference_url_stands_for_itself(self, connection):
        hook = SeedreamHook()
        one = fingerprint(hook, prompt="the mug", images=["https://cdn.example.com/mug.png"])
        assert one == fingerprint(hook, prompt="the mug", images=["https://cdn.example.com/mug.png"])
        assert one != fingerprint(hook, prompt="the mug", images=["https://cdn.example.com/mug.png?v=2"])

    def test_a_cache_key_stands_for_the_prompt_only(self, connection):
        hook = SeedreamHook()
        key = {"product": "kettle", "brief": "calm"}
        assert fingerprint(hook, key, prompt="Kettle: a photo") == fingerprint(
            hook, {"brief": "calm", "product": "kettle"}, prompt="A kettle, photographed"
        )
        assert fingerprint(hook, key, prompt="x") != fingerprint(hook, key, prompt="x", size="4K")
        assert fingerprint(hook, key, prompt="x") != fingerprint(hook, {"product": "mug"}, prompt="x")
        assert fingerprint(hook, key, prompt="x") != fingerprint(hook, prompt="x")

    def test_a_cache_key_that_is_not_json_is_refused(self, connection):
        with pytest.raises(SeedreamValidationError, match=r"cache_key=.*must be a str, number, bool"):
            fingerprint(SeedreamHook(), {"at": object()}, prompt="x")

    def test_the_api_base_url_counts(self, sandbox, monkeypatch):
        from conftest import json_connection

        monkeypatch.setenv("AIRFLOW_CONN_SEEDREAM_DEFAULT", json_connection(sandbox.url))
        monkeypatch.setenv("AIRFLOW_CONN_OTHER", json_connection("http://127.0.0.1:9"))
        assert fingerprint(SeedreamHook(), prompt="x") != fingerprint(SeedreamHook("other"), prompt="x")


class TestHookCache:
    def test_a_miss_generates_and_stores_then_a_hit_sends_nothing(self, connection, tmp_path, logs):
        cache = tmp_path / "cache"
        hook = SeedreamHook()
        options = {"sequential_image_generation": "auto", "max_images": 3}
        first = hook.generate("a red bicycle", cache=str(cache), **options)
        assert posts(connection) == 1
        assert len(first) == 3 and all(location.startswith(str(cache)) for location in first)
        assert [Path(location).read_bytes() for location in first] == connection.served_images()
        second = hook.generate("a red bicycle", cache=str(cache), **options)
        assert second == first and posts(connection) == 1
        assert "Reusing 3 image(s) from the cache" in logs()
        assert "generated at " in logs() and "by a call outside an Airflow task" in logs()
        record = json.loads((entry_folder(cache) / "entry.json").read_text())
        assert record["prompt"] == "a red bicycle" and record["model"] == "seedream-4.5"
        assert (record["usage"]["images_generated"], record["usage"]["estimated_cost_usd"]) == (3, 0.12)
        assert [image["file"] for image in record["images"]] == ["0.png", "1.png", "2.png"]
        assert [image["sha256"] for image in record["images"]] == [
            hashlib.sha256(Path(location).read_bytes()).hexdigest() for location in first
        ]
        assert json.loads((entry_folder(cache) / record["generation"] / "entry.json").read_text()) == record

    @pytest.mark.parametrize(
        "damage",
        ["same size, other bytes", "shorter", "longer", "missing file", "no record", "broken record"],
    )
    def test_a_damaged_entry_is_a_miss_and_is_replaced(self, connection, tmp_path, logs, damage):
        cache = tmp_path / "cache"
        hook = SeedreamHook()
        (first,) = hook.generate("a red bicycle", cache=str(cache))
        image = Path(first)
        data = image.read_bytes()
        entry = entry_folder(cache)
        if damage == "same size, other bytes":
            image.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
        elif damage == "shorter":
            image.write_bytes(data[:-1])
        elif damage == "longer":
            image.write_bytes(data + b"\0")
        elif damage == "missing file":
            image.unlink()
        elif damage == "no record":  # as a generation whose writer died before its record
            (entry / "entry.json").unlink()
        else:
            (entry / "entry.json").write_text('{"format": 1, "images": [')
        (second,) = hook.generate("a red bicycle", cache=str(cache))
        assert posts(connection) == 2  # never a wrong image: generated again
        assert second != first and Path(second).read_bytes() == connection.served_images()[-1]
        if damage != "no record":
            assert "Ignoring the" in logs() and "it will be replaced" in logs()
        (third,) = hook.generate("a red bicycle", cache=str(cache))
        assert third == second and posts(connection) == 2  # the replaced entry is a hit

    def test_a_changed_reference_file_is_a_new_request(self, connection, tmp_path):
        from PIL import Image

        reference = tmp_path / "mug.png"
        reference.write_bytes(REFERENCE.read_bytes())
        hook, cache = SeedreamHook(), str(tmp_path / "cache")
        first = hook.generate("the mug on a table", images=[str(reference)], cache=cache)
        assert hook.generate("the mug on a table", images=[str(reference)], cache=cache) == first
        assert posts(connection) == 1
        Image.open(REFERENCE).rotate(90).save(reference)
        assert hook.generate("the mug on a table", images=[str(reference)], cache=cache) != first
        assert posts(connection) == 2

    def test_a_half_written_generation_is_never_a_hit(self, connection, tmp_path, monkeypatch):
        """Storing stops after the images, before the record: the next call generates."""
        from airflow_provider_seedream._internal.cache import generations as cache_module

        cache = tmp_path / "cache"

        def dies(*args, **kwargs):
            raise KeyboardInterrupt  # the worker is killed here

        with monkeypatch.context() as patched, pytest.raises(KeyboardInterrupt):
            patched.setattr(cache_module.GenerationCache, "write_record", dies)
            SeedreamHook().generate("a red bicycle", cache=str(cache))
        assert list(cache.glob("*/*/*/0.png")) and not list(cache.glob("**/entry.json"))
        SeedreamHook().generate("a red bicycle", cache=str(cache))
        assert posts(connection) == 2

    def test_two_racing_generations_leave_one_whole_entry(self, connection, tmp_path):
        cache = tmp_path / "cache"
        connection.latency = 0.3  # both miss before either stores
        results: list[list[str]] = []
        threads = [
            threading.Thread(target=lambda: results.append(SeedreamHook().generate("race", cache=str(cache))))
            for _ in range(2)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert posts(connection) == 2 and len(results) == 2 and results[0] != results[1]
        for (location,) in results:  # each caller's images are whole where it was told they are
            record = json.loads((Path(location).parent / "entry.json").read_text())
            assert hashlib.sha256(Path(location).read_bytes()).hexdigest() == record["images"][0]["sha256"]
        assert SeedreamHook().generate("race", cache=str(cache)) in results
        assert posts(connection) == 2

    def test_an_object_store_cache(self, connection, bucket):
        hook = SeedreamHook()
        first = hook.generate(
            "a red bicycle", cache=bucket.uri("cache"), max_images=2, sequential_image_generation="auto"
        )
        assert all(location.startswith(bucket.uri("cache/")) for location in first)
        assert (
            hook.generate(
                "a red bicycle", cache=bucket.uri("cache"), max_images=2, sequential_image_generation="auto"
            )
            == first
        )
        assert posts(connection) == 1
        keys = bucket.objects()
        assert len([key for key in keys if key.endswith(".png")]) == 2
        assert len([key for key in keys if key.endswith("entry.json")]) == 2
        assert not bucket.incomplete_uploads()

    def test_an_object_storage_path_with_its_connection(self, connection, bucket):
        from airflow.providers.common.compat.sdk import ObjectStoragePath
        from conftest import S3_CONN_ID

        cache = ObjectStoragePath(f"s3://{bucket.name}/cache", conn_id=S3_CONN_ID)
        (location,) = SeedreamHook().generate("a red bicycle", cache=cache)
        assert location.startswith(bucket.uri("cache/"))  # the connection stays in the location
        assert SeedreamHook().generate("a red bicycle", cache=cache) == [location]
        assert posts(connection) == 1
        copy = SeedreamHook().copy_stored_image(location, "0.{ext}", destination=bucket.uri("out"))
        assert bucket.read("out/0.png") == connection.served_images()[0] and copy.bytes == len(
            bucket.read("out/0.png")
        )

    def test_storing_fails_after_paying_keeps_the_links(self, connection, tmp_path, monkeypatch):
        from airflow_provider_seedream._internal.cache import generations as generations

        monkeypatch.setattr(generations, "LINK_WAIT_SECONDS", 0.2)
        connection.links_of_next_generation(LinkFault(ready_after=30))
        with pytest.raises(SeedreamCacheStoreError) as raised:
            SeedreamHook().generate("a red bicycle", cache=str(tmp_path / "cache"))
        err = raised.value
        assert err.retryable and len(err.urls) == 1 and err.urls[0].startswith(connection.url)
        assert "generated and paid for" in str(err) and err.urls[0] not in str(err)
        assert posts(connection) == 1
        assert not list((tmp_path / "cache").glob("**/entry.json"))


def _xcom(dag_run, task_id, map_index=-1, key="return_value"):
    return dag_run.get_task_instance(task_id, map_index=map_index).xcom_pull(
        task_ids=task_id, map_indexes=map_index, key=key
    )


def asset_events(uri: str, run_ids: list[str]) -> list[dict]:
    """The ``extra`` of the events of the asset (a dataset on Airflow 2) these runs made, oldest first."""
    from airflow.utils.session import create_session
    from sqlalchemy import select

    try:
        from airflow.models.asset import AssetEvent as Event
        from airflow.models.asset import AssetModel as Model
    except ImportError:  # Airflow 2
        from airflow.models.dataset import DatasetEvent as Event
        from airflow.models.dataset import DatasetModel as Model
    target = Event.asset_id if hasattr(Event, "asset_id") else Event.dataset_id
    with create_session() as session:
        rows = session.execute(
            select(Event.extra)
            .join(Model, Model.id == target)
            .where(Model.uri == uri, Event.source_run_id.in_(run_ids))
            .order_by(Event.id)
        ).all()
    return [extra for (extra,) in rows]


class TestDagRuns:
    def test_a_second_run_sends_nothing_and_copies_nothing(self, run_dag, connection, tmp_path, logs):
        conf = {"cache": str(tmp_path / "cache"), "destination": str(tmp_path / "assets")}
        first = run_dag("seedream_cache_test", run_conf=conf)
        assert first.state == "success"
        assert posts(connection) == 6  # gen, 3 mapped, written, the hook's
        stores = [("store", -1), *[("store_mapped", index) for index in range(3)]]
        stored = {store: _xcom(first, *store) for store in stores}
        files = {
            location: os.stat(location).st_ino for locations in stored.values() for location in locations
        }
        assert len(files) == 5
        generated = _xcom(first, "gen")
        assert all(location.startswith(conf["cache"]) for location in generated)
        for location, copy in zip(generated, stored["store", -1], strict=True):  # copies of the cached bytes
            assert Path(copy).read_bytes() == Path(location).read_bytes()
        assert _xcom(first, "gen", key="usage")["images_generated"] == 2
        manifest = json.loads((tmp_path / "assets" / "store" / "manifest.json").read_text())
        assert [image["source"] for image in manifest["images"]] == generated
        facts = manifest["images"][0]["generation"]
        assert facts["model"] == "seedream-4.5" and facts["prompt"] == "a red bicycle"
        assert facts["generated_by"]["task_id"] == "gen" and facts["generated_by"]["run_id"] == first.run_id
        assert facts["estimated_cost_usd"] == 0.04

        second = run_dag("seedream_cache_test", run_conf=conf)
        assert second.state == "success"
        assert posts(connection) == 6  # every generation was found in the cache
        assert _xcom(second, "gen") == generated
        usage = _xcom(second, "gen", key="usage")
        assert (usage["requests_sent"], usage["images_generated"], usage["images_reused"]) == (0, 0, 2)
        assert usage["estimated_cost_usd"] == 0 and usage["estimated_saving_usd"] == 0.08
        assert {store: _xcom(second, *store) for store in stores} == stored
        # The destination already held the right bytes: nothing was copied (the same files).
        assert {location: os.stat(location).st_ino for location in files} == files
        assert f"by dag seedream_cache_test, run {first.run_id}, task gen_mapped[1]" in logs()

    def test_the_store_announces_what_it_stored(self, run_dag, connection, tmp_path):
        conf = {"cache": str(tmp_path / "cache"), "destination": str(tmp_path / "assets")}
        first = run_dag("seedream_cache_outlets_test", run_conf=conf)
        second = run_dag("seedream_cache_outlets_test", run_conf=conf)
        assert first.state == second.state == "success" and posts(connection) == 1
        announced = asset_events("seedream://tests/cache-outlets/store", [first.run_id, second.run_id])
        stored = _xcom(first, "store")
        assert [event["locations"] for event in announced] == [stored] * 2
        assert [event["sources"] for event in announced] == [_xcom(first, "gen")] * 2  # the cached images
        assert [event["manifest"] for event in announced] == [
            str(tmp_path / "assets/store/manifest.json")
        ] * 2
        assert [(event["images"], event["models"]) for event in announced] == [(2, ["seedream-4.5"])] * 2
        # Paid in run 1; in run 2 the cache gave images an earlier run paid for.
        assert [event["usage"] for event in announced] == [
            {
                "images_generated": 2,
                "images_reused": 0,
                "estimated_cost_usd": 0.08,
                "estimated_saving_usd": 0,
            },
            {
                "images_generated": 0,
                "images_reused": 2,
                "estimated_cost_usd": 0,
                "estimated_saving_usd": 0.08,
            },
        ]

    def test_storing_fails_after_paying_then_a_retry_stores_without_paying(
        self, run_dag, connection, tmp_path, monkeypatch, logs
    ):
        from airflow_provider_seedream._internal.cache import generations as generations

        monkeypatch.setattr(generations, "LINK_WAIT_SECONDS", 0.5)
        connection.links_of_next_generation(LinkFault(ready_after=2))  # try 1 gives up waiting for them
        cache = tmp_path / "cache"
        dag_run = run_dag("seedream_cache_store_fails_test", run_conf={"cache": str(cache)})
        assert dag_run.state == "success"
        assert posts(connection) == 1
        ti = dag_run.get_task_instance("gen")
        (result,) = _xcom(dag_run, "gen")
        assert "1 request sent, 1 image generated (paid)" in logs()  # what try 1 spent, though it failed
        if HAS_TASK_STATE_STORE:
            assert ti.try_number == 2
            assert "The links are kept in the task state store: a retry stores them" in logs()
            assert (
                result.startswith(str(cache)) and Path(result).read_bytes() == connection.served_images()[0]
            )
            usage = _xcom(dag_run, "gen", key="usage")
            assert (usage["requests_sent"], usage["images_generated"], usage["images_reused"]) == (0, 0, 1)
        else:  # no store to keep the links in for a retry: the task hands on the paid links
            assert ti.try_number == 1
            assert "Returning the links instead" in logs()
            assert result.startswith(connection.url)

    def test_an_empty_cache_is_refused_before_sending(self, run_dag, connection, failure_logged):
        dag_run = run_dag("seedream_cache_store_fails_test", run_conf={"cache": ""})
        assert dag_run.state == "failed" and posts(connection) == 0
        assert failure_logged("cache='': give a folder, a storage URI", Exception)


class TestCopies:
    def test_a_copy_is_checked_against_the_record(self, connection, tmp_path):
        hook = SeedreamHook()
        (location,) = hook.generate("a red bicycle", cache=str(tmp_path / "cache"))
        copy = hook.copy_stored_image(location, "out/0.{ext}", destination=str(tmp_path / "assets"))
        assert copy.location == str(tmp_path / "assets" / "out" / "0.png")
        assert Path(copy.location).read_bytes() == Path(location).read_bytes()
        assert copy.sha256 == hashlib.sha256(Path(location).read_bytes()).hexdigest()
        data = Path(location).read_bytes()
        Path(location).write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
        with pytest.raises(SeedreamDownloadError, match="does not have the recorded sha256"):
            hook.copy_stored_image(location, "out/1.{ext}", destination=str(tmp_path / "assets"))
        assert sorted(path.name for path in (tmp_path / "assets" / "out").iterdir()) == ["0.png"]

    def test_a_location_outside_any_cache_is_refused(self, connection, tmp_path):
        stray = tmp_path / "stray.png"
        stray.write_bytes(REFERENCE.read_bytes())
        with pytest.raises(SeedreamDownloadError, match="is not an image of a Seedream generation cache"):
            SeedreamHook().copy_stored_image(str(stray), "0.{ext}", destination=str(tmp_path / "assets"))
        assert not (tmp_path / "assets").exists()

    def test_a_location_of_another_scheme_is_refused_before_anything_is_opened(self, connection, tmp_path):
        from airflow.providers.common.compat.sdk import AirflowFailException

        from airflow_provider_seedream.sensors.seedream import SeedreamDownloadOperator

        operator = SeedreamDownloadOperator(
            task_id="t", urls=["ftp://files.example/0.png"], destination=str(tmp_path)
        )
        with pytest.raises(
            AirflowFailException, match=r"urls\[0\]='ftp://files.example/0.png' is not a link"
        ):
            operator._url_list()

    def test_a_copy_outside_the_destination_is_refused(self, connection, tmp_path):
        hook = SeedreamHook()
        (location,) = hook.generate("a red bicycle", cache=str(tmp_path / "cache"))
        with pytest.raises(SeedreamDownloadError, match="outside the destination"):
            hook.copy_stored_image(location, "../0.{ext}", destination=str(tmp_path / "assets"))

    def test_between_buckets_of_one_connection(self, connection, bucket):
        hook = SeedreamHook()
        (location,) = hook.generate("a red bicycle", cache=bucket.uri("cache"))
        copy = hook.copy_stored_image(location, "assets/0.{ext}", destination=bucket.uri("out"))
        assert copy.location == bucket.uri("out/assets/0.png")
        assert bucket.read("out/assets/0.png") == connection.served_images()[0]

    def test_from_an_object_store_to_a_local_folder(self, connection, bucket, tmp_path):
        hook = SeedreamHook()
        (location,) = hook.generate("a red bicycle", cache=bucket.uri("cache"))
        copy = hook.copy_stored_image(location, "0.{ext}", destination=str(tmp_path))
        assert Path(copy.location).read_bytes() == connection.served_images()[0]


class TestConfinedToTheCache:
    """A cache root is written by whoever can write it; what is read of it stays inside it."""

    def test_a_link_in_the_cache_pointing_out_is_never_read(self, connection, tmp_path, logs):
        cache, outside = tmp_path / "cache", tmp_path / "outside.png"
        hook = SeedreamHook()
        (location,) = hook.generate("a red bicycle", cache=str(cache))
        outside.write_bytes(Path(location).read_bytes())  # the very bytes the record describes
        Path(location).unlink()
        Path(location).symlink_to(outside)
        with pytest.raises(SeedreamDownloadError, match="is not an image of a Seedream generation cache"):
            hook.copy_stored_image(location, "0.{ext}", destination=str(tmp_path / "assets"))
        (again,) = hook.generate("a red bicycle", cache=str(cache))  # a lookup does not follow it either
        assert again != location and posts(connection) == 2
        assert "is a symbolic link inside" in logs() or "Ignoring the cache entry" in logs()

    def test_a_copy_comes_only_from_the_cache_it_is_told(self, connection, tmp_path):
        hook = SeedreamHook()
        (location,) = hook.generate("a red bicycle", cache=str(tmp_path / "theirs"))
        with pytest.raises(SeedreamDownloadError, match=r"below .*mine"):
            hook.copy_stored_image(
                location, "0.{ext}", destination=str(tmp_path / "assets"), cache=str(tmp_path / "mine")
            )
        copy = hook.copy_stored_image(
            location, "0.{ext}", destination=str(tmp_path / "assets"), cache=str(tmp_path / "theirs")
        )
        assert Path(copy.location).read_bytes() == Path(location).read_bytes()

    @pytest.mark.parametrize(
        "forged",
        [
            "{cache}/../elsewhere/ab/{fp}/{gen}/0.png",  # a '..' segment
            "{cache}/ab/{fp}/{gen}/../../../../secret.png",
            "{cache}/zz/{fp}/{gen}/0.png",  # not the layout: the folder is not the fingerprint's start
            "memory://cache/ab/{fp}/{gen}/0.png",
        ],
    )
    def test_a_location_out_of_the_layout_is_refused(self, connection, tmp_path, forged):
        hook = SeedreamHook()
        (location,) = hook.generate("a red bicycle", cache=str(tmp_path / "cache"))
        fp, gen = Path(location).parts[-3:-1]
        (tmp_path / "secret.png").write_bytes(Path(location).read_bytes())
        text = forged.format(cache=tmp_path / "cache", fp=fp, gen=gen)
        with pytest.raises(SeedreamDownloadError, match="is not an image of a Seedream generation cache"):
            hook.copy_stored_image(text, "0.{ext}", destination=str(tmp_path / "assets"))
        assert not (tmp_path / "assets").exists()
