"""Ill-typed input, in both directions (issue 10, item 6).

A scope, environ or message field of the wrong type is a bug in the server or in
middleware in front of the adapter. It must raise bridge's documented error naming
the field (InvalidScopeError), never an AttributeError or TypeError from deep
inside, and never reach the app. And whatever Content-Length bridge reads the body
by is the one the app sees.
"""

from __future__ import annotations

import io
import re
from typing import Any, Callable, Iterator, Literal, cast

import pytest

import bridge
from bridge import AsgiToWsgi, BadRequestError, InvalidScopeError, WsgiToAsgi
from bridge._types import Message, Scope
from bridge.environ import build_environ, build_scope, environ_problem, scope_problem, wsgi_input_bytes
from bridge.http import parse_content_length, parse_http_request

from .asgi_apps import WAIT, BodyRecorder, ScopeRecorder, call, make_environ
from .asgi_driver import Client, http_scope
from .test_scope import environ as plain_environ
from .wsgi_apps import scripted_client

ERRORS = object()


def case_id(value: Any) -> str:
    """A test id without memory addresses."""
    return re.sub(r" at 0x[0-9a-f]+", "", repr(value))[:40]


def scope_with(key: str, value: Any) -> Scope:
    scope = http_scope()
    scope[key] = value
    return scope


def environ_with(**kw: Any) -> dict[str, Any]:
    """A gunicorn-like environ (test_scope's, with RAW_URI and wsgi.input_terminated);
    keys given as None are removed."""
    return plain_environ(**{"RAW_URI": "/", "wsgi.input_terminated": True, **kw})


# =========================================================================================
# ASGI scope -> environ (WsgiToAsgi): every field build_environ reads
# =========================================================================================

SCOPE_CASES: list[tuple[str, Any]] = [
    ("method", b"GET"),
    ("method", 1),
    ("method", None),
    ("scheme", b"http"),
    ("scheme", ["http"]),
    ("path", b"/x"),
    ("path", None),
    ("raw_path", "/x"),
    ("raw_path", 5),
    ("raw_path", memoryview(b"/x")),
    ("query_string", "a=1"),
    ("query_string", 5),
    ("query_string", memoryview(b"a=1")),
    ("root_path", b"/app"),
    ("root_path", 5),
    ("http_version", b"1.1"),
    ("http_version", 1.1),
    ("http_version", 2),
    ("http_version", ["1.1"]),
    ("client", ("1.2.3.4",)),
    ("client", "ab"),
    ("client", (b"1.2.3.4", 5)),
    ("client", ("1.2.3.4", "x5")),
    ("client", ("1.2.3.4", True)),
    ("client", 5),
    ("server", ("example.com", "")),
    ("server", (b"example.com", 80)),
    ("server", "ab"),
    ("server", ("a", "b", "c")),
    ("server", 5),
    ("extensions", ["tls"]),
    ("extensions", 5),
]


@pytest.mark.parametrize(("key", "value"), SCOPE_CASES, ids=case_id)
def test_ill_typed_scope_field_is_named(key: str, value: Any) -> None:
    with pytest.raises(InvalidScopeError, match=re.escape(f"scope[{key!r}]")):
        build_environ(scope_with(key, value), errors=ERRORS)


@pytest.mark.parametrize(
    "headers",
    [
        5,
        [("host", b"x")],
        [(b"host", "x")],
        [(b"host", None)],
        [(b"host", 5)],
        [(b"host",)],
        [(b"host", b"x", b"y")],
        [b"ab"],
        ["ab"],
        [(bytearray(b"host"), b"x")],
        [(b"x-a", memoryview(b"1"))],
        [(b"host", b"x"), (None, b"y")],
    ],
    ids=case_id,
)
def test_ill_typed_header_is_named(headers: Any) -> None:
    with pytest.raises(InvalidScopeError, match=re.escape("scope['headers']")):
        build_environ(scope_with("headers", headers), errors=ERRORS)


