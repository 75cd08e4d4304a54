"""Files without a copy through Python: Flask's ``send_file`` and Django's
``FileResponse`` return ``wsgi.file_wrapper(file)``; on a server that offers ASGI's
Path Send extension (granian), bridge hands the server the file's path instead of its
bytes. On one that does not (uvicorn), the file is read in the worker, as before.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from .servers import Server, serve

APP = "tests.integration_wsgi_apps.apps.async_views:app"
SIZE = 8 * 1024 * 1024 + 123

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


@pytest.fixture(scope="module")
def data_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pathsend") / "download.bin"
    path.write_bytes(os.urandom(SIZE))
    return path


@pytest.fixture(scope="module", params=["granian", "uvicorn"])
def server(request: pytest.FixtureRequest, data_file: Path) -> Server:
    return serve(request, request.param, APP, env={"BRIDGE_TEST_FILE": str(data_file)})


@pytest.mark.parametrize("framework", ["flask", "django"])
def test_a_file_response_arrives_whole_sent_by_path_where_the_server_can(
    server: Server, data_file: Path, framework: str
) -> None:
    with server.client() as client:
        before = int(client.get("/asgi/pathsends").text)
        response = client.get(f"/{framework}/file")
        after = int(client.get("/asgi/pathsends").text)
    assert response.status_code == 200
    assert response.headers["content-length"] == str(SIZE)
    assert hashlib.sha256(response.content).hexdigest() == hashlib.sha256(data_file.read_bytes()).hexdigest()
    assert after - before == (1 if server.kind == "granian" else 0)


def test_head_of_a_file_sends_no_body(server: Server) -> None:
    with server.client() as client:
        before = int(client.get("/asgi/pathsends").text)
        response = client.head("/flask/file")
        after = int(client.get("/asgi/pathsends").text)
    assert response.status_code == 200
    assert response.content == b""
    assert after == before
