"""A real Airflow deployment for the deployment tiers, on 127.0.0.1 and free ports under one folder.

PostgreSQL (a throwaway cluster), a Seedream sandbox, moto's S3 server, and Airflow 3's scheduler,
dag-processor, triggerer and api-server as separate processes; on CeleryExecutor also Redis and
Celery workers, each on a "host" of its own (see ``Worker``). Driven through the REST API with a JWT
from the simple auth manager. Every process is stopped by PID at the end, even on failure.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

REPOSITORY = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPOSITORY), str(REPOSITORY / "tests")]  # the package, and s3server.py

from airflow_provider_seedream.testing import SeedreamSandbox  # noqa: E402

API_KEY = "sk-deploy-" + secrets.token_hex(12)
PASSWORD = secrets.token_urlsafe(12)
RUN_CEILING_USD = 20.0
"""``seedream_default``'s run ceiling: every example's run, and the load's ~100 images, fit below it."""
CAPPED_RUN_USD = 0.40
"""``seedream_capped``'s run ceiling: ten images of seedream-4.5 at its list price."""
OUTSIDER_PASSWORD = secrets.token_urlsafe(12)
HIDDEN_DAG = "seedream_marketing_refresh"
"""The DAG the user ``outsider`` may not read (``tests/gallery_auth.py``): its gallery must refuse them."""
S3_KEY, S3_SECRET = "moto-key", "moto-secret-" + secrets.token_hex(8)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def program(name: str, *search: str, install: str) -> str:
    """A server program: on the PATH, or in one of the folders ``search`` globs name."""
    found = shutil.which(name) or next(
        (str(path) for pattern in search for path in sorted(Path("/").glob(pattern.lstrip("/")))), None
    )
    if found is None:
        raise Failure(f"{name} not found: install it (Debian: {install})")
    return str(found)


