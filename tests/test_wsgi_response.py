"""The PEP 3333 response machine (bridge.wsgi_response), as tables of call sequences.

Each row is a sequence of the app's calls on one :class:`WsgiResponse` and what each call
must give: the value returned, or ``Refused(rule, state)`` for the ResponseError it must
raise. The sentence of the spec that decides a row is quoted beside it. The same rows
are replayed in recording mode (``bridge check``), where nothing raises and the broken
rules are recorded instead.

Quotes are from PEP 3333 (python/peps, peps/pep-3333.rst) and RFC 9110.
Synchronous and pure: no threads, no event loop.
"""

from __future__ import annotations

import sys
from typing import Any, NamedTuple, Optional, Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge._types import ExcInfo
from bridge.errors import HopByHopHeaderError, ResponseError
from bridge.rules import RULES
from bridge.wsgi_response import WsgiResponse, WsgiState

# -- the little language of the tables ---------------------------------------------------------

#: One call of the app: ("start", status, headers, with_exc_info), ("body", chunk),
#: ("write", data), ("finish",) or ("returned", iterable).
Step = tuple[Any, ...]

NEW = WsgiState.NEW
START_FAILED = WsgiState.START_FAILED
HEADERS_SET = WsgiState.HEADERS_SET
COMMITTED = WsgiState.COMMITTED
COMPLETE = WsgiState.COMPLETE
DONE = WsgiState.DONE


def start(status: object = "200 OK", headers: Any = (), *, exc_info: bool = False) -> Step:
    """``start_response(status, headers)``; with ``exc_info``, from an error handler."""
    return ("start", status, list(headers) if isinstance(headers, tuple) else headers, exc_info)


def cl(length: int, status: str = "200 OK") -> Step:
    """``start_response`` declaring a Content-Length."""
    return start(status, [("Content-Length", str(length))])


def body(chunk: object) -> Step:
    return ("body", chunk)


def write(data: object) -> Step:
    return ("write", data)


def finish() -> Step:
    return ("finish",)


def returned(iterable: object) -> Step:
    return ("returned", iterable)


class Refused(NamedTuple):
    """The call raised a ResponseError naming ``rule`` and ``state``."""

    rule: str
    state: str
    error: type[ResponseError] = ResponseError


class Says:
    """A str mentioning ``fragment`` (finish() reports a message for the caller to log)."""

    def __init__(self, fragment: str) -> None:
        self.fragment = fragment

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and self.fragment in other

    def __hash__(self) -> int:
        return hash(self.fragment)

    def __repr__(self) -> str:
        return f"Says({self.fragment!r})"


def app_error() -> ExcInfo:
    """What an app's error handler passes as exc_info: a caught exception, with its traceback."""
    try:
        raise ValueError("the app failed")
    except ValueError:
        return sys.exc_info()


def call(machine: WsgiResponse, step: Step) -> object:
    """Make one call; a ResponseError becomes ``Refused``, checked to name a rule of RULES."""
    name, *args = step
    try:
        if name == "start":
            status, headers, with_exc_info = args
            return machine.start(status, headers, app_error() if with_exc_info else None)
        return getattr(machine, name)(*args)
    except ResponseError as exc:
        assert exc.rule in RULES, exc
        assert exc.state is not None and exc.state in WsgiState.__members__
        assert str(exc).endswith(f"[rule {exc.rule}, in state {exc.state}]")
        return Refused(exc.rule, exc.state, type(exc))


def run(
    steps: Sequence[Step], *, method: str = "GET", strict: bool = False
) -> tuple[list[object], WsgiResponse]:
    """Enforcing mode: every call's outcome, and the machine."""
    machine = WsgiResponse(method, strict=strict)
    return [call(machine, step) for step in steps], machine


def run_recording(
    steps: Sequence[Step], *, method: str = "GET", strict: bool = False
) -> tuple[list[tuple[str, str]], WsgiResponse]:
    """Recording mode: the (rule, message) pairs recorded; any exception propagates."""
    recorded: list[tuple[str, str]] = []
    machine = WsgiResponse(
        method, strict=strict, record=lambda rule, message: recorded.append((rule, message))
    )
    for step in steps:
        name, *args = step
        if name == "start":
            status, headers, with_exc_info = args
            machine.start(status, headers, app_error() if with_exc_info else None)
        else:
            getattr(machine, name)(*args)
    return recorded, machine


