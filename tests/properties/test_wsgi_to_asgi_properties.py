"""Property-based tests of WsgiToAsgi: a WSGI app whose behaviour hypothesis draws,
driven by a generated in-memory ASGI server, on asyncio and on trio.

Each example is one request. The app follows an :class:`AppPlan` (how it calls
start_response, what it yields or write()s, where it raises); the client follows a
:class:`ClientPlan` (method, body split anywhere, disconnects, odd messages, a send()
that raises or goes silent). :func:`expected` computes from the plan what a correct
PEP 3333 server would do, and :func:`check` holds the run against it:

* the request ends within a bound (``anyio.fail_after``), endless generators included;
* the iterable's ``close()`` runs exactly once, and no app code still runs afterwards;
* the ASGI messages form a legal sequence, and the body is the oracle's (or, when the
  request errs or the client leaves, a prefix of it without a final ``more_body=False``);
* only the app's own exception or a documented bridge error escapes;
* the objects the app made during the request are gone after it (with ``gc.collect()``,
  and in a second test with the collector disabled: by reference counting alone), and
  the adapter's threads come back to the baseline.

The loop runs in a blocking portal per backend, shared by the module, with one
adapter per ``preload_body`` setting (``SPOOLS`` gives each its ``spool_body``: every
body streamed; 16 bytes in memory, then a file up to 40, then the rest streamed; the
defaults): that is how a server uses the adapter (one loop, one pool), and it lets the
thread count settle to a baseline.
"""

from __future__ import annotations

import gc
import sys
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable, Generator, Iterator, MutableMapping, Optional, Union, cast

import anyio
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import event, example, given
from hypothesis import strategies as st

from bridge import WsgiToAsgi
from bridge.errors import BridgeError, ClientDisconnected, InvalidScopeError, ResponseError
from bridge.wsgi_to_asgi import DEFAULT_SPOOL_BODY

from .conftest import PROFILE_TIMEOUT
from .lifetime import cycle_garbage, wait_dead

# How long one request may take before it counts as a hang.
REQUEST_BOUND = 4.0
# An "endless" generator stops by itself after this long (and records that it had to).
ENDLESS_BOUND = 2.5
MAX_THREADS = 4
PRELOADS = (0, 16, 1024 * 1024)
SPOOLS = {0: 0, 16: 40, 1024 * 1024: DEFAULT_SPOOL_BODY}


class AppError(Exception):
    """The app's own exception."""


class Token:
    """An object the app makes during the request; it must not outlive the request."""


# -- plans ---------------------------------------------------------------------------------

Chunk = Union[bytes, str]


@dataclass
class AppPlan:
    container: str  # "list" | "generator" | "closeable"
    start: str  # "never" | "once" | "twice" | "bad_status"
    lazy: bool  # start_response inside the first next() rather than in the call
    status: str
    cl: str  # "none" | "exact" | "short" | "long"
    writes: list[bytes]  # write() calls in the app call, after start_response
    chunks: list[Chunk]  # what the iterable yields
    raise_at: Union[str, int, None]  # None | "call" | k (before yielding chunk k) | "close"
    recover: bool  # at the raise point, catch and call start_response(..., exc_info)
    endless: bool  # after the chunks, yield b"tick" forever
    read: str  # "none" | "all" | "partial" | "lines" | "chunks"
    write_in_iter: Optional[int] = None  # write(b"w") from inside the generator, before chunk k

    def produced(self) -> list[Chunk]:
        return list(self.chunks)


@dataclass
class ClientPlan:
    method: str
    body: bytes
    declare_length: bool
    parts: list[bytes]  # the body as it arrives, empty parts included
    disconnect_at: Optional[int]  # receive() message index replaced by http.disconnect
    odd_at: Optional[int]  # receive() message index where an odd message is inserted
    odd_kind: str  # which: "unknown" (a type nobody defined) | "str_body" | "ill_more_body"
    extra_after_body: bool  # one more http.request after the final one
    send_gone_after: Optional[int]  # the client leaves at this send()
    spec: str  # "2.4": send() raises after the client left; "2.3": it stays silent
    preload: int


