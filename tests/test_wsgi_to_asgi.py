"""WsgiToAsgi through an in-memory ASGI server, on asyncio and on trio.

Row numbers refer to section 10 ("Tricky edge cases") of the shared spec checklist.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import sys
import threading
import time
from typing import Any, cast

import anyio
import pytest

import bridge
from bridge import WsgiToAsgi
from bridge._types import Scope

from .asgi_driver import Client, http_scope, request
from .wsgi_apps import (
    WAIT,
    Tracked,
    app_returning,
    body_messages,
    endless,
    run_lifespan,
    scripted_client,
    wait_thread_event,
)

pytestmark = pytest.mark.anyio

ADAPTER_LOGGER = "bridge.wsgi_to_asgi"


async def run_raw(app: Any, client: Client, scope: Scope | None = None) -> BaseException | None:
    """Run one request and return what it raised (catching BaseException, so that a
    KeyboardInterrupt that leaks through the adapter fails the test, not the session)."""
    try:
        await client.run(app, scope if scope is not None else http_scope(), timeout=WAIT)
    except BaseException as exc:
        return exc
    return None


# ---------------------------------------------------------------------------------------
# Basics
# ---------------------------------------------------------------------------------------


async def test_simple_response() -> None:
    app = WsgiToAsgi(app_returning([b"Hello, ", b"world"], headers=[("Content-Type", "text/plain")]))
    result = await request(app, "/")
    assert result.status == 200
    assert result.body == b"Hello, world"
    assert result.complete
    assert result.header(b"content-type") == b"text/plain"
    # A fully-known list body gets its Content-Length, so the server needs no chunking.
    assert result.header(b"content-length") == b"12"
    # Nothing is sent after the final body message.
    assert result.messages[-1] == {"type": "http.response.body", "body": b"Hello, world", "more_body": False}


async def test_environ_basics_reach_the_app() -> None:
    seen: dict[str, Any] = {}

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.update(environ)
        start_response("200 OK", [])
        return [b""]

    await request(app=WsgiToAsgi(app), path="/p", query_string=b"a=1")
    assert type(seen["wsgi.input"].read()) is bytes
    assert seen["PATH_INFO"] == "/p"
    assert seen["QUERY_STRING"] == "a=1"
    assert seen["wsgi.version"] == (1, 0)
    assert seen["wsgi.multithread"] is True
    assert seen["wsgi.run_once"] is False


async def test_single_thread_pool_is_not_multithread() -> None:
    seen: dict[str, Any] = {}

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen["multithread"] = environ["wsgi.multithread"]
        start_response("200 OK", [])
        return []

    await request(WsgiToAsgi(app, max_threads=1))
    assert seen["multithread"] is False


def test_constructor_validates_arguments() -> None:
    with pytest.raises(ValueError):
        WsgiToAsgi(app_returning([]), max_threads=0)
    with pytest.raises(ValueError):
        WsgiToAsgi(app_returning([]), max_duplicate_headers=0)
    with pytest.raises(ValueError, match="preload_body"):
        WsgiToAsgi(app_returning([]), preload_body=-1)


# ---------------------------------------------------------------------------------------
# Header timing (rows 1-3)
# ---------------------------------------------------------------------------------------


async def test_empty_first_chunk_sends_no_headers() -> None:
    client = Client()
    seen_after_empty: list[int] = []

    def gen() -> Any:
        yield b""
        # Still in the worker, after an empty chunk: nothing may have been sent yet.
        seen_after_empty.append(len(client.exchange.messages))
        yield b"data"
        yield b""
        yield b"more"

    app = WsgiToAsgi(app_returning(gen))
    result = await client.run(app, http_scope())
    assert seen_after_empty == [0]
    assert result.messages[0]["type"] == "http.response.start"
    # The start goes out together with the first non-empty chunk; no empty body messages.
    assert body_messages(client) == [(b"data", True), (b"more", True), (b"", False)]


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(lambda: [], id="empty-list"),
        pytest.param(lambda: [b"", b""], id="list-of-empty"),
        pytest.param(lambda: iter([b"", b"", b""]), id="iterator-of-empty"),
        pytest.param(lambda: (x for x in cast("tuple[bytes, ...]", ())), id="empty-generator"),
        pytest.param(lambda: Tracked([b"", b""]), id="tracked-empty"),
    ],
)
async def test_only_empty_chunks_send_an_empty_final_body_with_content_length_0(body: Any) -> None:
    app = WsgiToAsgi(app_returning(body, status="201 Created"))
    result = await request(app)
    assert result.status == 201
    assert result.body == b""
    assert result.complete
    assert [m["type"] for m in result.messages] == ["http.response.start", "http.response.body"]
    assert result.header(b"content-length") == b"0"


async def test_write_empty_sends_headers_then_final_body() -> None:
    client = Client()
    seen_after_write: list[list[str]] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"")
        # PEP 3333: write() transmits before returning, even an empty write sends headers.
        seen_after_write.append([m["type"] for m in client.exchange.messages])
        return []

    result = await client.run(WsgiToAsgi(app), http_scope())
    assert seen_after_write == [["http.response.start"]]
    assert result.status == 200
    assert result.body == b""
    assert result.complete
    # write() was used, so no Content-Length was invented.
    assert result.header(b"content-length") is None


async def test_headers_held_until_first_nonempty_chunk_of_streaming_generator() -> None:
    client = Client()
    first_sent = threading.Event()
    observed: list[bool] = []

    async def send(message: Any) -> None:
        await client.send(message)
        if message["type"] == "http.response.body" and message.get("body") == b"first":
            first_sent.set()

    def gen() -> Any:
        yield b""
        yield b"first"
        # Streaming: the first chunk reaches the server before the next one is produced.
        observed.append(first_sent.wait(WAIT))
        yield b"second"

    app = WsgiToAsgi(app_returning(gen))
    with anyio.fail_after(WAIT):
        await app(http_scope(), client.receive, send)
    assert observed == [True]
    assert body_messages(client) == [(b"first", True), (b"second", True), (b"", False)]
    assert client.exchange.header(b"content-length") is None


# ---------------------------------------------------------------------------------------
# Errors from the app (rows 4-9)
# ---------------------------------------------------------------------------------------


class AppError(Exception):
    pass


async def test_error_after_first_chunk_aborts_without_final_body() -> None:
    def gen() -> Any:
        yield b"partial"
        raise AppError("boom")

    tracked = Tracked(gen())
    client = Client()
    with pytest.raises(AppError, match="boom"):
        await client.run(WsgiToAsgi(app_returning(tracked)), http_scope())
    assert body_messages(client) == [(b"partial", True)]
    assert not client.exchange.complete
    assert tracked.close_calls == 1


async def test_error_in_later_chunk_of_long_stream_aborts_without_final_body() -> None:
    def gen() -> Any:
        for i in range(5):
            yield b"%d" % i
        raise AppError("late")

    tracked = Tracked(gen())
    client = Client()
    with pytest.raises(AppError):
        await client.run(WsgiToAsgi(app_returning(tracked)), http_scope())
    assert client.exchange.body == b"01234"
    assert all(more for _, more in body_messages(client))
    assert tracked.close_calls == 1


async def test_error_before_first_chunk_propagates_after_close() -> None:
    events: list[str] = []

    class Failing(Tracked):
        def close(self) -> None:
            events.append("close")
            super().close()

    def gen() -> Any:
        yield b""
        raise AppError("early")

    tracked = Failing(gen())
    client = Client()
    with pytest.raises(AppError, match="early"):
        await client.run(WsgiToAsgi(app_returning(tracked)), http_scope())
    events.append("raised")
    assert events == ["close", "raised"]
    assert tracked.close_calls == 1
    # Nothing was sent, so the ASGI server can still answer 500.
    assert client.exchange.messages == []


async def test_app_raising_before_returning_propagates() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [])
        raise AppError("in app")

    client = Client()
    with pytest.raises(AppError, match="in app"):
        await client.run(WsgiToAsgi(app), http_scope())
    assert client.exchange.messages == []


async def test_exc_info_before_body_replaces_response_and_logs_the_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/html"), ("X-First", "1")])
        try:
            raise AppError("handled")
        except AppError:
            start_response("503 Service Unavailable", [("Content-Type", "text/plain")], sys.exc_info())
            return [b"error ", b"page"]

    client = Client()
    # PEP 3333: "if exc_info is provided, and the HTTP headers have already been sent,
    # start_response must raise an error": only then. Raised after a complete response,
    # the error would make the server close a kept-alive connection; it is logged.
    with caplog.at_level(logging.ERROR, ADAPTER_LOGGER):
        await client.run(WsgiToAsgi(app), http_scope())
    [record] = [r for r in caplog.records if r.name == ADAPTER_LOGGER]
    assert "answered an error with its own error page" in record.getMessage()
    assert record.exc_info is not None and isinstance(record.exc_info[1], AppError)
    result = client.exchange
    assert result.status == 503
    assert result.header(b"content-type") == b"text/plain"
    assert result.header(b"x-first") is None
    # The replacement response went out whole.
    assert result.body == b"error page"
    assert result.complete


async def test_exc_info_in_generator_before_body_replaces_response() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [("X-First", "1")])
        yield b""
        try:
            raise AppError("handled late")
        except AppError:
            start_response("500 Internal Server Error", [("X-Error", "1")], sys.exc_info())
        yield b"oops"

    client = Client()
    await client.run(WsgiToAsgi(app), http_scope())
    assert client.exchange.status == 500
    assert client.exchange.header(b"x-error") == b"1"
    assert client.exchange.header(b"x-first") is None
    assert client.exchange.body == b"oops"
    assert client.exchange.complete


async def test_exc_info_on_first_call_is_allowed() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        try:
            raise AppError("first call")
        except AppError:
            start_response("500 Internal Server Error", [], sys.exc_info())
        return [b"err"]

    client = Client()
    await client.run(WsgiToAsgi(app), http_scope())
    assert client.exchange.status == 500
    assert client.exchange.body == b"err"
    assert client.exchange.complete


async def test_exc_info_after_headers_sent_reraises_and_aborts() -> None:
    reraised: list[BaseException] = []

    def gen(start_response: Any) -> Any:
        yield b"body started"
        try:
            raise AppError("too late")
        except AppError:
            try:
                start_response("500 Internal Server Error", [], sys.exc_info())
            except AppError as exc:
                reraised.append(exc)
                raise

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [])
        return Tracked(gen(start_response))

    client = Client()
    with pytest.raises(AppError, match="too late"):
        await client.run(WsgiToAsgi(app), http_scope())
    assert len(reraised) == 1
    assert client.exchange.status == 200
    assert body_messages(client) == [(b"body started", True)]
    assert not client.exchange.complete


async def test_exc_info_after_write_reraises_and_aborts() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        write = start_response("200 OK", [])
        write(b"written")
        try:
            raise AppError("after write")
        except AppError:
            start_response("500 Internal Server Error", [], sys.exc_info())
        return [b"never"]  # pragma: no cover - start_response re-raised

    client = Client()
    with pytest.raises(AppError, match="after write"):
        await client.run(WsgiToAsgi(app), http_scope())
    assert client.exchange.status == 200
    assert body_messages(client) == [(b"written", True)]
    assert not client.exchange.complete


async def test_second_start_response_without_exc_info_raises() -> None:
    errors: list[BaseException] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("X-One", "1")])
        try:
            start_response("404 Not Found", [("X-Two", "2")])
        except Exception as exc:
            errors.append(exc)
        return [b"first wins"]

    result = await request(WsgiToAsgi(app))
    assert len(errors) == 1
    assert isinstance(errors[0], bridge.ResponseError)
    assert result.status == 200
    assert result.header(b"x-one") == b"1"
    assert result.header(b"x-two") is None
    assert result.body == b"first wins"


async def test_second_start_response_raises_even_if_first_failed_validation() -> None:
    errors: list[BaseException] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        try:
            start_response("bad status", [])
        except bridge.ResponseError as exc:
            errors.append(exc)
        start_response("200 OK", [])  # no exc_info: must raise too
        return [b"unreachable"]  # pragma: no cover

    client = Client()
    with pytest.raises(bridge.ResponseError):
        await client.run(WsgiToAsgi(app), http_scope())
    assert len(errors) == 1
    assert client.exchange.messages == []


async def test_second_start_response_with_exc_info_after_failed_first_call_is_allowed() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        try:
            start_response("200 OK", [("Bad Name", "x")])
        except bridge.ResponseError:
            start_response("500 Internal Server Error", [], sys.exc_info())
        return [b"recovered"]

    client = Client()
    await client.run(WsgiToAsgi(app), http_scope())  # the handled error is logged
    assert client.exchange.status == 500
    assert client.exchange.body == b"recovered"
    assert client.exchange.complete


@pytest.mark.parametrize(
    "body",
    [
        pytest.param([], id="empty-list"),
        pytest.param([b"data"], id="nonempty-list"),
        pytest.param(None, id="none"),
    ],
)
async def test_no_start_response_raises_before_anything_is_sent(body: Any) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> Any:
        return body

    client = Client()
    with pytest.raises(bridge.ResponseError):
        await client.run(WsgiToAsgi(app), http_scope())
    assert client.exchange.messages == []


async def test_no_start_response_generator_is_closed() -> None:
    tracked = Tracked([b"", b"chunk", b"never"])

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        return tracked

    client = Client()
    with pytest.raises(bridge.ResponseError):
        await client.run(WsgiToAsgi(app), http_scope())
    assert client.exchange.messages == []
    assert tracked.close_calls == 1
    assert tracked.next_calls == 2


async def test_empty_iterable_without_start_response_is_closed() -> None:
    tracked = Tracked([])

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        return tracked

    with pytest.raises(bridge.ResponseError):
        await request(WsgiToAsgi(app))
    assert tracked.close_calls == 1


async def test_start_response_called_lazily_inside_generator() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("202 Accepted", [("X-Lazy", "yes")])
        yield b"lazy"

    result = await request(WsgiToAsgi(app))
    assert result.status == 202
    assert result.header(b"x-lazy") == b"yes"
    assert result.body == b"lazy"
    assert result.complete


# ---------------------------------------------------------------------------------------
# Status lines (rows 10, 11) and response headers (rows 12-14)
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code"),
    [("299 Custom", 299), ("200", 200), ("404 Not Found", 404), ("599 Whatever", 599), ("200 ", 200)],
)
async def test_status_with_any_or_no_reason_phrase_is_accepted(status: str, code: int) -> None:
    result = await request(WsgiToAsgi(app_returning([b"x"], status=status)))
    assert result.status == code
    assert type(result.start["status"]) is int


@pytest.mark.parametrize(
    "status",
    [
        "abc",
        "20 OK",
        "1000 X",
        "101 Switching Protocols",
        "100 Continue",
        "099 Low",
        "200OK",
        "",
        "20",
        "200 OK\r\n",
    ],
)
async def test_bad_status_rejected_by_start_response(status: str) -> None:
    raised: list[BaseException] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        try:
            start_response(status, [])
        except Exception as exc:
            raised.append(exc)
            raise
        return [b"x"]  # pragma: no cover

    client = Client()
    with pytest.raises(bridge.ResponseError):
        await client.run(WsgiToAsgi(app), http_scope())
    # The error is raised by start_response itself, where the app can see it.
    assert len(raised) == 1
    assert isinstance(raised[0], bridge.ResponseError)
    assert client.exchange.messages == []


async def test_status_must_be_str() -> None:
    with pytest.raises(bridge.ResponseError):
        await request(WsgiToAsgi(app_returning([b"x"], status=200)))  # type: ignore[arg-type]


async def test_latin1_header_value_is_sent_as_latin1_bytes() -> None:
    result = await request(WsgiToAsgi(app_returning([b"x"], headers=[("X-Name", "café")])))
    assert result.header(b"x-name") == b"caf\xe9"


async def test_raw_request_header_bytes_round_trip() -> None:
    # Raw bytes >= 0x80 in a request header reach the app as latin-1 text, and the app
    # can send them back unchanged.
    seen: dict[str, str] = {}

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen["value"] = environ["HTTP_X_RAW"]
        start_response("200 OK", [("X-Echo", environ["HTTP_X_RAW"])])
        return []

    raw = b"caf\xe9 \xff\x80"
    result = await request(WsgiToAsgi(app), headers=[(b"host", b"t"), (b"x-raw", raw)])
    assert seen["value"] == raw.decode("latin-1")
    assert result.header(b"x-echo") == raw


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("price: 5€", id="euro"),
        pytest.param("a\r\nSet-Cookie: evil=1", id="crlf"),
        pytest.param("a\nb", id="lf"),
        pytest.param("a\rb", id="cr"),
        pytest.param("a\x00b", id="nul"),
    ],
)
async def test_header_value_not_latin1_or_with_control_characters_raises(value: str) -> None:
    raised: list[BaseException] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        try:
            start_response("200 OK", [("X-Value", value)])
        except Exception as exc:
            raised.append(exc)
            raise
        return [b"x"]  # pragma: no cover

    client = Client()
    with pytest.raises(bridge.ResponseError):
        await client.run(WsgiToAsgi(app), http_scope())
    assert len(raised) == 1
    assert client.exchange.messages == []


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param([("Bad Name", "x")], id="space-in-name"),
        pytest.param([("X-A:", "x")], id="colon-in-name"),
        pytest.param([("", "x")], id="empty-name"),
        pytest.param([("X-A", b"bytes")], id="bytes-value"),
        pytest.param([(b"X-A", "x")], id="bytes-name"),
        pytest.param([("X-A", "1", "extra")], id="three-tuple"),
        pytest.param("X-A: 1", id="not-a-list"),
        pytest.param([("Content-Length", "abc")], id="bad-content-length"),
        pytest.param([("Content-Length", "-1")], id="negative-content-length"),
        pytest.param([("Content-Length", "3"), ("Content-Length", "4")], id="conflicting-content-length"),
    ],
)
async def test_bad_response_headers_raise(headers: Any) -> None:
    client = Client()
    with pytest.raises(bridge.ResponseError):
        await client.run(WsgiToAsgi(app_returning([b"abc"], headers=headers)), http_scope())
    assert client.exchange.messages == []


async def test_header_names_lowercased_and_repeats_keep_order() -> None:
    headers = [
        ("Set-Cookie", "a=1"),
        ("X-Other", "o"),
        ("Set-Cookie", "b=2"),
        ("SET-COOKIE", "c=3"),
        ("Vary", "Accept"),
        ("Vary", "Cookie"),
    ]
    result = await request(WsgiToAsgi(app_returning([b"x"], headers=headers)))
    assert [v for k, v in result.headers if k == b"set-cookie"] == [b"a=1", b"b=2", b"c=3"]
    assert [v for k, v in result.headers if k == b"vary"] == [b"Accept", b"Cookie"]
    assert all(k == k.lower() for k, _ in result.headers)
    # The relative order of the app's headers is kept.
    app_headers = [(k, v) for k, v in result.headers if k != b"content-length"]
    assert app_headers == [(k.lower().encode(), v.encode()) for k, v in headers]


async def test_duplicate_equal_content_length_is_sent_once() -> None:
    headers = [("Content-Length", "3"), ("Content-Length", "3")]
    result = await request(WsgiToAsgi(app_returning([b"abc"], headers=headers)))
    assert [v for k, v in result.headers if k == b"content-length"] == [b"3"]
    assert result.body == b"abc"


@pytest.mark.parametrize(
    "name",
    ["Connection", "Transfer-Encoding", "Keep-Alive", "Upgrade", "TE", "Trailer", "Proxy-Authenticate"],
)
async def test_hop_by_hop_header_dropped_with_warning(name: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger=ADAPTER_LOGGER)
    headers = [("Content-Type", "text/plain"), (name, "close" if name == "Connection" else "chunked")]
    result = await request(WsgiToAsgi(app_returning([b"body"], headers=headers)))
    assert result.status == 200
    assert result.body == b"body"
    assert name.lower().encode() not in [k for k, _ in result.headers]
    assert result.header(b"content-type") == b"text/plain"
    warnings = [r for r in caplog.records if r.name == ADAPTER_LOGGER and r.levelno == logging.WARNING]
    assert any(name in r.getMessage() for r in warnings), [r.getMessage() for r in warnings]


@pytest.mark.parametrize("name", ["Connection", "Transfer-Encoding", "keep-alive"])
async def test_hop_by_hop_header_raises_when_strict(name: str) -> None:
    client = Client()
    app = WsgiToAsgi(app_returning([b"body"], headers=[(name, "x")]), strict=True)
    with pytest.raises(bridge.HopByHopHeaderError):
        await client.run(app, http_scope())
    assert issubclass(bridge.HopByHopHeaderError, bridge.ResponseError)
    assert client.exchange.messages == []


# ---------------------------------------------------------------------------------------
# The response body (row 40, non-bytes chunks)
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"raw bytes", id="bytes"),
        pytest.param("a str", id="str"),
        pytest.param(bytearray(b"ba"), id="bytearray"),
        pytest.param(42, id="int"),
    ],
)
async def test_returning_a_non_iterable_body_raises(body: Any) -> None:
    client = Client()
    with pytest.raises(bridge.ResponseError):
        await client.run(WsgiToAsgi(app_returning(body)), http_scope())
    assert client.exchange.messages == []


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(lambda: ["text"], id="str-in-list"),
        pytest.param(lambda: iter(["text"]), id="str-from-iterator"),
        pytest.param(lambda: [bytearray(b"x")], id="bytearray-in-list"),
        pytest.param(lambda: [None], id="none-in-list"),
    ],
)
async def test_non_bytes_first_chunk_raises(body: Any) -> None:
    client = Client()
    with pytest.raises(bridge.ResponseError):
        await client.run(WsgiToAsgi(app_returning(body)), http_scope())
    assert client.exchange.messages == []


async def test_str_chunk_mid_stream_aborts() -> None:
    tracked = Tracked(iter([b"ok", "not bytes", b"never"]))
    client = Client()
    with pytest.raises(bridge.ResponseError):
        await client.run(WsgiToAsgi(app_returning(tracked)), http_scope())
    assert body_messages(client) == [(b"ok", True)]
    assert not client.exchange.complete
    assert tracked.close_calls == 1
    assert tracked.next_calls == 2


async def test_large_list_body_is_sent_completely() -> None:
    chunks = [bytes([65 + i % 26]) * 100_000 for i in range(8)]
    result = await request(WsgiToAsgi(app_returning(chunks)))
    assert result.body == b"".join(chunks)
    assert result.complete
    assert sum(1 for m in result.bodies if not m.get("more_body", False)) == 1
    assert result.header(b"content-length") == str(800_000).encode()


async def test_tuple_body_and_custom_iterable() -> None:
    result = await request(WsgiToAsgi(app_returning((b"a", b"b"))))
    assert result.body == b"ab"
    assert result.header(b"content-length") == b"2"

    class Body:
        def __iter__(self) -> Any:
            return iter([b"c", b"d"])

    result = await request(WsgiToAsgi(app_returning(Body())))
    assert result.body == b"cd"
    assert result.complete


# ---------------------------------------------------------------------------------------
# write()
# ---------------------------------------------------------------------------------------


async def test_write_goes_out_before_iterable_and_blocks_until_sent() -> None:
    client = Client()
    seen: list[int] = []

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        write = start_response("200 OK", [])
        write(b"w1")
        seen.append(len(client.exchange.messages))
        write(b"w2")
        seen.append(len(client.exchange.messages))
        return Tracked([b"", b"i1", b"i2"])

    result = await client.run(WsgiToAsgi(app), http_scope())
    assert seen == [2, 3]  # start + w1, then w2: each write() was transmitted before returning
    assert result.body == b"w1w2i1i2"
    assert body_messages(client)[:2] == [(b"w1", True), (b"w2", True)]
    assert result.complete
    assert result.header(b"content-length") is None


async def test_write_then_list_gets_no_content_length() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        write = start_response("200 OK", [])
        write(b"abc")
        return [b"def"]

    result = await request(WsgiToAsgi(app))
    assert result.body == b"abcdef"
    assert result.complete
    assert result.header(b"content-length") is None


async def test_write_str_is_an_error() -> None:
    errors: list[BaseException] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        write = start_response("200 OK", [])
        try:
            write("text")
        except bridge.ResponseError as exc:
            errors.append(exc)
        return [b"fine"]

    result = await request(WsgiToAsgi(app))
    assert len(errors) == 1
    assert result.body == b"fine"


async def test_write_before_successful_start_response_is_an_error() -> None:
    # write() came from a successful call, but the app then replaced the headers with
    # an invalid status: there is no valid status line to send, so write() refuses.
    errors: list[BaseException] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        write = start_response("200 OK", [])
        try:
            raise AppError("x")
        except AppError:
            with contextlib.suppress(bridge.ResponseError):
                start_response("not a status", [], sys.exc_info())
        try:
            write(b"x")
        except bridge.ResponseError as exc:
            errors.append(exc)
        return []

    client = Client()
    exc = await run_raw(WsgiToAsgi(app), client)
    assert len(errors) == 1
    assert client.exchange.messages == []
    # No successful start_response in the end: a clear error of our own type.
    assert isinstance(exc, (bridge.ResponseError, AppError)), repr(exc)


async def test_write_past_content_length_raises() -> None:
    errors: list[BaseException] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        write = start_response("200 OK", [("Content-Length", "5")])
        write(b"hello world")  # crosses the limit: cut
        try:
            write(b"more")  # past it: error
        except bridge.ResponseError as exc:
            errors.append(exc)
        return []

    result = await request(WsgiToAsgi(app))
    assert result.body == b"hello"
    assert len(errors) == 1


async def test_write_then_iterable_share_one_content_length() -> None:
    tracked = Tracked([b"lo", b" world", b"never"])

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        write = start_response("200 OK", [("Content-Length", "5")])
        write(b"hel")
        return tracked

    result = await request(WsgiToAsgi(app))
    assert result.body == b"hello"
    assert result.complete
    assert tracked.next_calls == 1
    assert tracked.close_calls == 1


# ---------------------------------------------------------------------------------------
# Content-Length (rows 29-31) and added Content-Length
# ---------------------------------------------------------------------------------------


async def test_bytes_past_content_length_are_cut_and_the_iterable_not_advanced() -> None:
    tracked = Tracked([b"hello", b" world", b"!!!"])
    result = await request(WsgiToAsgi(app_returning(tracked, headers=[("Content-Length", "7")])))
    assert result.body == b"hello w"
    assert result.complete
    assert result.header(b"content-length") == b"7"
    assert tracked.next_calls == 2  # not advanced past the chunk that reached the limit
    assert tracked.close_calls == 1


async def test_bytes_past_content_length_are_cut_from_a_plain_list() -> None:
    result = await request(
        WsgiToAsgi(app_returning([b"hello", b" world"], headers=[("Content-Length", "5")]))
    )
    assert result.body == b"hello"
    assert [v for k, v in result.headers if k == b"content-length"] == [b"5"]
    assert result.complete


async def test_bytes_past_content_length_are_cut_from_a_generators_first_chunk() -> None:
    advanced: list[int] = []

    def gen() -> Any:
        yield b"hello world"
        advanced.append(1)
        yield b"never"

    tracked = Tracked(gen())
    result = await request(WsgiToAsgi(app_returning(tracked, headers=[("Content-Length", "5")])))
    assert result.body == b"hello"
    assert result.complete
    assert advanced == []
    assert tracked.close_calls == 1


async def test_bytes_past_content_length_are_cut_while_streaming() -> None:
    advanced: list[int] = []

    def gen() -> Any:
        yield b"hel"
        yield b"lo world"
        advanced.append(1)
        yield b"never"

    tracked = Tracked(gen())
    client = Client()
    await client.run(WsgiToAsgi(app_returning(tracked, headers=[("Content-Length", "5")])), http_scope())
    assert client.exchange.body == b"hello"
    assert client.exchange.complete
    assert advanced == []
    assert tracked.next_calls == 2
    assert tracked.close_calls == 1


async def test_exact_content_length_stops_iteration() -> None:
    advanced: list[int] = []

    def gen() -> Any:
        yield b"abc"
        yield b"de"
        advanced.append(1)
        yield b""

    tracked = Tracked(gen())
    result = await request(WsgiToAsgi(app_returning(tracked, headers=[("Content-Length", "5")])))
    assert result.body == b"abcde"
    assert result.complete
    assert advanced == []
    assert tracked.close_calls == 1


@pytest.mark.parametrize("streaming", [False, True], ids=["list", "generator"])
async def test_short_body_is_logged_not_padded(streaming: bool, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger=ADAPTER_LOGGER)
    body: Any = (lambda: iter([b"abc", b"de"])) if streaming else [b"abc", b"de"]
    result = await request(WsgiToAsgi(app_returning(body, headers=[("Content-Length", "10")])))
    assert result.body == b"abcde"
    assert result.header(b"content-length") == b"10"
    messages = [r.getMessage() for r in caplog.records if r.name == ADAPTER_LOGGER]
    assert any("10" in m and "5" in m for m in messages), messages


async def test_head_passes_body_and_keeps_content_length(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger=ADAPTER_LOGGER)
    result = await request(
        WsgiToAsgi(app_returning([b"hello world"], headers=[("Content-Length", "11")])), method="HEAD"
    )
    assert result.status == 200
    assert result.header(b"content-length") == b"11"
    assert result.body == b"hello world"  # the server drops it
    assert result.complete


async def test_head_with_empty_body_keeps_declared_length_without_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger=ADAPTER_LOGGER)
    result = await request(WsgiToAsgi(app_returning([], headers=[("Content-Length", "1234")])), method="HEAD")
    assert result.header(b"content-length") == b"1234"
    assert result.body == b""
    assert not [r for r in caplog.records if r.name == ADAPTER_LOGGER]


async def test_no_content_length_added_for_head() -> None:
    result = await request(WsgiToAsgi(app_returning([b"hello"])), method="HEAD")
    assert result.header(b"content-length") is None
    assert result.complete


@pytest.mark.parametrize("status", ["204 No Content", "304 Not Modified"])
async def test_no_content_length_added_for_204_304(status: str) -> None:
    result = await request(WsgiToAsgi(app_returning([], status=status)))
    assert result.status == int(status[:3])
    assert result.header(b"content-length") is None
    assert result.complete


async def test_no_content_length_added_for_generator_body() -> None:
    result = await request(WsgiToAsgi(app_returning(lambda: iter([b"a", b"b"]))))
    assert result.body == b"ab"
    assert result.header(b"content-length") is None


# ---------------------------------------------------------------------------------------
# close() exactly once, on every path (and rows 28, 44, 45)
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        pytest.param([b"a", b"b"], id="list-body"),
        pytest.param([], id="empty"),
        pytest.param([b"", b"a", b"", b"b"], id="with-empties"),
    ],
)
async def test_close_called_once_on_normal_end(source: list[bytes], anyio_backend: str) -> None:
    loop_thread = threading.get_ident()
    tracked = Tracked(source)
    result = await request(WsgiToAsgi(app_returning(tracked)))
    assert result.complete
    assert result.body == b"".join(source)
    assert tracked.close_calls == 1
    assert tracked.close_thread is not None
    assert tracked.close_thread != loop_thread  # close() runs in a worker thread


async def test_close_called_once_for_generator_object() -> None:
    finalized: list[str] = []

    def gen() -> Any:
        try:
            yield b"a"
            yield b"b"
        finally:
            finalized.append("done")

    result = await request(WsgiToAsgi(app_returning(gen)))
    assert result.body == b"ab"
    assert finalized == ["done"]


async def test_close_called_once_when_first_send_raises() -> None:
    tracked = Tracked(endless())
    client = Client(send_raises_after=0)
    exc = await run_raw(WsgiToAsgi(app_returning(tracked)), client)
    assert exc is None  # a gone client is not an error
    assert tracked.close_calls == 1
    assert client.exchange.messages == []


async def test_close_called_once_when_send_raises_mid_stream() -> None:
    tracked = Tracked(endless())
    client = Client(send_raises_after=4)
    exc = await run_raw(WsgiToAsgi(app_returning(tracked)), client)
    assert exc is None
    assert tracked.close_calls == 1
    assert len(client.exchange.messages) == 4
    assert not client.exchange.complete


async def test_close_called_once_when_send_raises_on_list_body() -> None:
    tracked = Tracked([b"a", b"b"])
    client = Client(send_raises_after=1)
    exc = await run_raw(WsgiToAsgi(app_returning(tracked)), client)
    assert exc is None
    assert tracked.close_calls == 1


async def test_send_raising_during_write_stops_quietly() -> None:
    seen: list[BaseException] = []

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        write = start_response("200 OK", [])
        try:
            while True:
                write(b"chunk")
        except OSError as exc:
            seen.append(exc)
            raise

    client = Client(send_raises_after=3)
    exc = await run_raw(WsgiToAsgi(app), client)
    assert exc is None
    assert len(seen) == 1
    assert isinstance(seen[0], bridge.ClientDisconnected)


@pytest.mark.parametrize("spec_version", ["2.3", "2.0"])
async def test_silent_disconnect_stops_endless_generator(spec_version: str) -> None:
    # A spec < 2.4 server: send() silently drops messages once the client is gone, and
    # only receive() reports http.disconnect.
    tracked = Tracked(endless())
    client = Client(silent_after=3)
    scope = http_scope(asgi={"version": "3.0", "spec_version": spec_version})
    with anyio.fail_after(3):
        exc = await run_raw(WsgiToAsgi(app_returning(tracked)), client, scope)
    assert exc is None
    assert tracked.close_calls == 1
    assert not client.exchange.complete


async def test_disconnect_while_generator_blocks_sends_nothing_more_and_closes_it() -> None:
    # The app waits between chunks (SSE); the client leaves meanwhile. The adapter stops
    # pulling the iterable at the next opportunity, sends nothing more, and closes it.
    released = threading.Event()
    client = Client()
    first_sent = anyio.Event()
    disconnect_seen = anyio.Event()

    def gen() -> Any:
        yield b"event 1"
        released.wait(WAIT)
        yield b"event 2"
        yield b"event 3"

    tracked = Tracked(gen())

    async def receive() -> Any:
        message = await client.receive()
        if message["type"] == "http.disconnect":
            disconnect_seen.set()
        return message

    async def send(message: Any) -> None:
        await client.send(message)
        if message["type"] == "http.response.body":
            first_sent.set()

    async def leave() -> None:
        await first_sent.wait()
        client.disconnect()
        # The adapter's receive() has returned http.disconnect (its watcher sets its flag
        # in the same step); only now may the app produce its next chunk.
        await disconnect_seen.wait()
        released.set()

    adapter = WsgiToAsgi(app_returning(tracked))
    with anyio.fail_after(WAIT):
        async with anyio.create_task_group() as tg:
            tg.start_soon(leave)
            await adapter(http_scope(), receive, send)
    assert tracked.close_calls == 1
    assert body_messages(client) == [(b"event 1", True)]


def _hello_world() -> Any:
    yield b"hello world"
    yield b"never"


@pytest.mark.parametrize(
    ("source", "headers", "body"),
    [
        pytest.param(lambda: iter([b"a", b"b"]), [], b"ab", id="streamed-body"),
        pytest.param(lambda: iter([b"", b""]), [], b"", id="only-empty-chunks"),
        pytest.param(lambda: iter([]), [], b"", id="empty-iterator"),
        pytest.param(
            _hello_world, [("Content-Length", "5")], b"hello", id="content-length-reached-first-chunk"
        ),
    ],
)
async def test_close_raising_after_complete_body_is_logged(
    source: Any, headers: list[tuple[str, str]], body: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    # Row 44: close() raising is logged; when the body is complete (the iterable is
    # exhausted, or Content-Length reached) the response is left alone and goes out
    # whole. The result must not depend on whether the last chunk happened to be
    # produced in the first worker step or while streaming.
    caplog.set_level(logging.ERROR, logger=ADAPTER_LOGGER)
    tracked = Tracked(source(), close_raises=AppError("close failed"))
    client = Client()
    exc = await run_raw(WsgiToAsgi(app_returning(tracked, headers=headers)), client)
    assert exc is None, repr(exc)
    assert client.exchange.status == 200
    assert client.exchange.body == body
    assert client.exchange.complete
    assert tracked.close_calls == 1
    assert any(r.exc_info and isinstance(r.exc_info[1], AppError) for r in caplog.records), caplog.records


async def test_close_raising_after_iteration_error_keeps_original(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger=ADAPTER_LOGGER)

    def gen() -> Any:
        yield b"a"
        raise AppError("iteration failed")

    tracked = Tracked(gen(), close_raises=RuntimeError("close failed"))
    client = Client()
    with pytest.raises(AppError, match="iteration failed"):
        await client.run(WsgiToAsgi(app_returning(tracked)), http_scope())
    assert tracked.close_calls == 1
    assert any(r.exc_info and isinstance(r.exc_info[1], RuntimeError) for r in caplog.records)


async def test_cancel_while_streaming_closes_in_worker() -> None:
    tracked = Tracked(endless())
    client = Client()
    app = WsgiToAsgi(app_returning(tracked))

    with anyio.fail_after(WAIT):
        with anyio.CancelScope() as scope:

            async def send(message: Any) -> None:
                await anyio.sleep(0)
                await client.send(message)
                if len(client.exchange.messages) >= 3:
                    scope.cancel()

            await app(http_scope(), client.receive, send)
    # When the ASGI call has returned, the worker is done with the app: no leaked thread.
    assert tracked.closed.is_set()
    assert tracked.close_calls == 1
    assert not client.exchange.complete


async def test_cancel_while_app_blocks_in_first_call_closes_its_iterable() -> None:
    entered = threading.Event()
    release = threading.Event()
    tracked = Tracked(endless())

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        entered.set()
        release.wait(WAIT)
        start_response("200 OK", [])
        return tracked

    client = Client()
    adapter = WsgiToAsgi(app)
    with anyio.fail_after(WAIT):
        async with anyio.create_task_group() as tg:
            scope = anyio.CancelScope()

            async def call() -> None:
                with scope:
                    await adapter(http_scope(), client.receive, client.send)

            tg.start_soon(call)
            assert await wait_thread_event(entered)
            scope.cancel()
            release.set()
    assert tracked.closed.is_set()
    assert tracked.close_calls == 1
    assert not client.exchange.complete


async def test_cancel_while_generator_blocks_mid_stream_sends_nothing_more() -> None:
    first_sent = threading.Event()
    in_next = threading.Event()
    release = threading.Event()

    def gen() -> Any:
        yield b"first"
        in_next.set()
        release.wait(WAIT)
        yield b"second"
        yield from endless()

    tracked = Tracked(gen())
    client = Client()
    adapter = WsgiToAsgi(app_returning(tracked))

    async def send(message: Any) -> None:
        # A real server's send() suspends (it waits for the transport to drain), which
        # is where a cancelled task sees its cancellation.
        await anyio.sleep(0)
        await client.send(message)
        if message["type"] == "http.response.body":
            first_sent.set()

    with anyio.fail_after(WAIT):
        async with anyio.create_task_group() as tg:
            scope = anyio.CancelScope()
            outcome: list[BaseException] = []

            async def call() -> None:
                with scope:
                    try:
                        await adapter(http_scope(), client.receive, send)
                    except anyio.get_cancelled_exc_class():
                        raise
                    except BaseException as exc:
                        outcome.append(exc)

            tg.start_soon(call)
            # The worker may go on to the next chunk while the loop still sends the
            # first: cancel once both have happened.
            assert await wait_thread_event(in_next)
            assert await wait_thread_event(first_sent)
            scope.cancel()
            release.set()
    assert outcome == []  # the cancellation is not turned into some other error
    assert tracked.closed.is_set()
    assert tracked.close_calls == 1
    # Row 45: once the task is cancelled, the worker's next send raises instead of
    # reaching the server; "second" was produced after the cancellation.
    assert body_messages(client) == [(b"first", True)]


async def test_cancel_while_waiting_for_a_thread_never_runs_the_app() -> None:
    # max_threads=1 and one request inside the app: a second request waits for the
    # pool. Cancelling it there ends it at once; its app never runs.
    entered = threading.Event()
    release = threading.Event()
    calls: list[str] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        calls.append(environ["PATH_INFO"])
        entered.set()
        release.wait(WAIT)
        start_response("200 OK", [])
        return [b"ok"]

    adapter = WsgiToAsgi(app, max_threads=1)
    first, second = Client(), Client()
    with anyio.fail_after(WAIT):
        async with anyio.create_task_group() as tg:
            tg.start_soon(first.run, adapter, http_scope("/first"))
            assert await wait_thread_event(entered)
            with anyio.move_on_after(0.2) as waiting:
                await second.run(adapter, http_scope("/second"))
            assert waiting.cancelled_caught
            release.set()
    assert calls == ["/first"]
    assert first.exchange.body == b"ok"
    assert second.exchange.messages == []


async def test_worker_step_starting_after_the_request_was_abandoned_never_runs_the_app() -> None:
    # White box, for a window no client can hit on purpose: a worker has taken the
    # step from the pool's queue (too late to cancel it there) when the task is
    # cancelled and the loop lets the request go. The step must not call the app then:
    # nobody would ever stop a streaming response it started.
    from bridge.environ import build_environ
    from bridge.wsgi_streams import ErrorStream
    from bridge.wsgi_to_asgi import _Link, _Receiver, _Sender, _Worker

    calls: list[str] = []

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        calls.append("called")
        start_response("200 OK", [])
        return endless()

    client = Client()
    adapter = WsgiToAsgi(app)
    errors = ErrorStream()
    environ = build_environ(http_scope(), errors=errors)
    workers = adapter._workers.get(adapter.max_threads)
    receiver = _Receiver(client.receive, workers, True)
    link = _Link(workers, receiver)
    worker = _Worker(app, environ, errors, False, link, _Sender(client.send, link), set())
    assert link.abandon() is False  # no worker runs a step
    assert not worker.needs_close  # nothing ran, nothing to close
    with pytest.raises(bridge.ClientDisconnected):
        worker.work(lambda first: None)
    assert calls == []


@pytest.mark.parametrize("exc_type", [SystemExit, KeyboardInterrupt])
@pytest.mark.parametrize("streaming", [False, True], ids=["first-step", "streaming"])
async def test_process_ending_exception_from_close_does_not_escape(
    exc_type: type[BaseException], streaming: bool
) -> None:
    source = iter([b"a", b"b"]) if streaming else iter([b"", b""])
    tracked = Tracked(source, close_raises=exc_type())
    adapter = WsgiToAsgi(app_returning(tracked))
    exc = await run_raw(adapter, Client())
    assert not isinstance(exc, (SystemExit, KeyboardInterrupt)), repr(exc)
    assert exc is None or isinstance(exc, bridge.AppExitError), repr(exc)
    assert tracked.close_calls == 1
    assert (await request(WsgiToAsgi(app_returning([b"next"])))).body == b"next"


async def test_silent_disconnect_stops_endless_write_loop() -> None:
    # The same as the endless generator, for an app that streams with write(): on a
    # spec-2.3 server send() stays silent, so only receive() can tell the client left,
    # and write() must then raise (an OSError) so the app stops.
    stopped: list[BaseException] = []
    writes = {"n": 0}

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        write = start_response("200 OK", [])
        try:
            while writes["n"] < 5_000:  # a cap, so a broken adapter fails instead of hanging
                write(b"x")
                writes["n"] += 1
        except OSError as exc:
            stopped.append(exc)
            raise
        return []

    client = Client(silent_after=3)
    scope = http_scope(asgi={"version": "3.0", "spec_version": "2.3"})
    exc = await run_raw(WsgiToAsgi(app), client, scope)
    assert exc is None
    assert len(stopped) == 1, f"write() never raised after {writes['n']} writes to a gone client"
    assert isinstance(stopped[0], bridge.ClientDisconnected)


def _spin_on_empty_chunks(started: threading.Event, reached_deadline: list[int], first: bytes) -> Any:
    # An app polling for events yields b"" meanwhile (so that the server may check the
    # connection). Bounded in time so that a broken adapter fails instead of hanging.
    if first:
        yield first
    started.set()
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        yield b""
    reached_deadline.append(1)
    yield b"deadline reached"


@pytest.mark.parametrize("first", [b"", b"first"], ids=["before-first-chunk", "after-first-chunk"])
async def test_cancel_while_app_yields_empty_chunks_stops_iterating(first: bytes) -> None:
    started = threading.Event()
    reached_deadline: list[int] = []
    tracked = Tracked(_spin_on_empty_chunks(started, reached_deadline, first))
    client = Client()
    adapter = WsgiToAsgi(app_returning(tracked))
    with anyio.fail_after(WAIT):
        async with anyio.create_task_group() as tg:
            scope = anyio.CancelScope()

            async def call() -> None:
                with scope:
                    await adapter(http_scope(), client.receive, client.send)

            tg.start_soon(call)
            assert await wait_thread_event(started)
            scope.cancel()
    assert reached_deadline == [], "the adapter kept iterating after the ASGI task was cancelled"
    assert tracked.close_calls == 1
    assert not client.exchange.complete


@pytest.mark.parametrize("first", [b"", b"first"], ids=["before-first-chunk", "after-first-chunk"])
async def test_silent_disconnect_while_app_yields_empty_chunks_stops_iterating(first: bytes) -> None:
    # The request body is complete from the start (a GET), so the adapter can watch
    # receive() for http.disconnect as soon as the app runs.
    started = threading.Event()
    reached_deadline: list[int] = []
    tracked = Tracked(_spin_on_empty_chunks(started, reached_deadline, first))
    client = Client()
    scope = http_scope(asgi={"version": "3.0", "spec_version": "2.3"})
    adapter = WsgiToAsgi(app_returning(tracked))
    with anyio.fail_after(WAIT):
        async with anyio.create_task_group() as tg:
            tg.start_soon(adapter, scope, client.receive, client.send)
            assert await wait_thread_event(started)
            client.disconnect()
    assert reached_deadline == [], "the adapter kept iterating after the client left"
    assert tracked.close_calls == 1
    assert not client.exchange.complete


# ---------------------------------------------------------------------------------------
# Threads: parallelism, the limit, contextvars, process-ending exceptions
# ---------------------------------------------------------------------------------------


async def test_requests_run_in_parallel() -> None:
    barrier = threading.Barrier(8, timeout=WAIT)
    threads: set[int] = set()

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        threads.add(threading.get_ident())
        barrier.wait()  # BrokenBarrierError unless all 8 requests are inside at once
        start_response("200 OK", [])
        return [environ["PATH_INFO"].encode()]

    adapter = WsgiToAsgi(app)
    results: dict[int, Any] = {}

    async def one(i: int) -> None:
        results[i] = await request(adapter, f"/{i}")

    with anyio.fail_after(WAIT * 2):
        async with anyio.create_task_group() as tg:
            for i in range(8):
                tg.start_soon(one, i)
    assert sorted(results) == list(range(8))
    assert all(r.status == 200 and r.body == f"/{i}".encode() for i, r in results.items())
    assert len(threads) == 8


async def test_max_threads_bounds_concurrency() -> None:
    lock = threading.Lock()
    state = {"active": 0, "max": 0, "entered": 0}
    go = threading.Event()

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        with lock:
            state["active"] += 1
            state["entered"] += 1
            state["max"] = max(state["max"], state["active"])
        try:
            go.wait(WAIT)
            start_response("200 OK", [])
            return [b"ok"]
        finally:
            with lock:
                state["active"] -= 1

    adapter = WsgiToAsgi(app, max_threads=2)
    clients = [Client() for _ in range(6)]

    with anyio.fail_after(WAIT * 2):
        async with anyio.create_task_group() as tg:
            for client in clients:
                tg.start_soon(client.run, adapter, http_scope())
            # Wait until every request has its body and two are inside the app.
            while not (all(c.receive_calls for c in clients) and state["entered"] >= 2):
                await anyio.sleep(0.01)
            # Give any request that would wrongly get a third thread a chance to show up.
            await anyio.sleep(0.2)
            with lock:
                assert state["active"] == 2
                assert state["entered"] == 2
            go.set()
    assert state["max"] == 2
    assert state["entered"] == 6
    assert all(c.exchange.body == b"ok" for c in clients)


async def test_pools_of_two_adapters_are_independent() -> None:
    # One adapter's busy pool does not block another's.
    release = threading.Event()
    entered = threading.Event()

    def slow(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        entered.set()
        release.wait(WAIT)
        start_response("200 OK", [])
        return [b"slow"]

    slow_app = WsgiToAsgi(slow, max_threads=1)
    fast_app = WsgiToAsgi(app_returning([b"fast"]), max_threads=1)
    with anyio.fail_after(WAIT * 2):
        async with anyio.create_task_group() as tg:
            tg.start_soon(request, slow_app)
            assert await wait_thread_event(entered)
            result = await request(fast_app)
            assert result.body == b"fast"
            release.set()


request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id")


async def test_contextvars_visible_in_app_and_iterable() -> None:
    seen: list[str] = []

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        seen.append(request_id.get("missing"))
        start_response("200 OK", [])

        def gen() -> Any:
            seen.append(request_id.get("missing"))
            yield b"a"
            seen.append(request_id.get("missing"))
            yield b"b"

        return gen()

    token = request_id.set("req-42")
    try:
        result = await request(WsgiToAsgi(app))
    finally:
        request_id.reset(token)
    assert result.body == b"ab"
    assert seen == ["req-42", "req-42", "req-42"]


async def test_contextvar_set_by_app_survives_iteration_and_close_but_not_the_request() -> None:
    # One context per request, as under a WSGI server's thread (Flask's
    # stream_with_context): what the app sets is there while iterating and in close(),
    # and does not leak into the ASGI server's task or into the next request.
    seen: list[str] = []

    class Body(Tracked):
        def close(self) -> None:
            seen.append("close:" + request_id.get("missing"))
            super().close()

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        seen.append("app:" + request_id.get("missing"))
        request_id.set(environ["PATH_INFO"])
        start_response("200 OK", [])

        def gen() -> Any:
            seen.append("gen:" + request_id.get("missing"))
            yield b"a"
            seen.append("gen:" + request_id.get("missing"))
            yield b"b"

        return Body(gen())

    adapter = WsgiToAsgi(app)
    result = await request(adapter, "/one")
    assert result.body == b"ab"
    assert request_id.get("missing") == "missing"
    await request(adapter, "/two")
    assert seen == [
        "app:missing",
        "gen:/one",
        "gen:/one",
        "close:/one",
        "app:missing",
        "gen:/two",
        "gen:/two",
        "close:/two",
    ]


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
@pytest.mark.parametrize("where", ["app", "first-next", "streaming"])
async def test_process_ending_exceptions_become_app_exit_error(
    exc_type: type[BaseException], where: str
) -> None:
    tracked: list[Tracked] = []

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [])
        if where == "app":
            raise exc_type()

        def gen() -> Any:
            if where == "streaming":
                yield b"first"
            raise exc_type()

        tracked.append(Tracked(gen()))
        return tracked[-1]

    adapter = WsgiToAsgi(app)
    exc = await run_raw(adapter, Client())
    assert isinstance(exc, bridge.AppExitError), repr(exc)
    assert isinstance(exc.__cause__, exc_type)
    if tracked:
        assert tracked[-1].close_calls == 1
    # The adapter keeps serving.
    ok = await request(WsgiToAsgi(app_returning([b"next"])))
    assert ok.body == b"next"
    again = await run_raw(adapter, Client())
    assert isinstance(again, bridge.AppExitError)
    assert all(t.close_calls == 1 for t in tracked)


async def test_adapter_serves_next_request_after_keyboard_interrupt() -> None:
    calls = {"n": 0}

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyboardInterrupt
        start_response("200 OK", [])
        return [b"alive"]

    adapter = WsgiToAsgi(app, max_threads=1)
    exc = await run_raw(adapter, Client())
    assert isinstance(exc, bridge.AppExitError)
    result = await request(adapter)
    assert result.body == b"alive"


# ---------------------------------------------------------------------------------------
# wsgi.errors
# ---------------------------------------------------------------------------------------

ERRORS_LOGGER = "bridge.wsgi.errors"


def error_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == ERRORS_LOGGER]


async def test_wsgi_errors_reaches_logging(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=ERRORS_LOGGER)

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        errors = environ["wsgi.errors"]
        print("x", file=errors)
        errors.write("two\nlines\n")
        errors.writelines(["from ", "writelines\n"])
        errors.write("unicode: café €\n")
        errors.flush()
        start_response("200 OK", [])
        return [b"ok"]

    await request(WsgiToAsgi(app))
    assert error_lines(caplog) == ["x", "two", "lines", "from writelines", "unicode: café €"]


async def test_wsgi_errors_partial_line_flushed_at_end(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=ERRORS_LOGGER)

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        environ["wsgi.errors"].write("partial ")
        environ["wsgi.errors"].write("line")
        start_response("200 OK", [])

        def gen() -> Any:
            yield b"a"
            environ["wsgi.errors"].write(" continued\ntail without newline")
            yield b"b"

        return gen()

    await request(WsgiToAsgi(app))
    assert error_lines(caplog) == ["partial line continued", "tail without newline"]


async def test_wsgi_errors_partial_line_flushed_on_app_error(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=ERRORS_LOGGER)

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        environ["wsgi.errors"].write("about to fail")
        raise AppError("fail")

    with pytest.raises(AppError):
        await request(WsgiToAsgi(app))
    assert error_lines(caplog) == ["about to fail"]


async def test_wsgi_errors_partial_line_written_in_close_is_flushed(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=ERRORS_LOGGER)

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        class Body(Tracked):
            def close(self) -> None:
                environ["wsgi.errors"].write("closing")
                super().close()

        start_response("200 OK", [])
        return Body([b"x"])

    await request(WsgiToAsgi(app))
    assert error_lines(caplog) == ["closing"]


async def test_wsgi_errors_are_per_request() -> None:
    streams: list[Any] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        streams.append(environ["wsgi.errors"])
        start_response("200 OK", [])
        return []

    adapter = WsgiToAsgi(app)
    await request(adapter)
    await request(adapter)
    assert streams[0] is not streams[1]


# ---------------------------------------------------------------------------------------
# Scopes: lifespan, websocket, unknown, malformed (row 41); request-level 400s
# ---------------------------------------------------------------------------------------

STARTUP = {"type": "lifespan.startup"}
SHUTDOWN = {"type": "lifespan.shutdown"}


async def test_lifespan_completes_both_phases() -> None:
    sent = await run_lifespan(WsgiToAsgi(app_returning([])), [STARTUP, SHUTDOWN])
    assert sent == [{"type": "lifespan.startup.complete"}, {"type": "lifespan.shutdown.complete"}]


async def test_lifespan_hooks_run_in_a_thread_in_order() -> None:
    loop_thread = threading.get_ident()
    calls: list[tuple[str, int]] = []
    adapter = WsgiToAsgi(
        app_returning([]),
        on_startup=[
            lambda: calls.append(("start1", threading.get_ident())),
            lambda: calls.append(("start2", threading.get_ident())),
        ],
        on_shutdown=[lambda: calls.append(("stop", threading.get_ident()))],
    )
    sent = await run_lifespan(adapter, [STARTUP, SHUTDOWN])
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert [name for name, _ in calls] == ["start1", "start2", "stop"]
    assert all(ident != loop_thread for _, ident in calls)


async def test_lifespan_startup_hook_failure() -> None:
    def broken() -> None:
        raise RuntimeError("database unreachable")

    called_after: list[int] = []
    adapter = WsgiToAsgi(app_returning([]), on_startup=[broken, lambda: called_after.append(1)])
    sent = await run_lifespan(adapter, [STARTUP])
    assert len(sent) == 1
    assert sent[0]["type"] == "lifespan.startup.failed"
    assert "database unreachable" in sent[0]["message"]
    assert called_after == []


async def test_lifespan_shutdown_hook_failure() -> None:
    def broken() -> None:
        raise RuntimeError("flush failed")

    sent = await run_lifespan(WsgiToAsgi(app_returning([]), on_shutdown=[broken]), [STARTUP, SHUTDOWN])
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.failed"]
    assert "flush failed" in sent[1]["message"]


async def test_websocket_is_refused_cleanly() -> None:
    called: list[int] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        called.append(1)
        return []

    sent: list[Any] = []
    received = {"n": 0}

    async def receive() -> Any:
        received["n"] += 1
        if received["n"] == 1:
            return {"type": "websocket.connect"}
        await anyio.sleep_forever()

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "websocket", "asgi": {"version": "3.0"}, "path": "/ws", "headers": []}
    with anyio.fail_after(WAIT):
        await WsgiToAsgi(app)(scope, receive, send)
    assert received["n"] == 1
    assert len(sent) == 1
    assert sent[0]["type"] == "websocket.close"
    assert called == []


@pytest.mark.parametrize("scope", [{"type": "webtransport"}, {"type": "mqtt", "asgi": {}}, {}, None, "http"])
async def test_unknown_scope_type_raises(scope: Any) -> None:
    async def receive() -> Any:  # pragma: no cover - must not be reached
        raise AssertionError("receive() called")

    async def send(message: Any) -> None:  # pragma: no cover
        raise AssertionError("send() called")

    with pytest.raises(bridge.InvalidScopeError):
        await WsgiToAsgi(app_returning([]))(scope, receive, send)


@pytest.mark.parametrize("missing", ["path", "method"])
async def test_malformed_http_scope_raises(missing: str) -> None:
    scope = http_scope()
    del scope[missing]
    client = Client()
    with pytest.raises(bridge.InvalidScopeError):
        await client.run(WsgiToAsgi(app_returning([b"x"])), scope)
    assert client.exchange.messages == []


async def test_unexpected_first_message_raises() -> None:
    client = scripted_client([{"type": "websocket.connect"}])
    with pytest.raises(bridge.InvalidScopeError):
        await client.run(WsgiToAsgi(app_returning([b"x"])), http_scope())


async def test_disconnect_before_request_does_not_run_app() -> None:
    called: list[int] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        called.append(1)
        start_response("200 OK", [])
        return []

    client = scripted_client([{"type": "http.disconnect"}])
    await client.run(WsgiToAsgi(app), http_scope())
    assert called == []
    assert client.exchange.messages == []


def dup_headers(n: int) -> list[tuple[bytes, bytes]]:
    return [(b"host", b"testserver")] + [(b"x-dup", b"v%d" % i) for i in range(n)]


async def test_too_many_duplicate_headers_gives_400() -> None:
    called: list[int] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        called.append(1)
        start_response("200 OK", [])
        return []

    result = await request(WsgiToAsgi(app), headers=dup_headers(101))
    assert result.status == 400
    assert result.complete
    assert called == []


async def test_hundred_duplicate_headers_are_fine() -> None:
    seen: dict[str, str] = {}

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen["dup"] = environ["HTTP_X_DUP"]
        start_response("200 OK", [])
        return []

    result = await request(WsgiToAsgi(app), headers=dup_headers(100))
    assert result.status == 200
    assert seen["dup"].split(",") == [f"v{i}" for i in range(100)]


async def test_max_duplicate_headers_is_configurable() -> None:
    adapter = WsgiToAsgi(app_returning([b"ok"]), max_duplicate_headers=3)
    assert (await request(adapter, headers=dup_headers(3))).status == 200
    assert (await request(adapter, headers=dup_headers(4))).status == 400


@pytest.mark.parametrize("value", [b"abc", b"-1", b"1.5"])
async def test_bad_request_content_length_gives_400(value: bytes) -> None:
    called: list[int] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        called.append(1)
        return []

    result = await request(WsgiToAsgi(app), headers=[(b"host", b"t"), (b"content-length", value)])
    assert result.status == 400
    assert called == []


class _ThreadRecordingBody:
    """A streamed body that notes the thread of each step, as Django's request_finished
    (run from close()) closes the database connection of the thread it runs on."""

    def __init__(self, seen: list[tuple[str, int]], chunks: int) -> None:
        self.seen = seen
        self.left = chunks

    def __iter__(self) -> _ThreadRecordingBody:
        return self

    def __next__(self) -> bytes:
        self.seen.append(("next", threading.get_ident()))
        if not self.left:
            raise StopIteration
        self.left -= 1
        return b"x" * 100_000

    def close(self) -> None:
        self.seen.append(("close", threading.get_ident()))


@pytest.mark.parametrize("chunks", [1, 3, 40])
async def test_a_request_runs_on_one_thread_from_call_to_close(chunks: int) -> None:
    seen: list[tuple[str, int]] = []

    def app(environ: dict[str, Any], start_response: Any) -> _ThreadRecordingBody:
        seen.append(("call", threading.get_ident()))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return _ThreadRecordingBody(seen, chunks)

    adapter = WsgiToAsgi(app, max_threads=8)
    for _ in range(10):
        seen.clear()
        result = await request(adapter, "/")
        assert result.body == b"x" * 100_000 * chunks
        assert seen[0][0] == "call" and seen[-1][0] == "close"
        assert len({thread for _, thread in seen}) == 1, seen


async def test_nothing_more_is_asked_of_the_iterable_once_write_reached_content_length() -> None:
    """PEP 3333: once the declared Content-Length is sent, the server stops iterating;
    the iterable is only closed. An app whose generator would fail if asked gets a
    complete response (found by the property tests)."""
    closed = []

    class Rest:
        def __iter__(self) -> Rest:
            return self

        def __next__(self) -> bytes:
            raise RuntimeError("asked for more after Content-Length was reached")

        def close(self) -> None:
            closed.append(True)

    def app(environ: dict[str, Any], start_response: Any) -> Rest:
        write = start_response("200 OK", [("Content-Length", "3")])
        write(b"abc")
        return Rest()

    exchange = await request(WsgiToAsgi(app))
    assert exchange.body == b"abc"
    assert exchange.complete
    assert closed == [True]