def step(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


class Failure(Exception):
    """A check failed; ``logs`` are the task logs worth reading."""

    def __init__(self, message: str, logs: list[Path] | None = None) -> None:
        super().__init__(message)
        self.logs = logs or []


@dataclass
class Worker:
    """A Celery worker on a "host" of its own: its own hostname (a UTS namespace), and a mount
    namespace in which /tmp (so the examples' default assets folder and every temp file) is a private
    tmpfs and /etc/hosts names it. Its Airflow home and task logs are in a folder only it writes."""

    name: str
    root: Path
    log_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    log_offset: int = 0
    """Where this start of the worker begins in its process log (a restart appends)."""

    @property
    def home(self) -> Path:
        return self.root / "home"


class Deployment:
    def __init__(
        self,
        work: Path,
        executor: str = "LocalExecutor",
        workers: Iterable[str] = (),
        in_flight: int = 8,
        assets: str | None = None,
        gallery_roots: Iterable[str] = (),
        settings: dict[str, str] | None = None,
        spend_ledger: str | None = None,
    ) -> None:
        self.work = work
        self.executor = executor
        self.in_flight = in_flight
        """Generations in flight during the load case (max_active_tis_per_dag); the deploy DAGs read it."""
        self.home = work / "airflow-home"
        self.assets = work / "assets"
        self.examples_destination = assets or self.assets.as_uri()
        """The examples' default destination (``SEEDREAM_ASSETS``)."""
        self.gallery_roots = [str(self.assets), *gallery_roots]
        """What the api-server's gallery may read (``[seedream] gallery_roots``): the examples' stores."""
        self.settings = settings or {}
        """More environment for every component."""
        self.ceilings = {"max_spend_per_run_usd": RUN_CEILING_USD} | (
            {"spend_ledger": spend_ledger} if spend_ledger else {}
        )
        """The Seedream connections' ceilings and their ledger (unset: the local default)."""
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.workers = {name: Worker(name, work / name) for name in workers}
        self.pg_data = work / "pg" / "data"
        self.pg_port = free_port()
        self.api_port = free_port()
        self.redis_port = free_port()
        self.sandbox = SeedreamSandbox(API_KEY, image_scale=1 / 16)
        from s3server import S3Server

        self.s3 = S3Server()
        self.session = requests.Session()
        # One secret for every process: the api-server must accept the tokens the scheduler signs.
        self._secret_key, self._jwt_secret = secrets.token_hex(16), secrets.token_hex(16)
        self._ports = {"worker_log": free_port(), "trigger_log": free_port()}
        self.password = PASSWORD
        """The simple auth manager's ``admin``."""
        self.screenshots = REPOSITORY / "build" / "screenshots"
        """What the browser saw; ``run_tier`` puts it under the tier's output, which outlives the run."""

    # Services -----------------------------------------------------------------------------------

    def _as_postgres(self, *command: str) -> list[str]:
        # initdb and pg_ctl refuse to run as root.
        return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else list(command)

    def start_postgres(self) -> None:
        step(f"PostgreSQL on 127.0.0.1:{self.pg_port}")
        pg = self.work / "pg"
        pg.mkdir()
        if os.geteuid() == 0:
            shutil.chown(pg, "postgres", "postgres")
        install = "apt-get install postgresql"
        initdb = program("initdb", "/usr/lib/postgresql/*/bin/initdb", install=install)
        pg_ctl = program("pg_ctl", "/usr/lib/postgresql/*/bin/pg_ctl", install=install)
        subprocess.run(
            self._as_postgres(initdb, "-D", str(self.pg_data), "-A", "trust", "-U", "airflow", "--no-sync"),
            check=True,
            stdout=subprocess.DEVNULL,
        )
        options = (
            f"-p {self.pg_port} -k {pg} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300"
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

    def start_redis(self) -> None:
        """Celery's broker: Debian's redis-server, on 127.0.0.1 only, keeping nothing on disk."""
        redis = program("redis-server", install="apt-get install redis-server")
        step(f"Redis on 127.0.0.1:{self.redis_port}")
        folder = self.work / "redis"
        folder.mkdir()
        self._spawn(
            "redis",
            [
                redis,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.redis_port),
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            cwd=folder,
        )
        self.wait_for(self._redis_ready, 30, "Redis to answer")

    def _redis_ready(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.redis_port), timeout=2) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    @property
    def env(self) -> dict[str, str]:
        dags = self.work / "dags"
        base = f"http://127.0.0.1:{self.api_port}"
        connection = {"conn_type": "seedream", "host": self.sandbox.url, "password": API_KEY}
        connection["extra"] = self.ceilings
        capped = connection | {"extra": self.ceilings | {"max_spend_per_run_usd": CAPPED_RUN_USD}}
        env = {
            **{key: value for key, value in os.environ.items() if not key.startswith("AIRFLOW")},
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": self.executor,
            "AIRFLOW__CORE__PARALLELISM": "16",
            "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
            # SimpleAuthManager, but for one user refused one DAG: per-DAG access, as FAB grants it.
            "AIRFLOW__CORE__AUTH_MANAGER": "gallery_auth.PerDagAuthManager",
            "PYTHONPATH": os.pathsep.join(
                filter(None, [str(REPOSITORY / "tests"), os.environ.get("PYTHONPATH")])
            ),
            "SEEDREAM_HIDDEN_DAG": HIDDEN_DAG,
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,outsider:viewer",
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
            "AIRFLOW_CONN_SEEDREAM_CAPPED": json.dumps(capped),
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
            "SEEDREAM_IN_FLIGHT": str(self.in_flight),
            "SEEDREAM_ASSETS": self.examples_destination,
            "AIRFLOW__SEEDREAM__GALLERY_ROOTS": ",".join(self.gallery_roots),
            **self.settings,
        }
        if self.executor != "LocalExecutor":
            env |= {
                "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:{self.redis_port}/0",
                # SQLAlchemy 2.1 takes db+postgresql:// for psycopg 3; this deployment has psycopg2.
                "AIRFLOW__CELERY__RESULT_BACKEND": (
                    f"db+postgresql+psycopg2://airflow@127.0.0.1:{self.pg_port}/airflow"
                ),
                "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(self.in_flight),
                # A killed worker's task stops heartbeating: fail its try after 20 s, not 5 minutes.
                "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "20",
                "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
            }
        return env

    def prepare(self) -> None:
        dags = self.work / "dags"
        dags.mkdir()
        (dags / "examples").symlink_to(REPOSITORY / "example_dags")
        (dags / "deploy").symlink_to(REPOSITORY / "tests" / "deploy" / "dags")
        # A DAG author forging what the api-server reads (tests/deploy/trust.py), as the suite does.
        (dags / "forged.py").symlink_to(REPOSITORY / "tests" / "dags" / "seedream_forged_test.py")
        (self.work / "passwords.json").write_text(
            json.dumps({"admin": PASSWORD, "outsider": OUTSIDER_PASSWORD})
        )
        self.home.mkdir()
        self.sandbox.start()
        self.s3.start()
        step(f"Seedream sandbox on {self.sandbox.url}, S3 on {self.s3_endpoint}")
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

    def _spawn(
        self, name: str, command: list[str], env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> subprocess.Popen[bytes]:
        logs = self.work / "process-logs"
        logs.mkdir(exist_ok=True)
        with (logs / f"{name}.log").open("ab") as handle:
            process = subprocess.Popen(
                command,
                env=env,
                cwd=cwd,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # the whole process group is stopped at the end
            )
        self.processes[name] = process
        return process

    def start_airflow(self) -> None:
        for component in ("scheduler", "dag-processor", "triggerer", "api-server"):
            process = self._spawn(component, [sys.executable, "-m", "airflow", component], env=self.env)
            step(f"airflow {component}: PID {process.pid}")
        for worker in self.workers.values():
            self.start_worker(worker.name)
        self.wait_for(self._api_ready, 120, "the api-server to answer")
        self.session.headers["Authorization"] = self.authorization("admin", PASSWORD)

    def authorization(self, username: str, password: str) -> str:
        """An ``Authorization`` header for this user, from the simple auth manager's token endpoint."""
        response = requests.post(
            f"{self.api_root}/auth/token", json={"username": username, "password": password}, timeout=10
        )
        response.raise_for_status()
        return f"Bearer {response.json()['access_token']}"

    def start_worker(self, name: str) -> None:
        worker = self.workers[name]
        worker.home.mkdir(parents=True, exist_ok=True)
        hosts = worker.root / "hosts"
        hosts.write_text(f"127.0.0.1 localhost\n127.0.1.1 {name}\n")
        script = (
            f"set -e; hostname {name}; mount -t tmpfs -o size=2g,mode=1777 {name}-tmp /tmp; "
            f"mount --bind {hosts} /etc/hosts; exec {sys.executable} -m airflow celery worker "
            f"--celery-hostname {name}@{name} --without-mingle --without-gossip"
        )
        env = self.env | {
            "AIRFLOW_HOME": str(worker.home),
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(worker.log_port),
            "TMPDIR": "/tmp",
        }
        command = ["unshare", "--mount", "--uts", "--", "sh", "-c", script]
        log = self.work / "process-logs" / f"worker-{name}.log"
        worker.log_offset = log.stat().st_size if log.exists() else 0
        worker.process = self._spawn(f"worker-{name}", command, env=env, cwd=worker.root)
        step(f"celery worker {name}: PID {worker.process.pid}, private /tmp, logs in {worker.home}")
        self.wait_for(lambda: self._worker_ready(worker), 90, f"celery worker {name} to start")

    def _worker_ready(self, worker: Worker) -> bool:
        assert worker.process is not None
        if worker.process.poll() is not None:
            raise Failure(f"celery worker {worker.name} exited with {worker.process.returncode}")
        with (self.work / "process-logs" / f"worker-{worker.name}.log").open("rb") as log:
            log.seek(worker.log_offset)
            return b" ready." in log.read()

    def kill_worker(self, name: str) -> list[int]:
        """SIGKILL every process of a worker, as a lost host or an OOM kill would: the worker, its pool,
        its task supervisors and their tasks, each by PID. Returns the PIDs."""
        import psutil

        worker = self.workers[name]
        assert worker.process is not None
        root = psutil.Process(worker.process.pid)
        victims = [root, *root.children(recursive=True)]
        for process in victims:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.send_signal(signal.SIGKILL)
        psutil.wait_procs(victims, timeout=10)
        worker.process.wait()
        return [process.pid for process in victims]

    def _api_ready(self) -> bool:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise Failure(
                    f"{name} exited with {process.returncode}: see {self.work}/process-logs/{name}.log"
                )
        try:
            return requests.get(f"http://127.0.0.1:{self.api_port}/api/v2/monitor/health", timeout=5).ok
        except requests.RequestException:
            return False

    def stop(self) -> None:
        import psutil

        stragglers: list[psutil.Process] = []
        for process in self.processes.values():
            if process.poll() is None:
                with contextlib.suppress(psutil.NoSuchProcess):  # children that left the group go too
                    stragglers += psutil.Process(process.pid).children(recursive=True)
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for process in self.processes.values():
            try:
                process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        for straggler in stragglers:
            with contextlib.suppress(psutil.NoSuchProcess):
                straggler.kill()
        self.sandbox.stop()
        self.s3.stop()
        self.stop_postgres()

    @property
    def s3_endpoint(self) -> str:
        return self.s3.endpoint

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
    def api_root(self) -> str:
        """Where a person opens the UI."""
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def api(self) -> str:
        return f"{self.api_root}/api/v2"

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

    def wait_for_run(
        self, dag_id: str, run_id: str, seconds: float, expect: str = "success"
    ) -> dict[str, Any]:
        def finished() -> dict[str, Any] | None:
            run = self.rest("GET", f"/dags/{dag_id}/dagRuns/{run_id}")
            return run if run["state"] in ("success", "failed") else None

        try:
            run = self.wait_for(finished, seconds, f"{dag_id} {run_id}")
        except Failure as failure:
            raise Failure(
                str(failure), self.task_logs(dag_id, run_id, ("running", "up_for_retry", "failed"))
            ) from None
        if run["state"] != expect:
            raise Failure(
                f"{dag_id} {run_id} ended {run['state']}, not {expect}",
                self.task_logs(dag_id, run_id, ("failed",)),
            )
        return dict(run)

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """Every task instance of the run, page by page (the API serves at most 100 at a time)."""
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances"
        found: list[dict[str, Any]] = []
        while True:
            page = self.rest("GET", path, params={"limit": 100, "offset": len(found)})
            found += page["task_instances"]
            if not page["task_instances"] or len(found) >= page["total_entries"]:
                return found

    def tries(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> list[dict[str, Any]]:
        """Every try of a task instance, with the host it ran on."""
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/{map_index}/tries"
        return sorted(self.rest("GET", path)["task_instances"], key=lambda ti: ti["try_number"])

    def task_logs(self, dag_id: str, run_id: str, states: tuple[str, ...] = ("success",)) -> list[Path]:
        """The log files of the task instances in ``states``, wherever they ran: the one Airflow home
        on LocalExecutor, each worker's own on Celery."""
        homes = [self.home, *(worker.home for worker in self.workers.values())]
        logs = []
        for ti in self.task_instances(dag_id, run_id):
            if ti["state"] in states:
                folder = Path("logs") / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={ti['task_id']}"
                if ti["map_index"] >= 0:
                    folder = folder / f"map_index={ti['map_index']}"
                for home in homes:
                    logs.extend(sorted((home / folder).glob("attempt=*.log")))
        return logs

    def log_text(self, dag_id: str, run_id: str, states: tuple[str, ...] = ("success",)) -> str:
        return "".join(path.read_text(errors="replace") for path in self.task_logs(dag_id, run_id, states))


def run_tier(
    name: str, deployment_for: Callable[[Path], Deployment], checks: Callable[[Deployment], None]
) -> int:
    """Start a deployment, run ``checks`` on it, stop everything; a failure prints the logs to read."""
    started = time.monotonic()
    work = Path(
        tempfile.mkdtemp(prefix="seedream-deploy-", dir="/var/tmp" if Path("/var/tmp").is_dir() else None)
    )
    work.chmod(0o755)  # the postgres user reads its own folder inside
    deployment = deployment_for(work)
    deployment.screenshots = REPOSITORY / "build" / name.removeprefix("make ") / "screenshots"
    shutil.rmtree(deployment.screenshots, ignore_errors=True)
    try:
        deployment.start_postgres()
        if deployment.workers:
            deployment.start_redis()
        deployment.prepare()
        deployment.start_airflow()
        checks(deployment)
    except Failure as failure:
        print(f"\n{name} FAILED: {failure}", file=sys.stderr)
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
    step(f"{name} passed in {time.monotonic() - started:.0f} s")
    return 0