def rarely(draw: st.DrawFn, odds: int) -> bool:
    """True about once in ``odds + 1`` draws (and False is what shrinking goes to)."""
    return draw(st.sampled_from([False] * odds + [True]))


@st.composite
def chunks_strategy(draw: st.DrawFn) -> list[Chunk]:
    item = st.one_of(
        st.binary(min_size=1, max_size=12),
        st.just(b""),
        st.binary(min_size=1, max_size=3),
        st.text(min_size=0, max_size=3).filter(lambda s: True),
    )
    return draw(st.lists(item, max_size=5))


@st.composite
def app_plans(draw: st.DrawFn) -> AppPlan:
    container = draw(st.sampled_from(["list", "generator", "closeable"]))
    start = draw(st.sampled_from(["once"] * 7 + ["never", "twice", "bad_status"]))
    lazy = container != "list" and draw(st.booleans())
    status = draw(st.sampled_from(["200 OK", "404 Not Found", "299 Custom", "201 Created"]))
    if start == "bad_status":
        status = draw(st.sampled_from(["abc", "20 OK", "1000 X", "101 Switching Protocols"]))
    chunks = draw(chunks_strategy())
    # str chunks are a protocol error; keep them rarer than bytes.
    if not rarely(draw, 3):
        chunks = [c for c in chunks if isinstance(c, bytes)]
    writes = draw(st.lists(st.binary(max_size=6), max_size=2)) if not lazy else []
    endless = container != "list" and rarely(draw, 5)
    cl = draw(st.sampled_from(["none", "none", "exact", "short", "long"]))
    n = len(chunks)
    if container == "list":
        raise_points: list[Any] = [None, "call"]
    else:
        raise_points = [None, "call", "close", *range(n + 1)]
    raise_at = draw(st.sampled_from(raise_points)) if draw(st.booleans()) else None
    recover = raise_at not in (None, "close") and draw(st.booleans())
    read = draw(st.sampled_from(["none", "all", "partial", "lines", "chunks"]))
    write_in_iter = None
    if container != "list" and rarely(draw, 4):
        write_in_iter = draw(st.integers(0, n))
    return AppPlan(
        container=container,
        start=start,
        lazy=lazy,
        status=status,
        cl=cl,
        writes=writes,
        chunks=chunks,
        raise_at=raise_at,
        recover=recover,
        endless=endless,
        read=read,
        write_in_iter=write_in_iter,
    )


# Messages no ASGI server should send: an unknown type (the spec says raise), and
# ill-typed http.request messages (a str body; a more_body that is not a bool).
ODD_MESSAGES: dict[str, dict[str, Any]] = {
    "unknown": {"type": "http.foo", "body": b"?"},
    "str_body": {"type": "http.request", "body": "text", "more_body": True},
    "ill_more_body": {"type": "http.request", "body": b"x", "more_body": "yes"},
}


@st.composite
def client_plans(draw: st.DrawFn, endless: bool = False) -> ClientPlan:
    method = draw(st.sampled_from(["GET", "POST", "HEAD", "PUT"]))
    body = draw(st.one_of(st.just(b""), st.binary(max_size=40)))
    cuts = sorted(draw(st.lists(st.integers(0, len(body)), max_size=4)))
    bounds = [0, *cuts, len(body)]
    parts = [body[a:b] for a, b in zip(bounds, bounds[1:])] or [b""]  # (no pairwise on 3.9)
    n = len(parts)
    disconnect_at = draw(st.integers(0, n)) if rarely(draw, 4) else None
    odd_at = draw(st.integers(0, n)) if rarely(draw, 7) else None
    send_gone_after = draw(st.integers(0, 4)) if rarely(draw, 3) else None
    if endless and disconnect_at is None and send_gone_after is None:
        send_gone_after = draw(st.integers(0, 4))
    return ClientPlan(
        method=method,
        body=body,
        declare_length=draw(st.booleans()),
        parts=parts,
        disconnect_at=disconnect_at,
        odd_at=odd_at,
        odd_kind=draw(st.sampled_from(list(ODD_MESSAGES))),
        extra_after_body=rarely(draw, 5),
        send_gone_after=send_gone_after,
        spec=draw(st.sampled_from(["2.4", "2.3"])),
        preload=draw(st.sampled_from(PRELOADS)),
    )


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[AppPlan, ClientPlan]:
    app = draw(app_plans())
    client = draw(client_plans(endless=app.endless and app.cl == "none"))
    return app, client


