"""Pure HTTP rules shared by both adapters: status lines, response headers, hop-by-hop.

No threads and no I/O here (a test holds this rule), so every rule is unit-tested in
microseconds.
"""

from __future__ import annotations

import re
from http import HTTPStatus
from typing import Any, Iterable, Mapping, NamedTuple

from .errors import HopByHopHeaderError, InvalidScopeError, ResponseError

__all__ = [
    "DEFAULT_PRELOAD_BODY",
    "HOP_BY_HOP",
    "EncodedHeaders",
    "decode_asgi_headers",
    "decode_asgi_response_headers",
    "parse_asgi_status",
    "encode_response_headers",
    "parse_content_length",
    "parse_http_request",
    "parse_status",
    "status_line",
    "with_article",
]

# Request bodies up to this size, with a known length, are read whole before the app
# runs: one hand-over instead of a cross-thread read per chunk, in both directions.
DEFAULT_PRELOAD_BODY = 1024 * 1024

# RFC 9110 section 7.6.1, plus the names WSGI's wsgiref treats as hop-by-hop.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)

# RFC 9110 section 5.6.2: a header name is a token.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Any control character but horizontal tab; CR and LF would let an app inject headers.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# Status lines and header names found valid before, and what they became: an app sends
# the same few with every response, and checking them was most of start_response's
# cost. Never a hop-by-hop name: those are dropped (and reported) every time. Bounded,
# so that an app making up names cannot grow them without limit.
_STATUSES: dict[str, int] = {}
_NAMES: dict[str, bytes] = {}
_CACHE_LIMIT = 512
# Whole response headers found valid before, as the app gave them (a tuple of two
# exact strs, or of two bytes), and what they became: most responses repeat the same
# few (Content-Type, Cache-Control, ...), and checking them was most of the work of
# converting a response's head. Hop-by-hop ones are never in it on the WSGI side
# (dropped and reported every time); a value over _CACHED_VALUE_SIZE is never in it
# (at most _CACHE_LIMIT entries of at most that size).
_ENCODED: dict[tuple[str, str], tuple[tuple[bytes, bytes], int | None]] = {}
_DECODED: dict[tuple[bytes, bytes], tuple[tuple[str, str], bool] | None] = {}
_CACHED_VALUE_SIZE = 512


def parse_status(status: object) -> int:
    """Return the code of a PEP 3333 status line such as ``"200 OK"``.

    A bare ``"200"`` is accepted (the reason phrase is lost in ASGI anyway). 1xx codes
    are refused: an ASGI ``http.response.start`` cannot carry an interim response.
    """
    if type(status) is str:
        known = _STATUSES.get(status)
        if known is not None:
            return known
    else:
        raise ResponseError(
            f"the status passed to start_response() must be a str like '200 OK', "
            f"not {type(status).__name__}: {status!r}"
        )
    code = status[:3]
    if (
        len(code) != 3
        or not (code.isascii() and code.isdigit())
        or (len(status) > 3 and status[3] != " ")
        or _CONTROL.search(status)
    ):
        raise ResponseError(
            f"invalid status line {status!r}: PEP 3333 wants three digits, a space "
            f"and a reason phrase, like '200 OK'"
        )
    value = int(code)
    if value < 200:
        if value < 100:
            raise ResponseError(f"invalid status code {value} in {status!r}: codes start at 100")
        raise ResponseError(
            f"status {status!r} is an informational (1xx) response, which a WSGI app "
            f"cannot send through ASGI; the server handles 100-continue and upgrades"
        )
    if len(_STATUSES) < _CACHE_LIMIT:
        _STATUSES[status] = value
    return value


def parse_content_length(value: str) -> int:
    """Parse a Content-Length value; raise ``ValueError`` unless it is a plain decimal.

    Spaces and tabs around it are allowed (RFC 9110's OWS, which parsers strip);
    any other whitespace is not.
    """
    if not (value.isascii() and value.isdigit()):
        stripped = value.strip(" \t")
        if not (stripped.isascii() and stripped.isdigit()):
            raise ValueError(f"Content-Length must be a non-negative integer, got {value!r}")
        value = stripped
    return int(value)


