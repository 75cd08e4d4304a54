"""The pure scope -> environ translation: tables of cases and property tests."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.environ import build_environ, text_to_wsgi, wsgi_to_text
from bridge.errors import BadRequestError, InvalidScopeError
from tests.asgi_driver import http_scope

ERRORS = object()


def environ_for(**kw: Any) -> dict[str, Any]:
    path = kw.pop("path", "/")
    return build_environ(http_scope(path, **kw), errors=ERRORS)


def test_basic_keys() -> None:
    env = environ_for(path="/a/b", query_string=b"x=1", method="POST")
    assert env["REQUEST_METHOD"] == "POST"
    assert env["SCRIPT_NAME"] == ""
    assert env["PATH_INFO"] == "/a/b"
    assert env["QUERY_STRING"] == "x=1"
    assert env["SERVER_NAME"] == "127.0.0.1"
    assert env["SERVER_PORT"] == "8000"
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert env["REMOTE_PORT"] == "50000"
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["wsgi.version"] == (1, 0)
    assert env["wsgi.url_scheme"] == "http"
    assert env["wsgi.errors"] is ERRORS
    assert env["wsgi.input_terminated"] is True
    assert env["wsgi.multiprocess"] is True
    assert env["wsgi.run_once"] is False
    assert env["REQUEST_URI"] == env["RAW_URI"] == "/a/b?x=1"
    assert env["asgi.scope"]["path"] == "/a/b"
    assert type(env) is dict
    for key, value in env.items():
        if key.isupper():
            assert type(value) is str, key


def test_query_string_always_present() -> None:
    assert environ_for()["QUERY_STRING"] == ""


@pytest.mark.parametrize(
    ("version", "protocol"), [("1.0", "HTTP/1.0"), ("1.1", "HTTP/1.1"), ("2", "HTTP/2"), ("3", "HTTP/3")]
)
def test_server_protocol(version: str, protocol: str) -> None:
    assert environ_for(http_version=version)["SERVER_PROTOCOL"] == protocol


# (path, raw_path, root_path) -> (SCRIPT_NAME, PATH_INFO, REQUEST_URI without query)
PATH_CASES = [
    ("/", b"/", "", "", "/", "/"),
    ("/a/b", b"/a%2Fb", "", "", "/a/b", "/a%2Fb"),  # row 16: only the raw target keeps %2F
    ("/café", b"/caf%C3%A9", "", "", "/caf\xc3\xa9", "/caf%C3%A9"),  # row 17
    ("/\ufffd", b"/%FF", "", "", "/\xff", "/%FF"),  # row 18: raw bytes survive
    ("/100%", b"/100%25", "", "", "/100%", "/100%25"),  # row 19: decoded once only
    ("/apple", b"/apple", "/app", "/app", "/apple", "/apple"),  # row 20: no strip mid-segment
    ("/app", b"/app", "/app", "/app", "", "/app"),
    ("/app/x", b"/app/x", "/app", "/app", "/x", "/app/x"),
    ("/x", b"/x", "/", "", "/x", "/x"),  # row 21
    ("/app/x", b"/app/x", "/app/", "/app", "/x", "/app/x"),
    ("/mount/über/y", b"/mount/%C3%BCber/y", "/mount/über", "/mount/\xc3\xbcber", "/y", "/mount/%C3%BCber/y"),
    # Middleware rewrote `path`; the stale raw_path is ignored and the target rebuilt.
    ("/rewritten", b"/original", "", "", "/rewritten", "/rewritten"),
    ("/sp ace", b"/sp%20ace", "", "", "/sp ace", "/sp%20ace"),
]


@pytest.mark.parametrize(("path", "raw", "root", "script", "info", "uri"), PATH_CASES)
def test_paths(path: str, raw: bytes, root: str, script: str, info: str, uri: str) -> None:
    env = environ_for(path=path, raw_path=raw, root_path=root)
    assert (env["SCRIPT_NAME"], env["PATH_INFO"], env["REQUEST_URI"]) == (script, info, uri)


def test_path_without_raw_path() -> None:
    scope = http_scope("/caf\xe9 x")
    del scope["raw_path"]
    env = build_environ(scope, errors=ERRORS)
    assert env["PATH_INFO"] == "/caf\xc3\xa9 x"
    assert env["REQUEST_URI"] == "/caf%C3%A9%20x"


def test_raw_query_bytes_round_trip() -> None:
    # Row 22: a raw byte >= 0x80 in the query must not crash an ascii decode.
    env = environ_for(query_string=b"a=%E9&b=\xe9")
    assert env["QUERY_STRING"] == "a=%E9&b=\xe9"
    assert env["QUERY_STRING"].encode("latin-1") == b"a=%E9&b=\xe9"
    assert env["REQUEST_URI"].endswith("?a=%E9&b=\xe9")


def test_headers_basic_mapping() -> None:
    env = environ_for(
        headers=[
            (b"host", b"example.com"),
            (b"content-type", b"text/plain"),
            (b"content-length", b"5"),
            (b"x-custom", b"caf\xe9"),
            (b"accept", b"a"),
            (b"accept", b"b"),
        ]
    )
    assert env["HTTP_HOST"] == "example.com"
    assert env["CONTENT_TYPE"] == "text/plain"
    assert env["CONTENT_LENGTH"] == "5"
    assert "HTTP_CONTENT_TYPE" not in env
    assert "HTTP_CONTENT_LENGTH" not in env
    assert env["HTTP_X_CUSTOM"] == "caf\xe9"  # row 12: raw bytes as latin-1
    assert env["HTTP_ACCEPT"] == "a,b"


def test_no_content_headers_when_absent() -> None:
    env = environ_for()
    assert "CONTENT_TYPE" not in env
    assert "CONTENT_LENGTH" not in env


def test_cookies_join_with_semicolon() -> None:
    # Row 23: HTTP/2 splits cookies over several fields.
    env = environ_for(headers=[(b"cookie", b"a=1"), (b"cookie", b"b=2"), (b"cookie", b"c=3")])
    assert env["HTTP_COOKIE"] == "a=1; b=2; c=3"


def test_underscore_headers_dropped() -> None:
    # Row 24: X_Forwarded_For must not pose as X-Forwarded-For.
    env = environ_for(headers=[(b"x_forwarded_for", b"evil"), (b"x-forwarded-for", b"good")])
    assert env["HTTP_X_FORWARDED_FOR"] == "good"
    env = environ_for(headers=[(b"x-forwarded-for", b"good"), (b"x_forwarded_for", b"evil")])
    assert env["HTTP_X_FORWARDED_FOR"] == "good"


def test_mixed_case_header_names_from_middleware() -> None:
    env = environ_for(headers=[(b"Content-Type", b"a/b"), (b"X-Thing", b"1")])
    assert env["CONTENT_TYPE"] == "a/b"
    assert env["HTTP_X_THING"] == "1"


def test_duplicate_cap_gives_bad_request() -> None:
    # Row 25: 100 repeats are fine, 101 are refused, and joining is linear.
    env = environ_for(headers=[(b"x-a", b"v")] * 100)
    assert env["HTTP_X_A"] == ",".join(["v"] * 100)
    with pytest.raises(BadRequestError, match="more than 100"):
        environ_for(headers=[(b"x-a", b"v")] * 10_000)
    env = build_environ(http_scope(headers=[(b"x-a", b"v")] * 500), errors=ERRORS, max_duplicate_headers=500)
    assert env["HTTP_X_A"].count("v") == 500
    # The cap counts every field of the name: 1 means the header may not repeat at all.
    env = build_environ(http_scope(headers=[(b"x-a", b"v")]), errors=ERRORS, max_duplicate_headers=1)
    assert env["HTTP_X_A"] == "v"
    for cap in (1, 2, 3):
        with pytest.raises(BadRequestError, match=f"more than {cap} 'x-a'"):
            build_environ(
                http_scope(headers=[(b"x-a", b"v")] * (cap + 1)), errors=ERRORS, max_duplicate_headers=cap
            )
        env = build_environ(
            http_scope(headers=[(b"x-a", b"v")] * cap), errors=ERRORS, max_duplicate_headers=cap
        )
        assert env["HTTP_X_A"].count("v") == cap


def test_single_valued_headers() -> None:
    env = environ_for(headers=[(b"content-length", b"5"), (b"content-length", b"5")])
    assert env["CONTENT_LENGTH"] == "5"
    with pytest.raises(BadRequestError, match="CONTENT_LENGTH"):
        environ_for(headers=[(b"content-length", b"5"), (b"content-length", b"6")])
    with pytest.raises(BadRequestError, match="HTTP_HOST"):
        environ_for(headers=[(b"host", b"a"), (b"host", b"b")])


@pytest.mark.parametrize(
    ("server", "host", "scheme", "name", "port"),
    [
        (None, b"example.com:8080", "http", "example.com", "8080"),
        (None, b"example.com", "https", "example.com", "443"),
        (None, None, "http", "localhost", "80"),
        (["/run/app.sock", None], b"[::1]:9000", "http", "::1", "9000"),  # row 37
        (["/run/app.sock", None], None, "https", "localhost", "443"),
        (("::1", 8443), b"ignored", "https", "::1", "8443"),
        (None, b"bad:port", "http", "bad", "80"),
    ],
)
def test_server_name_and_port(server: Any, host: bytes | None, scheme: str, name: str, port: str) -> None:
    headers = [(b"host", host)] if host is not None else []
    env = environ_for(server=server, headers=headers, scheme=scheme)
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == (name, port)
    assert type(env["SERVER_PORT"]) is str


def test_client_absent_or_without_port() -> None:
    env = environ_for(client=None)
    assert "REMOTE_ADDR" not in env and "REMOTE_PORT" not in env
    env = environ_for(client=["unix-peer", None])
    assert env["REMOTE_ADDR"] == "unix-peer" and "REMOTE_PORT" not in env


def test_https_and_tls_extension() -> None:
    env = environ_for(scheme="https")
    assert env["HTTPS"] == "on" and env["wsgi.url_scheme"] == "https"
    tls = {
        "server_cert": "SERVER PEM",
        "client_cert_chain": ["CLIENT PEM", "CA PEM"],
        "client_cert_name": "CN=alice",
        "client_cert_error": None,
        "tls_version": 0x0304,
        "cipher_suite": 0x1301,
    }
    env = environ_for(scheme="https", extensions={"tls": tls})
    assert env["SSL_PROTOCOL"] == "TLSv1.3"
    assert env["SSL_CLIENT_CERT"] == "CLIENT PEM"
    assert env["SSL_SERVER_CERT"] == "SERVER PEM"
    assert env["SSL_CLIENT_S_DN"] == "CN=alice"
    assert env["SSL_CLIENT_VERIFY"] == "SUCCESS"


def test_multithread_flag() -> None:
    assert build_environ(http_scope(), errors=ERRORS, multithread=False)["wsgi.multithread"] is False


@pytest.mark.parametrize(
    "mutate",
    [
        lambda s: s.pop("path"),
        lambda s: s.pop("method"),
        lambda s: s.__setitem__("method", ""),
        lambda s: s.__setitem__("path", b"/bytes"),
        lambda s: s.__setitem__("headers", [("host", "str-not-bytes")]),
        lambda s: s.__setitem__("headers", [(b"host",)]),
        lambda s: s.__setitem__("query_string", "str"),
        lambda s: s.__setitem__("scheme", "ftp"),
    ],
)
def test_malformed_scope(mutate: Any) -> None:
    scope = http_scope()
    mutate(scope)
    with pytest.raises(InvalidScopeError):
        build_environ(scope, errors=ERRORS)


def test_default_scheme_and_http_version() -> None:
    scope = http_scope()
    del scope["scheme"], scope["http_version"]
    env = build_environ(scope, errors=ERRORS)
    assert env["wsgi.url_scheme"] == "http" and env["SERVER_PROTOCOL"] == "HTTP/1.1"


# -- properties -----------------------------------------------------------------------


@given(st.text())
def test_text_wsgi_round_trip(text: str) -> None:
    wsgi = text_to_wsgi(text)
    assert all(ord(c) < 256 for c in wsgi)
    assert wsgi_to_text(wsgi) == text  # hypothesis' text() has no lone surrogates


@given(st.binary())
def test_query_string_any_bytes(query: bytes) -> None:
    env = environ_for(query_string=query)
    assert env["QUERY_STRING"].encode("latin-1") == query


@given(st.binary(min_size=0, max_size=40))
def test_raw_path_bytes_survive(segment: bytes) -> None:
    # Whatever bytes the client put in the path (percent-encoded), PATH_INFO holds them
    # exactly, as a server decoding the URL would give them (row 18).
    raw = b"/" + quote(segment, safe="").encode("ascii")
    path = unquote(raw.decode("ascii"))  # what uvicorn/hypercorn put in scope["path"]
    env = environ_for(path=path, raw_path=raw)
    assert env["PATH_INFO"].encode("latin-1") == b"/" + segment
    assert env["REQUEST_URI"] == raw.decode("ascii")


header_value = st.binary(min_size=0, max_size=20).filter(lambda b: b"\r" not in b and b"\n" not in b)


@given(
    st.lists(st.tuples(st.sampled_from([b"x-a", b"x-b", b"cookie", b"accept"]), header_value), max_size=30)
)
def test_header_folding(headers: list[tuple[bytes, bytes]]) -> None:
    env = environ_for(headers=headers)
    for name in {n for n, _ in headers}:
        values = [v.decode("latin-1") for n, v in headers if n == name]
        key = "HTTP_" + name.decode().upper().replace("-", "_")
        sep = "; " if name == b"cookie" else ","
        assert env[key] == sep.join(values)
