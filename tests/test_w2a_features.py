"""WsgiToAsgi's own capabilities, in memory, on asyncio and on trio: ``max_body_size``
(413), ``environ["bridge.client_disconnected"]``, and async views (asgiref's
``async_to_sync``, as Flask and Django call them) on the server's event loop.

The same capabilities on real servers with real frameworks:
``tests/integration_wsgi_apps/test_async_views_and_limits.py``.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import threading
import time
import weakref
from typing import Any, Callable

import anyio
import asgiref
import pytest
from asgiref.sync import async_to_sync
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge import BodyTooLargeError, WsgiToAsgi
from bridge._types import Environ, StartResponse

from .asgi_driver import Client, http_scope
from .test_request_lifetime import Token, no_gc  # noqa: F401 - a fixture
from .wsgi_apps import WAIT, wait_thread_event

pytestmark = pytest.mark.anyio

ADAPTER_LOGGER = "bridge.wsgi_to_asgi"
#: Every body streams to wsgi.input as the app reads (nothing received ahead).
STREAMED: dict[str, Any] = {"preload_body": 0, "spool_body": 0}


def _headers(length: int | None) -> list[tuple[bytes, bytes]]:
    headers = [(b"host", b"testserver")]
    if length is not None:
        headers.append((b"content-length", str(length).encode()))
    return headers


class Reader:
    """A WSGI app that reads its whole body, and records what it got."""

    def __init__(self, *, catch: bool = False) -> None:
        self.catch = catch  # answer 500 itself, as Flask does with any exception
        self.calls = 0
        self.body: bytes | None = None
        self.error: BaseException | None = None

    def __call__(self, environ: Environ, start_response: StartResponse) -> list[bytes]:
        self.calls += 1
        try:
            self.body = environ["wsgi.input"].read()
        except BodyTooLargeError as exc:
            self.error = exc
            if not self.catch:
                raise
            start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
            return [b"the app's own error page"]
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"read %d" % len(self.body)]


async def _post(app: WsgiToAsgi, parts: list[bytes], *, length: int | None) -> Client:
    client = Client(parts)
    await client.run(app, http_scope("/", method="POST", headers=_headers(length)), timeout=WAIT)
    return client


# -- max_body_size -----------------------------------------------------------------------


def test_max_body_size_is_validated() -> None:
    with pytest.raises(ValueError, match="max_body_size must be 0 or more"):
        WsgiToAsgi(Reader(), max_body_size=-1)
    assert WsgiToAsgi(Reader()).max_body_size is None


@pytest.mark.parametrize("preload", [0, 1024])
async def test_a_declared_length_over_the_limit_is_answered_413_before_the_app_runs(
    preload: int, caplog: pytest.LogCaptureFixture
) -> None:
    app = Reader()
    adapter = WsgiToAsgi(app, max_body_size=10, preload_body=preload)
    with caplog.at_level(logging.WARNING, ADAPTER_LOGGER):
        client = await _post(adapter, [b"x" * 11], length=11)
    exchange = client.exchange
    assert app.calls == 0
    assert client.receive_calls == 0  # not a byte of it read
    assert exchange.status == 413
    assert exchange.body == b"Content Too Large\n"
    assert exchange.header(b"connection") == b"close"
    assert "answering 413 Content Too Large: a declared body of 11 bytes, max_body_size is 10" in caplog.text


async def test_a_body_of_exactly_the_limit_reaches_the_app() -> None:
    for length in (10, None):
        app = Reader()
        adapter = WsgiToAsgi(app, max_body_size=10, preload_body=0)
        client = await _post(adapter, [b"12345", b"67890"], length=length)
        assert client.exchange.status == 200
        assert app.body == b"1234567890"


@pytest.mark.parametrize("catch", [False, True], ids=["app-raises", "app-answers-500"])
async def test_a_streamed_body_over_the_limit_raises_in_the_app_and_is_answered_413(
    catch: bool, caplog: pytest.LogCaptureFixture
) -> None:
    app = Reader(catch=catch)
    adapter = WsgiToAsgi(app, max_body_size=10, **STREAMED)
    with caplog.at_level(logging.WARNING, ADAPTER_LOGGER):
        client = await _post(adapter, [b"123456", b"789", b"abc", b"never read"], length=None)
    assert isinstance(app.error, BodyTooLargeError)
    assert isinstance(app.error, OSError)  # as a client that left: code that handles that stops
    assert app.error.limit == 10
    assert str(app.error) == "the request body is larger than max_body_size (10 bytes)"
    # Whatever the app answered went nowhere: the client gets 413, once.
    assert client.exchange.status == 413
    assert client.exchange.body == b"Content Too Large\n"
    assert "answering 413 Content Too Large: the body passed max_body_size (10 bytes)" in caplog.text
    # Never more of the upload taken from the server than up to the chunk that passed it.
    assert client.pending == [{"type": "http.request", "body": b"never read", "more_body": False}]


@pytest.mark.parametrize("options", [{}, STREAMED], ids=["received-ahead", "streamed"])
async def test_a_first_message_over_the_limit_is_answered_413_before_the_app_runs(
    options: dict[str, Any],
) -> None:
    app = Reader()
    client = await _post(WsgiToAsgi(app, max_body_size=4, **options), [b"12345", b"6"], length=None)
    assert app.calls == 0
    assert client.exchange.status == 413


@pytest.mark.parametrize("spool", [0, 64], ids=["in-memory", "spooled"])
async def test_a_chunked_body_received_ahead_over_the_limit_is_answered_413_before_the_app_runs(
    spool: int, caplog: pytest.LogCaptureFixture
) -> None:
    app = Reader()
    adapter = WsgiToAsgi(app, max_body_size=10, preload_body=8, spool_body=spool)
    with caplog.at_level(logging.WARNING, ADAPTER_LOGGER):
        client = await _post(adapter, [b"1234", b"5678", b"9abc", b"never read"], length=None)
    assert app.calls == 0
    assert client.exchange.status == 413
    assert client.pending == [{"type": "http.request", "body": b"never read", "more_body": False}]
    assert "answering 413 Content Too Large: the body passed max_body_size (10 bytes)" in caplog.text


async def test_an_app_that_never_reads_a_streamed_body_is_not_refused() -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", [])
        return [b"did not read"]

    client = await _post(WsgiToAsgi(app, max_body_size=4, **STREAMED), [b"123", b"456"], length=None)
    assert client.exchange.status == 200
    assert client.exchange.body == b"did not read"


async def test_a_response_already_started_is_cut_short_when_the_body_passes_the_limit(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def app(environ: Environ, start_response: StartResponse) -> Any:
        write = start_response("200 OK", [])
        write(b"started")
        yield environ["wsgi.input"].read()

    with caplog.at_level(logging.WARNING, ADAPTER_LOGGER):
        client = await _post(WsgiToAsgi(app, max_body_size=4, **STREAMED), [b"123", b"456"], length=None)
    assert client.exchange.status == 200
    assert client.exchange.body == b"started"
    assert not client.exchange.complete  # no final body: the server cuts the response
    assert "passed max_body_size (4 bytes) after the response started" in caplog.text


@settings(max_examples=40, deadline=None)
@given(
    parts=st.lists(st.binary(max_size=9), min_size=1, max_size=6),
    limit=st.integers(min_value=0, max_value=40),
    declare=st.booleans(),
    preload=st.sampled_from([0, 6, 1024]),
    spool=st.sampled_from([0, 12, 16 * 1024 * 1024]),
    memory=st.sampled_from([0, 10, 64 * 1024 * 1024]),
)
def test_property_the_app_gets_the_whole_body_or_the_client_gets_413(
    parts: list[bytes], limit: int, declare: bool, preload: int, spool: int, memory: int
) -> None:
    """Oracle: a body within the limit reaches the app whole (answer 200), by whichever
    path (in memory, counted whole or chunk by chunk against max_body_memory, spooled to
    a file, streamed, or spooled and then streamed); one over it never reaches the app
    past the limit, and the answer is 413. Either way the request gives back all it held
    of the memory budget."""
    body = b"".join(parts)
    app = Reader()
    adapter = WsgiToAsgi(
        app, max_body_size=limit, preload_body=preload, spool_body=spool, max_body_memory=memory
    )

    async def run() -> Client:
        return await _post(adapter, parts, length=len(body) if declare else None)

    client = anyio.run(run)
    if len(body) <= limit:
        assert client.exchange.status == 200
        assert app.body == body
    else:
        assert client.exchange.status == 413
        assert app.body is None  # it never got a body, not even a truncated one
        if declare:
            assert app.calls == 0
    assert adapter._body_memory.held == 0


# -- environ["bridge.client_disconnected"] ---------------------------------------------------


async def test_client_disconnected_answers_from_the_server_without_a_trip_per_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from bridge import wsgi_to_asgi

    trips = []
    to_loop = wsgi_to_asgi._Link.to_loop

    def counted(link: Any, func: Callable[..., Any], *args: Any) -> Any:
        trips.append(getattr(func, "__name__", repr(func)))
        return to_loop(link, func, *args)

    monkeypatch.setattr(wsgi_to_asgi._Link, "to_loop", counted)
    polled = threading.Event()
    answers: list[bool] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        probe = environ["bridge.client_disconnected"]
        answers.extend(probe() for _ in range(50))
        polled.set()
        for _ in range(int(WAIT / 0.01)):  # a long poll that stops when the client leaves
            if probe():
                answers.append(True)
                break
            threading.Event().wait(0.01)
        start_response("200 OK", [])
        return [b"too late"]

    client = Client(b"")
    async with anyio.create_task_group() as tg:
        tg.start_soon(client.run, WsgiToAsgi(app), http_scope())
        assert await wait_thread_event(polled)
        client.disconnect()
    assert answers[:50] == [False] * 50
    assert answers[-1] is True
    assert trips == ["watch"]  # one trip to start watching, none per call
    assert client.exchange.messages == []  # the client had gone: nothing sent


async def test_client_disconnected_after_the_request_is_over_makes_no_trip() -> None:
    kept: list[Callable[[], bool]] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        kept.append(environ["bridge.client_disconnected"])
        start_response("200 OK", [])
        return [b"ok"]

    client = Client(b"")
    await client.run(WsgiToAsgi(app), http_scope(), timeout=WAIT)
    assert client.exchange.status == 200
    # From a thread of the app's own, after the response: an answer, never a hang.
    answer = await anyio.to_thread.run_sync(kept[0])
    assert answer is False


# -- async views on the server's loop ------------------------------------------------------


async def test_async_views_run_on_the_servers_loop_on_asyncio(anyio_backend: str) -> None:
    seen: dict[str, Any] = {}

    async def view() -> bytes:
        seen["loop"] = asyncio.get_running_loop()
        seen["thread"] = threading.get_ident()
        await asyncio.sleep(0)
        return b"from the view"

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        body = async_to_sync(view)()  # what Flask's and Django's async views go through
        start_response("200 OK", [])
        return [body]

    client = Client(b"")
    await client.run(WsgiToAsgi(app), http_scope(), timeout=WAIT)
    assert client.exchange.body == b"from the view"
    if anyio_backend == "asyncio":
        assert seen["loop"] is asyncio.get_running_loop()
        assert seen["thread"] == threading.get_ident()
    else:
        # trio: asgiref runs only asyncio, so it makes a loop of its own per call, in a
        # thread of its own, as under any WSGI server.
        assert seen["thread"] != threading.get_ident()


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_an_async_view_can_wait_for_what_the_loop_does(anyio_backend: str) -> None:
    """No deadlock: the view awaits an event the server's loop sets meanwhile, made on
    that loop before the request (as a lifespan startup would)."""
    event = asyncio.Event()

    async def view() -> bytes:
        await asyncio.wait_for(event.wait(), WAIT)
        return b"woken"

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        body = async_to_sync(view)()
        start_response("200 OK", [])
        return [body]

    client = Client(b"")
    async with anyio.create_task_group() as tg:
        tg.start_soon(client.run, WsgiToAsgi(app), http_scope())
        await anyio.sleep(0.05)
        event.set()
    assert client.exchange.body == b"woken"


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_an_async_views_error_reaches_the_wsgi_app(anyio_backend: str) -> None:
    async def view() -> bytes:
        raise LookupError("raised in the async view")

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        try:
            async_to_sync(view)()
        except LookupError as exc:
            start_response("500 Internal Server Error", [])
            return [str(exc).encode()]
        raise AssertionError("the view's error was lost")

    client = Client(b"")
    await client.run(WsgiToAsgi(app), http_scope(), timeout=WAIT)
    assert client.exchange.status == 500
    assert client.exchange.body == b"raised in the async view"


@pytest.mark.skipif(
    tuple(int(part) for part in asgiref.__version__.split(".")[:2]) < (3, 8),
    reason="asgiref before 3.8 does not tell which tasks async_to_sync starts (task_context)",
)
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_cancelling_the_request_cancels_its_async_view(anyio_backend: str) -> None:
    started = threading.Event()
    outcome: list[str] = []

    async def view() -> bytes:
        started.set()
        try:
            await asyncio.sleep(WAIT * 2)
        except asyncio.CancelledError:
            outcome.append("cancelled")
            raise
        outcome.append("ran to the end")
        return b""

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        try:
            async_to_sync(view)()
        except BaseException as exc:
            outcome.append(f"the app saw {type(exc).__name__}")
            raise
        start_response("200 OK", [])
        return [b""]

    client = Client(b"")
    with anyio.fail_after(WAIT):
        async with anyio.create_task_group() as tg:
            tg.start_soon(client.run, WsgiToAsgi(app), http_scope())
            assert await wait_thread_event(started)
            tg.cancel_scope.cancel()
    assert outcome == ["cancelled", "the app saw CancelledError"]


# -- nothing of a request stays alive ---------------------------------------------------------


@pytest.mark.usefixtures("no_gc")
@pytest.mark.parametrize("mode", ["too-large-raised", "too-large-answered", "probe", "async-view"])
async def test_request_objects_die_by_refcount(mode: str, anyio_backend: str) -> None:
    """With the cyclic collector off, what the app made for a request dies with it, by
    whichever new path it ended (a stored error or a bound method in the environ that
    made a cycle would keep the whole request alive)."""
    alive: weakref.WeakSet[Token] = weakref.WeakSet()

    async def view(token: Token) -> bytes:
        await asyncio.sleep(0)
        return b"view"

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        token = Token()
        alive.add(token)
        environ["test.token"] = token
        if mode == "probe":
            assert environ["bridge.client_disconnected"]() is False
        elif mode == "async-view":
            async_to_sync(view)(token)
        else:
            try:
                environ["wsgi.input"].read()
            except BodyTooLargeError:
                if mode == "too-large-raised":
                    raise
        start_response("200 OK", [])
        return [b"answered"]

    adapter = WsgiToAsgi(app, max_body_size=4, **STREAMED)
    for _ in range(3):
        client = Client([b"123", b"456"])
        await client.run(adapter, http_scope("/", method="POST", headers=_headers(None)), timeout=WAIT)
        assert client.exchange.status == (413 if mode.startswith("too-large") else 200)
        del client
        deadline = time.monotonic() + WAIT
        while alive and time.monotonic() < deadline:
            await anyio.sleep(0.01)
        assert not alive, f"{mode}: request objects still alive with gc disabled"


# -- spool_body: received before the app gets a thread ------------------------------------------


class Spied:
    """Records which thread made and wrote the spool files (a spy: the real calls run)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from bridge import spool

        self.threads: list[int] = []
        self.files: list[Any] = []
        make, write, rewind = tempfile.TemporaryFile, spool._write, spool._rewind

        def spied_make() -> Any:
            self.threads.append(threading.get_ident())
            file = make()
            self.files.append(file)
            return file

        def spied_write(file: Any, parts: list[bytes]) -> None:
            self.threads.append(threading.get_ident())
            write(file, parts)

        def spied_rewind(file: Any, parts: list[bytes]) -> None:
            self.threads.append(threading.get_ident())
            rewind(file, parts)

        monkeypatch.setattr(tempfile, "TemporaryFile", spied_make)
        monkeypatch.setattr(spool, "_write", spied_write)
        monkeypatch.setattr(spool, "_rewind", spied_rewind)


