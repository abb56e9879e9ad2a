"""A DAG author forging what the UI's gallery reads: each case a task instance that writes the files
it names (a manifest, a cache record) wherever its storage reaches, then pushes XCom as our tasks do,
a ``manifest`` and a ``usage``, and returns locations of its choosing. The suite and both deployment
tiers run it, then ask the gallery for every image it names: nothing of it may be served."""

from __future__ import annotations

import json

import pendulum
from airflow.providers.common.compat.sdk import DAG, ObjectStoragePath, task

with DAG(
    "seedream_forged_test",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    params={"cases": []},
):

    @task
    def cases(params=None) -> list[dict]:
        return list(params["cases"])

    @task(map_index_template="{{ case_name }}")
    def forge(case: dict, ti=None) -> list[str]:
        from airflow.providers.common.compat.sdk import get_current_context

        get_current_context()["case_name"] = case["name"]
        for location, document in case.get("write", {}).items():
            ObjectStoragePath(location).write_text(json.dumps(document))
        if case.get("manifest"):
            ti.xcom_push(key="manifest", value=case["manifest"])
        ti.xcom_push(key="usage", value={"model": "seedream-4.5", "images_generated": 1})
        return case["returned"]

    forge.expand(case=cases())
