"""The pure environ -> scope translation (AsgiToWsgi) and the A2W response rules:
tables of cases and property tests. No threads, no event loop."""

from __future__ import annotations

import io
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.environ import build_scope, http_version_from_protocol
from bridge.errors import BadRequestError, InvalidScopeError, ResponseError
from bridge.http import decode_asgi_headers, decode_asgi_response_headers, parse_asgi_status

LATIN1 = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0xFF))


def environ(**kw: Any) -> dict[str, Any]:
    """A minimal CGI-style environ, as a WSGI server builds it; ``None`` removes a key."""
    env: dict[str, Any] = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": "/",
        "QUERY_STRING": "",
        "SERVER_NAME": "example.com",
        "SERVER_PORT": "8080",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "10.1.2.3",
        "REMOTE_PORT": "40000",
        "HTTP_HOST": "example.com:8080",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": io.StringIO(),
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    for key, value in kw.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


# -- the whole scope -----------------------------------------------------------------------


def test_basic_scope() -> None:
    env = environ(PATH_INFO="/a/b", QUERY_STRING="x=1", REQUEST_METHOD="post")
    scope = build_scope(env)
    assert scope["type"] == "http"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert scope["http_version"] == "1.1"
    assert scope["method"] == "POST"
    assert scope["scheme"] == "http"
    assert scope["path"] == "/a/b"
    assert scope["root_path"] == ""
    assert scope["query_string"] == b"x=1"
    assert scope["server"] == ["example.com", 8080]
    assert scope["client"] == ["10.1.2.3", 40000]
    assert scope["extensions"] == {"http.response.pathsend": {}}  # the adapter sends the file
    assert scope["wsgi_environ"] is env
    assert "state" not in scope  # only the adapter adds it, and only with lifespan
    assert (b"host", b"example.com:8080") in scope["headers"]
    for name, value in scope["headers"]:
        assert type(name) is bytes and type(value) is bytes
        assert name == name.lower()


def test_https_scheme() -> None:
    assert build_scope(environ(**{"wsgi.url_scheme": "https"}))["scheme"] == "https"


def test_missing_scheme_defaults_to_http() -> None:
    assert build_scope(environ(**{"wsgi.url_scheme": None}))["scheme"] == "http"


def test_missing_method_is_bad_request() -> None:
    with pytest.raises(BadRequestError):
        build_scope(environ(REQUEST_METHOD=None))


# -- http_version ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("protocol", "version"),
    [
        ("HTTP/1.0", "1.0"),
        ("HTTP/1.1", "1.1"),
        ("HTTP/2.0", "2"),  # row 39
        ("HTTP/2", "2"),
        ("HTTP/3", "3"),
        ("HTTP/3.0", "3"),
        ("http/1.1", "1.1"),  # the prefix is matched without regard to case
        ("Http/2.0", "2"),
        ("HTTP/0.9", "1.0"),
        ("HTTP/1.1 ", "1.1"),
        ("garbage", "1.1"),  # unparsable: 1.1
        ("HTTP/9.9", "1.1"),
        ("HTTP/", "1.1"),
        (None, "1.0"),  # missing: 1.0
    ],
)
def test_http_version_from_protocol(protocol: str | None, version: str) -> None:
    assert http_version_from_protocol(protocol) == version


@pytest.mark.parametrize(("protocol", "version"), [("HTTP/2.0", "2"), ("HTTP/1.0", "1.0"), (None, "1.0")])
def test_http_version_in_scope(protocol: str | None, version: str) -> None:
    assert build_scope(environ(SERVER_PROTOCOL=protocol))["http_version"] == version


@given(st.one_of(st.none(), st.text(), LATIN1, st.integers(), st.binary()))
def test_http_version_never_fails(protocol: Any) -> None:
    assert http_version_from_protocol(protocol) in {"1.0", "1.1", "2", "3"}


# -- paths -------------------------------------------------------------------------------------

