"""examples/starlette_waitress.py on waitress: a Starlette app's plain, streamed, JSON and
form routes, served by a WSGI server."""

from __future__ import annotations

import time

import pytest

from .launch import Serve

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def test_starlette_on_waitress(serve: Serve) -> None:
    server = serve("waitress", "--host", "127.0.0.1", "--port", "{port}", "examples.starlette_waitress:app")
    with server.client() as client:
        index = client.get("/")
        assert index.status_code == 200
        assert index.headers["server"] == "waitress"
        assert index.text == "Hello from Starlette, served by a WSGI server through bridge.AsgiToWsgi!\n"

        # The stream arrives line by line, as the app sends it (0.2 s apart), not at the end.
        arrivals: list[tuple[float, bytes]] = []
        with client.stream("GET", "/countdown", params={"n": "3"}) as stream:
            assert stream.status_code == 200
            assert "content-length" not in stream.headers
            for chunk in stream.iter_raw():
                arrivals.append((time.monotonic(), chunk))
        assert b"".join(chunk for _, chunk in arrivals) == b"3...\n2...\n1...\nliftoff\n"
        assert len(arrivals) >= 2, arrivals
        assert arrivals[-1][0] - arrivals[0][0] >= 0.2, arrivals

        # One route takes JSON, a urlencoded form or a multipart form.
        for body in (
            {"json": {"name": "ada"}},
            {"data": {"name": "ada"}},
            {"files": {"name": (None, "ada")}},
        ):
            created = client.post("/greetings", **body)
            assert created.status_code == 201, (body, created.text)
            assert created.json() == {"greeting": "Hello, ada!"}
        assert client.post("/greetings", json={"name": ""}).status_code == 422
        assert client.post("/greetings", data={}).status_code == 422
        broken = client.post("/greetings", content=b"{oops", headers={"content-type": "application/json"})
        assert broken.status_code == 400
        assert broken.json() == {"error": "invalid JSON"}
        assert client.get("/greetings").status_code == 405
        assert client.get("/missing").status_code == 404
