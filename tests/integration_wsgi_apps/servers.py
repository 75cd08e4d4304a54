"""Real servers for the integration tests: which command runs each server kind, and how it
stops. The mechanics (process group, log, readiness, stop and kill) are ``tests/servers.py``.

Every server runs as a subprocess on 127.0.0.1 in its own process group, serving an
ASGI app from ``tests.integration_wsgi_apps.apps``. Readiness is polled with a deadline; the
finalizer kills the whole process group and waits, whether or not the tests passed.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Mapping, Sequence

import psutil
import pytest

from tests.servers import ServerProcess, Shutdown, http_ready, start

#: uvicorn speaks ASGI HTTP spec 2.3 (send() after a disconnect is silently ignored);
#: hypercorn 2.1, once on asyncio and once on trio, so both anyio backends are exercised.
SERVER_KINDS = ("uvicorn", "hypercorn-asyncio", "hypercorn-trio")

#: How each server shuts down gracefully (lifespan shutdown, then exit): the signal goes to
#: the whole process group. See server_command for hypercorn's trio worker.
SHUTDOWNS = {
    "uvicorn": Shutdown(signal.SIGTERM, group=True),
    "hypercorn-asyncio": Shutdown(signal.SIGTERM, group=True),
    "hypercorn-trio": Shutdown(signal.SIGINT, group=True),
    # Not in SERVER_KINDS: for the tests of what only it offers (the Path Send extension).
    "granian": Shutdown(signal.SIGTERM, group=True),
}


class Server(ServerProcess):
    """A running server of one of SERVER_KINDS (its ``name``)."""

    @property
    def kind(self) -> str:
        return self.name

    @property
    def app_pid(self) -> int:
        """The pid of the process that runs the app, for psutil measurements."""
        if self.kind != "hypercorn-trio":
            return self.pid
        for child in psutil.Process(self.pid).children():
            if any("spawn_main" in part for part in child.cmdline()):
                return int(child.pid)
        raise LookupError(f"no worker process under hypercorn (pid {self.pid})")


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
    if kind == "granian":
        return [
            sys.executable, "-m", "granian",
            "--interface", "asgi",
            "--host", "127.0.0.1", "--port", str(port),
            "--workers", "1",
            "--no-ws",
            "--log-level", "info",
            app,
        ]  # fmt: skip
    raise ValueError(f"unknown server kind {kind!r}")


def launch(
    kind: str,
    app: str,
    log_dir: Path,
    *,
    root_path: str = "",
    lifespan: str = "on",
    env: Mapping[str, str] | None = None,
) -> Server:
    """Start a server subprocess in its own process group, without waiting for it.
    The caller must make sure that ``stop()`` runs."""
    return Server.launch(
        kind,
        lambda port: server_command(kind, app, port, root_path=root_path, lifespan=lifespan),
        log_dir,
        env=env,
        shutdown=SHUTDOWNS[kind],
    )


def serve(
    request: pytest.FixtureRequest,
    kind: str,
    app: str,
    *,
    root_path: str = "",
    health: str = "/health",
    lifespan: str = "on",
    env: Mapping[str, str] | None = None,
) -> Server:
    """Start a server for a fixture, wait until its health route answers 200, and register
    its teardown with the fixture."""
    log_dir = request.getfixturevalue("tmp_path_factory").mktemp(f"{kind}-logs")
    server = start(
        lambda: launch(kind, app, log_dir, root_path=root_path, lifespan=lifespan, env=env),
        ready=http_ready(health),
    )
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
