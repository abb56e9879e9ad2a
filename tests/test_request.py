"""The request contract, without Airflow: every documented rule, and the exact bodies built."""

from __future__ import annotations

import base64
import io
import logging

import pytest
from PIL import Image

from airflow_provider_seedream.contract.exceptions import SeedreamValidationError
from airflow_provider_seedream.contract.references import check_data_uri, inline_image
from airflow_provider_seedream.contract.request import build_request
from airflow_provider_seedream.contract.specs import MODEL_SPECS


def image_bytes(width: int, height: int, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buffer, format=fmt)
    return buffer.getvalue()


def data_uri(data: bytes, media_type: str = "image/png") -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode()}"


def refused(**fields) -> str:
    with pytest.raises(SeedreamValidationError) as info:
        build_request(**fields)
    return str(info.value)


class TestPayloads:
    def test_seedream_40_body_uses_top_level_images_and_max_images(self):
        request = build_request(
            model="seedream-4.0",
            prompt="a red bicycle",
            size="2560x1440",
            images=["https://example.com/a.png"],
            sequential_image_generation="auto",
            max_images=3,
            watermark=False,
        )
        assert request.to_payload(["https://example.com/a.png"]) == {
            "prompt": "a red bicycle",
            "size": "2560x1440",
            "images": ["https://example.com/a.png"],
            "sequential_image_generation": "auto",
            "max_images": 3,
            "watermark": False,
        }

    def test_seedream_45_body_nests_options_and_uses_image(self):
        request = build_request(
            prompt="a red bicycle",
            size="4k",
            images=["https://example.com/a.png", "https://example.com/b.png"],
            sequential_image_generation="auto",
            max_images=4,
            watermark=True,
            optimize_prompt_mode="standard",
        )
        assert request.to_payload([r.value for r in request.references]) == {
            "prompt": "a red bicycle",
            "size": "4K",
            "image": ["https://example.com/a.png", "https://example.com/b.png"],
            "sequential_image_generation": "auto",
            "sequential_image_generation_options": {"max_images": 4},
            "watermark": True,
            "optimize_prompt_options": {"mode": "standard"},
        }

    @pytest.mark.parametrize("model", sorted(MODEL_SPECS))
    def test_unset_options_are_omitted(self, model):
        assert build_request(model=model, prompt="p").to_payload() == {"prompt": "p"}

    @pytest.mark.parametrize(
        ("given", "read"),
        [
            ({"max_images": "3", "sequential_image_generation": "auto"}, {"max_images": 3}),
            ({"watermark": "false"}, {"watermark": False}),
            ({"watermark": "True"}, {"watermark": True}),
            ({"size": "None", "optimize_prompt_mode": ""}, {"size": None, "optimize_prompt_mode": None}),
        ],
    )
    def test_rendered_strings_are_read_where_the_type_is_clear(self, given, read):
        request = build_request(prompt="p", **given)
        assert {name: getattr(request, name) for name in read} == read

    @pytest.mark.parametrize(
        ("name", "value"), [("max_images", "3.5"), ("max_images", "three"), ("watermark", "yes")]
    )
    def test_rendered_strings_that_are_not_clear_are_refused(self, name, value):
        assert f"{name}={value!r}" in refused(prompt="p", sequential_image_generation="auto", **{name: value})

    def test_wxh_is_normalised(self):
        assert build_request(prompt="p", size="2048X2048").to_payload()["size"] == "2048x2048"


