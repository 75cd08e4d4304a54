"""Real servers for tests: start a command in its own process group, wait until it is ready,
stop it with a grace period, kill what is left.

Every harness that runs a server subprocess builds on this module (``tests/integration_wsgi_apps``,
``tests/integration_asgi_apps``, ``tests/examples``, ``tests/integration_cli``,
``tests/matrix``); each keeps only its own command lines and helpers.

- :func:`free_port`: bind port 0 on 127.0.0.1, read the port, close;
- :meth:`ServerProcess.launch`: run a command with cwd at the repository root (so ``tests.…``
  modules import), stdout and stderr in a log file, in a new session (its own process group);
  a subclass passes its own fields through;
- :func:`wait_ready`: poll a readiness check (:func:`http_ready`, :func:`tcp_ready`,
  :func:`logged`, or any ``Callable[[ServerProcess], bool]``) with a deadline, never a fixed
  sleep;
- :meth:`ServerProcess.stop`: the stop signal of the server's :class:`Shutdown` (to the server,
  or to its whole group), ``grace`` seconds to exit, then SIGKILL to the whole group and a
  wait, safe to call twice; the exit status;
- :func:`wait_until`: the same polling for what a test waits for once the server runs;
- :func:`start`: launch and wait, with a retry when another process took the port between
  :func:`free_port` and the server's bind. A server is a context manager that stops it.

Nothing here depends on pytest: a server that does not come up raises :class:`ServerNotReady`
(an ``AssertionError``, so pytest reports it as a failure) with the server's log.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Callable, Mapping, Sequence, TypeVar

import httpx

from tests.gunicorn_flags import GUNICORN_NO_CONTROL_SOCKET  # noqa: F401 - the harness exports it

REPO_ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"

#: Timeout of every client call, in seconds: generous, the machine may be loaded.
CLIENT_TIMEOUT = 15.0
#: How long a server may take to become ready after it was started.
STARTUP_DEADLINE = 30.0
#: How long a server may take to exit after its stop signal before its group gets SIGKILL.
STOP_GRACE = 5.0
#: Pause between two readiness probes (a poll interval, not a wait for readiness).
POLL_INTERVAL = 0.05

_PORT_IN_USE = ("address already in use", "errno 98", "address in use")

#: Builds the command line for a port: ``lambda port: [..., "--port", str(port)]``.
CommandFactory = Callable[[int], Sequence[str]]
ReadyCheck = Callable[["ServerProcess"], bool]
S = TypeVar("S", bound="ServerProcess")
T = TypeVar("T")


class ServerNotReady(AssertionError):
    """The server exited or missed its deadline before it was ready. The message holds
    the end of its log."""


@dataclass(frozen=True)
class Shutdown:
    """How a kind of server stops gracefully: ``stop_signal`` to the server process, or to its
    whole process group if ``group`` (by default not to its workers, which a supervisor such
    as gunicorn's arbiter or hypercorn's stops in order), then ``grace`` seconds to exit."""

    stop_signal: int = signal.SIGTERM
    group: bool = False
    grace: float = STOP_GRACE


def free_port() -> int:
    """A port that was free a moment ago: bind port 0 on 127.0.0.1, read it, close."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment, with the repository root on PYTHONPATH, unbuffered
    output (so the log is complete when a test reads it), and ``extra`` on top."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    if extra:
        env.update(extra)
    return env