def test_ill_typed_header_names_its_index() -> None:
    with pytest.raises(InvalidScopeError, match=re.escape("scope['headers'][1]")):
        build_environ(scope_with("headers", [(b"host", b"x"), (b"x-a", "str")]), errors=ERRORS)


@pytest.mark.parametrize(
    "tls",
    [
        "x",
        {"tls_version": "TLSv1.3"},
        {"server_cert": b"PEM"},
        {"client_cert_chain": "PEM"},
        {"client_cert_chain": [b"PEM"]},
        {"client_cert_chain": ["PEM"], "client_cert_error": 5},
        {"client_cert_name": b"CN=x"},
    ],
    ids=repr,
)
def test_ill_typed_tls_extension_is_named(tls: Any) -> None:
    scope = http_scope(scheme="https", extensions={"tls": tls})
    with pytest.raises(InvalidScopeError, match=re.escape("scope['extensions']['tls']")):
        build_environ(scope, errors=ERRORS)


@pytest.mark.parametrize("key", ["method", "path"])
def test_missing_scope_field_is_named(key: str) -> None:
    scope = http_scope()
    del scope[key]
    with pytest.raises(InvalidScopeError, match=f"no '{key}'"):
        build_environ(scope, errors=ERRORS)


def test_scope_that_is_not_a_dict() -> None:
    with pytest.raises(InvalidScopeError, match="must be a dict"):
        build_environ([("method", "GET")], errors=ERRORS)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("raw_path", None),
        ("raw_path", bytearray(b"/")),
        ("query_string", None),
        ("query_string", bytearray(b"a=1")),
        ("root_path", None),
        ("http_version", None),
        ("http_version", "2"),
        ("http_version", "3"),
        ("scheme", None),
        ("headers", None),
        ("headers", [(b"x-a", bytearray(b"1")), [b"x-b", b"2"]]),
        ("client", None),
        ("client", ["1.2.3.4", 5]),
        ("client", ("1.2.3.4", None)),
        ("client", ("1.2.3.4", "5")),  # granian sends ports as text
        ("server", None),
        ("server", ("127.0.0.1", "8000")),
        ("server", ("/run/app.sock", None)),
        ("extensions", None),
        ("extensions", {}),
        ("extensions", {"tls": None}),
        ("extensions", {"http.response.pathsend": {}}),
        ("state", {"anything": object()}),
        ("asgi", {"version": "3.0"}),
    ],
    ids=case_id,
)
def test_well_typed_scope_variants_are_accepted(key: str, value: Any) -> None:
    env = build_environ(scope_with(key, value), errors=ERRORS)
    for name, text in env.items():
        if name.isupper():
            assert type(text) is str, name


def test_valid_tls_extension_is_accepted() -> None:
    tls = {
        "server_cert": "PEM-S",
        "client_cert_chain": ["PEM-C"],
        "client_cert_name": "CN=x",
        "client_cert_error": None,
        "tls_version": 0x0304,
        "cipher_suite": 0x1301,
    }
    env = build_environ(http_scope(scheme="https", extensions={"tls": tls}), errors=ERRORS)
    assert env["SSL_CLIENT_CERT"] == "PEM-C" and env["SSL_PROTOCOL"] == "TLSv1.3"


def test_scope_problem_is_none_for_a_good_scope() -> None:
    assert scope_problem(http_scope()) is None


# =========================================================================================
# WSGI environ -> scope (AsgiToWsgi): every key build_scope reads
# =========================================================================================

