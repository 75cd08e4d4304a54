"""The ASGI http send side as a state machine (bridge.asgi_response), as tables of
message sequences.

Each row is a sequence of what the app does on one :class:`AsgiResponse` (a message to
``send()``, its task returning, the client leaving) and what each must give: ``Start``,
``Body``, None, ``Refused(rule, state)`` for the ResponseError it must raise,
``CutAt(data, rule, state)`` for a body cut at its Content-Length (the bytes that may
still go, and the error the response then fails with), or
``Raised(ClientDisconnected)``. The spec's sentence is quoted beside the rows it
decides. The same rows are replayed in recording mode (``bridge check``), which records the rules
(and the checks only a report needs).

Quotes are from the ASGI specs (django/asgiref, specs/www.rst and specs/asgi.rst) and
RFC 9110. Synchronous and pure: no threads, no event loop.
"""

from __future__ import annotations

import string
from typing import Any, NamedTuple, Optional, Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.asgi_response import AsgiResponse, AsgiState, Body, Cut, PathBody, Start
from bridge.errors import BridgeError, ClientDisconnected, ResponseError
from bridge.rules import RULES

AWAIT_START = AsgiState.AWAIT_START
BODY = AsgiState.BODY
DONE = AsgiState.DONE
CLIENT_GONE = AsgiState.CLIENT_GONE


class _Event(NamedTuple):
    """Not a message: the app's task returned, or the client left."""

    name: str


RETURNED = _Event("returned")
GONE = _Event("client_gone")


def start(status: object = 200, headers: Any = None, **extra: object) -> dict[str, object]:
    message: dict[str, object] = {"type": "http.response.start", "status": status, **extra}
    if headers is not None:
        message["headers"] = headers
    return message


def body(data: object = None, more: object = None, **extra: object) -> dict[str, object]:
    message: dict[str, object] = {"type": "http.response.body", **extra}
    if data is not None:
        message["body"] = data
    if more is not None:
        message["more_body"] = more
    return message


def pathsend(path: object) -> dict[str, object]:
    return {"type": "http.response.pathsend", "path": path}


def cl(length: int, status: int = 200) -> dict[str, object]:
    return start(status, [(b"content-length", str(length).encode())])


class Refused(NamedTuple):
    rule: str
    state: str


class Raised(NamedTuple):
    error: type[BaseException]


class CutAt(NamedTuple):
    data: bytes
    rule: str
    state: str


def checked(exc: ResponseError) -> Refused:
    assert exc.rule in RULES, exc
    assert exc.state is not None and exc.state in AsgiState.__members__
    assert str(exc).endswith(f"[rule {exc.rule}, in state {exc.state}]")
    return Refused(exc.rule, exc.state)


def call(machine: AsgiResponse, step: object) -> object:
    """One step; a ResponseError becomes ``Refused``, checked to name a rule of RULES."""
    try:
        event = call_raw(machine, step)
    except ResponseError as exc:
        return checked(exc)
    except ClientDisconnected as exc:
        return Raised(type(exc))
    if isinstance(event, Cut):
        return CutAt(event.data, *checked(event.error))
    return event


def run(steps: Sequence[object], *, head: bool = False) -> tuple[list[object], AsgiResponse]:
    machine = AsgiResponse(head=head)
    return [call(machine, step) for step in steps], machine


def run_recording(
    steps: Sequence[object], *, head: bool = False
) -> tuple[list[tuple[str, str]], AsgiResponse]:
    """Recording mode: the (rule, message) pairs. A refusal still raises (``bridge check``
    suppresses it, the adapter behind refuses the message itself); it must have been
    recorded just before."""
    recorded: list[tuple[str, str]] = []
    machine = AsgiResponse(head=head, record=lambda rule, message: recorded.append((rule, message)))
    for step in steps:
        try:
            call_raw(machine, step)
        except ResponseError as exc:
            assert recorded and recorded[-1][0] == exc.rule
        except ClientDisconnected:
            pass
    return recorded, machine


def call_raw(machine: AsgiResponse, step: object) -> object:
    if step == RETURNED:
        return machine.returned()
    if step == GONE:
        machine.client_gone()
        return None
    return machine.send(step)


def distinct(rules: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(rules))


