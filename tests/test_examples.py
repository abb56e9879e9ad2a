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
    """A file:// destination, and the pool the marketing example runs its generations in."""
    from airflow.models.pool import Pool

    Pool.create_or_update_pool(
        "seedream_api", slots=2, description="Seedream generations", include_deferred=False
    )
    return tmp_path


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
        "Product photo of a matte black brushed steel Electric kettle"
    )
    folder = assets / "marketing" / f"{dag_run.logical_date:%Y-%m-%d}"
    rows = list(csv.DictReader(io.StringIO((folder / "summary.csv").read_text())))
    assert [row["sku"] for row in rows] == ["BK-100", "KT-220", "LP-310", "MG-415"]
    for map_index, row in enumerate(rows):
        assert row["file"] == (folder / f"{map_index}-0.png").as_uri()
        assert row["prompt"] in prompts
        assert (folder / f"{map_index}-0.png").read_bytes().startswith(b"\x89PNG")


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
    folder = assets / "storyboard" / f"{dag_run.logical_date:%Y-%m-%d}"
    names = sorted(path.name for path in folder.iterdir())
    assert names == [
        *(f"v40-{i}.png" for i in range(4)),
        "v40-manifest.json",
        *(f"v45-{i}.png" for i in range(4)),
        "v45-manifest.json",
    ]
