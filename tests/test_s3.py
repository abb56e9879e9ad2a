"""Images and references in S3, against a real S3 API on 127.0.0.1: moto's standalone server, reached
through Airflow's own S3 support (the amazon provider's s3fs filesystem) and an ``aws`` connection with
``endpoint_url`` in its extra, the way a user points Airflow at MinIO.

Every case reads the bucket back with boto3: what objects exist, their bytes, and that no temporary
object or incomplete multipart upload is left behind."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import socket
import zlib

import pytest

pytest.importorskip("s3fs", reason="needs the amazon provider's s3fs extra (the test extra has it)")
pytest.importorskip("moto.server", reason="needs moto[server] (the test extra has it)")

from airflow.providers.common.compat.sdk import AirflowFailException
from conftest import S3_CONN_ID as CONN_ID

from airflow_provider_seedream.contract.exceptions import SeedreamDownloadError
from airflow_provider_seedream.testing import LinkFault

MiB = 1024 * 1024


def _xcom(dag_run, task_id):
    return dag_run.get_task_instance(task_id).xcom_pull(task_ids=task_id)


def _folder(dag_run) -> str:
    return f"{dag_run.dag_id}/{re.sub(r'[^A-Za-z0-9._-]', '_', dag_run.run_id)}"


def _noise_png(megabytes: int) -> bytes:
    """A PNG of random pixels: about ``megabytes`` MiB, since noise does not compress."""
    from PIL import Image

    side = int((megabytes * MiB / 3) ** 0.5)
    buffer = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(buffer, "PNG", compress_level=0)
    return buffer.getvalue()


class TestDownloadOperator:
    @pytest.mark.parametrize("dag_id", ["seedream_s3_test", "seedream_s3_deferred_test"])
    def test_stores_images_and_manifest_in_the_bucket(self, run_dag, connection, bucket, dag_id):
        connection.links_of_next_generation(LinkFault(ready_after=1))
        dag_run = run_dag(dag_id, run_conf={"destination": bucket.uri("campaign/")})
        assert dag_run.state == "success"
        urls, locations = _xcom(dag_run, "gen"), _xcom(dag_run, "store")
        prefix = f"campaign/{_folder(dag_run)}"
        assert sorted(bucket.objects()) == sorted(
            [*(f"{prefix}/{index}.png" for index in range(3)), f"{prefix}/manifest.json"]
        )
        for index, (url, location) in enumerate(zip(urls, locations, strict=True)):
            assert location.endswith(f"{bucket.name}/{prefix}/{index}.png")
            assert bucket.read(f"{prefix}/{index}.png") == connection.image_bytes(url)
        manifest = json.loads(bucket.read(f"{prefix}/manifest.json"))
        assert [entry["location"] for entry in manifest["images"]] == locations
        assert bucket.incomplete_uploads() == []

    def test_a_rerun_finds_the_manifest_in_the_bucket_and_fetches_nothing(self, run_dag, connection, bucket):
        from airflow_provider_seedream.hooks.seedream import SeedreamHook

        urls = SeedreamHook().generate("three takes", sequential_image_generation="auto", max_images=3)
        conf = {"destination": bucket.uri("campaign/"), "filename": "fixed/{index}.{ext}", "urls": urls}
        first = run_dag("seedream_s3_rerun_test", run_conf=conf)
        before = bucket.objects()
        second = run_dag("seedream_s3_rerun_test", run_conf=conf)
        assert first.state == second.state == "success"
        assert _xcom(second, "store") == _xcom(first, "store")
        assert [connection.downloads_of(url) for url in urls] == [1, 1, 1]  # the second run fetched nothing
        assert sorted(before) == [
            "campaign/fixed/0.png",
            "campaign/fixed/1.png",
            "campaign/fixed/2.png",
            "campaign/fixed/manifest.json",
        ]
        assert bucket.objects() == before

    def test_object_storage_path_with_a_connection_as_destination(self, connection, bucket):
        from airflow.providers.common.compat.sdk import ObjectStoragePath

        from airflow_provider_seedream.hooks.seedream import SeedreamHook

        hook = SeedreamHook()
        (url,) = hook.generate("a red bicycle", size="2K")
        destination = ObjectStoragePath(f"s3://{bucket.name}/by-path/", conn_id=CONN_ID)
        image = hook.download_image(url, "poster.{ext}", destination=destination)
        assert bucket.read("by-path/poster.png") == connection.image_bytes(url)
        assert image.location.endswith(f"{bucket.name}/by-path/poster.png")

    def test_hook_download_to_a_key(self, connection, bucket):
        from airflow_provider_seedream.hooks.seedream import SeedreamHook

        hook = SeedreamHook()
        (url,) = hook.generate("a blue kettle", size="2K")
        location = hook.download(url, bucket.uri("hook/kettle.{ext}"))
        assert location.endswith("hook/kettle.png")
        assert bucket.objects() == {"hook/kettle.png": len(connection.image_bytes(url))}


@pytest.mark.usefixtures("fresh_filesystems")
class TestPlainURIs:
    """``s3://bucket/...`` with no connection in it: Airflow's S3 filesystem then uses boto3's own
    credential chain (environment, profile, instance role), not ``aws_default``."""

    def test_credentials_from_the_environment(self, connection, bucket, monkeypatch, s3_endpoint):
        from airflow_provider_seedream.hooks.seedream import SeedreamHook

        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "moto-key")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "moto-secret")
        monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        hook = SeedreamHook()
        (url,) = hook.generate("a green lamp", size="2K")
        assert (
            hook.download(url, f"s3://{bucket.name}/plain/lamp.{{ext}}")
            == f"s3://{bucket.name}/plain/lamp.png"
        )
        assert bucket.read("plain/lamp.png") == connection.image_bytes(url)

    def test_an_unreachable_store_is_a_typed_error(self, connection, bucket, monkeypatch):
        from airflow_provider_seedream.hooks.seedream import SeedreamHook

        with socket.socket() as closed:  # a port nothing listens on
            closed.bind(("127.0.0.1", 0))
            endpoint = f"http://127.0.0.1:{closed.getsockname()[1]}"
        for name, value in {
            "AWS_ACCESS_KEY_ID": "k",
            "AWS_SECRET_ACCESS_KEY": "s",
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_MAX_ATTEMPTS": "1",
        }.items():
            monkeypatch.setenv(name, value)
        url = connection.add_image(_noise_png(1))
        with pytest.raises(
            SeedreamDownloadError, match=rf"Could not store s3://{bucket.name}/x/poster.png: \w+"
        ):
            SeedreamHook().download(url, f"s3://{bucket.name}/x/poster.{{ext}}")


class TestReferences:
    @pytest.mark.parametrize(("model", "field"), [("seedream-4.0", "images"), ("seedream-4.5", "image")])
    def test_an_s3_reference_is_read_and_inlined(self, connection, bucket, model, field):
        from airflow_provider_seedream.hooks.seedream import SeedreamHook

        reference = _noise_png(1)
        bucket.client.put_object(Bucket=bucket.name, Key="refs/mug.png", Body=reference)
        SeedreamHook().generate("the mug on a table", model=model, images=[bucket.uri("refs/mug.png")])
        (request,) = connection.generation_requests()
        assert request.body[field] == ["data:image/png;base64," + base64.b64encode(reference).decode()]

    def test_a_missing_reference_object_is_refused_before_sending(self, connection, bucket):
        from airflow_provider_seedream.contract.exceptions import SeedreamValidationError
        from airflow_provider_seedream.hooks.seedream import SeedreamHook

        with pytest.raises(SeedreamValidationError, match="no such file"):
            SeedreamHook().generate("p", images=[bucket.uri("refs/nothing.png")])
        assert connection.requests == []


def _sized_png(size: int) -> bytes:
    """A PNG of exactly ``size`` bytes: random pixels, then zeros after its end, which readers ignore."""
    from PIL import Image

    side = int((size * 0.9 / 3) ** 0.5)
    buffer = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(buffer, "PNG", compress_level=0)
    return buffer.getvalue() + bytes(size - buffer.tell())


def _crc32(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


class TestUploads:
    """How an image reaches S3: as boto3's ``upload_file`` sends it, one PUT up to one part and 8 MiB
    parts beyond, each part with its CRC32 so that S3 checks it and keeps the object's checksum."""

    def _store(self, connection, bucket, data: bytes) -> dict:
        from airflow_provider_seedream.hooks.seedream import SeedreamHook

        SeedreamHook().download(connection.add_image(data), bucket.uri("up/poster.{ext}"))
        stored = bucket.client.get_object(Bucket=bucket.name, Key="up/poster.png", ChecksumMode="ENABLED")
        assert stored.pop("Body").read() == data
        assert bucket.incomplete_uploads() == []
        return stored

    @pytest.mark.parametrize("size", [1 * MiB, 8 * MiB])
    def test_up_to_one_part_is_one_put_with_the_objects_crc32(self, connection, bucket, size):
        data = _sized_png(size)
        stored = self._store(connection, bucket, data)
        assert stored["ChecksumCRC32"] == _crc32(data)
        assert stored.get("ChecksumType", "FULL_OBJECT") == "FULL_OBJECT"

    @pytest.mark.parametrize(
        ("size", "part_sizes"), [(8 * MiB + 1, [8 * MiB, 1]), (20 * MiB, [8 * MiB, 8 * MiB, 4 * MiB])]
    )
    def test_beyond_one_part_each_8_mib_part_carries_its_crc32(self, connection, bucket, size, part_sizes):
        data = _sized_png(size)
        stored = self._store(connection, bucket, data)
        part_crcs, start = b"", 0
        for length in part_sizes:
            part_crcs += zlib.crc32(data[start : start + length]).to_bytes(4, "big")
            start += length
        assert start == size
        assert stored["ChecksumType"] == "COMPOSITE"
        assert stored["ChecksumCRC32"].split("-")[0] == _crc32(part_crcs)

    @pytest.mark.usefixtures("fresh_filesystems")
    def test_a_connection_that_turns_checksums_off_sends_none(
        self, connection, bucket, monkeypatch, s3_endpoint
    ):
        # What a user of a store without S3's checksums sets: botocore's request_checksum_calculation.
        extra = {
            "endpoint_url": s3_endpoint,
            "region_name": "us-east-1",
            "config_kwargs": {"request_checksum_calculation": "when_required"},
        }
        monkeypatch.setenv(
            f"AIRFLOW_CONN_{CONN_ID.upper()}",
            json.dumps({"conn_type": "aws", "login": "moto-key", "password": "moto-secret", "extra": extra}),
        )
        stored = self._store(connection, bucket, _sized_png(20 * MiB))
        assert "ChecksumCRC32" not in stored