def row(
    id: str,
    steps: Sequence[object],
    outcomes: Sequence[object],
    state: AsgiState,
    recorded: Sequence[str] = (),
    *,
    head: bool = False,
) -> Any:
    """The messages, each one's outcome (enforcing), the final state (enforcing), and the
    distinct rule ids recording mode records for the same messages."""
    return pytest.param(list(steps), list(outcomes), state, list(recorded), head, id=id)


OK = Start("200 OK", [])

SEQUENCES = [
    # www.rst, Response Start: "Sent by the application to start sending a response to the
    # client. Needs to be followed by at least one response content message."
    # Response Body: "If more_body is set to False, and the server is not expecting
    # Response Trailers this will complete the response."
    row(
        "start-then-final-body",
        [start(200, [(b"content-type", b"text/plain")]), body(b"hello")],
        [Start("200 OK", [("content-type", "text/plain")]), Body(b"hello", False)],
        DONE,
    ),
    row(
        "start-then-final-body-explicit",
        [start(), body(b"hello", False)],
        [OK, Body(b"hello", False)],
        DONE,
    ),
    # "body (byte string) -- [...] Optional; if missing defaults to b"""; "more_body (bool)
    # [...] Optional; if missing defaults to False."
    row("body-keys-optional", [start(), body()], [OK, Body(b"", False)], DONE),
    # "body [...] Concatenated onto any previous body values sent in this connection scope."
    row(
        "chunks-with-more-body",
        [start(), body(b"a", True), body(b"", True), body(b"b", True), body(b"c")],
        [OK, Body(b"a", True), Body(b"", True), Body(b"b", True), Body(b"c", False)],
        DONE,
    ),
    row("start-only", [start()], [OK], BODY),
    row("status-reason-phrase", [start(404)], [Start("404 Not Found", [])], BODY),
    row("status-unknown-code", [start(299)], [Start("299 Unknown", [])], BODY),
    # RFC 9110 9.3.2: "The HEAD method is identical to GET except that the server MUST NOT
    # send content in the response." The bytes go; the framing stays.
    row(
        "head-drops-body-bytes",
        [start(), body(b"ab", True), body(b"c")],
        [OK, Body(b"", True), Body(b"", False)],
        DONE,
        head=True,
    ),
    # "headers (Iterable[[byte string, byte string]]) -- An iterable of [name, value]
    # two-item iterables [...] Optional; if missing defaults to an empty list."
    row("headers-missing", [start()], [OK], BODY),
    row("headers-as-lists", [start(200, [[b"x-a", b"1"]])], [Start("200 OK", [("x-a", "1")])], BODY),
    row(
        "headers-bytearray",
        [start(200, [(bytearray(b"x-a"), bytearray(b"1"))])],
        [Start("200 OK", [("x-a", "1")])],
        BODY,
    ),
    row(
        "headers-repeated-in-order",
        [start(200, ((b"set-cookie", b"a=1"), (b"set-cookie", b"b=2")))],
        [Start("200 OK", [("set-cookie", "a=1"), ("set-cookie", "b=2")])],
        BODY,
    ),
    # "You may send a Transfer-Encoding header in this message, but the server must ignore
    # it."
    row(
        "transfer-encoding-ignored",
        [start(200, [(b"transfer-encoding", b"chunked"), (b"x-a", b"1")])],
        [Start("200 OK", [("x-a", "1")])],
        BODY,
        ["asgi-transfer-encoding"],
    ),
    # "Header names must be lowercased." Passed on (WSGI header names are case-blind);
    # recorded for the report.
    row(
        "header-name-not-lowercase",
        [start(200, [(b"Content-Type", b"text/plain")])],
        [Start("200 OK", [("Content-Type", "text/plain")])],
        BODY,
        ["asgi-header-case"],
    ),
    # asgi.rst: "the presence of additional keys in the event dictionary should not raise
    # an exception."
    row(
        "extra-keys-allowed",
        [start(200, x_extra=1), body(b"a", x_extra=2)],
        [OK, Body(b"a", False)],
        DONE,
    ),
    # Response Start "Needs to be followed by at least one response content message":
    # start comes first, and once.
    row(
        "body-before-start", [body(b"x")], [Refused("asgi-order", "AWAIT_START")], AWAIT_START, ["asgi-order"]
    ),
    row("start-twice", [start(), start()], [OK, Refused("asgi-order", "BODY")], BODY, ["asgi-order"]),
    row(
        "start-after-body",
        [start(), body(b"a", True), start()],
        [OK, Body(b"a", True), Refused("asgi-order", "BODY")],
        BODY,
        ["asgi-order"],
    ),
    # Response Body, more_body: "If False, and the server is not expecting Response Trailers
    # response will be taken as complete and closed, and any further messages on the channel
    # will be ignored."
    row(
        "body-after-done-ignored",
        [start(), body(b"a"), body(b"b"), body(b"c", True)],
        [OK, Body(b"a", False), None, None],
        DONE,
        ["asgi-after-end"],
    ),
    row(
        "start-after-done-refused",
        [start(), body(b"a"), start()],
        [OK, Body(b"a", False), Refused("asgi-order", "DONE")],
        DONE,
        ["asgi-after-end", "asgi-order"],
    ),
    # asgi.rst: "Each event is a dict with a top-level type key that contains a Unicode
    # string of the message type." and "If a server receives an invalid event dictionary -
    # for example, having an unknown type, missing keys an event type should have, or with
    # wrong Python types for objects (e.g. Unicode strings for HTTP headers) - it should
    # raise an exception out of the send awaitable back to the application."
    row(
        "message-str",
        ["http.response.start"],
        [Refused("asgi-message", "AWAIT_START")],
        AWAIT_START,
        ["asgi-message"],
    ),
    row("message-none", [None], [Refused("asgi-message", "AWAIT_START")], AWAIT_START, ["asgi-message"]),
    row(
        "message-list",
        [[("type", "http.response.start")]],
        [Refused("asgi-message", "AWAIT_START")],
        AWAIT_START,
        ["asgi-message"],
    ),
    row(
        "message-no-type",
        [{"status": 200}],
        [Refused("asgi-message", "AWAIT_START")],
        AWAIT_START,
        ["asgi-message"],
    ),
    row(
        "message-unknown-type",
        [{"type": "http.response.push", "path": "/a"}],
        [Refused("asgi-message", "AWAIT_START")],
        AWAIT_START,
        ["asgi-message"],
    ),
    row(
        "message-websocket-type",
        [start(), {"type": "websocket.send", "text": "x"}],
        [OK, Refused("asgi-message", "BODY")],
        BODY,
        ["asgi-message"],
    ),
    row(
        "message-request-type",
        [start(), {"type": "http.request"}],
        [OK, Refused("asgi-message", "BODY")],
        BODY,
        ["asgi-message"],
    ),
    # "trailers (bool) -- Signifies if the application will send trailers. If True, the
    # server must wait until it receives a "http.response.trailers" message after the
    # Response Body event." The extension is never advertised (WSGI has no trailers):
    # a trailers message is ignored.
    row(
        "trailers-ignored",
        [
            start(trailers=True),
            body(b"a", True),
            {"type": "http.response.trailers", "headers": []},
            body(b"b"),
        ],
        [OK, Body(b"a", True), None, Body(b"b", False)],
        DONE,
    ),
    row(
        "trailers-after-done-ignored",
        [start(), body(b"a"), {"type": "http.response.trailers", "headers": [(b"x-sum", b"1")]}],
        [OK, Body(b"a", False), None],
        DONE,
    ),
    # "status (int) -- HTTP status code." 1xx cannot go through WSGI; a status line is WSGI's.
    row(
        "status-line",
        [start("200 OK")],
        [Refused("asgi-status", "AWAIT_START")],
        AWAIT_START,
        ["asgi-status"],
    ),
    row("status-str", [start("200")], [Refused("asgi-status", "AWAIT_START")], AWAIT_START, ["asgi-status"]),
    row(
        "status-float", [start(200.0)], [Refused("asgi-status", "AWAIT_START")], AWAIT_START, ["asgi-status"]
    ),
    row("status-bool", [start(True)], [Refused("asgi-status", "AWAIT_START")], AWAIT_START, ["asgi-status"]),
    row("status-none", [start(None)], [Refused("asgi-status", "AWAIT_START")], AWAIT_START, ["asgi-status"]),
    row("status-100", [start(100)], [Refused("asgi-status", "AWAIT_START")], AWAIT_START, ["asgi-status"]),
    row("status-103", [start(103)], [Refused("asgi-status", "AWAIT_START")], AWAIT_START, ["asgi-status"]),
    row("status-199", [start(199)], [Refused("asgi-status", "AWAIT_START")], AWAIT_START, ["asgi-status"]),
    row("status-99", [start(99)], [Refused("asgi-status", "AWAIT_START")], AWAIT_START, ["asgi-status"]),
    row(
        "status-negative",
        [start(-200)],
        [Refused("asgi-status", "AWAIT_START")],
        AWAIT_START,
        ["asgi-status"],
    ),
    row(
        "status-missing",
        [{"type": "http.response.start", "headers": []}],
        [Refused("asgi-status", "AWAIT_START")],
        AWAIT_START,
        ["asgi-status"],
    ),
    row(
        "bad-status-then-body",
        [start("200 OK"), body(b"x")],
        [Refused("asgi-status", "AWAIT_START"), Refused("asgi-order", "AWAIT_START")],
        AWAIT_START,
        ["asgi-status", "asgi-order"],
    ),
    # headers: "An iterable of [name, value] two-item iterables, where name is the header
    # name, and value is the header value", both byte strings ("wrong Python types for
    # objects (e.g. Unicode strings for HTTP headers)" raise).
    row(
        "headers-str",
        [start(200, [("x-a", "1")])],
        [Refused("asgi-headers", "AWAIT_START")],
        AWAIT_START,
        ["asgi-headers"],
    ),
    row(
        "headers-none",
        [{"type": "http.response.start", "status": 200, "headers": None}],
        [Refused("asgi-headers", "AWAIT_START")],
        AWAIT_START,
        ["asgi-headers"],
    ),
    row(
        "headers-int",
        [start(200, 5)],
        [Refused("asgi-headers", "AWAIT_START")],
        AWAIT_START,
        ["asgi-headers"],
    ),
    row(
        "headers-dict",
        [start(200, {b"x-a": b"1"})],
        [Refused("asgi-headers", "AWAIT_START")],
        AWAIT_START,
        ["asgi-headers"],
    ),
    row(
        "header-three-items",
        [start(200, [(b"x-a", b"1", b"2")])],
        [Refused("asgi-headers", "AWAIT_START")],
        AWAIT_START,
        ["asgi-headers"],
    ),
    row(
        "header-name-space",
        [start(200, [(b"x a", b"1")])],
        [Refused("asgi-headers", "AWAIT_START")],
        AWAIT_START,
        ["asgi-headers"],
    ),
    row(
        "header-value-crlf",
        [start(200, [(b"x-a", b"1\r\nset-cookie: a=b")])],
        [Refused("asgi-headers", "AWAIT_START")],
        AWAIT_START,
        ["asgi-headers"],
    ),
    # "body (byte string) -- HTTP body content."
    row("body-str", [start(), body("text")], [OK, Refused("asgi-body", "BODY")], BODY, ["asgi-body"]),
    row(
        "body-none",
        [start(), {"type": "http.response.body", "body": None}],
        [OK, Refused("asgi-body", "BODY")],
        BODY,
        ["asgi-body"],
    ),
    row("body-int", [start(), body(7)], [OK, Refused("asgi-body", "BODY")], BODY, ["asgi-body"]),
    row("body-list", [start(), body([b"a"])], [OK, Refused("asgi-body", "BODY")], BODY, ["asgi-body"]),
    row("body-bytearray", [start(), body(bytearray(b"ab"))], [OK, Body(b"ab", False)], DONE),
    row("body-memoryview", [start(), body(memoryview(b"ab"))], [OK, Body(b"ab", False)], DONE),
    # "more_body (bool)": a non-bool is taken for its truth (as servers do) and recorded.
    row("more-body-int-1", [start(), body(b"a", 1)], [OK, Body(b"a", True)], BODY, ["asgi-body"]),
    row("more-body-int-0", [start(), body(b"a", 0)], [OK, Body(b"a", False)], DONE, ["asgi-body"]),
    # The body against its Content-Length. RFC 9110 8.6: "When transferring a
    # representation as content, Content-Length refers specifically to the amount of data
    # enclosed so that it can be used to delimit framing". Enforcing: the bytes within the
    # length go, then the response fails (a client on a kept-alive connection would wait
    # for the missing bytes, or read the surplus as the next response); recording mode
    # records it at the end.
    row(
        "content-length-matches",
        [cl(5), body(b"ab", True), body(b"cde")],
        [Start("200 OK", [("content-length", "5")]), Body(b"ab", True), Body(b"cde", False)],
        DONE,
    ),
    row(
        "content-length-reached-then-empty-final-body",
        [cl(2), body(b"ab", True), body(b"", True), body()],
        [Start("200 OK", [("content-length", "2")]), Body(b"ab", True), Body(b"", True), Body(b"", False)],
        DONE,
    ),
    row(
        "content-length-body-shorter",
        [cl(5), body(b"abc")],
        [Start("200 OK", [("content-length", "5")]), CutAt(b"abc", "content-length", "BODY")],
        DONE,
        ["content-length"],
    ),
    row(
        "content-length-empty-body",
        [cl(1000), body()],
        [Start("200 OK", [("content-length", "1000")]), CutAt(b"", "content-length", "BODY")],
        DONE,
        ["content-length"],
    ),
    row(
        "content-length-body-longer",
        [cl(2), body(b"ab", True), body(b"c")],
        [Start("200 OK", [("content-length", "2")]), Body(b"ab", True), CutAt(b"", "content-length", "BODY")],
        DONE,
        ["content-length"],
    ),
    row(
        "content-length-body-longer-in-one-chunk",
        [cl(2), body(b"abc", True), body(b"d")],
        [Start("200 OK", [("content-length", "2")]), CutAt(b"ab", "content-length", "BODY"), None],
        DONE,
        ["content-length"],
    ),
    row(
        "content-length-crossed-mid-chunk",
        [cl(4), body(b"ab", True), body(b"cdef")],
        [
            Start("200 OK", [("content-length", "4")]),
            Body(b"ab", True),
            CutAt(b"cd", "content-length", "BODY"),
        ],
        DONE,
        ["content-length"],
    ),
    # ...and a body left short by the app's return (the final body it implies).
    row(
        "content-length-returned-short",
        [cl(5), body(b"ab", True), RETURNED],
        [Start("200 OK", [("content-length", "5")]), Body(b"ab", True), Refused("content-length", "BODY")],
        DONE,
        ["asgi-incomplete"],
    ),
    row(
        "content-length-returned-at-length",
        [cl(2), body(b"ab", True), RETURNED],
        [Start("200 OK", [("content-length", "2")]), Body(b"ab", True), Body(b"", False)],
        DONE,
        ["asgi-incomplete"],
    ),
    # Content-Length with spaces around it, in any case, repeated: the first one counts;
    # one that does not parse is the WSGI server's to judge (no check).
    row(
        "content-length-spaces-and-case",
        [start(200, [(b"Content-Length", b" 3 "), (b"content-length", b"9")]), body(b"abcd")],
        [
            Start("200 OK", [("Content-Length", " 3 "), ("content-length", "9")]),
            CutAt(b"abc", "content-length", "BODY"),
        ],
        DONE,
        ["asgi-header-case", "content-length"],
    ),
    row(
        "content-length-unparsable-not-checked",
        [start(200, [(b"content-length", b"abc")]), body(b"xy")],
        [Start("200 OK", [("content-length", "abc")]), Body(b"xy", False)],
        DONE,
    ),
    row(
        "content-length-head-no-body",
        [cl(5), body()],
        [Start("200 OK", [("content-length", "5")]), Body(b"", False)],
        DONE,
        head=True,
    ),
    # HEAD: the length is the GET body's; the bytes an app sends anyway are dropped, so
    # nothing is cut (the report still notes that they disagree).
    row(
        "content-length-head-with-body-not-checked",
        [cl(5), body(b"abcdefgh")],
        [Start("200 OK", [("content-length", "5")]), Body(b"", False)],
        DONE,
        ["content-length"],
        head=True,
    ),
    # RFC 9110 8.6: "A server MAY send a Content-Length header field in a 304 (Not
    # Modified) response [...] unless its field value equals the decimal number of octets
    # that would have been sent in the content of a 200"; a 204 carries no content.
    row(
        "content-length-304-not-checked",
        [cl(100, 304), body()],
        [Start("304 Not Modified", [("content-length", "100")]), Body(b"", False)],
        DONE,
    ),
    row(
        "content-length-204-not-checked",
        [cl(100, 204), body()],
        [Start("204 No Content", [("content-length", "100")]), Body(b"", False)],
        DONE,
    ),
    # RFC 9110 15.3.5: "A 204 response is terminated by the end of the header section; it
    # cannot contain content or trailers." 15.4.5, the same of 304.
    row(
        "204-with-body",
        [start(204), body(b"x")],
        [Start("204 No Content", []), Body(b"x", False)],
        DONE,
        ["no-body-status"],
    ),
    row(
        "304-with-body",
        [start(304), body(b"x", True), body(b"y")],
        [Start("304 Not Modified", []), Body(b"x", True), Body(b"y", False)],
        DONE,
        ["no-body-status"],
    ),
    row("204-without-body", [start(204), body()], [Start("204 No Content", []), Body(b"", False)], DONE),
    # The app's task returned. Response Start "Needs to be followed by at least one
    # response content message": no start at all is an error; a start without its final
    # body is ended here (the final empty body is implied, as servers do).
    row(
        "returned-before-start",
        [RETURNED],
        [Refused("asgi-incomplete", "AWAIT_START")],
        AWAIT_START,
        ["asgi-incomplete"],
    ),
    row(
        "returned-after-start",
        [start(), RETURNED],
        [OK, Body(b"", False)],
        DONE,
        ["asgi-incomplete"],
    ),
    row(
        "returned-with-more-body-pending",
        [start(), body(b"a", True), RETURNED],
        [OK, Body(b"a", True), Body(b"", False)],
        DONE,
        ["asgi-incomplete"],
    ),
    row("returned-after-done", [start(), body(b"a"), RETURNED], [OK, Body(b"a", False), None], DONE),
    # Disconnected Client: "If send() is called on a closed connection the server should
    # raise a server-specific subclass of OSError."
    row("gone-before-start", [GONE, start()], [None, Raised(ClientDisconnected)], CLIENT_GONE),
    row(
        "gone-during-body",
        [start(), body(b"a", True), GONE, body(b"b")],
        [OK, Body(b"a", True), None, Raised(ClientDisconnected)],
        CLIENT_GONE,
    ),
    row(
        "gone-after-done",
        [start(), body(b"a"), GONE, body(b"b")],
        [OK, Body(b"a", False), None, Raised(ClientDisconnected)],
        CLIENT_GONE,
    ),
    row("gone-then-bad-message", [GONE, 42], [None, Raised(ClientDisconnected)], CLIENT_GONE),
    row("gone-then-returned", [start(), GONE, RETURNED], [OK, None, None], CLIENT_GONE),
    # The Path Send extension (asgiref docs/extensions.rst): "This message can be sent at
    # any time after the Response Start message, and cannot be mixed with
    # http.response.body. ... path: The string representation of the absolute file path".
    row(
        "pathsend-after-start",
        [start(), pathsend("/srv/report.pdf")],
        [OK, PathBody("/srv/report.pdf", None)],
        DONE,
    ),
    row(
        "pathsend-keeps-the-declared-length",
        [cl(7), pathsend("/srv/report.pdf")],
        [Start("200 OK", [("content-length", "7")]), PathBody("/srv/report.pdf", 7)],
        DONE,
    ),
    row(
        "pathsend-for-head-sends-nothing",
        [start(), pathsend("/srv/report.pdf")],
        [OK, Body(b"", False)],
        DONE,
        head=True,
    ),
    row(
        "pathsend-relative-path",
        [start(), pathsend("report.pdf")],
        [OK, Refused("asgi-pathsend", "BODY")],
        BODY,
        ["asgi-pathsend"],
    ),
    row(
        "pathsend-not-a-str",
        [start(), pathsend(b"/srv/report.pdf")],
        [OK, Refused("asgi-pathsend", "BODY")],
        BODY,
        ["asgi-pathsend"],
    ),
    row(
        "pathsend-after-body",
        [start(), body(b"a", True), pathsend("/srv/report.pdf")],
        [OK, Body(b"a", True), Refused("asgi-pathsend", "BODY")],
        BODY,
        ["asgi-pathsend"],
    ),
    row(
        "pathsend-before-start",
        [pathsend("/srv/report.pdf")],
        [Refused("asgi-order", "AWAIT_START")],
        AWAIT_START,
        ["asgi-order"],
    ),
    row(
        "pathsend-after-done-is-ignored",
        [start(), body(b"a"), pathsend("/srv/report.pdf")],
        [OK, Body(b"a", False), None],
        DONE,
        ["asgi-after-end"],
    ),
]


