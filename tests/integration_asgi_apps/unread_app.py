"""A raw ASGI app for ``test_unread_body``, served through ``AsgiToWsgi`` (``app``) with
its defaults (``preload_body`` 1 MiB: a larger body streams to the app, which here
never reads it) and ``max_body_size`` 3 MiB (a larger declared body is answered 413
before the app runs).

* ``GET /health``: 200, ``{"pid": ...}``.
* ``POST /ignore``: answers ``ignored`` without reading the request body; ``?stream=1``:
  in two body messages (a streamed response); ``?file=1``: an
  ``http.response.pathsend`` of a small file.
* anything else: 200, the request's method and path (``GET /next`` -> ``GET /next``).
"""

from __future__ import annotations

import json
import os

from bridge import AsgiToWsgi
from bridge._types import Receive, Scope, Send

from . import markers

#: The file ``/ignore?file=1`` sends.
FILE_BODY = b"ignored, from a file\n"


def _file() -> str:
    path = markers.marker_dir() / "unread-file.txt"
    if not path.exists():  # written whole, then renamed: no worker sends half of it
        tmp = path.with_name(f".tmp-unread-{os.getpid()}")
        tmp.write_bytes(FILE_BODY)
        os.replace(tmp, path)
    return str(path)


async def unread(scope: Scope, receive: Receive, send: Send) -> None:
    assert scope["type"] == "http", scope["type"]
    path, query = scope["path"], scope["query_string"]
    headers = [(b"content-type", b"text/plain")]
    if path == "/health":
        data = json.dumps({"pid": os.getpid()}).encode()
    elif path == "/ignore" and query == b"file=1":
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.pathsend", "path": _file()})
        return
    elif path == "/ignore" and query == b"stream=1":
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"ign", "more_body": True})
        await send({"type": "http.response.body", "body": b"ored"})
        return
    elif path == "/ignore":
        data = b"ignored"
    else:
        data = f"{scope['method']} {path}".encode()
    headers.append((b"content-length", str(len(data)).encode()))
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": data})


#: Larger declared bodies are answered 413 without the app.
MAX_BODY = 3 * 1024 * 1024
app = AsgiToWsgi(unread, backend=markers.BACKEND, lifespan="off", max_body_size=MAX_BODY)