@pytest.mark.parametrize("declare", [True, False], ids=["content-length", "chunked"])
async def test_a_body_over_preload_body_is_spooled_to_a_file_off_the_loop_before_the_app_runs(
    declare: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    spied = Spied(monkeypatch)
    seen: dict[str, Any] = {}
    parts = [bytes([65 + i]) * 100_000 for i in range(8)]  # 800 kB, in 8 messages
    body = b"".join(parts)

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        stream = environ["wsgi.input"]
        seen["stream"] = stream
        seen["length"] = environ.get("CONTENT_LENGTH")
        seen["data"] = stream.read()
        start_response("200 OK", [])
        return [b"ok"]

    client = Client(parts)
    adapter = WsgiToAsgi(app, preload_body=1000, spool_body=len(body))
    scope = http_scope("/", method="POST", headers=_headers(len(body) if declare else None))
    await client.run(adapter, scope, timeout=WAIT)
    assert seen["data"] == body
    assert seen["length"] == str(len(body))  # declared, or the spooled length (chunked)
    assert client.receive_calls == len(parts)  # all of it before the app ran: it read a file
    assert seen["stream"] is spied.files[0] and seen["stream"].closed  # closed after the request
    assert spied.threads and threading.get_ident() not in spied.threads  # never on the loop


async def test_a_chunked_body_longer_than_spool_body_streams_after_the_spooled_part(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spied = Spied(monkeypatch)
    parts = [bytes([65 + i]) * 3000 for i in range(10)]
    seen: list[bytes] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        seen.append(environ["wsgi.input"].read())
        start_response("200 OK", [])
        return [b"ok"]

    client = Client(parts)
    await client.run(
        WsgiToAsgi(app, preload_body=2000, spool_body=8000), http_scope("/", method="POST"), timeout=WAIT
    )
    assert seen == [b"".join(parts)]
    assert len(spied.files) == 1 and spied.files[0].closed


async def test_a_client_leaving_while_its_body_spools_never_reaches_the_app(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    spied = Spied(monkeypatch)
    called: list[bool] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        called.append(True)
        start_response("200 OK", [])
        return [b"ok"]

    client = Client([b"x" * 5000, b"y" * 5000, b"z" * 5000])
    client.pending[2:] = [{"type": "http.disconnect"}]  # after the file was made
    with caplog.at_level(logging.DEBUG, ADAPTER_LOGGER):
        await client.run(
            WsgiToAsgi(app, preload_body=1000, spool_body=100_000),
            http_scope("/", method="POST", headers=_headers(20_000)),
            timeout=WAIT,
        )
    assert called == []
    assert client.exchange.messages == []
    assert len(spied.files) == 1 and spied.files[0].closed  # no descriptor left open
    assert "client disconnected during its upload; the app was not run" in caplog.text


def test_spool_body_and_max_body_memory_are_validated() -> None:
    with pytest.raises(ValueError, match="spool_body must be 0 or more"):
        WsgiToAsgi(Reader(), spool_body=-1)
    with pytest.raises(ValueError, match="max_body_memory must be 0 or more"):
        WsgiToAsgi(Reader(), max_body_memory=-1)


# -- a hop-by-hop header warning once per name; max_duplicate_headers=None ------------------------


async def test_a_dropped_hop_by_hop_header_is_warned_about_once_per_name(
    caplog: pytest.LogCaptureFixture,
) -> None:
    headers = {"/a": [("Connection", "close")], "/b": [("Connection", "close"), ("Keep-Alive", "timeout=5")]}

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", headers[environ["PATH_INFO"]])
        return [b"ok"]

    adapter = WsgiToAsgi(app)
    with caplog.at_level(logging.WARNING, ADAPTER_LOGGER):
        for path in ("/a", "/a", "/b", "/b", "/a"):
            client = Client(b"")
            await client.run(adapter, http_scope(path), timeout=WAIT)
            assert client.exchange.header(b"connection") is None
    warned = [r.getMessage() for r in caplog.records if "hop-by-hop" in r.getMessage()]
    assert len(warned) == 2, warned
    assert "header(s) Connection set by" in warned[0]
    assert "header(s) Keep-Alive set by" in warned[1]


async def test_max_duplicate_headers_none_sets_no_limit() -> None:
    seen: list[str] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        seen.append(environ["HTTP_X_REPEATED"])
        start_response("200 OK", [])
        return [b"ok"]

    headers = [(b"host", b"t")] + [(b"x-repeated", b"v")] * 1000
    client = Client(b"")
    await client.run(WsgiToAsgi(app, max_duplicate_headers=None), http_scope(headers=headers), timeout=WAIT)
    assert client.exchange.status == 200
    assert seen == [",".join(["v"] * 1000)]
    with pytest.raises(ValueError, match="max_duplicate_headers must be at least 1 \\(or None: no limit\\)"):
        WsgiToAsgi(app, max_duplicate_headers=0)
    client = Client(b"")
    await client.run(WsgiToAsgi(app), http_scope(headers=headers), timeout=WAIT)
    assert client.exchange.status == 400  # the default limit, 100, still holds


# -- Path Send: wsgi.file_wrapper's file sent by its path ---------------------------------------

PATHSEND: dict[str, Any] = {"http.response.pathsend": {}}


def _file_app(path: str, *, headers: list[tuple[str, str]] | None = None, skip: int = 0) -> Any:
    opened: list[Any] = []

    def app(environ: Environ, start_response: StartResponse) -> Any:
        file = open(path, "rb")  # noqa: SIM115 - the wrapper closes it
        opened.append(file)
        file.read(skip)
        start_response("200 OK", [("Content-Type", "application/octet-stream"), *(headers or [])])
        return environ["wsgi.file_wrapper"](file, 4096)

    app.opened = opened  # type: ignore[attr-defined]
    return app


@pytest.fixture
def data_file(tmp_path: Any) -> Any:
    path = tmp_path / "data.bin"
    path.write_bytes(bytes(range(256)) * 1000)
    return path


async def test_a_file_wrapper_goes_out_as_its_path_where_the_server_takes_one(data_file: Any) -> None:
    app = _file_app(str(data_file))
    client = Client(b"")
    await client.run(WsgiToAsgi(app), http_scope(extensions=PATHSEND), timeout=WAIT)
    start, *rest = client.exchange.messages
    assert start["status"] == 200
    assert (b"content-length", b"256000") in start["headers"]  # the file's size, for the server
    assert rest == [{"type": "http.response.pathsend", "path": str(data_file)}]
    assert app.opened[0].closed  # the app's own file is closed; the server opens the path


@pytest.mark.parametrize(
    ("case", "scope_extra"),
    [
        ("no-extension", {}),
        ("head", {"extensions": PATHSEND, "method": "HEAD"}),
        ("other-content-length", {"extensions": PATHSEND}),
        ("partly-read", {"extensions": PATHSEND}),
        ("relative-name", {"extensions": PATHSEND}),
    ],
)
async def test_a_file_wrapper_is_read_as_before_when_its_path_would_not_do(
    data_file: Any, case: str, scope_extra: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    headers = [("Content-Length", "1000")] if case == "other-content-length" else None
    skip = 10 if case == "partly-read" else 0
    if case == "relative-name":
        monkeypatch.chdir(data_file.parent)
    app = _file_app("data.bin" if case == "relative-name" else str(data_file), headers=headers, skip=skip)
    client = Client(b"")
    await client.run(WsgiToAsgi(app), http_scope(**scope_extra), timeout=WAIT)
    kinds = [m["type"] for m in client.exchange.messages]
    assert "http.response.pathsend" not in kinds
    expected = (bytes(range(256)) * 1000)[skip:]
    if case == "head":
        assert client.exchange.status == 200
    elif case == "other-content-length":
        assert client.exchange.body == expected[:1000]
    else:
        assert client.exchange.body == expected
    assert app.opened[0].closed


# -- max_body_memory: every request's in-memory body together ----------------------------------


async def test_bodies_in_memory_over_the_budget_go_to_files(monkeypatch: pytest.MonkeyPatch) -> None:
    """A holds 800 bytes in memory while its app runs; B's 800 bytes would pass the
    1000-byte budget, so B's body goes to a file although it is under preload_body."""
    spied = Spied(monkeypatch)
    a_running = threading.Event()
    release = threading.Event()
    inputs: dict[str, Any] = {}

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        name = environ["PATH_INFO"]
        inputs[name] = environ["wsgi.input"]
        data = environ["wsgi.input"].read()
        if name == "/a":
            a_running.set()
            release.wait(WAIT)
        start_response("200 OK", [])
        return [data]

    adapter = WsgiToAsgi(app, preload_body=100_000, max_body_memory=1000)
    parts = [b"x" * 400, b"y" * 400]
    client_a, client_b = Client(parts), Client(parts)
    scope = {name: http_scope(name, method="POST", headers=_headers(800)) for name in ("/a", "/b")}
    async with anyio.create_task_group() as tg:
        tg.start_soon(client_a.run, adapter, scope["/a"])
        assert await wait_thread_event(a_running)
        assert adapter._body_memory.held == 800  # A's body, until A ends
        await client_b.run(adapter, scope["/b"], timeout=WAIT)
        release.set()
    assert client_a.exchange.body == client_b.exchange.body == b"x" * 400 + b"y" * 400
    assert type(inputs["/a"]).__name__ == "BytesIO"
    assert inputs["/b"] is spied.files[0] and spied.files[0].closed
    assert adapter._body_memory.held == 0


@pytest.mark.parametrize(
    ("max_body_memory", "held_at_each_receive", "spooled"),
    [
        (10**6, [0, 600], False),  # fits: the declared 600 counted from the first message on
        (700, [0, 300], True),  # 600 would reach 700 with what is held: chunk by chunk, then a file
    ],
)
async def test_a_declared_body_that_fits_the_budget_is_counted_whole_at_once(
    monkeypatch: pytest.MonkeyPatch, max_body_memory: int, held_at_each_receive: list[int], spooled: bool
) -> None:
    spied = Spied(monkeypatch)
    app = Reader()
    adapter = WsgiToAsgi(app, preload_body=1000, max_body_memory=max_body_memory)
    adapter._body_memory.take(100)  # another request's body, held meanwhile
    client = Client([b"a" * 300, b"b" * 300])
    held: list[int] = []
    receive = client.receive

    async def counting_receive() -> Any:
        held.append(adapter._body_memory.held - 100)
        return await receive()

    client.receive = counting_receive  # type: ignore[method-assign]
    await client.run(adapter, http_scope("/", method="POST", headers=_headers(600)), timeout=WAIT)
    assert client.exchange.status == 200 and app.body == b"a" * 300 + b"b" * 300
    assert held == held_at_each_receive
    assert bool(spied.files) == spooled
    assert adapter._body_memory.held == 100  # this request's part came back


async def test_the_memory_budget_comes_back_whatever_the_end(monkeypatch: pytest.MonkeyPatch) -> None:
    Spied(monkeypatch)
    adapter = WsgiToAsgi(
        Reader(), preload_body=1000, spool_body=5000, max_body_size=20_000, max_body_memory=10**6
    )
    ends = {
        "in memory": (Client([b"a" * 300, b"b" * 300]), 600),
        "spooled": (Client([b"a" * 3000, b"b" * 1000]), 4000),
        "chunked, past spool_body": (Client([b"a" * 3000, b"b" * 3000, b"c"]), None),
        "413 while received": (Client([b"a" * 3000] * 8), None),
    }
    gone = Client([b"a" * 300, b"b" * 300])
    gone.pending[1:] = [{"type": "http.disconnect"}]
    for client, length in [*ends.values(), (gone, 900)]:
        await client.run(adapter, http_scope("/", method="POST", headers=_headers(length)), timeout=WAIT)
        assert adapter._body_memory.held == 0
    assert ends["413 while received"][0].exchange.status == 413
