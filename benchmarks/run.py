"""What the provider costs its users, each figure against a baseline measured in the same run.

    make bench                      # or: .venv/bin/python benchmarks/run.py [--quick] [--json FILE]

1. DAG-parse cost: the import time of ``airflow_provider_seedream.decorators.seedream`` (what
   ``@task.seedream`` loads: the operators and Airflow's decorator machinery) after
   ``import airflow.sdk``, in fresh interpreters with a warm bytecode cache, side by side with
   ``airflow.providers.http.operators.http`` measured the same way.
2. Download: a 64 MiB PNG from a local server through ``SeedreamHook.download`` against ``curl -o``
   followed by an fsync of its file (the hook syncs each image before renaming it into place);
   peak RSS growth for a 64 MiB and an 8 MiB image.
3. Per-request overhead: 200 ``SeedreamHook.generate`` calls against 200 raw ``requests`` posts of the
   same bodies on one session, to a local server answering at once.
4. Reference inlining: ``inline_image`` of a 10 MB PNG against ``base64.b64encode(data).decode()``
   (the cheapest way to the ``str`` a JSON body needs), with raw ``b64encode`` for context: time and memory.
5. Storing in S3: 15 images, 4096 pixels wide and 24 MiB each (a 4K photo as PNG), stored by
   ``SeedreamDownloadOperator`` in a bucket of moto's S3 server against boto3's ``upload_file`` of the
   same bytes from disk; peak RSS growth for 15 images of 8 MiB and of 48 MiB.

6. The cache: a catalog refreshed with and without a local cache (paid generations, a hit's time).
7. Spend ceilings: ``SeedreamHook.generate`` under a daily ceiling, its ledger a local file and an
   object in moto's S3 server, against the same calls without a ceiling.

Every case runs in a fresh interpreter (``cases.py``); the HTTP server runs in another process
(``server.py``). Nothing leaves 127.0.0.1. See docs/benchmarks.md for the method and the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from cases import INLINE_FUNCTIONS, RESULT_MARK, S3_KEY, s3_client  # noqa: E402
from images import png_of_about  # noqa: E402

MiB = 1024 * 1024
API_KEY = "bench-key"
OUR_MODULE = "airflow_provider_seedream.decorators.seedream"
"""Imports the operators module too: the most a DAG file using the provider pays."""
HTTP_MODULE = "airflow.providers.http.operators.http"
HEAVY_OPTIONAL = frozenset(
    {"PIL", "boto3", "botocore", "numpy", "pandas", "pyarrow", "sqlalchemy", "s3fs", "gcsfs", "adlfs"}
)
"""Libraries a DAG file must not pay for when it only imports the operators (sqlalchemy: a DB)."""
VERSIONS_SCRIPT = """
import sys
from importlib.metadata import version
print(", ".join(f"{name} {version(name)}" for name in sys.argv[1:]))
"""
FORMATS = {"x": "{:.2f}x", "ms": "{:.1f} ms", "MiB": "{:.1f} MiB", "us": "{:.0f} us", "MiB/s": "{:.0f} MiB/s"}


@dataclass
class Figure:
    item: str
    name: str
    values: list[float]
    unit: str
    target: str
    passed: bool | None
    """None: shown for context, with no target of its own."""

    def spread(self) -> str:
        """min / median / max."""
        fmt = FORMATS.get(self.unit, "{:g}")
        values = self.values
        return " / ".join(fmt.format(v) for v in (min(values), statistics.median(values), max(values)))


def median(values: list[float]) -> float:
    return statistics.median(values)


def ratios(numerators: list[float], denominators: list[float]) -> list[float]:
    return [a / b for a, b in zip(numerators, denominators, strict=True)]


class Bench:
    def __init__(self, quick: bool) -> None:
        self.quick = quick
        self.tmp = Path(tempfile.mkdtemp(prefix="seedream-bench-"))
        self.files = self.tmp / "files"
        self.files.mkdir()
        self.work = self.tmp / "work"
        self.work.mkdir()
        self.figures: list[Figure] = []
        self.details: dict[str, object] = {}
        self.server: subprocess.Popen[str] | None = None
        self.base_url = ""
        self.env = dict(os.environ)
        # Import timing depends on compiled bytecode. The environment may forbid writing it
        # (PYTHONDONTWRITEBYTECODE), which would make every import compile from source: give the
        # children a private bytecode cache instead, warmed before anything is timed, so both
        # providers are measured with a warm cache and nothing is written into the source trees.
        self.env.pop("PYTHONDONTWRITEBYTECODE", None)
        self.env["PYTHONPYCACHEPREFIX"] = str(self.tmp / "pycache")
        self.env["AIRFLOW_HOME"] = str(self.tmp / "airflow-home")
        self.env["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
        self.env["PYTHONUNBUFFERED"] = "1"

    # Infrastructure ---------------------------------------------------------------------------------

    def child(self, case: str, **arguments: object) -> dict:
        process = subprocess.run(
            [sys.executable, str(HERE / "cases.py"), case, json.dumps(arguments)],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        results = [line for line in process.stdout.splitlines() if line.startswith(RESULT_MARK)]
        if process.returncode != 0 or not results:
            output = f"{process.stdout[-3000:]}\n{process.stderr[-3000:]}"
            raise RuntimeError(f"case {case} failed (exit {process.returncode}):\n{output}")
        return json.loads(results[-1][len(RESULT_MARK) :])

    def start_server(self) -> None:
        for name, size, width in (
            ("big.png", 64 * MiB, 4096),
            ("medium.png", 8 * MiB, 4096),
            ("small.png", 64 * 1024, 64),
            ("generated.png", 16 * 1024, 32),
        ):
            (self.files / name).write_bytes(png_of_about(size, width=width))
        self.server = subprocess.Popen(
            [sys.executable, str(HERE / "server.py"), str(self.files), API_KEY],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=self.env,
        )
        assert self.server.stdout is not None
        line = self.server.stdout.readline()
        if not line.startswith("PORT "):
            raise RuntimeError(f"the benchmark server did not start: {line!r}")
        self.base_url = f"http://127.0.0.1:{int(line.split()[1])}"
        self.env["AIRFLOW_CONN_SEEDREAM_DEFAULT"] = json.dumps(
            {"conn_type": "seedream", "host": self.base_url, "password": API_KEY}
        )

    def close(self) -> None:
        if self.server is not None:
            assert self.server.stdin is not None
            self.server.stdin.close()
            try:
                self.server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.server.kill()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def link(self, name: str) -> str:
        """A presigned-looking link to a file the server holds."""
        query = "X-Tos-Algorithm=TOS4-HMAC-SHA256&X-Tos-Signature=0123456789abcdef"
        return f"{self.base_url}/files/{name}?{query}"

    def add(
        self,
        item: str,
        name: str,
        values: list[float],
        unit: str,
        target: str = "",
        passed: bool | None = None,
    ) -> None:
        figure = Figure(item, name, values, unit, target, passed)
        self.figures.append(figure)
        verdict = {True: "PASS", False: "MISS", None: ""}[passed]
        print(f"  {name:<60} {figure.spread():<34} {target:<22} {verdict}", flush=True)

    # 1. DAG-parse cost ------------------------------------------------------------------------------

    def bench_import(self) -> None:
        processes = 7 if self.quick else 21
        print(f"\n1. DAG-parse cost: import after `import airflow.sdk`, {processes} fresh processes each")
        for module in (OUR_MODULE, HTTP_MODULE):  # fill the private bytecode cache before timing
            for _ in range(2):
                self.child("import", module=module)
        ours: list[float] = []
        http: list[float] = []
        sdk: list[float] = []
        for _ in range(processes):  # interleaved, so that drift hits both alike
            for module, into in ((OUR_MODULE, ours), (HTTP_MODULE, http)):
                result = self.child("import", module=module)
                into.append(result["extra_seconds"] * 1000)
                sdk.append(result["sdk_seconds"] * 1000)
        self.add("1", "`import airflow.sdk` itself (every process, context)", sdk, "ms")
        self.add("1", f"{HTTP_MODULE}: extra import", http, "ms", "baseline")
        self.add("1", f"{OUR_MODULE}: extra import", ours, "ms", "< 30 ms", median(ours) < 30)
        paired = ratios(ours, http)
        self.add(
            "1", "ratio seedream / http (paired processes)", paired, "x", "<= 1.00x", median(paired) <= 1.0
        )

        audits = {
            module: self.child("import", module=module, audit=True) for module in (OUR_MODULE, HTTP_MODULE)
        }
        for module, audit in audits.items():
            packages = sorted({name.split(".")[0] for name in audit["added_modules"]})
            print(f"  {module} adds {len(audit['added_modules'])} modules from: {', '.join(packages)}")
            print(f"    heavy libraries newly imported: {', '.join(audit['heavy_added']) or 'none'}")
            print(f"    network/DB/process audit events: {'; '.join(audit['events']) or 'none'}")
        print(
            f"  already imported by `import airflow.sdk`: {', '.join(audits[OUR_MODULE]['heavy_after_sdk'])}"
        )
        ours_audit = audits[OUR_MODULE]
        # A bind to ::1 is urllib3's import-time IPv6 probe: no traffic, but still listed above.
        activity = [event for event in ours_audit["events"] if not event.startswith("socket.bind")]
        heavy = sorted(HEAVY_OPTIONAL & set(ours_audit["heavy_added"]))
        self.add(
            "1",
            "seedream import: network/DB events, heavy optional libraries",
            [len(activity) + len(heavy)],
            "",
            "none",
            not activity and not heavy,
        )
        self.details["import_audits"] = audits

    # 2. Download ------------------------------------------------------------------------------------

    def bench_download(self) -> None:
        curl = shutil.which("curl")
        repeats = 3 if self.quick else 7
        print(
            f"\n2. Download: 64 MiB PNG through SeedreamHook.download vs curl -o + fsync, {repeats} repeats"
        )
        if curl is None:
            print("  curl is not installed: the throughput baseline is skipped")
        else:
            result = self.child(
                "download-throughput",
                url=self.link("big.png"),
                workdir=str(self.work),
                repeats=repeats,
                curl=curl,
            )
            size = result["bytes"] / MiB
            curl_seconds, hook_seconds = result["curl_seconds"], result["hook_seconds"]
            self.add("2", "curl -o + fsync throughput", [size / t for t in curl_seconds], "MiB/s", "baseline")
            self.add("2", "SeedreamHook.download throughput", [size / t for t in hook_seconds], "MiB/s")
            throughput = ratios(curl_seconds, hook_seconds)  # hook throughput / curl throughput
            self.add(
                "2", "throughput ratio hook / curl", throughput, "x", ">= 0.80x", median(throughput) >= 0.8
            )
        runs = 1 if self.quick else 3
        for label, warm in (("first download in a task process", False), ("after a small download", True)):
            for name, size in (("big.png", 64), ("medium.png", 8)):
                growth = []
                for index in range(runs):
                    result = self.child(
                        "download-memory",
                        url=self.link(name),
                        target=str(self.work / f"memory-{index}.png"),
                        warm_url=self.link("small.png") if warm else None,
                    )
                    assert result["peak_reset"], "could not reset the peak RSS (/proc/self/clear_refs)"
                    growth.append(result["growth"] / MiB)
                    for path in self.work.glob("memory-*"):
                        path.unlink()
                self.add(
                    "2",
                    f"peak RSS growth, {size} MiB image, {label}",
                    growth,
                    "MiB",
                    "<= 16 MiB",
                    max(growth) <= 16,
                )

    # 3. Per-request overhead ------------------------------------------------------------------------

    def bench_generate(self) -> None:
        count, repeats = (200, 3) if self.quick else (200, 7)
        print(f"\n3. Per-request overhead: {count} generations, hook vs raw requests, {repeats} repeats")
        result = self.child("generate", base_url=self.base_url, api_key=API_KEY, count=count, repeats=repeats)
        hook, raw = result["hook_seconds"], result["raw_seconds"]
        self.add(
            "3", f"raw requests: {count} posts on one session", [t * 1000 for t in raw], "ms", "baseline"
        )
        self.add("3", f"SeedreamHook.generate: {count} calls", [t * 1000 for t in hook], "ms")
        overhead = [(h - r) / count * 1e6 for h, r in zip(hook, raw, strict=True)]
        self.add("3", "overhead per call", overhead, "us")
        self.add(
            "3", "ratio hook / raw", ratios(hook, raw), "x", "<= 1.30x", median(ratios(hook, raw)) <= 1.3
        )

    # 5. Storing in S3 ------------------------------------------------------------------------------

    def bench_s3(self) -> None:
        repeats = 3 if self.quick else 7
        count = 15
        print(
            f"\n5. Storing in S3: {count} images of 24 MiB, operator vs boto3 upload_file, {repeats} repeats"
        )
        bucket = "bench"
        with moto_server(self.env) as endpoint:
            self.env["AIRFLOW_CONN_BENCH_S3"] = s3_connection(endpoint)
            names = [f"photo-{index}.png" for index in range(count)]
            for index, name in enumerate(names):
                (self.files / name).write_bytes(png_of_about(24 * MiB, noise=True, seed=index))
            result = self.child(
                "s3-upload",
                endpoint=endpoint,
                bucket=bucket,
                urls=[self.link(name) for name in names],
                files=[str(self.files / name) for name in names],
                repeats=repeats,
            )
            total = count * 24
            boto3_seconds, operator_seconds = result["boto3_seconds"], result["operator_seconds"]
            self.add(
                "5", "boto3 upload_file throughput", [total / t for t in boto3_seconds], "MiB/s", "baseline"
            )
            self.add(
                "5",
                "SeedreamDownloadOperator to S3 throughput",
                [total / t for t in operator_seconds],
                "MiB/s",
            )
            throughput = ratios(boto3_seconds, operator_seconds)
            self.add(
                "5",
                "throughput ratio operator / boto3",
                throughput,
                "x",
                ">= 0.80x",
                median(throughput) >= 0.8,
            )
            growth: dict[int, list[float]] = {}
            for size in (8, 48):
                for index in range(count):
                    (self.files / f"memory-{index}.png").write_bytes(png_of_about(size * MiB, seed=index))
                growth[size] = []
                for _ in range(1 if self.quick else 3):
                    measured = self.child(
                        "s3-memory",
                        urls=[self.link(f"memory-{index}.png") for index in range(count)],
                        warm_url=self.link("small.png"),
                        bucket=bucket,
                    )
                    assert measured["peak_reset"], "could not reset the peak RSS (/proc/self/clear_refs)"
                    growth[size].append(measured["growth"] / MiB)
                self.add("5", f"peak RSS growth, {count} images of {size} MiB", growth[size], "MiB")
            by_size = [big - small for big, small in zip(growth[48], growth[8], strict=True)]
            self.add(
                "5",
                "growth with 48 MiB images minus with 8 MiB images",
                by_size,
                "MiB",
                "<= 8 MiB",
                median(by_size) <= 8,
            )

    # 4. Reference inlining --------------------------------------------------------------------------

    def bench_inline(self) -> None:
        processes = 5 if self.quick else 15
        path = self.work / "reference.png"
        # Noise, not a flat colour: a photo's bytes. Just under the 10 MiB reference limit of Seedream 4.0.
        path.write_bytes(png_of_about(10 * MiB, width=1800, noise=True))
        size = path.stat().st_size
        print(
            f"\n4. Reference inlining: {size / 1e6:.1f} MB PNG, first call in a fresh process, "
            f"{processes} processes per function"
        )
        seconds: dict[str, list[float]] = {name: [] for name in INLINE_FUNCTIONS}
        growth: dict[str, list[float]] = {name: [] for name in INLINE_FUNCTIONS}
        for index in range(processes):
            for name in INLINE_FUNCTIONS if index % 2 == 0 else INLINE_FUNCTIONS[::-1]:
                result = self.child("inline-once", path=str(path), function=name)
                seconds[name].append(result["seconds"])
                growth[name].append(result["rss_growth"] / size)
        plain, inline = seconds["b64encode"], seconds["inline_image"]
        # The API takes the data URI inside a JSON document, so it must be a str; b64encode gives bytes.
        # The target is therefore against the cheapest way to get that str: b64encode(data).decode().
        as_str = seconds["b64encode+decode"]
        self.add("4", "base64.b64encode(data).decode()", [t * 1000 for t in as_str], "ms", "baseline")
        self.add("4", "inline_image", [t * 1000 for t in inline], "ms")
        same_type = ratios(inline, as_str)
        self.add(
            "4",
            "time ratio inline_image / b64encode(data).decode()",
            same_type,
            "x",
            "<= 1.50x",
            median(same_type) <= 1.5,
        )
        self.add("4", "base64.b64encode (bytes), for context", [t * 1000 for t in plain], "ms")
        self.add("4", "time ratio inline_image / b64encode", ratios(inline, plain), "x", "context")
        self.add(
            "4", "time ratio b64encode(data).decode() / b64encode", ratios(as_str, plain), "x", "context"
        )
        peaks = self.child("inline-memory", path=str(path))["peak_bytes"]
        self.add("4", "allocated peak, b64encode / file size", [peaks["b64encode"] / size], "x", "context")
        peak = peaks["inline_image"] / size
        self.add("4", "allocated peak, inline_image / file size", [peak], "x", "<= 3.00x", peak <= 3)
        self.add("4", "peak RSS growth, b64encode / file size", growth["b64encode"], "x", "context")
        self.add("4", "peak RSS growth, inline_image / file size", growth["inline_image"], "x", "context")

    # Report -----------------------------------------------------------------------------------------

    # 6. Catalog refreshes through the cache ----------------------------------------------------------

    def bench_cache(self) -> None:
        products, refreshes, changed = 100, 7, 5
        expected = products + (refreshes - 1) * changed
        print(
            f"\n6. A {products}-product catalog refreshed {refreshes} times, {changed} rows changed each "
            "time, through the operator: with a local cache vs without"
        )
        work = self.work / "cache-refresh"
        work.mkdir()
        result = self.child(
            "cache-refresh", workdir=str(work), products=products, refreshes=refreshes, changed=changed
        )
        cached, uncached = result["cache"], result["no cache"]
        self.add("6", "paid generations without cache", [uncached["paid"]], "", "baseline")
        self.add(
            "6",
            "paid generations with cache",
            [cached["paid"]],
            "",
            f"== {expected} (the changed rows)",
            cached["paid"] == expected and uncached["paid"] == products * refreshes,
        )
        hits, misses = cached["hit_seconds"], cached["miss_seconds"]
        self.add(
            "6",
            f"a generation with cache (miss): execute, {len(misses)} tasks",
            [t * 1000 for t in misses],
            "ms",
        )
        self.add(
            "6",
            f"a hit: execute, {len(hits)} tasks ({result['image_bytes'] // 1024} KiB image read back)",
            [t * 1000 for t in hits],
            "ms",
            "< 50 ms",
            median(hits) * 1000 < 50,
        )
        self.add("6", "a hit / a miss", [median(hits) / median(misses)], "x")

    # 7. Spend ceilings ----------------------------------------------------------------------------

    def bench_ceiling(self) -> None:
        count, repeats = (100, 3) if self.quick else (100, 7)
        print(
            f"\n7. Spend ceilings: {count} generations with no ceiling, and under a daily ceiling with "
            f"its ledger in a local file and in S3 (moto), {repeats} repeats"
        )
        with moto_server(self.env) as endpoint:
            self.env["AIRFLOW_CONN_BENCH_S3"] = s3_connection(endpoint)
            ledgers = {
                "local": str(self.work / "spend-ledger.json"),
                "s3": "s3://bench_s3@bench/seedream/spend-ledger.json",
            }
            result = self.child(
                "ceiling",
                base_url=self.base_url,
                api_key=API_KEY,
                count=count,
                repeats=repeats,
                ledgers=ledgers,
            )
        seconds = result["seconds"]
        none = seconds["none"]
        self.add(
            "7",
            f"SeedreamHook.generate, no ceiling: {count} calls",
            [t * 1000 for t in none],
            "ms",
            "baseline",
        )
        # us per generation. Each ceilinged generation changes its ledger twice (reserve, settle):
        # locally two durable replaces (write, fsync, rename, fsync the folder: neither a killed worker
        # nor a power cut leaves half a ledger or an old one), in S3 two reads and two conditional
        # writes. Next to a generation at the API, which takes seconds, either is well under 1%.
        targets = {"local": 10_000, "s3": 60_000}
        for name, target in targets.items():
            extra = [(t - n) / count * 1e6 for t, n in zip(seconds[name], none, strict=True)]
            self.add(
                "7",
                f"a ceiling's cost per generation, {name} ledger",
                extra,
                "us",
                f"<= {target} us",
                median(extra) <= target,
            )
            self.add("7", f"with / without a ceiling, {name} ledger", ratios(seconds[name], none), "x")

    def machine(self) -> dict[str, str]:
        def output(command: list[str]) -> str:
            try:
                process = subprocess.run(command, capture_output=True, text=True, env=self.env, cwd=self.tmp)
            except OSError:
                return "?"
            return process.stdout.strip()

        cpu = "?"
        try:
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
            kib = int(Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0])
            memory = f"{kib / MiB:.1f} GiB"
        except (OSError, IndexError, ValueError):
            memory = "?"
        distributions = (
            "apache-airflow",
            "apache-airflow-task-sdk",
            "apache-airflow-providers-http",
            "airflow-provider-seedream",
            "requests",
            "urllib3",
            "pydantic",
        )
        versions = output(
            [
                sys.executable,
                "-c",
                VERSIONS_SCRIPT,
                *distributions,
            ]
        )
        return {
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "uname": output(["uname", "-a"]) or " ".join(platform.uname()),
            "cpu": f"{cpu}, {os.cpu_count()} cores",
            "memory": memory,
            "python": sys.version.split()[0],
            "packages": versions,
            "measured package": output(
                [sys.executable, "-c", "import airflow_provider_seedream as p; print(p.__path__[0])"]
            ),
            "repository": output(["git", "-C", str(HERE.parent), "describe", "--always", "--dirty"]),
            "curl": output(["curl", "--version"]).splitlines()[0]
            if shutil.which("curl")
            else "not installed",
            "transparent huge pages": _read("/sys/kernel/mm/transparent_hugepage/enabled"),
            "load average at start": " ".join(f"{load:.2f}" for load in os.getloadavg()),
        }

    def summary(self, machine: dict[str, str]) -> None:
        machine["load average at end"] = " ".join(f"{load:.2f}" for load in os.getloadavg())
        print("\nMachine")
        for key, value in machine.items():
            print(f"  {key}: {value}")
        print("\nSummary (min / median / max; a target is judged on the median)\n")
        print("| # | figure | min / median / max | target | result |")
        print("|---|---|---|---|---|")
        for figure in self.figures:
            verdict = {True: "pass", False: "**miss**", None: ""}[figure.passed]
            print(f"| {figure.item} | {figure.name} | {figure.spread()} | {figure.target} | {verdict} |")
        missed = [figure.name for figure in self.figures if figure.passed is False]
        print(f"\n{len(missed)} target(s) missed" + (": " + "; ".join(missed) if missed else ""))


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def moto_server(env: dict[str, str]) -> Iterator[str]:
    """moto's S3 server on a free port, with the bucket ``bench``: its endpoint."""
    port = _free_port()
    moto = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    endpoint = f"http://127.0.0.1:{port}"
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    try:
        _wait_for_s3(endpoint, "bench")
        yield endpoint
    finally:
        moto.terminate()
        moto.wait(timeout=10)


