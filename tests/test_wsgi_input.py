"""``wsgi.input`` through WsgiToAsgi: the request body as the WSGI app sees it.

Bodies arrive either whole (one ``http.request``, the in-memory path), split over
several messages up to ``preload_body`` (received in the loop before the app runs: the
in-memory path again), up to ``spool_body`` (received before the app runs too, onto a
temporary file: the spooled path), or beyond (the streaming path, pulled from the
worker thread on demand); every reading method must behave the same on all of them,
and like ``io.BytesIO``. ``run_input`` streams what is not preloaded unless a test
asks for spooling (``spool_body``).
"""

from __future__ import annotations

import io
import logging
import random
import threading
import time
from typing import TYPE_CHECKING, Any, Callable

import anyio
import pytest

import bridge
from bridge import WsgiToAsgi
from bridge.http import DEFAULT_PRELOAD_BODY
from bridge.wsgi_to_asgi import DEFAULT_SPOOL_BODY

from .asgi_driver import Client, http_scope
from .wsgi_apps import WAIT, scripted_client

if TYPE_CHECKING:
    from _typeshed.wsgi import InputStream

pytestmark = pytest.mark.anyio

Action = Callable[[Any], Any]


def splits(body: bytes) -> dict[str, list[bytes]]:
    """Ways an ASGI server may deliver ``body``."""
    half = len(body) // 2
    return {
        "whole": [body],
        "halves": [body[:half], body[half:]],
        "bytes": [body[i : i + 1] for i in range(len(body))] or [b""],
        "with-empties": [b"", body[:3], b"", body[3:], b""],
    }


SPLITS = ["whole", "halves", "bytes", "with-empties"]


async def run_input(
    action: Action,
    parts: list[bytes],
    *,
    headers: list[tuple[bytes, bytes]] | None = None,
    client: Client | None = None,
    preload_body: int | None = None,
    spool_body: int = 0,
) -> Any:
    """Run ``action(environ["wsgi.input"])`` inside a WSGI app; return its result.

    By default a body with a Content-Length up to ``preload_body``'s default is
    preloaded, and a chunked one (no Content-Length) streams: the two paths these
    tests were written for (the adapter would receive a small chunked body ahead too).
    """
    if preload_body is None:
        declared = any(name == b"content-length" for name, _ in headers or [])
        preload_body = DEFAULT_PRELOAD_BODY if declared else 0
    results: list[Any] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        try:
            results.append(("ok", action(environ["wsgi.input"])))
        except Exception as exc:
            results.append(("error", exc))
        start_response("200 OK", [])
        return [b"done"]

    client = client if client is not None else Client(parts)
    hdrs = [(b"host", b"testserver"), *(headers or [])]
    adapter = WsgiToAsgi(app, preload_body=preload_body, spool_body=spool_body)
    await client.run(adapter, http_scope("/upload", method="POST", headers=hdrs), timeout=WAIT)
    assert len(results) == 1
    kind, value = results[0]
    if kind == "error":
        raise value
    return value


def assert_exact_bytes(value: Any) -> None:
    if isinstance(value, list):
        for item in value:
            assert type(item) is bytes, type(item)
    else:
        assert type(value) is bytes, type(value)


BODY = b"line one\nline two\n\nlast line without newline"


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda f: f.read(), id="read()"),
        pytest.param(lambda f: f.read(-1), id="read(-1)"),
        pytest.param(lambda f: f.read(None), id="read(None)"),
        pytest.param(lambda f: f.read(10_000), id="read(big)"),
        pytest.param(lambda f: b"".join(f.readlines()), id="readlines()"),
        pytest.param(lambda f: b"".join(iter(f)), id="iter"),
        pytest.param(lambda f: b"".join(iter(f.readline, b"")), id="readline-loop"),
    ],
)
async def test_whole_body(split: str, call: Action) -> None:
    result = await run_input(call, splits(BODY)[split])
    assert_exact_bytes(result)
    assert result == BODY