ENVIRON_CASES: list[tuple[str, Any]] = [
    ("REQUEST_METHOD", b"GET"),
    ("REQUEST_METHOD", 1),
    ("SCRIPT_NAME", b"/app"),
    ("SCRIPT_NAME", 5),
    ("PATH_INFO", b"/x"),
    ("PATH_INFO", 5),
    ("QUERY_STRING", b"a=1"),
    ("QUERY_STRING", 5),
    ("SERVER_NAME", b"example.com"),
    ("SERVER_NAME", 5),
    ("SERVER_PORT", b"80"),
    ("SERVER_PORT", 80.0),
    ("SERVER_PORT", [80]),
    ("SERVER_PROTOCOL", b"HTTP/1.1"),
    ("SERVER_PROTOCOL", 1.1),
    ("SERVER_PROTOCOL", ["HTTP/1.1"]),
    ("REMOTE_ADDR", b"10.1.2.3"),
    ("REMOTE_ADDR", 5),
    ("REMOTE_PORT", b"40000"),
    ("REMOTE_PORT", 4.0),
    ("REMOTE_PORT", True),
    ("CONTENT_TYPE", b"text/plain"),
    ("CONTENT_TYPE", 5),
    ("CONTENT_LENGTH", 3),
    ("CONTENT_LENGTH", b"3"),
    ("HTTP_X_RETRIES", 3),
    ("HTTP_HOST", b"example.com"),
    ("HTTP_COOKIE", ["a=1"]),
    ("RAW_URI", b"/"),
    ("REQUEST_URI", 5),
    ("wsgi.url_scheme", b"http"),
    ("wsgi.url_scheme", 1),
]


@pytest.mark.parametrize(("key", "value"), ENVIRON_CASES, ids=case_id)
def test_ill_typed_environ_value_is_named(key: str, value: Any) -> None:
    env = environ_with(**{key: value})
    if key == "REQUEST_URI":
        del env["RAW_URI"]
    with pytest.raises(InvalidScopeError, match=re.escape(f"environ's {key!r} must be")):
        build_scope(env)


@pytest.mark.parametrize("key", [b"HTTP_X_A", 5, ("HTTP_X_A",), None])
def test_non_str_environ_key_is_named(key: Any) -> None:
    env = environ_with()
    env[key] = "1"
    with pytest.raises(InvalidScopeError, match=re.escape(f"not a str: {type(key).__name__} {key!r}")):
        build_scope(env)


def test_non_latin1_environ_key_is_named() -> None:
    env = environ_with()
    env["HTTP_X_\u20ac"] = "1"
    with pytest.raises(InvalidScopeError, match=re.escape("'HTTP_X_\u20ac' holds text that is not latin-1")):
        build_scope(env)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("SCRIPT_NAME", None),
        ("PATH_INFO", None),
        ("QUERY_STRING", None),
        ("wsgi.url_scheme", None),
        ("SERVER_PORT", 8080),  # PEP 3333 says str; an int is harmless, and taken
        ("REMOTE_PORT", 40000),  # werkzeug's dev server sets an int
        ("SERVER_PORT", "not-a-number"),  # a value, not a type: port None
        ("SERVER_PROTOCOL", None),
        ("SERVER_PROTOCOL", "SPDY/3"),  # odd CGI values never fail
        ("RAW_URI", None),
        ("CONTENT_TYPE", ""),
        ("CONTENT_LENGTH", ""),
        ("HTTP_X_A", type("Text", (str,), {})("1")),  # a str subclass is a str
    ],
    ids=case_id,
)
def test_well_typed_environ_variants_are_accepted(key: str, value: Any) -> None:
    scope = build_scope(environ_with(**{key: value}))
    assert type(scope["method"]) is str and type(scope["query_string"]) is bytes
    for name, header in scope["headers"]:
        assert type(name) is bytes and type(header) is bytes


def test_environ_problem_is_none_for_a_good_environ() -> None:
    assert environ_problem(environ_with()) is None


def test_environ_that_is_not_a_dict() -> None:
    with pytest.raises(InvalidScopeError, match="must be a dict"):
        build_scope([("REQUEST_METHOD", "GET")])  # type: ignore[arg-type]


