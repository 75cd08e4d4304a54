"""Requests ending every way leave nothing behind in the server process.

One server per kind (module-scoped). A warm-up round of every scenario first (so that
pools, lazy imports and loggers exist), then a baseline from ``/stats``, the app's own view
of its process: threads, open file descriptors, live per-request objects. Then ROUNDS
rounds of every scenario, CONCURRENCY at a time, over raw sockets:

- complete: a small GET; an upload echoed back;
- the client leaves mid-upload: half the declared body, then close (FIN), or an RST;
- the client leaves mid-stream: the response head, then close, or an RST; or close, and
  the app fails when it notices;
- the app fails: before its response starts; in the middle of a stream.

Then, polling ``/stats`` with a deadline, the process must settle back: every stream's
``finally`` ran, no per-request object is alive after ``gc.collect()``, no more file
descriptors than at the baseline, no more threads than at the baseline outside thread
pools that grow on demand and keep their idle threads (gunicorn gthread's executor,
waitress's workers, bridge's WSGI workers, anyio's worker threads), and none of those
beyond its bound (see POOLS). And no
per-request object may have needed the cycle collector: something that holds it in a
reference cycle (an exception and its traceback) keeps it, and all it holds, alive until
a full collection. Finally the server is stopped (SIGTERM): it exits by itself, with the
lifespan shutdown run.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import socket
import time
from typing import Any, Callable, Iterator

import pytest

from tests.integration_asgi_apps.conftest import abort, read_head, read_until_eof

from .conftest import ASGI_APP_SERVERS, ASGI_SIDE, WSGI_APP_SERVERS, WSGI_SIDE, Server, launch

pytestmark = pytest.mark.integration

ROUNDS = 4
CONCURRENCY = 4
SETTLE_DEADLINE = 20.0
TIMEOUT = 15.0
#: Declared upload size; the client sends half of it. Above bridge's preload_body (1 MiB),
#: so the app is already reading the body when its client leaves.
UPLOAD = 4 * 1024 * 1024
#: Per server kind, routes whose objects the server itself holds in reference cycles: werkzeug
#: keeps every exception an app raises in a cycle (a plain WSGI app that raises, no bridge:
#: its per-request objects are freed only by gc.collect()), so an app error's objects there
#: wait for the cycle collector whatever the adapter does.
SERVER_CYCLES = {"werkzeug": {"/error-before", "/error-mid"}}
#: Thread pools that grow on demand and keep their idle threads, and their bounds (the
#: servers' configuration in conftest.py; wsgi_side's max_threads): gunicorn gthread's
#: executor, waitress's workers, bridge's WSGI workers. anyio's worker threads (idle ones
#: live 10 s) are bounded here by what the pool had at the baseline plus the requests in
#: flight. More threads than that, or any more threads outside pools, is a leak.
POOLS = {"ThreadPoolExecutor-": 4, "waitress-": 4, "bridge-wsgi-worker": 8, "AnyIO worker thread": None}


# -- the client side of each scenario ---------------------------------------------------------


def _connect(server: Server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)


def _get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()


def _post_head(length: int) -> bytes:
    return (
        f"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        f"Content-Type: application/octet-stream\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


def complete_small(server: Server) -> None:
    with _connect(server) as sock:
        sock.sendall(_get("/small"))
        response = read_until_eof(sock)
    assert response.startswith(b"HTTP/1.1 200") and response.endswith(b"ok"), response[:200]


def complete_upload(server: Server) -> None:
    body = b"u" * (256 * 1024)
    with _connect(server) as sock:
        sock.sendall(_post_head(len(body)) + body)
        response = read_until_eof(sock)
    assert response.startswith(b"HTTP/1.1 200") and response.endswith(body), response[:200]


def _half_upload(server: Server) -> socket.socket:
    sock = _connect(server)
    sock.sendall(_post_head(UPLOAD) + b"h" * (UPLOAD // 2))
    return sock


def upload_cut_fin(server: Server) -> None:
    with contextlib.suppress(OSError):  # the server may answer, or reset, before the end
        _half_upload(server).close()


def upload_cut_rst(server: Server) -> None:
    with contextlib.suppress(OSError):
        abort(_half_upload(server))


def _stream_head(server: Server, path: str = "/stream") -> socket.socket:
    sock = _connect(server)
    sock.sendall(_get(path))
    head, _ = read_head(sock)
    assert head.startswith(b"HTTP/1.1 200"), head
    return sock


def stream_cut_close(server: Server) -> None:
    _stream_head(server).close()


def stream_cut_rst(server: Server) -> None:
    abort(_stream_head(server))


def stream_cut_then_app_error(server: Server) -> None:
    """The app fails once it notices its client left (on the WSGI side; a plain stream on
    the other)."""
    _stream_head(server, "/stream-then-raise").close()


def error_before(server: Server) -> None:
    with _connect(server) as sock:
        sock.sendall(_get("/error-before"))
        response = read_until_eof(sock)
    assert response.startswith(b"HTTP/1.1 500") or response == b"", response[:200]


def error_mid_stream(server: Server) -> None:
    with _connect(server) as sock, contextlib.suppress(ConnectionResetError):
        sock.sendall(_get("/error-mid"))
        read_until_eof(sock)  # truncated: what matters is what stays in the server


SCENARIOS: list[Callable[[Server], None]] = [
    complete_small,
    complete_upload,
    upload_cut_fin,
    upload_cut_rst,
    stream_cut_close,
    stream_cut_rst,
    stream_cut_then_app_error,
    error_before,
    error_mid_stream,
]


def drive(server: Server, rounds: int) -> None:
    jobs = [scenario for _ in range(rounds) for scenario in SCENARIOS]
    with concurrent.futures.ThreadPoolExecutor(CONCURRENCY) as pool:
        for future in [pool.submit(job, server) for job in jobs]:
            future.result(timeout=60)


# -- the server side ----------------------------------------------------------------------


def stats(server: Server) -> dict[str, Any]:
    with server.client(headers={"connection": "close"}) as client:
        response = client.get("/stats")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def count_threads(snapshot: dict[str, Any]) -> dict[str, int]:
    """Threads per pool of POOLS, and "" for those outside pools."""
    counts = dict.fromkeys(["", *POOLS], 0)
    for name in snapshot["thread_names"]:
        pool = next((prefix for prefix in POOLS if name.startswith(prefix)), "")
        counts[pool] += 1
    return counts


def problems(now: dict[str, Any], base: dict[str, Any]) -> list[str]:
    found = []
    if now["stream_finally"] != now["stream_started"]:
        found.append(f"{now['stream_started'] - now['stream_finally']} streams never ran their finally")
    if now["live_after_gc"]:
        found.append(f"{now['live_after_gc']} per-request objects alive after gc.collect()")
    if now["fds"] > base["fds"]:
        found.append(f"{now['fds']} open fds, {base['fds']} at the baseline")
    counts, base_counts = count_threads(now), count_threads(base)
    if counts[""] > base_counts[""]:
        found.append(f"{counts['']} threads outside pools, {base_counts['']} at the baseline")
    for pool, bound in POOLS.items():
        limit = base_counts[pool] + CONCURRENCY if bound is None else bound
        if counts[pool] > limit:
            found.append(f"{counts[pool]} {pool!r} threads, at most {limit} expected")
    return found


def settle(server: Server, base: dict[str, Any]) -> dict[str, Any]:
    """Poll /stats until nothing is left over, or the deadline; the last snapshot."""
    deadline = time.monotonic() + SETTLE_DEADLINE
    while True:
        server.assert_alive()
        now = stats(server)
        if not problems(now, base) or time.monotonic() > deadline:
            return now
        time.sleep(0.1)


@pytest.fixture(scope="module", params=[*WSGI_APP_SERVERS, *ASGI_APP_SERVERS])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    kind: str = request.param
    app = WSGI_SIDE if kind in WSGI_APP_SERVERS else ASGI_SIDE
    with launch(kind, app, tmp_path_factory.mktemp(kind)) as running:
        yield running


@pytest.mark.timeout(120)
def test_requests_ending_every_way_leave_nothing_behind(server: Server) -> None:
    drive(server, 1)  # warm-up
    base = settle(server, stats(server))
    drive(server, ROUNDS)
    now = settle(server, base)
    report = (
        f"\n[{server.kind}] baseline: threads {base['thread_names']}, fds {base['fds']}"
        f"\n[{server.kind}] after {ROUNDS * len(SCENARIOS)} requests: threads {now['thread_names']}, "
        f"fds {now['fds']}, created {now['created']}, freed {now['finalized']}, "
        f"streams {now['stream_started']}/{now['stream_finally']}, alive {now['live_routes']}, "
        f"freed by the cycle collector: {now['freed_by_gc']}"
    )
    print(report)
    found = problems(now, base)
    assert not found, f"{server.kind}: {'; '.join(found)}{report}\n{server.log_tail(3000)}"
    assert now["created"] == now["finalized"] + now["live_after_gc"]
    held = set(now["freed_by_gc"]) - SERVER_CYCLES.get(server.kind, set())
    assert not held, (
        f"{server.kind}: per-request objects of {sorted(held)} were held in "
        f"reference cycles until the cycle collector ran{report}"
    )


def test_lifespan_shutdown_on_sigterm(server: Server) -> None:
    """Runs after the leak test of the same server (module order): stop it, and check."""
    startups = server.lifecycle("startup")
    server.graceful_stop()
    shutdowns = server.lifecycle("shutdown")
    assert startups and set(shutdowns) == set(startups), server.log_tail()
