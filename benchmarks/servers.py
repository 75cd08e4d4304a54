"""Server tier: the hello app through each adapter on real servers, on 127.0.0.1.

* WSGI app (``server_apps.wsgi_hello``) through bridge and a2wsgi on uvicorn with h11 and
  with httptools (both on the asyncio loop, one process); native reference: the WSGI
  app on gunicorn gthread.
* ASGI app (``server_apps.asgi_hello``) through bridge and a2wsgi on gunicorn gthread and
  on waitress; native reference: the ASGI app on uvicorn (httptools, asyncio).
* On every server, also the no-adapter baseline of the in-process tier (one executor hop;
  one ``run_coroutine_threadsafe`` round trip): the floor of an adapter that hops once.

gunicorn runs one worker with 8 threads and waitress 8 threads, so every server is one
process: the figures compare adapters, not process counts. All servers start at once,
each in its own process group on a free port, and are polled for readiness (status and
body) with a deadline; they are killed at the end whatever happens. Then every server
is loaded in turn, in an order that rotates each round, with ``wrk`` (a Lua script
checks every response's status and exact body) or, without wrk, ``benchmarks.loadgen``
in a subprocess. A run with a bad response or a socket error is flagged, and its
req/s counts good responses only.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .harness import Config, ScenarioResult, SubjectResult, log, matches

__all__ = ["ROWS", "run"]

ROOT = Path(__file__).resolve().parent.parent
HELLO = b"Hello, world!"
THREADS = 8
CONNECTIONS = 32


def _uvicorn(http: str) -> Callable[[str, int], list[str]]:
    def argv(target: str, port: int) -> list[str]:
        return [
            sys.executable,
            "-m",
            "uvicorn",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--http",
            http,
            "--loop",
            "asyncio",
            "--no-access-log",
            "--log-level",
            "warning",
            target,
        ]

    return argv


def _gunicorn(target: str, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "--worker-class",
        "gthread",
        "--workers",
        "1",
        "--threads",
        str(THREADS),
        "--bind",
        f"127.0.0.1:{port}",
        "--log-level",
        "warning",
        target,
    ]


def _waitress(target: str, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "waitress",
        "--host=127.0.0.1",
        f"--port={port}",
        f"--threads={THREADS}",
        target,
    ]


@dataclass(frozen=True)
class Server:
    key: str  # unique: "subject@server"
    label: str  # the server, in words
    target: str  # module:attribute
    argv: Callable[[str, int], list[str]]


@dataclass(frozen=True)
class Row:
    id: str
    direction: str
    title: str
    subjects: dict[str, Server]  # bridge, a2wsgi, native


_APPS = "benchmarks.server_apps:"
W2A_NATIVE = Server("native@gunicorn-gthread", "gunicorn gthread", _APPS + "wsgi_hello", _gunicorn)
A2W_NATIVE = Server(
    "native@uvicorn-httptools", "uvicorn httptools", _APPS + "asgi_hello", _uvicorn("httptools")
)


def _row(kind: str, server_id: str, label: str, argv: Callable[[str, int], list[str]]) -> Row:
    """One server's row: bridge, a2wsgi and the baseline on it; ``kind`` is "w2a" or "a2w"."""
    direction, native = ("WSGI to ASGI", W2A_NATIVE) if kind == "w2a" else ("ASGI to WSGI", A2W_NATIVE)
    subjects = {
        subject: Server(f"{subject}@{server_id}", label, f"{_APPS}{kind}_{subject}", argv)
        for subject in ("bridge", "a2wsgi", "baseline")
    }
    return Row(f"server.{kind}.{server_id}", direction, f"hello on {label}", {**subjects, "native": native})


ROWS = [
    _row("w2a", "uvicorn-h11", "uvicorn h11", _uvicorn("h11")),
    _row("w2a", "uvicorn-httptools", "uvicorn httptools", _uvicorn("httptools")),
    _row("a2w", "gunicorn-gthread", "gunicorn gthread", _gunicorn),
    _row("a2w", "waitress", "waitress", _waitress),
]