@pytest.mark.parametrize("split", SPLITS)
async def test_read_sizes_and_eof(split: str) -> None:
    def action(f: Any) -> list[bytes]:
        return [f.read(0), f.read(4), f.read(5), f.read(10_000), f.read(1), f.read(), f.readline(), f.read(0)]

    result = await run_input(action, splits(BODY)[split])
    assert_exact_bytes(result)
    assert result == [b"", BODY[:4], BODY[4:9], BODY[9:], b"", b"", b"", b""]


async def test_read_n_waits_for_n_bytes_across_messages() -> None:
    result = await run_input(lambda f: [f.read(5), f.read(5)], [b"ab", b"cd", b"ef", b"gh"])
    assert result == [b"abcde", b"fgh"]


@pytest.mark.parametrize("split", SPLITS)
async def test_readlines_and_iteration(split: str) -> None:
    expected = [b"line one\n", b"line two\n", b"\n", b"last line without newline"]
    result = await run_input(lambda f: f.readlines(), splits(BODY)[split])
    assert_exact_bytes(result)
    assert result == expected
    result = await run_input(list, splits(BODY)[split])
    assert_exact_bytes(result)
    assert result == expected


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize(
    ("hint", "count"),
    [(-1, 4), (0, 4), (None, 4), (1, 1), (9, 1), (10, 2), (18, 2), (19, 3), (20, 4), (10_000, 4)],
)
async def test_readlines_hint_is_a_byte_budget(split: str, hint: int | None, count: int) -> None:
    # Lines are 9, 9, 1 and 25 bytes: stop once the total reaches `hint`.
    lines = [b"line one\n", b"line two\n", b"\n", b"last line without newline"]
    result = await run_input(lambda f: [f.readlines(hint), f.read()], splits(BODY)[split])
    assert result[0] == lines[:count]
    assert result[1] == b"".join(lines[count:])
    assert result == [io.BytesIO(BODY).readlines(hint), b"".join(lines[count:])]


@pytest.mark.parametrize("split", SPLITS)
async def test_readline_with_size_stops_at_size_or_after_newline(split: str) -> None:
    def action(f: Any) -> list[bytes]:
        return [f.readline(5), f.readline(5), f.readline(5), f.readline()]

    result = await run_input(action, splits(b"abcdefgh\n")[split])
    assert_exact_bytes(result)
    assert result == [b"abcde", b"fgh\n", b"", b""]


@pytest.mark.parametrize("split", SPLITS)
async def test_readline_sizes(split: str) -> None:
    def action(f: Any) -> list[bytes]:
        return [
            f.readline(0),
            f.readline(-1),
            f.readline(None),
            f.readline(3),
            f.readline(100),
            f.readline(2),
        ]

    result = await run_input(action, splits(BODY)[split])
    assert result == [b"", b"line one\n", b"line two\n", b"\n", b"last line without newline", b""]


@pytest.mark.parametrize(
    "parts",
    [pytest.param([b""], id="one-empty-message"), pytest.param([b"", b"", b""], id="several-empty-messages")],
)
async def test_empty_body(parts: list[bytes]) -> None:
    def action(f: Any) -> list[Any]:
        return [f.read(), f.read(10), f.readline(), f.readline(3), f.readlines(), list(f), f.read(0)]

    result = await run_input(action, parts)
    assert result == [b"", b"", b"", b"", [], [], b""]
    assert_exact_bytes(result[:4])


# A known length takes the in-memory path up to ``preload_body``, the spooled path up to
# ``spool_body``, the streaming path past both.
PRELOAD = [
    pytest.param({"preload_body": DEFAULT_PRELOAD_BODY}, id="preloaded"),
    pytest.param({"preload_body": 0, "spool_body": DEFAULT_SPOOL_BODY}, id="spooled"),
    pytest.param({"preload_body": 0}, id="streamed"),
]