class TestRules:
    def test_unknown_model(self):
        message = (
            "model='seedream-3.0' is not supported; choose one of seedream-4.0, seedream-4.5, "
            "seedream-5.0-lite"
        )
        assert message in refused(model="seedream-3.0", prompt="p")

    @pytest.mark.parametrize("prompt", ["", "   "])
    def test_prompt_is_required(self, prompt):
        assert "a prompt is required" in refused(prompt=prompt)

    def test_long_prompt_warns_but_passes(self, caplog):
        with caplog.at_level(logging.WARNING):
            build_request(prompt="word " * 601)
        assert "601 words" in caplog.text

    @pytest.mark.parametrize(
        ("model", "size"),
        [
            ("seedream-4.0", "1K"),
            ("seedream-4.0", "4K"),
            ("seedream-4.0", "1024x1024"),
            ("seedream-4.0", "4096x4096"),
            ("seedream-4.5", "2K"),
            ("seedream-4.5", "1920x1920"),
            ("seedream-4.5", "4096x4096"),
            ("seedream-4.0", "4096x256"),
            ("seedream-4.5", "7680x480"),
            ("seedream-5.0-lite", "2K"),
            ("seedream-5.0-lite", "3K"),
            ("seedream-5.0-lite", "2560x1440"),  # 3,686,400 pixels, the lowest
            ("seedream-5.0-lite", "3072x3386"),  # 10,401,792: the page's 3072x3072x1.1025 is 10,404,495.36
            ("seedream-5.0-lite", "7680x480"),
            ("seedream-5.0-lite", "480x7680"),
        ],
    )
    def test_sizes_at_the_documented_limits_pass(self, model, size):
        build_request(model=model, prompt="p", size=size)

    @pytest.mark.parametrize(
        ("model", "size", "message"),
        [
            (
                "seedream-4.5",
                "1K",
                (
                    "size='1K' is not valid for seedream-4.5: use one of 2K, 4K, or WIDTHxHEIGHT "
                    "with total pixels 3,686,400..16,777,216 and aspect ratio 1/16..16"
                ),
            ),
            ("seedream-4.0", "8K", "size='8K' is not valid for seedream-4.0"),
            (
                "seedream-4.0",
                "1023x1024",
                "total pixels 1,047,552 are outside 1,048,576..16,777,216 for seedream-4.0",
            ),
            ("seedream-4.0", "4097x4096", "total pixels 16,781,312 are outside 1,048,576..16,777,216"),
            ("seedream-4.5", "1919x1920", "total pixels 3,684,480 are outside 3,686,400..16,777,216"),
            ("seedream-4.0", "4352x256", "aspect ratio 17 is outside 1/16..16"),
            ("seedream-4.5", "480x7700", "aspect ratio 24/385 is outside 1/16..16"),
            ("seedream-4.0", "0x2048", "width and height must be positive"),
            ("seedream-4.0", "2048 by 2048", "size='2048 by 2048' is not valid"),
            (
                "seedream-5.0-lite",
                "4K",
                (
                    "size='4K' is not valid for seedream-5.0-lite: use one of 2K, 3K, or WIDTHxHEIGHT "
                    "with total pixels 3,686,400..10,404,496 and aspect ratio 1/16..16"
                ),
            ),
            ("seedream-5.0-lite", "1K", "size='1K' is not valid for seedream-5.0-lite"),
            (
                "seedream-5.0-lite",
                "3072x3387",
                "size='3072x3387': total pixels 10,404,864 are outside 3,686,400..10,404,496",
            ),
            ("seedream-5.0-lite", "2559x1440", "total pixels 3,684,960 are outside 3,686,400..10,404,496"),
            (
                "seedream-5.0-lite",
                "480x7700",
                "aspect ratio 24/385 is outside 1/16..16 for seedream-5.0-lite",
            ),
        ],
    )
    def test_bad_sizes_name_value_and_range(self, model, size, message):
        assert message in refused(model=model, prompt="p", size=size)

    @pytest.mark.parametrize("max_images", [0, 16, -1])
    def test_max_images_range(self, max_images):
        assert f"max_images={max_images} is outside 1..15" in refused(
            prompt="p", sequential_image_generation="auto", max_images=max_images
        )

    def test_max_images_must_be_an_integer(self):
        assert "max_images=3.5: Input should be a valid integer" in refused(prompt="p", max_images=3.5)

    def test_references_plus_images_at_most_15(self):
        build_request(
            prompt="p", images=["https://x/1.png"] * 5, sequential_image_generation="auto", max_images=10
        )
        assert "max_images can be at most 10" in refused(
            prompt="p", images=["https://x/1.png"] * 5, sequential_image_generation="auto", max_images=11
        )

    def test_max_images_without_auto_warns(self, caplog):
        with caplog.at_level(logging.WARNING):
            build_request(prompt="p", max_images=3)
        assert "no effect unless sequential_image_generation='auto'" in caplog.text

    @pytest.mark.parametrize(
        ("model", "limit"), [("seedream-4.0", 10), ("seedream-4.5", 14), ("seedream-5.0-lite", 14)]
    )
    def test_reference_count(self, model, limit):
        build_request(model=model, prompt="p", images=["https://x/1.png"] * limit)
        assert f"{limit + 1} references; {model} takes 1..{limit}" in refused(
            model=model, prompt="p", images=["https://x/1.png"] * (limit + 1)
        )

    @pytest.mark.parametrize("model", sorted(MODEL_SPECS))
    def test_empty_reference_list_is_refused(self, model):
        assert "images=[]" in refused(model=model, prompt="p", images=[])

    def test_sequential_mode(self):
        message = "is not supported by seedream-4.5; choose one of auto, disabled"
        assert message in refused(prompt="p", sequential_image_generation="sometimes")

    def test_watermark_must_be_boolean(self):
        assert "watermark='no'" in refused(prompt="p", watermark="no")

    def test_optimize_prompt_mode(self):
        assert "optimize_prompt_mode='standard': seedream-4.0 has no such parameter" in refused(
            model="seedream-4.0", prompt="p", optimize_prompt_mode="standard"
        )
        assert (
            "optimize_prompt_mode='fast' is not supported by seedream-4.5; choose one of standard"
            in refused(prompt="p", optimize_prompt_mode="fast")
        )

    def test_unknown_parameter(self):
        assert "seed: unknown parameter" in refused(prompt="p", seed=3)

    def test_every_problem_is_reported_at_once(self):
        message = refused(prompt="", size="1K", images=["ftp://host/a.png"], max_images=20)
        for part in ("images[0]", "prompt=''", "size='1K'", "max_images=20"):
            assert part in message

    @pytest.mark.parametrize(
        ("reference", "message"),
        [
            ("ftp://host/a.png", "unsupported scheme 'ftp'"),
            (
                "data:text/plain;base64,aGVsbG8=",
                "is not a data URI of the form data:image/<format>;base64,<data>",
            ),
            ("", "an empty string is not a reference image"),
            (42, "42 (int) is not a URL, data URI or path"),
            ("https://", "is not a valid URL"),
        ],
    )
    def test_bad_references_are_named(self, reference, message):
        assert message in refused(prompt="p", images=[reference])

    def test_reference_kinds(self, tmp_path):
        request = build_request(
            prompt="p",
            images=["https://x/a.png", "data:image/png;base64,AAAA", str(tmp_path), tmp_path, "s3://b/k.png"],
        )
        assert [r.kind for r in request.references] == ["url", "data_uri", "path", "path", "path"]

    def test_a_single_reference_may_be_given_alone(self):
        assert [r.value for r in build_request(prompt="p", images="https://x/a.png").references] == [
            "https://x/a.png"
        ]