@pytest.mark.parametrize(("steps", "outcomes", "state", "recorded", "head"), SEQUENCES)
def test_each_message_gives_what_the_asgi_spec_says(
    steps: list[object], outcomes: list[object], state: AsgiState, recorded: list[str], head: bool
) -> None:
    got, machine = run(steps, head=head)
    assert got == outcomes
    assert machine.state is state


@pytest.mark.parametrize(("steps", "outcomes", "state", "recorded", "head"), SEQUENCES)
def test_recording_mode_records_the_rules(
    steps: list[object], outcomes: list[object], state: AsgiState, recorded: list[str], head: bool
) -> None:
    pairs, _ = run_recording(steps, head=head)
    assert distinct([rule for rule, _ in pairs]) == recorded
    assert all(isinstance(message, str) and message for _, message in pairs)


@pytest.mark.parametrize(("steps", "outcomes", "state", "recorded", "head"), SEQUENCES)
def test_broken_keeps_the_first_refusal(
    steps: list[object], outcomes: list[object], state: AsgiState, recorded: list[str], head: bool
) -> None:
    """``broken`` is the message of the first message send() refused (what the adapter
    fails the request with if the app swallowed the error and waits on)."""
    machine = AsgiResponse(head=head)
    first: Optional[str] = None
    for step in steps:
        try:
            event = call_raw(machine, step)
            if isinstance(event, Cut) and first is None:
                first = event.error.args[0]
        except ResponseError as exc:
            if first is None and step != RETURNED:
                first = exc.args[0]
        except ClientDisconnected:
            pass
    assert machine.broken == first


