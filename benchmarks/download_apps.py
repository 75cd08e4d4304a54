"""The apps ``benchmarks.downloads`` serves, importable as ``benchmarks.download_apps:NAME``.

``GET /`` answers the benchmark's hello (readiness); ``GET /file`` sends the file named
by the ``BENCH_DOWNLOAD_FILE`` environment variable, with its Content-Length:

* ``wsgi_file``: a WSGI app returning ``environ["wsgi.file_wrapper"](file)`` (werkzeug's
  where the server has none), as Flask's ``send_file`` does;
* ``asgi_file``: an ASGI app sending ``http.response.pathsend`` when the server offers
  the Path Send extension (as Starlette's ``FileResponse`` does), else the file's bytes
  in 256 KiB messages read in a worker thread; ``/file?bytes`` always sends bytes;
* the wrapped ones (``w2a_bridge``, ``w2a_a2wsgi``, ``a2w_bridge``, ``a2w_a2wsgi``) are
  built on first access, in the server process (after gunicorn's fork).
"""

from __future__ import annotations

import os
from typing import Any, Callable, Iterable

import anyio.to_thread
from werkzeug.wsgi import FileWrapper

from .server_apps import HELLO, answer_lifespan

CHUNK = 256 * 1024


def _file() -> str:
    return os.environ["BENCH_DOWNLOAD_FILE"]


def wsgi_file(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    if environ.get("PATH_INFO") != "/file":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(HELLO)))])
        return [HELLO]
    path = _file()
    start_response(
        "200 OK",
        [("Content-Type", "application/octet-stream"), ("Content-Length", str(os.path.getsize(path)))],
    )
    # As werkzeug's wrap_file (Flask's send_file): the server's wrapper, else werkzeug's
    # (a2wsgi offers none: PEP 3333 makes it optional).
    wrapper = environ.get("wsgi.file_wrapper", FileWrapper)
    return wrapper(open(path, "rb"), CHUNK)  # type: ignore[no-any-return]  # it closes the file


async def asgi_file(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await answer_lifespan(receive, send)
        return
    if scope["path"] != "/file":
        headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(HELLO)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": HELLO})
        return
    path = _file()
    headers = [
        (b"content-type", b"application/octet-stream"),
        (b"content-length", str(os.path.getsize(path)).encode()),
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    extensions = scope.get("extensions") or {}
    if "http.response.pathsend" in extensions and scope.get("query_string") != b"bytes":
        await send({"type": "http.response.pathsend", "path": path})
        return
    with open(path, "rb") as file:
        while True:
            data = await anyio.to_thread.run_sync(file.read, CHUNK)
            if not data:
                break
            await send({"type": "http.response.body", "body": data, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


def _build(name: str) -> Any:
    if name == "w2a_bridge":
        from bridge import WsgiToAsgi

        return WsgiToAsgi(wsgi_file)
    if name == "w2a_a2wsgi":
        from a2wsgi import WSGIMiddleware

        from .server_apps import _with_lifespan

        return _with_lifespan(WSGIMiddleware(wsgi_file))
    if name == "a2w_bridge":
        from bridge import AsgiToWsgi

        return AsgiToWsgi(asgi_file)
    if name == "a2w_a2wsgi":
        from a2wsgi import ASGIMiddleware

        return ASGIMiddleware(asgi_file)
    raise AttributeError(name)


_built: dict[str, Any] = {}


def __getattr__(name: str) -> Any:
    if name.startswith(("w2a_", "a2w_")):
        if name not in _built:
            _built[name] = _build(name)
        return _built[name]
    raise AttributeError(name)
