"""Flask and Django async views on the server's own event loop, ``max_body_size`` (413),
``environ["bridge.client_disconnected"]`` and slow uploads that hold no thread
(``spool_body``), on uvicorn and hypercorn (asyncio).

The app (``apps/async_views.py``) is an ASGI app mounting Flask and Django through
``WsgiToAsgi``; its lifespan startup makes an event on the server's loop. On trio
there is no asyncio loop for asgiref to use: ``tests/test_w2a_features.py`` shows what
happens there.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
import zlib
from typing import Iterator

import httpx
import pytest

from tests.servers import wait_until

from .helpers import wait_for_log
from .rawhttp import ResponseReader, request_bytes
from .servers import Server, serve

APP = "tests.integration_wsgi_apps.apps.async_views:app"
LIMIT = 1000  # the Flask app's max_body_size

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


@pytest.fixture(scope="module", params=["uvicorn", "hypercorn-asyncio"])
def server(request: pytest.FixtureRequest) -> Server:
    return serve(request, request.param, APP)


@pytest.mark.parametrize("framework", ["flask", "django"])
def test_async_views_run_on_the_servers_loop(server: Server, framework: str) -> None:
    with server.client() as client:
        response = client.get(f"/{framework}/loop")
    assert response.status_code == 200, response.text
    seen = response.json()
    assert seen["same_loop"] is True
    assert seen["loop_thread"] == "MainThread"  # both servers run their loop there
    if framework == "django":
        # Thread-sensitive sync_to_async came back to the bridge's worker thread.
        assert seen["sync_thread"].startswith("bridge-wsgi-worker")


def test_async_views_wait_for_what_the_servers_loop_does(server: Server) -> None:
    """Both views wait on an event made at startup; an ASGI route sets it."""
    results: dict[str, httpx.Response | BaseException] = {}

    def call(framework: str) -> None:
        try:
            with server.client() as client:
                results[framework] = client.get(f"/{framework}/wait")
        except BaseException as exc:
            results[framework] = exc

    with server.client() as client:
        assert client.get("/asgi/reset").text == "reset"
        waiting = [threading.Thread(target=call, args=(name,)) for name in ("flask", "django")]
        for thread in waiting:
            thread.start()
        # Set too early, the event would not test the wait; too late is harmless.
        threading.Event().wait(0.3)
        assert client.get("/asgi/set").text == "set"
    for thread in waiting:
        thread.join(10)
    for framework in ("flask", "django"):
        response = results[framework]
        assert isinstance(response, httpx.Response), response
        assert (response.status_code, response.text) == (200, "woken")


def test_an_async_views_error_is_the_apps_500(server: Server) -> None:
    mark = server.log_size()
    with server.client() as client:
        response = client.get("/flask/boom")
    assert response.status_code == 500
    wait_for_log(server, mark, "LookupError: raised in a Flask async view")


def test_a_body_within_max_body_size_reaches_the_app(server: Server) -> None:
    with server.client() as client:
        response = client.post("/flask/upload", content=b"x" * LIMIT)
    assert (response.status_code, response.text) == (200, f"read {LIMIT} bytes")


def test_a_declared_body_over_max_body_size_is_answered_413(server: Server) -> None:
    mark = server.log_size()
    with server.client() as client:
        response = client.post("/flask/upload", content=b"x" * (LIMIT + 1))
    assert response.status_code == 413
    assert response.text == "Content Too Large\n"
    wait_for_log(server, mark, f"a declared body of {LIMIT + 1} bytes, max_body_size is {LIMIT}")


def test_a_streamed_body_over_max_body_size_is_answered_413(server: Server) -> None:
    def chunks() -> Iterator[bytes]:  # no Content-Length: chunked
        for _ in range(3):
            yield b"y" * 400

    mark = server.log_size()
    with server.client() as client:
        response = client.post("/flask/upload", content=chunks())
    # Flask answered its own 500 to the error reading the body; the client gets 413.
    assert response.status_code == 413
    assert response.text == "Content Too Large\n"
    wait_for_log(server, mark, f"the body passed max_body_size ({LIMIT} bytes)")


def test_a_long_poll_learns_that_its_client_left(server: Server) -> None:
    token = uuid.uuid4().hex
    with server.client() as client, pytest.raises(httpx.ReadTimeout):
        client.get("/flask/poll", params={"token": token}, timeout=0.5)
    # The connection is closed: the app's probe says so while it polls.
    with server.client() as client:
        outcome, _ = wait_until(
            lambda: client.get("/flask/poll-result", params={"token": token}).text,
            lambda text: text != "polling",
            deadline=4.0,
            what="the long poll to end",
        )
    assert outcome == "stopped: the client left"


def test_slow_uploads_hold_no_thread(server: Server) -> None:
    """Twice as many clients as the pool has threads each send the start of a 2 MiB
    upload and stall: the bodies are received (spooled) before the app gets a thread,
    so the pool stays free and a small request is answered at once. Streamed to the app
    instead, each stalled upload would hold a thread, and the small request would wait
    until the uploads end."""
    size, threads = 2 * 1024 * 1024, 4  # apps/async_views.py: POOL_THREADS
    head = request_bytes(
        "POST", "/pool/upload", host=f"127.0.0.1:{server.port}", headers=[("Content-Length", str(size))]
    )
    uploads: list[socket.socket] = []
    try:
        for _ in range(2 * threads):
            sock = server.connect()
            sock.sendall(head + b"u" * (64 * 1024))
            uploads.append(sock)
        with server.client() as client:
            started = time.monotonic()
            response = client.get("/pool/hello", timeout=3.0)
            elapsed = time.monotonic() - started
        assert (response.status_code, response.text) == (200, "hello")
        print(
            f"\n[spool] {server.kind}: a small request took {elapsed * 1000:.0f} ms"
            f" beside {len(uploads)} stalled uploads"
        )
        # The uploads then end, and each app reads its whole body (from the spool file).
        for sock in uploads:
            sock.sendall(b"u" * (size - 64 * 1024))
        for sock in uploads:
            sock.settimeout(10.0)
            answer = ResponseReader(sock).read("POST")
            assert (answer.status, answer.body) == (200, f"read {size} bytes".encode())
    finally:
        for sock in uploads:
            sock.close()


def test_stalled_uploads_past_max_body_memory_are_held_on_files(server: Server) -> None:
    """Six clients each send the first 128 KiB of a 512 KiB upload and stall: bridge
    receives the bodies before the app runs, but holds at most ``max_body_memory``
    (256 KiB here) of them in memory over all requests; the rest go to temporary files.
    So at most two bodies' starts fit in memory before every further chunk spills, and
    each app still reads its whole body, byte for byte. Without the total budget (as
    before it), every body stayed in memory: six of six."""
    size, first, clients = 512 * 1024, 128 * 1024, 6
    head = request_bytes(
        "POST", "/budget/upload", host=f"127.0.0.1:{server.port}", headers=[("Content-Length", str(size))]
    )
    bodies = [bytes([65 + n]) * size for n in range(clients)]
    uploads: list[socket.socket] = []
    try:
        for body in bodies:
            sock = server.connect()
            sock.sendall(head + body[:first])
            uploads.append(sock)
        for sock, body in zip(uploads, bodies):
            sock.sendall(body[first:])
        answers = []
        for sock in uploads:
            sock.settimeout(10.0)
            answer = ResponseReader(sock).read("POST")
            assert answer.status == 200, answer.body
            answers.append(answer.body.decode())
    finally:
        for sock in uploads:
            sock.close()
    expected = [f"{size} {zlib.crc32(body):08x}" for body in bodies]
    assert [answer.rsplit(" ", 1)[0] for answer in answers] == expected
    on_files = sum(answer.endswith(" file") for answer in answers)
    print(f"\n[budget] {server.kind}: {on_files} of {clients} bodies on files")
    assert on_files >= clients - 2, answers


def test_an_error_page_with_exc_info_keeps_the_connection(server: Server) -> None:
    """PEP 3333 re-raises exc_info only once headers were sent. An app's own error page
    sent whole before that is a complete response: the server keeps the connection, and
    the next request on it is served (raised to uvicorn, the error closed it)."""
    mark = server.log_size()
    with server.connect() as sock:
        sock.settimeout(10.0)
        reader = ResponseReader(sock)
        for _ in range(2):
            sock.sendall(request_bytes("GET", "/raw/", host=f"127.0.0.1:{server.port}"))
            answer = reader.read()
            assert (answer.status, answer.body) == (500, b"the app's error page")
            assert answer.header("connection") != "close"
    log = wait_for_log(server, mark, "answered an error with its own error page")
    assert "LookupError: handled by the app's own error page" in log
