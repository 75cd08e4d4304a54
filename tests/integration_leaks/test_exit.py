"""The lifespan shutdown runs on every server's normal exit, Ctrl+C (SIGINT) included
(issue 10, item 3).

The ASGI app (FastAPI through AsgiToWsgi) starts a non-daemon thread at startup and stops
it at shutdown, and its shutdown runs a step on asyncio's default executor: both need the
shutdown to run before the interpreter joins non-daemon threads and shuts the
``concurrent.futures`` pools, which it does before ``atexit``. werkzeug's ``run_simple``
swallows KeyboardInterrupt and returns, so a Ctrl+C there is a normal exit like any other.

Each case: start the server, two requests (one async route, one sync route, which runs in
a worker thread), the signal, then the process must exit by itself within the grace and
every process that ran the lifespan startup must have written its shutdown marker.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from .conftest import EXIT_APP, WSGI_SIDE, launch

pytestmark = pytest.mark.integration

SIGTERM, SIGINT = signal.SIGTERM, signal.SIGINT

CASES = [
    # werkzeug's run_simple from a script (SIGTERM turned into KeyboardInterrupt there).
    ("werkzeug", EXIT_APP, SIGINT),
    ("werkzeug", EXIT_APP, SIGTERM),
    ("werkzeug-single", EXIT_APP, SIGINT),
    ("werkzeug-single", EXIT_APP, SIGTERM),
    # waitress.serve from the same script; waitress-serve dies on SIGTERM (no handler).
    ("waitress", EXIT_APP, SIGINT),
    ("waitress", EXIT_APP, SIGTERM),
    ("waitress-serve", EXIT_APP, SIGINT),
    # gunicorn: SIGTERM is its graceful stop, SIGINT its quick one (workers get SIGQUIT).
    ("gunicorn-sync", EXIT_APP, SIGTERM),
    ("gunicorn-sync", EXIT_APP, SIGINT),
    ("gunicorn-gthread", EXIT_APP, SIGTERM),
    ("gunicorn-gthread", EXIT_APP, SIGINT),
    ("bridge-serve-werkzeug", EXIT_APP, SIGTERM),
    ("bridge-serve-werkzeug", EXIT_APP, SIGINT),
    ("bridge-serve-gunicorn", EXIT_APP, SIGTERM),
    ("bridge-serve-waitress", EXIT_APP, SIGINT),
    # The other direction: WsgiToAsgi's on_shutdown, run by the ASGI server's lifespan.
    ("uvicorn", WSGI_SIDE, SIGTERM),
    ("uvicorn", WSGI_SIDE, SIGINT),
    ("hypercorn", WSGI_SIDE, SIGTERM),
    ("hypercorn", WSGI_SIDE, SIGINT),
]


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("kind", "app", "sig"), CASES, ids=[f"{kind}-{signal.Signals(sig).name}" for kind, _, sig in CASES]
)
def test_lifespan_shutdown_runs_on_exit(tmp_path: Path, kind: str, app: str, sig: int) -> None:
    with launch(kind, app, tmp_path, stop_signal=sig) as server:
        with server.client() as client:
            for path in ("/", "/sync") if app == EXIT_APP else ("/small", "/small"):
                assert client.get(path).status_code == 200, server.log_tail()
        startups = server.lifecycle("startup")
        assert startups, f"no lifespan startup recorded:\n{server.log_tail()}"
        code = server.graceful_stop()  # AssertionError, with the log, if it had to be killed
    shutdowns = server.lifecycle("shutdown")
    assert set(shutdowns) == set(startups), (
        f"{kind} exited with {code} on {signal.Signals(sig).name}; lifespan startup in "
        f"{sorted(startups)}, shutdown in {sorted(shutdowns)}; log:\n{server.log_tail()}"
    )
    for marker in shutdowns.values():
        assert marker.get("thread_alive") in (None, False), marker
    assert "Traceback" not in server.log(), server.log_tail()
