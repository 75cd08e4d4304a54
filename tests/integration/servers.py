"""Real servers for the integration tests: start, wait for readiness, stop.

Every server runs as a subprocess on 127.0.0.1 in its own process group, serving an
ASGI app from ``tests.integration.apps``. Readiness is polled with a deadline; the
finalizer kills the whole process group and waits, whether or not the tests passed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import httpx
import psutil
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

#: uvicorn speaks ASGI HTTP spec 2.3 (send() after a disconnect is silently ignored);
#: hypercorn 2.1, once on asyncio and once on trio, so both anyio backends are exercised.
SERVER_KINDS = ("uvicorn", "hypercorn-asyncio", "hypercorn-trio")

#: Timeout of every client call, in seconds. Generous: the machine may be loaded.
CLIENT_TIMEOUT = 15.0
#: How long a server may take to answer its health route after it was started.
STARTUP_DEADLINE = 30.0
#: How long a server may take to exit after its shutdown signal before it gets SIGKILL.
STOP_GRACE = 5.0

#: The signal that makes each server shut down gracefully (lifespan shutdown, then
#: exit). See server_command for hypercorn's trio worker.
STOP_SIGNALS = {"hypercorn-trio": signal.SIGINT}

_PORT_IN_USE = ("address already in use", "errno 98")


def free_port() -> int:
    """A port that was free a moment ago: bind port 0 on 127.0.0.1, read it, close."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A running server subprocess and what a test needs to talk to it."""

    kind: str
    app: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    root_path: str = ""
    stopped: bool = field(default=False)
    #: Set by stop(): whether the server ignored SIGTERM for STOP_GRACE seconds.
    needed_kill: bool = field(default=False)

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def pid(self) -> int:
        """The pid of the server command (for hypercorn-trio: its supervisor)."""
        return self.process.pid

    @property
    def app_pid(self) -> int:
        """The pid of the process that runs the app, for psutil measurements."""
        if self.kind != "hypercorn-trio":
            return self.pid
        for child in psutil.Process(self.pid).children():
            if any("spawn_main" in part for part in child.cmdline()):
                return int(child.pid)
        raise LookupError(f"no worker process under hypercorn (pid {self.pid})")

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def client(self, **kwargs: object) -> httpx.Client:
        kwargs.setdefault("timeout", CLIENT_TIMEOUT)
        return httpx.Client(base_url=self.base_url, **kwargs)  # type: ignore[arg-type]

    def async_client(self, **kwargs: object) -> httpx.AsyncClient:
        kwargs.setdefault("timeout", CLIENT_TIMEOUT)
        return httpx.AsyncClient(base_url=self.base_url, **kwargs)  # type: ignore[arg-type]

    def connect(self, timeout: float = CLIENT_TIMEOUT) -> socket.socket:
        """A raw TCP connection to the server, with a timeout on every operation."""
        sock = socket.create_connection((self.host, self.port), timeout=timeout)
        sock.settimeout(timeout)
        return sock

    def log(self) -> str:
        try:
            return self.log_path.read_text("utf-8", "replace")
        except OSError as exc:  # pragma: no cover - diagnostics only
            return f"<cannot read {self.log_path}: {exc}>"

    def log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except OSError:  # pragma: no cover
            return 0

    def log_since(self, offset: int) -> str:
        with open(self.log_path, "rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", "replace")

    def assert_alive(self) -> None:
        code = self.process.poll()
        if code is not None:
            pytest.fail(f"{self.kind} exited with code {code}; its log:\n{self.log()}")

    def stop(self) -> None:
        """Ask the server to shut down gracefully, SIGKILL its process group if it is
        still there after a grace period, and wait for it."""
        if self.stopped:
            return
        self.stopped = True
        _kill_group(self.process, STOP_SIGNALS.get(self.kind, signal.SIGTERM))
        try:
            self.process.wait(timeout=STOP_GRACE)
        except subprocess.TimeoutExpired:
            self.needed_kill = True
        # Whatever the server itself did, nothing of its group may outlive the test.
        _kill_group(self.process, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):  # a zombie we cannot reap
            self.process.wait(timeout=STOP_GRACE)


def _kill_group(process: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)  # start_new_session=True: the pgid is the pid