# (SCRIPT_NAME, PATH_INFO, RAW_URI or REQUEST_URI) -> (root_path, path, raw_path)
PATH_CASES = [
    ("", "/", "/", "", "/", b"/"),
    ("", "", None, "", "/", None),  # both empty: path "/"
    ("/app", "", "/app", "/app", "/app", b"/app"),
    ("/app", "/x", "/app/x", "/app", "/app/x", b"/app/x"),  # path includes root_path
    ("/app", "/x/", "/app/x/?q=1", "/app", "/app/x/", b"/app/x/"),  # query cut off
    ("", "/a/b", "/a%2Fb", "", "/a/b", b"/a%2Fb"),  # row 16: raw_path keeps %2F
    ("", "/a/b", "/a%2fb?x=%2F", "", "/a/b", b"/a%2fb"),
    ("", "/caf\xc3\xa9", "/caf%C3%A9", "", "/café", b"/caf%C3%A9"),  # row 17
    ("/caf\xc3\xa9", "/x", "/caf%C3%A9/x", "/café", "/café/x", b"/caf%C3%A9/x"),
    ("", "/\xff", "/%FF", "", "/\ufffd", b"/%FF"),  # row 18: replace, never raise
    ("", "/100%", "/100%25", "", "/100%", b"/100%25"),  # row 19: decoded once only
    ("", "/a?b", "/a%3Fb?c", "", "/a?b", b"/a%3Fb"),
    ("", "/sp ace", "/sp%20ace", "", "/sp ace", b"/sp%20ace"),
    # absolute-form request target: scheme://authority is stripped
    ("", "/a/b", "http://example.com/a/b?q", "", "/a/b", b"/a/b"),
    ("", "/", "https://example.com:8443/", "", "/", b"/"),
    # stale target: middleware (werkzeug DispatcherMiddleware) rewrote PATH_INFO
    ("/mount", "/x", "/x", "/mount", "/mount/x", None),
    ("", "/rewritten", "/original", "", "/rewritten", None),
    ("", "/a/b", "/a%2Fc", "", "/a/b", None),
    ("", "/x", "/\u20ac", "", "/x", None),  # not latin-1: ignored, no crash
]


@pytest.mark.parametrize("uri_key", ["RAW_URI", "REQUEST_URI"])
@pytest.mark.parametrize(("script", "info", "uri", "root", "path", "raw"), PATH_CASES)
def test_paths(
    uri_key: str, script: str, info: str, uri: str | None, root: str, path: str, raw: bytes | None
) -> None:
    scope = build_scope(environ(SCRIPT_NAME=script, PATH_INFO=info, **{uri_key: uri}))
    assert scope["root_path"] == root
    assert scope["path"] == path
    assert scope["raw_path"] == raw
    assert scope["path"].startswith(scope["root_path"])


def test_raw_uri_wins_over_request_uri() -> None:
    scope = build_scope(environ(PATH_INFO="/a/b", RAW_URI="/a%2Fb", REQUEST_URI="/a/b"))
    assert scope["raw_path"] == b"/a%2Fb"


def test_missing_script_name_and_path_info() -> None:
    scope = build_scope(environ(SCRIPT_NAME=None, PATH_INFO=None))
    assert scope["path"] == "/"
    assert scope["root_path"] == ""


SEGMENT = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0xFF, exclude_characters="/?#"))
WSGI_PATH = st.lists(SEGMENT, max_size=4).map(lambda parts: "".join("/" + p for p in parts))


@given(WSGI_PATH, WSGI_PATH)
def test_path_properties(script: str, info: str) -> None:
    """Any latin-1 SCRIPT_NAME/PATH_INFO: never raises; path is the UTF-8 reading of the
    bytes (errors replaced) and includes root_path; a percent-encoded target that
    agrees becomes raw_path."""
    target = quote((script + info).encode("latin-1"), safe="/")
    scope = build_scope(environ(SCRIPT_NAME=script, PATH_INFO=info, REQUEST_URI=target + "?q"))
    assert scope["path"] == ((script + info).encode("latin-1").decode("utf-8", "replace") or "/")
    assert scope["root_path"] == script.encode("latin-1").decode("utf-8", "replace")
    assert scope["path"].startswith(scope["root_path"])
    assert scope["raw_path"] == target.encode("ascii")


# -- query string and headers ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "raw"),
    [("", b""), ("a=1&b=2", b"a=1&b=2"), ("a=%E9&b=\xe9", b"a=%E9&b=\xe9"), ("x=\xff\x00", b"x=\xff\x00")],
)
def test_query_string_latin1(query: str, raw: bytes) -> None:
    assert build_scope(environ(QUERY_STRING=query))["query_string"] == raw  # row 22


def test_missing_query_string() -> None:
    assert build_scope(environ(QUERY_STRING=None))["query_string"] == b""


@given(st.binary())
def test_query_string_round_trips(raw: bytes) -> None:
    assert build_scope(environ(QUERY_STRING=raw.decode("latin-1")))["query_string"] == raw