def test_broken_is_the_first_of_two_refusals() -> None:
    machine = AsgiResponse()
    with pytest.raises(ResponseError) as first:
        machine.send(body(b"x"))
    with pytest.raises(ResponseError) as second:
        machine.send({"type": "nope"})
    assert (first.value.rule, second.value.rule) == ("asgi-order", "asgi-message")
    assert machine.broken is not None
    assert machine.broken == first.value.args[0]
    assert str(first.value).startswith(machine.broken)


def test_body_bytearray_is_copied() -> None:
    machine = AsgiResponse()
    machine.send(start())
    data = bytearray(b"ab")
    event = machine.send(body(data, True))
    data[:] = b"zz"
    assert event == Body(b"ab", True)
    assert isinstance(event, Body) and type(event.data) is bytes


def test_client_disconnected_is_an_oserror_and_a_bridge_error() -> None:
    # "the server should raise a server-specific subclass of OSError."
    machine = AsgiResponse()
    machine.client_gone()
    with pytest.raises(OSError) as raised:
        machine.send(start())
    assert isinstance(raised.value, ClientDisconnected)
    assert isinstance(raised.value, BridgeError)
    assert machine.broken is None


def test_returned_before_start_error_names_asgi_incomplete() -> None:
    machine = AsgiResponse()
    with pytest.raises(ResponseError) as raised:
        machine.returned()
    assert (raised.value.rule, raised.value.state) == ("asgi-incomplete", "AWAIT_START")


