"""`make test-deploy`: the provider in a real Airflow deployment, driven the way users drive one.

A throwaway PostgreSQL cluster, a Seedream sandbox, and Airflow 3's scheduler, dag-processor,
triggerer and api-server as separate processes (LocalExecutor), all on free ports under one temporary
directory. Everything is done through the REST API with a JWT from the simple auth manager: manual
runs without a logical date (as the UI, CLI and REST create them) and with one, the scheduled path,
a deferred wait through the triggerer, reschedule mode, connection tests, the providers listing, a
human review answered over REST as a reviewer would (approve some, approve all, reject), and a mapped
load against a rate-limited sandbox, reported in docs/benchmarks.md. Afterwards every log
Airflow wrote is searched for the API key and for link signatures. Every process is stopped by PID at
the end, even on failure; a failure prints the failing task's log.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
from PIL import Image

REPOSITORY = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPOSITORY))

from airflow_provider_seedream.testing import LinkFault, SeedreamSandbox  # noqa: E402

API_KEY = "sk-deploy-" + secrets.token_hex(12)
PASSWORD = secrets.token_urlsafe(12)
LOAD_PROMPTS = 100
LOAD_RATE_LIMIT = 90
"""Images per minute the sandbox allows during the load case: below what the deployment can do, so
the limit binds and 429s happen."""
LOAD_LATENCY = 2.0
"""Seconds each generation takes during the load case."""
LOAD_IN_FLIGHT = 8
"""Generations in flight (max_active_tis_per_dag): more than rate x latency / 60 = 3 needs, so the
deployment could outrun the limit and the hook's pacing is what keeps it there."""
BENCHMARKS = REPOSITORY / "docs" / "benchmarks.md"
REPORT_START, REPORT_END = "<!-- deploy-load:start -->", "<!-- deploy-load:end -->"
REVIEW_DAG = "seedream_campaign_review"
S3_KEY, S3_SECRET = "moto-key", "moto-secret-" + secrets.token_hex(8)
S3_BUCKET = "marketing-assets"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def postgres_program(name: str) -> str:
    """A PostgreSQL server program: on the PATH, or where Debian's packages put it."""
    found = shutil.which(name) or next(iter(sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))), None)
    if found is None:
        raise Failure(f"{name} not found: install PostgreSQL's server (Debian: apt-get install postgresql)")
    return str(found)