def distinct(rules: Sequence[str]) -> list[str]:
    """Rule ids in order of first appearance."""
    return list(dict.fromkeys(rules))


def row(
    id: str,
    steps: Sequence[Step],
    outcomes: Sequence[object],
    state: WsgiState,
    recorded: Sequence[str] = (),
    *,
    method: str = "GET",
    strict: bool = False,
) -> Any:
    """A table row: the calls, each call's outcome (enforcing), the final state (enforcing),
    and the distinct rule ids recording mode records for the same calls."""
    return pytest.param(list(steps), list(outcomes), state, list(recorded), method, strict, id=id)


OK = "200 OK"
ERROR = "500 Internal Server Error"

# -- the table ---------------------------------------------------------------------------------

SEQUENCES = [
    # PEP 3333: "The start_response callable is used to begin the HTTP response".
    row("start", [start()], [[]], HEADERS_SET),
    row("start-body-finish", [start(), body(b"hello"), finish()], [[], b"hello", None], DONE),
    row("start-empty-iterable-finish", [start(), finish()], [[], None], DONE),
    # PEP 3333: "This argument should be supplied by the application only if
    # start_response is being called by an error handler." A first call may be one.
    row("first-start-with-exc_info", [start(ERROR, exc_info=True)], [[]], HEADERS_SET),
    # PEP 3333: "it is a fatal error to call start_response without the exc_info argument
    # if start_response has already been called within the current invocation of the
    # application. This includes the case where the first call to start_response raised
    # an error."
    row(
        "start-twice",
        [start(), start()],
        [[], Refused("wsgi-start-twice", "HEADERS_SET")],
        HEADERS_SET,
        ["wsgi-start-twice"],
    ),
    row(
        "start-twice-after-body",
        [start(), body(b"x"), start()],
        [[], b"x", Refused("wsgi-start-twice", "COMMITTED")],
        COMMITTED,
        ["wsgi-start-twice"],
    ),
    row(
        "start-twice-after-failed-start",
        [start(200), start()],
        [Refused("wsgi-status", "START_FAILED"), Refused("wsgi-start-twice", "START_FAILED")],
        START_FAILED,
        ["wsgi-status", "wsgi-start-twice"],
    ),
    # PEP 3333: "If exc_info is supplied, and no HTTP headers have been output yet,
    # start_response should replace the currently-stored HTTP response headers with the
    # newly-supplied ones, thus allowing the application to "change its mind" about the
    # output when an error has occurred."
    row(
        "exc_info-replaces-before-body",
        [cl(5), start(ERROR, [("Content-Type", "text/plain")], exc_info=True), body(b"longer than 5")],
        [[], [], b"longer than 5"],
        COMMITTED,
    ),
    row(
        "exc_info-after-failed-start",
        [start(200), start(ERROR, exc_info=True), body(b"x")],
        [Refused("wsgi-status", "START_FAILED"), [], b"x"],
        COMMITTED,
        ["wsgi-status"],
    ),
    # PEP 3333: the headers go out "only after the first iteration of the application
    # return value that yields a non-empty bytestring, or upon the application's first
    # invocation of the write() callable": an empty chunk leaves them replaceable.
    row(
        "empty-chunk-changes-nothing",
        [start(), body(b""), start(ERROR, exc_info=True)],
        [[], None, []],
        HEADERS_SET,
    ),
    row("empty-chunk-before-start", [body(b"")], [None], NEW),
    row("empty-write-commits", [start(), write(b"")], [[], b""], COMMITTED, ["wsgi-write"]),
    # PEP 3333: 'The status argument is an HTTP "status" string like "200 OK" or "404 Not
    # Found". That is, it is a string consisting of a Status-Code and a Reason-Phrase, in
    # that order and separated by a single space [...] The string must not contain control
    # characters'.
    row("status-int", [start(200)], [Refused("wsgi-status", "START_FAILED")], START_FAILED, ["wsgi-status"]),
    row(
        "status-bytes",
        [start(b"200 OK")],
        [Refused("wsgi-status", "START_FAILED")],
        START_FAILED,
        ["wsgi-status"],
    ),
    row(
        "status-no-space",
        [start("200OK")],
        [Refused("wsgi-status", "START_FAILED")],
        START_FAILED,
        ["wsgi-status"],
    ),
    row(
        "status-phrase",
        [start("OK")],
        [Refused("wsgi-status", "START_FAILED")],
        START_FAILED,
        ["wsgi-status"],
    ),
    row(
        "status-crlf",
        [start("200 OK\r\n")],
        [Refused("wsgi-status", "START_FAILED")],
        START_FAILED,
        ["wsgi-status"],
    ),
    # 1xx: an ASGI http.response.start cannot carry an interim response.
    row(
        "status-1xx",
        [start("100 Continue")],
        [Refused("wsgi-status", "START_FAILED")],
        START_FAILED,
        ["wsgi-status"],
    ),
    # PEP 3333: "the application must invoke the start_response() callable before the
    # iterable yields its first body bytestring" -- and a refused call is no call.
    row(
        "failed-start-then-body",
        [start(200), body(b"x")],
        [Refused("wsgi-status", "START_FAILED"), Refused("wsgi-no-start", "START_FAILED")],
        START_FAILED,
        ["wsgi-status"],
    ),
    row(
        "failed-start-then-write",
        [start(200), write(b"x")],
        [Refused("wsgi-status", "START_FAILED"), Refused("wsgi-no-start", "START_FAILED")],
        START_FAILED,
        ["wsgi-status", "wsgi-write"],
    ),
    row(
        "failed-start-then-finish",
        [start(200), finish()],
        [Refused("wsgi-status", "START_FAILED"), Refused("wsgi-no-start", "START_FAILED")],
        START_FAILED,
        ["wsgi-status"],
    ),
    # PEP 3333: "The response_headers argument is a list of (header_name, header_value)
    # tuples. [...] Each header_name must be a valid HTTP header field-name [...] without a
    # trailing colon or other punctuation. Each header_value must not include any control
    # characters, including carriage returns or linefeeds, either embedded or at the end."
    row(
        "headers-dict",
        [start(OK, {"X-A": "1"})],
        [Refused("wsgi-headers", "START_FAILED")],
        START_FAILED,
        ["wsgi-headers"],
    ),
    row(
        "header-not-a-pair",
        [start(OK, [("X-A",)])],
        [Refused("wsgi-headers", "START_FAILED")],
        START_FAILED,
        ["wsgi-headers"],
    ),
    row(
        "header-bytes",
        [start(OK, [(b"X-A", b"1")])],
        [Refused("wsgi-headers", "START_FAILED")],
        START_FAILED,
        ["wsgi-headers"],
    ),
    row(
        "header-name-space",
        [start(OK, [("X A", "1")])],
        [Refused("wsgi-headers", "START_FAILED")],
        START_FAILED,
        ["wsgi-headers"],
    ),
    row(
        "header-name-colon",
        [start(OK, [("X-A:", "1")])],
        [Refused("wsgi-headers", "START_FAILED")],
        START_FAILED,
        ["wsgi-headers"],
    ),
    row(
        "header-value-crlf",
        [start(OK, [("X-A", "1\r\nSet-Cookie: a=b")])],
        [Refused("wsgi-headers", "START_FAILED")],
        START_FAILED,
        ["wsgi-headers"],
    ),
    # PEP 3333: "all "strings" referred to in this specification must contain only code
    # points representable in ISO-8859-1 encoding [...] It is a fatal error for an
    # application to supply strings containing any other Unicode character".
    row(
        "header-value-not-latin1",
        [start(OK, [("X-A", "\u20ac")])],
        [Refused("wsgi-headers", "START_FAILED")],
        START_FAILED,
        ["wsgi-headers"],
    ),
    row("header-value-latin1", [start(OK, [("X-A", "caf\u00e9")])], [[]], HEADERS_SET),
    row(
        "content-length-not-a-number",
        [start(OK, [("Content-Length", "ten")])],
        [Refused("wsgi-headers", "START_FAILED")],
        START_FAILED,
        ["wsgi-headers"],
    ),
    row(
        "content-length-twice-different",
        [start(OK, [("Content-Length", "1"), ("Content-Length", "2")])],
        [Refused("wsgi-headers", "START_FAILED")],
        START_FAILED,
        ["wsgi-headers"],
    ),
    row(
        "failed-headers-then-body",
        [start(OK, [("X A", "1")]), body(b"x")],
        [Refused("wsgi-headers", "START_FAILED"), Refused("wsgi-no-start", "START_FAILED")],
        START_FAILED,
        ["wsgi-headers"],
    ),
    # PEP 3333: 'Applications and middleware are forbidden from using HTTP/1.1 "hop-by-hop"
    # features or headers [...] a server or gateway should consider it a fatal error for an
    # application to attempt sending them, and raise an error if they are supplied to
    # start_response().' By default they are dropped (and reported); strict raises.
    row(
        "hop-by-hop-dropped",
        [start(OK, [("Connection", "close"), ("X-A", "1")])],
        [["Connection"]],
        HEADERS_SET,
        ["wsgi-hop-by-hop"],
    ),
    row(
        "transfer-encoding-dropped",
        [start(OK, [("Transfer-Encoding", "chunked")]), body(b"x")],
        [["Transfer-Encoding"], b"x"],
        COMMITTED,
        ["wsgi-hop-by-hop"],
    ),
    row(
        "hop-by-hop-strict",
        [start(OK, [("Keep-Alive", "timeout=5")])],
        [Refused("wsgi-hop-by-hop", "START_FAILED", HopByHopHeaderError)],
        START_FAILED,
        ["wsgi-hop-by-hop"],
        strict=True,
    ),
    row(
        "hop-by-hop-strict-then-body",
        [start(OK, [("Upgrade", "h2c")]), body(b"x")],
        [
            Refused("wsgi-hop-by-hop", "START_FAILED", HopByHopHeaderError),
            Refused("wsgi-no-start", "START_FAILED"),
        ],
        START_FAILED,
        ["wsgi-hop-by-hop"],
        strict=True,
    ),
    # PEP 3333: "the application must invoke the start_response() callable before the
    # iterable yields its first body bytestring".
    row("body-before-start", [body(b"x")], [Refused("wsgi-no-start", "NEW")], NEW, ["wsgi-no-start"]),
    row(
        "write-before-start",
        [write(b"x")],
        [Refused("wsgi-no-start", "NEW")],
        NEW,
        ["wsgi-no-start", "wsgi-write"],
    ),
    # PEP 3333: "the application object must return an iterable yielding zero or more
    # bytestrings", and '"Bytestrings" (which are implemented using the bytes type'.
    row(
        "chunk-str",
        [start(), body("text")],
        [[], Refused("wsgi-chunk-type", "HEADERS_SET")],
        HEADERS_SET,
        ["wsgi-chunk-type"],
    ),
    row(
        "chunk-bytearray",
        [start(), body(bytearray(b"x"))],
        [[], Refused("wsgi-chunk-type", "HEADERS_SET")],
        HEADERS_SET,
        ["wsgi-chunk-type"],
    ),
    row(
        "chunk-int",
        [start(), body(104)],
        [[], Refused("wsgi-chunk-type", "HEADERS_SET")],
        HEADERS_SET,
        ["wsgi-chunk-type"],
    ),
    row(
        "chunk-none",
        [start(), body(None)],
        [[], Refused("wsgi-chunk-type", "HEADERS_SET")],
        HEADERS_SET,
        ["wsgi-chunk-type"],
    ),
    row(
        "chunk-str-after-body",
        [start(), body(b"a"), body("b")],
        [[], b"a", Refused("wsgi-chunk-type", "COMMITTED")],
        COMMITTED,
        ["wsgi-chunk-type"],
    ),
    # PEP 3333: write() "accepts a single parameter: a bytestring".
    row(
        "write-str",
        [start(), write("text")],
        [[], Refused("wsgi-chunk-type", "HEADERS_SET")],
        HEADERS_SET,
        ["wsgi-chunk-type"],
    ),
    # PEP 3333: "If the application supplies a Content-Length header, the server should not
    # transmit more bytes to the client than the header allows, and should stop iterating
    # over the response when enough data has been sent".
    row("content-length-exact", [cl(5), body(b"hello"), finish()], [[], b"hello", None], DONE),
    row("content-length-exact-in-chunks", [cl(5), body(b"he"), body(b"llo")], [[], b"he", b"llo"], COMPLETE),
    row(
        "content-length-exact-then-more",
        [cl(5), body(b"hello"), body(b"more"), body(b""), finish()],
        [[], b"hello", b"", None, None],
        DONE,
        ["content-length"],
    ),
    row(
        "content-length-over-in-one-chunk",
        [cl(3), body(b"abcdef")],
        [[], b"abc"],
        COMPLETE,
        ["content-length"],
    ),
    row(
        "content-length-over-across-chunks",
        [cl(5), body(b"abc"), body(b"defg"), body(b"h")],
        [[], b"abc", b"de", b""],
        COMPLETE,
        ["content-length"],
    ),
    row("content-length-zero", [cl(0), body(b"x")], [[], b""], COMPLETE, ["content-length"]),
    row(
        "content-length-same-twice",
        [start(OK, [("Content-Length", "2")] * 2), body(b"abc")],
        [[], b"ab"],
        COMPLETE,
        ["content-length"],
    ),
    # PEP 3333: write() takes "a bytestring to be written as part of the HTTP response
    # body, that is treated exactly as though it had been yielded by the output iterable",
    # and the server should "raise an error if the application tries to write() past that
    # point".
    row(
        "write-then-body",
        [start(), write(b"ab"), body(b"cd"), finish()],
        [[], b"ab", b"cd", None],
        DONE,
        ["wsgi-write"],
    ),
    row(
        "write-clipped-to-content-length",
        [cl(3), write(b"abcde")],
        [[], b"abc"],
        COMPLETE,
        ["wsgi-write", "content-length"],
    ),
    row(
        "write-past-content-length",
        [cl(3), write(b"abc"), write(b"d")],
        [[], b"abc", Refused("content-length", "COMPLETE")],
        COMPLETE,
        ["wsgi-write", "content-length"],
    ),
    row(
        "empty-write-at-content-length",
        [cl(3), write(b"abc"), write(b"")],
        [[], b"abc", b""],
        COMPLETE,
        ["wsgi-write"],
    ),
    # PEP 3333: "if the application does not provide enough data to meet its stated
    # Content-Length, the server should close the connection and log or otherwise report
    # the error." finish() returns the report; it does not raise.
    row(
        "content-length-short",
        [cl(5), body(b"abc"), finish()],
        [[], b"abc", Says("declared Content-Length 5 but sent only 3 bytes")],
        DONE,
        ["content-length"],
    ),
    row(
        "content-length-short-nothing-sent",
        [cl(5), finish()],
        [[], Says("sent only 0 bytes")],
        DONE,
        ["content-length"],
    ),
    # RFC 9110 9.3.2: "The HEAD method is identical to GET except that the server MUST NOT
    # send content in the response."
    row("content-length-short-head", [cl(5), finish()], [[], None], DONE, method="HEAD"),
    # finish() of a response that never started.
    row("finish-never-started", [finish()], [Refused("wsgi-no-start", "NEW")], NEW, ["wsgi-no-start"]),
    # RFC 9110 15.3.5: "A 204 response is terminated by the end of the header section; it
    # cannot contain content or trailers." 15.4.5: "A 304 response is terminated by the
    # end of the header section; it cannot contain content or trailers."
    row(
        "204-with-body",
        [start("204 No Content"), body(b"x"), finish()],
        [[], b"x", Says("204 response carried a 1-byte body")],
        DONE,
        ["no-body-status"],
    ),
    row(
        "304-with-body",
        [start("304 Not Modified"), body(b"abc"), finish()],
        [[], b"abc", Says("304 response carried a 3-byte body")],
        DONE,
        ["no-body-status"],
    ),
    row("204-without-body", [start("204 No Content"), body(b""), finish()], [[], None, None], DONE),
    # PEP 3333: "When called by the server, the application object must return an iterable
    # yielding zero or more bytestrings." Iterating bytes gives ints; str is not bytes.
    row("returned-bytes", [returned(b"body")], [Refused("wsgi-iterable", "NEW")], NEW, ["wsgi-iterable"]),
    row(
        "returned-bytearray",
        [returned(bytearray(b"body"))],
        [Refused("wsgi-iterable", "NEW")],
        NEW,
        ["wsgi-iterable"],
    ),
    row("returned-str", [returned("body")], [Refused("wsgi-iterable", "NEW")], NEW, ["wsgi-iterable"]),
    row("returned-none", [returned(None)], [Refused("wsgi-iterable", "NEW")], NEW, ["wsgi-iterable"]),
    row(
        "returned-bytes-after-start",
        [start(), returned(b"body")],
        [[], Refused("wsgi-iterable", "HEADERS_SET")],
        HEADERS_SET,
        ["wsgi-iterable"],
    ),
    row("returned-list", [start(), returned([b"body"])], [[], None], HEADERS_SET),
    row("returned-generator", [returned(iter([b"body"]))], [None], NEW),
    row("returned-empty-list", [returned([])], [None], NEW),
]