def test_recorded_transfer_encoding_is_a_warning() -> None:
    pairs, _ = run_recording([start(200, [(b"transfer-encoding", b"chunked")]), body()])
    assert [rule for rule, _ in pairs] == ["asgi-transfer-encoding"]
    assert RULES["asgi-transfer-encoding"].severity == "warning"


# -- defects the table tests found, fixed -------------------------------------------------------


def test_recording_304_with_content_length_and_no_body_is_fine() -> None:
    # RFC 9110 8.6: "A server MAY send a Content-Length header field in a 304 (Not Modified)
    # response to a conditional GET request (Section 15.4.5); a server MUST NOT send
    # Content-Length in such a response unless its field value equals the decimal number of
    # octets that would have been sent in the content of a 200 (OK) response to the same
    # request."
    pairs, machine = run_recording([cl(100, 304), body()])
    assert machine.state is DONE
    assert pairs == []


def test_recording_checks_headers_given_as_a_generator() -> None:
    # www.rst: "headers (Iterable[[byte string, byte string]]) -- An iterable of [name,
    # value] two-item iterables". "Header names must be lowercased."
    headers = ((name, value) for name, value in [(b"Content-Type", b"text/plain")])
    pairs, _ = run_recording([start(200, headers), body()])
    assert [rule for rule, _ in pairs] == ["asgi-header-case"]


