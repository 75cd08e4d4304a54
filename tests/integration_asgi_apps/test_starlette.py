"""A small Starlette app through AsgiToWsgi: routing, lifespan state, forms, streaming."""

from __future__ import annotations

from typing import Iterator

import pytest

from .conftest import BACKENDS, STARLETTE_APP, Server, ServerSpec, module_server

pytestmark = pytest.mark.integration

KINDS = [
    ServerSpec("gunicorn-gthread", app=STARLETTE_APP, workers=2, threads=4, preload=True),
    ServerSpec("waitress", app=STARLETTE_APP),
    ServerSpec("werkzeug", app=STARLETTE_APP),
]
SPECS = [ServerSpec(**{**spec.__dict__, "backend": backend}) for spec in KINDS for backend in BACKENDS]


@pytest.fixture(scope="module", params=SPECS, ids=[spec.id for spec in SPECS])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from module_server(request, tmp_path_factory)


def test_routes(server: Server) -> None:
    with server.client() as client:
        assert client.get("/").text == "hello world\n"
        assert client.get("/hello/caf%C3%A9").text == "hello café\n"
        response = client.get("/nowhere")
        assert response.status_code == 404
        assert response.text == "Not Found"
        response = client.post("/")
        assert response.status_code == 405
        assert "GET" in response.headers["allow"]


def test_lifespan_state_headers_and_query(server: Server) -> None:
    with server.client() as client:
        for _ in range(6):
            # A str name with a bytes value: httpx sends it as is; its types want one or the other.
            response = client.get(
                "/info",
                params={"a": "1", "b": "x y"},
                headers={"X-Test": "tëst".encode()},  # type: ignore[arg-type]
            )
            assert response.status_code == 200
            info = response.json()
            assert info["greeting"] == "hi from lifespan"
            assert info["startup_pid"] == info["pid"]
            assert info["library"] == server.spec.backend
            assert info["query"] == {"a": "1", "b": "x y"}
            assert info["path"] == "/info"
            assert info["headers"]["x-test"] == "tëst".encode().decode("latin-1")


def test_form(server: Server) -> None:
    with server.client() as client:
        response = client.post("/form", data={"name": "Zoë", "tag": ["a", "b"]})
    assert response.status_code == 200
    assert response.json() == {"name": ["Zoë"], "tag": ["a", "b"]}


def test_streamed_text(server: Server) -> None:
    with server.client() as client:
        response = client.get("/countdown", params={"n": 3})
    assert response.status_code == 200
    assert response.text == "3\n2\n1\nliftoff\n"
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