def test_bad_content_length_value_is_still_a_bad_request() -> None:
    # A value the client sent (a lenient server passes it on) is the client's error: 400.
    for value in ("abc", "-1", "+3", "3\n", "\xa03", "3,3"):
        with pytest.raises(BadRequestError, match="CONTENT_LENGTH"):
            build_scope(environ_with(CONTENT_LENGTH=value))


# =========================================================================================
# Content-Length with whitespace: the app sees what bridge reads the body by
# =========================================================================================


def test_parse_content_length_strips_only_ows() -> None:
    assert parse_content_length(" 3 ") == 3
    assert parse_content_length("\t3\t") == 3
    for value in ("3\n", "\x0b3", "\xa03", "3\u2003", ""):
        with pytest.raises(ValueError):
            parse_content_length(value)


@pytest.mark.parametrize("value", [" 3 ", "3 ", "\t3"])
def test_scope_content_length_is_stripped(value: str) -> None:
    scope = build_scope(environ_with(CONTENT_LENGTH=value))
    assert dict(scope["headers"])[b"content-length"] == b"3"


# =========================================================================================
# The pure helpers for bodies
# =========================================================================================


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ({"type": "http.request"}, (b"", False)),
        ({"type": "http.request", "body": b"abc", "more_body": True}, (b"abc", True)),
        ({"type": "http.request", "body": bytearray(b"abc")}, (b"abc", False)),
        ({"type": "http.request", "body": memoryview(b"abc"), "more_body": False}, (b"abc", False)),
    ],
)
def test_parse_http_request(message: Message, expected: tuple[bytes, bool]) -> None:
    body, more = parse_http_request(message)
    assert (body, more) == expected
    assert type(body) is bytes


@pytest.mark.parametrize(
    ("message", "field"),
    [
        ({"type": "http.request", "body": "abc"}, "'body'"),
        ({"type": "http.request", "body": None}, "'body'"),
        ({"type": "http.request", "body": [97]}, "'body'"),
        ({"type": "http.request", "body": b"", "more_body": 1}, "'more_body'"),
        ({"type": "http.request", "body": b"", "more_body": "false"}, "'more_body'"),
        ({"type": "http.request", "body": b"", "more_body": None}, "'more_body'"),
        (["http.request"], "must be a dict"),
    ],
    ids=repr,
)
def test_parse_http_request_names_the_field(message: Any, field: str) -> None:
    with pytest.raises(InvalidScopeError, match=field):
        parse_http_request(message)


def test_wsgi_input_bytes() -> None:
    assert wsgi_input_bytes(bytearray(b"ab")) == b"ab"
    assert type(wsgi_input_bytes(memoryview(b"ab"))) is bytes
    for bad in ("ab", None, 5, [97]):
        with pytest.raises(InvalidScopeError, match=re.escape("'wsgi.input'.read() must return bytes")):
            wsgi_input_bytes(bad)


# =========================================================================================
# WsgiToAsgi, through the in-memory ASGI server, on asyncio and trio
# =========================================================================================


class RecordingApp:
    """A WSGI app that records its environ and what wsgi.input.read() returned."""

    def __init__(self) -> None:
        self.calls = 0
        self.environ: dict[str, Any] = {}
        self.reads: list[Any] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        self.calls += 1
        self.environ = dict(environ)
        self.reads.append(environ["wsgi.input"].read())
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]