@pytest.mark.parametrize(("steps", "outcomes", "state", "recorded", "method", "strict"), SEQUENCES)
def test_each_call_gives_what_pep_3333_says(
    steps: list[Step],
    outcomes: list[object],
    state: WsgiState,
    recorded: list[str],
    method: str,
    strict: bool,
) -> None:
    got, machine = run(steps, method=method, strict=strict)
    assert got == outcomes
    assert machine.state is state


@pytest.mark.parametrize(("steps", "outcomes", "state", "recorded", "method", "strict"), SEQUENCES)
def test_recording_mode_records_the_rules_and_never_raises(
    steps: list[Step],
    outcomes: list[object],
    state: WsgiState,
    recorded: list[str],
    method: str,
    strict: bool,
) -> None:
    pairs, _ = run_recording(steps, method=method, strict=strict)
    assert distinct([rule for rule, _ in pairs]) == recorded
    assert all(isinstance(message, str) and message for _, message in pairs)


# -- exc_info once the headers are final ---------------------------------------------------------

# PEP 3333: "However, if exc_info is provided, and the HTTP headers have already been sent,
# start_response must raise an error, and should re-raise using the exc_info tuple. That is::
#     raise exc_info[1].with_traceback(exc_info[2])"
HEADERS_FINAL = [
    pytest.param([start(), body(b"x")], COMMITTED, id="after-body"),
    pytest.param([start(), write(b"")], COMMITTED, id="after-empty-write"),
    pytest.param([cl(1), body(b"x")], COMPLETE, id="after-content-length-reached"),
    pytest.param([start(), finish()], DONE, id="after-finish"),
]


