"""``wsgiref.validate.validator`` around small WSGI apps, served through the bridge.

Any PEP 3333 violation by the bridge makes the validator raise inside the request
(a 500), so every test asserts 200 and the exact body.
"""

from __future__ import annotations

import hashlib

import httpx
import pytest

from tests.servers import wait_until

from .helpers import pattern_bytes, wait_for_log
from .rawhttp import ResponseReader, request_bytes
from .servers import Server

APP = "tests.integration_wsgi_apps.apps.validated:asgi"

pytestmark = [pytest.mark.integration, pytest.mark.timeout(45)]

SMALL = b"a small body that arrives in one message\n"
BIG = pattern_bytes(2 * 1024 * 1024 + 3, seed=b"validator")  # many http.request messages


def lines_body(size: int) -> bytes:
    """Lines of varying length, one longer than any network chunk, no final newline."""
    parts = [b"first line\n", b"abcdefgh\n", b"xyz\n", b"\n"]
    total = sum(map(len, parts))
    i = 0
    while total < size:
        line = b"%d:" % i + b"x" * (i * 37 % 300) + b"\n"
        if i == 50:
            line = b"L" * 200_000 + b"\n"
        parts.append(line)
        total += len(line)
        i += 1
    parts.append(b"no newline at the end")
    return b"".join(parts)


SMALL_LINES = lines_body(0)
BIG_LINES = lines_body(2 * 1024 * 1024)


def get_ok(client: httpx.Client, path: str, **kwargs: object) -> httpx.Response:
    response = client.request(kwargs.pop("method", "GET"), path, **kwargs)  # type: ignore[arg-type]
    assert response.status_code == 200, f"{path}: {response.status_code} {response.text[:2000]}"
    return response


def test_list_response(server: Server) -> None:
    with server.client() as client:
        response = get_ok(client, "/list")
    assert response.content == b"Hello, list!"
    assert response.headers["x-kind"] == "list"
    # No Content-Length check: the validator hands the bridge its own iterator
    # wrapper, not the list, so the body is streamed.


@pytest.mark.parametrize("count", [0, 1, 40])
def test_generator_response(server: Server, count: int) -> None:
    with server.client() as client:
        response = get_ok(client, f"/generator?{count}")
    assert response.content == b"".join(b"chunk %d\n" % i for i in range(count))


def test_start_response_called_inside_the_generator(server: Server) -> None:
    with server.client() as client:
        response = client.get("/lazy")
    assert response.status_code == 201
    assert response.headers["x-lazy"] == "yes"
    assert response.content == b"created lazily"


def test_write_callable(server: Server) -> None:
    with server.client() as client:
        assert get_ok(client, "/write").content == b"written then returned"
        assert get_ok(client, "/write-only").content == b"only written"


def test_declared_content_length(server: Server) -> None:
    with server.client() as client:
        response = get_ok(client, "/declared-length")
    assert response.headers["content-length"] == "10"
    assert response.content == b"0123456789"


@pytest.mark.parametrize("method", ["HEAD", "GET"])
@pytest.mark.parametrize("path", ["/list", "/generator?3", "/write", "/declared-length"])
def test_head_and_get(server: Server, method: str, path: str) -> None:
    with server.client() as client:
        response = client.request(method, path)
    assert response.status_code == 200
    if method == "HEAD":
        assert response.content == b""


@pytest.mark.parametrize(
    "body, size",
    [(b"", 7), (SMALL, 7), (SMALL, 1 << 20), (BIG, 4096), (BIG, 100_000), (BIG, 1 << 30)],
    ids=["empty-7", "small-7", "small-1M", "big-4096", "big-100000", "big-1G"],
)
def test_read_with_size(server: Server, body: bytes, size: int) -> None:
    with server.client() as client:
        response = get_ok(client, f"/read?{size}", method="POST", content=body)
    whole, rest = divmod(len(body), size)
    expected_sizes = [size] if whole > 1 or (whole == 1 and rest) else []
    assert response.json() == {
        "sizes": expected_sizes,
        "last": (rest or size) if body else 0,
        "size": len(body),
        "sha256": hashlib.sha256(body).hexdigest(),
        "again": "",
    }


@pytest.mark.parametrize("body", [SMALL_LINES, BIG_LINES], ids=["small", "big"])
def test_readline_and_readlines(server: Server, body: bytes) -> None:
    with server.client() as client:
        response = get_ok(client, "/readline", method="POST", content=body)
    rest = body[len(b"first line\nabcdefgh\n") :]
    rest_lines = rest.splitlines(keepends=True)
    assert response.json() == {
        "first": "first line\n",
        "limited": ["abcde", "fgh\n"],
        "rest_lengths": [len(x) for x in rest_lines],
        "rest_sha256": hashlib.sha256(rest).hexdigest(),
        "eof": "",
    }