async def run_expecting(app: Any, client: Client, scope: Scope, match: str) -> None:
    with pytest.raises(InvalidScopeError, match=match):
        await client.run(app, scope, timeout=WAIT)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("message", "field"),
    [
        ({"type": "http.request", "body": "abc", "more_body": False}, "'body'"),
        ({"type": "http.request", "body": None}, "'body'"),
        ({"type": "http.request", "body": b"abc", "more_body": "no"}, "'more_body'"),
        ({"type": "http.request", "body": b"abc", "more_body": 0}, "'more_body'"),
        (["http.request"], "dict"),
        (None, "dict"),
    ],
    ids=repr,
)
async def test_w2a_ill_typed_first_message(message: Any, field: str) -> None:
    app = RecordingApp()
    client = scripted_client([message])
    await run_expecting(WsgiToAsgi(app), client, http_scope(), field)
    assert app.calls == 0
    assert client.exchange.messages == []


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("second", "field"),
    [
        ({"type": "http.request", "body": "def", "more_body": False}, "'body'"),
        ({"type": "http.request", "body": b"def", "more_body": "no"}, "'more_body'"),
        ("http.request", "dict"),
    ],
    ids=repr,
)
async def test_w2a_ill_typed_message_while_preloading(second: Any, field: str) -> None:
    # Content-Length 6, within preload_body: the adapter reads the rest in the loop.
    app = RecordingApp()
    client = scripted_client([{"type": "http.request", "body": b"abc", "more_body": True}, second])
    scope = http_scope(method="POST", headers=[(b"host", b"x"), (b"content-length", b"6")])
    await run_expecting(WsgiToAsgi(app), client, scope, field)
    assert app.calls == 0
    assert client.exchange.messages == []


@pytest.mark.anyio
@pytest.mark.parametrize("body", [bytearray(b"abc"), memoryview(b"abc")], ids=["bytearray", "memoryview"])
async def test_w2a_bytes_like_body_is_taken_as_bytes(body: Any) -> None:
    app = RecordingApp()
    client = scripted_client([{"type": "http.request", "body": body, "more_body": False}])
    result = await client.run(WsgiToAsgi(app), http_scope(method="POST"), timeout=WAIT)
    assert result.status == 200
    assert app.reads == [b"abc"] and type(app.reads[0]) is bytes


@pytest.mark.anyio
async def test_w2a_bytes_like_body_while_preloading() -> None:
    app = RecordingApp()
    client = scripted_client(
        [
            {"type": "http.request", "body": b"abc", "more_body": True},
            {"type": "http.request", "body": bytearray(b"def"), "more_body": False},
        ]
    )
    scope = http_scope(method="POST", headers=[(b"host", b"x"), (b"content-length", b"6")])
    result = await client.run(WsgiToAsgi(app), scope, timeout=WAIT)
    assert result.status == 200
    assert app.reads == [b"abcdef"] and type(app.reads[0]) is bytes


@pytest.mark.anyio
async def test_w2a_ill_typed_streamed_body_never_reaches_the_app() -> None:
    app = RecordingApp()
    client = scripted_client(
        [
            {"type": "http.request", "body": b"abc", "more_body": True},
            {"type": "http.request", "body": "def", "more_body": False},
        ]
    )
    scope = http_scope(method="POST", headers=[(b"host", b"x"), (b"content-length", b"6")])
    # preload_body=0: the body streams to wsgi.input as the app reads it.
    await run_expecting(WsgiToAsgi(app, preload_body=0), client, scope, "'body'")
    assert all(type(data) is bytes for data in app.reads)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("key", "value"),
    [("query_string", "a=1"), ("client", ("1.2.3.4", "x5")), ("headers", [("host", b"x")])],
    ids=repr,
)
async def test_w2a_ill_typed_scope_raises_before_anything_runs(key: str, value: Any) -> None:
    app = RecordingApp()
    client = Client()
    await run_expecting(WsgiToAsgi(app), client, scope_with(key, value), re.escape(key))
    assert app.calls == 0
    assert client.exchange.messages == []
    assert client.receive_calls == 0


@pytest.mark.anyio
@pytest.mark.parametrize("preload_body", [0, 1 << 20])
@pytest.mark.parametrize("value", [b" 3 ", b"3 ", b"\t3"])
async def test_w2a_content_length_with_ows_reaches_the_app_stripped(value: bytes, preload_body: int) -> None:
    app = RecordingApp()
    client = Client(b"abcdef")
    scope = http_scope(method="POST", headers=[(b"host", b"x"), (b"content-length", value)])
    result = await client.run(WsgiToAsgi(app, preload_body=preload_body), scope, timeout=WAIT)
    assert result.status == 200
    assert app.environ["CONTENT_LENGTH"] == "3"
    assert app.reads == [b"abc"]


