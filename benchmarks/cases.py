"""The measured workloads. Each runs in a fresh interpreter started by ``run.py``, so that one case's
imports, caches and memory peaks never leak into another's:

    python benchmarks/cases.py CASE '<json arguments>'

and prints one line ``RESULT <json>``. Anything else a case prints (Airflow's log lines) is ignored.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time

RESULT_MARK = "RESULT "

HEAVY_MODULES = (
    "PIL",
    "boto3",
    "botocore",
    "numpy",
    "pandas",
    "pyarrow",
    "httpx",
    "aiohttp",
    "sqlalchemy",
    "fsspec",
    "upath",
    "s3fs",
    "gcsfs",
    "adlfs",
    "google.cloud",
    "azure",
    "grpc",
    "kubernetes",
    "requests",
    "urllib3",
)
"""Reported present or absent after ``import airflow.sdk`` alone and after the provider's module."""

AUDITED_EVENTS = frozenset(
    {
        "socket.connect",
        "socket.getaddrinfo",
        "socket.gethostbyname",
        "socket.gethostbyaddr",
        "socket.bind",
        "sqlite3.connect",
        "http.client.connect",
        "urllib.Request",
        "subprocess.Popen",
        "os.system",
    }
)
"""Network, database and process activity that a module import must not cause."""


def emit(result: dict) -> None:
    sys.stdout.write(RESULT_MARK + json.dumps(result) + "\n")
    sys.stdout.flush()


def memory_status() -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of this process, in bytes."""
    values = {}
    with open("/proc/self/status") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) * 1024
    return values


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux: ``echo 5 > /proc/self/clear_refs``)."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        return False
    status = memory_status()
    return status["VmHWM"] <= status["VmRSS"] + 64 * 1024


# 1. DAG-parse cost ------------------------------------------------------------------------------------


def case_import(module: str, audit: bool = False) -> None:
    """Time ``import <module>`` after ``import airflow.sdk`` is done, in this fresh interpreter.

    With ``audit``, also record (with an audit hook, which costs time, hence a separate run) the
    network, database and process events the module's import causes, and the modules it adds."""
    import importlib

    events: list[str] = []
    recording = False
    if audit:

        def hook(event: str, args: tuple) -> None:
            if recording and event in AUDITED_EVENTS:
                events.append(f"{event} {args!r}"[:200])

        sys.addaudithook(hook)

    started = time.perf_counter()
    import airflow.sdk  # noqa: F401

    baseline = time.perf_counter() - started
    before = set(sys.modules)
    heavy_before = [name for name in HEAVY_MODULES if name in sys.modules]
    recording = True
    started = time.perf_counter()
    importlib.import_module(module)
    extra = time.perf_counter() - started
    recording = False
    added = sorted(set(sys.modules) - before)
    emit(
        {
            "module": module,
            "sdk_seconds": baseline,
            "extra_seconds": extra,
            "added_modules": added if audit else len(added),
            "heavy_after_sdk": heavy_before,
            "heavy_added": [name for name in HEAVY_MODULES if name in sys.modules and name not in heavy_before],
            "events": events,
        }
    )


# 2. Download ---------------------------------------------------------------------------------------