# -- the app -------------------------------------------------------------------------------


@dataclass
class Recorder:
    """What the app did, seen from the test; holds no strong reference to the app's objects."""

    called: bool = False
    closes: int = 0
    active: int = 0  # app code running right now (call, next(), close())
    endless_capped: bool = False
    read_data: bytes = b""
    read_error: Optional[str] = None
    token_refs: list[weakref.ref[Any]] = field(default_factory=list)
    returned_close: bool = False  # the app returned an iterable with close()
    lock: threading.Lock = field(default_factory=threading.Lock)

    def enter(self) -> None:
        with self.lock:
            self.active += 1

    def leave(self) -> None:
        with self.lock:
            self.active -= 1

    def token(self) -> Token:
        token = Token()
        self.token_refs.append(weakref.ref(token))
        return token


def body_length(plan: AppPlan) -> int:
    return sum(len(c) for c in [*plan.writes, *plan.chunks] if isinstance(c, bytes)) + (
        1 if plan.write_in_iter is not None else 0
    )


def declared_length(plan: AppPlan) -> Optional[int]:
    total = body_length(plan)
    if plan.endless:
        return {"none": None, "exact": 3, "short": 1, "long": 9}[plan.cl]
    if plan.cl == "exact":
        return total
    if plan.cl == "short":
        return max(0, total - 2)
    if plan.cl == "long":
        return total + 3
    return None


def headers_for(plan: AppPlan) -> list[tuple[str, str]]:
    headers = [("Content-Type", "text/plain"), ("X-Plan", "p")]
    length = declared_length(plan)
    if length is not None:
        headers.append(("Content-Length", str(length)))
    return headers


ERROR_PAGE = b"error page"
ERROR_HEADERS = [("Content-Type", "text/plain")]


def read_body(plan: AppPlan, environ: dict[str, Any], rec: Recorder) -> None:
    stream = environ["wsgi.input"]
    if plan.read == "none":
        return
    got = b""
    if plan.read == "all":
        got = stream.read()
    elif plan.read == "partial":
        got = stream.read(3)
    elif plan.read == "lines":
        got = b"".join(stream.readlines())
    elif plan.read == "chunks":
        while True:
            piece = stream.read(5)
            if not piece:
                break
            got += piece
    rec.read_data = got


def make_app(plan: AppPlan, rec: Recorder) -> Callable[..., Any]:
    writer: list[Any] = [None]  # the write callable, once start_response returned one

    def start(start_response: Callable[..., Any]) -> None:
        if plan.start == "never":
            return
        writer[0] = start_response(plan.status, headers_for(plan))
        if plan.start == "twice":
            start_response(plan.status, headers_for(plan))

    def write(data: bytes) -> None:
        if writer[0] is not None:
            writer[0](data)

    def error_point(start_response: Callable[..., Any]) -> bool:
        """Raise the app's error; with ``recover``, answer it with exc_info instead
        (True: the error page follows)."""
        error = AppError("boom")
        error.token = rec.token()  # type: ignore[attr-defined]
        try:
            raise error
        except AppError:
            if not plan.recover:
                raise
            start_response("500 Internal Server Error", list(ERROR_HEADERS), sys.exc_info())
            return True
        finally:
            del error

    def generate(start_response: Callable[..., Any]) -> Iterator[Chunk]:
        token = rec.token()  # noqa: F841 - held by the generator's frame
        if plan.lazy:
            start(start_response)
        for index, chunk in enumerate(plan.chunks):
            if plan.write_in_iter == index:
                write(b"w")
            if plan.raise_at == index and error_point(start_response):
                yield ERROR_PAGE
                return
            yield chunk
        n = len(plan.chunks)
        if plan.write_in_iter == n:
            write(b"w")
        if plan.raise_at == n and error_point(start_response):
            yield ERROR_PAGE
            return
        if plan.endless:
            deadline = time.monotonic() + ENDLESS_BOUND
            while time.monotonic() < deadline:
                yield b"tick"
                time.sleep(0.0005)
            rec.endless_capped = True

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        rec.enter()
        rec.called = True
        try:
            environ["props.token"] = rec.token()
            try:
                read_body(plan, environ, rec)
            except BaseException as exc:
                rec.read_error = type(exc).__name__
                raise
            if not plan.lazy:
                start(start_response)
            for data in plan.writes:
                write(data)
            result: Any
            if plan.raise_at == "call" and error_point(start_response):
                result = [ERROR_PAGE] if plan.container == "list" else Closeable([ERROR_PAGE], rec)
            elif plan.container == "list":
                result = list(plan.chunks)
            elif plan.container == "generator":
                result = Tracking(generate(start_response), rec)
            else:
                result = Closeable(generate(start_response), rec, close_raises=plan.raise_at == "close")
            rec.returned_close = hasattr(result, "close")
            return result
        finally:
            rec.leave()

    return app


