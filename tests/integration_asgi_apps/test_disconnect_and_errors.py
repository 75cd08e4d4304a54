"""Clients that leave, and apps that fail, on servers with one worker (so an app task or
a WSGI thread that hung would show: the next request would not be served).

* A client that drops out of an endless StreamingResponse: the server notices when a
  write fails and closes the bridge's iterable; the app must then see http.disconnect
  (or a failing send) and its task must end, within 2 s.
* An exception in an endpoint before the response: a 500, logged, and the server serves on.
* A request body shorter than its Content-Length (the client gives up): no hang.
"""

from __future__ import annotations

import time
import uuid
from typing import Iterator

import pytest

from .conftest import (
    BACKENDS,
    Server,
    ServerSpec,
    abort,
    module_server,
    parse_head,
    read_head,
    read_until_eof,
    wait_for,
)

pytestmark = pytest.mark.integration

KINDS = [
    ServerSpec("gunicorn-sync", workers=1),
    ServerSpec("gunicorn-gthread", workers=1, threads=4),
    ServerSpec("waitress", threads=2),
    ServerSpec("werkzeug"),
]
SPECS = [ServerSpec(**{**spec.__dict__, "backend": backend}) for spec in KINDS for backend in BACKENDS]

#: What the brief promises for a client that left an endless stream.
DISCONNECT_BOUND = 2.0

#: How each server reports an exception that reached it (in its log).
SERVER_ERROR_LOG = {
    "gunicorn-sync": "Error handling request",
    "gunicorn-gthread": "Error handling request",
    "waitress": "Exception while serving /raw-boom",
    "werkzeug": "Error on request",
}


@pytest.fixture(scope="module", params=SPECS, ids=[spec.id for spec in SPECS])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from module_server(request, tmp_path_factory)


def _health_pid(server: Server) -> int:
    with server.client() as client:
        response = client.get("/health")
    assert response.status_code == 200, response.text
    return int(response.json()["pid"])