def parse_http_request(message: Mapping[str, Any]) -> tuple[bytes, bool]:
    """The ``body`` and ``more_body`` of an ASGI ``http.request`` message, checked.

    Both are optional (``b""`` and ``False``, as the ASGI spec says). ``body`` must be
    bytes (a bytearray or memoryview is copied into bytes) and ``more_body`` a bool;
    anything else breaks the ASGI spec, a bug in the server or in middleware in front
    of the adapter: :class:`~bridge.errors.InvalidScopeError` naming the field.
    """
    try:
        body = message.get("body", b"")
        more_body = message.get("more_body", False)
    except AttributeError:
        raise InvalidScopeError(
            f"an ASGI http.request message must be a dict, got {describe(message)}"
        ) from None
    if type(body) is not bytes:
        if not isinstance(body, (bytes, bytearray, memoryview)):
            raise InvalidScopeError(f"http.request message field 'body' must be bytes, got {describe(body)}")
        body = bytes(body)
    if type(more_body) is not bool:
        raise InvalidScopeError(
            f"http.request message field 'more_body' must be a bool, got {describe(more_body)}"
        )
    return body, more_body


def with_article(noun: str) -> str:
    """``an int``, ``a str``, ``an AsgiToWsgi``: for messages that name a type."""
    return f"{'an' if noun[:1].lower() in ('a', 'e', 'i', 'o', 'u') else 'a'} {noun}"


def describe(value: object) -> str:
    """A value's type and a short repr, for error messages about ill-typed input."""
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"


class EncodedHeaders(NamedTuple):
    """Response headers ready for ``http.response.start``."""

    headers: list[tuple[bytes, bytes]]
    content_length: int | None
    dropped: list[str]


def encode_response_headers(headers: Iterable[object], *, strict: bool = False) -> EncodedHeaders:
    """Check and encode the header list an app passed to ``start_response``.

    Names must be RFC 9110 tokens and values latin-1 text without control characters
    (CR/LF would allow header injection). Names are lower-cased, as ASGI requires;
    repeated headers such as ``Set-Cookie`` keep their order. Hop-by-hop headers are
    dropped and reported in ``dropped`` (or refused, when ``strict``): the server owns
    the connection and its framing.
    """
    if not isinstance(headers, (list, tuple)):
        raise ResponseError(
            f"the headers passed to start_response() must be a list of (name, value) "
            f"tuples, not {type(headers).__name__}"
        )
    encoded: list[tuple[bytes, bytes]] = []
    dropped: list[str] = []
    content_length: int | None = None
    for item in headers:
        try:
            pair, length = _ENCODED[item]
        except (KeyError, TypeError):  # (TypeError: a list, or an unhashable value)
            found = _encode_header(item, strict)
            if found is None:
                dropped.append(item[0])
                continue
            pair, length = found
        if length is not None:
            if content_length is not None:
                if content_length != length:
                    raise ResponseError(
                        f"the app set two different Content-Length headers: {content_length} and {length}"
                    )
                continue
            content_length = length
        encoded.append(pair)
    return EncodedHeaders(encoded, content_length, dropped)


def _encode_header(item: object, strict: bool) -> tuple[tuple[bytes, bytes], int | None] | None:
    """One header as ``encode_response_headers`` takes it, checked: its encoded pair and,
    for a Content-Length, its value; None for a hop-by-hop header (to drop)."""
    if not isinstance(item, (tuple, list)) or len(item) != 2:
        raise ResponseError(f"each response header must be a (name, value) tuple, got {item!r}")
    name, value = item
    if type(name) is not str or type(value) is not str:
        # A str subclass is a str (and equal to one: a cached header would take it).
        if not (isinstance(name, str) and isinstance(value, str)):
            raise ResponseError(f"response header names and values must be str (latin-1 text), got {item!r}")
        name, value = str(name), str(value)
    raw_name = _NAMES.get(name)
    if raw_name is None and not _TOKEN.fullmatch(name):
        raise ResponseError(f"invalid response header name {name!r}: it must be an RFC 9110 token")
    if _CONTROL.search(value):
        raise ResponseError(
            f"response header {name!r} has a control character (CR, LF, ...) in its "
            f"value {value!r}; refusing it, as it could inject headers"
        )
    try:
        raw_value = value.strip(" \t").encode("latin-1")
    except UnicodeEncodeError:
        raise ResponseError(
            f"response header {name!r} has a value that is not latin-1: {value!r}; "
            f"PEP 3333 header values are latin-1 text (encode other text first, "
            f"for example as RFC 8187 or percent-encoding)"
        ) from None
    if raw_name is None:
        lower = name.lower()
        if lower in HOP_BY_HOP:
            if strict:
                raise HopByHopHeaderError(
                    f"the app set the hop-by-hop header {name!r}; the server owns the "
                    f"connection and its framing, so WSGI apps must not set it (PEP 3333)"
                )
            return None
        raw_name = lower.encode("ascii")
        if len(_NAMES) < _CACHE_LIMIT:
            _NAMES[name] = raw_name
    length: int | None = None
    if raw_name == b"content-length":
        try:
            length = parse_content_length(value)
        except ValueError as exc:
            raise ResponseError(f"invalid Content-Length header from the app: {exc}") from None
        raw_value = str(length).encode("ascii")
    found = ((raw_name, raw_value), length)
    if type(item) is tuple and len(value) <= _CACHED_VALUE_SIZE:
        _remember(_ENCODED, item, found)
    return found


