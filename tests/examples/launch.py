"""Serve an example on a real server: a subprocess on 127.0.0.1 in its own process group.

``launch()`` starts the command and waits until the port answers (an HTTP request, or a bare
TCP connect where no request may reach the app before the test's own). ``Server.stop()``
sends the stop signal to the server process, waits a grace period, then SIGKILLs the whole
process group (workers included) and reaps it. The ``serve`` fixture (conftest.py) stops
every server it started, whatever the outcome, and puts their logs into failure reports.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Sequence

import httpx
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
#: Seconds for every client call, and for a server to start answering. Generous: the
#: machine may be busy with other test runs.
CLIENT_TIMEOUT = 15.0
STARTUP_DEADLINE = 30.0
#: Seconds a server gets to exit after its stop signal, before its group is killed.
STOP_GRACE = 10.0


def free_port() -> int:
    """A port that was free a moment ago: bind port 0 on 127.0.0.1, read it, close."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    command: list[str]
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    stop_signal: int = signal.SIGTERM
    #: Set by stop(): whether the server was still running after STOP_GRACE seconds.
    needed_kill: bool = False

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=CLIENT_TIMEOUT, **kwargs)  # type: ignore[arg-type]

    def log(self) -> str:
        try:
            return self.log_path.read_text("utf-8", "replace")
        except OSError as exc:  # pragma: no cover - diagnostics only
            return f"<cannot read {self.log_path}: {exc}>"

    def stop(self) -> int | None:
        """Stop gracefully if the server can, kill whatever is left; the exit code."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, self.stop_signal)
            try:
                self.process.wait(timeout=STOP_GRACE)
            except subprocess.TimeoutExpired:
                self.needed_kill = True
        # Nothing of the group (workers, orphans) may outlive the test.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)  # start_new_session: pgid == pid
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=STOP_GRACE)
        return self.process.returncode


class Serve(Protocol):
    """The ``serve`` fixture: ``launch()`` for this test, stopped after it."""

    def __call__(
        self, *args: str, cwd: Path = ..., ready: str | None = ..., stop_signal: int = ...
    ) -> Server: ...


def launch(
    args: Sequence[str],
    log_dir: Path,
    *,
    cwd: Path = REPO_ROOT,
    ready: str | None = "/",
    stop_signal: int = signal.SIGTERM,
) -> Server:
    """Run ``python -m <args>`` (``{port}`` in an argument becomes a free port) and wait
    until it answers ``GET ready`` with any status (``ready=None``: until it accepts a TCP
    connection). Fails the test, with the server's log, if it never does."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(REPO_ROOT), env.get("PYTHONPATH"))))
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # write nothing into the repository
    log = ""
    for _attempt in range(3):
        port = free_port()
        command = [sys.executable, "-m", *(arg.format(port=port) for arg in args)]
        log_path = log_dir / f"server-{port}.log"
        with open(log_path, "wb") as log_file:
            process = subprocess.Popen(
                command,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        server = Server(command, port, process, log_path, stop_signal)
        try:
            up = _wait_ready(server, ready)
        except BaseException:
            server.stop()
            raise
        if up:
            return server
        server.stop()
        log = server.log()
        if "address already in use" not in log.lower():
            break  # not a lost race for the port: a real failure
    pytest.fail(f"{' '.join(command)} did not start; its log:\n{log}", pytrace=False)


def _wait_ready(server: Server, ready: str | None) -> bool:
    deadline = time.monotonic() + STARTUP_DEADLINE
    while time.monotonic() < deadline and server.process.poll() is None:
        try:
            if ready is None:
                socket.create_connection(("127.0.0.1", server.port), timeout=2.0).close()
            else:
                httpx.get(server.base_url + ready, timeout=2.0)
        except (OSError, httpx.TransportError):
            time.sleep(0.05)  # poll interval
        else:
            return True
    return False