@pytest.mark.anyio
async def test_w2a_bad_content_length_is_still_a_400() -> None:
    app = RecordingApp()
    scope = http_scope(method="POST", headers=[(b"host", b"x"), (b"content-length", b"3\x0b")])
    result = await Client(b"abc").run(WsgiToAsgi(app), scope, timeout=WAIT)
    assert result.status == 400
    assert app.calls == 0


# =========================================================================================
# AsgiToWsgi, called as a WSGI app with a hand-built environ, on asyncio and trio
# =========================================================================================


@pytest.fixture(params=["asyncio", "trio"])
def backend(request: pytest.FixtureRequest) -> Literal["asyncio", "trio"]:
    return cast(Literal["asyncio", "trio"], str(request.param))


@pytest.fixture
def make_adapter(backend: Literal["asyncio", "trio"]) -> Iterator[Callable[..., AsgiToWsgi]]:
    adapters: list[AsgiToWsgi] = []

    def make(app: Any, **kw: Any) -> AsgiToWsgi:
        adapter = AsgiToWsgi(app, lifespan="off", backend=backend, **kw)
        adapters.append(adapter)
        return adapter

    yield make
    for adapter in adapters:
        adapter.close()


class StrInput:
    """A wsgi.input that breaks PEP 3333: read() returns str."""

    def __init__(self, data: str) -> None:
        self.data = data

    def read(self, size: int = -1) -> str:
        if size < 0:
            size = len(self.data)
        chunk, self.data = self.data[:size], self.data[size:]
        return chunk


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("HTTP_X_RETRIES", 3),
        ("QUERY_STRING", b"a=1"),
        ("PATH_INFO", b"/x"),
        ("REQUEST_METHOD", b"GET"),
        ("SERVER_PORT", 80.0),
        ("REMOTE_ADDR", b"127.0.0.1"),
        ("CONTENT_LENGTH", 3),
        ("wsgi.url_scheme", b"http"),
        ("PATH_INFO", "/caf\u20ac"),
    ],
    ids=repr,
)
def test_a2w_ill_typed_environ_raises_naming_the_key(
    make_adapter: Callable[..., AsgiToWsgi], key: str, value: Any
) -> None:
    recorder = ScopeRecorder()
    adapter = make_adapter(recorder)
    environ = make_environ(**{key: value})
    with pytest.raises(InvalidScopeError, match=re.escape(repr(key))):
        call(adapter, environ)
    assert recorder.scopes == []


def test_a2w_non_str_environ_key(make_adapter: Callable[..., AsgiToWsgi]) -> None:
    recorder = ScopeRecorder()
    environ = make_environ()
    environ[b"HTTP_X_A"] = "1"  # type: ignore[index]
    with pytest.raises(InvalidScopeError, match="key that is not a str"):
        call(make_adapter(recorder), environ)
    assert recorder.scopes == []


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        ({"wsgi.input": StrInput("abc"), "CONTENT_LENGTH": "3"}, "'wsgi.input'.read() must return bytes"),
        ({"wsgi.input": b"abc", "CONTENT_LENGTH": "3"}, "'wsgi.input' must be a stream with read()"),
        ({"wsgi.input": None, "CONTENT_LENGTH": "3"}, "'wsgi.input' must be a stream with read()"),
        ({"wsgi.input_terminated": "yes"}, "'wsgi.input_terminated' must be a bool"),
        ({"wsgi.input_terminated": 1}, "'wsgi.input_terminated' must be a bool"),
    ],
    ids=["str-read", "bytes-input", "no-input", "terminated-str", "terminated-int"],
)
def test_a2w_ill_typed_input_before_the_app_runs(
    make_adapter: Callable[..., AsgiToWsgi], extra: dict[str, Any], match: str
) -> None:
    recorder = BodyRecorder()
    environ = make_environ(method="POST", **extra)
    with pytest.raises(InvalidScopeError, match=re.escape(match)):
        call(make_adapter(recorder), environ)
    assert recorder.messages == []


