"""AsgiToWsgi reads and discards the request body an ASGI app left unread (issue 15,
item 4).

A body over ``preload_body`` streams to the app; an app that answers without reading it
left it on the connection, and gunicorn's gthread worker, which reads 64 KiB of such a
rest at most, then closed a connection whose response had promised to keep it: the
client's next request on it was lost. Now the response's ``close()`` (a whole response,
a streamed one, a pathsend file, a HEAD cut short) reads the rest in the WSGI thread,
after the app's task can no longer read it:

* never past ``CONTENT_LENGTH`` (the next request's bytes stay where they are); a body
  read until EOF (``wsgi.input_terminated``) is read to its end;
* bounded: at most ``_DRAIN_LIMIT`` bytes (a larger rest is not read at all; a body read
  until EOF stops one byte past it), no read started after ``_DRAIN_TIME`` seconds, and
  a read that fails ends it; on gunicorn each wait for the client's bytes is cut at that
  deadline (its socket's timeout, restored afterwards); each case leaves a debug line;
* free on the common path: a body that was preloaded or read whole leaves nothing to
  read, and a whole response with ``teardown_wait=0`` is still a plain list;
* a response that failed, or that the server closed early, is not drained (the server
  closes the connection); nor is a body the client sends only once told to
  (``Expect: 100-continue``) and that the app never asked for, except on gunicorn,
  which tells it at once;
* a read the app asks for once its response is complete gets a disconnect, even when
  the WSGI thread had taken it with the final body (it used to wait for good).

Driven in process the way a WSGI server drives the adapter, on asyncio and trio. Every
wait is bounded; no thread outlives a test (``tests/thread_leaks.py``), and nothing of a
request survives it without a garbage collection. The same on real servers:
``tests/integration_asgi_apps/test_unread_body.py``.
"""

from __future__ import annotations

import io
import logging
import socket
import threading
import time
import weakref
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import anyio
import pytest

import bridge.asgi_to_wsgi as a2w
from bridge import AsgiToWsgi, ClientDisconnected
from bridge._types import Message, Scope
from tests.test_request_lifetime import Token, no_gc  # noqa: F401 - no_gc: a fixture
from tests.thread_leaks import no_thread_leaks  # noqa: F401 - autouse fixture

from .asgi_apps import WAIT, LogWaiter, Receive, Send, StartResponse, body, call, make_environ, start

A2W_LOGGER = "bridge.asgi_to_wsgi"
MIB = 1024 * 1024
#: Over preload_body (1 MiB by default): the body streams to the app, which may leave it.
BIG = 2 * MIB
LIMIT = a2w._DRAIN_LIMIT
#: What follows a body on a kept-alive connection: never to be read by the adapter.
NEXT = b"GET /next HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
FILE_BODY = b"from a file\n"


