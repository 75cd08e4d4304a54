"""AsgiToWsgi's limits, and the lies it no longer passes on (issues 12, 13 and 15):

* ``max_body_size``: a declared ``Content-Length`` over it is answered 413 before the
  app runs; a body without one (``wsgi.input_terminated``) that grows past it is, to
  the app, a client that left (``http.disconnect``, never a byte past the limit; its
  later ``send()`` raises ``ClientDisconnected``), and the WSGI side answers 413, or
  ends a started response with ``BodyTooLargeError``;
* a client that leaves mid-upload while the app never answers: the WSGI thread is
  freed ``disconnect_grace`` after the app was told, its task cancelled;
* an app whose body breaks its own ``Content-Length`` (shorter, or longer): the bytes
  within it go, then the response fails with ``ResponseError`` (rule
  ``content-length``), so the server closes the connection instead of leaving the
  client waiting on it;
* the adapter's numbers are validated.

Driven in process the way a WSGI server drives the adapter, on asyncio and trio. Every
wait is bounded; no thread outlives a test (``tests/thread_leaks.py``), and the objects
an app makes die by reference counting once a request ends (the collector disabled).
"""

from __future__ import annotations

import io
import logging
import threading
import time
import weakref
from typing import Any, Callable, Iterator, Optional

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge import AsgiToWsgi, BodyTooLargeError, ClientDisconnected, ResponseError
from bridge._types import Message, Scope
from bridge.http import HOP_BY_HOP
from tests.test_request_lifetime import Token, no_gc, wait_dead  # noqa: F401 - no_gc: a fixture
from tests.thread_leaks import no_thread_leaks  # noqa: F401 - autouse fixture

from .asgi_apps import (
    WAIT,
    LogWaiter,
    Receive,
    Send,
    StartResponse,
    body,
    call,
    make_environ,
    read_body,
    start,
    text_app,
)