@pytest.mark.parametrize("preload", PRELOAD)
@pytest.mark.parametrize("split", SPLITS)
async def test_never_reads_past_content_length(split: str, preload: dict[str, Any]) -> None:
    body = b"0123456789abcdef"
    result = await run_input(
        lambda f: [f.read(), f.read(), f.readline()],
        splits(body)[split],
        headers=[(b"content-length", b"10")],
        **preload,
    )
    assert result == [b"0123456789", b"", b""]


@pytest.mark.parametrize("preload", PRELOAD)
@pytest.mark.parametrize("split", SPLITS)
async def test_content_length_caps_every_method(split: str, preload: dict[str, Any]) -> None:
    body = b"ab\ncd\nef\ngh\n"
    headers = [(b"content-length", b"7")]

    async def run(action: Action) -> Any:
        return await run_input(action, splits(body)[split], headers=headers, **preload)

    assert await run(lambda f: f.readlines()) == [b"ab\n", b"cd\n", b"e"]
    assert await run(list) == [b"ab\n", b"cd\n", b"e"]
    assert await run(lambda f: [f.read(5), f.read(5)]) == [b"ab\ncd", b"\ne"]


@pytest.mark.parametrize("preload", PRELOAD)
async def test_content_length_zero_with_body_reads_nothing(preload: dict[str, Any]) -> None:
    result = await run_input(
        lambda f: f.read(), [b"abc", b"def"], headers=[(b"content-length", b"0")], **preload
    )
    assert result == b""


@pytest.mark.parametrize("preload", PRELOAD)
async def test_stream_stops_pulling_at_content_length(preload: dict[str, Any]) -> None:
    # The server keeps offering messages past Content-Length; once the declared length
    # has arrived the adapter stops calling receive() for the body.
    client = Client([b"abc", b"def", b"never", b"more"])
    result = await run_input(
        lambda f: f.read(), [], headers=[(b"content-length", b"6")], client=client, **preload
    )
    assert result == b"abcdef"
    assert len(client.pending) == 2


@pytest.mark.parametrize(
    ("options", "length"),
    [
        # Received whole before the app runs (up to spool_body): its length is known,
        # and given, as waitress does (Django reads no body without CONTENT_LENGTH).
        ({}, "20"),
        # Streamed: nobody knows the length yet; wsgi.input_terminated says to read to EOF.
        ({"preload_body": 0, "spool_body": 0}, None),
    ],
    ids=["received-ahead", "streamed"],
)
async def test_chunked_upload_environ(options: dict[str, Any], length: str | None) -> None:
    seen: dict[str, Any] = {}

    def action(f: InputStream) -> bytes:
        return f.read()

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen["terminated"] = environ.get("wsgi.input_terminated")
        seen["length"] = environ.get("CONTENT_LENGTH")
        seen["body"] = action(environ["wsgi.input"])
        start_response("200 OK", [])
        return []

    client = Client([b"chunk1-", b"chunk2-", b"chunk3"])
    await client.run(WsgiToAsgi(app, **options), http_scope(method="POST"))
    assert seen == {"terminated": True, "length": length, "body": b"chunk1-chunk2-chunk3"}


async def test_random_operations_behave_like_bytesio() -> None:
    rng = random.Random(3333)
    for case in range(150):
        body = bytes(rng.choice(b"ab\n") for _ in range(rng.randrange(0, 40)))
        cuts = sorted(rng.sample(range(len(body) + 1), k=min(len(body) + 1, rng.randrange(0, 6))))
        parts = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)])]
        limit = rng.choice([None, None, rng.randrange(0, len(body) + 1)])
        ops: list[tuple[str, Any]] = []
        for _ in range(rng.randrange(1, 8)):
            kind = rng.choice(["read", "readline", "readlines", "iter"])
            arg = rng.choice([None, -1, 0, 1, 2, 3, 5, 8, 13])
            ops.append((kind, arg))

        def apply(f: Any, ops: list[tuple[str, Any]] = ops) -> list[Any]:
            out: list[Any] = []
            for kind, arg in ops:
                if kind == "read":
                    out.append(f.read(arg))
                elif kind == "readline":
                    out.append(f.readline(arg))
                elif kind == "readlines":
                    out.append(f.readlines(arg))
                else:
                    out.append(next(iter(f), b"<eof>"))
            return out

        expected = apply(io.BytesIO(body if limit is None else body[:limit]))
        headers = [] if limit is None else [(b"content-length", str(limit).encode())]
        got = await run_input(apply, parts, headers=headers)
        assert got == expected, (case, body, parts, limit, ops)
        for item in got:
            assert_exact_bytes(item)


