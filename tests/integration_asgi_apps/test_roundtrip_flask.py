"""The round trip ``AsgiToWsgi(WsgiToAsgi(flask_app))`` under waitress serves a Flask app
unchanged: every response (status, headers, body) equals the one from the same Flask app
served by waitress directly."""

from __future__ import annotations

from typing import Any, Iterator

import httpx
import pytest

from .conftest import (
    BACKENDS,
    PACKAGE,
    Server,
    ServerSpec,
    module_server,
    read_until_eof,
    start_server,
)

pytestmark = pytest.mark.integration

ROUNDTRIP = [ServerSpec("waitress", app=f"{PACKAGE}.flask_roundtrip:app", backend=b) for b in BACKENDS]
DIRECT = ServerSpec("waitress", app=f"{PACKAGE}.flask_roundtrip:direct")

#: Headers that legitimately differ between two servers or two moments.
VOLATILE = {"date"}


@pytest.fixture(scope="module")
def direct(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with start_server(DIRECT, tmp_path_factory.mktemp("flask-direct")) as server:
        yield server


@pytest.fixture(scope="module", params=ROUNDTRIP, ids=[f"roundtrip-{s.backend}" for s in ROUNDTRIP])
def roundtrip(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from module_server(request, tmp_path_factory)


def _normalise(name: str, value: str) -> str:
    if name == "allow":  # Flask builds it from a set: its order varies from process to process
        return ", ".join(sorted(part.strip() for part in value.split(",")))
    return value


def _snapshot(server: Server, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
    with server.client(follow_redirects=kwargs.pop("follow_redirects", False)) as client:
        response = client.request(method, path, **kwargs)
    body = response.content.replace(server.base_url.encode(), b"BASE")
    headers = sorted(
        (name.lower(), _normalise(name.lower(), value.replace(server.base_url, "BASE")))
        for name, value in response.headers.multi_items()
        if name.lower() not in VOLATILE
    )
    return {"status": response.status_code, "headers": headers, "body": body}


CASES: dict[str, tuple[str, str, dict[str, Any]]] = {
    "json": ("GET", "/json", {"params": [("a", "1"), ("a", "2"), ("b", "é ü")]}),
    "form": ("POST", "/form", {"data": {"name": "Zoë", "tags": ["a", "b"]}}),
    "form-multipart": (
        "POST",
        "/form",
        {
            "data": {"name": "x"},
            "files": {"f": ("f.txt", b"hello")},
            "headers": {"Content-Type": "multipart/form-data; boundary=fixed-boundary-1234"},
        },
    ),
    "stream": ("GET", "/stream", {"params": {"n": 200, "tag": "t"}}),
    "not-found": ("GET", "/missing", {}),
    "method-not-allowed": ("POST", "/json", {}),
    "redirect": ("GET", "/redirect", {}),
    "redirect-followed": ("GET", "/redirect", {"follow_redirects": True}),
    "headers-and-cookies": ("GET", "/headers", {"headers": {"X-Test": "value", "User-Agent": "probe/1"}}),
    "head-json": ("HEAD", "/json", {}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_roundtrip_response_equals_direct(direct: Server, roundtrip: Server, case: str) -> None:
    method, path, kwargs = CASES[case]
    expected = _snapshot(direct, method, path, **dict(kwargs))
    actual = _snapshot(roundtrip, method, path, **dict(kwargs))
    assert actual == expected


def test_roundtrip_details(roundtrip: Server) -> None:
    with roundtrip.client() as client:
        response = client.get("/json", params={"q": "1"})
        assert response.json()["message"] == "hello"
        assert response.json()["args"] == {"q": ["1"]}
        response = client.get("/redirect")
        assert response.status_code == 302
        assert response.headers["location"] == "/json?via=redirect"
        assert client.get("/missing").status_code == 404
        response = client.get("/stream", params={"n": 3})
        assert response.text == "line 0 \nline 1 \nline 2 \n"
        assert response.headers.get("transfer-encoding") == "chunked"
        response = client.get("/headers")
        assert response.headers["x-custom"].encode("latin-1") == "café".encode("latin-1")
        assert response.cookies["session"] == "abc"


def test_head_trailer_bytes_come_from_waitress(direct: Server, roundtrip: Server) -> None:
    """HEAD of a streamed body (no Content-Length): waitress itself adds
    Transfer-Encoding: chunked and a 0\\r\\n\\r\\n terminator after the head, for a plain
    Flask app too. The round trip leaves these bytes exactly as they are without the bridge."""

    def raw_head(server: Server) -> bytes:
        sock = server.connect()
        try:
            sock.sendall(b"HEAD /stream HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            return read_until_eof(sock).partition(b"\r\n\r\n")[2]
        finally:
            sock.close()

    assert raw_head(roundtrip) == raw_head(direct)
    with httpx.Client(timeout=15) as client:
        assert client.head(roundtrip.url("/stream")).status_code == 200
