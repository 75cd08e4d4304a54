"""Server tier: the hello app through each adapter on real servers, on 127.0.0.1.

* WSGI app (``server_apps.wsgi_hello``) through bridge and a2wsgi on uvicorn with h11 and
  with httptools (both on the asyncio loop) and on hypercorn with its asyncio and its
  trio worker (a2wsgi runs on asyncio only: not on trio).
* ASGI app (``server_apps.asgi_hello``) through bridge and a2wsgi on gunicorn gthread and
  on waitress.
* On every server, the ceiling: the same server serving a native hello of its own
  protocol (``asgi_hello`` on uvicorn and hypercorn, ``wsgi_hello`` on gunicorn and
  waitress), measured in the same rounds. An adapter's req/s as a share of it is what
  the adapter leaves of what that server can do.
* On every server, also the no-adapter baseline of the in-process tier (one executor hop,
  ``trio.to_thread`` on trio; one ``run_coroutine_threadsafe`` round trip): the floor of
  an adapter that hops once.

Each measurement is the load (32 connections, back to back) and then, on the same
server, a short run on one connection, one request at a time, for the p50 latency of
a request that waits for no other (with the Python client, in the same call).

gunicorn runs one worker with 8 threads, waitress 8 threads, hypercorn no worker
process (``--workers 0``), so every server is one process: the figures compare adapters,
not process counts. All servers start at once, each in its own process group on a port
no other of this run's servers got (a server that exits before it is ready, its port
taken meanwhile, is started once more on another), and are polled for readiness (status
and body) with a deadline; they are killed at the end whatever happens. Then the servers
are loaded in turn with ``harness.interleave``, in an order that rotates each round, with
``wrk`` (a Lua script checks every response's status and exact body) or, without wrk,
``benchmarks.loadgen`` in a subprocess (which checks every response too). A run with a
bad response or a socket error is flagged, and its req/s counts good responses only.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .harness import (
    Config,
    ScenarioResult,
    SubjectResult,
    interleave,
    log,
    matches,
    median_or_none,
    paired_ratios,
    versus,
)

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


def _hypercorn(worker: str) -> Callable[[str, int], list[str]]:
    def argv(target: str, port: int) -> list[str]:
        module, name = target.split(":")
        return [
            sys.executable,
            "-m",
            "hypercorn",
            "--bind",
            f"127.0.0.1:{port}",
            "--worker-class",
            worker,
            "--workers",
            "0",  # serve in this process: one process, as for the other servers
            "--log-level",
            "warning",
            f"asgi:{module}:app({name!r})",  # see server_apps.app
        ]

    return argv


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
    subjects: dict[str, Server]  # bridge, a2wsgi (not on trio), baseline, native
    notes: tuple[str, ...] = ()


_APPS = "benchmarks.server_apps:"


def _row(
    kind: str, server_id: str, label: str, argv: Callable[[str, int], list[str]], trio: bool = False
) -> Row:
    """One server's row: bridge, a2wsgi and the baseline on it, and its ceiling (the
    native hello of the server's own protocol); ``kind`` is "w2a" or "a2w"."""
    direction, native = ("WSGI to ASGI", "asgi_hello") if kind == "w2a" else ("ASGI to WSGI", "wsgi_hello")
    apps = {"bridge": f"{kind}_bridge", "a2wsgi": f"{kind}_a2wsgi", "baseline": f"{kind}_baseline"}
    notes = [f"ceiling: {native} on {label}"]
    if trio:
        del apps["a2wsgi"]  # its WSGIMiddleware calls asyncio's loop: it cannot run on trio
        apps["baseline"] += "_trio"
        notes.append("a2wsgi runs on asyncio only")
    apps["native"] = native
    subjects = {name: Server(f"{name}@{server_id}", label, _APPS + app, argv) for name, app in apps.items()}
    return Row(f"server.{kind}.{server_id}", direction, f"hello on {label}", subjects, tuple(notes))


ROWS = [
    _row("w2a", "uvicorn-h11", "uvicorn h11", _uvicorn("h11")),
    _row("w2a", "uvicorn-httptools", "uvicorn httptools", _uvicorn("httptools")),
    _row("w2a", "hypercorn-asyncio", "hypercorn (asyncio)", _hypercorn("asyncio")),
    _row("w2a", "hypercorn-trio", "hypercorn (trio)", _hypercorn("trio"), trio=True),
    _row("a2w", "gunicorn-gthread", "gunicorn gthread", _gunicorn),
    _row("a2w", "waitress", "waitress", _waitress),
]


# -- processes -----------------------------------------------------------------------------


_handed_out: set[int] = set()


