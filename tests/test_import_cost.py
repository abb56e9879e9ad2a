"""Airflow imports every DAG file every 30 s: importing the operators and ``@task.seedream`` must stay
cheap and inert."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import json, socket, sys
import airflow.providers.common.compat.sdk as compat
compat.BaseOperator, compat.BaseSensorOperator  # what any operator module pays for
before = set(sys.modules)
def refuse(*args, **kwargs):
    raise AssertionError("network used at import")
socket.socket.connect = socket.socket.connect_ex = socket.create_connection = refuse
import airflow_provider_seedream.operators.seedream, airflow_provider_seedream.decorators.seedream
print(json.dumps(sorted(set(sys.modules) - before)))
"""


def test_importing_the_operators_pulls_in_no_http_client_or_imaging_library(tmp_path):
    env = {"AIRFLOW_HOME": str(tmp_path), "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "PATH": ""}
    result = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, check=True
    )
    added = json.loads(result.stdout.strip().splitlines()[-1])
    heavy = {"requests", "urllib3", "httpx", "aiohttp", "PIL", "boto3", "botocore", "numpy", "pandas"}
    assert not heavy & {name.split(".")[0] for name in added}
    assert "airflow_provider_seedream.hooks.seedream" not in added
