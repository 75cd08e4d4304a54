"""A real Django app (settings in code, no database) through WsgiToAsgi on real servers."""

from __future__ import annotations

import hashlib
from typing import Callable

import httpx
import pytest

from tests.servers import wait_until

from .helpers import pattern_bytes
from .servers import Server

APP = "tests.integration_wsgi_apps.apps.django_app:asgi"

pytestmark = [pytest.mark.integration, pytest.mark.timeout(45)]


def counts(client: httpx.Client) -> dict[str, int]:
    response = client.get("/__counts__")
    assert response.status_code == 200
    result: dict[str, int] = response.json()
    return result


def settled_counts(client: httpx.Client) -> dict[str, int]:
    """The counts once every request Django started has also finished (been closed).

    A streamed response is closed just after its last byte went out, so a client may
    see the whole body a moment before close() runs: poll for it, never guess."""
    value, _ = wait_until(
        lambda: counts(client),
        lambda c: c["started"] == c["finished"],
        deadline=10.0,
        what="every started Django request to finish",
    )
    return value


def test_session_cookie_round_trip(server: Server) -> None:
    with server.client() as client:
        assert client.get("/session").json() == {"name": None, "visits": None}
        stored = client.post("/session", data={"name": "Zoë"})
        assert stored.status_code == 200
        assert stored.text == "stored"
        assert "sessionid" in stored.cookies
        for visit in (1, 2, 3):
            assert client.get("/session").json() == {"name": "Zoë", "visits": visit}


def test_file_upload(server: Server) -> None:
    data = pattern_bytes(3 * 1024 * 1024 + 777, seed=b"django-upload")
    with server.client() as client:
        response = client.post(
            "/upload",
            files={"file": ("données.bin", data, "application/octet-stream")},
            data={"title": "ünïcode", "tags": ["x", "y"]},
        )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "name": "données.bin",
        "content_type": "application/octet-stream",
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "fields": {"title": ["ünïcode"], "tags": ["x", "y"]},
    }


def test_streaming_http_response(server: Server) -> None:
    with server.client() as client, client.stream("GET", "/stream", params={"n": "200"}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/plain"
        body = b"".join(response.iter_bytes())
    assert body == b"".join(f"line {i}\n".encode() for i in range(200))


def test_json_and_query(server: Server) -> None:
    with server.client() as client:
        response = client.post("/json?q=caf%C3%A9", json={"k": ["v", 1]})
    assert response.status_code == 200
    assert response.json() == {"received": {"k": ["v", 1]}, "query": {"q": "café"}}


def test_error_page_is_500_and_server_keeps_serving(server: Server) -> None:
    with server.client() as client:
        response = client.get("/boom")
        assert response.status_code == 500
        assert "Server Error (500)" in response.text
        assert "boom from a Django view" not in response.text  # DEBUG=False: no details
        for _ in range(3):
            assert client.get("/health").text == "ok"


def test_404(server: Server) -> None:
    with server.client() as client:
        response = client.get("/missing")
    assert response.status_code == 404
    assert "Not Found" in response.text


def test_request_finished_fires_for_every_request(server: Server) -> None:
    """Django sends request_finished from HttpResponse.close(): one per request,
    whatever the kind of response, proves the bridge closed each one exactly once."""
    upload = pattern_bytes(1536 * 1024, seed=b"finished")
    with server.client() as client:
        before = settled_counts(client)
        requests: list[Callable[[], httpx.Response]] = [
            lambda: client.get("/health"),
            lambda: client.head("/health"),
            lambda: client.post("/session", data={"name": "n"}),
            lambda: client.get("/session"),
            lambda: client.post("/upload", files={"file": ("f.bin", upload)}),
            lambda: client.get("/stream", params={"n": "3"}),
            lambda: client.head("/stream"),
            lambda: client.get("/boom"),
            lambda: client.get("/missing"),
            lambda: client.post("/json", json=[1]),
        ]
        statuses = [send().status_code for send in requests]
        assert statuses == [200, 200, 200, 200, 200, 200, 200, 500, 404, 200]
        after = settled_counts(client)
    assert after["started"] - before["started"] == len(requests)
    assert after["finished"] - before["finished"] == len(requests)


def test_request_finished_fires_when_a_stream_is_abandoned(server: Server) -> None:
    """A client that leaves in the middle of a long StreamingHttpResponse: Django's
    response is still closed."""
    with server.client() as client:
        before = settled_counts(client)
    with server.client() as client, client.stream("GET", "/stream", params={"n": "2000000"}) as response:
        assert response.status_code == 200
        first = next(response.iter_raw())
        assert first.startswith(b"line 0\n")
        # Leaving the block closes the half-read response, and with it the connection.
    with server.client() as client:
        after = settled_counts(client)
    assert after["started"] - before["started"] == 1
    assert after["finished"] - before["finished"] == 1
