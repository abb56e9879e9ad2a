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
            "heavy_added": [
                name for name in HEAVY_MODULES if name in sys.modules and name not in heavy_before
            ],
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
        """curl's transfer time, plus an fsync of its file: the hook syncs each image before renaming
        it into place (no half-written file at a final name, even after a crash), so the baseline
        gives its file the same guarantee."""
        out = subprocess.run(
            [
                curl,
                "--silent",
                "--show-error",
                "--fail",
                "-o",
                curl_target,
                "-w",
                "%{time_total} %{size_download}",
                url,
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()
        started = time.perf_counter()
        fd = os.open(curl_target, os.O_RDONLY)
        try:
            os.fdatasync(fd)
        finally:
            os.close(fd)
        return float(out[0]) + time.perf_counter() - started

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
    """Peak RSS growth of one ``SeedreamHook.download`` in a fresh process set up as a task process.

    Airflow's task runner loads the listener plugins (``get_listener_manager()``, and with them every
    installed plugin) before it parses the DAG file, so every task starts with them loaded; so does
    this process. The hook is built next (connection read, session made). With ``warm_url``, one
    small image is downloaded before measuring, so the one-time lazy imports (object storage,
    lineage) are not counted: what remains is what depends on the image. Growth is the peak RSS
    during the download minus the RSS just before it (the peak is reset first)."""
    from airflow.sdk.listener import get_listener_manager

    from airflow_provider_seedream.hooks.seedream import SeedreamHook

    get_listener_manager()
    hook = SeedreamHook()
    hook.settings, hook._sessions.links  # noqa: B018 - connection and session made up front
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
    of the same bodies on one session, ``repeats`` times.

    The two are interleaved call by call (which goes first alternates), each call timed on its own
    and summed per repeat, so that whatever else the machine does hits both alike."""
    import requests

    from airflow_provider_seedream.contract.request import build_request
    from airflow_provider_seedream.contract.specs import DEFAULT_MODEL, MODEL_SPECS
    from airflow_provider_seedream.hooks.seedream import SeedreamHook

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
    clock = time.perf_counter

    def one_hook(index: int) -> float:
        started = clock()
        hook.generate(prompts[index], size=size)
        return clock() - started

    def one_raw(index: int) -> float:
        started = clock()
        response = session.post(url, json=bodies[index], timeout=timeout)
        response.raise_for_status()
        response.json()["images"]  # any client reads the links
        return clock() - started

    for index in range(20):  # warm up both: connections opened, lazy imports and caches filled
        one_hook(index), one_raw(index)
    hook_times, raw_times = [], []
    for _ in range(repeats):
        gc.collect()
        hook_total = raw_total = 0.0
        for index in range(count):
            if index % 2 == 0:
                hook_total += one_hook(index)
                raw_total += one_raw(index)
            else:
                raw_total += one_raw(index)
                hook_total += one_hook(index)
        hook_times.append(hook_total)
        raw_times.append(raw_total)
    emit({"count": count, "hook_seconds": hook_times, "raw_seconds": raw_times})


# 4. Reference inlining -------------------------------------------------------------------------------


INLINE_FUNCTIONS = ("b64encode", "b64encode+decode", "inline_image")


def _inline_setup(path: str):
    """The reference's bytes and the functions compared, after a warm-up on a small image (code
    paths, caches), so that the measured call differs between processes only in what it runs."""
    import base64

    from airflow_provider_seedream.contract.references import inline_image
    from airflow_provider_seedream.contract.specs import MODEL_SPECS

    with open(path, "rb") as handle:
        data = handle.read()
    spec = MODEL_SPECS["seedream-4.0"]  # the model with a 10 MB reference limit: the image is just under it
    functions = {
        "b64encode": lambda: base64.b64encode(data),
        # What any function returning the data URI as a str must at least do: encode, then make a str.
        "b64encode+decode": lambda: base64.b64encode(data).decode("ascii"),
        "inline_image": lambda: inline_image(data, spec, "images[0]"),
    }
    from images import png_bytes

    small = png_bytes(64, 64)
    assert inline_image(small, spec, "warm-up") == "data:image/png;base64," + base64.b64encode(small).decode()
    return data, functions


def case_inline_once(path: str, function: str) -> None:
    """One call of ``function`` on the reference, the first large one in this fresh process: what a task
    pays, since it inlines a reference once per generation. Also the peak RSS growth of the call."""
    data, functions = _inline_setup(path)
    gc.collect()
    before = memory_status()
    reset = reset_peak_rss()
    started = time.perf_counter()
    result = functions[function]()
    elapsed = time.perf_counter() - started
    after = memory_status()
    start = before["VmRSS"] if reset else max(before["VmRSS"], before["VmHWM"])
    emit(
        {
            "bytes": len(data),
            "seconds": elapsed,
            "rss_growth": after["VmHWM"] - start,
            "result_length": len(result),
        }
    )


def case_inline_memory(path: str) -> None:
    """Peak memory allocated during each function's call (tracemalloc: every byte Python allocates,
    touched or not), beyond what was allocated before it."""
    import tracemalloc

    data, functions = _inline_setup(path)
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
    emit({"bytes": len(data), "peak_bytes": peaks})


# 5. Storing in S3 -------------------------------------------------------------------------------------


def _store_with_operator(urls: list[str], destination: str, run: str) -> float:
    """One poke of ``SeedreamDownloadOperator``: every image fetched and stored, the manifest written."""
    import types

    from airflow_provider_seedream.sensors.seedream import SeedreamDownloadOperator

    operator = SeedreamDownloadOperator(
        task_id="store",
        urls=urls,
        destination=destination,
        filename="{run_id}/{index}.{ext}",
    )
    ti = types.SimpleNamespace(
        dag_id="bench", run_id=run, task_id="store", map_index=-1, xcom_push=lambda key, value: None
    )
    started = time.perf_counter()
    done = operator.poke({"ti": ti})
    elapsed = time.perf_counter() - started
    assert done.is_done, "not every image was stored"
    return elapsed


S3_KEY = "bench"
"""Access key and secret of moto's server, for boto3 and for the ``bench_s3`` connection alike."""