def step(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


class Failure(Exception):
    """A check failed; ``logs`` are the task logs worth reading."""

    def __init__(self, message: str, logs: list[Path] | None = None) -> None:
        super().__init__(message)
        self.logs = logs or []


class Deployment:
    def __init__(self, work: Path) -> None:
        self.work = work
        self.home = work / "airflow-home"
        self.assets = work / "assets"
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.pg_data = work / "pg" / "data"
        self.pg_port = free_port()
        self.api_port = free_port()
        self.sandbox = SeedreamSandbox(API_KEY, image_scale=1 / 16)
        # A real S3 API (moto's server) for the marketing run that stores into a bucket.
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self.s3 = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.session = requests.Session()
        # One secret for every process: the api-server must accept the tokens the scheduler signs.
        self._secret_key, self._jwt_secret = secrets.token_hex(16), secrets.token_hex(16)

    # Processes ----------------------------------------------------------------------------------

    def _as_postgres(self, *command: str) -> list[str]:
        # initdb and pg_ctl refuse to run as root.
        return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else list(command)

    def start_postgres(self) -> None:
        step(f"PostgreSQL on 127.0.0.1:{self.pg_port}")
        pg = self.work / "pg"
        pg.mkdir()
        if os.geteuid() == 0:
            shutil.chown(pg, "postgres", "postgres")
        initdb, pg_ctl = postgres_program("initdb"), postgres_program("pg_ctl")
        subprocess.run(
            self._as_postgres(initdb, "-D", str(self.pg_data), "-A", "trust", "-U", "airflow", "--no-sync"),
            check=True,
            stdout=subprocess.DEVNULL,
        )
        options = (
            f"-p {self.pg_port} -k {pg} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        )
        subprocess.run(
            self._as_postgres(
                pg_ctl, "-D", str(self.pg_data), "-o", options, "-l", str(pg / "log"), "-w", "start"
            ),
            check=True,
            stdout=subprocess.DEVNULL,
        )
        self._pg_ctl = pg_ctl
        import psycopg2

        connection = psycopg2.connect(host="127.0.0.1", port=self.pg_port, user="airflow", dbname="postgres")
        connection.autocommit = True
        connection.cursor().execute("CREATE DATABASE airflow")
        connection.close()

    def stop_postgres(self) -> None:
        if self.pg_data.exists() and hasattr(self, "_pg_ctl"):
            subprocess.run(
                self._as_postgres(self._pg_ctl, "-D", str(self.pg_data), "-m", "immediate", "stop"),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )

    @property
    def env(self) -> dict[str, str]:
        dags = self.work / "dags"
        base = f"http://127.0.0.1:{self.api_port}"
        connection = {"conn_type": "seedream", "host": self.sandbox.url, "password": API_KEY}
        return {
            **{key: value for key, value in os.environ.items() if not key.startswith("AIRFLOW")},
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "16",
            "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.work / "passwords.json"),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base}/execution/",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://airflow@127.0.0.1:{self.pg_port}/airflow",
            "AIRFLOW__API__PORT": str(self.api_port),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__BASE_URL": base,
            "AIRFLOW__API__SECRET_KEY": self._secret_key,
            "AIRFLOW__API_AUTH__JWT_SECRET": self._jwt_secret,
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(self._ports["worker_log"]),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(self._ports["trigger_log"]),
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
            "AIRFLOW_CONN_SEEDREAM_DEFAULT": json.dumps(connection),
            # The marketing example's prompts come from the sandbox's OpenAI-compatible chat endpoint.
            "AIRFLOW_CONN_NOVITA_LLM": json.dumps(
                {
                    "conn_type": "pydanticai",
                    "host": f"{connection['host']}/openai/v1",
                    "password": API_KEY,
                    "extra": {"model": "openai-chat:sandbox-llm"},
                }
            ),
            "AIRFLOW_CONN_MOTO_S3": json.dumps(
                {
                    "conn_type": "aws",
                    "login": S3_KEY,
                    "password": S3_SECRET,
                    "extra": {"endpoint_url": self.s3_endpoint, "region_name": "us-east-1"},
                }
            ),
            "SEEDREAM_ASSETS": self.assets.as_uri(),
            "SEEDREAM_IN_FLIGHT": str(LOAD_IN_FLIGHT),
        }

    def prepare(self) -> None:
        self._ports = {"worker_log": free_port(), "trigger_log": free_port()}
        dags = self.work / "dags"
        dags.mkdir()
        (dags / "examples").symlink_to(REPOSITORY / "example_dags")
        (dags / "deploy").symlink_to(REPOSITORY / "tests" / "deploy" / "dags")
        (self.work / "passwords.json").write_text(json.dumps({"admin": PASSWORD}))
        self.home.mkdir()
        self.sandbox.start()
        self.s3.start()
        step(f"Seedream sandbox on {self.sandbox.url}")
        step("airflow db migrate")
        self.airflow("db", "migrate")

    def airflow(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "airflow", *args], env=self.env, capture_output=True, text=True
        )
        if result.returncode:
            raise Failure(
                f"airflow {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            )
        return result.stdout

    def start_airflow(self) -> None:
        logs = self.work / "process-logs"
        logs.mkdir()
        for component in ("scheduler", "dag-processor", "triggerer", "api-server"):
            handle = (logs / f"{component}.log").open("wb")
            self.processes[component] = subprocess.Popen(
                [sys.executable, "-m", "airflow", component],
                env=self.env,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # the whole process group is stopped at the end
            )
            step(f"airflow {component}: PID {self.processes[component].pid}")
        self.wait_for(self._api_ready, 120, "the api-server to answer")
        response = self.session.post(
            f"http://127.0.0.1:{self.api_port}/auth/token",
            json={"username": "admin", "password": PASSWORD},
            timeout=10,
        )
        response.raise_for_status()
        self.session.headers["Authorization"] = f"Bearer {response.json()['access_token']}"

    def _api_ready(self) -> bool:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise Failure(
                    f"airflow {name} exited with {process.returncode}: see {self.work}/process-logs"
                )
        try:
            return requests.get(f"http://127.0.0.1:{self.api_port}/api/v2/monitor/health", timeout=5).ok
        except requests.RequestException:
            return False

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for process in self.processes.values():
            try:
                process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.sandbox.stop()
        self.s3.stop()
        self.stop_postgres()

    @property
    def s3_endpoint(self) -> str:
        host, port = self.s3.get_host_and_port()
        return f"http://{host}:{port}"

    def s3_client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.s3_endpoint,
            region_name="us-east-1",
            aws_access_key_id=S3_KEY,
            aws_secret_access_key=S3_SECRET,
        )

    # REST ---------------------------------------------------------------------------------------

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}/api/v2"

    def rest(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.session.request(method, f"{self.api}{path}", timeout=30, **kwargs)
        if not response.ok:
            raise Failure(f"{method} {path} answered {response.status_code}: {response.text[:1000]}")
        return response.json() if response.content else None

    @staticmethod
    def wait_for(condition: Callable[[], Any], seconds: float, what: str) -> Any:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            result = condition()
            if result:
                return result
            time.sleep(1)
        raise Failure(f"timed out after {seconds:.0f} s waiting for {what}")

    def wait_for_dags(self, dag_ids: list[str]) -> None:
        def parsed() -> bool:
            known = {dag["dag_id"] for dag in self.rest("GET", "/dags", params={"limit": 100})["dags"]}
            return set(dag_ids) <= known

        self.wait_for(parsed, 120, f"the dag-processor to parse {dag_ids}")
        errors = self.rest("GET", "/importErrors")
        if errors["total_entries"]:
            raise Failure(f"import errors: {json.dumps(errors)[:3000]}")

    def trigger(
        self, dag_id: str, conf: dict[str, Any] | None = None, logical_date: str | None = None
    ) -> str:
        body: dict[str, Any] = {"logical_date": logical_date, "conf": conf or {}}
        run = self.rest("POST", f"/dags/{dag_id}/dagRuns", json=body)
        step(f"triggered {dag_id}: {run['dag_run_id']} (logical date {run['logical_date']})")
        return str(run["dag_run_id"])

    def unpause(self, dag_id: str) -> None:
        self.rest("PATCH", f"/dags/{dag_id}", json={"is_paused": False})

    def wait_for_run(self, dag_id: str, run_id: str, seconds: float) -> dict[str, Any]:
        def finished() -> dict[str, Any] | None:
            run = self.rest("GET", f"/dags/{dag_id}/dagRuns/{run_id}")
            return run if run["state"] in ("success", "failed") else None

        try:
            run = self.wait_for(finished, seconds, f"{dag_id} {run_id}")
        except Failure as failure:
            raise Failure(
                str(failure), self.task_logs(dag_id, run_id, ("running", "up_for_retry", "failed"))
            ) from None
        if run["state"] != "success":
            raise Failure(
                f"{dag_id} {run_id} ended {run['state']}", self.task_logs(dag_id, run_id, ("failed",))
            )
        return dict(run)

    def wait_for_review(self, dag_id: str, run_id: str, task_id: str = "review") -> dict[str, Any]:
        """The task's human-in-the-loop request, once it waits for an answer (Airflow 3.3 parks it in
        ``awaiting_input``; 3.1 and 3.2 defer it)."""

        def waiting() -> dict[str, Any] | None:
            states = {ti["task_id"]: ti["state"] for ti in self.task_instances(dag_id, run_id)}
            if "failed" in states.values() or "upstream_failed" in states.values():
                raise Failure(f"{dag_id} {run_id}: {states}", self.task_logs(dag_id, run_id, ("failed",)))
            if states.get(task_id) not in ("awaiting_input", "deferred"):
                return None
            path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/-1/hitlDetails"
            return dict(self.rest("GET", path))

        return dict(self.wait_for(waiting, 180, f"{dag_id} {run_id} to wait for a review"))

    def scheduler_saw_try_end(self, dag_id: str, run_id: str, task_id: str) -> bool:
        """Whether the scheduler has received the executor's event for a try of this task ending well."""
        key = f"TaskInstanceKey(dag_id='{dag_id}', task_id='{task_id}', run_id='{run_id}'"
        log = (self.work / "process-logs" / "scheduler.log").read_text(errors="replace")
        return any(
            "Received executor event with state success" in line and key in line for line in log.splitlines()
        )

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances"
        return list(self.rest("GET", path, params={"limit": 1000})["task_instances"])

    def task_logs(self, dag_id: str, run_id: str, states: tuple[str, ...] = ("success",)) -> list[Path]:
        logs = []
        for ti in self.task_instances(dag_id, run_id):
            if ti["state"] in states:
                folder = (
                    self.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={ti['task_id']}"
                )
                if ti["map_index"] >= 0:
                    folder = folder / f"map_index={ti['map_index']}"
                logs.extend(sorted(folder.glob("attempt=*.log")))
        return logs


# Checks ------------------------------------------------------------------------------------------


def check_examples(deployment: Deployment) -> None:
    examples = ["seedream_marketing_refresh", "seedream_product_edit", "seedream_storyboard"]
    runs = [(dag_id, deployment.trigger(dag_id)) for dag_id in examples]  # no logical date: as the UI does
    runs.append(
        (
            "seedream_product_edit",
            deployment.trigger("seedream_product_edit", logical_date="2026-03-01T00:00:00Z"),
        )
    )
    # The scheduled path: unpausing a scheduled DAG lets the scheduler create its run.
    deployment.unpause("seedream_marketing_refresh")
    for dag_id in examples[1:]:
        deployment.unpause(dag_id)
    scheduled = deployment.wait_for(
        lambda: next(
            (
                run["dag_run_id"]
                for run in deployment.rest("GET", "/dags/seedream_marketing_refresh/dagRuns")["dag_runs"]
                if run["run_type"] == "scheduled"
            ),
            None,
        ),
        60,
        "the scheduler to create a scheduled run",
    )
    step(f"the scheduler created {scheduled}")
    runs.append(("seedream_marketing_refresh", scheduled))
    for dag_id, run_id in runs:
        run = deployment.wait_for_run(dag_id, run_id, 240)
        check_stored(deployment, dag_id, run)
        step(f"{dag_id} {run_id}: success, files checked")


def check_stored(deployment: Deployment, dag_id: str, run: dict[str, Any]) -> None:
    """The images and manifests a run stored, under its date and run id."""
    when = (run["logical_date"] or run["run_after"])[:10]
    safe_run_id = re.sub(r"[^A-Za-z0-9._-]", "_", run["dag_run_id"])
    folder = {
        "seedream_marketing_refresh": "marketing",
        "seedream_product_edit": "product-edit",
        "seedream_storyboard": "storyboard",
    }[dag_id]
    run_folder = deployment.assets / folder / when / safe_run_id
    images = sorted(run_folder.glob("*.png"))
    manifests = sorted(run_folder.glob("*manifest.json"))
    if not images or not manifests:
        raise Failure(
            f"{dag_id}: no images or manifest in {run_folder}: {sorted(deployment.assets.rglob('*'))[:20]}"
        )
    for manifest in manifests:
        for entry in json.loads(manifest.read_text())["images"]:
            if not Path(entry["location"].removeprefix("file://")).is_file():
                raise Failure(f"{manifest} lists {entry['location']}, which is not there")
    if dag_id == "seedream_marketing_refresh":
        with (run_folder / "summary.csv").open() as handle:
            rows = list(csv.DictReader(handle))
        if [row["sku"] for row in rows] != ["BK-100", "KT-220", "LP-310", "MG-415"]:
            raise Failure(f"unexpected summary {rows}")
        if {row["prompt_by"] for row in rows} != {"llm"} or not rows[0]["prompt"].startswith("Product: City"):
            raise Failure(f"the LLM did not write the prompts: {rows}")


def check_review(deployment: Deployment) -> None:
    """The human-in-the-loop example: each run waits for a reviewer, who answers over REST as the UI's
    Required Actions page does. Only what was approved lands under published/; a rejection publishes
    nothing and skips ``publish``."""
    # (answer, the stored names that must be published): 2 briefs x 3 candidates, numbered #1..#6.
    cases = [
        (
            {"chosen_options": ["Approve"], "params_input": {"publish_only": ["2", "#4"]}},
            ["0-1.png", "1-0.png"],
        ),
        (
            {"chosen_options": ["Approve"]},
            [f"{brief}-{index}.png" for brief in range(2) for index in range(3)],
        ),
        ({"chosen_options": ["Reject"]}, []),
    ]
    deployment.unpause(REVIEW_DAG)
    runs = [deployment.trigger(REVIEW_DAG) for _ in cases]  # no logical date: as the UI does
    for run_id in runs:
        check_review_body(deployment.wait_for_review(REVIEW_DAG, run_id))
        # Airflow 3.3.2 fails a review answered before the scheduler has handled the end of the try
        # that parked it: the answer queues the resume under the same try number, the late "success"
        # of the parking try then removes it from the executor, and the scheduler takes the task for
        # killed externally. The parking try ends up to ~5 s after the task shows awaiting_input (the
        # supervisor notices its exit at its next heartbeat). A person reading the request takes
        # longer; the test waits for the scheduler's log line instead of guessing.
        deployment.wait_for(
            lambda run_id=run_id: deployment.scheduler_saw_try_end(REVIEW_DAG, run_id, "review"),
            60,
            f"the scheduler to see the try that parked {REVIEW_DAG} {run_id} review end",
        )
    for run_id, (answer, _) in zip(runs, cases, strict=True):
        path = f"/dags/{REVIEW_DAG}/dagRuns/{run_id}/taskInstances/review/-1/hitlDetails"
        refused = deployment.session.patch(
            f"{deployment.api}{path}", json={"chosen_options": ["Maybe"]}, timeout=30
        )
        if refused.status_code != 400:
            raise Failure(
                f"an option the review does not offer answered {refused.status_code}: {refused.text}"
            )
        response = deployment.rest("PATCH", path, json=answer)
        if (
            response["responded_by"]["name"] != "admin"
            or response["chosen_options"] != answer["chosen_options"]
        ):
            raise Failure(f"the review recorded {response}")
        again = deployment.session.patch(
            f"{deployment.api}{path}", json={"chosen_options": ["Reject"]}, timeout=30
        )
        if again.status_code != 409:
            raise Failure(f"a second answer to the review answered {again.status_code}: {again.text}")
        step(f"{REVIEW_DAG} {run_id}: answered {json.dumps(answer)}")
    for run_id, (answer, expected) in zip(runs, cases, strict=True):
        run = deployment.wait_for_run(REVIEW_DAG, run_id, 180)
        check_published(deployment, run, expected)
        states = {ti["task_id"]: ti["state"] for ti in deployment.task_instances(REVIEW_DAG, run_id)}
        if states["publish"] != ("success" if expected else "skipped"):
            raise Failure(f"{REVIEW_DAG} {run_id}: publish ended {states['publish']} after {answer}")
        text = "".join(path.read_text() for path in deployment.task_logs(REVIEW_DAG, run_id))
        if expected and f"Approved by admin: published {len(expected)} of 6 images" not in text:
            raise Failure(f"{REVIEW_DAG} {run_id}: the publish log does not say who approved what")
        step(f"{REVIEW_DAG} {run_id}: {answer['chosen_options'][0]}, published {expected or 'nothing'}")


def check_review_body(detail: dict[str, Any]) -> None:
    """The reviewer sees every candidate: its number, where it is stored, its pixel size (from the
    manifest), under the prompt that made it."""
    body = detail["body"] or ""
    wanted = [f"**#{number}**" for number in range(1, 7)]
    wanted += ["### Brief 1", "### Brief 2", "red bicycle", "travel mug", "160 x 90 px", "/campaign/"]
    if missing := [text for text in wanted if text not in body]:
        raise Failure(f"the review's body lacks {missing}:\n{body}")
    if detail["options"] != ["Approve", "Reject"] or "publish_only" not in detail["params"]:
        raise Failure(f"the review offers {detail['options']} with params {detail['params']}")


def check_published(deployment: Deployment, run: dict[str, Any], expected: list[str]) -> None:
    """published/ holds exactly the approved images of this run, byte for byte what was stored."""
    folder = Path((run["logical_date"] or run["run_after"])[:10]) / re.sub(
        r"[^A-Za-z0-9._-]", "_", run["dag_run_id"]
    )
    stored = deployment.assets / "campaign" / folder
    published = deployment.assets / "published" / "campaign" / folder
    if len(list(stored.glob("*.png"))) != 6 or len(list(stored.glob("*-manifest.json"))) != 2:
        raise Failure(f"{stored} holds {sorted(path.name for path in stored.iterdir())}")
    names = sorted(path.name for path in published.iterdir()) if published.exists() else []
    if names != sorted(expected):
        raise Failure(f"{published} holds {names}, not {sorted(expected)}")
    for name in names:
        if (published / name).read_bytes() != (stored / name).read_bytes():
            raise Failure(f"{published / name} differs from {stored / name}")


def check_s3(deployment: Deployment) -> None:
    """The marketing example with its destination in a bucket, through an ``aws`` connection whose
    extra points at the S3 API (as at MinIO): every image, manifest and the summary are objects there,
    and no upload is left incomplete."""
    client = deployment.s3_client()
    client.create_bucket(Bucket=S3_BUCKET)
    dag_id = "seedream_marketing_refresh"
    run_id = deployment.trigger(dag_id, conf={"destination": f"s3://moto_s3@{S3_BUCKET}/assets"})
    run = deployment.wait_for_run(dag_id, run_id, 240)
    folder = f"assets/marketing/{run['run_after'][:10]}/{re.sub(r'[^A-Za-z0-9._-]', '_', run_id)}"
    keys = sorted(item["Key"] for item in client.list_objects_v2(Bucket=S3_BUCKET).get("Contents", []))
    expected = [
        *(f"{folder}/{index}-0.png" for index in range(4)),
        *(f"{folder}/{index}-manifest.json" for index in range(4)),
        f"{folder}/summary.csv",
    ]
    if keys != sorted(expected):
        raise Failure(f"the bucket holds {keys}, not {sorted(expected)}")
    for index in range(4):
        head = client.get_object(Bucket=S3_BUCKET, Key=f"{folder}/{index}-0.png")["Body"].read(8)
        if head != b"\x89PNG\r\n\x1a\n":
            raise Failure(f"{folder}/{index}-0.png is not a PNG: {head!r}")
    if client.list_multipart_uploads(Bucket=S3_BUCKET).get("Uploads"):
        raise Failure("an incomplete multipart upload was left in the bucket")
    rows = list(
        csv.DictReader(
            io.StringIO(
                client.get_object(Bucket=S3_BUCKET, Key=f"{folder}/summary.csv")["Body"].read().decode()
            )
        )
    )
    if [row["file"] for row in rows] != [
        f"s3://moto_s3@{S3_BUCKET}/{folder}/{index}-0.png" for index in range(4)
    ]:
        raise Failure(f"the summary lists {[row['file'] for row in rows]}")
    step(f"{dag_id} {run_id}: 4 images, 4 manifests and the summary in s3://{S3_BUCKET}/{folder}")


def check_waits(deployment: Deployment) -> None:
    """A deferred wait through the real triggerer, and one in reschedule mode, for links that 404 first."""
    for dag_id in ("seedream_deploy_deferred", "seedream_deploy_reschedule"):
        deployment.unpause(dag_id)
        deployment.sandbox.links_of_next_generation(LinkFault(ready_after=8))
        run_id = deployment.trigger(dag_id, conf={"destination": deployment.assets.as_uri()})
        deployment.wait_for_run(dag_id, run_id, 120)
        text = "".join(path.read_text() for path in deployment.task_logs(dag_id, run_id))
        expected = "links not available yet" if "deferred" in dag_id else "is not available yet (HTTP 404)"
        if expected not in text:
            raise Failure(f"{dag_id}: the store task's log does not say it waited ({expected!r})")
        if "deferred" in dag_id:
            tis = {ti["task_id"]: ti for ti in deployment.task_instances(dag_id, run_id)}
            if tis["store"]["try_number"] != 1:
                raise Failure(f"the deferred store took {tis['store']['try_number']} tries")
        step(f"{dag_id}: waited for the links and stored the image")


def check_seedream_50_lite(deployment: Deployment) -> None:
    """One Seedream 5.0 lite generation at 3K through the scheduler, stored by the download operator."""
    dag_id = "seedream_deploy_lite"
    deployment.unpause(dag_id)
    destination = deployment.assets / "deploy-lite"
    before = len(deployment.sandbox.generation_requests())
    run_id = deployment.trigger(dag_id, conf={"destination": destination.as_uri()})
    deployment.wait_for_run(dag_id, run_id, 120)
    sent = [
        request.body
        for request in deployment.sandbox.generation_requests()[before:]
        if request.path == "/v3/seedream-5.0-lite"
    ]
    expected = {
        "prompt": "a 3K poster of a lighthouse, on seedream 5.0 lite",
        "size": "3K",
        "watermark": False,
    }
    if sent != [expected]:
        raise Failure(f"{dag_id}: the sandbox received {sent} at /v3/seedream-5.0-lite, not one {expected}")
    (manifest,) = (destination / "lite").rglob("*manifest.json")
    (entry,) = json.loads(manifest.read_text())["images"]
    stored = Path(entry["location"].removeprefix("file://"))
    with Image.open(stored) as image:
        size = image.size
    if size != (192, 192):  # 3K is 3072x3072; the deployment's sandbox draws at 1/16
        raise Failure(f"{dag_id}: the stored 3K image is {size}, not 192x192 (3072x3072 at 1/16)")
    step(f"{dag_id}: one POST to /v3/seedream-5.0-lite with the documented body, 3K stored at {size}")


def check_connections(deployment: Deployment) -> None:
    unreachable = f"http://127.0.0.1:{free_port()}"
    cases = [
        (
            "good key",
            deployment.sandbox.url,
            API_KEY,
            True,
            "API key was accepted for seedream-4.0, seedream-4.5, seedream-5.0-lite.",
        ),
        ("bad key", deployment.sandbox.url, "sk-wrong-key-123456", False, "INVALID_API_KEY"),
        ("unreachable host", unreachable, API_KEY, False, "connection refused"),
    ]
    for name, host, key, ok, text in cases:
        body = {"connection_id": "seedream_check", "conn_type": "seedream", "host": host, "password": key}
        result = deployment.rest("POST", "/connections/test", json=body)
        if result["status"] is not ok or text not in result["message"]:
            raise Failure(f"connection test ({name}) answered {result}")
        if API_KEY in result["message"]:
            raise Failure(f"connection test ({name}) shows the key")
        step(f"connection test, {name}: {result['message'][:100]}")
    providers = deployment.rest("GET", "/providers", params={"limit": 200})["providers"]
    ours = [provider for provider in providers if provider["package_name"] == "airflow-provider-seedream"]
    if not ours or "github.com" not in json.dumps(ours[0]):
        raise Failure(f"/providers does not list the provider with its documentation URL: {ours}")
    step(
        f"/providers lists {ours[0]['package_name']} {ours[0]['version']}: {ours[0].get('documentation_url')}"
    )


def check_load(deployment: Deployment) -> dict[str, Any]:
    """~100 mapped generations through the real scheduler against a rate-limited, slow sandbox."""
    sandbox = deployment.sandbox
    sandbox.rate_limit, sandbox.latency = LOAD_RATE_LIMIT, LOAD_LATENCY
    before = (sandbox.stats.images, sandbox.stats.rate_limited)
    sandbox.stats.first_image_at = None
    deployment.unpause("seedream_deploy_load")
    started = time.time()
    run_id = deployment.trigger("seedream_deploy_load", conf={"prompts": LOAD_PROMPTS})
    deployment.wait_for_run("seedream_deploy_load", run_id, 300)
    tis = deployment.task_instances("seedream_deploy_load", run_id)
    generated = [ti for ti in tis if ti["task_id"] == "generate"]
    images = sandbox.stats.images - before[0]
    span = (sandbox.stats.last_image_at or 0) - (sandbox.stats.first_image_at or 0)
    result = {
        "prompts": LOAD_PROMPTS,
        "images": images,
        "failed_tasks": sum(ti["state"] != "success" for ti in tis),
        "retried_tasks": sum(ti["try_number"] > 1 for ti in generated),
        "rate_limited": sandbox.stats.rate_limited - before[1],
        "seconds": round(time.time() - started, 1),
        "images_per_minute": round(images / span * 60, 1) if span > 0 else None,
        "limit": LOAD_RATE_LIMIT,
        "latency": LOAD_LATENCY,
        "in_flight": LOAD_IN_FLIGHT,
    }
    # The bucket starts full (ten seconds' worth): those images come at once. The limit governs the
    # rest, so the sustained rate is what came after the burst, over the time it all took.
    burst = LOAD_RATE_LIMIT / 6
    sustained = round((images - burst) / span * 60, 1) if span > 0 else None
    result["sustained_images_per_minute"] = sustained
    result["ratio"] = round(sustained / LOAD_RATE_LIMIT, 2) if sustained else None
    sandbox.rate_limit, sandbox.latency = None, 0.0
    step(f"load: {json.dumps(result)}")
    if result["failed_tasks"] or images != LOAD_PROMPTS:
        raise Failure(f"load case: {result}")
    return result


def check_logs_for_secrets(deployment: Deployment) -> None:
    signatures = [image.signature for image in deployment.sandbox._images.values()]
    files = [path for path in deployment.work.rglob("*.log") if path.is_file()]
    files += [path for path in (deployment.home / "logs").rglob("*") if path.is_file()]
    found = []
    for path in set(files):
        text = path.read_text(errors="replace")
        if API_KEY in text:
            found.append(f"{path}: the API key")
        if S3_SECRET in text:
            found.append(f"{path}: the S3 connection's secret")
        found += [f"{path}: a link signature" for signature in signatures if signature in text]
    if found:
        raise Failure("secrets in logs:\n" + "\n".join(sorted(set(found))[:20]))
    step(f"no API key, S3 secret or any of {len(signatures)} link signatures in {len(set(files))} log files")


def write_report(load: dict[str, Any]) -> None:
    ratio = load["ratio"]
    report = f"""{REPORT_START}
## Deployment load (`make test-deploy`)

Produced by the last `make test-deploy` run ({time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}):
Airflow 3.3.2 with LocalExecutor on PostgreSQL, scheduler, dag-processor, triggerer and api-server
as separate processes on this 2-core machine. `seedream_deploy_load` maps `SeedreamGenerateOperator`
over {load["prompts"]} prompts, at most {load["in_flight"]} in flight (`max_active_tis_per_dag`),
against the sandbox limiting images to {load["limit"]} per minute (a token bucket holding ten
seconds' worth; 429 with `Retry-After` past it) with {load["latency"]} s per generation.

| figure | value | target |
|---|---|---|
| images generated / prompts | {load["images"]} / {load["prompts"]} | all |
| images per minute, first to last image | {load["images_per_minute"]} | |
| sustained images per minute, burst excluded | {load["sustained_images_per_minute"]} | |
| sustained / limit | {ratio}x | >= 0.85x |
| failed tasks | {load["failed_tasks"]} | 0 |
| task retries spent | {load["retried_tasks"]} | |
| 429 answers | {load["rate_limited"]} | |
| wall time of the run | {load["seconds"]} s | |

The hook waits out 429s within `rate_limit_wait_seconds` (default 600) rather than a retry count:
a 429 says nothing was generated and when to come back, so pacing by `Retry-After` costs only time,
and no task fails or spends a retry on the limit. The number in flight should cover the limit at the
generation's latency: in flight = images per minute x seconds per generation / 60.
{REPORT_END}"""
    text = BENCHMARKS.read_text()
    if REPORT_START in text:
        text = text[: text.index(REPORT_START)] + report + text[text.index(REPORT_END) + len(REPORT_END) :]
    else:
        text = text.rstrip("\n") + "\n\n" + report + "\n"
    BENCHMARKS.write_text(text)
    step(f"wrote the load report to {BENCHMARKS.relative_to(REPOSITORY)}")


def main() -> int:
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="seedream-deploy-"))
    work.chmod(0o755)  # the postgres user reads its own folder inside
    deployment = Deployment(work)
    try:
        deployment.start_postgres()
        deployment.prepare()
        deployment.start_airflow()
        deployment.wait_for_dags(
            [
                "seedream_marketing_refresh",
                "seedream_product_edit",
                "seedream_storyboard",
                "seedream_deploy_load",
                "seedream_deploy_lite",
                REVIEW_DAG,
            ]
        )
        check_connections(deployment)
        check_waits(deployment)
        check_seedream_50_lite(deployment)
        check_examples(deployment)
        check_review(deployment)
        check_s3(deployment)
        load = check_load(deployment)
        check_logs_for_secrets(deployment)
        write_report(load)
        if load["ratio"] is None or load["ratio"] < 0.85:
            raise Failure(f"the load reached {load['ratio']}x of the rate limit; the target is 0.85x")
    except Failure as failure:
        print(f"\nDEPLOYMENT TEST FAILED: {failure}", file=sys.stderr)
        for path in failure.logs[:6]:
            print(f"\n----- {path.relative_to(work)} (last 80 lines)", file=sys.stderr)
            print("\n".join(path.read_text(errors="replace").splitlines()[-80:]), file=sys.stderr)
        for log in sorted((work / "process-logs").glob("*.log")) if (work / "process-logs").exists() else []:
            print(f"\n----- {log.name} (last 30 lines)", file=sys.stderr)
            print("\n".join(log.read_text(errors="replace").splitlines()[-30:]), file=sys.stderr)
        return 1
    finally:
        deployment.stop()
        step(f"stopped everything after {time.monotonic() - started:.0f} s")
        if os.environ.get("SEEDREAM_KEEP_DEPLOY") is None:
            shutil.rmtree(work, ignore_errors=True)
        else:
            step(f"kept {work}")
    step(f"make test-deploy passed in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