def headers_of(**kw: Any) -> list[tuple[bytes, bytes]]:
    return [tuple(h) for h in build_scope(environ(HTTP_HOST=None, **kw))["headers"]]


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"HTTP_X_FORWARDED_FOR": "1.2.3.4"}, [(b"x-forwarded-for", b"1.2.3.4")]),
        ({"HTTP_X_LATIN": "caf\xe9"}, [(b"x-latin", b"caf\xe9")]),  # row 12: latin-1, not ascii
        ({"HTTP_X_RAW": "\x80\xff"}, [(b"x-raw", b"\x80\xff")]),
        ({"HTTP_COOKIE": "a=1; b=2"}, [(b"cookie", b"a=1; b=2")]),
        ({"HTTP_ACCEPT": "a/b, c/d"}, [(b"accept", b"a/b, c/d")]),  # never split
        (
            {"CONTENT_TYPE": "text/plain", "CONTENT_LENGTH": "3"},
            [(b"content-type", b"text/plain"), (b"content-length", b"3")],
        ),
        ({"CONTENT_TYPE": "", "CONTENT_LENGTH": ""}, []),  # empty: not headers (wsgiref sets them)
        ({"CONTENT_TYPE": "application/json"}, [(b"content-type", b"application/json")]),
        ({"HTTP_CONTENT_TYPE": "x/y", "HTTP_CONTENT_LENGTH": "9"}, []),  # never from HTTP_
        ({"REMOTE_USER": "bob", "wsgi.foo": "bar", "SSL_PROTOCOL": "TLSv1.3"}, []),  # not headers
    ],
)
def test_headers(env: dict[str, str], expected: list[tuple[bytes, bytes]]) -> None:
    assert sorted(headers_of(**env)) == sorted(expected)


@given(st.binary())
def test_header_value_round_trips(raw: bytes) -> None:
    assert headers_of(HTTP_X_V=raw.decode("latin-1")) == [(b"x-v", raw)]


# -- server and client -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "port", "server"),
    [
        ("example.com", "8080", ["example.com", 8080]),
        ("example.com", 8080, ["example.com", 8080]),
        ("example.com", "http", ["example.com", None]),  # unparsable port: None
        ("example.com", "", ["example.com", None]),
        ("example.com", None, ["example.com", None]),
        (None, "80", None),
    ],
)
def test_server(name: str | None, port: Any, server: list[Any] | None) -> None:
    assert build_scope(environ(SERVER_NAME=name, SERVER_PORT=port))["server"] == server


@pytest.mark.parametrize(
    ("addr", "port", "client"),
    [
        ("10.1.2.3", "40000", ["10.1.2.3", 40000]),
        ("10.1.2.3", 40000, ["10.1.2.3", 40000]),  # werkzeug's dev server: an int (row 38)
        ("10.1.2.3", None, ["10.1.2.3", 0]),  # no port: keep the address
        ("10.1.2.3", "", ["10.1.2.3", 0]),
        ("10.1.2.3", "x", ["10.1.2.3", 0]),
        ("::1", "1", ["::1", 1]),
        (None, "40000", None),
        ("", "40000", None),
    ],
)
def test_client(addr: str | None, port: Any, client: list[Any] | None) -> None:
    assert build_scope(environ(REMOTE_ADDR=addr, REMOTE_PORT=port))["client"] == client


@given(
    st.one_of(st.none(), LATIN1, st.integers(min_value=0, max_value=65535)),
    st.one_of(st.none(), LATIN1, st.integers(min_value=0, max_value=65535)),
    st.one_of(st.none(), LATIN1),
)
def test_odd_cgi_values_never_crash(server_port: Any, remote_port: Any, protocol: Any) -> None:
    scope = build_scope(environ(SERVER_PORT=server_port, REMOTE_PORT=remote_port, SERVER_PROTOCOL=protocol))
    assert scope["server"][1] is None or type(scope["server"][1]) is int
    assert type(scope["client"][1]) is int


# -- parse_asgi_status -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "line"),
    [
        (200, "200 OK"),
        (201, "201 Created"),
        (204, "204 No Content"),
        (301, "301 Moved Permanently"),
        (404, "404 Not Found"),
        (418, "418 I'm a Teapot"),
        (500, "500 Internal Server Error"),
        (299, "299 Unknown"),  # row 10: never an empty phrase
        (599, "599 Unknown"),
        (999, "999 Unknown"),
    ],
)
def test_parse_asgi_status(status: int, line: str) -> None:
    assert parse_asgi_status(status) == line


@pytest.mark.parametrize("status", [100, 101, 103, 199])
def test_parse_asgi_status_rejects_informational(status: int) -> None:
    with pytest.raises(ResponseError, match="informational"):
        parse_asgi_status(status)  # row 36


@pytest.mark.parametrize("status", [0, -200, 99, 1000, "200", "200 OK", 200.0, True, None, b"200"])
def test_parse_asgi_status_rejects(status: Any) -> None:
    with pytest.raises(ResponseError):
        parse_asgi_status(status)