def s3_client(endpoint: str):
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=S3_KEY,
        aws_secret_access_key=S3_KEY,
    )


def case_s3_upload(endpoint: str, bucket: str, urls: list[str], files: list[str], repeats: int) -> None:
    """15 images into S3: through the operator (fetched from the local server, stored in the bucket
    through Airflow's S3 filesystem) against boto3's ``upload_file`` of the same bytes from local disk,
    alternating which goes first. The bucket is emptied after each run."""
    client = s3_client(endpoint)
    destination = f"s3://bench_s3@{bucket}/operator/"

    def empty() -> None:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for item in page.get("Contents", []):
                client.delete_object(Bucket=bucket, Key=item["Key"])

    def run_boto3(run: str) -> float:
        started = time.perf_counter()
        for index, path in enumerate(files):
            client.upload_file(path, bucket, f"boto3/{run}/{index}.png")
        return time.perf_counter() - started

    run_boto3("warm"), _store_with_operator(urls, destination, "warm")
    empty()
    boto3_times, operator_times = [], []
    for index in range(repeats):
        for name in ("boto3", "operator") if index % 2 == 0 else ("operator", "boto3"):
            if name == "boto3":
                boto3_times.append(run_boto3(str(index)))
            else:
                operator_times.append(_store_with_operator(urls, destination, str(index)))
            empty()
    emit({"boto3_seconds": boto3_times, "operator_seconds": operator_times})


def case_s3_memory(urls: list[str], warm_url: str, bucket: str) -> None:
    """Peak RSS growth while the operator stores ``urls`` in S3, after one small image stored first (the
    S3 filesystem and its client made, the lazy imports done)."""
    import uuid

    run = uuid.uuid4().hex  # a folder of its own: no earlier manifest lists these images
    _store_with_operator([warm_url], f"s3://bench_s3@{bucket}/memory/", f"warm-{run}")
    gc.collect()
    before = memory_status()
    reset = reset_peak_rss()
    _store_with_operator(urls, f"s3://bench_s3@{bucket}/memory/", run)
    after = memory_status()
    start = before["VmRSS"] if reset else max(before["VmRSS"], before["VmHWM"])
    emit({"growth": after["VmHWM"] - start, "peak_reset": reset})


# 6. Catalog refreshes through the cache ---------------------------------------------------------------


