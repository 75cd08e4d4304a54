"""Serve an example on a real server: ``python -m <args>`` with ``{port}`` filled in, through
``tests/servers.py`` (a subprocess on 127.0.0.1 in its own process group).

``launch()`` starts the command and waits until the port answers (an HTTP request, or a bare
TCP connect where no request may reach the app before the test's own). ``stop()`` sends the
stop signal to the server process, waits a grace period, then SIGKILLs the whole process
group (workers included) and reaps it. The ``serve`` fixture (conftest.py) stops every server
it started, whatever the outcome, and puts their logs into failure reports.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Protocol, Sequence

from tests.servers import REPO_ROOT, ServerProcess, Shutdown, http_ready, start, tcp_ready

#: Seconds a server gets to exit after its stop signal, before its group is killed.
STOP_GRACE = 10.0


class Serve(Protocol):
    """The ``serve`` fixture: ``launch()`` for this test, stopped after it."""

    def __call__(
        self, *args: str, cwd: Path = ..., ready: str | None = ..., stop_signal: int = ...
    ) -> ServerProcess: ...


def launch(
    args: Sequence[str],
    log_dir: Path,
    *,
    cwd: Path = REPO_ROOT,
    ready: str | None = "/",
    stop_signal: int = signal.SIGTERM,
) -> ServerProcess:
    """Run ``python -m <args>`` (``{port}`` in an argument becomes a free port) and wait
    until it answers ``GET ready`` with any status (``ready=None``: until it accepts a TCP
    connection). Fails the test, with the server's log, if it never does."""

    def command(port: int) -> list[str]:
        return [sys.executable, "-m", *(arg.format(port=port) for arg in args)]

    return start(
        lambda: ServerProcess.launch(
            args[0],
            command,
            log_dir,
            cwd=cwd,
            env={"PYTHONDONTWRITEBYTECODE": "1"},  # write nothing into the repository
            shutdown=Shutdown(stop_signal, grace=STOP_GRACE),
        ),
        ready=tcp_ready if ready is None else http_ready(ready, status=None),
    )
