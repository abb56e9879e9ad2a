"""What the provider costs its users, each figure against a baseline measured in the same run.

    make bench                      # or: .venv/bin/python benchmarks/run.py [--quick] [--json FILE]

1. DAG-parse cost: the import time of ``airflow_provider_seedream.operators.seedream`` after
   ``import airflow.sdk``, in fresh interpreters with a warm bytecode cache, side by side with
   ``airflow.providers.http.operators.http`` measured the same way.
2. Download: a 64 MiB PNG from a local server through ``SeedreamHook.download`` against ``curl -o``;
   peak RSS growth for a 64 MiB and an 8 MiB image.
3. Per-request overhead: 200 ``SeedreamHook.generate`` calls against 200 raw ``requests`` posts of the
   same bodies on one session, to a local server answering at once.
4. Reference inlining: ``inline_image`` of a 10 MB PNG against ``base64.b64encode``: time and memory.

Every case runs in a fresh interpreter (``cases.py``); the HTTP server runs in another process
(``server.py``). Nothing leaves 127.0.0.1. See docs/benchmarks.md for the method and the figures.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from cases import RESULT_MARK  # noqa: E402
from images import png_of_about  # noqa: E402

MiB = 1024 * 1024
API_KEY = "bench-key"
OUR_MODULE = "airflow_provider_seedream.operators.seedream"
HTTP_MODULE = "airflow.providers.http.operators.http"


@dataclass
class Figure:
    item: str
    name: str
    values: list[float]
    unit: str
    target: str
    passed: bool | None
    """None: shown for context, no target of its own."""

    def spread(self) -> str:
        return spread(self.values, self.unit)


def spread(values: list[float], unit: str = "") -> str:
    """min / median / max."""
    fmt = {"x": "{:.2f}x", "ms": "{:.1f} ms", "MiB": "{:.1f} MiB", "us": "{:.0f} us", "MiB/s": "{:.0f} MiB/s"}.get(
        unit, "{:.3g}"
    )
    low, mid, high = min(values), statistics.median(values), max(values)
    return " / ".join(fmt.format(v) for v in (low, mid, high))


class Bench:
    def __init__(self, quick: bool) -> None:
        self.quick = quick
        self.tmp = Path(tempfile.mkdtemp(prefix="seedream-bench-"))
        self.files = self.tmp / "files"
        self.files.mkdir()
        self.work = self.tmp / "work"
        self.work.mkdir()
        self.figures: list[Figure] = []
        self.notes: list[str] = []
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
            raise RuntimeError(
                f"case {case} failed (exit {process.returncode}):\n{process.stdout[-3000:]}\n{process.stderr[-3000:]}"
            )
        return json.loads(results[-1][len(RESULT_MARK) :])

    def start_server(self) -> None:
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
        return f"{self.base_url}/files/{name}?X-Tos-Algorithm=TOS4-HMAC-SHA256&X-Tos-Signature=0123456789abcdef"

    def add(self, figure: Figure) -> None:
        self.figures.append(figure)
        verdict = {True: "PASS", False: "MISS", None: ""}[figure.passed]
        print(f"  {figure.name:<58} {figure.spread():<34} {figure.target:<26} {verdict}", flush=True)

    # 1. DAG-parse cost ------------------------------------------------------------------------------

    def bench_import(self) -> None:
        processes = 7 if self.quick else 21
        print(f"\n1. DAG-parse cost: import after `import airflow.sdk`, {processes} fresh processes each")
        for module in (OUR_MODULE, HTTP_MODULE):  # fill the bytecode cache, then check it is used
            for _ in range(2):
                self.child("import", module=module)
        ours, http, sdk = [], [], []
        for _ in range(processes):  # interleaved, so drift hits both alike
            for module, into in ((OUR_MODULE, ours), (HTTP_MODULE, http)):
                result = self.child("import", module=module)
                into.append(result["extra_seconds"] * 1000)
                sdk.append(result["sdk_seconds"] * 1000)
        audits = {module: self.child("import", module=module, audit=True) for module in (OUR_MODULE, HTTP_MODULE)}
        ratios = [a / b for a, b in zip(ours, http)]
        median_ours, median_http = statistics.median(ours), statistics.median(http)
        self.add(Figure("1", "`import airflow.sdk` itself (both, context)", sdk, "ms", "", None))
        self.add(Figure("1", f"{HTTP_MODULE}: extra import", http, "ms", "baseline", None))
        self.add(
            Figure(
                "1",
                f"{OUR_MODULE}: extra import",
                ours,
                "ms",
                "< 30 ms and <= http",
                median_ours < 30 and median_ours <= median_http,
            )
        )
        self.add(Figure("1", "ratio seedream / http (paired processes)", ratios, "x", "<= 1.00x", median_ours <= median_http))
        for module, audit in audits.items():
            tops = sorted({name.split(".")[0] for name in audit["added_modules"]})
            print(f"  {module}: adds {len(audit['added_modules'])} modules, top-level packages: {', '.join(tops)}")
            print(f"    heavy modules present after `import airflow.sdk` alone: {', '.join(audit['heavy_after_sdk']) or 'none'}")
            print(f"    heavy modules newly imported: {', '.join(audit['heavy_added']) or 'none'}")
            print(f"    network/DB/process events during the import: {'; '.join(audit['events']) or 'none'}")
        ours_audit = audits[OUR_MODULE]
        banned = {"PIL", "boto3", "botocore", "numpy", "pandas", "pyarrow", "sqlalchemy", "s3fs", "gcsfs", "adlfs"}
        clean = not ours_audit["events"] and not banned & set(ours_audit["heavy_added"])
        self.add(
            Figure(
                "1",
                "seedream import: network/DB/heavy optional imports",
                [len(ours_audit["events"]) + len(banned & set(ours_audit["heavy_added"]))],
                "",
                "none",
                clean,
            )
        )
        self.import_audits = audits

    # 2. Download ------------------------------------------------------------------------------------

    def bench_download(self) -> None:
        curl = shutil.which("curl")
        repeats = 3 if self.quick else 7
        print(f"\n2. Download: 64 MiB PNG through SeedreamHook.download vs curl -o, {repeats} repeats")
        if curl is None:
            self.notes.append("curl is not installed: the download throughput baseline was skipped")
            print("  curl not found: skipped")
        else:
            result = self.child(
                "download-throughput", url=self.link("big.png"), workdir=str(self.work), repeats=repeats, curl=curl
            )
            size = result["bytes"] / MiB
            self.add(Figure("2", "curl -o throughput", [size / t for t in result["curl_seconds"]], "MiB/s", "baseline", None))
            self.add(
                Figure("2", "SeedreamHook.download throughput", [size / t for t in result["hook_seconds"]], "MiB/s", "", None)
            )
            ratios = [c / h for c, h in zip(result["curl_seconds"], result["hook_seconds"])]
            self.add(
                Figure("2", "throughput ratio hook / curl", ratios, "x", ">= 0.80x", statistics.median(ratios) >= 0.8)
            )
        runs = 1 if self.quick else 3
        for label, warm in (("first download in the process", False), ("after one small download", True)):
            growth = {}
            for name, size in (("big.png", 64), ("medium.png", 8)):
                values = []
                for index in range(runs):
                    result = self.child(
                        "download-memory",
                        url=self.link(name),
                        target=str(self.work / f"memory-{index}.png"),
                        warm_url=self.link("small.png") if warm else None,
                    )
                    values.append(result["growth"] / MiB)
                    for path in self.work.glob("memory-*"):
                        path.unlink()
                growth[size] = values
                self.add(
                    Figure("2", f"peak RSS growth, {size} MiB image, {label}", values, "MiB", "<= 16 MiB", max(values) <= 16)
                )

    # 3. Per-request overhead ------------------------------------------------------------------------

    def bench_generate(self) -> None:
        count, repeats = (200, 3) if self.quick else (200, 7)
        print(f"\n3. Per-request overhead: {count} generations, hook vs raw requests on one session, {repeats} repeats")
        result = self.child("generate", base_url=self.base_url, api_key=API_KEY, count=count, repeats=repeats)
        hook, raw = result["hook_seconds"], result["raw_seconds"]
        self.add(Figure("3", f"raw requests: {count} posts", [t * 1000 for t in raw], "ms", "baseline", None))
        self.add(Figure("3", f"SeedreamHook.generate: {count} calls", [t * 1000 for t in hook], "ms", "", None))
        self.add(
            Figure("3", "overhead per call", [(h - r) / count * 1e6 for h, r in zip(hook, raw)], "us", "", None)
        )
        ratios = [h / r for h, r in zip(hook, raw)]
        self.add(Figure("3", "ratio hook / raw", ratios, "x", "<= 1.30x", statistics.median(ratios) <= 1.3))

    # 4. Reference inlining --------------------------------------------------------------------------

    def bench_inline(self) -> None:
        repeats = 5 if self.quick else 15
        path = self.work / "reference.png"
        # Noise, not a flat colour: a photo's bytes. Just under the 10 MiB reference limit of Seedream 4.0.
        path.write_bytes(png_of_about(10 * MiB, width=1800, noise=True))
        print(f"\n4. Reference inlining: {path.stat().st_size / 1e6:.1f} MB PNG, {repeats} repeats")
        result = self.child("inline", path=str(path), repeats=repeats)
        size = result["bytes"]
        plain, inline = result["seconds"]["b64encode"], result["seconds"]["inline_image"]
        self.add(Figure("4", "base64.b64encode", [t * 1000 for t in plain], "ms", "baseline", None))
        self.add(Figure("4", "inline_image", [t * 1000 for t in inline], "ms", "", None))
        ratios = [i / p for i, p in zip(inline, plain)]
        self.add(Figure("4", "time ratio inline_image / b64encode", ratios, "x", "<= 1.50x", statistics.median(ratios) <= 1.5))
        peaks = result["peak_bytes"]
        self.add(Figure("4", "peak memory of b64encode / file size", [peaks["b64encode"] / size], "x", "context", None))
        self.add(
            Figure(
                "4",
                "peak memory of inline_image / file size",
                [peaks["inline_image"] / size],
                "x",
                "<= 3.00x",
                peaks["inline_image"] <= 3 * size,
            )
        )

    # Report -----------------------------------------------------------------------------------------

    def machine(self) -> dict[str, str]:
        def version(command: list[str]) -> str:
            try:
                return subprocess.run(command, capture_output=True, text=True, env=self.env).stdout.strip()
            except OSError:
                return "?"

        cpu = "?"
        try:
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
        except OSError:
            pass
        memory = "?"
        try:
            kib = int(Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0])
            memory = f"{kib / MiB:.1f} GiB"
        except (OSError, IndexError, ValueError):
            pass
        packages = version(
            [
                sys.executable,
                "-c",
                "from importlib.metadata import version as v; print(', '.join(f'{p} {v(p)}' for p in "
                "('apache-airflow', 'apache-airflow-task-sdk', 'apache-airflow-providers-http', "
                "'airflow-provider-seedream', 'requests', 'urllib3', 'pydantic')))",
            ]
        )
        return {
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "uname": " ".join(platform.uname()),
            "cpu": f"{cpu}, {os.cpu_count()} cores",
            "memory": memory,
            "python": sys.version.split()[0],
            "packages": packages,
            "curl": version(["curl", "--version"]).splitlines()[0] if shutil.which("curl") else "not installed",
        }

    def summary(self, machine: dict[str, str]) -> None:
        print("\nMachine")
        for key, value in machine.items():
            print(f"  {key}: {value}")
        print("\nSummary (markdown; min / median / max; targets are judged on the median)\n")
        print("| # | figure | min / median / max | target | result |")
        print("|---|---|---|---|---|")
        for figure in self.figures:
            verdict = {True: "pass", False: "**miss**", None: ""}[figure.passed]
            print(f"| {figure.item} | {figure.name} | {figure.spread()} | {figure.target} | {verdict} |")
        for note in self.notes:
            print(f"\nNote: {note}")
        missed = [figure.name for figure in self.figures if figure.passed is False]
        print(f"\n{len(missed)} target(s) missed" + (": " + "; ".join(missed) if missed else ""))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repeats (a smoke test, not for publishing)")
    parser.add_argument("--only", action="append", choices=["import", "download", "generate", "inline"])
    parser.add_argument("--json", type=Path, help="also write every figure and the machine to this file")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args()
    only = set(args.only or ["import", "download", "generate", "inline"])
    bench = Bench(args.quick)
    try:
        machine = bench.machine()
        print("Seedream provider benchmarks" + (" (quick: too few repeats to publish)" if args.quick else ""))
        if only & {"download", "generate"}:
            bench.files.joinpath("big.png").write_bytes(png_of_about(64 * MiB))
            bench.files.joinpath("medium.png").write_bytes(png_of_about(8 * MiB))
            bench.files.joinpath("small.png").write_bytes(png_of_about(64 * 1024, width=64))
            bench.files.joinpath("generated.png").write_bytes(png_of_about(16 * 1024, width=32))
            bench.start_server()
        if "import" in only:
            bench.bench_import()
        if "download" in only:
            bench.bench_download()
        if "generate" in only:
            bench.bench_generate()
        if "inline" in only:
            bench.bench_inline()
        bench.summary(machine)
        if args.json:
            args.json.write_text(
                json.dumps(
                    {
                        "machine": machine,
                        "quick": args.quick,
                        "figures": [figure.__dict__ for figure in bench.figures],
                        "import_audits": getattr(bench, "import_audits", None),
                    },
                    indent=2,
                )
            )
    finally:
        bench.close()
    return 1 if args.check and any(figure.passed is False for figure in bench.figures) else 0


if __name__ == "__main__":
    sys.exit(main())