def free_port() -> int:
    """A port free now and not handed out before in this run: the kernel may give a
    port just closed to the next ``bind(0)``, and then two servers started at once would
    race for it, the loser's readiness poll answered by the winner."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port: int = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port


class Process:
    def __init__(self, server: Server, logdir: Path, attempt: int = 1) -> None:
        self.server = server
        self.port = free_port()
        suffix = f"-{attempt}" if attempt > 1 else ""
        self.log_path = logdir / f"{server.key.replace('@', '-')}{suffix}.log"
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
  io.write(string.format("BENCH_LATENCY mean_us=%f p50_us=%f p99_us=%f\\n",
    latency.mean, latency:percentile(50), latency:percentile(99)))
end
"""


def flawed(sample: dict[str, Any]) -> bool:
    """A run (or its one-connection part) with a bad response or a socket error."""
    latency = sample.get("latency") or {}
    return bool(sample["bad"] or sample["errors"] or latency.get("bad") or latency.get("errors"))


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
        self.client: subprocess.Popen[str] | None = None  # benchmarks.loadgen --serve

    def seconds(self, wanted: float) -> float:
        """``wanted`` seconds of load as this client can run it: wrk takes whole seconds."""
        return float(max(1, round(wanted))) if self.kind == "wrk" else wanted

    def describe(self) -> str:
        if self.kind == "wrk":
            return f"wrk -t{self.wrk_threads} -c{CONNECTIONS} (every response checked by a Lua script)"
        return f"benchmarks.loadgen, {CONNECTIONS} connections (every response checked)"

    def load(self, port: int, duration: float, latency: float = 0.0) -> dict[str, Any]:
        """``duration`` seconds on ``CONNECTIONS`` connections, then (``latency`` > 0) that
        many on one; the second run's figures under "latency"."""
        if self.kind == "python":
            return self._python(port, duration, latency)
        sample = self._wrk(port, duration, self.wrk_threads, CONNECTIONS)
        if latency > 0:
            sample["latency"] = self._wrk(port, latency, 1, 1)
        return sample

    def _wrk(self, port: int, duration: float, threads: int, connections: int) -> dict[str, Any]:
        assert self.wrk is not None
        argv = [
            self.wrk,
            f"-t{threads}",
            f"-c{connections}",
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
        latency = re.search(r"BENCH_LATENCY mean_us=([\d.]+) p50_us=([\d.]+) p99_us=([\d.]+)", out)
        ok, bad = int(check.group(1)), int(check.group(2))
        return {
            "requests": int(found.group(1)),
            "ok": ok,
            "bad": bad,
            "errors": sum(int(g) for g in errors.groups()) if errors else 0,
            "seconds": seconds,
            "rps": ok / seconds,
            "latency_mean_ms": float(latency.group(1)) / 1e3 if latency else None,
            "latency_p50_ms": float(latency.group(2)) / 1e3 if latency else None,
            "latency_p99_ms": float(latency.group(3)) / 1e3 if latency else None,
        }

    def _python(self, port: int, duration: float, latency: float) -> dict[str, Any]:
        # One client process for the whole tier, a load per line: a process per load
        # cost 0.2 s to start, 15 s of a quick run's minute. A process of its own still:
        # the client needs a core's worth of CPU, not this process's GIL.
        if self.client is None or self.client.poll() is not None:
            argv = [sys.executable, "-m", "benchmarks.loadgen", "--serve", "--connections", str(CONNECTIONS)]
            argv += ["--expect-body", HELLO.decode()]
            self.client = subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT
            )
        assert self.client.stdin is not None and self.client.stdout is not None
        self.client.stdin.write(
            json.dumps({"port": port, "duration": duration, "latency_duration": latency}) + "\n"
        )
        self.client.stdin.flush()
        answered, _, _ = select.select([self.client.stdout], [], [], duration + latency + 60)
        line = self.client.stdout.readline() if answered else ""
        if not line:
            self.close()
            raise RuntimeError(f"the load client gave no answer for port {port}")
        result: dict[str, Any] = json.loads(line)
        return result

    def close(self) -> None:
        if self.client is not None:
            with contextlib.suppress(OSError):
                self.client.stdin.close()  # type: ignore[union-attr]
            try:
                self.client.wait(5)
            except subprocess.TimeoutExpired:
                self.client.kill()
                self.client.wait()
            self.client = None


# -- the tier ------------------------------------------------------------------------------


def _start(servers: dict[str, Server], workdir: Path) -> tuple[dict[str, Process], dict[str, str]]:
    """Start every server at once and wait for each; one more try, on another port, for
    one that exits before it is ready (another program on this machine may have taken
    its port meanwhile). Returns the processes (to stop, whatever happens) and why the
    ones that never got ready did not."""
    processes = {key: Process(server, workdir) for key, server in servers.items()}
    failed: dict[str, str] = {}
    for key, server in servers.items():
        for attempt in (1, 2):
            try:
                processes[key].wait_ready()
                failed.pop(key, None)
                break
            except RuntimeError as exc:
                failed[key] = str(exc)
                log(f"  {key} failed to start (attempt {attempt}):\n{exc}")
                if attempt == 2 or processes[key].proc.poll() is None:
                    break  # alive but not answering right: another try would not help
                processes[key].stop()
                processes[key] = Process(server, workdir, attempt + 1)
    return processes, failed