@pytest.mark.parametrize("record", [False, True], ids=["enforcing", "recording"])
@pytest.mark.parametrize(("prelude", "state"), HEADERS_FINAL)
def test_exc_info_after_headers_sent_reraises_the_apps_own_exception(
    prelude: list[Step], state: WsgiState, record: bool
) -> None:
    recorded: list[tuple[str, str]] = []
    machine = WsgiResponse("GET", record=(lambda r, m: recorded.append((r, m))) if record else None)
    for step in prelude:
        call(machine, step)
    recorded.clear()
    exc_info = app_error()
    original = exc_info[1]
    with pytest.raises(ValueError) as raised:
        machine.start(ERROR, [], exc_info)
    assert raised.value is original
    assert not isinstance(raised.value, ResponseError)
    # "re-raise using the exc_info tuple": the app's traceback is kept.
    frames = []
    tb = raised.value.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame.f_code.co_name)
        tb = tb.tb_next
    assert "app_error" in frames
    # Nothing changed: the headers already went out.
    assert machine.state is state
    assert machine.status == 200
    assert recorded == []


def test_exc_info_before_body_replaces_status_and_headers() -> None:
    machine = WsgiResponse("GET")
    machine.start("200 OK", [("Content-Length", "5"), ("X-A", "1")])
    machine.start("500 Internal Server Error", [("Content-Type", "text/plain")], app_error())
    assert machine.state is HEADERS_SET
    assert machine.status == 500
    assert machine.headers == [(b"content-type", b"text/plain")]
    assert machine.content_length is None
    assert not machine.committed