# ---------------------------------------------------------------------------------------
# Streaming: the app runs while the body is still arriving
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "preload"),
    [
        pytest.param([], 0, id="no-length"),
        pytest.param([(b"content-length", b"10")], 9, id="length-past-preload_body"),
    ],
)
async def test_app_sees_first_bytes_before_the_rest_is_sent(
    headers: list[tuple[bytes, bytes]], preload: int
) -> None:
    first_read = threading.Event()
    waited: list[bool] = []

    async def receive_gen() -> Any:
        yield {"type": "http.request", "body": b"", "more_body": True}
        yield {"type": "http.request", "body": b"first", "more_body": True}
        # The rest is only sent once the app has seen the first bytes. An adapter that
        # buffered the whole body before calling the app would time out here.
        waited.append(await anyio.to_thread.run_sync(first_read.wait, 2.0))
        yield {"type": "http.request", "body": b" rest", "more_body": False}
        await anyio.sleep_forever()

    messages = receive_gen()

    async def receive() -> Any:
        return await messages.__anext__()

    def action(f: Any) -> list[bytes]:
        first = f.read(5)
        first_read.set()
        return [first, f.read()]

    results: list[Any] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        results.append(action(environ["wsgi.input"]))
        start_response("200 OK", [])
        return [b"ok"]

    sent: list[Any] = []

    async def send(message: Any) -> None:
        sent.append(message)

    with anyio.fail_after(WAIT):
        adapter = WsgiToAsgi(app, preload_body=preload, spool_body=0)
        await adapter(http_scope(method="POST", headers=[(b"host", b"t"), *headers]), receive, send)
    assert waited == [True]
    assert results == [[b"first", b" rest"]]
    assert sent[-1]["more_body"] is False
    await messages.aclose()


async def test_body_read_ahead_is_bounded() -> None:
    # Only a bounded amount is taken from the server ahead of the app's reads (the
    # adapter reads ahead at most 256 KiB, so that a fast upload needs no round trip
    # per chunk): memory stays bounded and a slow reader slows the client down.
    chunk = b"0123456789" * 6554  # about 64 KiB
    client = Client([chunk] * 40)  # about 2.5 MiB
    calls_after_read: list[int] = []

    def action(f: InputStream) -> bytes:
        data = f.read(15)
        time.sleep(0.2)  # give a read-ahead that ignored its bound time to show it
        calls_after_read.append(client.receive_calls)
        rest = f.read()
        return data + rest[:5] + str(len(rest)).encode()

    result = await run_input(action, [], client=client)
    assert result == b"012345678901234" + b"56789" + str(len(chunk) * 40 - 15).encode()
    assert calls_after_read[0] <= 1 + (256 * 1024) // len(chunk) + 2


async def test_app_that_ignores_the_body_still_completes() -> None:
    client = Client([b"a" * 10, b"b" * 10, b"c" * 10])
    result = await run_input(lambda f: "ignored", [], client=client)
    assert result == "ignored"
    assert client.exchange.body == b"done"
    assert client.exchange.complete


