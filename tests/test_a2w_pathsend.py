"""AsgiToWsgi and ASGI's Path Send extension: the scope offers ``http.response.pathsend``;
an app that sends it (Starlette's ``FileResponse`` does) has its file opened in the WSGI
thread and handed to the server's ``wsgi.file_wrapper`` (gunicorn then uses sendfile),
or iterated in blocks where the server has none. Errors before the response starts fail
the request (500); HEAD sends no body. Driven in process, on asyncio and trio; the same
on real servers: ``tests/integration_asgi_apps/test_pathsend.py``.
"""

from __future__ import annotations

import gc
import os
from pathlib import Path
from typing import Any, ClassVar, Iterator

import pytest
from starlette.applications import Starlette
from starlette.responses import FileResponse
from starlette.routing import Route

from bridge import AsgiToWsgi, ResponseError
from bridge._types import Scope
from tests.thread_leaks import no_thread_leaks  # noqa: F401 - autouse fixture

from .asgi_apps import Receive, Send, body, call, make_environ, start

BACKENDS = ["asyncio", "trio"]
#: An environ with the server's file wrapper.
WRAPPED: dict[str, Any] = {"wsgi.file_wrapper": None}


class ServerWrapper:
    """A WSGI server's ``wsgi.file_wrapper`` (gunicorn's and wsgiref's have this shape):
    the server recognises its own instances and sends ``filelike`` its own way."""

    instances: ClassVar[list[ServerWrapper]] = []

    def __init__(self, filelike: Any, blksize: int = 8192) -> None:
        self.filelike = filelike
        self.blksize = blksize
        ServerWrapper.instances.append(self)

    def __iter__(self) -> Iterator[bytes]:
        while True:
            data = self.filelike.read(self.blksize)
            if not data:
                return
            yield data

    def close(self) -> None:
        self.filelike.close()


WRAPPED["wsgi.file_wrapper"] = ServerWrapper


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    path = tmp_path / "report.bin"
    path.write_bytes(os.urandom(300_000))
    return path


@pytest.fixture
def adapter(request: pytest.FixtureRequest) -> Iterator[AsgiToWsgi]:
    apps: list[AsgiToWsgi] = []

    def make(app: Any, **options: Any) -> AsgiToWsgi:
        made = AsgiToWsgi(app, backend=request.param, lifespan="off", **options)
        apps.append(made)
        return made

    yield make  # type: ignore[misc]
    for made in apps:
        made.close()


def starlette_app(path: Path) -> Starlette:
    async def download(request: Any) -> FileResponse:
        return FileResponse(path, media_type="application/octet-stream")

    return Starlette(routes=[Route("/file", download)])


@pytest.mark.parametrize("adapter", BACKENDS, indirect=True)
def test_the_scope_offers_path_send(adapter: Any) -> None:
    seen: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope)
        await send(start())
        await send(body(b"ok"))

    assert call(adapter(app)).body == b"ok"
    assert seen[0]["extensions"]["http.response.pathsend"] == {}


@pytest.mark.parametrize("adapter", BACKENDS, indirect=True)
def test_a_starlette_file_response_goes_to_the_servers_file_wrapper(adapter: Any, data_file: Path) -> None:
    ServerWrapper.instances.clear()
    environ = make_environ("/file", **WRAPPED)
    response = call(adapter(starlette_app(data_file)), environ)
    assert response.status == "200 OK"
    assert response.header("content-length") == str(data_file.stat().st_size)
    assert response.body == data_file.read_bytes()
    # The server got its own wrapper (what gunicorn checks before it uses sendfile)
    # around the file itself, and closing it closed the file.
    assert response.result is ServerWrapper.instances[0]
    filelike = ServerWrapper.instances[0].filelike
    assert os.path.samefile(filelike.name, data_file)
    assert filelike.closed


@pytest.mark.parametrize("adapter", BACKENDS, indirect=True)
def test_without_a_file_wrapper_the_file_is_iterated(adapter: Any, data_file: Path) -> None:
    response = call(adapter(starlette_app(data_file)), make_environ("/file"))
    assert response.status == "200 OK"
    assert response.body == data_file.read_bytes()
    assert len(response.chunks) > 1  # in blocks, never the whole file in memory at once


@pytest.mark.parametrize("adapter", BACKENDS, indirect=True)
def test_head_sends_no_file(adapter: Any, data_file: Path) -> None:
    ServerWrapper.instances.clear()
    environ = make_environ("/file", method="HEAD", **WRAPPED)
    response = call(adapter(starlette_app(data_file)), environ)
    assert response.status == "200 OK"
    assert response.header("content-length") == str(data_file.stat().st_size)
    assert response.body == b""
    assert ServerWrapper.instances == []


def path_app(path: str, *, length: int | None = None, before: bytes | None = None) -> Any:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", b"text/plain")]
        if length is not None:
            headers.append((b"content-length", str(length).encode()))
        await send(start(200, headers))
        if before is not None:
            await send(body(before, more=True))
        await send({"type": "http.response.pathsend", "path": path})

    return app


@pytest.mark.parametrize("adapter", BACKENDS, indirect=True)
@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing", "http.response.pathsend: cannot send '{dir}/missing.bin': No such file or directory"),
        ("directory", "http.response.pathsend: cannot send '{dir}': not a regular file"),
        ("relative", "http.response.pathsend 'path' must be an absolute file path, got 'report.bin'"),
        ("wrong-length", "the ASGI app declared Content-Length: 7 and sent '{file}', a file of 300000 bytes"),
        ("after-body", "the ASGI app sent http.response.pathsend after http.response.body"),
    ],
)
def test_a_file_that_cannot_be_sent_fails_the_request_before_it_starts(
    adapter: Any, data_file: Path, case: str, message: str
) -> None:
    path = {
        "missing": str(data_file.parent / "missing.bin"),
        "directory": str(data_file.parent),
        "relative": "report.bin",
    }.get(case, str(data_file))
    app = path_app(
        path,
        length=7 if case == "wrong-length" else None,
        before=b"x" if case == "after-body" else None,
    )
    environ = make_environ("/", **WRAPPED)
    if case == "after-body":
        # The body began: the error ends the started response (the server aborts it).
        with pytest.raises(ResponseError, match=r"after http\.response\.body"):
            call(adapter(app), environ)
        return
    with pytest.raises(ResponseError) as raised:
        call(adapter(app), environ)
    assert str(raised.value).startswith(message.format(dir=data_file.parent, file=data_file))
    gc.collect()