class Tracking:
    """Wraps the generator: marks app code as running during next()."""

    def __init__(self, gen: Iterator[Chunk], rec: Recorder) -> None:
        self.gen = gen
        self.rec = rec

    def __iter__(self) -> Tracking:
        return self

    def __next__(self) -> Chunk:
        self.rec.enter()
        try:
            return next(self.gen)
        finally:
            self.rec.leave()

    def close(self) -> None:
        self.rec.enter()
        try:
            with self.rec.lock:
                self.rec.closes += 1
            # A Tracking wraps the app's generator (Closeable, over any iterable, has its own close()).
            cast(Generator[Chunk, None, None], self.gen).close()
        finally:
            self.rec.leave()


class Closeable(Tracking):
    """An iterable with close() (which may raise), counting close() calls."""

    def __init__(self, source: Any, rec: Recorder, *, close_raises: bool = False) -> None:
        super().__init__(iter(source), rec)
        self.close_raises = close_raises
        self.token = rec.token()

    def close(self) -> None:
        self.rec.enter()
        try:
            with self.rec.lock:
                self.rec.closes += 1
            close = getattr(self.gen, "close", None)
            if close is not None:
                close()
            if self.close_raises:
                raise AppError("close failed")
        finally:
            self.rec.leave()


# -- the oracle ----------------------------------------------------------------------------


class _Abort(Exception):
    """The simulated app raised: ``escape`` leaves the ASGI call."""

    def __init__(self, escape: type[BaseException]) -> None:
        super().__init__(escape)
        self.escape = escape


