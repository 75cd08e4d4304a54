"""Starlette's ``FileResponse`` through ``AsgiToWsgi`` on real WSGI servers: it sees the
Path Send extension, sends ``http.response.pathsend``, and the file goes to the server's
``wsgi.file_wrapper`` (gunicorn sends it with sendfile; waitress and werkzeug read it
themselves). The client gets the whole file, byte for byte; HEAD gets none of it.
"""

from __future__ import annotations

import hashlib
import os
from typing import Iterator

import pytest

from .conftest import PACKAGE, Server, ServerSpec, module_server
from .files_app import FILE_NAME

pytestmark = pytest.mark.integration

APP = f"{PACKAGE}.files_app:app"
SPECS = [
    ServerSpec("gunicorn-gthread", app=APP, workers=1, threads=2),
    ServerSpec("waitress", app=APP, threads=2),
    ServerSpec("werkzeug", app=APP),
]
SIZE = 8 * 1024 * 1024 + 321


@pytest.fixture(scope="module", params=SPECS, ids=[spec.id for spec in SPECS])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from module_server(request, tmp_path_factory)


@pytest.fixture(scope="module")
def data(server: Server) -> bytes:
    content = os.urandom(SIZE)
    (server.markers / FILE_NAME).write_bytes(content)
    return content


def test_a_file_response_arrives_whole(server: Server, data: bytes) -> None:
    with server.client(timeout=15.0) as client:
        response = client.get("/file")
    assert response.status_code == 200
    assert response.headers["content-length"] == str(SIZE)
    assert hashlib.sha256(response.content).digest() == hashlib.sha256(data).digest()


def test_head_of_a_file_has_its_length_and_no_body(server: Server, data: bytes) -> None:
    with server.client(timeout=15.0) as client:
        response = client.head("/file")
    assert response.status_code == 200
    assert response.headers["content-length"] == str(SIZE)
    assert response.content == b""