def case_cache_refresh(workdir: str, products: int, refreshes: int, changed: int) -> None:
    """A catalog of ``products`` rows refreshed ``refreshes`` times, ``changed`` rows reworded before
    each refresh after the first, one ``SeedreamGenerateOperator`` per row and refresh, against the
    sandbox at its real image sizes (2560x1440): once with ``cache`` on a local folder, once without.
    Paid generations are counted at the sandbox; every task's ``execute`` is timed."""
    import logging
    import types

    from airflow_provider_seedream.operators.seedream import SeedreamGenerateOperator
    from airflow_provider_seedream.testing import SANDBOX_API_KEY, SeedreamSandbox

    logging.disable(logging.INFO)  # a line per task would be timed too
    catalog = [
        f"Product photo of item {index}, natural light, room for a headline" for index in range(products)
    ]
    results: dict[str, object] = {}
    with SeedreamSandbox(SANDBOX_API_KEY) as sandbox:
        os.environ["AIRFLOW_CONN_SEEDREAM_DEFAULT"] = json.dumps(
            {"conn_type": "seedream", "host": sandbox.url, "password": SANDBOX_API_KEY}
        )
        for mode, cache in (("cache", os.path.join(workdir, "cache")), ("no cache", None)):
            rows = list(catalog)
            before = len(sandbox.generation_requests())
            hits, misses = [], []
            for refresh in range(refreshes):
                if refresh:
                    for index in range(changed):  # different rows each time
                        row = (refresh * changed + index) % products
                        rows[row] = f"{catalog[row]}, version {refresh}"
                for index, prompt in enumerate(rows):
                    operator = SeedreamGenerateOperator(
                        task_id=f"product_{index}",
                        prompt=prompt,
                        size="2560x1440",
                        cache=cache,
                        durable=False,
                    )
                    ti = types.SimpleNamespace(xcom_push=lambda key, value: None)
                    sent = len(sandbox.generation_requests())
                    started = time.perf_counter()
                    operator.execute({"ti": ti})
                    elapsed = time.perf_counter() - started
                    (misses if len(sandbox.generation_requests()) > sent else hits).append(elapsed)
            results[mode] = {
                "paid": len(sandbox.generation_requests()) - before,
                "hit_seconds": hits,
                "miss_seconds": misses,
            }
        image_bytes = len(sandbox.served_images()[0])
    emit({**results, "image_bytes": image_bytes})


# 7. Spend ceilings -------------------------------------------------------------------------------


def case_ceiling(base_url: str, api_key: str, count: int, repeats: int, ledgers: dict[str, str]) -> None:
    """``count`` generations through ``SeedreamHook.generate`` on a connection without ceilings and on
    one with a daily ceiling per ledger in ``ledgers`` (name: ``spend_ledger``), interleaved call by
    call as in ``case_generate``: each ceilinged call reserves and settles in its ledger."""
    from airflow_provider_seedream.hooks.seedream import SeedreamHook

    def connection(extra: dict) -> str:
        return json.dumps({"conn_type": "seedream", "host": base_url, "password": api_key, "extra": extra})

    hooks = {"none": SeedreamHook()}
    for name, ledger in ledgers.items():
        conn_id = f"bench_ceiling_{name}"
        os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = connection(
            {"max_spend_per_day_usd": 1_000_000, "spend_ledger": ledger}
        )
        hooks[name] = SeedreamHook(seedream_conn_id=conn_id)
    clock = time.perf_counter

    def one(hook: SeedreamHook, index: int) -> float:
        started = clock()
        hook.generate(f"a red bicycle leaning on a blue wall, poster {index}", size="2K")
        return clock() - started

    order = list(hooks)
    for index in range(20):  # warm up: connections opened, ledgers created, lazy imports done
        for name in order:
            one(hooks[name], index)
    seconds: dict[str, list[float]] = {name: [] for name in order}
    for _ in range(repeats):
        gc.collect()
        totals = dict.fromkeys(order, 0.0)
        for index in range(count):
            turn = order[index % len(order) :] + order[: index % len(order)]  # who goes first rotates
            for name in turn:
                totals[name] += one(hooks[name], index)
        for name in order:
            seconds[name].append(totals[name])
    emit({"count": count, "seconds": seconds})


CASES = {
    "import": case_import,
    "download-throughput": case_download_throughput,
    "download-memory": case_download_memory,
    "generate": case_generate,
    "inline-once": case_inline_once,
    "inline-memory": case_inline_memory,
    "s3-upload": case_s3_upload,
    "s3-memory": case_s3_memory,
    "cache-refresh": case_cache_refresh,
    "ceiling": case_ceiling,
}

if __name__ == "__main__":
    CASES[sys.argv[1]](**json.loads(sys.argv[2] if len(sys.argv) > 2 else "{}"))
