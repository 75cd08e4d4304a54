"""A real Flask app through WsgiToAsgi on real servers."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from .helpers import pattern_bytes, repeated_chunks, wait_for_log
from .servers import SERVER_KINDS, Server, serve

APP = "tests.integration_wsgi_apps.apps.flask_app:asgi"
FLASK_APP_FILE = Path(__file__).parent / "apps" / "flask_app.py"

pytestmark = [pytest.mark.integration, pytest.mark.timeout(45)]


def test_hello(server: Server) -> None:
    with server.client() as client:
        response = client.get("/hello")
    assert response.status_code == 200
    assert response.text == "Hello, bridge!"
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["content-length"] == str(len("Hello, bridge!"))


def test_session_cookie_round_trip(server: Server) -> None:
    with server.client() as client:
        assert client.get("/session").json() == {"name": None, "visits": None}
        stored = client.post("/session", data={"name": "Zoë"})
        assert stored.status_code == 200
        assert stored.text == "stored"
        assert "session" in stored.cookies
        for visit in (1, 2, 3):
            response = client.get("/session")
            assert response.status_code == 200
            assert response.json() == {"name": "Zoë", "visits": visit}
    # A client without the cookie has no session.
    with server.client() as other:
        assert other.get("/session").json() == {"name": None, "visits": None}


def test_multipart_upload_arrives_whole(server: Server) -> None:
    data = pattern_bytes(3 * 1024 * 1024 + 12345, seed=b"flask-upload")
    with server.client() as client:
        response = client.post(
            "/upload",
            files={"file": ("blob.bin", data, "application/octet-stream")},
            data={"note": "naïve ☃", "tag": ["a", "b"]},
        )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "filename": "blob.bin",
        "mimetype": "application/octet-stream",
        "fields": {"note": ["naïve ☃"], "tag": ["a", "b"]},
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }


def test_form_post(server: Server) -> None:
    with server.client() as client:
        response = client.post("/form", data={"a": "1", "b": ["x", "y"], "text": "café & crème=1"})
    assert response.status_code == 200
    assert response.json() == {
        "form": {"a": ["1"], "b": ["x", "y"], "text": ["café & crème=1"]},
        "content_type": "application/x-www-form-urlencoded",
    }


def test_json_post(server: Server) -> None:
    payload = {"text": "日本語 ✓", "n": [1, 2.5, None, True], "nested": {"k": "v"}}
    with server.client() as client:
        response = client.post("/json", json=payload)
    assert response.status_code == 200
    assert response.json() == {"received": payload, "content_type": "application/json"}


def test_query_string_with_escaped_and_non_ascii_bytes(server: Server) -> None:
    query = "name=caf%C3%A9&sym=%E2%82%AC&plus=a+b&amp=%26&raw=%FF&multi=1&multi=2&empty="
    with server.client() as client:
        response = client.get(f"/query?{query}")
    assert response.status_code == 200
    body = response.json()
    # Byte for byte what the client sent: still percent-encoded, never re-encoded.
    assert body["query_string"] == query
    assert body["args"] == {
        "name": ["café"],
        "sym": ["€"],
        "plus": ["a b"],
        "amp": ["&"],
        "raw": ["%FF"],  # Werkzeug 3 re-quotes bytes that are not UTF-8
        "multi": ["1", "2"],
        "empty": [""],
    }


def test_non_ascii_path(server: Server) -> None:
    with server.client() as client:
        response = client.get("/path/caf%C3%A9/x%20y")
    assert response.status_code == 200
    assert response.json() == {
        "rest": "café/x y",
        "path_info": "/path/caf\u00c3\u00a9/x y",  # UTF-8 bytes shown as latin-1 (PEP 3333)
        "request_uri": "/path/caf%C3%A9/x%20y",
    }


@pytest.mark.parametrize(
    "target, rest, path_info",
    [
        ("/path/%FF", "\ufffd", "/path/\xff"),  # not UTF-8: PATH_INFO keeps the raw byte
        ("/path/a%2Fb", "a/b", "/path/a/b"),  # only REQUEST_URI tells %2F from /
        ("/path/100%25", "100%", "/path/100%"),  # decoded once, never twice
    ],
)
def test_odd_paths(server: Server, target: str, rest: str, path_info: str) -> None:
    with server.client() as client:
        response = client.get(target)
    assert response.status_code == 200
    assert response.json() == {"rest": rest, "path_info": path_info, "request_uri": target}


def test_send_file_whole_conditional_and_ranges(server: Server) -> None:
    source = FLASK_APP_FILE.read_bytes()
    with server.client() as client:
        whole = client.get("/file")
        assert whole.status_code == 200
        assert whole.content == source
        assert whole.headers["content-length"] == str(len(source))
        etag = whole.headers["etag"]

        not_modified = client.get("/file", headers={"If-None-Match": etag})
        assert not_modified.status_code == 304
        assert not_modified.content == b""

        part = client.get("/file", headers={"Range": "bytes=10-99"})
        assert part.status_code == 206
        assert part.headers["content-range"] == f"bytes 10-99/{len(source)}"
        assert part.content == source[10:100]

        head = client.head("/file")
        assert head.status_code == 200
        assert head.headers["content-length"] == str(len(source))
        assert head.content == b""


def test_204_and_multiple_set_cookie_headers(server: Server) -> None:
    with server.client() as client:
        empty = client.get("/nocontent")
        assert empty.status_code == 204
        assert empty.content == b""
        response = client.get("/cookies")
    assert response.text == "two cookies"
    set_cookies = response.headers.get_list("set-cookie")
    assert len(set_cookies) == 2
    assert set_cookies[0].startswith("first=1;")
    assert set_cookies[1].startswith("second=2;") and "HttpOnly" in set_cookies[1]


def test_streaming_response_with_request_context(server: Server) -> None:
    params = {"n": "50", "tag": "ünï"}
    with server.client() as client, client.stream("GET", "/stream", params=params) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/plain; charset=utf-8"
        body = b"".join(response.iter_bytes())
    assert body.decode("utf-8") == "".join(f"{i}:ünï\n" for i in range(50))


def test_view_error_gives_500_and_server_keeps_serving(server: Server, log_mark: int) -> None:
    with server.client() as client:
        response = client.get("/boom")
        assert response.status_code == 500
        # The traceback goes to the server's log, never to the client.
        assert "boom from a Flask view" not in response.text
        wait_for_log(server, log_mark, "RuntimeError: boom from a Flask view")
        for _ in range(3):
            assert client.get("/hello").text == "Hello, bridge!"


def test_error_while_streaming_aborts_the_response(server: Server, log_mark: int) -> None:
    received = bytearray()
    with server.client() as client:
        with pytest.raises(httpx.TransportError), client.stream("GET", "/stream-boom") as response:
            assert response.status_code == 200
            for chunk in response.iter_bytes():
                received += chunk
        assert bytes(received) == b"first chunk\n"
        wait_for_log(server, log_mark, "RuntimeError: boom while streaming")
    with server.client() as client:
        assert client.get("/hello").status_code == 200


def test_404(server: Server) -> None:
    with server.client() as client:
        response = client.get("/no/such/page")
    assert response.status_code == 404
    assert "Not Found" in response.text


def test_redirect_location(server: Server) -> None:
    with server.client() as client:
        response = client.get("/go")
        assert response.status_code == 302
        assert response.headers["location"] == "/hello"
        followed = client.get("/go", follow_redirects=True)
    assert followed.status_code == 200
    assert followed.text == "Hello, bridge!"
    assert followed.url == server.url("/hello")


def test_head_requests(server: Server) -> None:
    with server.client() as client:
        get = client.get("/hello")
        head = client.head("/hello")
        assert head.status_code == 200
        assert head.content == b""
        assert head.headers["content-length"] == get.headers["content-length"] == str(len(get.content))
        assert head.headers["content-type"] == get.headers["content-type"]
        streamed = client.head("/stream")
        assert streamed.status_code == 200
        assert streamed.content == b""
        # The connection is still in a clean state after the bodiless responses.
        assert client.get("/hello").text == "Hello, bridge!"


def test_chunked_upload_reaches_flask_whole(server: Server) -> None:
    """No Content-Length: received whole before the app runs (up to spool_body), the
    body gets its CONTENT_LENGTH, as waitress gives it; wsgi.input_terminated is set too."""
    block = pattern_bytes(64 * 1024, seed=b"chunked")
    count = 40  # 2.5 MiB in 40 chunks
    with server.client() as client:
        response = client.post("/raw", content=repeated_chunks(block, count))
    assert response.status_code == 200, response.text
    assert response.json() == {
        "content_length": str(len(block) * count),
        "transfer_encoding": "chunked",
        "input_terminated": True,
        "size": len(block) * count,
        "sha256": hashlib.sha256(block * count).hexdigest(),
    }


def test_small_chunked_upload(server: Server) -> None:
    with server.client() as client:
        response = client.post("/raw", content=iter([b"he", b"", b"llo"]))
    assert response.status_code == 200
    body = response.json()
    assert body["size"] == 5
    assert body["sha256"] == hashlib.sha256(b"hello").hexdigest()


# -- url_for under a root path ---------------------------------------------------------


@pytest.fixture(scope="module", params=SERVER_KINDS)
def rooted(request: pytest.FixtureRequest) -> Iterator[tuple[Server, str]]:
    """A server with root path /prefix, and the prefix the client must put in front.

    The servers read ``--root-path`` differently. uvicorn assumes a proxy in front
    already stripped the prefix, and prepends it to every request path (ASGI ``path``
    includes ``root_path``), so clients request ``/urls``. hypercorn passes the path
    through as received, so clients request ``/prefix/urls``. Either way the app
    sees SCRIPT_NAME=/prefix and PATH_INFO=/urls.
    """
    kind = request.param
    client_prefix = "" if kind == "uvicorn" else "/prefix"
    srv = serve(request, kind, APP, root_path="/prefix", health=f"{client_prefix}/health")
    yield srv, client_prefix
    srv.assert_alive()


def test_url_for_under_root_path(rooted: tuple[Server, str]) -> None:
    server, prefix = rooted
    with server.client() as client:
        response = client.get(f"{prefix}/urls", params={"q": "1"})
        assert response.status_code == 200
        assert response.json() == {
            "hello": "/prefix/hello",
            "external": f"http://127.0.0.1:{server.port}/prefix/hello",
            "script_root": "/prefix",
            "path": "/urls",
            "url": f"http://127.0.0.1:{server.port}/prefix/urls?q=1",
        }
        redirect = client.get(f"{prefix}/go")
        assert redirect.status_code == 302
        assert redirect.headers["location"] == "/prefix/hello"