def test_hop_by_hop_header_is_left_out_of_the_headers() -> None:
    machine = WsgiResponse("GET")
    assert machine.start("200 OK", [("Connection", "close"), ("X-A", "1")]) == ["Connection"]
    assert machine.headers == [(b"x-a", b"1")]


def test_strict_hop_by_hop_error_is_a_hop_by_hop_header_error() -> None:
    machine = WsgiResponse("GET", strict=True)
    with pytest.raises(HopByHopHeaderError) as raised:
        machine.start("200 OK", [("Transfer-Encoding", "chunked")])
    assert (raised.value.rule, raised.value.state) == ("wsgi-hop-by-hop", "START_FAILED")


def test_not_iterable_names_the_wsgi_iterable_rule() -> None:
    machine = WsgiResponse("GET")
    machine.start("200 OK", [])
    error = machine.not_iterable(42)
    assert isinstance(error, ResponseError)
    assert (error.rule, error.state) == ("wsgi-iterable", "HEADERS_SET")
    assert "int" in str(error)


def test_recorded_write_is_a_wsgi_write_warning() -> None:
    # PEP 3333: "New WSGI applications and frameworks should not use the write() callable
    # if it is possible to avoid doing so."
    pairs, machine = run_recording([start(), write(b"abc")])
    assert [rule for rule, _ in pairs] == ["wsgi-write"]
    assert RULES["wsgi-write"].severity == "warning"
    assert machine.state is COMMITTED