def server_command(kind: str, app: str, port: int, *, root_path: str = "", lifespan: str = "on") -> list[str]:
    if kind == "uvicorn":
        cmd = [
            sys.executable, "-m", "uvicorn", app,
            "--host", "127.0.0.1", "--port", str(port),
            "--http", "h11",
            "--ws", "wsproto",  # a real websocket implementation, so the handshake reaches the app
            "--lifespan", lifespan,
            "--timeout-graceful-shutdown", "2",
            "--log-level", "info",
        ]  # fmt: skip
        if root_path:
            cmd += ["--root-path", root_path]
        return cmd
    if kind.startswith("hypercorn-"):
        worker = kind.split("-", 1)[1]
        # asyncio: serve in this very process (--workers 0), which shuts down
        # gracefully on SIGTERM. trio: run in-process, hypercorn installs no SIGTERM
        # handler (it dies at once), and SIGINT raises KeyboardInterrupt wherever the
        # loop happens to be, even inside a request's send(). So trio runs in one
        # worker process under hypercorn's supervisor (--workers 1): the supervisor
        # turns SIGINT into a shutdown event the worker polls, a clean and
        # deterministic shutdown, and the worker itself ignores SIGINT.
        workers = "1" if worker == "trio" else "0"
        cmd = [
            sys.executable, "-m", "hypercorn",
            "--bind", f"127.0.0.1:{port}",
            "--worker-class", worker,
            "--workers", workers,
            "--graceful-timeout", "2",
            "--error-logfile", "-",
            "--access-logfile", "-",
        ]  # fmt: skip
        if root_path:
            cmd += ["--root-path", root_path]
        return [*cmd, app]
    raise ValueError(f"unknown server kind {kind!r}")


def launch(
    kind: str,
    app: str,
    log_dir: Path,
    *,
    root_path: str = "",
    lifespan: str = "on",
    env: dict[str, str] | None = None,
) -> Server:
    """Start a server subprocess in its own process group, without waiting for it.
    The caller must make sure that ``stop()`` runs."""
    child_env = dict(os.environ)
    child_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p
    )
    child_env["PYTHONUNBUFFERED"] = "1"
    if env:
        child_env.update(env)
    port = free_port()
    log_path = log_dir / f"{kind}-{port}.log"
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(
            server_command(kind, app, port, root_path=root_path, lifespan=lifespan),
            cwd=REPO_ROOT,
            env=child_env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Server(kind, app, port, process, log_path, root_path)


def start(
    kind: str,
    app: str,
    log_dir: Path,
    *,
    root_path: str = "",
    health: str = "/health",
    lifespan: str = "on",
    env: dict[str, str] | None = None,
) -> Server:
    """Start a server and wait until its health route answers 200."""
    last_log = ""
    for _attempt in range(3):
        server = launch(kind, app, log_dir, root_path=root_path, lifespan=lifespan, env=env)
        try:
            ready = _wait_ready(server, health)
        except BaseException:
            server.stop()
            raise
        if ready:
            return server
        server.stop()
        last_log = server.log()
        if not any(marker in last_log.lower() for marker in _PORT_IN_USE):
            break
        # Someone took the port between our probe and the server's bind: try another.
    pytest.fail(
        f"{kind} serving {app} did not become ready (health route {health!r}); its log:\n{last_log}",
        pytrace=False,
    )


def _wait_ready(server: Server, health: str) -> bool:
    """Poll the health route until it answers 200; False if the server died or the
    deadline passed."""
    deadline = time.monotonic() + STARTUP_DEADLINE
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                return False
            try:
                if client.get(server.url(health)).status_code == 200:
                    return True
            except httpx.TransportError:
                pass
            time.sleep(0.05)  # poll interval, not a wait for readiness
    return False


def serve(
    request: pytest.FixtureRequest,
    kind: str,
    app: str,
    *,
    root_path: str = "",
    health: str = "/health",
    lifespan: str = "on",
    env: dict[str, str] | None = None,
) -> Server:
    """Start a server for a fixture and register its teardown with the fixture."""
    log_dir = request.getfixturevalue("tmp_path_factory").mktemp(f"{kind}-logs")
    server = start(kind, app, log_dir, root_path=root_path, health=health, lifespan=lifespan, env=env)
    request.addfinalizer(server.stop)
    return server


def stop_and_check_log(srv: Server, forbidden: Sequence[str]) -> None:
    """Stop the server gracefully, so that everything it had to say is in its log,
    and fail if the log holds any of ``forbidden``: errors that no response could
    show, such as a traceback logged after a client went away. Call it from the
    last test of a module (the server fixture is then done for this server kind)."""
    srv.assert_alive()
    srv.stop()
    log = srv.log()
    found = [text for text in forbidden if text in log]
    assert not found, f"the {srv.kind} log contains {found!r}:\n{log[-20000:]}"