@dataclass
class ServerProcess:
    """A server subprocess (the leader of its own process group) and its log.

    A subclass may add fields (without defaults): :meth:`launch` passes them through."""

    name: str
    command: list[str]
    #: The port it listens on at 127.0.0.1 (a test sets it when the server chose its own).
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    shutdown: Shutdown
    #: The unix socket it listens on instead, if any.
    uds: str | None
    #: Set by stop(): the exit code after the stop signal, None if it had to be killed.
    returncode: int | None = field(default=None, init=False)
    #: Set by stop(): whether the server ignored its stop signal for the whole grace period.
    needed_kill: bool = field(default=False, init=False)
    stopped: bool = field(default=False, init=False)
    #: Whether the stop signal was sent (it is sent once).
    signalled: bool = field(default=False, init=False)

    @classmethod
    def launch(
        cls: type[S],
        name: str,
        command: CommandFactory,
        log_dir: Path,
        *,
        port: int | None = None,
        env: Mapping[str, str] | None = None,
        cwd: Path = REPO_ROOT,
        shutdown: Shutdown | None = None,
        uds: str | None = None,
        **fields: Any,
    ) -> S:
        """Start ``command(port)`` (port: a free one unless given) in a new process group
        without waiting for it; stdout and stderr go to ``<log_dir>/<name>-<port>.log``.
        The caller must make sure ``stop()`` runs."""
        if port is None:
            port = free_port()
        argv = [str(part) for part in command(port)]
        log_dir.mkdir(parents=True, exist_ok=True)
        log_path = log_dir / f"{name}-{port}.log"
        with open(log_path, "wb") as log_file:
            process = subprocess.Popen(
                argv,
                cwd=cwd,
                env=child_env(env),
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return cls(name, argv, port, process, log_path, shutdown or Shutdown(), uds, **fields)

    @property
    def host(self) -> str:
        return HOST

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def base_url(self) -> str:
        return "http://localhost" if self.uds else f"http://{HOST}:{self.port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def alive(self) -> bool:
        return self.process.poll() is None

    def assert_alive(self) -> None:
        code = self.process.poll()
        if code is not None:
            raise AssertionError(f"{self.name} exited with code {code}; its log:\n{self.log_tail()}")

    # -- talking to it ----------------------------------------------------------------------

    def client(self, **kwargs: Any) -> httpx.Client:
        """An HTTP client for the server (over its unix socket if it has one)."""
        kwargs.setdefault("timeout", CLIENT_TIMEOUT)
        if self.uds:
            kwargs.setdefault("transport", httpx.HTTPTransport(uds=self.uds))
        return httpx.Client(base_url=self.base_url, **kwargs)

    def async_client(self, **kwargs: Any) -> httpx.AsyncClient:
        kwargs.setdefault("timeout", CLIENT_TIMEOUT)
        if self.uds:
            kwargs.setdefault("transport", httpx.AsyncHTTPTransport(uds=self.uds))
        return httpx.AsyncClient(base_url=self.base_url, **kwargs)

    def connect(self, timeout: float = CLIENT_TIMEOUT) -> socket.socket:
        """A raw TCP connection to the server, with a timeout on every operation."""
        return socket.create_connection((HOST, self.port), timeout=timeout)

    # -- the log ----------------------------------------------------------------------------

    def log(self) -> str:
        try:
            return self.log_path.read_text("utf-8", "replace")
        except OSError as exc:  # pragma: no cover - diagnostics only
            return f"<cannot read {self.log_path}: {exc}>"

    def log_tail(self, chars: int = 8000) -> str:
        text = self.log()
        return text if len(text) <= chars else "[...]\n" + text[-chars:]

    def log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except OSError:  # pragma: no cover
            return 0

    def log_since(self, offset: int) -> str:
        """What the server logged after ``log_size()`` returned ``offset``."""
        with open(self.log_path, "rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", "replace")

    # -- stopping ---------------------------------------------------------------------------

    def send_group(self, sig: int) -> None:
        """Send ``sig`` to the server's whole process group (workers included)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, sig)  # start_new_session=True: the pgid is the pid

    def terminate(self) -> None:
        """Send the stop signal, once (a second one may mean "hurry up" to some servers)."""
        if self.signalled:
            return
        self.signalled = True
        if self.shutdown.group:
            self.send_group(self.shutdown.stop_signal)
        else:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(self.shutdown.stop_signal)

    def stop(self) -> int | None:
        """Send the stop signal (unless :meth:`terminate` did), wait up to the grace period,
        then SIGKILL the process group, so that nothing the server started outlives it.
        Returns the exit code after the stop signal, None if it had to be killed."""
        if self.stopped:
            return self.returncode
        self.stopped = True
        if self.process.poll() is None:
            self.terminate()
            try:
                self.returncode = self.process.wait(self.shutdown.grace)
            except subprocess.TimeoutExpired:
                self.needed_kill = True
        else:
            self.returncode = self.process.returncode
        self.send_group(signal.SIGKILL)  # workers that outlived their supervisor, if any
        with contextlib.suppress(subprocess.TimeoutExpired):  # a zombie we cannot reap
            self.process.wait(self.shutdown.grace)
        return self.returncode

    def graceful_stop(self) -> int:
        """:meth:`stop`, and the exit status; AssertionError, with the log, if the server
        ignored its stop signal for the whole grace period and had to be killed."""
        code = self.stop()
        if code is None:
            sig = signal.Signals(self.shutdown.stop_signal).name
            raise AssertionError(f"{self.name} ignored {sig} for {self.shutdown.grace} s:\n{self.log_tail()}")
        return code

    def __enter__(self: S) -> S:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def http_ready(path: str = "/", *, status: int | None = 200, timeout: float = 2.0) -> ReadyCheck:
    """Ready when ``GET path`` answers ``status`` (any HTTP response if ``status`` is None)."""

    def check(server: ServerProcess) -> bool:
        try:
            with server.client(timeout=timeout) as client:
                response = client.get(path)
        except httpx.HTTPError:
            return False
        return status is None or response.status_code == status

    return check


def tcp_ready(server: ServerProcess) -> bool:
    """Ready when the port accepts a connection (no request reaches the app)."""
    try:
        with socket.create_connection((HOST, server.port), timeout=1.0):
            return True
    except OSError:
        return False


def logged(pattern: str) -> ReadyCheck:
    """Ready when the server logged a line that matches ``pattern`` (a regular expression),
    such as the address it chose itself."""
    compiled = re.compile(pattern, re.MULTILINE)
    return lambda server: compiled.search(server.log()) is not None


def port_in_use(log: str) -> bool:
    lowered = log.lower()
    return any(marker in lowered for marker in _PORT_IN_USE)


def wait_until(
    fetch: Callable[[], T],
    accept: Callable[[T], object] = bool,
    *,
    deadline: float,
    interval: float = 0.02,
    what: str = "condition",
) -> tuple[T, float]:
    """Call ``fetch`` until ``accept`` takes its value, or ``deadline`` seconds pass.
    Returns the value and the seconds it took; AssertionError on timeout."""
    begin = time.monotonic()
    while True:
        value = fetch()
        elapsed = time.monotonic() - begin
        if accept(value):
            return value, elapsed
        if elapsed > deadline:
            raise AssertionError(f"timed out after {elapsed:.2f} s waiting for {what}")
        time.sleep(interval)


def wait_ready(server: ServerProcess, ready: ReadyCheck, deadline: float = STARTUP_DEADLINE) -> None:
    """Poll ``ready`` until it is true. Raise ServerNotReady, with the log, if the server
    exits first or ``deadline`` seconds pass; the server is left for the caller to stop."""
    until = time.monotonic() + deadline
    while True:
        if server.process.poll() is not None:
            raise ServerNotReady(
                f"{server.name} exited with code {server.process.returncode} before it was ready; "
                f"command: {' '.join(server.command)}\nits log:\n{server.log_tail()}"
            )
        if ready(server):
            return
        if time.monotonic() > until:
            raise ServerNotReady(
                f"{server.name} was not ready within {deadline} s; "
                f"command: {' '.join(server.command)}\nits log:\n{server.log_tail()}"
            )
        time.sleep(POLL_INTERVAL)


def start(
    launch: Callable[[], S],
    *,
    ready: ReadyCheck = tcp_ready,
    deadline: float = STARTUP_DEADLINE,
    attempts: int = 3,
) -> S:
    """``launch()`` a server (``lambda: ServerProcess.launch(...)``) and wait until it is
    ready. If it died because someone took its port in the meantime, launch it again (on
    another free port). On failure the server is stopped (group killed) and ServerNotReady
    raised. ``with start(...) as server:`` stops it at the end of the block."""
    for attempt in range(1, attempts + 1):
        server = launch()
        try:
            wait_ready(server, ready, deadline)
        except ServerNotReady:
            server.stop()
            if attempt < attempts and port_in_use(server.log()):
                continue
            raise
        except BaseException:
            server.stop()
            raise
        return server
    raise AssertionError("unreachable")  # pragma: no cover
