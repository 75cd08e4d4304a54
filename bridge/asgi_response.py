"""The ASGI ``http`` send side as a state machine: which message an ASGI app may send
next, and what it means for the WSGI response.

One :class:`AsgiResponse` per request takes each message the app passes to
``send()`` and answers with a small typed event for the WSGI side (:class:`Start`,
:class:`Body`, or :class:`Cut` for a body that breaks its own Content-Length), None
for a message that changes nothing, or a :class:`~bridge.errors.ResponseError` naming
the broken rule (an id of :data:`bridge.rules.RULES`) and the state it happened in.

States (``AsgiState``)::

    AWAIT_START --http.response.start--> BODY --http.response.body (more_body false)--> DONE
         \\                                  \\                                         |
          +------ client_gone() ------------+-----------> CLIENT_GONE <---------------+

The adapter runs it in *enforcing* mode: a broken rule raises into the app's
``send()``, and a body that breaks its Content-Length is cut there (:class:`Cut`).
``bridge check`` runs the same machine in *recording* mode: each broken
rule is handed to ``record``, with the checks only a report needs (header case,
Content-Length against the body), and the machine goes on.

Pure: no threads, no I/O. The transition table, and where the adapter calls it:
``docs/internals.md``.
"""

from __future__ import annotations

import contextlib
import enum
import os
from typing import Any, NamedTuple

from .errors import ClientDisconnected, ResponseError
from .http import decode_asgi_response_headers, parse_asgi_status, with_article
from .wsgi_response import NO_BODY_STATUSES, Record

__all__ = ["AsgiResponse", "AsgiState", "Body", "Cut", "PathBody", "Start"]


#: The messages that carry the body: bytes, or (Path Send) a file's path.
_BODY_MESSAGES = frozenset({"http.response.body", "http.response.pathsend"})
# Start and Body made on the hot path without their NamedTuple __new__, a Python
# function (a frame per message).
_new_tuple = tuple.__new__


class AsgiState(enum.Enum):
    AWAIT_START = "AWAIT_START"  # nothing sent yet
    BODY = "BODY"  # http.response.start sent; body messages may follow
    DONE = "DONE"  # the final http.response.body (more_body false) was sent
    CLIENT_GONE = "CLIENT_GONE"  # the client left: send() raises, receive() disconnects


# The members by module names: on Python 3.11 and older, an enum class's attribute
# costs several times a global's, and these are read on every request.
_AWAIT_START, _BODY, _DONE, _CLIENT_GONE = (
    AsgiState.AWAIT_START,
    AsgiState.BODY,
    AsgiState.DONE,
    AsgiState.CLIENT_GONE,
)


class Start(NamedTuple):
    """``http.response.start``, translated for ``start_response``."""

    status: str
    headers: list[tuple[str, str]]


class Body(NamedTuple):
    """``http.response.body``: the bytes to pass on (none for HEAD), and whether more follow."""

    data: bytes
    more: bool


class PathBody(NamedTuple):
    """``http.response.pathsend`` (ASGI's Path Send extension): the whole body is the
    file at ``path``, an absolute path; ``declared`` is the response's Content-Length,
    which the file's size must match (None: none declared)."""

    path: str
    declared: int | None


class Cut(NamedTuple):
    """``http.response.body`` that breaks the response's own Content-Length (RFC 9110
    8.6): more bytes than it declared, or a final body short of it. ``data`` is what
    may still go out (never a byte past the declared length); then the response must
    fail with ``error`` (rule ``content-length``), which also goes to the app's
    ``send()``. A client would otherwise wait on a kept-alive connection for bytes that
    never come, or read the surplus as the next response."""

    data: bytes
    error: ResponseError