def s3_connection(endpoint: str) -> str:
    """The ``aws`` connection of moto's server at ``endpoint``, as JSON."""
    return json.dumps(
        {
            "conn_type": "aws",
            "login": S3_KEY,
            "password": S3_KEY,
            "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"},
        }
    )


def _wait_for_s3(endpoint: str, bucket: str) -> None:
    """Create ``bucket`` once moto's server answers."""
    import time

    client = s3_client(endpoint)
    deadline = time.monotonic() + 30
    while True:
        try:
            client.create_bucket(Bucket=bucket)
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return "?"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="fewer repeats: a smoke test, not for publishing"
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=["import", "download", "generate", "inline", "s3", "cache", "ceiling"],
    )
    parser.add_argument("--json", type=Path, help="also write the machine and every figure to this file")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args()
    only = set(args.only or ["import", "download", "generate", "inline", "s3", "cache", "ceiling"])
    bench = Bench(args.quick)
    try:
        machine = bench.machine()
        print(
            "Seedream provider benchmarks" + (" (--quick: too few repeats to publish)" if args.quick else "")
        )
        print(f"measuring the package at {machine['measured package']}")
        if only & {"download", "generate", "s3", "ceiling"}:
            bench.start_server()
        if "import" in only:
            bench.bench_import()
        if "download" in only:
            bench.bench_download()
        if "generate" in only:
            bench.bench_generate()
        if "inline" in only:
            bench.bench_inline()
        if "s3" in only:
            bench.bench_s3()
        if "cache" in only:
            bench.bench_cache()
        if "ceiling" in only:
            bench.bench_ceiling()
        bench.summary(machine)
        if args.json:
            document = {
                "machine": machine,
                "quick": args.quick,
                "figures": [asdict(figure) for figure in bench.figures],
                **bench.details,
            }
            args.json.write_text(json.dumps(document, indent=2))
    finally:
        bench.close()
    return 1 if args.check and any(figure.passed is False for figure in bench.figures) else 0


if __name__ == "__main__":
    sys.exit(main())
