"""Flask and Django async views, ``max_body_size``, the disconnect probe, slow uploads
(``spool_body``) and files sent by their path (Path Send), through the bridge on a real
server: ``tests.integration_wsgi_apps.apps.async_views:app``.

An ASGI app of its own at the top, as a FastAPI or Starlette app mounting a legacy app
would be: its lifespan startup makes objects bound to the server's loop (``SHARED``),
``/asgi/set`` sets the event the views wait for, and ``/flask/...`` and ``/django/...``
go to the two WSGI apps through ``WsgiToAsgi``. A view that ran on a loop other than the
server's could neither tell it is the same loop nor wait for that event.
"""

from __future__ import annotations

import asyncio
import io
import os
import sys
import threading
import time
import zlib
from typing import Any

import django
from asgiref.sync import sync_to_async
from django.conf import settings
from flask import Flask, jsonify, request, send_file

from bridge import WsgiToAsgi
from bridge._types import Receive, Scope, Send

settings.configure(
    DEBUG=False,
    SECRET_KEY="bridge-integration-tests-not-secret",
    ROOT_URLCONF=__name__,
    ALLOWED_HOSTS=["*"],
    INSTALLED_APPS=[],
    DATABASES={},
    MIDDLEWARE=[],
    USE_TZ=True,
)
django.setup()

from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.http import FileResponse, HttpRequest, HttpResponse, JsonResponse  # noqa: E402
from django.urls import path  # noqa: E402

#: Made on the server's loop by the lifespan startup.
SHARED: dict[str, Any] = {}
#: What the long poll saw, by token: read back through /flask/poll-result.
POLLS: dict[str, str] = {}
#: The file the /file routes send (set by the test through the environment), and how
#: many responses went out as http.response.pathsend.
FILE = os.environ.get("BRIDGE_TEST_FILE", "")
PATHSENDS = {"count": 0}
BODY_LIMIT = 1000
WAIT = 5.0


def _on_the_servers_loop() -> dict[str, Any]:
    return {
        "same_loop": asyncio.get_running_loop() is SHARED["loop"],
        "loop_thread": threading.current_thread().name,
    }


# -- Flask ---------------------------------------------------------------------------------

flask_app = Flask(__name__)


@flask_app.get("/loop")
async def flask_loop() -> Any:
    return jsonify(_on_the_servers_loop())


@flask_app.get("/wait")
async def flask_wait() -> Any:
    await asyncio.wait_for(SHARED["event"].wait(), WAIT)
    return "woken"


@flask_app.get("/boom")
async def flask_boom() -> Any:
    raise LookupError("raised in a Flask async view")


@flask_app.post("/upload")
def flask_upload() -> Any:
    return f"read {len(request.get_data())} bytes"


@flask_app.get("/hello")
def flask_hello() -> Any:
    return "hello"


@flask_app.get("/poll")
def flask_poll() -> Any:
    """A long poll that stops as soon as its client has left."""
    token = request.args["token"]
    probe = request.environ["bridge.client_disconnected"]
    POLLS[token] = "polling"
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if probe():
            POLLS[token] = "stopped: the client left"
            return "nobody reads this"
        time.sleep(0.01)
    POLLS[token] = "ran to the end"
    return "no news"


@flask_app.get("/file")
def flask_file() -> Any:
    return send_file(FILE, mimetype="application/octet-stream")


@flask_app.get("/poll-result")
def flask_poll_result() -> Any:
    return POLLS.get(request.args["token"], "unknown")


# -- Django --------------------------------------------------------------------------------


async def django_loop(request: HttpRequest) -> HttpResponse:
    result = _on_the_servers_loop()
    # Django's thread-sensitive calls (the ORM's) come back to the WSGI worker thread,
    # which waits in async_to_sync meanwhile: no deadlock.
    result["sync_thread"] = await sync_to_async(lambda: threading.current_thread().name)()
    return JsonResponse(result)


async def django_wait(request: HttpRequest) -> HttpResponse:
    await asyncio.wait_for(SHARED["event"].wait(), WAIT)
    return HttpResponse("woken", content_type="text/plain")


def django_file(request: HttpRequest) -> FileResponse:
    return FileResponse(open(FILE, "rb"), content_type="application/octet-stream")


urlpatterns = [path("loop", django_loop), path("wait", django_wait), path("file", django_file)]

flask_bridge = WsgiToAsgi(flask_app, max_body_size=BODY_LIMIT)
django_bridge = WsgiToAsgi(get_wsgi_application())


def error_page_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """A plain WSGI app that answers its own error with start_response(..., exc_info)."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    try:
        raise LookupError("handled by the app's own error page")
    except LookupError:
        start_response("500 Internal Server Error", [("Content-Type", "text/plain")], sys.exc_info())
        return [b"the app's error page"]


raw_bridge = WsgiToAsgi(error_page_app)


def where_the_body_was(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """Reads its body and says how much, its CRC-32, and whether bridge held it in
    memory or gave it from a file (past ``max_body_memory``)."""
    stream = environ["wsgi.input"]
    where = b"memory" if isinstance(stream, io.BytesIO) else b"file"
    body = stream.read()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"%d %08x %s" % (len(body), zlib.crc32(body), where)]


#: Bodies held in memory over all requests, at most: stalled uploads past it spill to files.
BODY_MEMORY = 256 * 1024
budget_bridge = WsgiToAsgi(where_the_body_was, max_body_memory=BODY_MEMORY)
#: A small pool and the default spool_body: slow uploads must not take its threads.
POOL_THREADS = 4
pool_bridge = WsgiToAsgi(flask_app, max_threads=POOL_THREADS)


# -- the ASGI app on top -----------------------------------------------------------------------


async def _plain(send: Send, text: str) -> None:
    body = text.encode()
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _counting_pathsends(send: Send) -> Send:
    async def counted(message: Any) -> None:
        if message["type"] == "http.response.pathsend":
            PATHSENDS["count"] += 1
        await send(message)

    return counted


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                SHARED["loop"] = asyncio.get_running_loop()
                SHARED["event"] = asyncio.Event()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    path_ = scope["path"]
    if path_ == "/asgi/pathsends":
        await _plain(send, str(PATHSENDS["count"]))
        return
    send = _counting_pathsends(send)
    mounts = (
        ("/flask", flask_bridge),
        ("/django", django_bridge),
        ("/pool", pool_bridge),
        ("/raw", raw_bridge),
        ("/budget", budget_bridge),
    )
    for prefix, bridge in mounts:
        if path_.startswith(prefix + "/"):
            # As Starlette's Mount does: the path keeps the prefix, root_path names it.
            scope = dict(scope, root_path=scope.get("root_path", "") + prefix)
            await bridge(scope, receive, send)
            return
    if path_ == "/asgi/set":
        SHARED["event"].set()
        await _plain(send, "set")
    elif path_ == "/asgi/reset":
        SHARED["event"] = asyncio.Event()
        await _plain(send, "reset")
    else:
        await _plain(send, "ok")  # /health
