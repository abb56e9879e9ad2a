"""SeedreamGenerateOperator: validation at parse and run time, and real runs with dag.test()."""

from __future__ import annotations

import pytest
from conftest import API_KEY, FAILURES_SHOWN_BY_DAG_TEST, REPOSITORY, json_connection

from airflow_provider_seedream.exceptions import SeedreamValidationError
from airflow_provider_seedream.operators.seedream import SeedreamGenerateOperator


class TestConstruction:
    def test_literal_arguments_are_validated_when_built(self):
        with pytest.raises(SeedreamValidationError, match=r"size='1K' is not valid for seedream-4\.5"):
            SeedreamGenerateOperator(task_id="gen", prompt="p", size="1K")

    def test_literal_references_are_classified_when_built(self):
        with pytest.raises(SeedreamValidationError, match="unsupported scheme 'ftp'"):
            SeedreamGenerateOperator(task_id="gen", prompt="p", images=["ftp://host/a.png"])

    def test_templated_arguments_wait_for_rendering(self):
        operator = SeedreamGenerateOperator(
            task_id="gen", prompt="{{ params.prompt }}", size="{{ params.size }}", images="{{ params.refs }}"
        )
        assert operator.template_fields == ("prompt", "images", "size")

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
        urls = _xcom(dag_run, "gen")
        assert isinstance(urls, list) and len(urls) == 1 and urls[0].startswith(f"{connection.url}/files/")
        assert len(_xcom(dag_run, "gen_40")) == 3
        assert _xcom(dag_run, "count") == 4

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

    def test_an_empty_destination_is_refused(self, run_dag, connection, logs):
        dag_run = run_dag("seedream_mapped_test")  # params.destination defaults to ""
        assert dag_run.state == "failed"
        assert "destination is empty" in logs() or not FAILURES_SHOWN_BY_DAG_TEST
        assert not (REPOSITORY / "seedream_mapped_test").exists()  # nothing written to the current directory

    def test_templated_value_is_validated_before_sending(self, run_dag, connection, logs):
        dag_run = run_dag("seedream_failure_test", run_conf={"size": "1K"})
        assert dag_run.state == "failed"
        assert connection.requests == []
        assert dag_run.get_task_instance("gen").try_number == 1  # no retries spent on a hopeless request
        assert "size='1K' is not valid for seedream-4.5" in logs() or not FAILURES_SHOWN_BY_DAG_TEST

    def test_auth_failure_does_not_spend_retries(self, run_dag, sandbox, monkeypatch, logs):
        monkeypatch.setenv(
            "AIRFLOW_CONN_SEEDREAM_DEFAULT", json_connection(sandbox.url, password="sk-revoked-key-42")
        )
        dag_run = run_dag("seedream_failure_test")
        assert dag_run.state == "failed"
        assert len(sandbox.requests) == 1
        output = logs()
        assert "Seedream API error 401 INVALID_API_KEY" in output or not FAILURES_SHOWN_BY_DAG_TEST
        assert "sk-revoked-key-42" not in output

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