def _remember(cache: dict[Any, Any], key: object, value: object) -> None:
    """Add to a bounded cache of checked headers; a full one starts over, so that
    headers that change with every response (cookies, ETags) cannot crowd out for
    good the ones sent with every response, nor grow it without limit."""
    if len(cache) >= _CACHE_LIMIT:
        cache.clear()
    cache[key] = value


_STATUS_LINES: dict[int, str] = {s.value: f"{s.value} {s.phrase}" for s in HTTPStatus}


def status_line(code: int) -> str:
    """A PEP 3333 status line for an integer code, never with an empty reason phrase."""
    try:
        return _STATUS_LINES[code]
    except KeyError:
        return f"{code} Unknown"


def parse_asgi_status(status: object) -> str:
    """An ASGI ``http.response.start`` status -> a PEP 3333 status line."""
    if type(status) is not int:
        raise ResponseError(f"http.response.start 'status' must be an int, got {status!r}")
    if not 200 <= status <= 999:
        if 100 <= status < 200:
            raise ResponseError(f"status {status} is an informational (1xx) response, which WSGI cannot send")
        raise ResponseError(f"invalid HTTP status {status} in http.response.start")
    return status_line(status)


def decode_asgi_headers(headers: Iterable[object]) -> list[tuple[str, str]]:
    """ASGI response headers (byte pairs) -> PEP 3333 ``(str, str)`` pairs, hop-by-hop
    headers dropped (:func:`decode_asgi_response_headers`, without the length)."""
    return decode_asgi_response_headers(headers)[0]


def decode_asgi_response_headers(headers: Iterable[object]) -> tuple[list[tuple[str, str]], int | None]:
    """ASGI response headers (byte pairs) -> PEP 3333 ``(str, str)`` pairs.

    Hop-by-hop headers are dropped: the WSGI server owns the connection and its
    framing (the ASGI spec says servers ignore an app's Transfer-Encoding, and
    wsgiref refuses such headers outright).

    Also returns the Content-Length the headers declare: the first one's value, if it
    parses (else None), which the WSGI server will frame the body by.
    """
    decoded: list[tuple[str, str]] = []
    length: int | None = None
    length_seen = False
    try:
        for pair in headers:
            try:
                found = _DECODED[pair]  # type: ignore[index]
            except (KeyError, TypeError):  # (TypeError: a list, or a bytearray in it)
                found = _decode_header(pair)
            if found is None:
                continue  # hop-by-hop
            text, is_length = found
            decoded.append(text)
            if is_length and not length_seen:
                length_seen = True
                digits = text[1].strip(" \t")
                length = int(digits) if digits.isascii() and digits.isdigit() else None
    except (TypeError, ValueError) as exc:
        raise ResponseError(
            f"ASGI response headers must be an iterable of [name, value] pairs: {exc}"
        ) from exc
    return decoded, length


def _decode_header(pair: object) -> tuple[tuple[str, str], bool] | None:
    """One ASGI response header, checked: its PEP 3333 pair and whether it is a
    Content-Length; None for a hop-by-hop header (to drop). TypeError or ValueError
    for what is not a pair."""
    name: object
    value: object
    name, value = pair  # type: ignore[misc]
    if not isinstance(name, (bytes, bytearray)) or not isinstance(value, (bytes, bytearray)):
        raise ResponseError(f"ASGI response header names and values must be bytes, got {(name, value)!r}")
    text_name = name.decode("latin-1")
    lower = text_name.lower()
    found: tuple[tuple[str, str], bool] | None = None
    if lower not in HOP_BY_HOP:
        if not _TOKEN.fullmatch(text_name):
            raise ResponseError(f"invalid response header name {bytes(name)!r}")
        text_value = value.decode("latin-1")
        if _CONTROL.search(text_value):
            raise ResponseError(
                f"response header {text_name!r} has a control character (CR, LF, ...) in its value"
            )
        found = ((text_name, text_value), lower == "content-length")
    if (
        type(pair) is tuple
        and type(name) is bytes
        and type(value) is bytes
        and len(value) <= _CACHED_VALUE_SIZE
    ):
        _remember(_DECODED, pair, found)
    return found
