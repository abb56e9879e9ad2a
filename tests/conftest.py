"""Test session setup: a private AIRFLOW_HOME with a migrated SQLite DB, and a sandbox API server.

The environment is set before anything imports Airflow, which reads its configuration at import.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import uuid
from pathlib import Path

_HOME = Path(tempfile.mkdtemp(prefix="seedream-airflow-home-"))
REPOSITORY = Path(__file__).parent.parent
# dag.test() runs only DAGs found in the dags folder, and parses all of it on every call: it holds the
# test DAGs and the example DAGs, linked in place so that their data files stay beside them.
DAGS_FOLDER = _HOME / "dags"
DAGS_FOLDER.mkdir()
(DAGS_FOLDER / "tests").symlink_to(Path(__file__).parent / "dags")
(DAGS_FOLDER / "examples").symlink_to(REPOSITORY / "example_dags")
os.environ.update(
    {
        "AIRFLOW_HOME": str(_HOME),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_HOME / 'airflow.db'}",
    }
)

import pytest  # noqa: E402

from airflow_provider_seedream.testing import SANDBOX_API_KEY, SeedreamSandbox  # noqa: E402
from airflow_provider_seedream.version_compat import AIRFLOW_VERSION  # noqa: E402

API_KEY = SANDBOX_API_KEY


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated metadata DB for dag.test(), and Airflow's log redaction as a deployment has it."""
    from airflow.utils import db

    db.resetdb()
    try:
        from airflow.sdk.log import configure_logging
    except ImportError:  # Airflow 2 configures logging, masking included, when it is imported
        pass
    else:
        configure_logging()
    return _HOME


@pytest.fixture
def run_dag(airflow_db, connection):
    """Run a DAG from tests/dags with dag.test() against the sandbox; returns the DagRun."""

    def run(dag_id: str, **test_kwargs):
        dag = dag_bag(DAGS_FOLDER).get_dag(dag_id)
        assert dag is not None, f"no DAG {dag_id} in {DAGS_FOLDER}"
        register_like_the_dag_processor(dag)
        return dag.test(**test_kwargs)

    return run


def register_like_the_dag_processor(dag) -> None:
    """Store the DAG and its assets as a DAG processor does before any run, which dag.test() itself
    does only from Airflow 3.1: before, a task's outlets are unknown to it (2.11 records no event of
    them, 3.0 fails the task). ``airflow dags reserialize`` does the same for a user."""
    if AIRFLOW_VERSION >= (3, 1):
        return
    from airflow.models.dag import DAG

    if AIRFLOW_VERSION < (3, 0):
        DAG.bulk_write_to_db([dag])
        return
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.serialization.serialized_objects import LazyDeserializedDAG, SerializedDAG

    DagBundlesManager().sync_bundles_to_db()
    DAG.bulk_write_to_db("dags-folder", None, [LazyDeserializedDAG(data=SerializedDAG.to_dict(dag))])


@pytest.fixture
def sandbox():
    """A sandbox with no connection pointing at it: tests set their own."""
    with SeedreamSandbox(api_key=API_KEY, image_scale=1 / 32) as server:
        yield server


@pytest.fixture
def connection(seedream_sandbox):
    """The plugin's sandbox, which DAG authors get too: ``seedream_default`` points at it."""
    return seedream_sandbox


class RunningTask:
    """What an operator uses of its running task instance when a test calls ``execute`` or ``poke``
    itself: its ids and try, and the XComs it pushes (kept in ``pushed``)."""

    def __init__(self, map_index: int = -1, task_id: str = "t") -> None:
        self.dag_id, self.run_id, self.task_id, self.map_index, self.try_number = (
            "d",
            "r",
            task_id,
            map_index,
            1,
        )
        self.pushed: dict[str, object] = {}

    def xcom_push(self, key: str, value: object) -> None:
        self.pushed[key] = value


def dag_bag(folder: Path):
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # before Airflow 3.1
        from airflow.models.dagbag import DagBag

    return DagBag(dag_folder=str(folder))  # examples stay out: AIRFLOW__CORE__LOAD_EXAMPLES is False


def json_connection(host: str, password: str = API_KEY, extra: dict | None = None) -> str:
    return json.dumps({"conn_type": "seedream", "host": host, "password": password, "extra": extra or {}})


@pytest.fixture(scope="session", autouse=True)
def memory_object_store():
    """Airflow registers no ``memory://`` filesystem by itself; attach fsspec's, as a user would."""
    from fsspec.implementations.memory import MemoryFileSystem

    try:
        from airflow.sdk.io import attach
    except ImportError:  # Airflow 2
        from airflow.io.store import attach
    return attach(protocol="memory", fs=MemoryFileSystem())


@pytest.fixture
def console(request):
    """What the run printed, as a person reading the console or the task log sees it: rendered by
    Airflow's logging, secrets masked. (caplog holds the raw records, before any masking.) Airflow's
    log handlers write to the stream pytest's global capture put in place when logging was set up."""
    manager = request.config.pluginmanager.getplugin("capturemanager")

    def read() -> str:
        out, err = manager.read_global_capture()
        return out + err

    return read