@given(st.integers(min_value=200, max_value=999))
def test_status_line_shape(code: int) -> None:
    line = parse_asgi_status(code)
    # What wsgiref's handler and PEP 3333 demand: 3 digits, a space, a reason phrase.
    assert line[:3] == str(code)
    assert line[3] == " "
    assert line[4:].strip()


# -- decode_asgi_headers -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "decoded"),
    [
        ([], []),
        ([(b"content-type", b"text/plain")], [("content-type", "text/plain")]),
        ([[b"x-a", b"1"]], [("x-a", "1")]),  # lists are pairs too
        ([(b"X-Mixed", b"v")], [("X-Mixed", "v")]),
        ([(b"x-latin", b"caf\xe9")], [("x-latin", "caf\xe9")]),
        ([(bytearray(b"x-b"), bytearray(b"2"))], [("x-b", "2")]),
        ([(b"set-cookie", b"a=1"), (b"set-cookie", b"b=2")], [("set-cookie", "a=1"), ("set-cookie", "b=2")]),
        ([(b"x-tab", b"a\tb")], [("x-tab", "a\tb")]),
        # row 15: hop-by-hop headers are dropped
        (
            [
                (b"transfer-encoding", b"chunked"),
                (b"Connection", b"close"),
                (b"keep-alive", b"timeout=5"),
                (b"upgrade", b"h2c"),
                (b"content-length", b"5"),
            ],
            [("content-length", "5")],
        ),
        (((b"x-c", b"3"),), [("x-c", "3")]),
    ],
)
def test_decode_asgi_headers(headers: Any, decoded: list[tuple[str, str]]) -> None:
    result = decode_asgi_headers(headers)
    assert result == decoded
    for name, value in result:
        assert type(name) is str and type(value) is str


@pytest.mark.parametrize(
    "headers",
    [
        [("content-type", "text/plain")],  # str, not bytes
        [(b"content-type", "text/plain")],
        [("content-type", b"text/plain")],
        [(b"x-a", b"1", b"extra")],
        [(b"x-a",)],
        [b"x-a"],
        [None],
        5,
        [(b"x-a", b"line\r\nx-injected: 1")],  # row 13: header injection
        [(b"x-a", b"nul\x00")],
        [(b"bad name", b"1")],
        [(b"x:a", b"1")],
        [(b"", b"1")],
    ],
)
def test_decode_asgi_headers_rejects(headers: Any) -> None:
    with pytest.raises(ResponseError):
        decode_asgi_headers(headers)


@pytest.mark.parametrize(
    ("headers", "length"),
    [
        ([], None),
        ([(b"content-type", b"text/plain")], None),
        ([(b"Content-Length", b"13")], 13),
        ([(b"content-length", b" 7\t")], 7),  # optional whitespace around a field value
        ([(b"content-length", b"0")], 0),
        ([(b"content-length", b"12"), (b"content-length", b"99")], 12),  # the first one counts
        ([(b"content-length", b"-1")], None),  # does not parse: no length to hold the body to
        ([(b"content-length", b"1e3")], None),
        ([(b"content-length", b"\xd9\xa3")], None),  # a non-ASCII digit
        ([(b"content-length", b"x"), (b"content-length", b"5")], None),  # the first one, unparsed
        ([(b"transfer-encoding", b"chunked"), (b"content-length", b"5")], 5),
    ],
)
def test_decode_asgi_response_headers_gives_the_declared_length(headers: Any, length: int | None) -> None:
    decoded, declared = decode_asgi_response_headers(headers)
    assert declared == length
    assert decoded == decode_asgi_headers(headers)


TOKEN = st.text(alphabet="!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz", min_size=1)
VALUE = st.binary().filter(lambda b: not any((c < 0x20 and c != 0x09) or c == 0x7F for c in b))


@given(st.lists(st.tuples(TOKEN, VALUE), max_size=8))
def test_decode_asgi_headers_round_trip(pairs: list[tuple[str, bytes]]) -> None:
    from bridge.http import HOP_BY_HOP

    headers = [(n.encode("ascii"), v) for n, v in pairs]
    expected = [(n, v.decode("latin-1")) for n, v in pairs if n not in HOP_BY_HOP]
    assert decode_asgi_headers(headers) == expected


@pytest.mark.parametrize("key", ["PATH_INFO", "QUERY_STRING", "HTTP_X_THING"])
def test_non_latin1_environ_text_is_an_invalid_environ(key: str) -> None:
    # A server or middleware that breaks PEP 3333 (text above U+00FF) is a bug on the
    # server's side, not the client's: InvalidScopeError naming the key (the WSGI
    # server answers 500 and logs it), not a crash deep inside, and not a 400.
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", key: "price €5"}
    with pytest.raises(InvalidScopeError, match=f"'{key}' holds text that is not latin-1"):
        build_scope(environ)