# -- properties ----------------------------------------------------------------------------------

statuses = st.integers(min_value=200, max_value=599)
header_names = st.sampled_from([b"content-type", b"x-request-id", b"set-cookie", b"cache-control"])
header_values = st.text(alphabet=string.ascii_letters + string.digits + " -=;/", max_size=8).map(str.encode)
header_lists = st.lists(st.tuples(header_names, header_values), max_size=5)
bodies = st.lists(st.binary(max_size=10), max_size=6)


@given(
    status=statuses,
    headers=header_lists,
    chunks=bodies,
    last=st.binary(max_size=10),
    head=st.booleans(),
    omit_final_keys=st.booleans(),
    trailers_at=st.lists(st.integers(min_value=0, max_value=6), max_size=2),
    extra_after_end=st.integers(min_value=0, max_value=2),
)
def test_valid_messages_pass_the_body_through(
    status: int,
    headers: list[tuple[bytes, bytes]],
    chunks: list[bytes],
    last: bytes,
    head: bool,
    omit_final_keys: bool,
    trailers_at: list[int],
    extra_after_end: int,
) -> None:
    """Any valid sequence: one Start with the status and headers, Body events whose data
    joined is the body (nothing for HEAD), exactly one of them final, the final one last;
    trailers and messages after the end give None."""
    messages: list[dict[str, object]] = [start(status, headers)]
    for chunk in chunks:
        messages.append(body(chunk, True))
    messages.append(body() if omit_final_keys and not last else body(last, False))
    for index in sorted(trailers_at, reverse=True):
        messages.insert(min(index + 1, len(messages) - 1), {"type": "http.response.trailers", "headers": []})
    messages += [body(b"late")] * extra_after_end
    machine = AsgiResponse(head=head)
    events = [machine.send(message) for message in messages]
    starts = [e for e in events if isinstance(e, Start)]
    bodies_out = [e for e in events if isinstance(e, Body)]
    assert len(starts) == 1
    assert starts[0].status.split(" ")[0] == str(status)
    assert starts[0].headers == [(n.decode(), v.decode()) for n, v in headers]
    assert len(bodies_out) == len(chunks) + 1
    assert b"".join(b.data for b in bodies_out) == (b"" if head else b"".join(chunks) + last)
    assert [b.more for b in bodies_out] == [True] * len(chunks) + [False]
    assert events.count(None) == len(trailers_at) + extra_after_end
    assert machine.state is DONE
    assert machine.broken is None
    assert machine.returned() is None


@given(status=st.integers(min_value=200, max_value=599).filter(lambda s: s not in (204, 304)), chunks=bodies)
def test_recording_a_consistent_response_records_nothing(status: int, chunks: list[bytes]) -> None:
    """A response whose Content-Length is its body's length, with lower-case names, breaks
    no rule: recording mode records nothing, and gives the same events as enforcing mode."""
    data = b"".join(chunks)
    messages = [start(status, [(b"content-length", str(len(data)).encode())])]
    messages += [body(chunk, True) for chunk in chunks] + [body()]
    pairs, recording = run_recording(messages)
    assert pairs == []
    assert recording.state is DONE
    events, _ = run(messages)
    assert b"".join(e.data for e in events if isinstance(e, Body)) == data
