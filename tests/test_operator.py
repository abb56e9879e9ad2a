"""SeedreamGenerateOperator: validation at parse and run time, and real runs with dag.test()."""

from __future__ import annotations

import io
import json

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException
from conftest import AIRFLOW_VERSION, API_KEY, REPOSITORY, json_connection
from PIL import Image

from airflow_provider_seedream.contract.exceptions import SeedreamAuthError, SeedreamValidationError
from airflow_provider_seedream.operators.seedream import SeedreamGenerateOperator


class TestConstruction:
    def test_literal_arguments_are_validated_when_built(self):
        with pytest.raises(SeedreamValidationError, match=r"size='1K' is not valid for seedream-4\.5"):
            SeedreamGenerateOperator(task_id="gen", prompt="p", size="1K")

    def test_seedream_50_lite_is_validated_when_built(self):
        SeedreamGenerateOperator(task_id="gen", prompt="p", model="seedream-5.0-lite", size="3K")
        message = "size='4K' is not valid for seedream-5.0-lite: use one of 2K, 3K, or WIDTHxHEIGHT"
        with pytest.raises(SeedreamValidationError, match=message):
            SeedreamGenerateOperator(task_id="gen", prompt="p", model="seedream-5.0-lite", size="4K")

    def test_literal_references_are_classified_when_built(self):
        with pytest.raises(SeedreamValidationError, match="unsupported scheme 'ftp'"):
            SeedreamGenerateOperator(task_id="gen", prompt="p", images=["ftp://host/a.png"])

    def test_templated_arguments_wait_for_rendering(self):
        # A literal out of range is refused when the DAG is parsed; a template is checked once rendered.
        with pytest.raises(SeedreamValidationError, match="max_images=30"):
            SeedreamGenerateOperator(
                task_id="gen", prompt="p", sequential_image_generation="auto", max_images=30
            )
        operator = SeedreamGenerateOperator(
            task_id="gen", prompt="p", size="{{ params.size }}", max_images="{{ params.n }}", model="{{ m }}"
        )
        assert (operator.model, operator.max_images) == ("{{ m }}", "{{ params.n }}")

    def test_public_signatures_take_every_generation_parameter(self):
        """The parameters are defined once (GenerateRequest). The operator spells them out with the same
        defaults; the hook takes the prompt and ``**options`` typed by GenerationOptions, whose keys and
        types are the operator's."""
        import inspect
        import typing

        from airflow_provider_seedream.contract.request import (
            GENERATION_PARAMETERS,
            GenerateRequest,
            GenerationOptions,
        )
        from airflow_provider_seedream.hooks.seedream import SeedreamHook

        parameters = inspect.signature(SeedreamGenerateOperator.__init__).parameters
        for name in GENERATION_PARAMETERS:
            default = GenerateRequest.model_fields[name].default
            expected = inspect.Parameter.empty if name == "prompt" else default
            assert parameters[name].default == expected, name
        assert set(GENERATION_PARAMETERS) <= set(SeedreamGenerateOperator.template_fields)

        import os

        from airflow.providers.common.compat.sdk import ObjectStoragePath

        # What the operator's module imports for type checkers only (cache's type).
        names = {"os": os, "ObjectStoragePath": ObjectStoragePath}
        operator_types = typing.get_type_hints(SeedreamGenerateOperator.__init__, localns=names)
        option_types = typing.get_type_hints(GenerationOptions)
        assert list(option_types) == [name for name in GENERATION_PARAMETERS if name != "prompt"]
        assert option_types == {name: operator_types[name] for name in option_types}
        hook_parameters = inspect.signature(SeedreamHook.generate).parameters
        assert list(hook_parameters)[1] == "prompt"
        assert hook_parameters["options"].kind is inspect.Parameter.VAR_KEYWORD
        assert "Unpack[GenerationOptions]" in str(hook_parameters["options"].annotation)
        for name in ("cache", "cache_key"):  # the cache's arguments, on both
            assert hook_parameters[name].default is parameters[name].default is None, name
        assert {"cache", "cache_key"} <= set(SeedreamGenerateOperator.template_fields)

    def test_templated_prompt_does_not_hide_other_errors(self):
        with pytest.raises(SeedreamValidationError, match="max_images=30"):
            SeedreamGenerateOperator(
                task_id="gen", prompt="{{ ds }}", sequential_image_generation="auto", max_images=30
            )


def _xcom(dag_run, task_id, map_index=-1):
    return dag_run.get_task_instance(task_id, map_index=map_index).xcom_pull(
        task_ids=task_id, map_indexes=map_index
    )


