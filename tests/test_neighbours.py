"""Neighbours that misbehave, in process: a middleware whose receive() replays the
request, an ASGI app that answers the lifespan scope as if it were a request, and
libraries that treat the adapter as a2wsgi's (``.app``). The adapter must neither
freeze the event loop, nor spin, nor wait out a timeout, nor break the drop-in.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Any, Callable, Iterator, Literal

import anyio
import pytest

from bridge import AsgiToWsgi, WsgiToAsgi
from bridge._types import Message

from .asgi_apps import LogWaiter, Receive, Send, call
from .asgi_driver import http_scope

Backend = Literal["asyncio", "trio"]

# -- a receive() that repeats the request (WSGI to ASGI) ------------------------------------


def slow_stream(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    for _ in range(10):
        yield b"x"
        time.sleep(0.05)  # half a second in all, while the loop watches receive()


@pytest.mark.anyio
@pytest.mark.parametrize("suspends", [False, True], ids=["never-suspends", "suspends"])
async def test_receive_repeating_the_request_neither_freezes_the_loop_nor_spins(suspends: bool) -> None:
    """Middleware that caches the body and answers every receive() with the same
    http.request: the loop goes on serving others, and receive() is not hammered."""
    calls = 0
    replay: Message = {"type": "http.request", "body": b"", "more_body": False}

    async def receive() -> Message:
        nonlocal calls
        calls += 1
        if suspends:
            await anyio.sleep(0)
        return replay

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    ticks = 0

    async def neighbour() -> None:  # another request's task on the same loop
        nonlocal ticks
        while True:
            ticks += 1
            await anyio.sleep(0.01)

    async with anyio.create_task_group() as tg:
        tg.start_soon(neighbour)
        with anyio.fail_after(10):
            await WsgiToAsgi(slow_stream)(http_scope(), receive, send)
        tg.cancel_scope.cancel()

    assert b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body") == b"x" * 10
    assert ticks >= 10, f"the event loop ran other tasks only {ticks} times in half a second"
    # A bounded number of calls, however long the stream: the adapter backs off.
    assert calls < 30, f"receive() was called {calls} times in half a second"


@pytest.mark.anyio
async def test_disconnect_after_replayed_requests_is_still_seen() -> None:
    """A middleware that replays the request a few times and then passes the server's
    receive() on: the client leaving is still noticed, and the stream stops."""
    calls = 0
    gone = anyio.Event()
    closed = threading.Event()

    async def receive() -> Message:
        nonlocal calls
        calls += 1
        if calls <= 3:
            return {"type": "http.request", "body": b"", "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    def endless(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        start_response("200 OK", [])
        try:
            while True:
                yield b"tick"
                time.sleep(0.01)
        finally:
            closed.set()

    sent = 0

    async def send(message: Message) -> None:
        nonlocal sent
        sent += 1
        if sent == 5:
            gone.set()  # the client leaves; uvicorn's send() then stays silent

    with anyio.fail_after(10):
        await WsgiToAsgi(endless)(http_scope(), receive, send)
    assert closed.is_set()


# -- an ASGI app that does not check scope["type"] (AsgiToWsgi, lifespan="auto") ----------


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_app_answering_lifespan_with_a_response_is_served_at_once(backend: Backend) -> None:
    """It sends http.response.start for the lifespan scope, swallows the error and waits
    on receive(): bridge takes that as "no lifespan", logs one line, and serves."""

    async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        try:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"hello"})
        except Exception:  # the careless app this test is about
            pass
        if scope["type"] == "lifespan":
            await receive()
            await receive()  # waits until shutdown

    log = LogWaiter()
    logger = logging.getLogger("bridge.lifespan")
    logger.addHandler(log)
    logger.setLevel(logging.INFO)
    adapter = AsgiToWsgi(app, backend=backend, startup_timeout=30)
    try:
        done: list[Any] = []
        worker = threading.Thread(target=lambda: done.append(call(adapter)))
        worker.start()
        worker.join(10)
        assert done, "the first request waited for the lifespan startup timeout"
        assert done[0].body == b"hello"
        lines = [r.getMessage() for r in log.records if "lifespan" in r.getMessage()]
        assert len(lines) == 1, lines
        assert "http.response.start" in lines[0] and "serving without it" in lines[0]
    finally:
        logger.removeHandler(log)
        adapter.close()


# -- the drop-in: a2wsgi's attribute ---------------------------------------------------------


def test_wsgi_to_asgi_app_is_the_wrapped_app_and_writable() -> None:
    def first(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        start_response("200 OK", [])
        return [b"first"]

    def second(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        start_response("200 OK", [])
        return [b"second"]

    adapter = WsgiToAsgi(first)
    assert adapter.app is first
    assert adapter.wsgi_app is first
    adapter.app = second  # what Connexion's add_wsgi_middleware() does
    assert adapter.wsgi_app is second

    async def serve() -> bytes:
        from .asgi_driver import request

        exchange = await request(adapter)
        return exchange.body

    assert anyio.run(serve) == b"second"


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_app_swallowing_a_protocol_error_then_waiting_does_not_hold_the_thread(backend: Backend) -> None:
    """The app sends a body before any start, catches bridge's ResponseError, and waits
    in receive() for the client to leave: a WSGI server cannot report that while it
    waits for the response, so the request fails at once (found by the property tests)."""
    from bridge import ResponseError

    got: list[Message] = []

    async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        with contextlib.suppress(ResponseError):  # the careless app this test is about
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        await receive()  # the (empty) request body
        got.append(await receive())  # the disconnect it waits for

    adapter = AsgiToWsgi(app, backend=backend, lifespan="off", disconnect_grace=0.1)
    try:
        outcome: list[BaseException] = []

        def serve() -> None:
            try:
                call(adapter)
            except BaseException as exc:  # recorded for the assertion
                outcome.append(exc)

        worker = threading.Thread(target=serve)
        worker.start()
        worker.join(10)
        assert not worker.is_alive(), "the WSGI thread still waits for a response"
        assert len(outcome) == 1 and isinstance(outcome[0], ResponseError), outcome
        assert "before http.response.start" in str(outcome[0])
        deadline = time.monotonic() + 5
        while not got and time.monotonic() < deadline:
            time.sleep(0.01)
        assert got == [{"type": "http.disconnect"}]
    finally:
        adapter.close()