@pytest.mark.parametrize("terminated", [False, True])
def test_a2w_str_from_a_streamed_input_raises_from_receive(
    make_adapter: Callable[..., AsgiToWsgi], terminated: bool
) -> None:
    # Not preloaded (preload_body=0, or no CONTENT_LENGTH): the app's receive() raises
    # InvalidScopeError naming wsgi.input; the app lets it through, so the WSGI server
    # gets it from the call (500, logged), and nothing hangs.
    received: list[Any] = []
    raised: list[BaseException] = []

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        try:
            received.append(await receive())
        except BaseException as exc:
            raised.append(exc)
            raise

    extra: dict[str, Any] = {"wsgi.input": StrInput("abc")}
    if terminated:
        extra["wsgi.input_terminated"] = True
    else:
        extra["CONTENT_LENGTH"] = "3"
    environ = make_environ(method="POST", **extra)
    adapter = make_adapter(app, preload_body=0)
    with pytest.raises(InvalidScopeError, match=re.escape("'wsgi.input'.read() must return bytes")):
        call(adapter, environ)
    assert received == []
    assert len(raised) == 1 and isinstance(raised[0], InvalidScopeError)


def test_a2w_bytes_like_input_is_taken(make_adapter: Callable[..., AsgiToWsgi]) -> None:
    class ByteArrayInput(io.BytesIO):
        def read(self, size: int | None = -1) -> bytearray:  # type: ignore[override]
            return bytearray(super().read(size))

    for preload in (0, 1 << 20):
        recorder = BodyRecorder()
        extra: dict[str, Any] = {"wsgi.input": ByteArrayInput(b"abc"), "CONTENT_LENGTH": "3"}
        environ = make_environ(method="POST", **extra)
        response = call(make_adapter(recorder, preload_body=preload), environ)
        assert response.status.startswith("200")
        assert recorder.received == b"abc"
        assert all(type(m.get("body", b"")) is bytes for m in recorder.messages)


@pytest.mark.parametrize("preload", [0, 1 << 20])
@pytest.mark.parametrize("value", [" 3 ", "3 ", "\t3"])
def test_a2w_content_length_with_ows_reaches_the_app_stripped(
    make_adapter: Callable[..., AsgiToWsgi], value: str, preload: int
) -> None:
    seen: dict[str, Any] = {}

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        seen["headers"] = dict(scope["headers"])
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        seen["body"] = b"".join(chunks)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    extra: dict[str, Any] = {"wsgi.input": io.BytesIO(b"abcdef"), "CONTENT_LENGTH": value}
    environ = make_environ(method="POST", **extra)
    response = call(make_adapter(app, preload_body=preload), environ)
    assert response.status.startswith("200")
    assert seen["headers"][b"content-length"] == b"3"
    assert seen["body"] == b"abc"


def test_a2w_bad_content_length_is_still_a_400(make_adapter: Callable[..., AsgiToWsgi]) -> None:
    recorder = ScopeRecorder()
    extra: dict[str, Any] = {"wsgi.input": io.BytesIO(b"abc"), "CONTENT_LENGTH": "3\n"}
    environ = make_environ(method="POST", **extra)
    response = call(make_adapter(recorder), environ)
    assert response.status.startswith("400")
    assert recorder.scopes == []


def test_the_error_is_a_documented_bridge_error() -> None:
    assert bridge.InvalidScopeError is InvalidScopeError
    assert issubclass(InvalidScopeError, (bridge.BridgeError, ValueError))