# -- processes -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Process:
    def __init__(self, server: Server, logdir: Path) -> None:
        self.server = server
        self.port = free_port()
        self.log_path = logdir / f"{server.key.replace('@', '-')}.log"
        self.log_file = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
        self.proc = subprocess.Popen(
            server.argv(server.target, self.port),
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: killed whole at the end
        )

    def log_text(self) -> str:
        self.log_file.flush()
        return self.log_path.read_text(errors="replace")[-4000:]

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                raise RuntimeError(
                    f"{self.server.key} exited with {code} before it was ready:\n{self.log_text()}"
                )
            try:
                status, body = get(self.port)
                if status == 200 and body == HELLO:
                    return
                last = (status, body[:80])
            except OSError as exc:
                last = exc
            time.sleep(0.05)
        raise RuntimeError(
            f"{self.server.key} not ready after {timeout} s (last: {last!r}):\n{self.log_text()}"
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
                try:
                    os.killpg(self.proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.proc.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        else:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)  # the leader is gone; its group may not be
        self.log_file.close()


def get(port: int) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", "/")
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


# -- load ----------------------------------------------------------------------------------

_LUA = """
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) ok = 0; bad = 0; expected = args[1] end
function response(status, headers, body)
  if status == 200 and body == expected then ok = ok + 1 else bad = bad + 1 end
end
function done(summary, latency, requests)
  local tok, tbad = 0, 0
  for _, t in ipairs(threads) do tok = tok + t:get("ok"); tbad = tbad + t:get("bad") end
  io.write(string.format("BENCH_CHECK ok=%d bad=%d\\n", tok, tbad))
  io.write(string.format("BENCH_LATENCY mean_us=%f p99_us=%f\\n", latency.mean, latency:percentile(99)))
end
"""


class Loader:
    def __init__(self, client: str, workdir: Path, wrk_threads: int) -> None:
        wrk = shutil.which("wrk")
        if client == "wrk" and wrk is None:
            raise RuntimeError("--client wrk, but wrk is not installed")
        self.kind = "wrk" if (client in ("auto", "wrk") and wrk is not None) else "python"
        self.wrk = wrk
        self.wrk_threads = wrk_threads
        self.script = workdir / "check.lua"
        self.script.write_text(_LUA)

    def describe(self) -> str:
        if self.kind == "wrk":
            return f"wrk -t{self.wrk_threads} -c{CONNECTIONS} (every response checked by a Lua script)"
        return f"benchmarks.loadgen, {CONNECTIONS} connections (every response checked)"

    def load(self, port: int, duration: float) -> dict[str, Any]:
        if self.kind == "wrk":
            return self._wrk(port, duration)
        return self._python(port, duration)

    def _wrk(self, port: int, duration: float) -> dict[str, Any]:
        assert self.wrk is not None
        argv = [
            self.wrk,
            f"-t{self.wrk_threads}",
            f"-c{CONNECTIONS}",
            f"-d{duration:g}s",
            "--timeout",
            "5s",
            "-s",
            str(self.script),
            f"http://127.0.0.1:{port}/",
            "--",
            HELLO.decode(),
        ]
        out = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 30, check=False).stdout
        found = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)\b", out)
        check = re.search(r"BENCH_CHECK ok=(\d+) bad=(\d+)", out)
        if found is None or check is None:
            raise RuntimeError(f"cannot read wrk's output:\n{out}")
        seconds = float(found.group(2)) * {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[found.group(3)]
        errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
        latency = re.search(r"BENCH_LATENCY mean_us=([\d.]+) p99_us=([\d.]+)", out)
        ok, bad = int(check.group(1)), int(check.group(2))
        return {
            "requests": int(found.group(1)),
            "ok": ok,
            "bad": bad,
            "errors": sum(int(g) for g in errors.groups()) if errors else 0,
            "seconds": seconds,
            "rps": ok / seconds,
            "latency_mean_ms": float(latency.group(1)) / 1e3 if latency else None,
            "latency_p99_ms": float(latency.group(2)) / 1e3 if latency else None,
        }

    def _python(self, port: int, duration: float) -> dict[str, Any]:
        argv = [
            sys.executable,
            "-m",
            "benchmarks.loadgen",
            "--port",
            str(port),
            "--connections",
            str(CONNECTIONS),
            "--duration",
            str(duration),
            "--expect-body",
            HELLO.decode(),
        ]
        done = subprocess.run(
            argv, capture_output=True, text=True, cwd=ROOT, timeout=duration + 60, check=True
        )
        result: dict[str, Any] = json.loads(done.stdout)
        return result


# -- the tier ------------------------------------------------------------------------------


def run(config: Config, wrk_threads: int = 1) -> list[ScenarioResult]:
    rows = [row for row in ROWS if matches(row.id, config.only)]
    if not rows:
        return []
    duration = config.duration or (1.0 if config.quick else 3.0)
    if shutil.which("wrk") and config.client != "python":
        duration = float(max(1, round(duration)))  # wrk takes whole seconds
    rounds = config.rounds_for(full=5, quick=2)
    servers: dict[str, Server] = {}
    for row in rows:
        for server in row.subjects.values():
            servers[server.key] = server
    keys = list(servers)
    workdir = Path(tempfile.mkdtemp(prefix="bridge-bench-"))
    loader = Loader(config.client, workdir, wrk_threads)
    log(f"  {len(keys)} servers; load: {loader.describe()}, {duration:g} s each, {rounds} rounds")
    processes: dict[str, Process] = {}
    failed: dict[str, str] = {}
    samples: dict[str, list[dict[str, Any]]] = {key: [] for key in keys}
    try:
        for key in keys:
            processes[key] = Process(servers[key], workdir)
        for key in keys:
            try:
                processes[key].wait_ready()
            except RuntimeError as exc:
                failed[key] = str(exc)
                log(f"  {key} failed to start:\n{exc}")
        live = [key for key in keys if key not in failed]
        for key in live:  # warm up: threads, caches, connections
            processes[key].wait_ready()
            loader.load(processes[key].port, 1.0)
        for r in range(rounds):
            shift = r % len(live) if live else 0
            for key in live[shift:] + live[:shift]:
                sample = loader.load(processes[key].port, duration)
                samples[key].append(sample)
                if sample["bad"] or sample["errors"]:
                    log(f"  {key}: {sample['bad']} bad responses, {sample['errors']} socket errors")
            log(f"  round {r + 1}/{rounds} done")
        for key in live:  # still alive and still answering right?
            if processes[key].proc.poll() is not None:
                failed[key] = f"exited with {processes[key].proc.returncode}:\n{processes[key].log_text()}"
    finally:
        for process in processes.values():
            process.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return [_row_result(row, samples, failed, rounds, duration, loader.describe()) for row in rows]


def _row_result(
    row: Row,
    samples: dict[str, list[dict[str, Any]]],
    failed: dict[str, str],
    rounds: int,
    duration: float,
    load: str,
) -> ScenarioResult:
    subjects: dict[str, SubjectResult] = {}
    native = samples.get(row.subjects["native"].key, [])
    for name, server in row.subjects.items():
        runs = samples.get(server.key, [])
        values = [s["rps"] for s in runs]
        result = SubjectResult(values=values, median=statistics.median(values) if values else float("nan"))
        if native and values:
            result.ratios = [v / s["rps"] for v, s in zip(values, native)]
            result.ratio = statistics.median(result.ratios)
        result.extra = {
            "server": server.label,
            "app": server.target,
            "samples": runs,
            "flawed_runs": sum(1 for s in runs if s["bad"] or s["errors"]),
        }
        if server.key in failed:
            result.extra["failed"] = failed[server.key]
        subjects[name] = result
    speedups: list[float] = []
    ours, theirs = samples.get(row.subjects["bridge"].key, []), samples.get(row.subjects["a2wsgi"].key, [])
    speedups = [a["rps"] / b["rps"] for a, b in zip(ours, theirs) if b["rps"]]
    floor = samples.get(row.subjects["baseline"].key, [])
    if ours and floor and "bridge" in subjects:
        # bridge against the one-hop floor on the same server, per round
        to_floor = [a["rps"] / b["rps"] for a, b in zip(ours, floor) if b["rps"]]
        subjects["bridge"].extra["vs_baseline"] = to_floor
        subjects["bridge"].extra["vs_baseline_median"] = statistics.median(to_floor) if to_floor else None
    native_server = row.subjects["native"]
    return ScenarioResult(
        id=row.id,
        tier="server",
        direction=row.direction,
        title=row.title,
        unit="req/s",
        better="higher",
        reference="native",
        rounds=rounds,
        per_round=f"{duration:g} s of load, {load}",
        subjects=subjects,
        speedup=statistics.median(speedups) if speedups else None,
        speedups=speedups,
        notes=[f"native: {native_server.target.split(':')[1]} on {native_server.label}"],
    )