@pytest.mark.parametrize("path", ["/iterate", "/iterate-raw"])
@pytest.mark.parametrize("body", [b"", SMALL_LINES, BIG_LINES], ids=["empty", "small", "big"])
def test_iterate_input(server: Server, body: bytes, path: str) -> None:
    with server.client() as client:
        response = get_ok(client, path, method="POST", content=body)
    assert response.json() == {
        "lengths": [len(x) for x in body.splitlines(keepends=True)],
        "sha256": hashlib.sha256(body).hexdigest(),
    }


def test_chunked_body_is_read_to_the_end(server: Server) -> None:
    """No Content-Length: the stream still ends exactly at the end of the body."""
    chunks = [BIG_LINES[i : i + 50_000] for i in range(0, len(BIG_LINES), 50_000)]
    with server.client() as client:
        response = get_ok(client, "/iterate-raw", method="POST", content=iter(chunks))
    assert response.json() == {
        "lengths": [len(x) for x in BIG_LINES.splitlines(keepends=True)],
        "sha256": hashlib.sha256(BIG_LINES).hexdigest(),
    }


def test_environ(server: Server) -> None:
    with server.client() as client:
        response = get_ok(
            client,
            "/environ",
            method="POST",
            params={"q": "1"},
            content=b"payload",
            headers={
                "Content-Type": "text/plain",
                "X-Custom": "caf\xe9".encode("latin-1"),  # a raw latin-1 byte
                "X_Custom": "spoofed",  # underscore twin: must be dropped
                "Cookie": "a=1; b=2",
            },
        )
    report = response.json()
    assert isinstance(report.pop("REMOTE_PORT"), str)
    assert report == {
        "REQUEST_METHOD": "POST",
        "SCRIPT_NAME": "",
        "PATH_INFO": "/environ",
        "QUERY_STRING": "q=1",
        "CONTENT_TYPE": "text/plain",
        "CONTENT_LENGTH": "7",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": str(server.port),
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": f"127.0.0.1:{server.port}",
        "HTTP_X_CUSTOM": "café",
        "HTTP_COOKIE": "a=1; b=2",
        "wsgi.url_scheme": "http",
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.input_terminated": True,
        "wsgi.version": [1, 0],
        "environ_type": "dict",
        "HTTP_CONTENT_TYPE present": False,
        "HTTP_CONTENT_LENGTH present": False,
        "body": "payload",
    }


def test_wsgi_errors_reach_the_server_log(server: Server, log_mark: int) -> None:
    with server.client() as client:
        assert get_ok(client, "/errors").content == b"logged"
    log = wait_for_log(server, log_mark, "validated app: writelines works")
    assert "validated app: a line for wsgi.errors ☃" in log


def test_exc_info_replaces_the_response(server: Server) -> None:
    with server.client() as client:
        response = client.get("/exc-info")
    assert response.status_code == 503
    assert response.headers["x-error"] == "handled"
    assert response.content == b"sorry, try later"


def test_exc_info_error_page_then_the_server_goes_on(server: Server) -> None:
    """An error the app handled itself (start_response with exc_info, before any body)
    gives a complete error page, and is logged by bridge with its traceback; it is not
    raised to the server after the page (PEP 3333 re-raises only once headers were sent),
    so no server closes the kept-alive connection: the second of two pipelined requests
    is served on it (uvicorn used to close it after the raise)."""
    host = f"127.0.0.1:{server.port}"
    with server.connect() as sock:
        sock.sendall(request_bytes("GET", "/exc-info", host=host) + request_bytes("GET", "/list", host=host))
        reader = ResponseReader(sock)
        first = reader.read("GET")
        assert (first.status, first.body) == (503, b"sorry, try later")
        second = reader.read("GET")
        assert (second.status, second.body) == (200, b"Hello, list!")
    with server.client() as client:
        assert get_ok(client, "/list").content == b"Hello, list!"
    assert "handled by the app" in server.log()


def test_404_through_the_validator(server: Server) -> None:
    with server.client() as client:
        response = client.get("/nothing/here")
    assert response.status_code == 404
    assert response.content == b"not found"


def test_close_is_called(server: Server) -> None:
    with server.client() as client:
        before = client.get("/__problems__").json()["closed"]
        for _ in range(3):
            assert get_ok(client, "/closing").content == b"closable body"
        closed, _ = wait_until(
            lambda: client.get("/__problems__").json()["closed"],
            lambda n: n >= before + 3,
            deadline=10.0,
            what="close() of three responses",
        )
    assert closed == before + 3


def test_zz_no_iterator_was_left_unclosed(server: Server) -> None:
    """Runs last for each server: the validator complains from __del__ about any
    iterator collected without close(); the app records such complaints."""
    with server.client() as client:
        problems = client.get("/__problems__").json()["problems"]
    assert problems == []
