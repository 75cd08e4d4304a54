"""Nothing of a finished request stays alive: with the cyclic garbage collector off,
the objects an app creates for a request die by reference counting once the request
ends, by whichever path it ends (complete, app error before or after the response
starts, no response, client gone mid-stream). A reference cycle through a stored
exception (its traceback holds the frames that hold the request) would keep them
until a full collection: a generator's ``finally`` (closing a cursor, a file, a lock)
would then not run when the client leaves.

Both directions, both backends.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
import weakref
from typing import Any, Callable, Iterator, Literal

import anyio
import pytest
from fastapi import FastAPI
from fastapi.responses import StreamingResponse

from bridge import AsgiToWsgi, WsgiToAsgi

from .asgi_apps import Receive, Send, StartResponse, body, make_environ, start
from .asgi_driver import Client, http_scope

_DEADLINE = 5.0

Backend = Literal["asyncio", "trio"]


class Token:
    """Something an app makes per request; the tests watch it die."""


@pytest.fixture
def no_gc() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def wait_dead(alive: weakref.WeakSet[Token], what: str) -> None:
    deadline = time.monotonic() + _DEADLINE
    while alive and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not alive, f"{what}: {len(alive)} request object(s) still alive with gc disabled"


# -- ASGI app under AsgiToWsgi ---------------------------------------------------------------


class Boom(Exception):
    pass


def asgi_app(mode: str, alive: weakref.WeakSet[Token], finalized: threading.Event) -> Any:
    async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        token = Token()
        alive.add(token)
        try:
            while True:
                message = await receive()
                if message["type"] != "http.request" or not message.get("more_body"):
                    break
            if mode == "error-before-start":
                raise Boom(token)
            if mode == "no-response":
                return
            await send(start())
            if mode == "complete":
                await send(body(b"done"))
                return
            await send(body(b"first", more=True))
            if mode == "error-after-start":
                raise Boom(token)
            while True:  # "abandoned": streams until the client leaves
                await send(body(b"more", more=True))
                await anyio.sleep(0.001)
        finally:
            finalized.set()

    return app


A2W_MODES = ["complete", "error-before-start", "error-after-start", "no-response", "abandoned"]


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@pytest.mark.parametrize("mode", A2W_MODES)
@pytest.mark.parametrize("upload", [0, 3 * 1024 * 1024], ids=["no-body", "streamed-body"])
def test_asgi_to_wsgi_request_objects_die_by_refcount(
    no_gc: None, backend: Backend, mode: str, upload: int
) -> None:
    alive: weakref.WeakSet[Token] = weakref.WeakSet()
    finalized = threading.Event()
    adapter = AsgiToWsgi(
        asgi_app(mode, alive, finalized), backend=backend, lifespan="off", disconnect_grace=0.2
    )
    try:
        adapter.start()
        for _ in range(3):
            finalized.clear()
            environ = make_environ(method="POST", body=b"x" * upload)
            start_response = StartResponse()
            try:
                result = adapter(environ, start_response)
                try:
                    for chunk in result:
                        if mode == "abandoned":
                            break  # the client leaves: the server closes the response
                        del chunk
                finally:
                    close = getattr(result, "close", None)
                    if close is not None:
                        close()
                    del close, result
            except Exception as exc:
                assert mode.startswith("error") or mode == "no-response", exc
                del exc
            else:
                assert mode in ("complete", "abandoned"), mode
            del environ, start_response
            assert finalized.wait(_DEADLINE), "the app's finally did not run"
            wait_dead(alive, f"AsgiToWsgi {mode}")
    finally:
        adapter.close()


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_abandoned_fastapi_streaming_generator_is_closed_within_grace(no_gc: None, backend: Backend) -> None:
    """FastAPI's StreamingResponse: when the client leaves, the generator's finally runs
    within disconnect_grace, by reference counting alone."""
    closed = threading.Event()
    api = FastAPI()

    @api.get("/")
    def stream() -> StreamingResponse:
        def chunks() -> Iterator[bytes]:
            try:
                while True:
                    yield b"chunk\n"
                    time.sleep(0.001)
            finally:
                closed.set()

        return StreamingResponse(chunks())

    grace = 0.5
    adapter = AsgiToWsgi(api, backend=backend, lifespan="off", disconnect_grace=grace)
    try:
        result = adapter(make_environ(), StartResponse())
        assert next(iter(result))
        began = time.monotonic()
        result.close()  # type: ignore[attr-defined]
        del result
        assert closed.wait(grace + 2.0), "the abandoned generator's finally never ran"
        assert time.monotonic() - began < grace + 2.0
    finally:
        adapter.close()


# -- WSGI app under WsgiToAsgi ---------------------------------------------------------------


def wsgi_app(mode: str, alive: weakref.WeakSet[Token], closed: threading.Event) -> Callable[..., Any]:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        token = Token()
        alive.add(token)
        environ["test.token"] = token  # the environ must die too (wsgi.input refers back)
        environ["wsgi.input"].read()
        if mode == "error-before-start":
            closed.set()  # no iterable: nothing to close
            raise Boom(token)

        def chunks() -> Iterator[bytes]:
            held = token  # the generator's frame holds it too
            try:
                start_response("200 OK", [("Content-Type", "text/plain")])
                if mode == "complete":
                    yield b"done"
                    return
                yield b"first"
                if mode == "error-after-start":
                    raise Boom(held)
                while True:
                    yield b"more"
                    time.sleep(0.001)
            finally:
                closed.set()

        return chunks()

    return app


W2A_MODES = ["complete", "error-before-start", "error-after-start", "abandoned"]


@pytest.mark.anyio
@pytest.mark.parametrize("mode", W2A_MODES)
@pytest.mark.parametrize("upload", [0, 3 * 1024 * 1024], ids=["no-body", "streamed-body"])
async def test_wsgi_to_asgi_request_objects_die_by_refcount(no_gc: None, mode: str, upload: int) -> None:
    alive: weakref.WeakSet[Token] = weakref.WeakSet()
    closed = threading.Event()
    adapter = WsgiToAsgi(wsgi_app(mode, alive, closed))
    for _ in range(3):
        closed.clear()
        piece = 64 * 1024
        client = Client(
            [b"x" * piece] * (upload // piece),
            send_raises_after=3 if mode == "abandoned" else None,  # start, first, more: then gone
        )
        scope = http_scope(
            method="POST", headers=[(b"host", b"t"), (b"content-length", str(upload).encode())]
        )
        try:
            await client.run(adapter, scope, timeout=_DEADLINE)
        except Boom as exc:
            assert mode.startswith("error"), exc
            del exc
        else:
            assert not mode.startswith("error"), mode
        del client, scope
        assert await anyio.to_thread.run_sync(closed.wait, _DEADLINE), "close() never reached the generator"
        deadline = time.monotonic() + _DEADLINE
        while alive and time.monotonic() < deadline:
            await anyio.sleep(0.01)
        assert not alive, f"WsgiToAsgi {mode}: request objects still alive with gc disabled"


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_requests_refused_after_a_failed_startup_leave_nothing_behind(no_gc: None, backend: Backend) -> None:
    """Every request after a failed lifespan startup raises LifespanError: a fresh one,
    so no request's frames (holding its environ) chain onto a stored traceback."""
    from bridge import LifespanError

    async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await receive()
            await send({"type": "lifespan.startup.failed", "message": "no database"})

    alive: weakref.WeakSet[Token] = weakref.WeakSet()
    adapter = AsgiToWsgi(app, backend=backend, lifespan="on")
    try:
        errors = []
        for _ in range(3):
            environ = make_environ()
            environ["test.token"] = token = Token()
            alive.add(token)
            del token
            with pytest.raises(LifespanError, match="no database") as caught:
                adapter(environ, StartResponse())
            errors.append(caught.value)
            del environ, caught
        assert len({id(e) for e in errors}) == 3
        del errors
        assert not alive, f"{len(alive)} refused request(s) still alive"
    finally:
        adapter.close()


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_app_raising_after_a_head_response_was_handed_over_leaves_nothing_behind(
    no_gc: None, backend: Backend
) -> None:
    """HEAD: bridge answers at the first empty body message (no bytes will come), and
    the WSGI server reads no more. An app that raises right after that message has its
    error queued behind it, where nobody takes it: it must not stay there (found by the
    property tests on Python 3.9)."""
    alive: weakref.WeakSet[Token] = weakref.WeakSet()

    async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        token = Token()
        alive.add(token)
        await send(start())
        await send(body(b"", more=True))
        raise Boom(token)  # before the WSGI thread has even woken up, most times

    # Its log record (with the traceback) would be kept by pytest's log capture.
    logger = logging.getLogger("bridge.asgi_to_wsgi")
    logger.disabled = True
    adapter = AsgiToWsgi(app, backend=backend, lifespan="off", disconnect_grace=0.2)
    try:
        for _ in range(5):
            result = adapter(make_environ(method="HEAD"), StartResponse())
            assert list(result) == []
            del result
            wait_dead(alive, "AsgiToWsgi HEAD, app error right after the first empty body")
    finally:
        logger.disabled = False
        adapter.close()