class TestFailures:
    """Each failure: a typed error naming the bucket and key, nothing at the final key, no temporary
    object and no incomplete multipart upload."""

    def _download(self, connection, destination, data=None, faults=None):
        from airflow_provider_seedream.hooks.seedream import SeedreamHook

        url = connection.add_image(data or _noise_png(1), faults)
        with pytest.raises(SeedreamDownloadError) as raised:
            SeedreamHook().download(url, destination)
        return raised.value

    def test_missing_bucket(self, connection, bucket):
        err = self._download(connection, f"s3://{CONN_ID}@no-such-bucket-{bucket.name}/a/poster.{{ext}}")
        assert f"no-such-bucket-{bucket.name}/a/poster.png" in str(err)
        assert "bucket does not exist" in str(err)
        assert not err.retryable
        names = [listed["Name"] for listed in bucket.client.list_buckets()["Buckets"]]
        assert f"no-such-bucket-{bucket.name}" not in names  # writing never creates a bucket

    def test_access_denied_by_the_bucket_policy(self, connection, bucket):
        policy = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": ["s3:PutObject"],
                    "Resource": f"arn:aws:s3:::{bucket.name}/locked/*",
                }
            ],
        }
        bucket.client.put_bucket_policy(Bucket=bucket.name, Policy=json.dumps(policy))
        err = self._download(connection, bucket.uri("locked/poster.{ext}"), data=_noise_png(20))
        assert f"{bucket.name}/locked/poster.png" in str(err) and "access denied" in str(err)
        assert not err.retryable
        bucket.client.delete_bucket_policy(Bucket=bucket.name)
        assert bucket.objects() == {} and bucket.incomplete_uploads() == []

    def test_a_body_that_breaks_mid_upload(self, connection, bucket):
        # 20 MiB in 8 MiB parts: two parts are uploaded before the link's body breaks off at 18 MiB.
        data = _noise_png(20)
        err = self._download(
            connection, bucket.uri("broken/poster.{ext}"), data=data, faults=LinkFault(truncate_at=18 * MiB)
        )
        assert "the body broke off after 18,874,368 bytes" in str(err)
        assert str(err).endswith(f"nothing was stored at {bucket.uri('broken/poster.png')}")
        assert bucket.objects() == {} and bucket.incomplete_uploads() == []

    def test_the_operator_fails_without_retries_and_names_the_key(
        self, run_dag, connection, bucket, failure_logged
    ):
        missing = f"s3://{CONN_ID}@no-such-bucket-{bucket.name}/campaign/"
        dag_run = run_dag("seedream_s3_test", run_conf={"destination": missing})
        assert dag_run.state == "failed"
        assert dag_run.get_task_instance("store").try_number == 1
        assert failure_logged(
            f"no-such-bucket-{bucket.name}/campaign/seedream_s3_test/", AirflowFailException
        )
