"""A request body the ASGI app never reads, on real WSGI servers (issue 15, item 4),
through ``unread_app``: a POST with a 2 MiB body (over ``preload_body``: it streams to
the app) that the app answers without reading, then a GET on the same kept-alive
connection.

gunicorn's gthread worker promises keep-alive, reads 64 KiB of such a body at most,
and closed the connection: the GET was lost. ``AsgiToWsgi`` now reads and discards the
rest after the response, so the GET is served, whatever the response's kind (whole,
streamed, a pathsend file). waitress reads every body before the app runs, and serves
the GET either way (checked once here, for a whole response). gunicorn's sync worker
and werkzeug answer ``Connection: close`` to every request: nothing to check.

One worker, two threads, so that a wedged thread shows. Every wait is bounded (the
socket's timeout); the servers stop at the end of the module, even on failure.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Iterator

import pytest

from .conftest import PACKAGE, Server, ServerSpec, module_server, parse_head, read_head
from .unread_app import FILE_BODY, MAX_BODY

pytestmark = pytest.mark.integration

APP = f"{PACKAGE}.unread_app:app"
SPECS = [
    ServerSpec("gunicorn-gthread", app=APP, workers=1, threads=2),
    ServerSpec("gunicorn-gthread", app=APP, workers=1, threads=2, backend="trio"),
    ServerSpec("waitress", app=APP, threads=2),
]
#: How long any one wait may take.
BOUND = 5.0
SIZE = 2 * 1024 * 1024


@pytest.fixture(scope="module", params=SPECS, ids=[spec.id for spec in SPECS])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from module_server(request, tmp_path_factory)


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One response, framed by Content-Length or chunked, from a kept-alive connection."""
    head, rest = read_head(sock)
    status, headers = parse_head(head)

    def more() -> bytes:
        data = sock.recv(65536)
        if not data:
            raise AssertionError(f"the connection closed inside a response: {head!r}")
        return data

    if headers.get("transfer-encoding") == "chunked":
        while not rest.endswith(b"0\r\n\r\n"):
            rest += more()
        chunks: list[bytes] = []
        data = rest
        while True:
            size_line, _, data = data.partition(b"\r\n")
            size = int(size_line, 16)
            if size == 0:
                return status, headers, b"".join(chunks)
            chunks.append(data[:size])
            data = data[size + 2 :]
    length = int(headers["content-length"])
    while len(rest) < length:
        rest += more()
    assert len(rest) == length, "bytes past the response"
    return status, headers, rest


def _post_and_next(server: Server, path: str, size: int) -> tuple[int, bytes]:
    """POST ``size`` bytes to ``path`` (sent from a thread: the answer may come first),
    then GET /next on the same connection, which must be served; the POST's answer."""
    sock = server.connect(timeout=BOUND)
    errors: list[OSError] = []

    def send_post() -> None:
        try:
            sock.sendall(
                f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {size}\r\n\r\n".encode()
                + b"b" * size
            )
        except OSError as exc:
            errors.append(exc)

    sender = threading.Thread(target=send_post, daemon=True)
    sender.start()
    try:
        status, headers, data = read_response(sock)
        assert headers.get("connection", "keep-alive").lower() != "close", headers  # promised
        sender.join(BOUND)
        assert not sender.is_alive(), "the server did not take the request body"
        assert not errors, errors
        sock.sendall(b"GET /next HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        next_status, _, next_data = read_response(sock)
        assert (next_status, next_data) == (200, b"GET /next")
        return status, data
    finally:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)  # wakes a sender still blocked on the socket
        sock.close()
        sender.join(BOUND)


def test_request_after_a_413_before_the_app_is_served(server: Server) -> None:
    """A declared body over max_body_size is answered 413 without the app, and then read
    and discarded (it is under the 4 MiB drain bound): gunicorn gthread, which promised
    keep-alive, lost the client's next request behind the unread body before."""
    status, data = _post_and_next(server, "/ignore", MAX_BODY + 512 * 1024)
    assert (status, data) == (413, b"Content Too Large\n")


@pytest.mark.parametrize(
    ("query", "expected"),
    [("", b"ignored"), ("?stream=1", b"ignored"), ("?file=1", FILE_BODY)],
    ids=["whole", "stream", "file"],
)
def test_request_after_an_unread_body_is_served(server: Server, query: str, expected: bytes) -> None:
    if server.spec.kind == "waitress" and query:
        pytest.skip("waitress reads the body before the app runs (and closes after a chunked response)")
    # The app answers before the body is in.
    assert _post_and_next(server, f"/ignore{query}", SIZE) == (200, expected)