DAG_TEST_SHOWS_FAILURE_MESSAGES = not (3, 0) <= AIRFLOW_VERSION < (3, 1)
"""Airflow 3.0's dag.test() prints a failed task's traceback with the exception types but elides their
messages; every other supported version prints the message."""
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture
def failure_logged(logs, console):
    """Whether the run's output shows a task failing with ``message`` (an ``exception``): the message
    itself, or on Airflow 3.0 "Task failed with exception" and the exception's type. Pair it with the
    task instance's state."""

    def check(message: str, exception: type[BaseException]) -> bool:
        output = logs() + _ANSI.sub("", console())
        if DAG_TEST_SHOWS_FAILURE_MESSAGES:
            return message in output
        return "Task failed with exception" in output and exception.__name__ in output

    return check


@pytest.fixture
def logs(capfd, caplog):
    """Everything logged or printed so far in the test: Airflow 3 logs through structlog to stdout,
    Airflow 2 through stdlib logging."""
    output: list[str] = []

    def read() -> str:
        captured = capfd.readouterr()
        output.append(captured.out + captured.err)
        return "".join(output) + caplog.text

    return read


@pytest.fixture
def hostile_server(monkeypatch):
    """A scripted hostile server, with ``seedream_default`` pointing at it (fast backoff)."""
    from hostile import HostileServer

    with HostileServer() as server:
        monkeypatch.setenv(
            "AIRFLOW_CONN_SEEDREAM_DEFAULT",
            json_connection(server.url, extra={"backoff_seconds": 0.01, "max_backoff_seconds": 0.05}),
        )
        yield server


GALLERY_PASSWORDS = {"viewer": "viewer-pw", "outsider": "outsider-pw"}


@pytest.fixture(scope="module")
def gallery_client(airflow_db, tmp_path_factory):
    """The api-server Airflow builds (``create_app``), reached as a browser reaches it, with the auth
    manager of ``gallery_auth.py``: ``viewer`` reads every DAG, ``outsider`` all but one. The gallery
    reads nothing until a test sets ``[seedream] gallery_roots`` (``gallery_roots``)."""
    from fastapi.testclient import TestClient

    passwords = tmp_path_factory.mktemp("auth") / "passwords.json"
    passwords.write_text(json.dumps(GALLERY_PASSWORDS))
    settings = {
        "AIRFLOW__CORE__AUTH_MANAGER": "gallery_auth.PerDagAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "viewer:viewer,outsider:viewer",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
        "AIRFLOW__API_AUTH__JWT_SECRET": "gallery-test-secret-0123456789abcdef-0123456789abcdef-0123456789",
    }
    with pytest.MonkeyPatch.context() as patch:
        for name, value in settings.items():
            patch.setenv(name, value)
        from airflow.api_fastapi.app import create_app

        with TestClient(create_app()) as test_client:
            yield test_client


def login(client, user: str) -> dict[str, str]:
    """The headers of a logged-in ``user`` of ``gallery_client``."""
    response = client.post("/auth/token", json={"username": user, "password": GALLERY_PASSWORDS[user]})
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def gallery_roots(monkeypatch, *roots) -> None:
    """Configure the gallery's roots as an administrator does, for the api-server's next request."""
    monkeypatch.setenv("AIRFLOW__SEEDREAM__GALLERY_ROOTS", ",".join(str(root) for root in roots))


S3_CONN_ID = "moto_s3"
"""The Airflow connection of the moto S3 server the ``bucket`` fixture makes buckets in."""


@pytest.fixture(scope="session")
def s3_endpoint():
    from s3server import S3Server

    server = S3Server()
    server.start()
    yield server.endpoint
    server.stop()


@pytest.fixture
def bucket(s3_endpoint, monkeypatch):
    """A fresh bucket (a new name each test: s3fs caches listings per bucket), the ``moto_s3``
    connection, and nothing of the machine's own AWS setup."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    connection = {
        "conn_type": "aws",
        "login": "moto-key",
        "password": "moto-secret",
        "extra": {"endpoint_url": s3_endpoint, "region_name": "us-east-1"},
    }
    monkeypatch.setenv(f"AIRFLOW_CONN_{S3_CONN_ID.upper()}", json.dumps(connection))
    return Bucket(s3_endpoint, f"assets-{uuid.uuid4().hex[:10]}")


class Bucket:
    def __init__(self, endpoint: str, name: str) -> None:
        import boto3

        self.name = name
        self.client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="moto-key",
            aws_secret_access_key="moto-secret",
        )
        self.client.create_bucket(Bucket=name)

    def objects(self) -> dict[str, int]:
        listed = self.client.list_objects_v2(Bucket=self.name).get("Contents", [])
        return {item["Key"]: item["Size"] for item in listed}

    def read(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.name, Key=key)["Body"].read()

    def incomplete_uploads(self) -> list[str]:
        return [
            upload["Key"]
            for upload in self.client.list_multipart_uploads(Bucket=self.name).get("Uploads", [])
        ]

    def uri(self, key: str = "") -> str:
        """The URI a DAG writes, with the connection in it as Airflow's ObjectStoragePath reads it."""
        return f"s3://{S3_CONN_ID}@{self.name}/{key}"


@pytest.fixture
def fresh_filesystems():
    """Forget the S3 filesystems made so far: Airflow and fsspec cache them with the credentials they
    found, and these tests change what there is to find. Other stores (the session's ``memory://``)
    are kept."""
    try:
        from airflow.sdk.io import store
    except ImportError:  # Airflow 2
        from airflow.io import store
    import s3fs

    def forget() -> None:
        for key in [key for key, cached in store._STORE_CACHE.items() if cached.protocol in ("s3", "s3a")]:
            del store._STORE_CACHE[key]
        s3fs.S3FileSystem.clear_instance_cache()

    forget()
    yield
    forget()
