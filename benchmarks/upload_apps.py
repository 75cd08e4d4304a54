"""The apps ``benchmarks.slow_uploads`` serves: ``GET /`` answers the benchmark's hello
(readiness); ``POST /upload`` reads the whole body and answers ``read <bytes>``.

``asgi_reader`` is a native ASGI app that counts the body as it arrives (holding none of
it); the wrapped ones put the WSGI app ``wsgi_reader`` behind bridge (with its default
budget, and without one, as before ``max_body_memory``) and a2wsgi. Built on first
access, in the server process.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

from .server_apps import HELLO, answer_lifespan


def wsgi_reader(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    if environ.get("PATH_INFO") != "/upload":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(HELLO)))])
        return [HELLO]
    size = len(environ["wsgi.input"].read())
    body = f"read {size}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


async def asgi_reader(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await answer_lifespan(receive, send)
        return
    size = 0
    more = True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            return  # the client left
        size += len(message.get("body", b""))
        more = message.get("more_body", False)
    body = HELLO if scope["path"] != "/upload" else f"read {size}".encode()
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _build(name: str) -> Any:
    if name == "w2a_bridge":
        from bridge import WsgiToAsgi

        return WsgiToAsgi(wsgi_reader)
    if name == "w2a_bridge_unbounded":
        from bridge import WsgiToAsgi

        return WsgiToAsgi(wsgi_reader, max_body_memory=1 << 62)
    if name == "w2a_a2wsgi":
        from a2wsgi import WSGIMiddleware

        from .server_apps import _with_lifespan

        return _with_lifespan(WSGIMiddleware(wsgi_reader))
    raise AttributeError(name)


_built: dict[str, Any] = {}


def __getattr__(name: str) -> Any:
    if name.startswith("w2a_"):
        if name not in _built:
            _built[name] = _build(name)
        return _built[name]
    raise AttributeError(name)