def test_recording_mode_goes_on_after_a_broken_start() -> None:
    pairs, machine = run_recording([start(200, [("X A", "1")]), body(b"x"), finish()])
    assert [rule for rule, _ in pairs] == ["wsgi-status", "wsgi-headers"]
    assert machine.state is DONE
    assert machine.status is None


def test_recording_mode_says_when_the_app_never_started() -> None:
    pairs, machine = run_recording([finish()])
    assert pairs == [("wsgi-no-start", "the app never called start_response")]
    assert machine.state is DONE


# -- committed / complete ------------------------------------------------------------------------


# PEP 3333: "response headers must not be sent until there is actual body data available".
@pytest.mark.parametrize(
    ("steps", "committed", "complete"),
    [
        pytest.param([], False, False, id="new"),
        pytest.param([start(200)], False, False, id="start-failed"),
        pytest.param([start()], False, False, id="headers-set"),
        pytest.param([start(), body(b"x")], True, False, id="committed"),
        pytest.param([cl(1), body(b"x")], True, True, id="complete"),
        pytest.param([cl(1), body(b"x"), finish()], True, False, id="done"),
    ],
)
def test_committed_and_complete_follow_the_state(steps: list[Step], committed: bool, complete: bool) -> None:
    _, machine = run(steps)
    assert (machine.committed, machine.complete) == (committed, complete)