@pytest.fixture(params=["asyncio", "trio"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_adapter(backend: str) -> Iterator[Callable[..., AsgiToWsgi]]:
    """Adapters on the test's backend, lifespan off; all closed afterwards."""
    adapters: list[AsgiToWsgi] = []

    def make(app: Any, **kw: Any) -> AsgiToWsgi:
        kw.setdefault("backend", backend)
        kw.setdefault("lifespan", "off")
        adapter = AsgiToWsgi(app, **kw)
        adapters.append(adapter)
        return adapter

    yield make
    for adapter in adapters:
        adapter.close()


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


@pytest.fixture
def short_drain(monkeypatch: pytest.MonkeyPatch) -> float:
    """A drain time a test can wait out."""
    monkeypatch.setattr(a2w, "_DRAIN_TIME", 0.3)
    return 0.3


def debug_lines(log: LogWaiter) -> list[str]:
    return [r.getMessage() for r in log.records if r.levelno == logging.DEBUG]


def pattern(size: int) -> bytes:
    return (bytes(range(251)) * (size // 251 + 1))[:size]


class Input(io.BytesIO):
    """wsgi.input: the body, then what follows it on the connection; records the size
    of every read()."""

    def __init__(self, data: bytes, after: bytes = NEXT) -> None:
        super().__init__(data + after)
        self.reads: list[Optional[int]] = []

    def read(self, size: Optional[int] = -1) -> bytes:
        self.reads.append(size)
        return super().read(size)


def post(
    data: bytes, *, chunked: bool = False, method: str = "POST", after: bytes = NEXT, **more: Any
) -> dict[str, Any]:
    """An environ with ``data`` as its body: with CONTENT_LENGTH, then ``after`` on the
    stream; or ``chunked``: no CONTENT_LENGTH, the stream ends at the body's end."""
    extra: dict[str, Any]
    if chunked:
        extra = {"wsgi.input": Input(data, b""), "wsgi.input_terminated": True}
    else:
        extra = {"wsgi.input": Input(data, after), "CONTENT_LENGTH": str(len(data))}
    return make_environ(method=method, **extra, **more)


def streamed(stream: Any, server_socket: Optional[socket.socket] = None) -> dict[str, Any]:
    """An environ whose ``wsgi.input`` is ``stream``, a body of BIG bytes; with
    gunicorn's ``gunicorn.socket``, the connection's socket, if ``server_socket``."""
    more: dict[str, Any] = {"wsgi.input": stream}
    if server_socket is not None:
        more["gunicorn.socket"] = server_socket
    return make_environ(method="POST", CONTENT_LENGTH=str(BIG), **more)


class Ignorer:
    """Answers without reading the body (``read``: after reading that many messages).
    ``mode``: ``whole`` (one body message), ``stream`` (two), ``file`` (pathsend),
    ``head`` (an endless stream, for HEAD), ``fail`` (raises after its first body
    bytes). Records what it received, and (``receive_after``) what receive() gives
    once the response is complete."""

    def __init__(self, mode: str = "whole", *, read: int = 0, path: Optional[Path] = None) -> None:
        self.mode = mode
        self.read = read
        self.path = path
        self.received: list[Message] = []
        self.after: list[Message] = []
        self.receive_after = False
        self.ended = threading.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            for _ in range(self.read):
                self.received.append(await receive())
            if self.mode == "whole":
                await send(start(200, [(b"content-length", b"7")]))
                await send(body(b"ignored"))
            elif self.mode == "stream":
                await send(start())
                await send(body(b"ign", more=True))
                await send(body(b"ored"))
            elif self.mode == "file":
                await send(start())
                await send({"type": "http.response.pathsend", "path": str(self.path)})
            elif self.mode == "head":
                await send(start())
                try:
                    while True:
                        await send(body(b"endless", more=True))
                        await anyio.sleep(0.01)
                except ClientDisconnected:
                    pass  # the headers went out, and the app was let go
            elif self.mode == "fail":
                await send(start())
                await send(body(b"first", more=True))
                raise RuntimeError("the app broke after its first body bytes")
            if self.receive_after:
                with anyio.fail_after(WAIT):
                    self.after.append(await receive())
        finally:
            self.ended.set()


def expected_body(mode: str) -> bytes:
    return {"whole": b"ignored", "stream": b"ignored", "file": FILE_BODY, "head": b""}[mode]


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    path = tmp_path / "sent.txt"
    path.write_bytes(FILE_BODY)
    return path


# -- the rest is read, never past the body ---------------------------------------------------


@pytest.mark.parametrize("teardown_wait", [0.1, 0.0], ids=["teardown", "no-teardown"])
@pytest.mark.parametrize("mode", ["whole", "stream", "file", "head"])
def test_unread_body_is_drained_when_the_response_closes(
    make_adapter: Callable[..., AsgiToWsgi], data_file: Path, mode: str, teardown_wait: float
) -> None:
    app = Ignorer(mode, path=data_file)
    adapter = make_adapter(app, teardown_wait=teardown_wait)
    environ = post(pattern(BIG), method="HEAD" if mode == "head" else "POST")
    stream = environ["wsgi.input"]
    start_response = StartResponse()
    result = adapter(environ, start_response)
    chunks = list(result)
    assert stream.tell() == 0  # not before the server is done with the response...
    result.close()  # type: ignore[attr-defined]
    assert stream.tell() == BIG  # ...then all of it, and not a byte of the next request
    assert stream.read() == NEXT
    assert start_response.status == "200 OK"
    assert b"".join(chunks) == expected_body(mode)
    assert not app.received
    assert max(size for size in stream.reads if size is not None) <= a2w._DRAIN_CHUNK


@pytest.mark.parametrize(
    ("software", "drained"),
    [("gunicorn/23.0.0", False), ("gunicorn/27.0.1", True), ("waitress", True), (None, True)],
)
def test_gunicorn_before_24_drains_the_rest_itself(
    make_adapter: Callable[..., AsgiToWsgi], software: Optional[str], drained: bool
) -> None:
    """gunicorn 23 reads an unread rest itself before the next request (and keeps the
    connection), but closes it when the rest is read in the response's close(); 27
    reads 64 KiB at most, then closes: only there does bridge drain."""
    server_socket, client_socket = socket.socketpair()
    with server_socket, client_socket:
        environ = post(pattern(BIG))
        if software is not None:
            environ["SERVER_SOFTWARE"] = software
        if software is not None and software.startswith("gunicorn/"):
            environ["gunicorn.socket"] = server_socket
        stream = environ["wsgi.input"]
        result = make_adapter(Ignorer())(environ, StartResponse())
        assert b"".join(result) == b"ignored"
        result.close()  # type: ignore[attr-defined]
        assert stream.tell() == (BIG if drained else 0)


@pytest.mark.parametrize("preload", [MIB, 0], ids=["preload-default", "preload-0"])
def test_a_partly_read_body_has_its_rest_drained(
    make_adapter: Callable[..., AsgiToWsgi], preload: int
) -> None:
    app = Ignorer(read=1)
    adapter = make_adapter(app, preload_body=preload)
    data = pattern(BIG)
    environ = post(data)
    response = call(adapter, environ)
    assert response.body == b"ignored"
    got = app.received[0]
    assert got["type"] == "http.request" and got["more_body"] and data.startswith(got["body"])
    assert environ["wsgi.input"].tell() == BIG
    assert environ["wsgi.input"].read() == NEXT


def test_a_chunked_body_is_drained_to_its_end(make_adapter: Callable[..., AsgiToWsgi]) -> None:
    adapter = make_adapter(Ignorer())
    environ = post(pattern(BIG), chunked=True)
    assert call(adapter, environ).body == b"ignored"
    stream = environ["wsgi.input"]
    assert stream.tell() == BIG
    assert stream.reads[-1] is not None and stream.reads[-1] > 0  # the read that found the end


# -- bounded ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("read", "size"), [(0, LIMIT), (1, LIMIT + 256 * 1024)], ids=["unread", "partly-read"]
)
def test_a_rest_at_the_bound_is_drained(
    make_adapter: Callable[..., AsgiToWsgi], a2w_log: LogWaiter, read: int, size: int
) -> None:
    app = Ignorer(read=read)
    adapter = make_adapter(app, preload_body=0)
    environ = post(pattern(size))
    call(adapter, environ)
    assert environ["wsgi.input"].tell() == size
    assert not [line for line in debug_lines(a2w_log) if "request body" in line]


@pytest.mark.parametrize(
    ("read", "size"), [(0, LIMIT + 1), (1, LIMIT + 256 * 1024 + 1)], ids=["unread", "partly-read"]
)
def test_a_rest_over_the_bound_is_left_unread(
    make_adapter: Callable[..., AsgiToWsgi], a2w_log: LogWaiter, read: int, size: int
) -> None:
    app = Ignorer(read=read)
    adapter = make_adapter(app, preload_body=0)
    environ = post(pattern(size))
    stream = environ["wsgi.input"]
    assert call(adapter, environ).body == b"ignored"
    assert stream.tell() == (256 * 1024 if read else 0)  # what the app read, nothing more
    assert len(stream.reads) == read
    assert debug_lines(a2w_log) == [
        f"leaving the {LIMIT + 1} request body bytes the ASGI app did not read (over {LIMIT}, the "
        "most read and discarded after a response): the server has to close the connection"
    ]


@pytest.mark.parametrize("extra", [0, 1, 1000], ids=["at", "one-over", "over"])
def test_a_chunked_body_is_drained_up_to_the_bound(
    make_adapter: Callable[..., AsgiToWsgi], a2w_log: LogWaiter, extra: int
) -> None:
    adapter = make_adapter(Ignorer())
    environ = post(pattern(LIMIT + extra), chunked=True)
    call(adapter, environ)
    stream = environ["wsgi.input"]
    lines = [line for line in debug_lines(a2w_log) if "request body" in line]
    if extra:
        assert stream.tell() == LIMIT + 1  # one byte past the bound tells the body went on
        assert lines == [
            f"leaving the rest of a request body the ASGI app did not read (over {LIMIT} bytes, "
            "the most read and discarded after a response): the server has to close the connection"
        ]
    else:
        assert stream.tell() == LIMIT
        assert not lines


class Trickle(io.RawIOBase):
    """A client that keeps sending a little, slowly, and never ends its body."""

    def __init__(self) -> None:
        self.reads = 0

    def read(self, size: Optional[int] = -1) -> bytes:
        self.reads += 1
        time.sleep(0.02)
        return b"t" * min(1024, size if size is not None and size >= 0 else 1024)


def test_a_slow_client_is_drained_for_a_bounded_time(
    make_adapter: Callable[..., AsgiToWsgi], a2w_log: LogWaiter, short_drain: float
) -> None:
    adapter = make_adapter(Ignorer())
    stream = Trickle()
    environ = streamed(stream)
    result = adapter(environ, StartResponse())
    assert list(result) == [b"ignored"]
    began = time.monotonic()
    result.close()  # type: ignore[attr-defined]
    elapsed = time.monotonic() - began
    assert short_drain <= elapsed < short_drain + 0.5
    assert stream.reads >= 2
    assert f"stopped reading the rest of the request body after {short_drain} s: the server has to " in (
        "\n".join(debug_lines(a2w_log))
    )


class Failing(io.RawIOBase):
    """A server's read timeout: the client stopped sending after ``sent`` bytes."""

    def __init__(self, sent: int) -> None:
        self.left = sent

    def read(self, size: Optional[int] = -1) -> bytes:
        if self.left <= 0:
            time.sleep(0.05)
            raise TimeoutError("timed out")
        n = min(self.left, size if size is not None and size >= 0 else self.left)
        self.left -= n
        return b"f" * n


def test_a_read_that_fails_ends_the_drain(
    make_adapter: Callable[..., AsgiToWsgi], a2w_log: LogWaiter
) -> None:
    adapter = make_adapter(Ignorer())
    environ = streamed(Failing(300_000))
    began = time.monotonic()
    assert call(adapter, environ).body == b"ignored"
    assert time.monotonic() - began < WAIT
    assert (
        "reading the rest of the request body failed: TimeoutError('timed out'); the server has to "
        "close the connection"
    ) in debug_lines(a2w_log)


class SocketInput:
    """wsgi.input as gunicorn's for a body of known length: read(n) waits on the
    connection until it has n bytes (or the body's end, or EOF)."""

    def __init__(self, sock: socket.socket, length: int) -> None:
        self.sock = sock
        self.left = length
        self.buffer = b""

    def read(self, size: int = -1) -> bytes:
        want = self.left if size < 0 else min(size, self.left)
        while len(self.buffer) < want:
            data = self.sock.recv(65536)  # a timeout raises, as gunicorn's reader does
            if not data:
                break
            self.buffer += data
        out, self.buffer = self.buffer[:want], self.buffer[want:]
        self.left -= len(out)
        return out


def test_a_client_that_stops_sending_is_cut_by_the_server_socket_timeout(
    make_adapter: Callable[..., AsgiToWsgi], a2w_log: LogWaiter, short_drain: float
) -> None:
    """gunicorn waits for a client's bytes without a timeout: its socket (the environ's
    ``gunicorn.socket``) gets the time left for the drain, then its own back."""
    server, client = socket.socketpair()
    try:
        assert server.gettimeout() is None
        client.sendall(b"s" * 100_000)  # of a 2 MiB body; then nothing
        environ = streamed(SocketInput(server, BIG), server)
        adapter = make_adapter(Ignorer())
        result = adapter(environ, StartResponse())
        assert list(result) == [b"ignored"]
        began = time.monotonic()
        result.close()  # type: ignore[attr-defined]
        elapsed = time.monotonic() - began
        assert short_drain * 0.8 <= elapsed < short_drain + 0.5
        assert server.gettimeout() is None  # restored
        assert [line for line in debug_lines(a2w_log) if "rest of the request body failed" in line]
    finally:
        server.close()
        client.close()


def test_a_client_that_sends_the_rest_is_drained_through_the_server_socket(
    make_adapter: Callable[..., AsgiToWsgi], a2w_log: LogWaiter
) -> None:
    server, client = socket.socketpair()
    sender = threading.Thread(target=client.sendall, args=(pattern(BIG) + NEXT,))
    try:
        server.settimeout(30.0)  # a server's own timeout, restored after the drain
        sender.start()
        input_ = SocketInput(server, BIG)
        environ = streamed(input_, server)
        adapter = make_adapter(Ignorer())
        assert call(adapter, environ).body == b"ignored"
        assert input_.left == 0
        assert server.gettimeout() == 30.0
        sender.join(WAIT)
        rest = input_.buffer
        while not rest.endswith(NEXT[-4:]):
            rest += server.recv(65536)
        assert rest == NEXT  # the next request, untouched
        assert not [line for line in debug_lines(a2w_log) if "request body" in line]
    finally:
        server.close()
        client.close()
        sender.join(WAIT)


@pytest.mark.parametrize(
    ("server", "read", "drained"),
    [("lazy", 0, False), ("lazy", 1, True), ("gunicorn", 0, True)],
    ids=["continue-never-asked", "continue-asked-by-a-read", "gunicorn-asks-at-once"],
)
def test_a_body_the_client_was_never_asked_for_is_not_waited_for(
    make_adapter: Callable[..., AsgiToWsgi], a2w_log: LogWaiter, server: str, read: int, drained: bool
) -> None:
    """``Expect: 100-continue``: the client sends its body once told to; a server may
    tell it at the first read, and after a final response the client need never send
    it. gunicorn tells it at once (and has its socket in the environ)."""
    app = Ignorer(read=read)
    adapter = make_adapter(app)
    server_socket, client = socket.socketpair()
    try:
        environ = post(pattern(BIG), HTTP_EXPECT="100-continue")
        if server == "gunicorn":
            environ["gunicorn.socket"] = server_socket
        assert call(adapter, environ).body == b"ignored"
        assert environ["wsgi.input"].tell() == (BIG if drained else 0)
        skipped = [line for line in debug_lines(a2w_log) if "100-continue" in line]
        assert skipped == (
            []
            if drained
            else [
                "leaving the request body the ASGI app did not read: its client waits for 100 "
                "Continue before sending it (Expect: 100-continue), which the server may never "
                "have sent; the server has to close the connection"
            ]
        )
    finally:
        server_socket.close()
        client.close()


# -- free on the common path ---------------------------------------------------------------------


@pytest.mark.parametrize("preload", [MIB, 0], ids=["preloaded", "streamed"])
@pytest.mark.parametrize("chunked", [False, True], ids=["length", "chunked"])
def test_nothing_is_read_when_the_app_read_it_all(
    make_adapter: Callable[..., AsgiToWsgi], preload: int, chunked: bool
) -> None:
    async def echo_length(scope: Scope, receive: Receive, send: Send) -> None:
        size = 0
        while True:
            message = await receive()
            size += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        await send(start())
        await send(body(b"%d" % size))

    adapter = make_adapter(echo_length, preload_body=preload, teardown_wait=0)
    size = 600_000
    environ = post(pattern(size), chunked=chunked)
    stream = environ["wsgi.input"]
    result = adapter(environ, StartResponse())
    assert type(result) is list  # nothing to do at close(): no close() at all
    assert result == [b"%d" % size]
    if chunked:
        # Three reads with data, then the one that found the end: not one more.
        assert stream.reads == [256 * 1024] * 4
    elif preload:
        assert stream.reads == [size]
    else:
        assert stream.reads == [256 * 1024, 256 * 1024, size - 512 * 1024]
    assert stream.read() == (b"" if chunked else NEXT)


def test_a_small_ignored_body_was_preloaded_and_needs_nothing(
    make_adapter: Callable[..., AsgiToWsgi],
) -> None:
    adapter = make_adapter(Ignorer(), teardown_wait=0)
    environ = post(pattern(1000))
    result = adapter(environ, StartResponse())
    assert type(result) is list
    assert environ["wsgi.input"].reads == [1000]


# -- not drained: the server closes the connection --------------------------------------------


def test_a_failed_response_is_not_drained(make_adapter: Callable[..., AsgiToWsgi]) -> None:
    app = Ignorer("fail")
    adapter = make_adapter(app)
    environ = post(pattern(BIG))
    result = adapter(environ, StartResponse())
    iterator = iter(result)
    assert next(iterator) == b"first"
    with pytest.raises(RuntimeError, match="broke after its first body bytes"):
        next(iterator)
    result.close()  # type: ignore[attr-defined]
    assert environ["wsgi.input"].tell() == 0


def test_a_response_the_server_closes_early_is_not_drained(make_adapter: Callable[..., AsgiToWsgi]) -> None:
    async def endless(scope: Scope, receive: Receive, send: Send) -> None:
        await send(start())
        while True:
            await send(body(b"more", more=True))
            await anyio.sleep(0.01)

    adapter = make_adapter(endless, disconnect_grace=0.1)
    environ = post(pattern(BIG))
    result = adapter(environ, StartResponse())
    assert next(iter(result)) == b"more"
    result.close()  # type: ignore[attr-defined]  # the client left
    assert environ["wsgi.input"].tell() == 0


# -- the app's task no longer reads ---------------------------------------------------------------


def test_the_app_reading_after_its_response_gets_a_disconnect(
    make_adapter: Callable[..., AsgiToWsgi],
) -> None:
    """A read the app asks for once its response is complete is answered with a
    disconnect, never served after (or during) the drain; the task ends."""
    for _ in range(20):  # the read request and the final body often cross together
        app = Ignorer()
        app.receive_after = True
        adapter = make_adapter(app, teardown_wait=0)
        environ = post(pattern(BIG))
        assert call(adapter, environ).body == b"ignored"
        assert environ["wsgi.input"].tell() == BIG
        assert app.ended.wait(WAIT)
        assert app.after == [{"type": "http.disconnect"}]


# -- nothing of the request survives it ----------------------------------------------------------


@pytest.mark.usefixtures("no_gc")
@pytest.mark.parametrize("mode", ["whole", "stream", "file", "head", "over-the-bound"])
def test_request_objects_die_by_refcount(
    make_adapter: Callable[..., AsgiToWsgi], data_file: Path, mode: str
) -> None:
    alive: weakref.WeakSet[Any] = weakref.WeakSet()
    inner = Ignorer("whole" if mode == "over-the-bound" else mode, path=data_file)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        token = Token()
        alive.add(token)
        await inner(scope, receive, send)

    adapter = make_adapter(app)
    size = LIMIT + 1 if mode == "over-the-bound" else BIG
    environ = post(pattern(size), method="HEAD" if mode == "head" else "POST")
    alive.add(environ["wsgi.input"])
    response = call(adapter, environ)
    del response, environ
    assert inner.ended.wait(WAIT)
    deadline = time.monotonic() + WAIT
    while alive and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not alive, f"{mode}: {len(alive)} request object(s) still alive with gc disabled"