def run(config: Config, wrk_threads: int = 1) -> list[ScenarioResult]:
    rows = [row for row in ROWS if matches(row.id, config.only)]
    if not rows:
        return []
    servers: dict[str, Server] = {}
    for row in rows:
        for server in row.subjects.values():
            servers[server.key] = server
    workdir = Path(tempfile.mkdtemp(prefix="bridge-bench-"))
    loader = Loader(config.client, workdir, wrk_threads)
    # Two seconds of load (three before hypercorn and the ceilings tripled the servers)
    # keep a full run near five minutes; quick is a smoke test of every row.
    duration = loader.seconds(config.duration or (0.4 if config.quick else 2.0))
    latency = loader.seconds(0.15 if config.quick else 0.4)
    warm = loader.seconds(0.2 if config.quick else 1.0)
    rounds = config.rounds_for(full=5, quick=2)
    log(
        f"  {len(servers)} servers; load: {loader.describe()}, {duration:g} s each, then "
        f"{latency:g} s on one connection; {rounds} rounds"
    )
    samples: dict[str, list[dict[str, Any]]] = {key: [] for key in servers}
    measured: dict[str, SubjectResult] = {}
    processes: dict[str, Process] = {}
    try:
        started = time.perf_counter()
        processes, failed = _start(servers, workdir)
        log(
            f"  {len(servers) - len(failed)} of {len(servers)} ready in {time.perf_counter() - started:.1f} s"
        )
        live = [key for key in servers if key not in failed]
        if not live:
            raise RuntimeError("no server started")

        def measure(key: str) -> float:
            sample = loader.load(processes[key].port, duration, latency)
            samples[key].append(sample)
            if flawed(sample):
                log(f"  {key}: bad responses or socket errors: {json.dumps(sample)[:300]}")
            rps: float = sample["rps"]
            return rps

        measured, _ = interleave(
            live,
            measure,
            rounds,
            reference=None,  # each row's own ceiling: see _row_result
            better="higher",
            warmup=lambda key: loader.load(processes[key].port, warm),  # threads, caches
            after_round=lambda r: log(f"  round {r + 1}/{rounds} done"),
        )
        for key in live:  # still alive at the end?
            if processes[key].proc.poll() is not None:
                failed[key] = f"exited with {processes[key].proc.returncode}:\n{processes[key].log_text()}"
    finally:
        loader.close()
        for process in processes.values():
            process.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    per_round = (
        f"{duration:g} s of load, {loader.describe()}; then {latency:g} s on one connection, "
        "one request at a time"
    )
    return [_row_result(row, measured, samples, failed, rounds, per_round) for row in rows]


def _row_result(
    row: Row,
    measured: dict[str, SubjectResult],
    samples: dict[str, list[dict[str, Any]]],
    failed: dict[str, str],
    rounds: int,
    per_round: str,
) -> ScenarioResult:
    subjects: dict[str, SubjectResult] = {}
    for name, server in row.subjects.items():
        result = measured.get(server.key) or SubjectResult(values=[], median=float("nan"))
        runs = samples.get(server.key, [])
        result.extra.update(
            server=server.label,
            app=server.target,
            samples=runs,
            flawed_runs=sum(1 for s in runs if flawed(s)),
        )
        if server.key in failed:
            result.extra["failed"] = failed[server.key]
        found = [(s.get("latency") or {}).get("latency_p50_ms") for s in runs]
        p50 = [float(v) for v in found if v is not None]
        if result.values and len(p50) == len(runs):  # a figure in every round, to pair by round
            result.extra["p50_ms"] = p50
            result.extra["p50_ms_median"] = median_or_none(p50)
        subjects[name] = result
    # Per round, then the median, as everywhere: the share of the ceiling (``ratio``),
    # the p50 against the ceiling's, the speed-up over a2wsgi, bridge against the floor.
    native = subjects["native"]
    for result in subjects.values():
        if result.values and native.values:
            result.ratios = paired_ratios(result.values, native.values)
            result.ratio = median_or_none(result.ratios)
        if "p50_ms" in result.extra and "p50_ms" in native.extra:
            to_native = paired_ratios(result.extra["p50_ms"], native.extra["p50_ms"])
            result.extra["p50_vs_native"] = to_native
            result.extra["p50_vs_native_median"] = median_or_none(to_native)
    versus(subjects, "bridge", "baseline")
    bridge, a2wsgi = subjects["bridge"], subjects.get("a2wsgi")
    speedups = paired_ratios(bridge.values, a2wsgi.values) if a2wsgi is not None else []
    return ScenarioResult(
        id=row.id,
        tier="server",
        direction=row.direction,
        title=row.title,
        unit="req/s",
        better="higher",
        reference="native",
        rounds=rounds,
        per_round=per_round,
        subjects=subjects,
        speedup=median_or_none(speedups),
        speedups=speedups,
        notes=list(row.notes),
    )
