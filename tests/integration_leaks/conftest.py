"""Servers for the leak and exit layer: every kind's command line, on 127.0.0.1 and a free
port, in its own process group (the mechanics are ``tests/servers.py``).

- WsgiToAsgi (``wsgi_side:app``) on uvicorn and hypercorn (asyncio, in-process);
- AsgiToWsgi (``asgi_side:app``, or the FastAPI ``exit_app:app``) on gunicorn (sync and
  gthread, one worker), waitress and werkzeug (from a script, ``serve.py``, or their own
  command line) and ``bridge serve``.

The app processes write ``startup-<pid>`` and ``shutdown-<pid>`` markers into the directory
of ``LEAKS_MARKERS``; a test reads them after the server exited.
"""

from __future__ import annotations

import json
import re
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from tests.gunicorn_flags import GUNICORN_NO_CONTROL_SOCKET
from tests.servers import HOST, ServerProcess, Shutdown, http_ready, start

PACKAGE = "tests.integration_leaks"
WSGI_SIDE = f"{PACKAGE}.wsgi_side:app"
ASGI_SIDE = f"{PACKAGE}.asgi_side:app"
EXIT_APP = f"{PACKAGE}.exit_app:app"
#: How long a server may take to exit after its signal before the test calls it a hang (a
#: lifespan shutdown here takes milliseconds; before the fix of issue 10 item 3 the process
#: hung on the app's non-daemon thread). Above gunicorn's own --graceful-timeout below.
GRACE = 20.0
PY = sys.executable

#: WSGI apps on ASGI servers, and ASGI apps on WSGI servers.
WSGI_APP_SERVERS = ("uvicorn", "hypercorn")
ASGI_APP_SERVERS = ("gunicorn-sync", "gunicorn-gthread", "waitress", "werkzeug")


def command(kind: str, app: str) -> Callable[[int], list[str]]:
    """The command line that serves ``app`` with ``kind`` on 127.0.0.1:port."""

    def build(port: int) -> list[str]:
        if kind == "uvicorn":
            return [
                PY, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port),
                "--lifespan", "on", "--timeout-graceful-shutdown", "2", "--log-level", "warning",
            ]  # fmt: skip
        if kind == "hypercorn":
            return [
                PY, "-m", "hypercorn", "--bind", f"127.0.0.1:{port}", "--worker-class", "asyncio",
                "--workers", "0", "--graceful-timeout", "2", app,
            ]  # fmt: skip
        if kind.startswith("gunicorn-"):
            cmd = [
                PY, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "1",
                "--worker-class", kind.split("-", 1)[1], "--graceful-timeout", "10", "--timeout", "60",
                "--log-level", "warning", *GUNICORN_NO_CONTROL_SOCKET,
            ]  # fmt: skip
            if kind == "gunicorn-gthread":
                cmd += ["--threads", "4"]
            return [*cmd, app]
        if kind in ("werkzeug", "werkzeug-single", "waitress"):
            return [PY, "-m", f"{PACKAGE}.serve", kind, app, str(port)]
        if kind == "waitress-serve":
            return [PY, "-m", "waitress", f"--listen=127.0.0.1:{port}", "--threads=4", app]
        if kind.startswith("bridge-serve-"):
            server = kind.rsplit("-", 1)[1]
            return [PY, "-m", "bridge", "serve", app, "--server", server, "--host", HOST, "--port", "0"]
        raise ValueError(f"unknown server kind {kind!r}")

    return build


#: bridge serve binds port 0 and prints where it serves.
SERVING = r" at http://127\.0\.0\.1:(\d+) \(Ctrl\+C"


@dataclass
class Server(ServerProcess):
    kind: str
    markers: Path

    def lifecycle(self, phase: str) -> dict[int, dict[str, Any]]:
        """pid -> the ``startup`` or ``shutdown`` marker that process wrote."""
        return {
            int(path.name.split("-", 1)[1]): json.loads(path.read_text())
            for path in self.markers.glob(f"{phase}-*")
        }


def launch(kind: str, app: str, workdir: Path, stop_signal: int = signal.SIGTERM) -> Server:
    """Start ``kind`` serving ``app`` and wait until it answers (``/health``, or ``/`` for
    the FastAPI app); the caller stops it (``with launch(...) as server``)."""
    markers = workdir / f"markers-{kind}"
    markers.mkdir(parents=True, exist_ok=True)
    # To the server process only: gunicorn's arbiter stops its own worker.
    shutdown = Shutdown(stop_signal, group=False, grace=GRACE)
    answers = http_ready("/" if app == EXIT_APP else "/health")
    ready = answers
    if kind.startswith("bridge-serve-"):

        def ready(server: ServerProcess) -> bool:
            found = re.search(SERVING, server.log())
            if found is None:
                return False
            server.port = int(found.group(1))
            return answers(server)

    def begin() -> Server:
        return Server.launch(
            kind,
            command(kind, app),
            workdir,
            port=0 if kind.startswith("bridge-serve-") else None,
            env={"LEAKS_MARKERS": str(markers)},
            shutdown=shutdown,
            kind=kind,
            markers=markers,
        )

    return start(begin, ready=ready)