A2W_LOGGER = "bridge.asgi_to_wsgi"
TOO_LARGE = (
    "413 Content Too Large",
    [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", "18")],
)
TOO_LARGE_BODY = b"Content Too Large\n"


@pytest.fixture(params=["asyncio", "trio"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_adapter(backend: str) -> Iterator[Callable[..., AsgiToWsgi]]:
    """Adapters on the test's backend, lifespan off; all closed afterwards (the
    thread-leak check then sees their loop threads gone)."""
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


def messages_at(log: LogWaiter, level: int) -> list[str]:
    return [r.getMessage() for r in log.records if r.levelno == level]


def pattern(size: int) -> bytes:
    """A body whose every prefix is distinct from its shifted copies (251 is prime)."""
    return (bytes(range(251)) * (size // 251 + 1))[:size]


def chunked_environ(data: bytes, **extra: Any) -> dict[str, Any]:
    """A chunked upload as gunicorn hands it over: no CONTENT_LENGTH, the stream ends
    at the body's end (``wsgi.input_terminated``)."""
    more: dict[str, Any] = {"wsgi.input": io.BytesIO(data), "wsgi.input_terminated": True}
    return make_environ(method="POST", **more, **extra)


class Uploader:
    """Reads the request body until it ends or the client leaves, then tries to answer;
    records what receive() gave, what send() raised, and how the task ended."""

    def __init__(self, *, answer_first: bool = False, then_wait: bool = False) -> None:
        self.answer_first = answer_first  # start the response before reading the body
        self.then_wait = then_wait  # after the body, wait (for good) instead of answering
        self.messages: list[Message] = []
        self.send_errors: list[BaseException] = []
        self.ran = threading.Event()
        self.cancelled = threading.Event()
        self.ended = threading.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] == "/ok":
            await text_app(scope, receive, send)
            return
        self.ran.set()
        try:
            if self.answer_first:
                await send(start())
                await send(body(b"first", more=True))
            self.messages = await read_body(receive)
            if self.then_wait:
                await anyio.sleep(WAIT * 4)
            try:
                await send(start(200) if not self.answer_first else body(b"more", more=True))
                await send(body(b"answer"))
            except BaseException as exc:
                self.send_errors.append(exc)
                raise
        except anyio.get_cancelled_exc_class():
            self.cancelled.set()
            raise
        finally:
            self.ended.set()

    @property
    def received(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.messages)


# -- item 4: the numbers are checked ---------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "value", "text"),
    [
        ("preload_body", -1, "preload_body must be 0 or more, got -1"),
        ("max_buffer", 0, "max_buffer must be at least 1, got 0"),
        ("disconnect_grace", -0.5, "disconnect_grace must be 0 or more, got -0.5"),
        ("startup_timeout", 0, "startup_timeout must be more than 0, got 0"),
        ("shutdown_timeout", -1.0, "shutdown_timeout must be more than 0, got -1.0"),
        ("max_body_size", -1, "max_body_size must be 0 or more (or None: no limit), got -1"),
        ("teardown_wait", -1, "teardown_wait must be 0 or more, got -1"),
    ],
)
def test_numbers_are_validated(option: str, value: float, text: str) -> None:
    options: dict[str, Any] = {option: value}
    with pytest.raises(ValueError) as raised:
        AsgiToWsgi(text_app, **options)
    assert str(raised.value) == text


def test_edge_numbers_are_accepted() -> None:
    adapter = AsgiToWsgi(
        text_app, preload_body=0, max_buffer=1, disconnect_grace=0, max_body_size=0, lifespan="off"
    )
    assert (adapter.preload_body, adapter.max_buffer, adapter.disconnect_grace) == (0, 1, 0)
    assert adapter.max_body_size == 0
    assert AsgiToWsgi(text_app).max_body_size is None  # off by default


# -- item 1: max_body_size, declared length --------------------------------------------------


@pytest.mark.parametrize("preload", [1024 * 1024, 0], ids=["preload", "stream"])
def test_declared_length_over_the_limit_is_413_before_the_app_runs(
    make_adapter: Callable[..., AsgiToWsgi], a2w_log: LogWaiter, preload: int
) -> None:
    app = Uploader()
    adapter = make_adapter(app, max_body_size=10, preload_body=preload)
    environ = make_environ(method="POST", body=b"x" * 11)
    response = call(adapter, environ)
    assert (response.status, response.headers) == TOO_LARGE
    assert response.body == TOO_LARGE_BODY
    assert not {name.lower() for name, _ in response.headers} & HOP_BY_HOP  # PEP 3333
    assert not app.ran.is_set()
    # None of the body reached the app; the answer's close() read and dropped it (a
    # server keeping the connection must not take it for the next request).
    assert environ["wsgi.input"].tell() == 11
    assert messages_at(a2w_log, logging.WARNING) == [
        "answering 413 Content Too Large: the request declares a 11-byte body, over max_body_size (10 bytes)"
    ]
    assert call(adapter, path="/ok").body == b"hello"


@pytest.mark.parametrize("preload", [1024 * 1024, 0], ids=["preload", "stream"])
def test_declared_length_at_the_limit_passes(make_adapter: Callable[..., AsgiToWsgi], preload: int) -> None:
    app = Uploader()
    adapter = make_adapter(app, max_body_size=300_000, preload_body=preload)
    data = pattern(300_000)
    response = call(adapter, make_environ(method="POST", body=data))
    assert response.status == "200 OK"
    assert app.received == data
    assert not app.send_errors


def test_no_limit_by_default(make_adapter: Callable[..., AsgiToWsgi]) -> None:
    app = Uploader()
    adapter = make_adapter(app)
    data = pattern(600_000)
    assert call(adapter, chunked_environ(data)).status == "200 OK"
    assert app.received == data


# -- item 1: max_body_size, a body without a declared length ---------------------------------


def test_chunked_body_over_the_limit_is_413_and_a_disconnect_to_the_app(
    make_adapter: Callable[..., AsgiToWsgi], a2w_log: LogWaiter
) -> None:
    app = Uploader()
    limit = 300_000
    adapter = make_adapter(app, max_body_size=limit, disconnect_grace=2.0)
    data = pattern(700_000)
    environ = chunked_environ(data)
    response = call(adapter, environ)
    # close() returned: the app's task has ended, by itself (its send() raised).
    assert app.ended.is_set() and not app.cancelled.is_set()
    assert (response.status, response.headers) == TOO_LARGE
    assert response.body == TOO_LARGE_BODY
    # What the app got: a prefix of the body, never past the limit, then a disconnect.
    assert app.messages[-1] == {"type": "http.disconnect"}
    assert all(m["type"] == "http.request" and m["more_body"] for m in app.messages[:-1])
    assert data.startswith(app.received) and len(app.received) <= limit
    # ...and it looked like a client that left: its answer raised, and went nowhere.
    assert len(app.send_errors) == 1 and isinstance(app.send_errors[0], ClientDisconnected)
    assert environ["wsgi.input"].tell() <= limit + 1  # reading stopped at the limit
    assert messages_at(a2w_log, logging.WARNING) == [
        "answering 413 Content Too Large: the request body grew past max_body_size (300000 bytes) "
        "as it streamed in; the ASGI app was told its client left"
    ]
    assert not messages_at(a2w_log, logging.ERROR)
    assert call(adapter, path="/ok").body == b"hello"


@pytest.mark.parametrize("extra", [0, 1], ids=["at-limit", "one-over"])
def test_chunked_body_at_the_limit_passes_one_byte_more_does_not(
    make_adapter: Callable[..., AsgiToWsgi], extra: int
) -> None:
    app = Uploader()
    limit = 256 * 1024  # one read chunk exactly: the byte after it decides
    adapter = make_adapter(app, max_body_size=limit)
    data = pattern(limit + extra)
    response = call(adapter, chunked_environ(data))
    if extra:
        assert response.status == TOO_LARGE[0]
        assert app.messages[-1] == {"type": "http.disconnect"}
        assert len(app.received) <= limit
    else:
        assert response.status == "200 OK"
        assert app.received == data
        assert app.messages[-1]["more_body"] is False


def test_zero_limit_allows_only_an_empty_chunked_body(make_adapter: Callable[..., AsgiToWsgi]) -> None:
    app = Uploader()
    adapter = make_adapter(app, max_body_size=0)
    assert call(adapter, chunked_environ(b"")).status == "200 OK"
    assert app.received == b""
    assert call(adapter, chunked_environ(b"x")).status == TOO_LARGE[0]
    assert app.received == b""


def test_chunked_body_over_the_limit_after_the_response_started_ends_it_as_an_error(
    make_adapter: Callable[..., AsgiToWsgi], a2w_log: LogWaiter
) -> None:
    app = Uploader(answer_first=True)
    limit = 100_000
    adapter = make_adapter(app, max_body_size=limit, disconnect_grace=2.0)
    start_response = StartResponse()
    result = adapter(chunked_environ(pattern(400_000)), start_response)
    assert start_response.status == "200 OK"
    it = iter(result)
    assert next(it) == b"first"
    with pytest.raises(BodyTooLargeError) as raised:
        next(it)
    assert raised.value.limit == limit
    assert isinstance(raised.value, ClientDisconnected)
    result.close()  # type: ignore[attr-defined]
    assert app.ended.is_set() and not app.cancelled.is_set()
    assert app.messages[-1] == {"type": "http.disconnect"}
    assert len(app.received) <= limit
    assert len(app.send_errors) == 1 and isinstance(app.send_errors[0], ClientDisconnected)
    assert messages_at(a2w_log, logging.WARNING) == [
        "the request body grew past max_body_size (100000 bytes) after the response started: "
        "ending the response as an error; the ASGI app was told its client left"
    ]


def test_chunked_body_over_the_limit_app_that_ignores_it_is_cancelled(
    make_adapter: Callable[..., AsgiToWsgi], a2w_log: LogWaiter
) -> None:
    app = Uploader(then_wait=True)
    grace = 0.3
    adapter = make_adapter(app, max_body_size=1000, disconnect_grace=grace)
    start_response = StartResponse()
    began = time.monotonic()
    result = adapter(chunked_environ(pattern(5000)), start_response)
    answered = time.monotonic() - began
    assert start_response.status == TOO_LARGE[0]  # at once: the app is not waited for
    assert not app.ended.is_set()
    closing = time.monotonic()
    result.close()  # type: ignore[attr-defined]  # ...but close() waits for its end
    assert app.cancelled.is_set() and app.ended.is_set()
    assert grace * 0.8 <= time.monotonic() - closing < grace + WAIT
    assert answered < grace + WAIT
    a2w_log.wait_for(lambda r: "cancelling the ASGI app's task: its client left 0.3 s ago" in r.getMessage())
    assert call(adapter, path="/ok").body == b"hello"


# -- item 1: the property ---------------------------------------------------------------------


class ChunkedStream(io.RawIOBase):
    """wsgi.input of a chunked upload: read(n) gives at most what is left of the chunk
    the client sent (a server hands over what has arrived), b"" at the end."""

    def __init__(self, data: bytes, sizes: list[int]) -> None:
        self.chunks: list[bytes] = []
        at = 0
        for size in sizes:
            self.chunks.append(data[at : at + size])
            at += size
        self.read_total = 0

    def read(self, size: Optional[int] = -1) -> bytes:
        if not self.chunks:
            return b""
        chunk = self.chunks[0]
        if size is None or size < 0 or size >= len(chunk):
            self.chunks.pop(0)
            piece = chunk
        else:
            piece, self.chunks[0] = chunk[:size], chunk[size:]
        self.read_total += len(piece)
        return piece


@pytest.mark.parametrize("backend_name", ["asyncio", "trio"])
def test_property_chunked_uploads_and_limits(backend_name: str) -> None:
    """Any chunking of a chunked upload, any limit: a body within the limit reaches the
    app whole, in order, and is answered; a larger one reaches it as a prefix no longer
    than the limit, then http.disconnect, and the client gets 413."""
    app = Uploader()
    adapter = AsgiToWsgi(app, backend=backend_name, lifespan="off", disconnect_grace=2.0)  # type: ignore[arg-type]

    @settings(
        max_examples=40,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(
        sizes=st.lists(st.one_of(st.integers(1, 300), st.integers(1, 300_000)), min_size=0, max_size=6),
        slack=st.one_of(st.integers(-3, 3), st.integers(-400_000, 400_000)),
    )
    def check(sizes: list[int], slack: int) -> None:
        total = sum(sizes)
        limit = max(0, total + slack)
        data = pattern(total)
        stream = ChunkedStream(data, sizes)
        adapter.max_body_size = limit
        extra: dict[str, Any] = {"wsgi.input": stream, "wsgi.input_terminated": True}
        environ = make_environ(method="POST", **extra)
        response = call(adapter, environ)
        assert app.ended.is_set()
        app.ended.clear()
        if total <= limit:
            assert response.status == "200 OK"
            assert response.body == b"answer"
            assert app.received == data
            assert app.messages[-1] == {
                "type": "http.request",
                "body": app.messages[-1]["body"],
                "more_body": False,
            }
            assert not app.send_errors
        else:
            assert (response.status, response.headers, response.body) == (*TOO_LARGE, TOO_LARGE_BODY)
            assert app.messages[-1] == {"type": "http.disconnect"}
            assert data.startswith(app.received) and len(app.received) <= limit
            assert all(m["type"] == "http.request" for m in app.messages[:-1])
            assert len(app.send_errors) == 1 and isinstance(app.send_errors[0], ClientDisconnected)
            assert stream.read_total <= limit + 1
        app.send_errors.clear()

    try:
        check()
    finally:
        adapter.close()


# -- item 2: the client leaves mid-upload, the app never answers ------------------------------


NO_ANSWER_LOG = (
    "the client left during the request body and the ASGI app did not finish its response "
    "within disconnect_grace (0.3 s): cancelling its task"
)


def short_environ(declared: int, sent: int) -> dict[str, Any]:
    """A client that sent ``sent`` bytes of a ``declared``-byte body, then left (EOF)."""
    extra: dict[str, Any] = {"wsgi.input": io.BytesIO(b"q" * sent)}
    return make_environ(method="POST", CONTENT_LENGTH=str(declared), **extra)


@pytest.mark.parametrize(("declared", "sent", "preload"), [(200_000, 50_000, 0), (100, 40, 1024 * 1024)])
def test_client_left_mid_upload_and_app_never_answers_frees_the_thread(
    make_adapter: Callable[..., AsgiToWsgi], a2w_log: LogWaiter, declared: int, sent: int, preload: int
) -> None:
    app = Uploader(then_wait=True)
    grace = 0.3
    adapter = make_adapter(app, disconnect_grace=grace, preload_body=preload)
    environ = short_environ(declared, sent)
    start_response = StartResponse()
    began = time.monotonic()
    with pytest.raises(ClientDisconnected) as raised:
        adapter(environ, start_response)
    elapsed = time.monotonic() - began
    assert "the client left before sending the whole request body" in str(raised.value)
    assert not start_response.calls
    # The app was told, given the grace period, then cancelled; its task has ended.
    assert app.messages[-1] == {"type": "http.disconnect"}
    assert app.cancelled.is_set() and app.ended.is_set()
    assert grace * 0.8 <= elapsed < grace + WAIT
    assert messages_at(a2w_log, logging.WARNING) == [NO_ANSWER_LOG]
    assert call(adapter, path="/ok").body == b"hello"


def test_client_left_mid_upload_after_the_response_started_and_app_stalls(
    make_adapter: Callable[..., AsgiToWsgi], a2w_log: LogWaiter
) -> None:
    """The response started before the app read the body; the client left; the app,
    told, neither sends nor ends. The WSGI server would only notice at its next write,
    which never comes: the iterator ends the response as an error after the grace."""
    app = Uploader(answer_first=True, then_wait=True)
    grace = 0.3
    adapter = make_adapter(app, disconnect_grace=grace, preload_body=0)
    start_response = StartResponse()
    result = adapter(short_environ(200_000, 50_000), start_response)
    assert start_response.status == "200 OK"
    it = iter(result)
    assert next(it) == b"first"
    began = time.monotonic()
    with pytest.raises(ClientDisconnected) as raised:
        next(it)
    assert grace * 0.8 <= time.monotonic() - began < grace + WAIT
    assert "did not finish its response" in str(raised.value)
    assert app.cancelled.is_set() and app.ended.is_set()  # before the iterator raised
    result.close()  # type: ignore[attr-defined]
    assert messages_at(a2w_log, logging.WARNING) == [NO_ANSWER_LOG]


def test_client_left_mid_upload_app_that_ends_its_stream_is_passed_through(
    make_adapter: Callable[..., AsgiToWsgi], a2w_log: LogWaiter
) -> None:
    app = Uploader(answer_first=True)
    adapter = make_adapter(app, disconnect_grace=0.3, preload_body=0)
    response = call(adapter, short_environ(200_000, 50_000))
    assert response.chunks == [b"first", b"more", b"answer"]
    assert app.messages[-1] == {"type": "http.disconnect"} and not app.send_errors
    assert not messages_at(a2w_log, logging.WARNING)


def test_client_left_mid_upload_app_that_answers_is_passed_through(
    make_adapter: Callable[..., AsgiToWsgi], a2w_log: LogWaiter
) -> None:
    """The grace period counts from when the app is told the client left: an app that
    takes its time to read, then answers at once, is answered as before (its response
    goes nowhere, but that is the WSGI server's to find out)."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await anyio.sleep(0.5)  # longer than the grace period, before it reads
        messages = await read_body(receive)
        await send(start(200))
        await send(body(repr([m["type"] for m in messages]).encode()))

    adapter = make_adapter(app, disconnect_grace=0.3, preload_body=0)
    environ = short_environ(1000, 10)
    response = call(adapter, environ)
    assert response.status == "200 OK"
    assert response.body == b"['http.request', 'http.disconnect']"
    assert not messages_at(a2w_log, logging.WARNING)


# -- item 3: a body that breaks its own Content-Length -----------------------------------------


def lying_app(
    declared: int, chunks: list[bytes], *, last: Optional[bytes] = b"", head_status: int = 200
) -> Any:
    """Declares ``declared`` bytes, sends ``chunks`` (more_body true), then ``last``
    as the final body (None: returns without one). Records what send() raised."""
    raised: list[BaseException] = []
    ended = threading.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send(
                start(head_status, [(b"content-type", b"text/plain"), (b"content-length", b"%d" % declared)])
            )
            for chunk in chunks:
                await send(body(chunk, more=True))
            if last is not None:
                await send(body(last))
        except ResponseError as exc:
            raised.append(exc)
            raise
        finally:
            ended.set()

    app.raised = raised  # type: ignore[attr-defined]
    app.ended = ended  # type: ignore[attr-defined]
    return app


def serve_until_error(
    adapter: AsgiToWsgi, environ: Optional[dict[str, Any]] = None
) -> tuple[StartResponse, list[bytes], BaseException]:
    """What a WSGI server does: call, iterate until the iterator raises, close()."""
    start_response = StartResponse()
    result = adapter(environ or make_environ(), start_response)
    chunks: list[bytes] = []
    error: Optional[BaseException] = None
    try:
        for chunk in result:
            chunks.append(chunk)
    except ResponseError as exc:
        error = exc
    finally:
        result.close()  # type: ignore[attr-defined]
    assert error is not None, f"the response ended without an error: {chunks}"
    return start_response, chunks, error


@pytest.mark.parametrize(
    ("declared", "chunks", "last", "passed", "message"),
    [
        (1000, [], b"x" * 10, [b"x" * 10], "ended its body after 10 bytes"),
        (1000, [b"ab", b"cd"], b"", [b"ab", b"cd"], "ended its body after 4 bytes"),
        (1000, [b"abc"], None, [b"abc"], "returned after 3 body bytes"),
        (5, [], b"hello world", [b"hello"], "sent at least 11 body bytes; the 6 past it were not sent"),
        (4, [b"ab"], b"cdef", [b"ab", b"cd"], "sent at least 6 body bytes; the 2 past it were not sent"),
        (2, [b"ab"], b"c", [b"ab"], "sent at least 3 body bytes; the 1 past it were not sent"),
        (3, [b"abcdef", b"more"], b"", [b"abc"], "sent at least 6 body bytes; the 3 past it were not sent"),
    ],
    ids=[
        "short-one-message",
        "short-chunks",
        "short-return",
        "long-one-message",
        "long-crossed",
        "long-after",
        "long-swallowed",
    ],
)
def test_body_that_breaks_its_content_length_fails_the_response(
    make_adapter: Callable[..., AsgiToWsgi],
    a2w_log: LogWaiter,
    declared: int,
    chunks: list[bytes],
    last: Optional[bytes],
    passed: list[bytes],
    message: str,
) -> None:
    app = lying_app(declared, chunks, last=last)
    adapter = make_adapter(app, disconnect_grace=2.0)
    start_response, got, error = serve_until_error(adapter)
    assert start_response.status == "200 OK"
    assert start_response.header("content-length") == str(declared)
    assert got == passed  # never a byte past the declared length
    assert isinstance(error, ResponseError) and error.rule == "content-length"
    expected = f"the ASGI app declared Content-Length: {declared} and {message}"
    assert str(error) == f"{expected} [rule content-length, in state BODY]"
    assert app.ended.is_set()
    # The app's send() raised it too (but not for an implied final body: it had returned).
    assert [str(e) for e in app.raised] == ([] if last is None else [str(error)])
    assert messages_at(a2w_log, logging.ERROR) == [f"ending the response as an error: {error}"]


def test_body_short_of_its_content_length_before_any_byte_fails_the_call(
    make_adapter: Callable[..., AsgiToWsgi],
) -> None:
    """No body byte came before the lie: the response has not started, the call raises
    (the server answers 500)."""
    adapter = make_adapter(lying_app(1000, [], last=b""))
    start_response = StartResponse()
    with pytest.raises(ResponseError) as raised:
        adapter(make_environ(), start_response)
    assert raised.value.rule == "content-length"
    assert not start_response.calls


@pytest.mark.parametrize(("method", "status"), [("HEAD", 200), ("GET", 304), ("GET", 204)])
def test_content_length_not_checked_where_the_spec_says_no_body_goes(
    make_adapter: Callable[..., AsgiToWsgi], method: str, status: int
) -> None:
    adapter = make_adapter(lying_app(1000, [], last=b"", head_status=status))
    response = call(adapter, make_environ(method=method))
    assert response.status.startswith(str(status))
    assert response.body == b""
    assert response.header("content-length") == "1000"


def test_app_that_swallows_the_content_length_error_and_waits_is_let_go(
    make_adapter: Callable[..., AsgiToWsgi],
) -> None:
    got: list[Any] = []
    ended = threading.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send(start(200, [(b"content-length", b"100")]))
            try:
                await send(body(b"short"))
            except ResponseError as exc:
                got.append(exc)
            got.append(await receive())  # the request body
            got.append(await receive())  # waits: until the WSGI side lets it go
        finally:
            ended.set()

    adapter = make_adapter(app, disconnect_grace=2.0)
    _, chunks, error = serve_until_error(adapter)
    assert chunks == [b"short"]
    assert error.rule == "content-length"  # type: ignore[attr-defined]
    assert ended.wait(WAIT)
    assert got[0].rule == "content-length" and got[-1] == {"type": "http.disconnect"}


def test_responses_that_keep_their_content_length_are_untouched(
    make_adapter: Callable[..., AsgiToWsgi],
) -> None:
    """A response whose body matches its Content-Length is untouched, list or stream."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send(start(200, [(b"content-length", b"6")]))
        if scope["path"] == "/stream":
            await send(body(b"abc", more=True))
            await send(body(b"def", more=True))
            await send(body(b""))
        else:
            await send(body(b"abcdef"))

    adapter = make_adapter(app)
    assert call(adapter, path="/").chunks == [b"abcdef"]
    assert call(adapter, path="/stream").body == b"abcdef"


# -- nothing of these requests outlives them ---------------------------------------------------


@pytest.mark.usefixtures("no_gc")
@pytest.mark.parametrize("mode", ["too-large", "too-large-started", "no-answer", "short", "long"])
def test_request_objects_die_by_refcount(make_adapter: Callable[..., AsgiToWsgi], mode: str) -> None:
    alive: weakref.WeakSet[Token] = weakref.WeakSet()
    ended = threading.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        token = Token()
        alive.add(token)
        try:
            if mode in ("short", "long"):
                await send(start(200, [(b"content-length", b"5")]))
                await send(body(b"ab" if mode == "short" else b"abcdefgh"))
                return
            if mode == "too-large-started":
                await send(start())
                await send(body(b"first", more=True))
            await read_body(receive)
            if mode == "no-answer":
                await anyio.sleep(WAIT * 4)
            await send(body(b"late", more=True) if mode == "too-large-started" else start())
        finally:
            ended.set()

    adapter = make_adapter(app, disconnect_grace=0.1, max_body_size=1000, preload_body=0)
    if mode.startswith("too-large"):
        environ = chunked_environ(pattern(5000))
    elif mode == "no-answer":
        environ = short_environ(900, 10)
    else:
        environ = make_environ()
    start_response = StartResponse()
    try:
        result = adapter(environ, start_response)
        try:
            for chunk in result:
                del chunk
        finally:
            result.close()  # type: ignore[attr-defined]
            del result
    except (ClientDisconnected, ResponseError) as exc:
        assert mode != "too-large", exc
        del exc
    del environ, start_response
    assert ended.wait(WAIT), "the app's task did not end"
    wait_dead(alive, mode)
