"""Real WSGI servers running ASGI apps through ``AsgiToWsgi``: the command line of each server
kind, and the markers the app processes write. The mechanics (free port, process group, log,
readiness with a deadline, stop and kill) are ``tests/servers.py``.

Every server is a subprocess bound to 127.0.0.1 on a free port, in its own process group,
with cwd at the repository root so ``tests.integration_asgi_apps.<module>:app`` imports.
Readiness is polled with a deadline (an HTTP health route, or a TCP connect where no
request may reach the app before the test's own). Teardown sends SIGTERM, so the lifespan
shutdown runs and can be checked, then kills the process group and waits, whatever the
outcome of the tests.
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, TypeVar, cast

import pytest

from tests.gunicorn_flags import GUNICORN_NO_CONTROL_SOCKET
from tests.servers import (
    ServerProcess,
    Shutdown,
    http_ready,
    start,
    tcp_ready,
    wait_until,
)

PACKAGE = "tests.integration_asgi_apps"
FASTAPI_APP = f"{PACKAGE}.fastapi_app:app"
STARLETTE_APP = f"{PACKAGE}.starlette_app:app"

#: SIGTERM to the server process (a supervisor such as gunicorn's arbiter stops its own
#: workers), and how long it may take to exit before its process group is killed.
SHUTDOWN = Shutdown(grace=15.0)
#: gunicorn's own limit for a graceful stop (below the grace of SHUTDOWN).
GUNICORN_GRACEFUL = 8

BACKENDS = ("asyncio", "trio")

T = TypeVar("T")


def wait_for(check: Callable[[], Optional[T]], *, timeout: float, what: str, interval: float = 0.02) -> T:
    """Poll ``check`` until it returns something truthy, or fail after ``timeout`` s."""
    # Truthy, so not None.
    return cast(T, wait_until(check, deadline=timeout, interval=interval, what=what)[0])


@dataclass(frozen=True)
class ServerSpec:
    """What to run. ``kind``: gunicorn-sync, gunicorn-gthread, waitress or werkzeug."""

    kind: str
    app: str = FASTAPI_APP
    backend: str = "asyncio"
    workers: int = 2
    threads: int = 4
    preload: bool = False
    ready: str = "http"  # "http": GET /health answers 200; "tcp": the port accepts
    graceful_timeout: int = GUNICORN_GRACEFUL

    @property
    def id(self) -> str:
        parts = [self.kind]
        if self.kind.startswith("gunicorn"):
            parts.append(f"w{self.workers}")
            if self.kind == "gunicorn-gthread":
                parts.append(f"t{self.threads}")
            if self.preload:
                parts.append("preload")
        elif self.kind == "waitress":
            parts.append(f"t{self.threads}")
        parts.append(self.backend)
        return "-".join(parts)

    @property
    def is_gunicorn(self) -> bool:
        return self.kind.startswith("gunicorn")

    def command(self, port: int) -> list[str]:
        if self.is_gunicorn:
            cmd = [
                sys.executable, "-m", "gunicorn",
                "--bind", f"127.0.0.1:{port}",
                "--workers", str(self.workers),
                "--worker-class", self.kind.split("-", 1)[1],
                "--graceful-timeout", str(self.graceful_timeout),
                "--timeout", "60",
                "--log-level", "info",
                *GUNICORN_NO_CONTROL_SOCKET,
            ]  # fmt: skip
            if self.kind == "gunicorn-gthread":
                cmd += ["--threads", str(self.threads)]
            if self.preload:
                cmd.append("--preload")
            return [*cmd, self.app]
        if self.kind in ("waitress", "werkzeug"):
            return [
                sys.executable,
                "-m",
                f"{PACKAGE}.serve",
                self.kind,
                self.app,
                str(port),
                str(self.threads),
            ]
        raise ValueError(f"unknown server kind {self.kind!r}")


@dataclass
class Server(ServerProcess):
    """A server of a ServerSpec, and the directory its app processes write markers to."""

    spec: ServerSpec
    markers: Path

    # -- markers written by the app processes ----------------------------------------------

    def marker(self, name: str) -> Path:
        return self.markers / name

    def has_marker(self, name: str) -> bool:
        return (self.markers / name).exists()

    def read_marker(self, name: str) -> Any:
        return json.loads((self.markers / name).read_text())

    def wait_marker(self, name: str, timeout: float = 10.0) -> Any:
        wait_for(lambda: self.has_marker(name), timeout=timeout, what=f"marker {name!r} from {self.spec.id}")
        return self.read_marker(name)

    def lifecycle(self, phase: str) -> dict[int, list[dict[str, Any]]]:
        """pid -> the ``startup``/``shutdown`` events recorded by that process."""
        events: dict[int, list[dict[str, Any]]] = {}
        for path in self.markers.glob(f"{phase}-*"):
            pid = int(path.name.split("-", 1)[1])
            events[pid] = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        return events

    def touch_marker(self, name: str) -> None:
        self.marker(name).write_text("{}")


def start_server(spec: ServerSpec, workdir: Path) -> Server:
    """Start a server and wait until it is ready; fail with its log if it is not.
    ``with start_server(...) as server:`` stops it at the end of the block."""
    markers_dir = workdir / "markers"
    markers_dir.mkdir(parents=True, exist_ok=True)
    env = {"BRIDGE_TEST_BACKEND": spec.backend, "BRIDGE_TEST_MARKERS": str(markers_dir)}
    return start(
        lambda: Server.launch(
            spec.id, spec.command, workdir, env=env, shutdown=SHUTDOWN, spec=spec, markers=markers_dir
        ),
        ready=tcp_ready if spec.ready == "tcp" else http_ready("/health"),
    )


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Callable[[ServerSpec], Server]]:
    """Start servers for one test; every one is stopped (and its group killed) at the end."""
    servers: list[Server] = []

    def start(spec: ServerSpec) -> Server:
        server = start_server(spec, tmp_path / f"{spec.id}-{len(servers)}")
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def module_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """Body of the module-scoped server fixtures: ``request.param`` is a ServerSpec."""
    spec: ServerSpec = request.param
    with start_server(spec, tmp_path_factory.mktemp(spec.id)) as server:
        yield server
    check_clean_exit(server)


def check_clean_exit(server: Server) -> None:
    """After stop(): exit code 0, and a lifespan shutdown in every process that started one."""
    startups, shutdowns = server.lifecycle("startup"), server.lifecycle("shutdown")
    if server.returncode != 0 or set(startups) != set(shutdowns):
        pytest.fail(
            f"{server.spec.id} did not stop cleanly on SIGTERM: exit code {server.returncode}, "
            f"lifespan startup in {sorted(startups)}, shutdown in {sorted(shutdowns)}; "
            f"log:\n{server.log_tail()}"
        )


# -- raw HTTP over a socket: abrupt disconnects, chunked uploads, exact HEAD framing ---------


def read_until_eof(sock: socket.socket, limit: int = 64 * 1024 * 1024) -> bytes:
    """Read until the server closes (the socket's timeout bounds every wait)."""
    chunks: list[bytes] = []
    total = 0
    while True:
        data = sock.recv(65536)
        if not data:
            return b"".join(chunks)
        chunks.append(data)
        total += len(data)
        if total > limit:
            raise AssertionError(f"more than {limit} bytes without EOF")


def read_head(sock: socket.socket) -> tuple[bytes, bytes]:
    """Read up to the end of the response headers; returns (head, bytes read past it)."""
    buffer = b""
    while b"\r\n\r\n" not in buffer:
        data = sock.recv(65536)
        if not data:
            raise AssertionError(f"connection closed inside the response head: {buffer!r}")
        buffer += data
    head, _, rest = buffer.partition(b"\r\n\r\n")
    return head, rest


def parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers


def dechunk(body: bytes) -> bytes:
    out: list[bytes] = []
    while True:
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            return b"".join(out)
        out.append(body[:size])
        body = body[size + 2 :]


def abort(sock: socket.socket) -> None:
    """Close with a TCP RST rather than a FIN: the abrupt way a client can vanish."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
