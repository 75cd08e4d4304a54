"""``bridge serve --shutdown-timeout``: an open stream does not hold a shutdown forever.

Each server runs under ``bridge serve`` in a subprocess on 127.0.0.1 and serves an app
whose response never ends (``tests/cli_stream_apps.py``). A raw client opens the stream
and keeps it open; then SIGINT (as Ctrl+C sends it, to the whole process group) or SIGTERM
(as a process manager sends it) must end the command within the timeout plus a few
seconds, with a clean exit status, and an ASGI app's lifespan shutdown must have run.
A short request in flight at SIGTERM must still get its whole response. Every wait is
bounded; the servers are killed (SIGKILL to the group) if a test fails.
"""

from __future__ import annotations

import contextlib
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from tests.cli_stream_apps import SLOW_BODY
from tests.servers import ServerProcess, Shutdown, http_ready, logged, wait_ready, wait_until

pytestmark = pytest.mark.integration

#: The --shutdown-timeout the tests pass, in seconds: short, so that a run is quick.
TIMEOUT = 1.0
#: How much longer than TIMEOUT a server may take to exit: process teardown, the
#: lifespan shutdown, gunicorn's master reaping its worker (it kills one still alive
#: 5 s after the timeout), and a loaded machine.
SLACK = 6.0
STARTUP = 30.0
CLIENT_TIMEOUT = 15.0
#: A clean stop: exit 0, or death by the signal uvicorn re-raises after its shutdown.
CLEAN = (0, -signal.SIGTERM, -signal.SIGINT)
SERVING = r" at http://127\.0\.0\.1:(\d+) \(Ctrl\+C"

CASES = [
    ("uvicorn", "tests.cli_stream_apps:wsgi_endless"),
    ("hypercorn", "tests.cli_stream_apps:wsgi_endless"),
    ("hypercorn-trio", "tests.cli_stream_apps:wsgi_endless"),
    ("werkzeug", "tests.cli_stream_apps:asgi_endless"),
    ("waitress", "tests.cli_stream_apps:asgi_endless"),
    ("gunicorn", "tests.cli_stream_apps:asgi_endless"),
]


def _open_stream(server: ServerProcess) -> socket.socket:
    """A client reading ``/events``, returned once the first event arrived."""
    client = server.connect(CLIENT_TIMEOUT)
    client.sendall(b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    received = b""
    deadline = time.monotonic() + CLIENT_TIMEOUT
    while b"data: 0 " not in received:
        assert time.monotonic() < deadline, received
        chunk = client.recv(4096)
        assert chunk, f"the stream ended before its first event: {received!r}\n{server.log_tail()}"
        received += chunk
    return client


@contextlib.contextmanager
def _bridge_serve(
    tmp_path: Path, server_name: str, target: str, sig: signal.Signals, timeout: float
) -> Iterator[ServerProcess]:
    """``bridge serve`` on port 0, ready once the port it printed answers; stopped (its
    group killed after a grace) on the way out."""
    args = ["serve", target, "--server", server_name, "--shutdown-timeout", str(timeout)]
    shutdown = Shutdown(sig, group=True, grace=timeout + SLACK)
    printed = logged(SERVING)
    with ServerProcess.launch(
        "bridge-serve",
        lambda _port: [sys.executable, "-m", "bridge", *args, "--host", "127.0.0.1", "--port", "0"],
        tmp_path,
        port=0,
        shutdown=shutdown,
    ) as served:
        wait_ready(served, printed, STARTUP)
        address = re.search(SERVING, served.log())
        assert address, served.log()
        served.port = int(address.group(1))
        wait_ready(served, http_ready("/"), STARTUP)
        yield served


def _wait_exit(served: ServerProcess, within: float) -> tuple[int | None, float]:
    """Signal the server, wait up to ``within`` seconds: its status (None if still
    running) and the seconds it took."""
    begin = time.monotonic()
    served.terminate()
    try:
        status: int | None = served.process.wait(within)
    except subprocess.TimeoutExpired:
        status = None
    return status, time.monotonic() - begin


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize(("server_name", "target"), CASES, ids=[case[0] for case in CASES])
def test_an_open_stream_does_not_hold_the_shutdown(
    tmp_path: Path, server_name: str, target: str, sig: signal.Signals, request: pytest.FixtureRequest
) -> None:
    if server_name == "hypercorn" and sys.version_info >= (3, 13):
        # Found in .ci/run's newest job (Python 3.13): hypercorn on asyncio still ran 7 s
        # after the signal with an open stream (3.9 and 3.11 stop in time). Not yet
        # understood; not strict while it is not known to be deterministic.
        request.applymarker(
            pytest.mark.xfail(reason="Python 3.13: hypercorn under bridge serve outlives --shutdown-timeout")
        )
    with _bridge_serve(tmp_path, server_name, target, sig, TIMEOUT) as served:
        client = _open_stream(served)
        try:
            served.assert_alive()
            status, elapsed = _wait_exit(served, TIMEOUT + SLACK)
        finally:
            client.close()
        assert status is not None, (
            f"{server_name} still ran {TIMEOUT + SLACK} s after {sig.name}:\n{served.log_tail()}"
        )
        assert status in CLEAN, served.log_tail()
        assert elapsed < TIMEOUT + SLACK, served.log_tail()
        if not (server_name == "gunicorn" and sig == signal.SIGINT):
            # A graceful stop: the stream had its time. (SIGINT is gunicorn's quick
            # shutdown: its workers exit at once.)
            assert elapsed > TIMEOUT * 0.9, served.log_tail()
    log = served.log()
    if target.endswith("asgi_endless"):
        # The app's lifespan shutdown ran, in the process that served (gunicorn: the worker).
        assert re.search(r"^lifespan shutdown in \d+$", log, re.MULTILINE), served.log_tail()


@pytest.mark.parametrize(("server_name", "target"), CASES, ids=[case[0] for case in CASES])
def test_a_request_in_flight_is_answered(tmp_path: Path, server_name: str, target: str) -> None:
    """SIGTERM while a short request runs: the server waits for it, the client gets the
    whole response, and the command then exits at once (not after the timeout)."""
    timeout = 5.0
    with _bridge_serve(tmp_path, server_name, target, signal.SIGTERM, timeout) as served:
        outcome: dict[str, object] = {}

        def request() -> None:
            try:
                with served.client() as client:
                    outcome["response"] = client.get("/slow")
            except Exception as exc:  # reported below
                outcome["error"] = exc

        thread = threading.Thread(target=request, daemon=True)
        thread.start()
        try:
            wait_until(
                lambda: "slow request started" in served.log(),
                deadline=CLIENT_TIMEOUT,
                what="the request to reach the app",
            )
            status, elapsed = _wait_exit(served, timeout + SLACK)
        finally:
            thread.join(CLIENT_TIMEOUT)
        assert "error" not in outcome, f"{outcome['error']!r}\n{served.log_tail()}"
        response = outcome["response"]
        assert isinstance(response, httpx.Response), outcome
        assert (response.status_code, response.content) == (200, SLOW_BODY), served.log_tail()
        assert status in CLEAN, served.log_tail()
        assert elapsed < timeout, served.log_tail()