@dataclass
class Expected:
    escape: Optional[type[BaseException]]  # what leaves the ASGI call (None: nothing)
    complete: bool  # the response ends with more_body=False
    status: Optional[int] = None
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""  # complete: the body; otherwise what the app produced before the error
    committed: int = 0  # bytes write() must have transmitted before the error
    declared: Optional[int] = None
    endless: bool = False  # the body goes on with b"tick" forever

    def allows_prefix(self, body: bytes) -> bool:
        """Whether ``body`` is a prefix of what the app produced."""
        if len(body) <= len(self.body) or not self.endless:
            return self.body.startswith(body)
        rest = body[len(self.body) :]
        return body.startswith(self.body) and (b"tick" * (len(rest) // 4 + 1)).startswith(rest)


def _encode(headers: list[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]


def expected(plan: AppPlan) -> Expected:
    """What a correct PEP 3333 server sends for this app, when the request body arrives
    whole and the client stays (the checks loosen it otherwise)."""
    st_: dict[str, Any] = {
        "status": None,
        "headers": [],
        "cl": None,
        "sent": 0,  # body bytes taken, for Content-Length
        "complete": False,  # Content-Length reached: stop iterating
        "headers_sent": False,
        "body": b"",
        "committed": 0,
        "writer": False,
        "handled": False,
    }

    def start() -> None:
        if plan.start == "never":
            return
        if plan.start == "bad_status":
            raise _Abort(ResponseError)
        st_["status"] = int(plan.status[:3])
        st_["headers"] = _encode(headers_for(plan))
        st_["cl"] = declared_length(plan)
        st_["writer"] = True
        if plan.start == "twice":
            raise _Abort(ResponseError)

    def take(data: bytes) -> None:
        cl = st_["cl"]
        if cl is not None:
            room = cl - st_["sent"]
            if len(data) >= room:
                data = data[:room]
                st_["complete"] = True
            st_["sent"] += len(data)
        st_["body"] += data

    def write(data: bytes) -> None:
        if not st_["writer"]:
            return  # the app has no write callable to call
        if st_["complete"] and data:
            raise _Abort(ResponseError)  # write() past Content-Length
        st_["headers_sent"] = True
        take(data)
        st_["committed"] = len(st_["body"])

    def yielded(chunk: Chunk) -> None:
        if not isinstance(chunk, bytes):
            raise _Abort(ResponseError)
        if not chunk:
            return
        if st_["status"] is None:
            raise _Abort(ResponseError)
        st_["headers_sent"] = True
        take(chunk)

    def error_point() -> bool:
        """True: the app recovered, and its error page follows."""
        if not plan.recover or st_["headers_sent"]:
            raise _Abort(AppError)
        st_["status"] = 500
        st_["headers"] = _encode(ERROR_HEADERS)
        st_["cl"] = None
        st_["writer"] = True
        st_["handled"] = True
        return True

    def steps() -> Iterator[Callable[[], Any]]:
        """The iterable's next() calls, each a function that does what that call does."""
        if plan.raise_at == "call" and plan.recover:
            yield lambda: yielded(ERROR_PAGE)
            return
        if plan.container == "list":
            for chunk in plan.chunks:
                # The casts: mypy cannot type a lambda's default argument on its own.
                yield cast(Callable[[], Any], lambda chunk=chunk: yielded(chunk))
            return
        recovered: list[bool] = []

        def step(k: int) -> None:
            if k == 0 and plan.lazy:
                start()
            if plan.write_in_iter == k:
                write(b"w")
            if plan.raise_at == k and error_point():
                recovered.append(True)
                yielded(ERROR_PAGE)
                return
            if k < len(plan.chunks):
                yielded(plan.chunks[k])

        for k in range(len(plan.chunks) + 1):
            yield cast(Callable[[], Any], lambda k=k: step(k))
            if recovered:
                return
        if plan.endless:
            while True:
                yield lambda: yielded(b"tick")

    try:
        if not plan.lazy:
            start()
        for data in plan.writes:
            write(data)
        if plan.raise_at == "call":
            error_point()
        for index, step in enumerate(steps()):
            if st_["complete"]:
                break
            if index > 200:  # an endless generator without Content-Length: only the client ends it
                return Expected(
                    escape=None,
                    complete=False,
                    status=st_["status"],
                    headers=st_["headers"],
                    body=st_["body"],
                    committed=st_["committed"],
                    endless=True,
                )
            step()
        if st_["status"] is None:
            raise _Abort(ResponseError)  # start_response was never called
    except _Abort as abort:
        return Expected(
            escape=abort.escape,
            complete=False,
            status=st_["status"],
            headers=st_["headers"],
            body=st_["body"],
            committed=st_["committed"],
        )
    return Expected(
        escape=None,  # an error the app answered itself (exc_info) is logged, not raised
        complete=True,
        status=st_["status"],
        headers=st_["headers"],
        body=st_["body"],
        declared=st_["cl"],
    )


# -- the ASGI server -----------------------------------------------------------------------


def receive_script(client: ClientPlan) -> tuple[list[dict[str, Any]], bool]:
    """The messages receive() returns, in order, and whether the whole body gets there
    before anything odd (a disconnect or an unknown message)."""
    script: list[dict[str, Any]] = [
        {"type": "http.request", "body": part, "more_body": i < len(client.parts) - 1}
        for i, part in enumerate(client.parts)
    ]
    if client.extra_after_body:
        script.append({"type": "http.request", "body": b"extra", "more_body": False})
    if client.odd_at is not None:
        script.insert(client.odd_at, ODD_MESSAGES[client.odd_kind])
    if client.disconnect_at is not None:
        script = [*script[: client.disconnect_at], {"type": "http.disconnect"}]
    # Whole: every body byte (and, without a declared length, the end of the body)
    # comes before the first odd message.
    got = 0
    whole = False
    for message in script:
        if message["type"] != "http.request" or message in ODD_MESSAGES.values():
            break
        got += len(message["body"])
        if (client.declare_length and got >= len(client.body)) or not message["more_body"]:
            whole = True
            break
    return script, whole


class Server:
    """An in-memory ASGI server: receive() plays the script, then blocks until the
    response is over or the client left; send() records, and once the client has left
    raises OSError (spec 2.4) or drops the message (2.3)."""

    def __init__(self, client: ClientPlan) -> None:
        self.plan = client
        self.script, self.body_whole = receive_script(client)
        self.messages: list[MutableMapping[str, Any]] = []
        self.after_gone: list[MutableMapping[str, Any]] = []
        self.gone = anyio.Event()
        self.left_early = False  # the client left before the response was complete
        self.done = anyio.Event()
        self.receive_calls = 0
        self.saw_odd = False

    def leave(self) -> None:
        if not self.done.is_set():
            self.left_early = True
        self.gone.set()

    async def receive(self) -> dict[str, Any]:
        self.receive_calls += 1
        await anyio.lowlevel.checkpoint()
        if self.gone.is_set():
            return {"type": "http.disconnect"}
        if self.script:
            message = self.script.pop(0)
            if message["type"] == "http.disconnect":
                self.leave()
            elif message["type"] != "http.request" or message in ODD_MESSAGES.values():
                self.saw_odd = True
            return dict(message)
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:

                async def wait_done() -> None:
                    await self.done.wait()
                    scope.cancel()

                tg.start_soon(wait_done)
                await self.gone.wait()
                scope.cancel()
        return {"type": "http.disconnect"}

    async def send(self, message: MutableMapping[str, Any]) -> None:
        await anyio.lowlevel.checkpoint()
        gone_after = self.plan.send_gone_after
        if gone_after is not None and len(self.messages) >= gone_after and not self.done.is_set():
            self.leave()
        if self.gone.is_set():
            self.after_gone.append(message)
            if self.plan.spec == "2.4":
                raise OSError("connection lost")
            return
        if self.done.is_set():
            raise AssertionError(f"a message after the final body: {message!r}")
        self.messages.append(message)
        if message.get("type") == "http.response.body" and not message.get("more_body", False):
            self.done.set()


def scope_for(client: ClientPlan) -> dict[str, Any]:
    headers = [(b"host", b"testserver"), (b"x-test", b"1")]
    if client.declare_length:
        headers.append((b"content-length", str(len(client.body)).encode()))
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": client.spec},
        "http_version": "1.1",
        "method": client.method,
        "scheme": "http",
        "path": "/p",
        "raw_path": b"/p",
        "query_string": b"q=1",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


# -- running one example -------------------------------------------------------------------


@dataclass
class Outcome:
    escaped: Optional[type[BaseException]] = None
    escaped_repr: str = ""
    timed_out: bool = False
    messages: list[MutableMapping[str, Any]] = field(default_factory=list)
    left_early: bool = False
    body_whole: bool = True
    saw_odd: bool = False
    seconds: float = 0.0


class Dispatch:
    """The one WSGI app each adapter wraps: it runs the current example's app."""

    def __init__(self) -> None:
        self.app: Optional[Callable[..., Any]] = None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        app, self.app = self.app, None
        assert app is not None
        return app(environ, start_response)


@dataclass
class Backend:
    name: str
    portal: BlockingPortal
    dispatch: Dispatch
    adapters: dict[int, WsgiToAsgi]
    baseline: int = 0


async def run_one(backend: Backend, client: ClientPlan) -> Outcome:
    server = Server(client)
    outcome = Outcome(body_whole=server.body_whole)
    adapter = backend.adapters[client.preload]
    began = time.monotonic()
    try:
        with anyio.fail_after(REQUEST_BOUND):
            await adapter(scope_for(client), server.receive, server.send)
    except TimeoutError:
        outcome.timed_out = True
    except BaseException as exc:  # catch everything: a leaked KeyboardInterrupt is a finding
        outcome.escaped = type(exc)
        outcome.escaped_repr = repr(exc)
    outcome.seconds = time.monotonic() - began
    outcome.messages = server.messages
    outcome.left_early = server.left_early
    outcome.saw_odd = server.saw_odd
    return outcome


def bridge_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t is not threading.main_thread()]


def settle_threads(limit: int, timeout: float = 2.0) -> int:
    deadline = time.monotonic() + timeout
    while True:
        count = threading.active_count()
        if count <= limit or time.monotonic() > deadline:
            return count
        time.sleep(0.01)


@pytest.fixture(scope="module", params=["asyncio", "trio"])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    before = threading.active_count()
    with start_blocking_portal(request.param) as portal:
        dispatch = Dispatch()
        adapters = {
            p: WsgiToAsgi(dispatch, max_threads=MAX_THREADS, preload_body=p, spool_body=SPOOLS[p])
            for p in PRELOADS
        }
        # Each adapter's pool, plus the loop's own helper threads (anyio/trio caches).
        yield Backend(request.param, portal, dispatch, adapters, baseline=before + 1)
    del adapters


# -- checks --------------------------------------------------------------------------------


def legal_sequence(messages: list[MutableMapping[str, Any]]) -> None:
    """One http.response.start, then http.response.body messages; nothing after the final one."""
    for index, message in enumerate(messages):
        kind = message.get("type")
        if index == 0:
            assert kind == "http.response.start", messages
            assert type(message["status"]) is int and 200 <= message["status"] <= 999, message
            for name, value in message.get("headers", []):
                assert type(name) is bytes and type(value) is bytes, message
                assert name == name.lower(), message
        else:
            assert kind == "http.response.body", messages
            assert type(message.get("body", b"")) is bytes, message
            assert type(message.get("more_body", False)) is bool, message
            assert messages[index - 1].get("type") == "http.response.start" or messages[index - 1].get(
                "more_body", False
            ), f"a message after the final body: {messages}"


def run_and_check(backend: Backend, app_plan: AppPlan, client: ClientPlan, *, collect: bool) -> None:
    rec = Recorder()
    backend.dispatch.app = make_app(app_plan, rec)
    outcome = backend.portal.call(run_one, backend, client)
    backend.dispatch.app = None
    context = f"\napp={app_plan}\nclient={client}\noutcome={outcome}\nrec={rec}"

    # 1. Bounded: no hang, and an endless generator was stopped, not left to its cap.
    assert not outcome.timed_out, "the request did not end within the bound" + context
    assert not rec.endless_capped, "the endless generator was never stopped" + context

    # 2. No app code runs any more, and close() ran exactly once if there was one.
    assert rec.active == 0, "app code still runs after the request" + context

    # 3. The ASGI messages form a legal sequence.
    legal_sequence(outcome.messages)

    exp = expected(app_plan)
    messages = outcome.messages
    body = b"".join(m.get("body", b"") for m in messages[1:])
    complete = bool(messages) and len(messages) > 1 and not messages[-1].get("more_body", False)
    odd_request = not outcome.body_whole
    loose = odd_request or outcome.left_early
    event(f"loose={loose} expected={'complete' if exp.complete else (exp.escape or type(None)).__name__}")

    # 4. Only the app's own error or a documented bridge error escapes.
    allowed: set[Optional[type[BaseException]]] = {exp.escape}
    if loose:
        allowed.add(None)
    if odd_request:
        allowed.add(InvalidScopeError)
    if outcome.escaped is not None:
        assert issubclass(outcome.escaped, (AppError, BridgeError)), (
            f"an undocumented exception escaped: {outcome.escaped_repr}" + context
        )
        assert outcome.escaped is not ClientDisconnected, "ClientDisconnected escaped" + context
    assert outcome.escaped in allowed, f"escaped {outcome.escaped_repr}, expected one of {allowed}" + context

    # 5. The body: the oracle's when all went well; otherwise a prefix, never marked complete
    #    after an error.
    if not loose:
        if exp.complete:
            assert complete, "the response is not complete" + context
            assert messages[0]["status"] == exp.status, context
            assert body == exp.body, context
            sent_headers = [(bytes(k), bytes(v)) for k, v in messages[0]["headers"]]
            extra = [h for h in sent_headers if h not in exp.headers]
            assert [h for h in sent_headers if h in exp.headers] == exp.headers, context
            if extra:
                assert extra == [(b"content-length", str(len(body)).encode())], context
                assert client.method != "HEAD" and exp.declared is None, context
        else:
            assert not complete, "an errored response was marked complete" + context
            assert exp.allows_prefix(body), context
            assert len(body) >= exp.committed, "bytes write() sent are missing" + context
    else:
        assert exp.allows_prefix(body), context
        if exp.escape is not None and not exp.complete:
            assert not complete, context

    # 6. The request body the app read: all of it, or an error; never a short body as if whole.
    if rec.called and outcome.body_whole and rec.read_error is None and app_plan.read != "none":
        want = client.body if app_plan.read != "partial" else client.body[:3]
        assert rec.read_data == want, context
    if rec.read_error is not None:
        assert rec.read_error in ("ClientDisconnected", "InvalidScopeError"), context
        assert not outcome.body_whole, context

    # 7. close() exactly once, when the app returned an iterable with close().
    assert rec.closes == (1 if rec.returned_close else 0), "close() not called exactly once" + context

    # 8. Nothing the app made outlives the request.
    del outcome, messages
    # A worker may still be leaving bridge's code for a moment; a cycle never goes.
    alive = wait_dead(rec.token_refs, collect=collect, timeout=1.0 if collect else 0.3)
    if alive:
        how = "" if collect else f" (gc disabled: kept by a reference cycle: {cycle_garbage()})"
        raise AssertionError(f"{len(alive)} object(s) the app made outlived the request{how}{context}")

    # 9. Threads: back to the baseline plus the pools (no thread per request).
    limit = backend.baseline + MAX_THREADS * len(PRELOADS) + 8
    count = settle_threads(limit)
    assert count <= limit, f"{count} threads, more than {limit}" + context


# -- the properties ------------------------------------------------------------------------


# Found by the long profile: write() reaches the declared Content-Length, and the server
# must not ask the generator for more (PEP 3333: stop iterating once enough is sent).
CONTENT_LENGTH_REACHED_BY_WRITE = (
    AppPlan(
        container="generator",
        start="once",
        lazy=False,
        status="200 OK",
        cl="exact",
        writes=[b"abc"],
        chunks=[],
        raise_at=0,
        recover=False,
        endless=False,
        read="none",
    ),
    ClientPlan(
        method="GET",
        body=b"",
        declare_length=False,
        parts=[b""],
        disconnect_at=None,
        odd_at=None,
        odd_kind="unknown",
        extra_after_body=False,
        send_gone_after=None,
        spec="2.4",
        preload=0,
    ),
)


@pytest.mark.timeout(PROFILE_TIMEOUT)
@given(scenario=scenarios())
@example(scenario=CONTENT_LENGTH_REACHED_BY_WRITE)
def test_wsgi_app_behaviours(backend: Backend, scenario: tuple[AppPlan, ClientPlan]) -> None:
    app_plan, client = scenario
    run_and_check(backend, app_plan, client, collect=True)


# Found on Python 3.13: the client gone at the first send(), with a streamed response
# (asyncio) and with write() (trio, where the send()'s OSError came back through trio's
# from-thread machinery, whose frames kept it in a cycle).
GONE_AT_FIRST_SEND = ClientPlan("GET", b"", False, [b""], None, None, "unknown", False, 0, "2.4", 0)
STREAM_TO_A_GONE_CLIENT = (
    AppPlan("generator", "once", True, "200 OK", "none", [], [b"\x00"], None, False, False, "none"),
    GONE_AT_FIRST_SEND,
)
WRITE_TO_A_GONE_CLIENT = (
    AppPlan("list", "once", False, "200 OK", "none", [b""], [], None, False, False, "none"),
    GONE_AT_FIRST_SEND,
)


@pytest.mark.timeout(PROFILE_TIMEOUT)
@given(scenario=scenarios())
@example(scenario=STREAM_TO_A_GONE_CLIENT)
@example(scenario=WRITE_TO_A_GONE_CLIENT)
def test_app_objects_die_by_reference_counting(
    backend: Backend, scenario: tuple[AppPlan, ClientPlan]
) -> None:
    app_plan, client = scenario
    gc.collect()
    gc.disable()
    try:
        run_and_check(backend, app_plan, client, collect=False)
    finally:
        gc.enable()