async def test_body_read_from_a_streaming_generator() -> None:
    # The app starts its response before reading the upload (an echo server).
    client = Client([b"ab", b"cd", b"ef"])

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [])
        stream = environ["wsgi.input"]
        yield b"start:"
        while True:
            chunk = stream.read(2)
            if not chunk:
                break
            yield chunk.upper()

    await client.run(WsgiToAsgi(app, preload_body=0, spool_body=0), http_scope(method="POST"), timeout=WAIT)
    assert client.exchange.body == b"start:ABCDEF"
    assert client.exchange.complete


# ---------------------------------------------------------------------------------------
# A client that leaves mid-upload
# ---------------------------------------------------------------------------------------


def leaving_client(*parts: bytes) -> Client:
    messages: list[Any] = [{"type": "http.request", "body": p, "more_body": True} for p in parts]
    return scripted_client([*messages, {"type": "http.disconnect"}])


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda f: f.read(), id="read()"),
        pytest.param(lambda f: f.read(100), id="read(100)"),
        pytest.param(lambda f: f.readline(), id="readline()"),
        pytest.param(lambda f: f.readlines(), id="readlines()"),
        pytest.param(list, id="iter"),
    ],
)
async def test_disconnect_mid_upload_raises_client_disconnected(call: Action) -> None:
    client = leaving_client(b"partial ", b"upload")
    with pytest.raises(bridge.ClientDisconnected) as info:
        await run_input(call, [], client=client)
    assert isinstance(info.value, OSError)
    # The client is gone: nothing is sent, and the adapter returned quietly.
    assert client.exchange.messages == []


async def test_buffered_bytes_are_returned_before_the_disconnect_is_reported() -> None:
    def action(f: Any) -> list[Any]:
        out: list[Any] = [f.read(3), f.read(3)]
        try:
            f.read(1)
        except bridge.ClientDisconnected as exc:
            out.append(exc)
        return out

    result = await run_input(action, [], client=leaving_client(b"abc", b"def"))
    assert result[:2] == [b"abc", b"def"]
    assert isinstance(result[2], bridge.ClientDisconnected)


async def test_disconnect_mid_upload_unhandled_by_app_ends_quietly() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [])
        environ["wsgi.input"].read()  # raises ClientDisconnected, not caught
        return [b"never"]  # pragma: no cover

    client = leaving_client(b"abc")
    await client.run(WsgiToAsgi(app, preload_body=0, spool_body=0), http_scope(method="POST"), timeout=WAIT)
    assert client.exchange.messages == []


async def test_disconnect_mid_upload_inside_streaming_generator_ends_quietly() -> None:
    closed: list[int] = []

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [])
        try:
            yield b"first"
            yield environ["wsgi.input"].read()
        finally:
            closed.append(1)

    client = leaving_client(b"abc")
    await client.run(WsgiToAsgi(app, preload_body=0, spool_body=0), http_scope(method="POST"), timeout=WAIT)
    assert closed == [1]
    assert [m.get("body") for m in client.exchange.bodies] == [b"first"]
    assert not client.exchange.complete


async def test_silent_disconnect_after_streamed_upload_stops_endless_response() -> None:
    # The app reads the whole streamed upload, then streams forever; on a spec-2.3
    # server only receive() tells that the client left.
    closed = threading.Event()

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        body = environ["wsgi.input"].read()
        start_response("200 OK", [])
        try:
            while True:
                yield body
        finally:
            closed.set()

    client = Client([b"up", b"load"], silent_after=4)
    scope = http_scope(method="POST", asgi={"version": "3.0", "spec_version": "2.3"})
    await client.run(WsgiToAsgi(app, preload_body=0, spool_body=0), scope, timeout=3)
    assert closed.is_set()
    assert client.exchange.bodies[0]["body"] == b"upload"


async def test_unknown_message_during_body_raises() -> None:
    client = scripted_client(
        [{"type": "http.request", "body": b"abc", "more_body": True}, {"type": "lifespan.startup"}]
    )
    with pytest.raises(bridge.InvalidScopeError):
        await run_input(lambda f: f.read(), [], client=client)