# -- headers_for_whole_body ----------------------------------------------------------------------


# PEP 3333: "If the application does not call the write() callable, and returns an iterable
# whose len() is 1, then the server can automatically determine Content-Length by taking the
# length of the first bytestring yielded by the iterable."
# RFC 9110 8.6: "A server MUST NOT send a Content-Length header field in any response with a
# status code of 1xx (Informational) or 204 (No Content)." and "A server MAY send a
# Content-Length header field in a response to a HEAD request (Section 9.3.2); a server MUST
# NOT send Content-Length in such a response unless its field value equals the decimal number
# of octets that would have been sent in the content of a response if the same request had
# used the GET method." (The app did not say that number for HEAD; 304 likewise.)
@pytest.mark.parametrize(
    ("method", "status", "headers", "length", "expected"),
    [
        pytest.param("GET", OK, [], 5, [(b"content-length", b"5")], id="adds-content-length"),
        pytest.param("GET", OK, [], 0, [(b"content-length", b"0")], id="adds-zero"),
        pytest.param(
            "GET",
            OK,
            [("Content-Type", "text/plain")],
            5,
            [(b"content-type", b"text/plain"), (b"content-length", b"5")],
            id="after-the-apps-headers",
        ),
        pytest.param("HEAD", OK, [], 5, [], id="not-for-head"),
        pytest.param("GET", "204 No Content", [], 0, [], id="not-for-204"),
        pytest.param("GET", "304 Not Modified", [], 0, [], id="not-for-304"),
        pytest.param(
            "GET", OK, [("Content-Length", "3")], 5, [(b"content-length", b"3")], id="not-when-app-set-one"
        ),
    ],
)
def test_headers_for_whole_body(
    method: str, status: str, headers: list[tuple[str, str]], length: int, expected: list[tuple[bytes, bytes]]
) -> None:
    machine = WsgiResponse(method)
    machine.start(status, headers)
    assert machine.headers_for_whole_body(length) == expected


# -- defects the table tests found, fixed -------------------------------------------------------


def test_304_with_content_length_and_no_body_is_not_a_short_body() -> None:
    # RFC 9110 8.6: "A server MAY send a Content-Length header field in a 304 (Not Modified)
    # response to a conditional GET request (Section 15.4.5); a server MUST NOT send
    # Content-Length in such a response unless its field value equals the decimal number of
    # octets that would have been sent in the content of a 200 (OK) response to the same
    # request." 15.4.5: "it cannot contain content".
    outcomes, _ = run([cl(100, "304 Not Modified"), finish()])
    assert outcomes == [[], None]
    pairs, _ = run_recording([cl(100, "304 Not Modified"), finish()])
    assert pairs == []


