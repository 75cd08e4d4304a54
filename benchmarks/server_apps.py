"""The hello apps the server tier serves, importable as ``benchmarks.server_apps:NAME``.

``wsgi_hello`` and ``asgi_hello`` are the native apps (each server's ceiling: the hello
of its own protocol); ``w2a_bridge``, ``w2a_a2wsgi``, ``w2a_baseline`` (ASGI apps, for
uvicorn and hypercorn; ``w2a_baseline_trio`` for hypercorn's trio worker) and
``a2w_bridge``, ``a2w_a2wsgi``, ``a2w_baseline`` (WSGI apps, for gunicorn and waitress)
wrap them. The baselines are the in-process tier's no-adapter floors: one
``run_in_executor`` hop (``trio.to_thread.run_sync`` on trio), one
``run_coroutine_threadsafe`` round trip. The wrapped ones are built on first access, in the server process
that imports them (after gunicorn's fork: no loop thread is started in the master).
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, cast

HELLO = b"Hello, world!"
_HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(HELLO)))]
_ASGI_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(HELLO)).encode())],
}
_ASGI_BODY = {"type": "http.response.body", "body": HELLO}


def wsgi_hello(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response("200 OK", list(_HEADERS))
    return [HELLO]


async def answer_lifespan(receive: Any, send: Any) -> None:
    """Complete both lifespan phases: the benchmark apps have nothing to start."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def asgi_hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await answer_lifespan(receive, send)
        return
    await send(dict(_ASGI_START))
    await send(dict(_ASGI_BODY))


def _with_lifespan(app: Callable[..., Any]) -> Callable[..., Any]:
    """An ASGI app that answers the lifespan itself and hands HTTP to ``app``."""

    async def wrapped(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await answer_lifespan(receive, send)
        else:
            await app(scope, receive, send)

    return wrapped


def _build(name: str) -> Any:
    if name == "w2a_bridge":
        from bridge import WsgiToAsgi

        return WsgiToAsgi(wsgi_hello)
    if name == "w2a_a2wsgi":
        from a2wsgi import WSGIMiddleware

        return WSGIMiddleware(cast(Any, wsgi_hello))
    if name == "a2w_bridge":
        from bridge import AsgiToWsgi

        return AsgiToWsgi(asgi_hello)
    if name == "w2a_baseline":
        from .scenarios_w2a import Baseline as W2ABaseline

        return _with_lifespan(W2ABaseline(wsgi_hello))
    if name == "w2a_baseline_trio":
        from .scenarios_w2a import TrioBaseline as W2ATrioBaseline

        return _with_lifespan(W2ATrioBaseline(wsgi_hello))
    if name == "a2w_baseline":
        from .scenarios_a2w import Baseline as A2WBaseline

        return A2WBaseline(asgi_hello)
    if name == "a2w_a2wsgi":
        from a2wsgi import ASGIMiddleware

        return ASGIMiddleware(cast(Any, asgi_hello))
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_built: dict[str, Any] = {}


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    if name not in _built:
        _built[name] = _build(name)
    return _built[name]


def app(name: str) -> Any:
    """The app called ``name``: for hypercorn, which finds its app with ``eval`` in this
    module's namespace, where a module ``__getattr__`` is not consulted (its target is
    ``asgi:benchmarks.server_apps:app('w2a_bridge')``)."""
    found = globals().get(name)
    return found if found is not None else __getattr__(name)