class AsgiResponse:
    """One ASGI response's send side. ``head``: the request is a HEAD (the body bytes
    are dropped: WSGI leaves HEAD to the app, the server would send them);
    ``record`` switches to recording mode."""

    __slots__ = (
        "bodied",
        "broken",
        "content_length",
        "declared",
        "finished",
        "head",
        "length",
        "record",
        "sent",
        "state",
        "status",
    )

    def __init__(self, *, head: bool = False, record: Record | None = None) -> None:
        self.state = _AWAIT_START
        self.head = head
        self.record = record
        #: The first broken rule's message: the app broke the protocol (and may have
        #: swallowed the error); the adapter then fails the request if the app waits on.
        self.broken: str | None = None
        #: The final body was sent (it stays so when the client leaves after it).
        self.finished = False
        # Enforcing mode: the Content-Length the body is held to (None: no length, HEAD,
        # 204 or 304, or recording mode), and the body bytes passed on so far.
        self.declared: int | None = None
        self.sent = 0
        self.bodied = False  # an http.response.body came: no http.response.pathsend now
        # Recording mode only: what the report compares at the end.
        self.status: int | None = None
        self.content_length: int | None = None
        self.length = 0

    def _refuse(self, rule: str, message: str) -> ResponseError:
        """The error to raise into the app's ``send()`` (recording mode: recorded)."""
        if self.broken is None:
            self.broken = message
        error = ResponseError(message, rule=rule, state=self.state.name)
        if self.record is not None:
            self.record(rule, message)
        return error

    def send(self, message: Any) -> Start | Body | Cut | PathBody | None:
        """One message from the app's ``send()``."""
        state = self.state
        if state is _CLIENT_GONE:
            raise ClientDisconnected("the client disconnected")
        try:
            kind = message["type"]
        except (KeyError, TypeError):
            raise self._refuse(
                "asgi-message", f"an ASGI message must be a dict with a 'type' key, got {message!r}"
            ) from None
        if kind == "http.response.body" and state is _BODY:
            return self._body(message)  # (most messages: first, in one test)
        if kind in _BODY_MESSAGES:
            if state is _BODY:
                return self._path(message)  # (a body message in _BODY is taken above)
            if state is _DONE:
                # ASGI: messages after the final body are ignored ("the server ... must
                # not send any more body").
                if self.record is not None:
                    self.record("asgi-after-end", f"the app sent {kind} after the response was complete")
                return None
            raise self._refuse("asgi-order", f"the ASGI app sent {kind} before http.response.start")
        if kind == "http.response.start":
            if state is not _AWAIT_START:
                if state is _DONE and self.record is not None:
                    self.record("asgi-after-end", f"the app sent {kind} after the response was complete")
                raise self._refuse("asgi-order", "the ASGI app sent http.response.start twice")
            return self._start(message)
        if kind == "http.response.trailers":
            return None  # never advertised; WSGI has no trailers
        raise self._refuse("asgi-message", f"unsupported ASGI message type {kind!r} for an http scope")

    def _start(self, message: Any) -> Start | None:
        if "status" not in message:
            raise self._refuse("asgi-status", "http.response.start has no 'status'")
        try:
            status = parse_asgi_status(message["status"])
        except ResponseError as exc:
            raise self._refuse("asgi-status", str(exc)) from None
        raw_headers = message.get("headers", ())
        if self.record is not None and not isinstance(raw_headers, (list, tuple)):
            with contextlib.suppress(TypeError):  # not iterable: decoding says so below
                raw_headers = list(raw_headers)  # read twice in recording mode
        try:
            headers, declared = decode_asgi_response_headers(raw_headers)
        except ResponseError as exc:
            raise self._refuse("asgi-headers", str(exc)) from None
        self.state = _BODY
        if self.record is not None:
            self._inspect_headers(message["status"], raw_headers)
        elif not self.head and message["status"] not in NO_BODY_STATUSES:
            # RFC 9110 8.6 and 9.3.2: HEAD sends no content; a 304's length is that of
            # the unsent body, and a 204 has none. (Recording mode compares at the end.)
            self.declared = declared
        return _new_tuple(Start, (status, headers))

    def _inspect_headers(self, status: int, headers: Any) -> None:
        """Recording mode: what servers accept but the spec does not."""
        assert self.record is not None
        self.status = status
        for name, value in headers:
            if name != name.lower():
                self.record("asgi-header-case", f"header name {bytes(name)!r}")
            lower = bytes(name).lower()
            if lower == b"transfer-encoding":
                self.record("asgi-transfer-encoding", f"transfer-encoding: {bytes(value)!r}")
            elif lower == b"content-length" and bytes(value).isdigit():
                self.content_length = int(value)

    def _path(self, message: Any) -> PathBody | Body:
        # The extension: "The ASGI framework can initiate a path-send by sending a
        # message with ... path: The string representation of the absolute file path
        # to be sent by the server" ... "and cannot be mixed with http.response.body".
        path = message.get("path")
        if type(path) is not str or not os.path.isabs(path):
            raise self._refuse(
                "asgi-pathsend", f"http.response.pathsend 'path' must be an absolute file path, got {path!r}"
            )
        if self.bodied:
            raise self._refuse(
                "asgi-pathsend", "the ASGI app sent http.response.pathsend after http.response.body"
            )
        self.state = _DONE
        self.finished = True
        if self.head or self.record is not None:
            return Body(b"", False)  # HEAD: no body to send; recording mode: no file to read
        return PathBody(path, self.declared)

    def _body(self, message: Any) -> Body | Cut:
        self.bodied = True
        body = message.get("body", b"")
        if type(body) is not bytes:
            if not isinstance(body, (bytes, bytearray, memoryview)):
                raise self._refuse(
                    "asgi-body", f"http.response.body 'body' must be bytes, got {type(body).__name__}"
                )
            body = bytes(body)
        raw_more = message.get("more_body", False)
        more = raw_more if raw_more is False or raw_more is True else bool(raw_more)
        if self.declared is not None:
            sent = self.sent + len(body)
            if sent > self.declared or (not more and sent < self.declared):
                return self._cut(body)
            self.sent = sent
        if not more:
            self.state = _DONE
            self.finished = True
        if self.record is not None:
            if type(raw_more) is not bool:
                self.record("asgi-body", f"'more_body' is {with_article(type(raw_more).__name__)}")
            self.length += len(body)
            if not more:
                self._inspect_length()
        if self.head:
            body = b""
        return _new_tuple(Body, (body, more))

    def _cut(self, body: bytes) -> Cut:
        """Enforcing mode: the body breaks the declared length. What is within it may
        go; the response is over (DONE, not finished: it never completed), and later
        body messages are ignored."""
        declared = self.declared
        assert declared is not None
        total = self.sent + len(body)
        if total > declared:
            what = f"sent at least {total} body bytes; the {total - declared} past it were not sent"
            body = body[: declared - self.sent]
        else:
            what = f"ended its body after {total} bytes"
        self.sent += len(body)
        error = self._refuse("content-length", f"the ASGI app declared Content-Length: {declared} and {what}")
        self.state = _DONE
        return Cut(body, error)

    def _inspect_length(self) -> None:
        """Recording mode, at the final body: the body against status and Content-Length."""
        assert self.record is not None
        status, length, declared = self.status, self.length, self.content_length
        if status is not None and (status < 200 or status in NO_BODY_STATUSES) and length:
            self.record("no-body-status", f"a {status} response carried a {length}-byte body")
        elif (
            declared is not None
            and length != declared
            and not (self.head and length == 0)
            and status not in NO_BODY_STATUSES  # RFC 9110 8.6: a 304's is the unsent body's
        ):
            self.record("content-length", f"Content-Length says {declared}, the body had {length} bytes")

    def returned(self) -> Body | None:
        """The app's task returned. A response that never started is an error; one
        that started but never sent its final body ends here (leniently, as servers do:
        the last body message is implied), unless that leaves the body short of its
        Content-Length (enforcing mode: an error); None if it had ended already."""
        state = self.state
        if state is _AWAIT_START:
            if self.record is not None:
                self.record("asgi-incomplete", "the app returned having sent nothing")
            raise ResponseError(
                "the ASGI app returned without sending http.response.start",
                rule="asgi-incomplete",
                state=state.name,
            )
        if state is _BODY:
            if self.record is not None:
                self.record("asgi-incomplete", "the app returned having sent http.response.start only")
            declared = self.declared
            if declared is not None and self.sent < declared:
                # The final body this implies would leave the body short of its length.
                self.state = _DONE
                raise ResponseError(
                    f"the ASGI app declared Content-Length: {declared} and returned after "
                    f"{self.sent} body bytes",
                    rule="content-length",
                    state=state.name,
                )
            self.state = _DONE
            self.finished = True
            return Body(b"", False)
        return None

    def client_gone(self) -> None:
        """The client left: from now on ``send()`` raises ClientDisconnected."""
        self.state = _CLIENT_GONE
