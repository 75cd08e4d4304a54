"""Small ASGI apps, WSGI environs and a WSGI "server" shared by the AsgiToWsgi tests.

The apps use anyio only (never asyncio directly), so they run on both backends.
Every wait is bounded by ``WAIT``: a broken adapter makes a test fail, never hang.
"""

from __future__ import annotations

import io
import logging
import threading
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Iterable
from wsgiref.util import setup_testing_defaults

import anyio
import anyio.to_thread

from bridge._types import Message, Scope

WAIT = 5.0

Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


# -- WSGI side ----------------------------------------------------------------------------


def make_environ(
    path: str = "/",
    *,
    method: str = "GET",
    body: bytes | None = None,
    query: str = "",
    **extra: Any,
) -> dict[str, Any]:
    """A PEP 3333 environ (wsgiref's testing defaults); ``body`` sets wsgi.input and
    CONTENT_LENGTH; ``extra`` keys override anything."""
    environ: dict[str, Any] = {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query}
    if body is not None:
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
    environ.update(extra)
    setup_testing_defaults(environ)
    return environ


class StartResponse:
    """A start_response callable that records its calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[tuple[str, str]], Any]] = []
        self.called = threading.Event()

    def __call__(
        self, status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Callable[[bytes], None]:
        self.calls.append((status, list(headers), exc_info))
        self.called.set()

        def write(data: bytes) -> None:  # pragma: no cover - the adapter never calls it
            raise AssertionError("AsgiToWsgi must not use write()")

        return write

    @property
    def status(self) -> str:
        assert len(self.calls) == 1, self.calls
        return self.calls[0][0]

    @property
    def headers(self) -> list[tuple[str, str]]:
        assert len(self.calls) == 1, self.calls
        return self.calls[0][1]

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        return values[0] if values else None


@dataclass
class Response:
    status: str
    headers: list[tuple[str, str]]
    body: bytes
    chunks: list[bytes]
    result: Iterable[bytes]

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        return values[0] if values else None


def call(app: Any, environ: dict[str, Any] | None = None, **kw: Any) -> Response:
    """Serve one request the way a WSGI server does: call, iterate, close()."""
    if environ is None:
        environ = make_environ(**kw)
    start_response = StartResponse()
    result = app(environ, start_response)
    chunks: list[bytes] = []
    try:
        for chunk in result:
            assert type(chunk) is bytes, chunk
            chunks.append(chunk)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return Response(start_response.status, start_response.headers, b"".join(chunks), chunks, result)


# -- ASGI side ----------------------------------------------------------------------------


def start(status: int = 200, headers: list[tuple[bytes, bytes]] | None = None) -> Message:
    return {
        "type": "http.response.start",
        "status": status,
        "headers": headers if headers is not None else [(b"content-type", b"text/plain")],
    }


def body(data: bytes = b"", more: bool = False) -> Message:
    return {"type": "http.response.body", "body": data, "more_body": more}


async def wait_thread_event(event: threading.Event, timeout: float = WAIT) -> bool:
    """Wait, from the app, for an event the test thread sets."""
    return await anyio.to_thread.run_sync(event.wait, timeout, abandon_on_cancel=True)


async def read_body(receive: Receive) -> list[Message]:
    """Receive until the body ends (more_body false) or the client leaves."""
    messages = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request" or not message.get("more_body", False):
            return messages


async def text_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers every http request with 200 "hello"; raises on anything else."""
    assert scope["type"] == "http", scope["type"]
    await send(start(200, [(b"content-type", b"text/plain"), (b"content-length", b"5")]))
    await send(body(b"hello"))


class ScopeRecorder:
    """Records every scope it sees, answers http with 200 "ok"; no lifespan support."""

    def __init__(self) -> None:
        self.scopes: list[Scope] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.scopes.append(scope)
        assert scope["type"] == "http", scope["type"]
        await send(start())
        await send(body(b"ok"))

    @property
    def http(self) -> Scope:
        scopes = [s for s in self.scopes if s["type"] == "http"]
        assert len(scopes) == 1, scopes
        return scopes[0]


class BodyRecorder:
    """Records the messages receive() gives until the body ends, then answers 200."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        self.messages = await read_body(receive)
        await send(start())
        await send(body(b"".join(m.get("body", b"") for m in self.messages)))

    @property
    def received(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.messages)


@dataclass
class LifespanApp:
    """An app with a working lifespan: counts its startups and shutdowns, records
    events in order, and puts ``state_init`` into the lifespan state."""

    startup_delay: float = 0.0
    fail_startups: int = 0  # answer lifespan.startup.failed this many times first
    state_init: dict[str, Any] = field(default_factory=dict)
    events: list[str] = field(default_factory=list)
    startups: int = 0
    scopes: list[Scope] = field(default_factory=list)
    started: bool = False
    seen_started: list[bool] = field(default_factory=list)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(scope, receive, send)
            return
        self.scopes.append(scope)
        self.seen_started.append(self.started)
        state = scope.get("state")
        payload = repr(sorted(state)).encode() if state is not None else b"no state"
        await send(start())
        await send(body(payload))

    async def lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        assert message["type"] == "lifespan.startup"
        self.startups += 1
        self.events.append("startup")
        if self.startup_delay:
            await anyio.sleep(self.startup_delay)
        if self.fail_startups > 0:
            self.fail_startups -= 1
            await send({"type": "lifespan.startup.failed", "message": "no database"})
            return
        scope["state"].update(self.state_init)
        self.started = True
        await send({"type": "lifespan.startup.complete"})
        message = await receive()
        assert message["type"] == "lifespan.shutdown"
        self.events.append("shutdown")
        self.started = False
        await send({"type": "lifespan.shutdown.complete"})


class LogWaiter(logging.Handler):
    """A logging handler that lets a test wait for a record (from any thread)."""

    def __init__(self, level: int = logging.DEBUG) -> None:
        super().__init__(level)
        self.records: list[logging.LogRecord] = []
        # Not named `lock`: logging.Handler.handle() holds its own `self.lock` around emit().
        self.cond = threading.Condition()

    def emit(self, record: logging.LogRecord) -> None:
        with self.cond:
            self.records.append(record)
            self.cond.notify_all()

    def wait_for(
        self, predicate: Callable[[logging.LogRecord], bool], timeout: float = WAIT
    ) -> logging.LogRecord:
        with self.cond:
            found: list[logging.LogRecord] = []

            def check() -> bool:
                found[:] = [r for r in self.records if predicate(r)]
                return bool(found)

            assert self.cond.wait_for(check, timeout), [r.getMessage() for r in self.records]
            return found[0]