def case_download_throughput(url: str, workdir: str, repeats: int, curl: str) -> None:
    """``SeedreamHook.download`` against ``curl -o`` of the same URL, alternating which goes first.

    curl's own ``time_total`` is used (transfer only, without its process start); the hook is timed
    around the call. One untimed run of each comes first (page cache, connection, lazy imports)."""
    import subprocess

    from airflow_provider_seedream.hooks.seedream import SeedreamHook

    hook = SeedreamHook()
    curl_target = os.path.join(workdir, "curl.png")
    hook_target = os.path.join(workdir, "hook.png")

    def run_curl() -> float:
        out = subprocess.run(
            [curl, "--silent", "--show-error", "--fail", "-o", curl_target, "-w", "%{time_total} %{size_download}", url],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()
        return float(out[0])

    def run_hook() -> float:
        started = time.perf_counter()
        hook.download(url, hook_target)
        return time.perf_counter() - started

    run_curl(), run_hook()
    sizes = (os.path.getsize(curl_target), os.path.getsize(hook_target))
    assert sizes[0] == sizes[1], sizes
    curl_times, hook_times = [], []
    for index in range(repeats):
        for name in ("curl", "hook") if index % 2 == 0 else ("hook", "curl"):
            for path in (curl_target, hook_target):
                if os.path.exists(path):
                    os.remove(path)
            if name == "curl":
                curl_times.append(run_curl())
            else:
                hook_times.append(run_hook())
    emit({"bytes": sizes[0], "curl_seconds": curl_times, "hook_seconds": hook_times})


def case_download_memory(url: str, target: str, warm_url: str | None) -> None:
    """Peak RSS growth of one ``SeedreamHook.download`` in a fresh process.

    The hook is built first (connection read, session made). With ``warm_url``, one small image is
    downloaded before measuring, so the one-time lazy imports (object storage, lineage) are not
    counted: what remains is what depends on the image. Growth is the peak RSS during the download
    minus the RSS just before it (the peak is reset first)."""
    from airflow_provider_seedream.hooks.seedream import SeedreamHook

    hook = SeedreamHook()
    hook.settings, hook._download_session  # noqa: B018 - connection and session made up front
    if warm_url:
        hook.download(warm_url, target + ".warm.{ext}")
    gc.collect()
    before = memory_status()
    reset = reset_peak_rss()
    hook.download(url, target)
    after = memory_status()
    start = before["VmRSS"] if reset else max(before["VmRSS"], before["VmHWM"])
    emit(
        {
            "bytes": os.path.getsize(target),
            "rss_before": before["VmRSS"],
            "peak_after": after["VmHWM"],
            "growth": after["VmHWM"] - start,
            "peak_reset": reset,
        }
    )


# 3. Per-request overhead -----------------------------------------------------------------------------


def case_generate(base_url: str, api_key: str, count: int, repeats: int) -> None:
    """``count`` generations through ``SeedreamHook.generate`` against ``count`` raw ``requests`` posts
    of the same bodies on one session, alternating which goes first, ``repeats`` times."""
    import requests

    from airflow_provider_seedream.hooks.seedream import SeedreamHook
    from airflow_provider_seedream.request import build_request
    from airflow_provider_seedream.specs import DEFAULT_MODEL, MODEL_SPECS

    hook = SeedreamHook()
    prompts = [f"a red bicycle leaning on a blue wall, poster {index}" for index in range(count)]
    size = "2K"
    # The very bodies the hook sends (it builds them the same way).
    bodies = [build_request(prompt=prompt, size=size).to_payload() for prompt in prompts]
    url = f"{base_url}{MODEL_SPECS[DEFAULT_MODEL].path}"
    session = requests.Session()
    session.headers["Content-Type"] = "application/json"
    session.headers["Authorization"] = f"Bearer {api_key}"
    timeout = (hook.settings.connect_timeout, hook.settings.read_timeout)

    def run_hook() -> float:
        started = time.perf_counter()
        for prompt in prompts:
            hook.generate(prompt, size=size)
        return time.perf_counter() - started

    def run_raw() -> float:
        started = time.perf_counter()
        for body in bodies:
            response = session.post(url, json=body, timeout=timeout)
            response.raise_for_status()
            response.json()["images"]  # noqa: B018 - any client reads the links
        return time.perf_counter() - started

    # Warm up both: connections opened, lazy imports and caches filled.
    assert hook.generate(prompts[0], size=size)
    for body in bodies[:20]:
        session.post(url, json=body, timeout=timeout).raise_for_status()
    for prompt in prompts[:20]:
        hook.generate(prompt, size=size)
    hook_times, raw_times = [], []
    for index in range(repeats):
        for name in ("raw", "hook") if index % 2 == 0 else ("hook", "raw"):
            gc.collect()
            (raw_times if name == "raw" else hook_times).append(run_raw() if name == "raw" else run_hook())
    emit({"count": count, "hook_seconds": hook_times, "raw_seconds": raw_times})


def case_generate_profile(base_url: str, api_key: str, count: int, output: str) -> None:
    """cProfile of ``count`` hook generations (for finding where the overhead goes)."""
    import cProfile

    from airflow_provider_seedream.hooks.seedream import SeedreamHook

    hook = SeedreamHook()
    for _ in range(20):
        hook.generate("warm up", size="2K")
    profiler = cProfile.Profile()
    profiler.enable()
    for index in range(count):
        hook.generate(f"a red bicycle leaning on a blue wall, poster {index}", size="2K")
    profiler.disable()
    profiler.dump_stats(output)
    emit({"profile": output})


# 4. Reference inlining -------------------------------------------------------------------------------


def case_inline(path: str, repeats: int) -> None:
    """``inline_image`` of the file's bytes against ``base64.b64encode`` of the same bytes: time
    (alternating order), and peak memory allocated during the call (tracemalloc, separate pass)."""
    import base64
    import tracemalloc

    from airflow_provider_seedream.request import inline_image
    from airflow_provider_seedream.specs import MODEL_SPECS

    with open(path, "rb") as handle:
        data = handle.read()
    spec = MODEL_SPECS["seedream-4.0"]  # the model with a 10 MB reference limit: the image is just under it

    def plain() -> object:
        return base64.b64encode(data)

    def inline() -> object:
        return inline_image(data, spec, "images[0]")

    assert inline().endswith(plain().decode()[-64:])  # type: ignore[union-attr]
    functions = {"b64encode": plain, "inline_image": inline}
    times: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(3):
        plain(), inline()
    for index in range(repeats):
        for name in ("b64encode", "inline_image") if index % 2 == 0 else ("inline_image", "b64encode"):
            gc.collect()
            started = time.perf_counter()
            result = functions[name]()
            times[name].append(time.perf_counter() - started)
            del result
    peaks: dict[str, int] = {}
    tracemalloc.start()
    for name, function in functions.items():
        gc.collect()
        tracemalloc.reset_peak()
        current = tracemalloc.get_traced_memory()[0]
        result = function()
        peaks[name] = tracemalloc.get_traced_memory()[1] - current
        del result
    tracemalloc.stop()
    emit({"bytes": len(data), "seconds": times, "peak_bytes": peaks})


CASES = {
    "import": case_import,
    "download-throughput": case_download_throughput,
    "download-memory": case_download_memory,
    "generate": case_generate,
    "generate-profile": case_generate_profile,
    "inline": case_inline,
}

if __name__ == "__main__":
    CASES[sys.argv[1]](**json.loads(sys.argv[2] if len(sys.argv) > 2 else "{}"))
