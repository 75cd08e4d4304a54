"""Acceptance 7c and 7d: a client that leaves an endless stream.

uvicorn reports ASGI HTTP spec 2.3 and hypercorn 2.1: once the client is gone,
``send()`` quietly does nothing, so only ``http.disconnect`` from ``receive()`` can
tell the bridge to stop. The app (``apps/lifecycle.py``) records an explicit
``close()`` of its body; the test polls for it through another route.

The app runs with ``max_threads=2``, so a thread that is not given back after a
disconnect shows up as a server that stops answering.
"""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from contextlib import ExitStack

import pytest

from tests.servers import wait_until

from .helpers import CLOSE_WITHIN, drop, open_stream, status, wait_closed
from .rawhttp import read_until, request_bytes
from .servers import Server, stop_and_check_log

APP = "tests.integration_wsgi_apps.apps.lifecycle:asgi_two_threads"
# Leaving a stream is routine: the bridge must handle it without an error (and the
# app's body raises if it is iterated after close()).
FORBIDDEN_IN_LOG = ("Traceback", "Exception in ASGI application", "Error in ASGI Framework")

pytestmark = [pytest.mark.integration, pytest.mark.timeout(40)]


@pytest.mark.parametrize("how", ["fin", "rst"])
def test_dropped_stream_is_closed_quickly(server: Server, how: str) -> None:
    """7c: the client drops out of an endless stream; close() runs within 2 s."""
    token = uuid.uuid4().hex
    with server.client() as client:
        sock = open_stream(server, token)
        dropped_at = time.monotonic()
        drop(sock, how)
        # Poll well past the bound, so a failure reports the real figure.
        state, _ = wait_until(
            lambda: status(client, token),
            lambda state: state["closed"],
            deadline=15.0,
            interval=0.01,
            what=f"close() of stream {token}",
        )
        elapsed = time.monotonic() - dropped_at
        print(f"\n[7c] {server.kind} ({how}): close() {elapsed * 1000:.0f} ms after the client left")
        assert elapsed < CLOSE_WITHIN
        # No more chunks are pulled once it is closed.
        chunks = state["chunks"]
        assert status(client, token)["chunks"] == chunks
        # 7d, first half: the server goes on serving.
        assert client.get("/health").text == "ok"


def test_threads_of_dropped_streams_are_freed(server: Server) -> None:
    """7d: with max_threads=2, two dropped streams leave both threads free again."""
    with server.client() as client:
        first = [uuid.uuid4().hex, uuid.uuid4().hex]
        with ExitStack() as stack:
            socks = [stack.enter_context(open_stream(server, token)) for token in first]
            # Both threads are now busy streaming. Drop both clients, differently.
            drop(socks[0], "fin")
            drop(socks[1], "rst")
        for token in first:
            elapsed = wait_closed(client, token, deadline=15.0)
            print(f"\n[7d] {server.kind}: stream {token[:8]} closed, seen after {elapsed * 1000:.0f} ms")

        # A third request is served...
        assert client.get("/health").text == "ok"

        # ...and so are two new endless streams at once, which needs both threads.
        second = [uuid.uuid4().hex, uuid.uuid4().hex]
        with ExitStack() as stack:
            socks = [stack.enter_context(open_stream(server, token)) for token in second]
            for sock in socks:
                read_until(sock, b"tick 4\n")  # both really are streaming side by side
            for sock in socks:
                drop(sock, "fin")
        for token in second:
            wait_closed(client, token, deadline=15.0)
        assert client.get("/health").text == "ok"


def test_many_dropped_streams_in_a_row(server: Server) -> None:
    """Ten drops in a row on a two-thread pool: no thread leaks, nothing piles up."""
    with server.client() as client:
        for i in range(10):
            token = uuid.uuid4().hex
            drop(open_stream(server, token), "rst" if i % 2 else "fin")
            wait_closed(client, token, deadline=15.0)
        assert client.get("/health").text == "ok"


