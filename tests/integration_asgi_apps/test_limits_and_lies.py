"""Limits and lies on real WSGI servers (issues 13 and 15), through ``limits_app``:

* ``max_body_size``: a declared body over it, and a chunked upload that grows past it,
  are answered ``413 Content Too Large``, and the server serves on;
* clients that leave mid-upload to an app that never answers: eight of them on a
  gunicorn gthread worker with two threads, then a health request, answered within a
  bound (before, each such request held a thread for good);
* an app whose body breaks its own Content-Length: the client gets the bytes within
  it and a closed connection at once, rather than waiting on a kept-alive connection
  for bytes that never come, or reading the surplus as the next response.

One worker and few threads, so that a wedged thread shows. Every wait is bounded.
"""

from __future__ import annotations

import time
import uuid
from typing import Iterator

import httpx
import pytest

from .conftest import (
    PACKAGE,
    Server,
    ServerSpec,
    module_server,
    parse_head,
    read_head,
    read_until_eof,
)
from .limits_app import GRACE, LIMIT

pytestmark = pytest.mark.integration

LIMITS_APP = f"{PACKAGE}.limits_app:app"
SPECS = [
    ServerSpec("gunicorn-gthread", app=LIMITS_APP, workers=1, threads=2),
    ServerSpec("waitress", app=LIMITS_APP, threads=2),
]
#: How long a client may wait for an answer here: a native ASGI server answers at once.
BOUND = 5.0


@pytest.fixture(scope="module", params=SPECS, ids=[spec.id for spec in SPECS])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from module_server(request, tmp_path_factory)


def health(server: Server) -> int:
    with server.client(timeout=BOUND) as client:
        response = client.get("/health")
    assert response.status_code == 200, response.text
    return int(response.json()["pid"])


def wait_log(server: Server, text: str) -> None:
    deadline = time.monotonic() + BOUND
    while text not in server.log():
        assert time.monotonic() < deadline, (
            f"{text!r} not in the log of {server.spec.id}:\n{server.log_tail()}"
        )
        time.sleep(0.05)


def test_declared_body_over_the_limit_is_413(server: Server) -> None:
    pid = health(server)
    token = uuid.uuid4().hex
    with server.client(timeout=BOUND) as client:
        response = client.post("/upload", params={"token": token}, content=b"x" * (2 * LIMIT))
    assert response.status_code == 413
    assert response.content == b"Content Too Large\n"
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert not server.has_marker(f"started-{token}")  # the app never ran
    wait_log(server, f"the request declares a {2 * LIMIT}-byte body, over max_body_size ({LIMIT} bytes)")
    assert health(server) == pid


def test_chunked_upload_over_the_limit_is_413(server: Server) -> None:
    pid = health(server)
    token = uuid.uuid4().hex

    def chunks() -> Iterator[bytes]:
        for _ in range(10):
            yield b"c" * (LIMIT // 4)

    with server.client(timeout=BOUND) as client:
        response = client.post("/upload", params={"token": token}, content=chunks())
    assert response.status_code == 413
    assert response.content == b"Content Too Large\n"
    if server.spec.kind == "waitress":
        # waitress reads a chunked body whole and hands it over with its CONTENT_LENGTH.
        assert not server.has_marker(f"started-{token}")
    else:
        record = server.wait_marker(f"ended-{token}", timeout=BOUND)
        assert record["last"] == "http.disconnect", record
        assert record["received"] <= LIMIT, record
        assert record["send_raised"] == "ClientDisconnected", record
        wait_log(server, f"the request body grew past max_body_size ({LIMIT} bytes) as it streamed in")
    assert health(server) == pid


def test_clients_leaving_mid_upload_do_not_wedge_the_threads(server: Server) -> None:
    if server.spec.kind == "waitress":
        pytest.skip(
            "waitress reads the whole body before the app runs: a client that leaves never reaches it"
        )
    pid = health(server)
    tokens = []
    for _ in range(8):  # four times the worker's threads
        token = uuid.uuid4().hex
        tokens.append(token)
        sock = server.connect(timeout=BOUND)
        try:
            sock.sendall(
                f"POST /upload?token={token}&never=1 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Content-Length: {LIMIT // 2}\r\n\r\n".encode()
                + b"u" * 1000
            )
            # The app is reading: the request holds a thread. (Without a free thread this
            # waits for one: the grace period of an earlier request, at most.)
            server.wait_marker(f"started-{token}", timeout=BOUND + GRACE)
        finally:
            sock.close()  # leaves mid-upload
    started = time.monotonic()
    assert health(server) == pid
    assert time.monotonic() - started < BOUND
    for token in tokens:
        record = server.wait_marker(f"ended-{token}", timeout=BOUND)
        assert record["last"] == "http.disconnect" and record["cancelled"], record
    wait_log(server, f"did not finish its response within disconnect_grace ({GRACE} s): cancelling its task")


def get_raw(server: Server, path: str) -> tuple[int, dict[str, str], bytes, float]:
    """GET on a kept-alive HTTP/1.1 connection; read until the server closes it."""
    sock = server.connect(timeout=BOUND)
    began = time.monotonic()
    try:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        head, rest = read_head(sock)
        status, headers = parse_head(head)
        body = rest + read_until_eof(sock)  # the socket's timeout bounds the wait
    finally:
        sock.close()
    return status, headers, body, time.monotonic() - began


def test_body_short_of_its_content_length_closes_the_connection(server: Server) -> None:
    pid = health(server)
    status, headers, body, elapsed = get_raw(server, "/short")
    assert (status, headers["content-length"], body) == (200, "1000", b"x" * 10)
    assert elapsed < BOUND
    with server.client(timeout=BOUND) as client, pytest.raises(httpx.RemoteProtocolError):
        client.get("/short")  # the client sees an incomplete body, at once
    wait_log(server, "the ASGI app declared Content-Length: 1000 and ended its body after 10 bytes")
    assert health(server) == pid


def test_body_past_its_content_length_is_cut(server: Server) -> None:
    pid = health(server)
    status, headers, body, elapsed = get_raw(server, "/long")
    assert (status, headers["content-length"], body) == (200, "5", b"hello")  # never " world"
    assert elapsed < BOUND
    wait_log(server, "the ASGI app declared Content-Length: 5 and sent at least 11 body bytes")
    assert health(server) == pid