@pytest.mark.parametrize("how", ["rst", "fin"])
def test_client_leaving_an_endless_stream_ends_the_app_task(server: Server, how: str) -> None:
    pid = _health_pid(server)
    token = uuid.uuid4().hex
    sock = server.connect()
    try:
        sock.sendall(f"GET /stream/endless?token={token} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        head, body = read_head(sock)
        status, _ = parse_head(head)
        assert status == 200
        while len(body) < 64 * 1024:  # the stream is flowing
            data = sock.recv(65536)
            assert data, "the server closed the stream"
            body += data
        assert server.has_marker(f"started-{token}")
        assert not server.has_marker(f"ended-{token}")
        left_at = time.time()
        left_monotonic = time.monotonic()
    finally:
        if how == "rst":
            abort(sock)
        else:
            sock.close()

    record = server.wait_marker(f"ended-{token}", timeout=15)
    polled = time.monotonic() - left_monotonic
    ended_after = record["ended"] - left_at
    noticed = min(
        t for t in (record.get("disconnect_time"), record.get("send_raised_time"), record["ended"]) if t
    )
    generator = [name for name in ("gen-disconnected", "gen-finally") if server.has_marker(f"{name}-{token}")]
    print(
        f"\n[disconnect {server.spec.id} {how}] app noticed after {noticed - left_at:.3f} s, "
        f"task ended after {ended_after:.3f} s (seen by the test after {polled:.3f} s); "
        f"saw http.disconnect: {record['saw_disconnect']}, send raised: {record['send_raised']}, "
        f"exception: {record['exception']}, generator markers: {generator}, "
        f"body bytes sent: {record['sent_body_bytes']}"
    )
    assert record["saw_disconnect"] or record["send_raised"], record
    assert ended_after < DISCONNECT_BOUND, record
    # The worker was freed: a one-worker server answers again, in the same process.
    assert _health_pid(server) == pid


def _wait_log(server: Server, text: str, timeout: float = 10.0) -> None:
    wait_for(lambda: text in server.log(), timeout=timeout, what=f"{text!r} in the log of {server.spec.id}")


def test_exception_in_endpoint_gives_500_and_server_keeps_serving(server: Server) -> None:
    pid = _health_pid(server)
    with server.client() as client:
        for _ in range(3):
            # A FastAPI endpoint: Starlette's error middleware answers 500 and re-raises.
            token = uuid.uuid4().hex
            response = client.get("/boom", params={"token": token})
            assert response.status_code == 500
            assert response.text == "Internal Server Error"
            assert f"fastapi boom {token}" not in response.text
            _wait_log(server, f"fastapi boom {token}")

            # Below any framework: the exception reaches the WSGI server, which answers 500.
            token = uuid.uuid4().hex
            response = client.get("/raw-boom", params={"token": token})
            assert response.status_code == 500
            assert "raw boom" not in response.text and "Traceback" not in response.text
            _wait_log(server, f"raw boom {token}")

            assert client.get("/items/1", params={"q": "ok"}).json()["shouted"] == "OK"
    log = server.log()
    assert SERVER_ERROR_LOG[server.spec.kind] in log
    assert "RawBoom" in log and "Boom" in log
    assert _health_pid(server) == pid


def test_system_exit_in_the_app_does_not_stop_the_server(server: Server) -> None:
    """SystemExit from the app becomes an ordinary error (500): one request cannot end a
    gunicorn worker or the whole waitress or werkzeug process."""
    pid = _health_pid(server)
    with server.client() as client:
        for _ in range(2):
            token = uuid.uuid4().hex
            response = client.get("/raw-exit", params={"token": token})
            assert response.status_code == 500
            _wait_log(server, f"raw exit {token}")
    assert "AppExitError" in server.log()
    assert server.alive()
    assert _health_pid(server) == pid


@pytest.mark.parametrize(
    "declared,sent", [(4_000_000, 1_000), (2_000, 100)], ids=["streamed-body", "preloaded-body"]
)
def test_body_shorter_than_content_length_does_not_hang(server: Server, declared: int, sent: int) -> None:
    pid = _health_pid(server)
    token = uuid.uuid4().hex
    sock = server.connect()
    try:
        sock.sendall(
            f"POST /echo-body?token={token} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: application/octet-stream\r\nContent-Length: {declared}\r\n\r\n".encode()
            + b"x" * sent
        )
        if server.spec.kind != "waitress" and declared > 64 * 1024:
            # A long body streams to the app: it is already reading when the client leaves.
            # (A short one is read whole before the app starts, so it cannot be running yet.)
            server.wait_marker(f"started-{token}")
    finally:
        sock.close()  # gives up: fewer bytes than announced, then FIN

    if server.spec.kind == "waitress":
        # waitress reads the whole body before it calls the app, so the app never runs.
        assert _health_pid(server) == pid
        assert not server.has_marker(f"started-{token}")
        return
    record = server.wait_marker(f"ended-{token}", timeout=15)
    print(
        f"\n[short body {server.spec.id} {declared}/{sent}] app received {record['received']}, "
        f"exception {record['exception']}, in {record['ended'] - record['started']:.3f} s"
    )
    assert record["saw_disconnect"], record
    assert "http.request" not in record["received"][-1:], record  # never a complete body
    assert _health_pid(server) == pid


def test_many_abandoned_requests_leave_nothing_behind(server: Server) -> None:
    """Twenty clients leave mid-stream or mid-upload: all app tasks end, the server serves on."""
    pid = _health_pid(server)
    tokens = []
    for i in range(10):
        token = uuid.uuid4().hex
        tokens.append(token)
        sock = server.connect()
        try:
            sock.sendall(f"GET /stream/endless?token={token} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            read_head(sock)
        finally:
            abort(sock)
        if server.spec.kind == "waitress":
            continue
        token = uuid.uuid4().hex
        tokens.append(token)
        sock = server.connect()
        try:
            sock.sendall(
                f"POST /echo-body?token={token} HTTP/1.1\r\nHost: x\r\n"
                # Above AsgiToWsgi's preload_body (1 MiB), so the body streams and the
                # app starts before it is complete.
                f"Content-Length: 2000000\r\n\r\n".encode()
                + b"y" * 1_200_000
            )
            server.wait_marker(f"started-{token}")
        finally:
            if i % 2:
                abort(sock)
            else:
                sock.close()
    for token in tokens:
        server.wait_marker(f"ended-{token}", timeout=15)
    assert _health_pid(server) == pid
    with server.client() as client:
        assert client.get("/stream", params={"n": 3, "size": 10}).status_code == 200


def test_http_1_0_client_reading_to_eof(server: Server) -> None:
    """No chunked framing for HTTP/1.0: a streamed body ends where the connection does."""
    if server.spec.kind == "werkzeug":
        pytest.skip("werkzeug's dev server answers HTTP/1.0 requests with chunked bodies (its own choice)")
    sock = server.connect()
    try:
        sock.sendall(b"GET /stream?n=5&size=1000 HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        raw = read_until_eof(sock)
    finally:
        sock.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    status, headers = parse_head(head)
    assert status == 200
    assert "transfer-encoding" not in headers
    assert len(body) == 5000
