"""CPU time per request in a uvicorn process under load: the native ASGI hello, the one-hop
baseline and the WSGI hello through bridge, on httptools and h11:

    python -m benchmarks.cpu_per_request                 # both, 3 s of load each
    python -m benchmarks.cpu_per_request --http h11 --duration 5

Why: the server tier's shares of the native hello stop where the server process is bound
by the GIL. Its throughput is then one request per CPU time of Python spent on one, in
whichever thread: this splits that time between the event loop's thread and the worker
threads, and says how much of it is in the kernel. Each server runs alone, in turn, loaded
by the suite's client (``benchmarks.loadgen``, 32 connections, every response checked)
after one second of warm-up; CPU times are the server process's and its loop thread's
(``psutil``), read just before and just after the load; the worker threads' are the rest.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil

from .servers import ROOT, Process, Server, _uvicorn

_APPS = "benchmarks.server_apps:"
SUBJECTS = (
    ("native ASGI hello", "asgi_hello"),
    ("one-hop baseline", "w2a_baseline"),
    ("bridge", "w2a_bridge"),
)


def _thread_times(process: psutil.Process) -> dict[int, float]:
    return {thread.id: thread.user_time + thread.system_time for thread in process.threads()}


def _load(port: int, duration: float) -> tuple[int, float]:
    """Requests answered, each checked by the client (a bad one fails the measurement), and
    the seconds it took."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.loadgen", "--port", str(port), "--duration", str(duration)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=duration + 60,
        check=True,
    )
    tally = json.loads(done.stdout.strip().splitlines()[-1])
    if tally["bad"] or tally["errors"] or not tally["ok"]:
        raise RuntimeError(f"the load on port {port} went wrong: {tally}")
    return int(tally["ok"]), float(tally["seconds"])


def measure(http: str, target: str, duration: float, workdir: Path) -> dict[str, float]:
    process = Process(
        Server(f"{target}@uvicorn-{http}", f"uvicorn {http}", _APPS + target, _uvicorn(http)), workdir
    )
    try:
        process.wait_ready()
        _load(process.port, 1.0)  # warm-up: threads started, caches filled
        server = psutil.Process(process.proc.pid)
        before, cpu_before = _thread_times(server), server.cpu_times()
        requests, seconds = _load(process.port, duration)
        after, cpu_after = _thread_times(server), server.cpu_times()
    finally:
        process.stop()
    main = process.proc.pid  # the event loop runs in the main thread
    loop = after.get(main, 0.0) - before.get(main, 0.0)
    total = (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system)
    # Every other thread's, as the process's total less the loop's: the process's times
    # keep those of threads that ended during the load, which a sum over the threads
    # alive at the end would miss (one run showed no worker time at all that way).
    workers = max(0.0, total - loop)
    return {
        "requests_per_second": requests / seconds,
        "cpu_us": total / requests * 1e6,
        "loop_us": loop / requests * 1e6,
        "workers_us": workers / requests * 1e6,
        "kernel_us": (cpu_after.system - cpu_before.system) / requests * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.cpu_per_request",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--http", choices=("httptools", "h11"), action="append", help="default: both")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds of load per server (default 3)")
    args = parser.parse_args()
    print("| uvicorn, app | req/s | CPU per request | loop thread | worker threads | of it in the kernel |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="bridge-cpu-") as workdir:
        for http in args.http or ("httptools", "h11"):
            for label, target in SUBJECTS:
                found = measure(http, target, args.duration, Path(workdir))
                workers = f"{found['workers_us']:.1f} µs" if found["workers_us"] >= 0.05 else "—"
                print(
                    f"| {http}, {label} | {found['requests_per_second']:,.0f} | {found['cpu_us']:.1f} µs "
                    f"| {found['loop_us']:.1f} µs | {workers} | {found['kernel_us']:.1f} µs |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