class TestReferenceContent:
    def test_inline_image_detects_format_by_content(self):
        png = image_bytes(64, 64)
        assert inline_image(png, MODEL_SPECS["seedream-4.0"], "r") == data_uri(png, "image/png")

    @pytest.mark.parametrize(
        ("data", "model", "message"),
        [
            (b"hello, not an image", "seedream-4.5", "r: the content is not an image"),
            (
                image_bytes(64, 64, "WEBP"),
                "seedream-4.0",
                "webp images are not accepted by seedream-4.0; use jpeg, png",
            ),
            (image_bytes(14, 64), "seedream-4.0", "14x64 px; seedream-4.0 needs width and height over 14 px"),
            (image_bytes(310, 100), "seedream-4.0", "aspect ratio 310x100 is outside 1/3..3"),
            (
                image_bytes(6001, 6000, "JPEG"),
                "seedream-4.0",
                "6001x6000 px is 36,006,000 pixels; seedream-4.0 takes at most 36,000,000",
            ),
        ],
    )
    def test_content_rules(self, data, model, message):
        with pytest.raises(SeedreamValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
            inline_image(data, MODEL_SPECS[model], "r")

    def test_seedream_40_size_limit(self):
        too_big = image_bytes(64, 64) + b"\0" * (10 * 1024 * 1024)
        with pytest.raises(SeedreamValidationError, match=r"over the 10,485,760-byte limit of seedream-4.0"):
            inline_image(too_big, MODEL_SPECS["seedream-4.0"], "r")
        inline_image(too_big, MODEL_SPECS["seedream-4.5"], "r")  # 4.5 documents no byte limit

    @pytest.mark.parametrize("model", ["seedream-4.5", "seedream-5.0-lite"])
    @pytest.mark.parametrize(
        ("fmt", "media_type"),
        [
            ("WEBP", "webp"),
            ("BMP", "bmp"),
            ("TIFF", "tiff"),
            ("GIF", "gif"),
            ("JPEG", "jpeg"),
            ("PNG", "png"),
        ],
    )
    def test_seedream_45_and_50_lite_take_all_documented_formats(self, model, fmt, media_type):
        data = image_bytes(32, 32, fmt)
        assert inline_image(data, MODEL_SPECS[model], "r") == data_uri(data, f"image/{media_type}")

    def test_seedream_50_lite_documents_no_byte_limit(self):
        inline_image(image_bytes(64, 64) + b"\0" * (10 * 1024 * 1024), MODEL_SPECS["seedream-5.0-lite"], "r")

    def test_data_uri_must_decode_and_match_its_declared_format(self):
        spec = MODEL_SPECS["seedream-4.5"]
        check_data_uri(data_uri(image_bytes(32, 32, "JPEG"), "image/jpg"), spec, "r")
        with pytest.raises(SeedreamValidationError, match="does not decode"):
            check_data_uri("data:image/png;base64,@@@@", spec, "r")
        with pytest.raises(SeedreamValidationError, match="declared image/png but the content is image/jpeg"):
            check_data_uri(data_uri(image_bytes(32, 32, "JPEG"), "image/png"), spec, "r")
