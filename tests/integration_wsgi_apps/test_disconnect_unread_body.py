"""A client leaves an endless stream whose request body the app never read.

Same as 7c (test_disconnect.py), but the app starts streaming without reading the
request body. The bridge must still notice the client leaving: on servers below
ASGI HTTP spec 2.4 (uvicorn 2.3, hypercorn 2.1) send() stays silent, so only
receive() can tell, and it has to be watched even though the body is unread.

The app runs with the default pool here, so a stream that is never closed costs one
of many threads and cannot starve the other tests of this module. Bodies are received
before the app runs by default (``spool_body``); ``test_disconnect_unread_streamed_body``
runs these tests on the same app with every body streamed, the path where the body still
arrives while the app runs, a chunked one included.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import uuid

import pytest

from tests.servers import wait_until

from .helpers import CLOSE_WITHIN, drop, status
from .rawhttp import read_until, request_bytes
from .servers import Server, stop_and_check_log

APP = "tests.integration_wsgi_apps.apps.lifecycle:asgi"
FORBIDDEN_IN_LOG = ("Exception in ASGI application", "Error in ASGI Framework")

pytestmark = [pytest.mark.integration, pytest.mark.timeout(40)]


def open_stream_with_body(server: Server, token: str, kind: str) -> socket.socket:
    """Start /endless with a request body the app never reads."""
    sock = server.connect()
    host = f"127.0.0.1:{server.port}"
    if kind == "unfinished-chunked":
        # The body never ends: the client is still "uploading" when it leaves.
        sock.sendall(
            request_bytes(
                "POST", f"/endless?token={token}", host=host, headers=[("Transfer-Encoding", "chunked")]
            )
            + b"5\r\nhello\r\n"
        )
    else:
        # A complete body, larger than any first http.request message, left unread: by
        # default received before the app runs (in memory, or spooled to a file); on
        # the streamed server it sits unread behind wsgi.input.
        body = b"x" * (256 * 1024 if kind == "unread-256KiB" else 2 * 1024 * 1024)
        head = request_bytes(
            "POST", f"/endless?token={token}", host=host, headers=[("Content-Length", str(len(body)))]
        )
        sender = threading.Thread(target=_send_quietly, args=(sock, head + body), daemon=True)
        sender.start()
    data = read_until(sock, b"tick 2\n")
    assert data.startswith(b"HTTP/1.1 200"), data[:200]
    return sock


def _send_quietly(sock: socket.socket, data: bytes) -> None:
    with contextlib.suppress(OSError):  # the test may drop the connection first: fine
        sock.sendall(data)


@pytest.mark.parametrize("body", ["unread-256KiB", "unread-2MiB"])
def test_dropped_stream_with_unread_request_body_is_closed(server: Server, body: str) -> None:
    """Like 7c, but the app streams without reading the request body. The bridge
    must still notice the client leaving (ASGI servers < 2.4 only say so through
    receive()), or the endless body runs, and holds its thread, forever."""
    check_dropped_stream_is_closed(server, body)


def check_dropped_stream_is_closed(server: Server, body: str) -> None:
    token = uuid.uuid4().hex
    with server.client() as client:
        sock = open_stream_with_body(server, token, body)
        dropped_at = time.monotonic()
        drop(sock, "fin")
        wait_until(
            lambda: status(client, token),
            lambda state: state["closed"],
            deadline=CLOSE_WITHIN + 3.0,
            interval=0.01,
            what=f"close() of stream {token}",
        )
        elapsed = time.monotonic() - dropped_at
        print(f"\n[7c+] {server.kind} ({body}): close() {elapsed * 1000:.0f} ms after the client left")
        assert elapsed < CLOSE_WITHIN
        assert client.get("/health").text == "ok"


def test_zz_server_log_is_clean(server: Server) -> None:
    """Last in this module, for each server: after a graceful stop, the log shows no
    error from any of the disconnects above."""
    stop_and_check_log(server, FORBIDDEN_IN_LOG)