def test_pool_size_is_respected(server: Server) -> None:
    """max_threads=2: six requests that each hold a thread for 0.25 s need at least
    three rounds. (A lower bound, so no timing luck: it cannot come out faster.)"""

    async def run() -> tuple[float, list[int]]:
        async with server.async_client(timeout=30.0) as client:
            start = time.perf_counter()
            responses = await asyncio.gather(*(client.get("/sleep", params={"s": "0.25"}) for _ in range(6)))
            return time.perf_counter() - start, [r.status_code for r in responses]

    elapsed, statuses = asyncio.run(run())
    print(f"\n[pool] {server.kind}: 6 x sleep(0.25) on 2 threads in {elapsed:.3f} s")
    assert statuses == [200] * 6
    assert elapsed >= 0.75


def start_upload(server: Server, token: str, *, length: int, sent: int) -> socket.socket:
    """POST /upload?token=T announcing ``length`` bytes, of which only ``sent`` go out."""
    sock = server.connect()
    head = request_bytes(
        "POST",
        f"/upload?token={token}",
        host=f"127.0.0.1:{server.port}",
        headers=[("Content-Length", str(length))],
    )
    sock.sendall(head + b"u" * sent)
    return sock


@pytest.mark.parametrize("how", ["fin", "rst"])
def test_client_leaving_mid_upload_raises_oserror_in_the_app(server: Server, how: str) -> None:
    """The app reads a 32 MiB upload (past spool_body's 16 MiB: it streams); the client
    leaves after 1 MiB. wsgi.input.read() must raise an OSError (a truncated body must
    never look complete), and the thread is given back (two threads only)."""
    for _ in range(3):  # more rounds than threads: a leaked thread would show
        token = uuid.uuid4().hex
        sock = start_upload(server, token, length=32 * 1024 * 1024, sent=1024 * 1024)
        with server.client() as client:

            def outcome(token: str = token) -> str:
                result: str = client.get("/upload-status", params={"token": token}).json()["outcome"] or ""
                return result

            # Leave only once the app is reading the body.
            wait_until(
                outcome, lambda o: o.startswith("reading"), deadline=15.0, what=f"upload {token} to start"
            )
            drop(sock, how)
            state, _ = wait_until(
                outcome,
                lambda o: not o.startswith("reading"),
                deadline=15.0,
                what=f"the end of upload {token}",
            )
        assert state.startswith("ClientDisconnected after "), state
        assert int(state.split()[2]) <= 1024 * 1024
    with server.client() as client:
        assert client.get("/health").text == "ok"


@pytest.mark.parametrize("how", ["fin", "rst"])
def test_client_leaving_a_preloaded_upload_never_reaches_the_app(server: Server, how: str) -> None:
    """A body with a length up to preload_body (1 MiB) is read before the app gets a
    thread: a client that leaves halfway never reaches the app (which therefore never
    sees a truncated body) and holds no thread meanwhile (two threads only)."""
    tokens = [uuid.uuid4().hex for _ in range(3)]
    for token in tokens:
        sock = start_upload(server, token, length=512 * 1024, sent=128 * 1024)
        time.sleep(0.2)  # the server has the head and part of the body
        drop(sock, how)
    time.sleep(0.3)  # time for a wrongly started app to record its progress
    with server.client() as client:
        for token in tokens:
            assert client.get("/upload-status", params={"token": token}).json()["outcome"] is None
        assert client.get("/sleep", params={"s": "0"}).status_code == 200
        # The same route does run for a complete upload.
        done = client.post("/upload", content=b"u" * (512 * 1024))
        assert done.status_code == 200


def test_client_leaving_before_the_response_starts(server: Server) -> None:
    """Clients that leave while the app is still working: the response then goes
    nowhere, quietly, and the threads come back (checked by FORBIDDEN_IN_LOG and by
    the server still answering with two threads)."""
    for _ in range(4):
        sock = server.connect()
        sock.sendall(request_bytes("GET", "/sleep?s=0.3", host=f"127.0.0.1:{server.port}"))
        drop(sock, "fin")
    with server.client() as client:
        assert client.get("/health").text == "ok"
        assert client.get("/sleep", params={"s": "0"}).status_code == 200


def test_zz_server_log_is_clean(server: Server) -> None:
    """Last in this module, for each server: after a graceful stop, the log shows no
    error from any of the disconnects above."""
    stop_and_check_log(server, FORBIDDEN_IN_LOG)
