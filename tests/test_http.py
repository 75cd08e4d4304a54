"""Pure status-line and response-header rules."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge import http
from bridge.errors import HopByHopHeaderError, ResponseError
from bridge.http import (
    HOP_BY_HOP,
    decode_asgi_response_headers,
    encode_response_headers,
    parse_content_length,
    parse_status,
    status_line,
    with_article,
)


@pytest.mark.parametrize(
    ("status", "code"),
    [
        ("200 OK", 200),
        ("299 Custom", 299),
        ("200", 200),
        ("404 Not Found", 404),
        ("999 X", 999),
        ("204 ", 204),
    ],
)
def test_parse_status(status: str, code: int) -> None:
    assert parse_status(status) == code


@pytest.mark.parametrize(
    "status",
    [
        "abc",
        "20 OK",
        "1000 X",
        "2000",
        "20",
        "",
        "099 Low",
        "200\r\nX: y",
        "200-OK",
        "٢٠٠ OK",
        b"200 OK",
        200,
        None,
    ],
)
def test_parse_status_rejects(status: Any) -> None:
    with pytest.raises(ResponseError):
        parse_status(status)


@pytest.mark.parametrize("status", ["100 Continue", "101 Switching Protocols", "103 Early Hints"])
def test_informational_status_rejected(status: str) -> None:
    with pytest.raises(ResponseError, match="informational"):
        parse_status(status)


def test_encode_headers() -> None:
    result = encode_response_headers(
        [
            ("Content-Type", "text/html"),
            ("Set-Cookie", "a=1"),
            ("X-Name", "café"),
            ("Set-Cookie", "b=2"),
            ("X-Padded", "  v \t"),
        ]
    )
    assert result.headers == [
        (b"content-type", b"text/html"),
        (b"set-cookie", b"a=1"),
        (b"x-name", b"caf\xe9"),
        (b"set-cookie", b"b=2"),
        (b"x-padded", b"v"),
    ]
    assert result.content_length is None
    assert result.dropped == []


def test_content_length() -> None:
    result = encode_response_headers([("Content-Length", " 12 ")])
    assert result.content_length == 12
    assert result.headers == [(b"content-length", b"12")]
    same = encode_response_headers([("Content-Length", "3"), ("content-length", "3")])
    assert same.content_length == 3 and same.headers == [(b"content-length", b"3")]
    for bad in (["-1"], ["abc"], ["1.5"], ["3", "4"], [""]):
        with pytest.raises(ResponseError, match="Content-Length"):
            encode_response_headers([("Content-Length", v) for v in bad])


@pytest.mark.parametrize(
    "header",
    [
        ("X-Bad", "a\r\nSet-Cookie: evil=1"),  # row 13: injection
        ("X-Bad", "a\nb"),
        ("X-Bad", "a\x00b"),
        ("X-Euro", "€"),  # row 12: above U+00FF
        ("Bad Name", "v"),
        ("Bad:Name", "v"),
        ("", "v"),
        ("X-Bytes", b"v"),
        (b"X-Bytes", "v"),
        ("X-Int", 1),
    ],
)
def test_bad_headers(header: Any) -> None:
    with pytest.raises(ResponseError):
        encode_response_headers([header])


@pytest.mark.parametrize("headers", [{"a": "b"}, "X: y", None, [("a",)], [("a", "b", "c")], ["ab"]])
def test_bad_header_containers(headers: Any) -> None:
    with pytest.raises(ResponseError):
        encode_response_headers(headers)


def test_tab_allowed_in_value() -> None:
    assert encode_response_headers([("X", "a\tb")]).headers == [(b"x", b"a\tb")]


@pytest.mark.parametrize("name", ["Connection", "Transfer-Encoding", "keep-alive", "Upgrade", "TE"])
def test_hop_by_hop(name: str) -> None:
    # Row 14: dropped by default, refused in strict mode.
    result = encode_response_headers([(name, "x"), ("X-Ok", "1")])
    assert result.headers == [(b"x-ok", b"1")]
    assert result.dropped == [name]
    with pytest.raises(HopByHopHeaderError, match=name):
        encode_response_headers([(name, "x")], strict=True)
    assert name.lower() in HOP_BY_HOP


@pytest.mark.parametrize(
    ("code", "line"), [(200, "200 OK"), (404, "404 Not Found"), (299, "299 Unknown"), (599, "599 Unknown")]
)
def test_status_line(code: int, line: str) -> None:
    assert status_line(code) == line


def test_parse_content_length() -> None:
    assert parse_content_length("007") == 7
    with pytest.raises(ValueError):
        parse_content_length("+7")


latin1_value = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF).filter(lambda c: c != "\x7f"))


@given(latin1_value)
def test_latin1_values_round_trip(value: str) -> None:
    result = encode_response_headers([("X-V", value)])
    assert result.headers[0][1].decode("latin-1") == value.strip(" \t")


@pytest.mark.parametrize(
    ("noun", "expected"),
    [("int", "an int"), ("str", "a str"), ("AsgiToWsgi", "an AsgiToWsgi"), ("WsgiToAsgi", "a WsgiToAsgi")],
)
def test_with_article(noun: str, expected: str) -> None:
    assert with_article(noun) == expected


# -- the caches of checked headers --------------------------------------------------------------

_NAME = st.sampled_from(
    ["Content-Type", "content-length", "Content-Length", "X-A", "Connection", "Bad Name", ""]
)
_TEXT = st.sampled_from(["text/plain", "12", " 7 ", "-1", "a\r\nb", "caf\xe9", "\u20ac", "close", "x" * 600])
_HEADER: st.SearchStrategy[Any] = st.one_of(
    st.tuples(_NAME, _TEXT),
    st.builds(list, st.tuples(_NAME, _TEXT)),
    st.tuples(_NAME, st.sampled_from([b"v", 1, None])),
)


def _outcome(call: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return call(*args, **kwargs)
    except ResponseError as exc:
        return (type(exc), str(exc))


@given(st.lists(_HEADER, max_size=6), st.booleans())
def test_encode_headers_warm_gives_what_cold_gives(headers: list[Any], strict: bool) -> None:
    """The cache only saves work: what a header became, or the error it raised, is the
    same the first time (nothing cached) and every time after."""
    http._ENCODED.clear()
    http._NAMES.clear()
    cold = _outcome(encode_response_headers, headers, strict=strict)
    assert _outcome(encode_response_headers, headers, strict=strict) == cold
    assert _outcome(encode_response_headers, list(headers), strict=not strict) == _outcome(
        encode_response_headers, list(headers), strict=not strict
    )


_RAW_NAME = st.sampled_from([b"content-type", b"Content-Length", b"x-a", b"connection", b"bad name", b""])
_RAW_VALUE = st.sampled_from([b"text/plain", b"12", b" 7 ", b"x", b"a\r\nb", b"caf\xe9", b"x" * 600])
_RAW_HEADER: st.SearchStrategy[Any] = st.one_of(
    st.tuples(_RAW_NAME, _RAW_VALUE),
    st.builds(list, st.tuples(_RAW_NAME, _RAW_VALUE)),
    st.tuples(_RAW_NAME, st.sampled_from(["v", 1, None, bytearray(b"v")])),
)


@given(st.lists(_RAW_HEADER, max_size=6))
def test_decode_headers_warm_gives_what_cold_gives(headers: list[Any]) -> None:
    http._DECODED.clear()
    cold = _outcome(decode_asgi_response_headers, headers)
    assert _outcome(decode_asgi_response_headers, headers) == cold


def test_header_caches_are_bounded_and_start_over() -> None:
    """Headers that change with every response cannot grow the caches without limit,
    nor keep the ones sent every time out of them for good; long values stay out."""
    for n in range(3 * http._CACHE_LIMIT):
        encode_response_headers([("Set-Cookie", f"session={n}")])
        decode_asgi_response_headers([(b"set-cookie", b"session=%d" % n)])
        assert len(http._ENCODED) <= http._CACHE_LIMIT and len(http._DECODED) <= http._CACHE_LIMIT
    encode_response_headers([("Content-Type", "text/plain")])
    assert ("Content-Type", "text/plain") in http._ENCODED
    long_value = "x" * (http._CACHED_VALUE_SIZE + 1)
    encode_response_headers([("X-Long", long_value)])
    decode_asgi_response_headers([(b"x-long", long_value.encode())])
    assert ("X-Long", long_value) not in http._ENCODED
    assert (b"x-long", long_value.encode()) not in http._DECODED


def test_header_caches_hold_no_hop_by_hop_header_on_the_wsgi_side() -> None:
    """Dropped and reported every time, refused in strict mode every time."""
    for _ in range(2):
        assert encode_response_headers([("Connection", "close")]).dropped == ["Connection"]
        with pytest.raises(HopByHopHeaderError):
            encode_response_headers([("Connection", "close")], strict=True)
    for _ in range(2):
        assert decode_asgi_response_headers([(b"connection", b"close")]) == ([], None)


class _Text(str):
    pass


def test_a_str_subclass_is_a_str_cold_and_warm() -> None:
    http._ENCODED.clear()
    headers = [(_Text("X-Sub"), _Text("v")), ("X-Sub", "v")]
    first = encode_response_headers(headers)
    assert first.headers == [(b"x-sub", b"v"), (b"x-sub", b"v")]
    assert all(type(part) is bytes for pair in first.headers for part in pair)
    assert encode_response_headers(headers) == first
