"""Connection-level behaviour through the bridge: keep-alive, pipelining, websocket
refusal. Raw sockets, so the test knows exactly which connection carries what."""

from __future__ import annotations

import base64
import json
import os
import socket

import pytest

from .rawhttp import ResponseReader, read_head, request_bytes
from .servers import Server

APP = "tests.integration_wsgi_apps.apps.flask_app:asgi"

pytestmark = [pytest.mark.integration, pytest.mark.timeout(30)]


def test_keep_alive_requests_get_their_own_clean_responses(server: Server) -> None:
    host = f"127.0.0.1:{server.port}"
    with server.connect() as sock:
        local_port = str(sock.getsockname()[1])
        reader = ResponseReader(sock)

        def exchange(method: str, target: str, **kwargs: object):  # type: ignore[no-untyped-def]
            sock.sendall(request_bytes(method, target, host=host, **kwargs))  # type: ignore[arg-type]
            return reader.read(method)

        first = exchange("GET", "/conn?n=1")
        assert first.status == 200
        assert json.loads(first.body) == {"remote_port": local_port, "n": "1", "body": ""}

        posted = exchange("POST", "/conn?n=2", body=b"abc")
        assert json.loads(posted.body) == {"remote_port": local_port, "n": "2", "body": "abc"}

        streamed = exchange("GET", "/stream?n=3&tag=t")
        assert streamed.status == 200
        assert streamed.body == b"0:t\n1:t\n2:t\n"

        head = exchange("HEAD", "/hello")
        assert head.status == 200
        assert head.body == b""
        assert head.header("content-length") == str(len(b"Hello, bridge!"))

        missing = exchange("GET", "/nope")
        assert missing.status == 404

        chunked = exchange(
            "POST",
            "/conn?n=6",
            headers=[("Transfer-Encoding", "chunked")],
            body=b"3\r\nxyz\r\n2\r\n12\r\n0\r\n\r\n",
        )
        assert json.loads(chunked.body) == {"remote_port": local_port, "n": "6", "body": "xyz12"}

        redirect = exchange("GET", "/go")
        assert redirect.status == 302
        assert redirect.header("location") == "/hello"

        # An unread request body must not leak into the next request.
        unread = exchange("POST", "/hello?ignored", body=b"GET /evil HTTP/1.1\r\n\r\n")
        assert unread.status == 405

        last = exchange("GET", "/conn?n=last")
        assert json.loads(last.body) == {"remote_port": local_port, "n": "last", "body": ""}


def test_pipelined_requests(server: Server) -> None:
    host = f"127.0.0.1:{server.port}"
    with server.connect() as sock:
        local_port = str(sock.getsockname()[1])
        sock.sendall(
            request_bytes("GET", "/conn?n=1", host=host)
            + request_bytes("POST", "/conn?n=2", host=host, body=b"second body")
            + request_bytes("GET", "/conn?n=3", host=host)
        )
        reader = ResponseReader(sock)
        responses = [reader.read("GET"), reader.read("POST"), reader.read("GET")]
    assert [r.status for r in responses] == [200, 200, 200]
    assert [json.loads(r.body) for r in responses] == [
        {"remote_port": local_port, "n": "1", "body": ""},
        {"remote_port": local_port, "n": "2", "body": "second body"},
        {"remote_port": local_port, "n": "3", "body": ""},
    ]


def test_pipelined_streaming_and_head(server: Server) -> None:
    host = f"127.0.0.1:{server.port}"
    with server.connect() as sock:
        sock.sendall(
            request_bytes("GET", "/stream?n=4&tag=p", host=host)
            + request_bytes("HEAD", "/hello", host=host)
            + request_bytes("GET", "/hello", host=host)
        )
        reader = ResponseReader(sock)
        streamed, head, hello = reader.read("GET"), reader.read("HEAD"), reader.read("GET")
    assert streamed.body == b"0:p\n1:p\n2:p\n3:p\n"
    assert (head.status, head.body) == (200, b"")
    assert (hello.status, hello.body) == (200, b"Hello, bridge!")


def test_websocket_handshake_is_refused_with_403(server: Server) -> None:
    key = base64.b64encode(os.urandom(16)).decode("ascii")
    with server.connect() as sock:
        sock.sendall(
            request_bytes(
                "GET",
                "/hello",
                host=f"127.0.0.1:{server.port}",
                headers=[
                    ("Upgrade", "websocket"),
                    ("Connection", "Upgrade"),
                    ("Sec-WebSocket-Key", key),
                    ("Sec-WebSocket-Version", "13"),
                ],
            )
        )
        head = read_head(sock)
    status_line = head.split(b"\r\n", 1)[0]
    assert status_line.startswith(b"HTTP/1.1 403"), head
    # The server is unharmed.
    with server.client() as client:
        assert client.get("/hello").text == "Hello, bridge!"


def read_to_eof(sock: socket.socket) -> bytes:
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


@pytest.mark.parametrize(
    "target, body",
    [("/hello", b"Hello, bridge!"), ("/stream?n=3&tag=old", b"0:old\n1:old\n2:old\n")],
    ids=["fixed", "streamed"],
)
def test_http_1_0_client(server: Server, target: str, body: bytes) -> None:
    """HTTP/1.0 has no chunked encoding: a streamed body ends when the server
    closes the connection, and SERVER_PROTOCOL says HTTP/1.0."""
    with server.connect() as sock:
        sock.sendall(f"GET {target} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode())
        response = read_to_eof(sock)
    head, _, received = response.partition(b"\r\n\r\n")
    assert head.split(b"\r\n", 1)[0].split(b" ", 2)[1] == b"200", head
    assert b"transfer-encoding" not in head.lower()
    assert received == body


def test_expect_100_continue(server: Server) -> None:
    """The client waits for 100 Continue before sending its body."""
    host = f"127.0.0.1:{server.port}"
    body = b"sent after 100-continue"
    with server.connect() as sock:
        sock.sendall(
            request_bytes(
                "POST",
                "/conn?n=c",
                host=host,
                headers=[("Expect", "100-continue"), ("Content-Length", str(len(body)))],
            )
        )
        interim = read_head(sock)
        assert interim.startswith(b"HTTP/1.1 100"), interim
        assert interim.endswith(b"\r\n\r\n")  # nothing after the interim response yet
        sock.sendall(body)
        reader = ResponseReader(sock)
        response = reader.read("POST")
    assert response.status == 200
    assert json.loads(response.body)["body"] == body.decode()