class TestDagRuns:
    def test_every_request_argument_can_be_templated(self, run_dag, connection):
        dag_run = run_dag("seedream_templated_test")
        assert dag_run.state == "success"
        (request,) = connection.generation_requests()
        assert request.path == "/v3/seedream-4.0"
        assert request.body == {
            "prompt": "a red bicycle",
            "size": "2K",
            "sequential_image_generation": "auto",
            "max_images": 2,  # rendered "2", sent as the number
            "watermark": False,  # rendered "False", sent as the boolean
        }

    def test_generate_returns_urls_over_xcom(self, run_dag, connection):
        dag_run = run_dag("seedream_generate_test")
        assert dag_run.state == "success"
        bodies = {request.path: request.body for request in connection.generation_requests()}
        assert bodies["/v3/seedream-4.5"] == {
            "prompt": f"a red bicycle, {dag_run.logical_date:%Y-%m-%d}",
            "size": "2560x1440",
        }
        assert bodies["/v3/seedream-4.0"] == {
            "prompt": "a storyboard of a bicycle ride",
            "size": "2K",
            "sequential_image_generation": "auto",
            "max_images": 3,
            "watermark": False,
        }
        assert bodies["/v3/seedream-5.0-lite"] == {
            "prompt": "a red bicycle on a 3K poster",
            "size": "3K",
            "image": ["https://cdn.example.com/bike.png"],
            "optimize_prompt_options": {"mode": "standard"},
        }
        urls = _xcom(dag_run, "gen")
        assert isinstance(urls, list) and len(urls) == 1 and urls[0].startswith(f"{connection.url}/files/")
        assert len(_xcom(dag_run, "gen_40")) == 3
        (lite,) = _xcom(dag_run, "gen_50_lite")
        assert Image.open(io.BytesIO(connection.image_bytes(lite))).size == (96, 96)  # 3072x3072 at 1/32
        assert _xcom(dag_run, "count") == 5

    def test_mapped_over_prompts(self, run_dag, connection, tmp_path):
        dag_run = run_dag("seedream_mapped_test", run_conf={"destination": str(tmp_path)})
        assert dag_run.state == "success"
        assert sorted(request.body["prompt"] for request in connection.generation_requests()) == [
            "a blue kettle",
            "a green lamp",
            "a red bicycle",
        ]
        for map_index in range(3):
            (url,) = _xcom(dag_run, "gen", map_index)
            (location,) = _xcom(dag_run, "store", map_index)
            assert location.startswith(str(tmp_path)) and location.endswith(f"/store/{map_index}-0.png")
            with open(location, "rb") as handle:
                assert handle.read() == connection.image_bytes(url)

    def test_an_empty_destination_is_refused(self, run_dag, connection, failure_logged):
        dag_run = run_dag("seedream_mapped_test")  # params.destination defaults to ""
        assert dag_run.state == "failed"
        assert failure_logged("destination is empty", AirflowFailException)
        assert not (REPOSITORY / "seedream_mapped_test").exists()  # nothing written to the current directory

    def test_templated_value_is_validated_before_sending(self, run_dag, connection, failure_logged):
        dag_run = run_dag("seedream_failure_test", run_conf={"size": "1K"})
        assert dag_run.state == "failed"
        assert connection.requests == []
        assert dag_run.get_task_instance("gen").try_number == 1  # no retries spent on a hopeless request
        assert failure_logged("size='1K' is not valid for seedream-4.5", SeedreamValidationError)

    def test_templated_model_is_validated_before_sending(self, run_dag, connection, failure_logged):
        dag_run = run_dag(
            "seedream_failure_test", run_conf={"model": "seedream-5.0-lite", "size": "4096x4096"}
        )
        assert dag_run.state == "failed"
        assert connection.requests == []
        assert dag_run.get_task_instance("gen").try_number == 1
        message = (
            "size='4096x4096': total pixels 16,777,216 are outside 3,686,400..10,404,496 for "
            "seedream-5.0-lite"
        )
        assert failure_logged(message, SeedreamValidationError)

    def test_auth_failure_does_not_spend_retries(
        self, run_dag, sandbox, monkeypatch, logs, failure_logged, tmp_path
    ):
        monkeypatch.setenv(
            "AIRFLOW_CONN_SEEDREAM_DEFAULT", json_connection(sandbox.url, password="sk-revoked-key-42")
        )
        seen = tmp_path / "callback.json"
        dag_run = run_dag("seedream_failure_test", run_conf={"callback_file": str(seen)})
        assert dag_run.state == "failed"
        assert len(sandbox.requests) == 1
        assert failure_logged("Seedream API error 401 INVALID_API_KEY", SeedreamAuthError)
        output = logs()
        assert "sk-revoked-key-42" not in output
        # The failure callback is handed the typed error: in the message, and as the cause. Before 3.3,
        # Airflow 3's dag.test() runs callbacks without context["exception"] (its task runner's main()
        # sets it, so a deployment has it).
        if (3, 0) <= AIRFLOW_VERSION[:2] < (3, 3):
            assert json.loads(seen.read_text())["type"] == "NoneType"
            return
        assert json.loads(seen.read_text()) == {
            "type": "AirflowFailException",
            "message": "SeedreamAuthError: Seedream API error 401 INVALID_API_KEY: invalid API key",
            "cause": "SeedreamAuthError",
        }

    def test_server_errors_spend_retries(self, run_dag, connection):
        connection.fail_next(503, times=4)  # exhausts the hook's retries once; the task's retry succeeds
        dag_run = run_dag("seedream_failure_test")
        assert dag_run.state == "success"
        assert dag_run.get_task_instance("gen").try_number == 2
        assert len(connection.requests) == 5

    def test_key_never_reaches_logs_or_rendered_fields(self, run_dag, connection, logs):
        dag_run = run_dag("seedream_generate_test")
        assert API_KEY not in logs()
        ti = dag_run.get_task_instance("gen")
        from airflow.models.renderedtifields import RenderedTaskInstanceFields

        rendered = RenderedTaskInstanceFields.get_templated_fields(ti)
        assert rendered["prompt"].startswith("a red bicycle")
        assert API_KEY not in repr(rendered) and API_KEY not in repr(_xcom(dag_run, "gen"))