def test_recording_mode_records_bytes_after_content_length_was_reached() -> None:
    # RULES["content-length"]: "the body is exactly as long as Content-Length says". The
    # same 4-byte body against Content-Length 3 is recorded as [b"abcd"] but not as
    # [b"abc", b"d"].
    assert [rule for rule, _ in run_recording([cl(3), body(b"abcd")])[0]] == ["content-length"]
    assert [rule for rule, _ in run_recording([cl(3), body(b"abc"), body(b"d")])[0]] == ["content-length"]


# -- properties ----------------------------------------------------------------------------------

chunks = st.lists(st.binary(max_size=12), max_size=8)


@given(chunks=chunks, length=st.one_of(st.none(), st.integers(min_value=0, max_value=60)))
def test_body_sends_the_first_content_length_bytes(chunks: list[bytes], length: Optional[int]) -> None:
    """Whatever the chunking: what body() returns, joined, is the body clipped to its
    Content-Length; COMPLETE exactly when non-empty bytes reached it."""
    data = b"".join(chunks)
    machine = WsgiResponse("GET")
    machine.start("200 OK", [] if length is None else [("Content-Length", str(length))])
    sent = []
    for chunk in chunks:
        out = machine.body(chunk)
        if chunk:
            assert out is not None
            sent.append(out)
        else:
            assert out is None
    expected = data if length is None else data[:length]
    assert b"".join(sent) == expected
    assert machine.sent == len(expected)
    reached = length is not None and len(data) >= length and len(data) > 0
    if reached:
        assert machine.state is COMPLETE
    else:
        assert machine.state is (COMMITTED if data else HEADERS_SET)
    short = length is not None and len(data) < length
    message = machine.finish()
    assert (message is not None) == short
    assert machine.state is DONE


@given(
    calls=st.lists(st.tuples(st.sampled_from(["body", "write"]), st.binary(max_size=8)), max_size=10),
    length=st.integers(min_value=0, max_value=30),
)
def test_body_and_write_together_never_send_past_content_length(
    calls: list[tuple[str, bytes]], length: int
) -> None:
    """Mixed body() and write(): the bytes sent are the first Content-Length bytes of the
    body, and write() of non-empty data once they are all sent is refused."""
    machine = WsgiResponse("GET")
    machine.start("200 OK", [("Content-Length", str(length))])
    sent = []
    offered = b""
    committed = False  # a write(), or a non-empty chunk, commits the headers
    for kind, data in calls:
        complete = committed and len(offered) >= length
        assert machine.complete is complete
        if kind == "write" and data and complete:
            with pytest.raises(ResponseError) as raised:
                machine.write(data)
            assert (raised.value.rule, raised.value.state) == ("content-length", "COMPLETE")
            continue
        out = machine.write(data) if kind == "write" else machine.body(data)
        committed = committed or kind == "write" or bool(data)
        offered += data
        if out is not None:
            sent.append(out)
    assert b"".join(sent) == offered[:length]
    assert machine.sent == min(length, len(offered))


# -- a body sent by the server from a file's path (ASGI's Path Send extension) ---------------------
# The extension: "Except for the characteristics of path-send, it should behave the same
# as ordinary http.response.body" and "The ASGI application itself is responsible to
# send the relevant headers ... like the Content-Type and Content-Length headers".


@pytest.mark.parametrize(
    ("method", "before", "size", "allowed"),
    [
        pytest.param("GET", [start()], 100, True, id="no-length: allowed, the size becomes it"),
        pytest.param("GET", [cl(100)], 100, True, id="the declared length is the file's"),
        pytest.param("GET", [cl(50)], 100, False, id="another declared length: the iterable is read"),
        pytest.param("HEAD", [start()], 100, False, id="HEAD: no body at all"),
        pytest.param("GET", [start("204 No Content")], 100, False, id="a status without a body"),
        pytest.param("GET", [], 100, False, id="no start_response yet"),
        pytest.param("GET", [start(), write(b"x")], 100, False, id="bytes already went out"),
    ],
)
def test_body_from_path(method: str, before: list[Step], size: int, allowed: bool) -> None:
    response = WsgiResponse(method)
    for step in before:
        if step[0] == "start":
            response.start(step[1], step[2])
        else:
            response.write(step[1])
    state = response.state
    assert response.body_from_path(size) is allowed
    if allowed:
        assert (response.state, response.sent, response.complete) == (COMPLETE, size, True)
        assert response.finish() is None  # nothing short, nothing to log
        assert (b"content-length", str(size).encode()) in response.headers_for_whole_body(size)
    else:
        assert response.state is state  # untouched: the iterable is read as usual