# ---------------------------------------------------------------------------------------
# A body of known length up to preload_body: read in the loop before the app runs
# ---------------------------------------------------------------------------------------


def length(size: int) -> list[tuple[bytes, bytes]]:
    return [(b"content-length", str(size).encode())]


async def test_known_length_body_is_read_whole_before_the_app_runs() -> None:
    parts = [b"a" * 1000, b"b" * 1000, b"c" * 1000]
    client = Client(parts)
    seen: list[Any] = []

    def action(f: InputStream) -> bytes:
        seen.append((type(f), client.receive_calls))
        return f.read()

    assert await run_input(action, [], headers=length(3000), client=client) == b"".join(parts)
    # All three messages were taken before the app ran, and the app reads from memory.
    assert seen == [(io.BytesIO, 3)]


async def test_body_longer_than_preload_body_streams() -> None:
    client = Client([b"abc", b"def"])
    seen: list[int] = []

    def action(f: InputStream) -> bytes:
        seen.append(client.receive_calls)
        return f.read()

    assert await run_input(action, [], headers=length(6), client=client, preload_body=5) == b"abcdef"
    assert seen == [1]  # the app started after the first message only


@pytest.mark.parametrize("preload", PRELOAD)
async def test_body_shorter_than_its_length_gives_what_came(preload: dict[str, Any]) -> None:
    # A server that ends the body early (it should not): the app gets what arrived.
    result = await run_input(lambda f: [f.read(), f.read()], [b"abc", b"de"], headers=length(10), **preload)
    assert result == [b"abcde", b""]


async def test_disconnect_during_preload_never_runs_the_app(caplog: pytest.LogCaptureFixture) -> None:
    called: list[int] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:  # pragma: no cover
        called.append(1)
        start_response("200 OK", [])
        return [b"never"]

    client = leaving_client(b"partial ", b"upload")
    scope = http_scope(method="POST", headers=[(b"host", b"t"), *length(100)])
    with caplog.at_level(logging.DEBUG, logger="bridge.wsgi_to_asgi"):
        await client.run(WsgiToAsgi(app), scope, timeout=WAIT)
    assert called == []
    assert client.exchange.messages == []
    assert "client disconnected during its upload" in caplog.text


async def test_unknown_message_during_preload_raises() -> None:
    client = scripted_client(
        [{"type": "http.request", "body": b"abc", "more_body": True}, {"type": "lifespan.startup"}]
    )
    with pytest.raises(bridge.InvalidScopeError, match=r"lifespan\.startup"):
        await run_input(lambda f: f.read(), [], client=client, headers=length(10))


async def test_a_slow_upload_holds_no_thread() -> None:
    # With one thread, a request whose upload is still coming in does not keep a
    # second request from being served: the body is awaited in the loop, not a thread.
    more = anyio.Event()

    async def slow_receive() -> Any:
        if not started:
            started.append(1)
            return {"type": "http.request", "body": b"half", "more_body": True}
        if len(started) == 1:
            started.append(2)
            await more.wait()
            return {"type": "http.request", "body": b"-rest", "more_body": False}
        await anyio.sleep_forever()

    started: list[int] = []
    slow_sent: list[Any] = []

    async def slow_send(message: Any) -> None:
        slow_sent.append(message)

    def echo(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        body = environ["wsgi.input"].read()
        start_response("200 OK", [])
        return [body]

    adapter = WsgiToAsgi(echo, max_threads=1)
    post = http_scope(method="POST", headers=[(b"host", b"t"), *length(9)])
    with anyio.fail_after(WAIT):
        async with anyio.create_task_group() as tg:
            tg.start_soon(adapter, post, slow_receive, slow_send)
            while len(started) < 2:
                await anyio.sleep(0.001)
            fast = await Client([b"quick"]).run(adapter, http_scope(method="POST"))
            assert fast.body == b"quick"
            assert slow_sent == []
            more.set()
    assert slow_sent[-1]["body"] == b"half-rest"
