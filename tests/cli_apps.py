"""Apps for the command-line tests: good ones of every shape, and ones that break a rule.

Loaded by import path (``tests.cli_apps:NAME``), in-process and by ``bridge serve`` in a
subprocess.
"""

from __future__ import annotations

import functools
import os
import threading
from typing import Any, Iterable, Iterator

from bridge import AsgiToWsgi, WsgiToAsgi
from bridge._types import Environ, Receive, Scope, Send, StartResponse

# -- well-behaved apps, one per shape ------------------------------------------------------


def wsgi_app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """Echoes what a test wants to see: method, SCRIPT_NAME, PATH_INFO, pid, and the body."""
    body = environ["wsgi.input"].read()
    text = (
        f"wsgi {environ['REQUEST_METHOD']} script={environ['SCRIPT_NAME']!r} "
        f"path={environ['PATH_INFO']!r} pid={os.getpid()} body={len(body)}"
    ).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(text)))])
    return [text]


async def asgi_app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                scope["state"]["started_in"] = os.getpid()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                print(f"lifespan shutdown in {os.getpid()}", flush=True)
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    state = scope.get("state") or {}
    text = (
        f"asgi {scope['method']} root={scope['root_path']!r} path={scope['path']!r} "
        f"pid={os.getpid()} started_in={state.get('started_in')} body={len(body)}"
    ).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": text})


class WsgiClass:
    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        return wsgi_app(environ, start_response)


class AsgiClass:
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await asgi_app(scope, receive, send)


class Asgi2App:
    """ASGI 2: instantiated with the scope, then awaited with (receive, send)."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope

    async def __call__(self, receive: Receive, send: Send) -> None:
        await asgi_app(self.scope, receive, send)


wsgi_instance = WsgiClass()
asgi_instance = AsgiClass()
asgi_partial = functools.partial(asgi_app)
wrapped_wsgi = WsgiToAsgi(wsgi_app)  # already ASGI: served as it is on an ASGI server
wrapped_asgi = AsgiToWsgi(asgi_app)  # already WSGI: served as it is on a WSGI server
app = wsgi_app  # found when the target names only the module


def create_wsgi_app() -> Any:
    return wsgi_app


def failing_factory() -> Any:
    raise RuntimeError("database is down")


# -- not apps ------------------------------------------------------------------------------

not_callable = {"a": 1}


def takes_nothing() -> None:
    return None


def takes_one(scope: object) -> None:
    return None


def takes_three_sync(scope: object, receive: object, send: object) -> None:
    return None


async def takes_two_async(environ: object, start_response: object) -> None:
    return None


def takes_anything(*args: object) -> None:
    return None


# -- WSGI apps that break a rule -----------------------------------------------------------


def wsgi_bad_status(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    start_response("200OK", [("Content-Type", "text/plain")])
    return [b"x"]


def wsgi_int_status(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    start_response(200, [])  # type: ignore[arg-type]
    return [b"x"]


def wsgi_hop_by_hop(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Connection", "close")])
    return [b"x"]


def wsgi_header_newline(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", [("X-Bad", "a\r\nSet-Cookie: evil=1")])
    return [b"x"]


def wsgi_str_body(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return ["text, not bytes"]  # type: ignore[list-item]


def wsgi_returns_bytes(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return b"a bytes object"  # type: ignore[return-value]


def wsgi_no_start(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    return [b"body without a status"]


def wsgi_start_twice(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", [])
    start_response("500 Oops", [])
    return [b"x"]


def wsgi_short_body(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Length", "10")])
    return [b"only5"]


def wsgi_204_body(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    start_response("204 No Content", [])
    return [b"a body where none may be"]


def wsgi_write(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"written")
    return []


def wsgi_raises_on_post(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    if environ["REQUEST_METHOD"] == "POST":
        raise ZeroDivisionError("division by zero")
    return wsgi_app(environ, start_response)


def wsgi_generator_raises(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
    start_response("200 OK", [])
    yield b"first"
    raise ValueError("broke mid-stream")


# -- ASGI apps that break a rule -----------------------------------------------------------


def _asgi(messages: list[dict[str, Any]]) -> Any:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            raise RuntimeError("no lifespan")  # how apps say they have none
        for message in messages:
            await send(message)

    return app


_start = {"type": "http.response.start", "status": 200, "headers": []}
_end = {"type": "http.response.body", "body": b"ok"}

asgi_str_status = _asgi([{"type": "http.response.start", "status": "200 OK", "headers": []}, _end])
asgi_upper_header = _asgi(
    [{"type": "http.response.start", "status": 200, "headers": [(b"Content-Type", b"text/plain")]}, _end]
)
asgi_str_headers = _asgi([{"type": "http.response.start", "status": 200, "headers": [("a", "b")]}, _end])
asgi_body_first = _asgi([_end])
asgi_start_twice = _asgi([_start, _start, _end])
asgi_str_body = _asgi([_start, {"type": "http.response.body", "body": "text"}])
asgi_incomplete = _asgi([_start, {"type": "http.response.body", "body": b"x", "more_body": True}])
asgi_nothing = _asgi([])
asgi_after_end = _asgi([_start, _end, {"type": "http.response.body", "body": b"late"}])
asgi_wrong_type = _asgi([{"type": "websocket.send", "text": "hi"}])
asgi_long_body = _asgi(
    [{"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"1")]}, _end]
)
asgi_transfer_encoding = _asgi(
    [{"type": "http.response.start", "status": 200, "headers": [(b"transfer-encoding", b"chunked")]}, _end]
)


async def asgi_startup_fails(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "no database"})
        return
    await asgi_app(scope, receive, send)


async def asgi_hangs_on_post(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "http" and scope["method"] == "POST":
        import anyio

        await anyio.sleep_forever()
    await asgi_app(scope, receive, send)


def wsgi_bare_status(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    start_response("200", [("Content-Type", "text/plain")])  # no reason phrase
    return [b"x"]


def wsgi_raises(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    raise RuntimeError("the database is down")


#: Set by a test to let the hung requests of wsgi_hangs_on_post go (threads do not leak).
release_hung = threading.Event()


def wsgi_hangs_on_post(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    if environ["REQUEST_METHOD"] == "POST":
        release_hung.wait(60)
    return wsgi_app(environ, start_response)


def make_app(kind: str = "wsgi", *, wrapped: bool = False) -> Any:
    """A factory with arguments, as gunicorn's ``'MODULE:make_app("asgi")'`` calls it."""
    app: Any = asgi_app if kind == "asgi" else wsgi_app
    if wrapped:
        app = AsgiToWsgi(app) if kind == "asgi" else WsgiToAsgi(app)
    return app


async def asgi_startup_raises(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await receive()
        raise RuntimeError("cannot reach the database")
    await asgi_app(scope, receive, send)


def _connect_to_database() -> None:
    raise ConnectionRefusedError("cannot reach the database")


#: Already an adapter, with a startup hook that fails: served as it is on an ASGI server.
wrapped_wsgi_startup_fails = WsgiToAsgi(wsgi_app, on_startup=[_connect_to_database])
