"""AsgiToWsgi, driven in process the way a WSGI server drives it: build an environ,
call the adapter, iterate the result, close() it. Every test runs on asyncio and trio.

Waits are bounded (threading.Event.wait(timeout) or anyio.fail_after), so a broken
adapter fails a test rather than hanging the run.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import select
import signal
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterator

import anyio
import pytest
from fastapi import BackgroundTasks, FastAPI, Request
from fastapi.responses import StreamingResponse

from bridge import AppExitError, AsgiToWsgi, ClientDisconnected, LifespanError, ResponseError
from bridge._types import Message, Scope

from .asgi_apps import (
    WAIT,
    BodyRecorder,
    LifespanApp,
    LogWaiter,
    Receive,
    ScopeRecorder,
    Send,
    StartResponse,
    body,
    call,
    make_environ,
    start,
    text_app,
    wait_thread_event,
)

A2W_LOGGER = "bridge.asgi_to_wsgi"


@pytest.fixture(params=["asyncio", "trio"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def loop_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("bridge-") and t.name.endswith("-loop")}


@pytest.fixture
def make_adapter(backend: str) -> Iterator[Callable[..., AsgiToWsgi]]:
    """Builds adapters on the test's backend; closes them all afterwards and checks
    that no loop thread outlives its adapter."""
    before = loop_threads()
    adapters: list[AsgiToWsgi] = []

    def make(app: Any, **kw: Any) -> AsgiToWsgi:
        kw.setdefault("backend", backend)
        adapter = AsgiToWsgi(app, **kw)
        adapters.append(adapter)
        return adapter

    yield make
    for adapter in adapters:
        adapter.close()
    for thread in loop_threads() - before:
        thread.join(WAIT)
        assert not thread.is_alive(), f"{thread.name} leaked"


@pytest.fixture
def a2w_log() -> Iterator[LogWaiter]:
    handler = LogWaiter()
    logger = logging.getLogger(A2W_LOGGER)
    old_level = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(old_level)


def in_thread(fn: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    """Run fn in a daemon thread; the list gets its result or its exception."""
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(fn())
        except BaseException as exc:
            out.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


# -- scope fidelity --------------------------------------------------------------------------------


def test_scope_fidelity(make_adapter: Callable[..., AsgiToWsgi]) -> None:
    app = ScopeRecorder()
    adapter = make_adapter(app, lifespan="off")
    environ = make_environ(
        "/a/b",
        query="x=%E9&y=\xe9",
        SCRIPT_NAME="/app",
        SERVER_PROTOCOL="HTTP/2.0",
        REQUEST_URI="/app/a%2Fb?x=%E9&y=\xe9",
        HTTP_X_LATIN="caf\xe9\xff",
        CONTENT_TYPE="",
        REMOTE_ADDR="10.0.0.7",
        REMOTE_PORT=5555,  # werkzeug's dev server sets an int
        SERVER_NAME="example.com",
        SERVER_PORT="eighty",
    )
    response = call(adapter, environ)
    assert response.status == "200 OK"
    assert response.body == b"ok"
    scope = app.http
    assert scope["type"] == "http"
    assert scope["http_version"] == "2"
    assert scope["root_path"] == "/app"
    assert scope["path"] == "/app/a/b"
    assert scope["raw_path"] == b"/app/a%2Fb"
    assert scope["query_string"] == b"x=%E9&y=\xe9"
    headers = [tuple(h) for h in scope["headers"]]
    assert (b"x-latin", b"caf\xe9\xff") in headers
    assert all(name != b"content-type" for name, _ in headers)
    assert scope["client"] == ["10.0.0.7", 5555]
    assert scope["server"] == ["example.com", None]
    assert scope["wsgi_environ"] is environ
    assert scope["asgi"]["version"] == "3.0"
    assert "state" not in scope  # lifespan off: no state


def test_scope_defaults(make_adapter: Callable[..., AsgiToWsgi]) -> None:
    app = ScopeRecorder()
    adapter = make_adapter(app, lifespan="off")
    environ = make_environ("/x", REMOTE_ADDR="192.0.2.1")
    del environ["SERVER_PROTOCOL"]
    call(adapter, environ)
    scope = app.http
    assert scope["http_version"] == "1.0"  # missing SERVER_PROTOCOL
    assert scope["client"] == ["192.0.2.1", 0]  # missing REMOTE_PORT
    assert scope["raw_path"] is None  # no REQUEST_URI/RAW_URI
    assert scope["server"] == ["127.0.0.1", 80]


def test_stale_request_uri_is_not_raw_path(make_adapter: Callable[..., AsgiToWsgi]) -> None:
    """werkzeug's test EnvironBuilder with a script root leaves REQUEST_URI without
    it, exactly like DispatcherMiddleware does: the target disagrees, so no raw_path."""
    from werkzeug.test import EnvironBuilder

    app = ScopeRecorder()
    adapter = make_adapter(app, lifespan="off")
    environ = EnvironBuilder(path="/items/3", base_url="http://localhost/api").get_environ()
    assert environ["REQUEST_URI"] == "/items/3"
    call(adapter, environ)
    assert app.http["root_path"] == "/api"
    assert app.http["path"] == "/api/items/3"
    assert app.http["raw_path"] is None


def test_latin1_header_round_trip_in_response(make_adapter: Callable[..., AsgiToWsgi]) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        value = dict(scope["headers"])[b"x-in"]
        await send(start(200, [(b"x-out", value), (b"X-Case", b"Kept")]))
        await send(body(b""))

    adapter = make_adapter(app, lifespan="off")
    response = call(adapter, make_environ(HTTP_X_IN="caf\xe9 \x80\xff"))
    assert response.header("x-out") == "caf\xe9 \x80\xff"
    assert ("X-Case", "Kept") in response.headers
    for name, value in response.headers:
        assert type(name) is str and type(value) is str


# -- ASGI 2 ----------------------------------------------------------------------------------------


class Asgi2Class:
    def __init__(self, scope: Scope) -> None:
        assert scope["type"] == "http"
        self.scope = scope

    async def __call__(self, receive: Receive, send: Send) -> None:
        await send(start())
        await send(body(b"asgi2 class " + self.scope["path"].encode()))


def asgi2_function(scope: Scope) -> Callable[[Receive, Send], Any]:
    assert scope["type"] == "http"

    async def instance(receive: Receive, send: Send) -> None:
        await send(start())
        await send(body(b"asgi2 function " + scope["path"].encode()))

    return instance


@pytest.mark.parametrize(
    ("app", "expected"), [(Asgi2Class, b"asgi2 class /p"), (asgi2_function, b"asgi2 function /p")]
)
def test_asgi2_double_callable(make_adapter: Callable[..., AsgiToWsgi], app: Any, expected: bytes) -> None:
    adapter = make_adapter(app)
    assert call(adapter, path="/p").body == expected


# -- lifespan ----------------------------------------------------------------------------------------


def test_lifespan_startup_once_before_concurrent_first_requests(
    make_adapter: Callable[..., AsgiToWsgi],
) -> None:
    app = LifespanApp(startup_delay=0.2, state_init={"db": "pool"})
    adapter = make_adapter(app)
    barrier = threading.Barrier(16, timeout=WAIT)

    def one() -> bytes:
        barrier.wait()
        return call(adapter).body

    with ThreadPoolExecutor(16) as pool:
        bodies = list(pool.map(lambda _: one(), range(16), timeout=WAIT * 2))
    assert app.startups == 1
    assert app.events == ["startup"]
    assert app.seen_started == [True] * 16  # no request ran before startup completed
    assert bodies == [b"['db']"] * 16
    assert adapter.state == {"db": "pool"}


def test_lifespan_state_is_shallow_copied(make_adapter: Callable[..., AsgiToWsgi]) -> None:
    seen: list[dict[str, Any]] = []
    app = LifespanApp(state_init={"counter": 0, "shared": []})

    async def mutating(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            state = scope["state"]
            seen.append(dict(state))
            state["counter"] += 1
            state["added"] = True
            state["shared"].append(len(seen))
        await app(scope, receive, send)

    adapter = make_adapter(mutating)
    call(adapter)
    call(adapter)
    assert seen[0]["counter"] == 0 and "added" not in seen[0]
    assert seen[1]["counter"] == 0 and "added" not in seen[1]  # the first request's changes did not stick
    assert seen[0] is not seen[1]
    assert adapter.state is not None
    assert adapter.state["counter"] == 0 and "added" not in adapter.state
    # A shallow copy: the objects inside are the lifespan's own.
    assert adapter.state["shared"] == [1, 2]


def test_lifespan_auto_with_unsupporting_app(make_adapter: Callable[..., AsgiToWsgi]) -> None:
    app = ScopeRecorder()  # raises AssertionError on the lifespan scope
    adapter = make_adapter(app, lifespan="auto")
    assert call(adapter).body == b"ok"
    assert call(adapter).body == b"ok"
    types = [s["type"] for s in app.scopes]
    assert types == ["lifespan", "http", "http"]  # tried once, then served without it
    assert all("state" not in s for s in app.scopes if s["type"] == "http")
    assert adapter.state is None


def test_lifespan_on_with_unsupporting_app(make_adapter: Callable[..., AsgiToWsgi]) -> None:
    app = ScopeRecorder()
    adapter = make_adapter(app, lifespan="on")
    for _ in range(3):
        with pytest.raises(LifespanError):
            adapter(make_environ(), StartResponse())
    assert [s["type"] for s in app.scopes] == ["lifespan"]


@pytest.mark.parametrize("mode", ["auto", "on"])
def test_lifespan_startup_failed(make_adapter: Callable[..., AsgiToWsgi], mode: str) -> None:
    app = LifespanApp(fail_startups=1)
    adapter = make_adapter(app, lifespan=mode)
    for _ in range(2):
        start_response = StartResponse()
        with pytest.raises(LifespanError, match="no database"):
            adapter(make_environ(), start_response)
        assert not start_response.calls
    assert app.startups == 1
    assert app.scopes == []


def test_lifespan_startup_timeout(make_adapter: Callable[..., AsgiToWsgi]) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await anyio.sleep_forever()

    adapter = make_adapter(app, lifespan="on", startup_timeout=0.2)
    with pytest.raises(LifespanError):
        adapter(make_environ(), StartResponse())


def test_lifespan_shutdown_on_close_and_restart(make_adapter: Callable[..., AsgiToWsgi]) -> None:
    app = LifespanApp(state_init={"k": 1})
    adapter = make_adapter(app)
    assert call(adapter).body == b"['k']"
    assert app.events == ["startup"]
    threads = loop_threads()
    assert len(threads) == 1
    adapter.close()
    assert app.events == ["startup", "shutdown"]
    for thread in threads:
        thread.join(WAIT)
        assert not thread.is_alive()
    adapter.close()  # twice is fine
    assert call(adapter).body == b"['k']"
    assert app.events == ["startup", "shutdown", "startup"]


def test_restart_after_failed_startup(make_adapter: Callable[..., AsgiToWsgi]) -> None:
    """close() promises that "a later request starts everything again": that must
    include a lifespan startup that failed the first time and now succeeds."""
    app = LifespanApp(fail_startups=1, state_init={"k": 1})
    adapter = make_adapter(app, lifespan="on")
    with pytest.raises(LifespanError):
        adapter(make_environ(), StartResponse())
    adapter.close()
    assert call(adapter).body == b"['k']"
    assert app.startups == 2


def test_lifespan_off(make_adapter: Callable[..., AsgiToWsgi]) -> None:
    app = LifespanApp(state_init={"k": 1})
    adapter = make_adapter(app, lifespan="off")
    assert call(adapter).body == b"no state"
    adapter.close()
    assert call(adapter).body == b"no state"
    assert app.startups == 0
    assert app.events == []
    assert adapter.state is None


def test_explicit_start(make_adapter: Callable[..., AsgiToWsgi]) -> None:
    app = LifespanApp()
    adapter = make_adapter(app)
    adapter.start()
    assert app.events == ["startup"]
    call(adapter)
    assert app.startups == 1


# -- request body --------------------------------------------------------------------------------


def kinds(messages: list[Message]) -> list[tuple[str, int, bool]]:
    return [(m["type"], len(m.get("body", b"")), bool(m.get("more_body", False))) for m in messages]


def test_small_body_preloaded_in_one_message(make_adapter: Callable[..., AsgiToWsgi]) -> None:
    app = BodyRecorder()
    adapter = make_adapter(app, lifespan="off")
    data = os.urandom(1000)
    environ = make_environ(method="POST", body=data + b"EXTRA")
    environ["CONTENT_LENGTH"] = str(len(data))
    response = call(adapter, environ)
    assert response.body == data
    assert kinds(app.messages) == [("http.request", 1000, False)]
    assert environ["wsgi.input"].read() == b"EXTRA"  # never read past CONTENT_LENGTH


def test_large_body_streamed_never_past_content_length(make_adapter: Callable[..., AsgiToWsgi]) -> None:
    app = BodyRecorder()
    adapter = make_adapter(app, lifespan="off", preload_body=1024)
    data = os.urandom(300_000)
    environ = make_environ(method="POST", body=data + b"EXTRA")
    environ["CONTENT_LENGTH"] = str(len(data))
    response = call(adapter, environ)
    assert response.body == data
    assert app.received == data
    assert len(app.messages) > 1
    assert all(m["type"] == "http.request" for m in app.messages)
    assert all(m["more_body"] for m in app.messages[:-1])
    assert app.messages[-1]["more_body"] is False
    assert environ["wsgi.input"].read() == b"EXTRA"


def test_empty_body(make_adapter: Callable[..., AsgiToWsgi]) -> None:
    app = BodyRecorder()
    adapter = make_adapter(app, lifespan="off")
    call(adapter, make_environ(CONTENT_LENGTH="0"))
    assert kinds(app.messages) == [("http.request", 0, False)]


def test_chunked_body_read_to_eof_when_input_terminated(make_adapter: Callable[..., AsgiToWsgi]) -> None:
    app = BodyRecorder()
    adapter = make_adapter(app, lifespan="off")
    data = os.urandom(150_000)
    extra: dict[str, Any] = {"wsgi.input": io.BytesIO(data), "wsgi.input_terminated": True}
    environ = make_environ(method="POST", **extra)
    assert "CONTENT_LENGTH" not in environ
    call(adapter, environ)
    assert app.received == data
    assert app.messages[-1]["more_body"] is False
    assert all(m["more_body"] for m in app.messages[:-1])


def test_chunked_body_empty_without_input_terminated(make_adapter: Callable[..., AsgiToWsgi]) -> None:
    app = BodyRecorder()
    adapter = make_adapter(app, lifespan="off")
    stream = io.BytesIO(b"would block forever on a real socket")
    extra: dict[str, Any] = {"wsgi.input": stream}
    environ = make_environ(method="POST", CONTENT_LENGTH="", **extra)
    call(adapter, environ)
    assert kinds(app.messages) == [("http.request", 0, False)]
    assert stream.tell() == 0  # never touched


@pytest.mark.parametrize(
    ("declared", "given"), [(100, 40), (200_000, 150_000)], ids=["preloaded", "streamed"]
)
def test_truncated_body_is_disconnect(
    make_adapter: Callable[..., AsgiToWsgi], declared: int, given: int
) -> None:
    app = BodyRecorder()
    adapter = make_adapter(app, lifespan="off")
    environ = make_environ(method="POST", body=b"x" * given)
    environ["CONTENT_LENGTH"] = str(declared)
    call(adapter, environ)
    assert app.messages[-1] == {"type": "http.disconnect"}
    assert not any(m["type"] == "http.request" and not m.get("more_body", False) for m in app.messages)


def test_body_read_error_is_disconnect(make_adapter: Callable[..., AsgiToWsgi]) -> None:
    class Broken(io.RawIOBase):
        def read(self, size: int = -1) -> bytes:
            raise OSError("connection reset")

    app = BodyRecorder()
    adapter = make_adapter(app, lifespan="off", preload_body=10)
    extra: dict[str, Any] = {"wsgi.input": Broken()}
    call(adapter, make_environ(method="POST", CONTENT_LENGTH="100", **extra))
    assert app.messages[-1] == {"type": "http.disconnect"}


@pytest.mark.parametrize("length", ["abc", "-1", "1.5"])
def test_bad_content_length_is_400(make_adapter: Callable[..., AsgiToWsgi], length: str) -> None:
    app = ScopeRecorder()
    adapter = make_adapter(app, lifespan="off")
    response = call(adapter, make_environ(method="POST", CONTENT_LENGTH=length))
    assert response.status.startswith("400 ")
    assert app.scopes == []


def test_receive_after_body_blocks_until_response_done(make_adapter: Callable[..., AsgiToWsgi]) -> None:
    listener_waiting = threading.Event()
    listener_got: list[Message] = []
    listener_done = threading.Event()
    gate = threading.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        first = await receive()
        assert first["type"] == "http.request" and not first.get("more_body")

        async def listen() -> None:
            listener_waiting.set()
            listener_got.append(await receive())
            listener_done.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(listen)
            await anyio.sleep(0.05)  # give a wrong early disconnect a chance to show
            await send(start())
            await send(body(b"a", more=True))
            assert await wait_thread_event(gate)
            await send(body(b"b", more=True))
            await send(body(b"c"))

    adapter = make_adapter(app, lifespan="off")
    start_response = StartResponse()
    result = adapter(make_environ(), start_response)
    try:
        it = iter(result)
        assert next(it) == b"a"
        assert listener_waiting.is_set()
        assert not listener_done.is_set(), listener_got  # still streaming: receive() must block
        gate.set()
        assert next(it) == b"b"
        assert list(it) == [b"c"]
    finally:
        gate.set()
        result.close()  # type: ignore[attr-defined]
    assert listener_done.wait(WAIT)
    assert listener_got == [{"type": "http.disconnect"}]


# -- response ------------------------------------------------------------------------------------


def test_multi_chunk_response(make_adapter: Callable[..., AsgiToWsgi]) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send(start(200, [(b"content-type", b"text/plain")]))
        await send(body(b"hel", more=True))
        await send(body(b"lo", more=True))
        await send(body(b"!"))

    adapter = make_adapter(app, lifespan="off")
    response = call(adapter)
    assert response.status == "200 OK"
    assert response.body == b"hello!"


def test_complete_response_after_empty_chunks_is_one_element_list(
    make_adapter: Callable[..., AsgiToWsgi],
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send(start(200, [(b"content-type", b"text/plain")]))
        await send(body(b"", more=True))
        await send(body(b"all of it"))

    adapter = make_adapter(app, lifespan="off")
    result = adapter(make_environ(), StartResponse())
    assert type(result) is list
    assert result == [b"all of it"]


def test_single_message_response_is_one_element_list(make_adapter: Callable[..., AsgiToWsgi]) -> None:
    adapter = make_adapter(text_app)
    start_response = StartResponse()
    result = adapter(make_environ(), start_response)
    assert type(result) is list
    assert result == [b"hello"]
    assert start_response.status == "200 OK"
    assert start_response.header("content-length") == "5"


def test_streamed_response_is_an_iterator(make_adapter: Callable[..., AsgiToWsgi]) -> None:
    gates = [threading.Event() for _ in range(3)]

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send(start())
        for i, gate in enumerate(gates):
            await send(body(b"chunk%d" % i, more=True))
            assert await wait_thread_event(gate)
        await send(body(b"end"))

    adapter = make_adapter(app, lifespan="off")
    start_response = StartResponse()
    result = adapter(make_environ(), start_response)
    try:
        assert type(result) is not list
        assert start_response.status == "200 OK"
        it = iter(result)
        chunks = [next(it)]
        for gate in gates:
            gate.set()
            chunks.append(next(it))
        with pytest.raises(StopIteration):
            next(it)
    finally:
        for gate in gates:
            gate.set()
        result.close()  # type: ignore[attr-defined]
    assert chunks == [b"chunk0", b"chunk1", b"chunk2", b"end"]


def test_headers_held_until_first_non_empty_chunk(make_adapter: Callable[..., AsgiToWsgi]) -> None:
    sent_empty = threading.Event()
    gate = threading.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send(start(200, [(b"content-type", b"text/event-stream")]))
        await send(body(b"", more=True))
        sent_empty.set()
        assert await wait_thread_event(gate)
        await send(body(b"", more=True))
        await send(body(b"data: 1\n\n", more=True))
        await send(body(b""))

    adapter = make_adapter(app, lifespan="off")
    start_response = StartResponse()
    thread, out = in_thread(lambda: adapter(make_environ(), start_response))
    try:
        assert sent_empty.wait(WAIT)
        assert not start_response.called.wait(0.2)  # an empty chunk does not start the response
        gate.set()
        thread.join(WAIT)
        assert out, "the WSGI call did not return"
        result = out[0]
        assert start_response.status == "200 OK"
        assert b"".join(result) == b"data: 1\n\n"
        close = getattr(result, "close", None)
        if close is not None:
            close()
    finally:
        gate.set()


@pytest.mark.parametrize(
    ("status", "line"), [(200, "200 OK"), (201, "201 Created"), (404, "404 Not Found"), (299, "299 Unknown")]
)
def test_status_lines(make_adapter: Callable[..., AsgiToWsgi], status: int, line: str) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send(start(status))
        await send(body(b"x"))

    adapter = make_adapter(app, lifespan="off")
    assert call(adapter).status == line


def test_hop_by_hop_headers_dropped(make_adapter: Callable[..., AsgiToWsgi]) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        headers = [
            (b"transfer-encoding", b"chunked"),
            (b"connection", b"close"),
            (b"keep-alive", b"timeout=5"),
            (b"content-type", b"text/plain"),
            (b"set-cookie", b"a=1"),
            (b"set-cookie", b"b=2"),
        ]
        await send(start(200, headers))
        await send(body(b"x"))

    adapter = make_adapter(app, lifespan="off")
    response = call(adapter)
    assert response.headers == [("content-type", "text/plain"), ("set-cookie", "a=1"), ("set-cookie", "b=2")]


def test_bytearray_and_memoryview_bodies(make_adapter: Callable[..., AsgiToWsgi]) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send(start())
        await send({"type": "http.response.body", "body": bytearray(b"ab"), "more_body": True})
        await send({"type": "http.response.body", "body": memoryview(b"cd")})

    adapter = make_adapter(app, lifespan="off")
    response = call(adapter)  # call() asserts every chunk is exactly bytes
    assert response.body == b"abcd"


BAD_RESPONSES = {
    "str header name": [start(200, [("content-type", b"text/plain")])],  # type: ignore[list-item]
    "str header value": [start(200, [(b"content-type", "text/plain")])],  # type: ignore[list-item]
    "header injection": [start(200, [(b"x-a", b"1\r\nx-b: 2")])],
    "body before start": [body(b"x")],
    "start twice": [start(), start()],
    "status 100": [start(100)],
    "status 101": [start(101)],
    "status 103": [start(103)],
    "status 1000": [start(1000)],
    "str status": [{"type": "http.response.start", "status": "200 OK", "headers": []}],
    "missing status": [{"type": "http.response.start", "headers": []}],
    "unknown type": [{"type": "http.response.bogus"}],
    "websocket message": [{"type": "websocket.accept"}],
    "no type": [{"status": 200}],
    "str body": [start(), {"type": "http.response.body", "body": "text"}],
}


@pytest.mark.parametrize("messages", list(BAD_RESPONSES.values()), ids=list(BAD_RESPONSES))
def test_protocol_errors_raise_response_error(
    make_adapter: Callable[..., AsgiToWsgi], messages: list[Message]
) -> None:
    seen: list[BaseException] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        for message in messages:
            try:
                await send(message)
            except BaseException as exc:
                seen.append(exc)
                raise

    adapter = make_adapter(app, lifespan="off")
    start_response = StartResponse()
    with pytest.raises(ResponseError):
        adapter(make_environ(), start_response)
    assert not start_response.calls
    assert len(seen) == 1 and isinstance(seen[0], ResponseError)  # send() raised it to the app


def test_error_before_start_propagates(make_adapter: Callable[..., AsgiToWsgi]) -> None:
    class Boom(Exception):
        pass

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise Boom("before start")

    adapter = make_adapter(app, lifespan="off")
    start_response = StartResponse()
    with pytest.raises(Boom, match="before start"):
        adapter(make_environ(), start_response)
    assert not start_response.calls


def test_error_after_start_before_body_propagates_from_call(make_adapter: Callable[..., AsgiToWsgi]) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send(start())
        await send(body(b"", more=True))
        raise ValueError("after start")

    adapter = make_adapter(app, lifespan="off")
    start_response = StartResponse()
    with pytest.raises(ValueError, match="after start"):
        adapter(make_environ(), start_response)
    assert not start_response.calls  # nothing went out: the server can still answer 500


def test_error_after_first_chunk_propagates_from_iterator(make_adapter: Callable[..., AsgiToWsgi]) -> None:
    gate = threading.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send(start())
        await send(body(b"first", more=True))
        assert await wait_thread_event(gate)
        raise ValueError("mid-stream")

    adapter = make_adapter(app, lifespan="off")
    start_response = StartResponse()
    result = adapter(make_environ(), start_response)
    try:
        assert start_response.status == "200 OK"
        it = iter(result)
        assert next(it) == b"first"
        gate.set()
        with pytest.raises(ValueError, match="mid-stream"):
            next(it)
    finally:
        gate.set()
        result.close()  # type: ignore[attr-defined]


@pytest.mark.parametrize("streamed", [False, True])
def test_error_after_final_body_is_only_logged(
    make_adapter: Callable[..., AsgiToWsgi],
    a2w_log: LogWaiter,
    caplog: pytest.LogCaptureFixture,
    streamed: bool,
) -> None:
    gate = threading.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send(start())
        if streamed:
            await send(body(b"part ", more=True))
        await send(body(b"done"))
        assert await wait_thread_event(gate)
        raise ValueError("background failure")

    adapter = make_adapter(app, lifespan="off")
    caplog.set_level(logging.ERROR, logger=A2W_LOGGER)
    try:
        response = call(adapter)
    finally:
        gate.set()
    assert response.status == "200 OK"
    assert response.body == (b"part done" if streamed else b"done")
    record = a2w_log.wait_for(lambda r: r.exc_info is not None and "background failure" in str(r.exc_info[1]))
    assert record.levelno == logging.ERROR
    # The record reaches caplog's (root) handler right after ours, on the loop thread;
    # close() runs on that thread too, so once it returns the record is there.
    adapter.close()
    logged = [r for r in caplog.records if r.exc_info and isinstance(r.exc_info[1], ValueError)]
    assert len(logged) == 1
    assert call(adapter).status == "200 OK"  # the adapter is unaffected (and restarts)


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
def test_app_exit_becomes_app_exit_error(make_adapter: Callable[..., AsgiToWsgi], exc_type: type) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] == "/exit":
            raise exc_type()
        await text_app(scope, receive, send)

    adapter = make_adapter(app, lifespan="off")
    for _ in range(2):
        with pytest.raises(AppExitError) as info:
            adapter(make_environ("/exit"), StartResponse())
        assert isinstance(info.value.__cause__, exc_type)
        assert call(adapter, path="/ok").body == b"hello"


def test_return_without_start(make_adapter: Callable[..., AsgiToWsgi]) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        return None

    adapter = make_adapter(app, lifespan="off")
    start_response = StartResponse()
    with pytest.raises(ResponseError):
        adapter(make_environ(), start_response)
    assert not start_response.calls


def test_return_after_start_without_final_body(make_adapter: Callable[..., AsgiToWsgi]) -> None:
    async def start_only(scope: Scope, receive: Receive, send: Send) -> None:
        await send(start(204, []))

    async def unfinished(scope: Scope, receive: Receive, send: Send) -> None:
        await send(start())
        await send(body(b"a", more=True))
        await send(body(b"b", more=True))

    response = call(make_adapter(start_only, lifespan="off"))
    assert response.status == "204 No Content"
    assert response.body == b""
    response = call(make_adapter(unfinished, lifespan="off"))
    assert response.status == "200 OK"
    assert response.body == b"ab"


@pytest.mark.parametrize("streamed", [False, True])
def test_head_body_empty_content_length_kept(make_adapter: Callable[..., AsgiToWsgi], streamed: bool) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send(start(200, [(b"content-type", b"text/plain"), (b"content-length", b"11")]))
        if streamed:
            await send(body(b"hello ", more=True))
        await send(body(b"world" if streamed else b"hello world"))

    adapter = make_adapter(app, lifespan="off")
    response = call(adapter, method="HEAD")
    assert response.status == "200 OK"
    assert response.header("content-length") == "11"
    assert response.body == b""
    assert call(adapter).body == b"hello world"


class CancelledByAdapter(Exception):
    """Recorded by a test app when its task is cancelled (on either backend)."""


def test_head_on_endless_stream_answers_at_once(make_adapter: Callable[..., AsgiToWsgi]) -> None:
    """HEAD carries no body bytes, so waiting for the first non-empty chunk would hold
    an endless stream's headers (and the server's thread) forever."""
    errors: list[BaseException] = []
    ended = threading.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send(start(200, [(b"content-type", b"text/event-stream")]))
            while True:
                await send(body(b"data: tick\n\n", more=True))
                await anyio.sleep(0.01)
        except anyio.get_cancelled_exc_class():
            errors.append(CancelledByAdapter())
            raise
        except BaseException as exc:
            errors.append(exc)
            raise
        finally:
            ended.set()

    adapter = make_adapter(app, lifespan="off", disconnect_grace=0.5)
    thread, out = in_thread(lambda: call(adapter, method="HEAD"))
    thread.join(WAIT)
    assert out, "a HEAD request to an endless stream never returned"
    response = out[0]
    assert not isinstance(response, BaseException), response
    assert response.status == "200 OK"
    assert response.header("content-type") == "text/event-stream"
    assert response.body == b""
    assert ended.wait(WAIT), "the app's task is still pending"
    assert isinstance(errors[0], (ClientDisconnected, CancelledByAdapter))


def test_close_during_stream_does_not_look_complete(make_adapter: Callable[..., AsgiToWsgi]) -> None:
    """adapter.close() (shutdown) cancels an app in the middle of a streamed response.
    The iterator must then fail, so the WSGI server aborts the connection: ending it
    normally would make a cut-off (chunked) response look complete to the client."""
    cancelled = threading.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send(start())
        await send(body(b"a", more=True))
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            cancelled.set()
            raise
        await send(body(b"b"))  # pragma: no cover

    adapter = make_adapter(app, lifespan="off")
    result = adapter(make_environ(), StartResponse())
    it = iter(result)
    try:
        assert next(it) == b"a"
        adapter.close()
        assert cancelled.wait(WAIT)
        error: BaseException | None = None
        rest: list[bytes] = []
        try:
            rest = list(it)
        except Exception as exc:  # any error makes the server abort the connection
            error = exc
        assert error is not None, f"the cut-off response ended as if complete, after {rest!r}"
    finally:
        result.close()  # type: ignore[attr-defined]


def test_messages_after_final_body_are_ignored(make_adapter: Callable[..., AsgiToWsgi]) -> None:
    errors: list[BaseException] = []
    done = threading.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send(start())
        await send(body(b"done"))
        try:
            await send(body(b"late"))
            await send({"type": "http.response.trailers", "headers": []})
        except BaseException as exc:
            errors.append(exc)
        finally:
            done.set()

    adapter = make_adapter(app, lifespan="off")
    assert call(adapter).body == b"done"
    assert done.wait(WAIT)
    assert errors == []


@pytest.mark.parametrize("streamed", [False, True])
def test_background_work_not_cancelled_nor_waited_for(
    make_adapter: Callable[..., AsgiToWsgi], streamed: bool
) -> None:
    gate = threading.Event()
    finished = threading.Event()
    cancelled = threading.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send(start())
        if streamed:
            await send(body(b"a", more=True))
        await send(body(b"b"))
        try:
            assert await wait_thread_event(gate)
            await anyio.sleep(0.01)
        except anyio.get_cancelled_exc_class():
            cancelled.set()
            raise
        finished.set()

    adapter = make_adapter(app, lifespan="off")
    try:
        started = time.monotonic()
        response = call(adapter)  # iterate and close() while the background work still waits
        assert time.monotonic() - started < WAIT / 2
        assert not finished.is_set()
    finally:
        gate.set()
    assert response.body == (b"ab" if streamed else b"b")
    assert finished.wait(WAIT)
    assert not cancelled.is_set()


# -- backpressure and disconnects -----------------------------------------------------------------


def test_backpressure(make_adapter: Callable[..., AsgiToWsgi]) -> None:
    sent: list[int] = []
    chunk = b"x" * 512
    total = 100

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send(start())
        for i in range(total):
            await send(body(chunk, more=True))
            sent.append(i)
        await send(body(b""))

    adapter = make_adapter(app, lifespan="off", max_buffer=2048)
    result = adapter(make_environ(), StartResponse())
    try:
        it = iter(result)
        received = [next(it)]
        # Nobody reads: within a generous window the app must stall in send().
        threading.Event().wait(0.3)
        ahead = len(sent)
        assert ahead < 12, f"the app sent {ahead} chunks with only 1 consumed"
        for _ in range(5):
            received.append(next(it))
        threading.Event().wait(0.1)
        assert len(sent) < len(received) + 12
        received.extend(it)
    finally:
        result.close()  # type: ignore[attr-defined]
    assert b"".join(received) == chunk * total
    assert len(sent) == total


def test_early_close_disconnects_the_app(make_adapter: Callable[..., AsgiToWsgi], a2w_log: LogWaiter) -> None:
    about_to_receive = threading.Event()
    got: list[Any] = []
    ended = threading.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] == "/ok":
            await text_app(scope, receive, send)
            return
        try:
            await receive()  # the (empty) body
            await send(start())
            await send(body(b"a", more=True))
            about_to_receive.set()
            got.append(await receive())  # pending when the client leaves
            try:
                await send(body(b"b", more=True))
            except BaseException as exc:
                got.append(exc)
                raise
        finally:
            ended.set()

    adapter = make_adapter(app, lifespan="off", disconnect_grace=2.0)
    result = adapter(make_environ(), StartResponse())
    assert next(iter(result)) == b"a"
    assert about_to_receive.wait(WAIT)
    started = time.monotonic()
    result.close()  # type: ignore[attr-defined]
    assert time.monotonic() - started < 1.5  # the app ended by itself, well within the grace period
    assert ended.wait(WAIT)
    assert got[0] == {"type": "http.disconnect"}
    assert isinstance(got[1], ClientDisconnected)
    assert isinstance(got[1], OSError)
    # An app that lets ClientDisconnected through is not an error worth a log line.
    assert not [r for r in a2w_log.records if r.levelno >= logging.ERROR]
    assert call(adapter, path="/ok").body == b"hello"


def test_early_close_unblocks_send_waiting_for_buffer(make_adapter: Callable[..., AsgiToWsgi]) -> None:
    got: list[BaseException] = []
    ended = threading.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send(start())
            while True:
                await send(body(b"y" * 1024, more=True))
        except BaseException as exc:
            got.append(exc)
            raise
        finally:
            ended.set()

    adapter = make_adapter(app, lifespan="off", max_buffer=4096, disconnect_grace=2.0)
    result = adapter(make_environ(), StartResponse())
    it = iter(result)
    assert next(it) == b"y" * 1024
    assert next(it) == b"y" * 1024
    result.close()  # type: ignore[attr-defined]
    assert ended.wait(WAIT)
    assert len(got) == 1 and isinstance(got[0], ClientDisconnected)


def test_early_close_cancels_an_app_that_ignores_it(
    make_adapter: Callable[..., AsgiToWsgi], a2w_log: LogWaiter
) -> None:
    receives: list[Message] = []
    send_errors: list[BaseException] = []
    cancelled = threading.Event()
    ended = threading.Event()
    grace = 0.3

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] == "/ok":
            await text_app(scope, receive, send)
            return
        try:
            await send(start())
            await send(body(b"a", more=True))
            while True:
                receives.append(await receive())
                try:
                    await send(body(b"more", more=True))
                except OSError as exc:
                    send_errors.append(exc)  # ...and carries on regardless
                await anyio.sleep(0.02)
        except anyio.get_cancelled_exc_class():
            cancelled.set()
            raise
        finally:
            ended.set()

    adapter = make_adapter(app, lifespan="off", disconnect_grace=grace)
    result = adapter(make_environ(), StartResponse())
    assert next(iter(result)) == b"a"
    started = time.monotonic()
    result.close()  # type: ignore[attr-defined]
    elapsed = time.monotonic() - started
    assert ended.wait(WAIT), "the app's task is still pending"
    assert cancelled.is_set()
    assert grace * 0.8 <= elapsed < grace * 2 + 1.0
    assert receives and all(m == {"type": "http.disconnect"} for m in receives[1:])
    assert send_errors and all(isinstance(e, ClientDisconnected) for e in send_errors)
    a2w_log.wait_for(lambda r: r.levelno == logging.WARNING and "cancelling" in r.getMessage())
    assert call(adapter, path="/ok").body == b"hello"


# -- concurrency and fork ------------------------------------------------------------------------


def test_concurrent_requests_overlap(make_adapter: Callable[..., AsgiToWsgi]) -> None:
    active = [0, 0]  # current, max: only touched on the loop thread

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            raise RuntimeError("no lifespan")
        active[0] += 1
        active[1] = max(active)
        try:
            await anyio.sleep(0.2)
        finally:
            active[0] -= 1
        await send(start())
        await send(body(scope["path"].encode()))

    adapter = make_adapter(app)
    call(adapter, path="/warm-up")  # the loop starts and lifespan is tried first
    barrier = threading.Barrier(16, timeout=WAIT)

    def one(i: int) -> bytes:
        barrier.wait()
        return call(adapter, path=f"/{i}").body

    started = time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        bodies = list(pool.map(one, range(16), timeout=WAIT * 2))
    elapsed = time.monotonic() - started
    assert bodies == [f"/{i}".encode() for i in range(16)]
    assert elapsed < 2.0, f"16 x 0.2 s requests took {elapsed:.2f} s: they did not overlap"
    assert active[1] >= 8


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_fork_child_gets_its_own_loop(make_adapter: Callable[..., AsgiToWsgi]) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await receive()
            scope["state"]["startup_pid"] = os.getpid()
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await send({"type": "lifespan.shutdown.complete"})
            return
        info = {
            "pid": os.getpid(),
            "startup_pid": scope["state"]["startup_pid"],
            "thread": threading.current_thread().name,
        }
        await send(start(200, [(b"content-type", b"application/json")]))
        await send(body(json.dumps(info).encode()))

    adapter = make_adapter(app)
    parent = json.loads(call(adapter).body)
    assert parent["pid"] == parent["startup_pid"] == os.getpid()

    read_fd, write_fd = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # "multi-threaded process" on 3.12+
        pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 1
        try:
            os.close(read_fd)
            signal.signal(signal.SIGALRM, lambda *_: os._exit(3))
            signal.alarm(15)
            response = call(adapter)
            os.write(
                write_fd, json.dumps({"status": response.status, "body": response.body.decode()}).encode()
            )
            adapter.close()
            code = 0
        except BaseException as exc:
            with contextlib.suppress(BaseException):
                os.write(write_fd, json.dumps({"error": repr(exc)}).encode())
        finally:
            os._exit(code)
    os.close(write_fd)
    try:
        chunks = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            ready, _, _ = select.select([read_fd], [], [], deadline - time.monotonic())
            if not ready:
                break
            data = os.read(read_fd, 65536)
            if not data:
                break
            chunks.append(data)
        status = None
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            threading.Event().wait(0.02)
    finally:
        os.close(read_fd)
        if status is None or not os.WIFEXITED(status):
            with contextlib.suppress(ProcessLookupError, ChildProcessError):
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
    outcome = json.loads(b"".join(chunks) or b"{}")
    assert status is not None and os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, outcome
    assert outcome["status"] == "200 OK"
    child = json.loads(outcome["body"])
    assert child["pid"] == pid != os.getpid()
    assert child["startup_pid"] == pid  # lifespan ran again, on the child's own loop
    # The parent's adapter is unaffected.
    assert json.loads(call(adapter).body)["pid"] == os.getpid()


# -- real frameworks -------------------------------------------------------------------------------


def fastapi_app(events: dict[str, threading.Event]) -> Any:
    # FastAPI resolves the (string) annotations below in this module's globals.
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        events["startup"].set()
        yield {"greeting": "hi"}
        events["shutdown"].set()

    app = FastAPI(lifespan=lifespan)

    @app.get("/items/{item_id}")
    async def item(item_id: int, request: Request, q: str = "") -> dict[str, Any]:
        return {
            "id": item_id,
            "q": q,
            "greeting": request.state.greeting,
            "url": str(request.url),
            "root_path": request.scope["root_path"],
            "client": list(request.client or ()),
        }

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, Any]:
        data = await request.body()
        return {"length": len(data), "head": data[:8].decode("latin-1")}

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def gen() -> Any:
            for i in range(3):
                yield f"line {i}\n"

        return StreamingResponse(gen(), media_type="text/plain")

    @app.get("/bg")
    async def bg(tasks: BackgroundTasks) -> dict[str, bool]:
        async def later() -> None:
            await anyio.sleep(0.05)
            events["background"].set()

        tasks.add_task(later)
        return {"queued": True}

    @app.get("/sync")
    def sync_route() -> dict[str, str]:  # runs in anyio's thread pool
        return {"thread": threading.current_thread().name}

    return app


def test_fastapi_through_werkzeug_client(make_adapter: Callable[..., AsgiToWsgi]) -> None:
    from werkzeug.test import Client

    events = {name: threading.Event() for name in ("startup", "shutdown", "background")}
    adapter = make_adapter(fastapi_app(events))
    client = Client(adapter)

    response = client.get("/items/3", query_string="q=caf%C3%A9", base_url="http://example.com/api")
    assert response.status_code == 200, response.text
    data = response.get_json()
    assert data["id"] == 3
    assert data["q"] == "café"
    assert data["greeting"] == "hi"
    assert data["root_path"] == "/api"
    assert data["url"] == "http://example.com/api/items/3?q=caf%C3%A9"
    assert events["startup"].is_set()
    assert response.headers["content-length"] == str(len(response.data))

    payload = os.urandom(200_000)
    response = client.post("/echo", data=payload, headers={"Content-Type": "application/octet-stream"})
    assert response.get_json() == {"length": len(payload), "head": payload[:8].decode("latin-1")}

    response = client.get("/stream")
    assert response.status_code == 200
    assert response.data == b"line 0\nline 1\nline 2\n"
    assert response.headers["content-type"].startswith("text/plain")

    response = client.get("/bg")
    assert response.get_json() == {"queued": True}
    assert events["background"].wait(WAIT)

    assert client.get("/sync").get_json()["thread"] != threading.current_thread().name
    assert client.get("/missing").status_code == 404

    adapter.close()
    assert events["shutdown"].is_set()


def test_starlette_request_disconnect_listener(make_adapter: Callable[..., AsgiToWsgi]) -> None:
    """Starlette's is_disconnected() must say False while the response is being sent."""
    from starlette.applications import Starlette
    from starlette.routing import Route

    async def endpoint(request: Request) -> StreamingResponse:
        await request.body()

        async def gen() -> Any:
            for _ in range(3):
                yield b"disconnected=%d\n" % (await request.is_disconnected())
                await anyio.sleep(0.01)

        return StreamingResponse(gen())

    adapter = make_adapter(Starlette(routes=[Route("/", endpoint)]))
    response = call(adapter)
    assert response.body == b"disconnected=0\n" * 3
