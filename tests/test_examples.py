"""The example DAGs import cleanly and run to success with dag.test() against the sandbox."""

from __future__ import annotations

import base64
import csv
import io

import pytest
from conftest import REPOSITORY, dag_bag

EXAMPLES = REPOSITORY / "example_dags"


@pytest.fixture
def assets(tmp_path, airflow_db):
    """A file:// destination: the examples need nothing else set up (no pool, no variable)."""
    return tmp_path


def run_folder(dag_run) -> str:
    """Where the examples store a run's images: its date, then its run id made safe for a name."""
    safe_run_id = "".join(c if c.isalnum() or c in "._-" else "_" for c in dag_run.run_id)
    return f"{dag_run.logical_date:%Y-%m-%d}/{safe_run_id}"


def test_examples_import_without_errors(airflow_db):
    bag = dag_bag(EXAMPLES)
    assert bag.import_errors == {}
    assert sorted(bag.dag_ids) == [
        "seedream_marketing_refresh",
        "seedream_product_edit",
        "seedream_storyboard",
    ]


def test_marketing_refresh(run_dag, connection, assets):
    dag_run = run_dag("seedream_marketing_refresh", run_conf={"destination": assets.as_uri()})
    assert dag_run.state == "success"
    prompts = sorted(request.body["prompt"] for request in connection.generation_requests())
    assert len(prompts) == 4 and prompts[0].startswith(
        "City bicycle: product photo of a red steel city bicycle"
    )
    folder = assets / "marketing" / run_folder(dag_run)
    rows = list(csv.DictReader(io.StringIO((folder / "summary.csv").read_text())))
    assert [row["sku"] for row in rows] == ["BK-100", "KT-220", "LP-310", "MG-415"]
    for map_index, row in enumerate(rows):
        assert row["file"] == (folder / f"{map_index}-0.png").as_uri()
        assert row["prompt"] in prompts
        assert (folder / f"{map_index}-0.png").read_bytes().startswith(b"\x89PNG")
    names = [dag_run.get_task_instance("generate", map_index=i).rendered_map_index for i in range(4)]
    assert names == ["City bicycle", "Electric kettle", "Desk lamp", "Travel mug"]  # the grid shows products


def test_product_edit_inlines_the_shipped_references(run_dag, connection, assets):
    dag_run = run_dag("seedream_product_edit", run_conf={"destination": assets.as_uri()})
    assert dag_run.state == "success"
    (request,) = connection.generation_requests()
    assert request.path == "/v3/seedream-4.5"
    assert request.body["image"] == [
        "data:image/png;base64,"
        + base64.b64encode((EXAMPLES / "data/references" / name).read_bytes()).decode()
        for name in ("mug.png", "pattern.png")
    ]
    (stored,) = (assets / "product-edit").rglob("mug-0.png")
    assert stored.read_bytes().startswith(b"\x89PNG")


def test_storyboard_on_both_models(run_dag, connection, assets):
    dag_run = run_dag("seedream_storyboard", run_conf={"destination": assets.as_uri()})
    assert dag_run.state == "success"
    bodies = {request.path: request.body for request in connection.generation_requests()}
    assert bodies["/v3/seedream-4.0"]["max_images"] == 4
    assert bodies["/v3/seedream-4.5"]["sequential_image_generation_options"] == {"max_images": 4}
    folder = assets / "storyboard" / run_folder(dag_run)
    names = sorted(path.name for path in folder.iterdir())
    assert names == [
        *(f"v40-{i}.png" for i in range(4)),
        "v40-manifest.json",
        *(f"v45-{i}.png" for i in range(4)),
        "v45-manifest.json",
    ]
