"""The PEP 3333 response as a state machine: what a WSGI app may do next, and what
must be sent now.

One :class:`WsgiResponse` per request follows the app's ``start_response`` calls,
its ``write()`` calls and the items of its iterable, and answers with the bytes to
send (clipped to the declared Content-Length) or a
:class:`~bridge.errors.ResponseError` naming the broken rule (an id of
:data:`bridge.rules.RULES`) and the state it happened in.

States (``WsgiState``)::

    NEW --start_response--> HEADERS_SET --first body bytes or write()--> COMMITTED
     |        (invalid)                                                     |
     +------> START_FAILED --start_response(exc_info)--> HEADERS_SET     Content-Length
                                                                          reached
    any state --end of the iterable (finish)--> DONE                        v
                                                                         COMPLETE

The adapters run it in *enforcing* mode: a broken rule raises. ``bridge check`` runs
the same machine in *recording* mode: each broken rule is handed to ``record`` and the
machine goes on as if the call had succeeded, to find the next one.

Pure: no threads, no I/O; the caller logs what :meth:`WsgiResponse.finish` reports.
The transition table, and where the adapter calls it: ``docs/internals.md``.
"""

from __future__ import annotations

import enum
from typing import Callable, Iterable

from ._types import ExcInfo
from .errors import HopByHopHeaderError, ResponseError
from .http import encode_response_headers, parse_status

__all__ = ["NO_BODY_STATUSES", "Record", "WsgiResponse", "WsgiState"]

#: Statuses whose responses have no body (RFC 9110 6.4.1); 1xx cannot reach WSGI.
NO_BODY_STATUSES = frozenset({204, 304})

#: Recording mode's hook: a rule id and what the app did.
Record = Callable[[str, str], None]


class WsgiState(enum.Enum):
    NEW = "NEW"  # start_response() not called yet
    START_FAILED = "START_FAILED"  # start_response() was called and refused
    HEADERS_SET = "HEADERS_SET"  # status and headers set, no body bytes yet: replaceable
    COMMITTED = "COMMITTED"  # body bytes (or a write()) went out: the headers are final
    COMPLETE = "COMPLETE"  # the declared Content-Length is reached: nothing more is sent
    DONE = "DONE"  # the iterable ended


# PEP 3333: "if exc_info is provided, and the HTTP headers have already been sent,
# start_response must raise an error, and should re-raise using the exc_info tuple."
# The states by module names, tested with ``is``: read for every chunk, a global is
# cheaper than the enum class's attribute, and a member's hash is a Python call.
_NEW, _START_FAILED, _HEADERS_SET = WsgiState.NEW, WsgiState.START_FAILED, WsgiState.HEADERS_SET
_COMMITTED, _COMPLETE, _DONE = WsgiState.COMMITTED, WsgiState.COMPLETE, WsgiState.DONE

NO_START_RESPONSE = "the WSGI app returned or yielded body data without a successful call to start_response()"
_NEVER_STARTED = "the app never called start_response"


def _not_iterable(iterable: object) -> str:
    return f"the WSGI app returned {type(iterable).__name__}, which is not iterable"


class WsgiResponse:
    """One PEP 3333 response's state. ``method`` is the request's; ``strict`` refuses
    hop-by-hop headers instead of dropping them; ``record`` switches to recording mode."""

    __slots__ = ("content_length", "head", "headers", "record", "sent", "state", "status", "strict")

    def __init__(self, method: str, *, strict: bool = False, record: Record | None = None) -> None:
        self.state = _NEW
        self.head = method == "HEAD"
        self.strict = strict
        self.record = record
        self.status: int | None = None
        self.headers: list[tuple[bytes, bytes]] = []
        self.content_length: int | None = None
        self.sent = 0  # body bytes accepted so far, for Content-Length

    @property
    def committed(self) -> bool:
        """Body bytes went out: the status and headers can no longer change."""
        state = self.state
        return state is not _NEW and state is not _START_FAILED and state is not _HEADERS_SET

    @property
    def complete(self) -> bool:
        """The declared Content-Length is reached: the app is asked for no more."""
        return self.state is _COMPLETE

    def _refuse(self, rule: str, message: str) -> None:
        """A broken rule: raise (enforcing), or record it and go on (recording)."""
        if self.record is None:
            raise ResponseError(message, rule=rule, state=self.state.name)
        self.record(rule, message)

    def _name(self, rule: str, error: ResponseError) -> None:
        """Name the rule an error from the translation rules (:mod:`bridge.http`)
        broke, for the caller to re-raise: a bare ``raise``, so that no frame of the
        traceback keeps the error in a variable (a cycle through every frame)."""
        error.rule, error.state = rule, self.state.name

    # -- the app's calls -------------------------------------------------------------------

    def start(self, status: object, headers: Iterable[object], exc_info: ExcInfo | None = None) -> list[str]:
        """``start_response(status, headers, exc_info)``. Returns the hop-by-hop header
        names dropped (none when ``strict``: they raise). With ``exc_info`` once the
        headers are final, re-raises the app's error, as PEP 3333 says."""
        if exc_info is not None:
            if self.committed:
                try:
                    raise exc_info[1].with_traceback(exc_info[2])  # type: ignore[union-attr]
                finally:
                    exc_info = None  # this frame joins the traceback: no cycle through it
        elif self.state is not _NEW:
            # PEP 3333: "It is a fatal error to call start_response without the exc_info
            # argument if start_response has already been called within the current
            # invocation of the application."
            self._refuse(
                "wsgi-start-twice",
                "start_response() was called a second time without exc_info; PEP 3333 allows "
                "a second call only to replace the headers after an error",
            )
        # PEP 3333: record the call first, validate second, so a failed call still counts.
        self.state = _START_FAILED
        self.status = None
        try:
            code: int | None = parse_status(status)
        except ResponseError as exc:
            if self.record is None:
                self._name("wsgi-status", exc)
                raise
            self.record("wsgi-status", str(exc))
            code = None
        dropped: list[str] = []
        try:
            encoded = encode_response_headers(headers, strict=self.strict and self.record is None)
        except HopByHopHeaderError as exc:
            self._name("wsgi-hop-by-hop", exc)
            raise
        except ResponseError as exc:
            if self.record is None:
                self._name("wsgi-headers", exc)
                raise
            self.record("wsgi-headers", str(exc))
        else:
            dropped = encoded.dropped
            if dropped and self.record is not None:
                self.record("wsgi-hop-by-hop", f"the app set {', '.join(map(repr, dropped))}")
            self.headers = encoded.headers
            self.content_length = encoded.content_length
        self.status = code
        self.state = _HEADERS_SET
        return dropped

    def returned(self, iterable: object) -> None:
        """The app returned ``iterable``: refuse text and bytes (iterating bytes gives
        ints) and None; the caller refuses other things ``iter()`` rejects through
        :meth:`not_iterable`."""
        # PEP 3333: "the application object must return an iterable yielding zero or
        # more bytestrings".
        if isinstance(iterable, (bytes, bytearray, str)):
            self._refuse(
                "wsgi-iterable",
                f"the WSGI app returned {type(iterable).__name__} instead of an iterable of "
                f"bytes; return [body] instead",
            )
        elif iterable is None:
            self._refuse("wsgi-iterable", _not_iterable(iterable))

    def not_iterable(self, iterable: object) -> ResponseError:
        """The error for an app that returned something ``iter()`` rejects."""
        return ResponseError(_not_iterable(iterable), rule="wsgi-iterable", state=self.state.name)

    def body(self, chunk: object) -> bytes | None:
        """One item of the app's iterable: the bytes to send (clipped to Content-Length:
        empty once it is reached), or None for an empty item, which sends nothing."""
        if type(chunk) is not bytes and not isinstance(chunk, bytes):
            # PEP 3333: "the application ... must return an iterable yielding zero or
            # more bytestrings."
            self._refuse(
                "wsgi-chunk-type",
                f"the WSGI app yielded {type(chunk).__name__}; response body chunks must be bytes",
            )
            return None
        if not chunk:
            return None
        if self.state is _NEW or self.state is _START_FAILED:
            # PEP 3333: "start_response must have been called before the first body
            # bytestring is transmitted"
            self._refuse("wsgi-no-start", NO_START_RESPONSE)
        return self._accept(chunk)

    def write(self, data: object) -> bytes:
        """PEP 3333's ``write(data)``: the bytes to send now, before it returns."""
        if not isinstance(data, bytes):
            self._refuse("wsgi-chunk-type", f"write() takes bytes, not {type(data).__name__}")
            return b""
        if self.state is _NEW or self.state is _START_FAILED:
            self._refuse("wsgi-no-start", "write() was called before a successful start_response()")
        if self.state is _COMPLETE and data:
            self._refuse(
                "content-length", f"write() past the declared Content-Length of {self.content_length} bytes"
            )
        if self.record is not None:
            self.record("wsgi-write", "the app called write()")
        return self._accept(data)

    def _accept(self, data: bytes) -> bytes:
        # PEP 3333: "the server should not transmit more data than the Content-Length
        # allows, and should stop iterating over the response when enough data has been
        # sent".
        if self.content_length is None:
            self.state = _COMMITTED
            self.sent += len(data)
            return data
        if self.state is _COMPLETE:
            if data and self.record is not None:
                self._record_excess()
            return b""
        self.state = _COMMITTED
        room = self.content_length - self.sent
        if len(data) >= room:
            if len(data) > room and self.record is not None:
                self._record_excess()
            data = data[:room]
            self.state = _COMPLETE
        self.sent += len(data)
        return data

    def _record_excess(self) -> None:
        assert self.record is not None
        self.record("content-length", f"Content-Length says {self.content_length}, the body had more bytes")

    def finish(self) -> str | None:
        """The iterable ended (or Content-Length was reached). Refuses a response that
        never started; returns what is wrong with a complete one for the caller to log
        (a body shorter than its Content-Length, a body on a 204 or 304), or None."""
        if self.state is _NEW or self.state is _START_FAILED:
            never = self.record is not None and self.state is _NEW
            self._refuse("wsgi-no-start", _NEVER_STARTED if never else NO_START_RESPONSE)
        self.state = _DONE
        if self.status in NO_BODY_STATUSES:
            # RFC 9110 8.6: a 304's Content-Length is that of the body it did not send.
            if self.sent:
                return self._note(
                    "no-body-status", f"a {self.status} response carried a {self.sent}-byte body"
                )
            return None
        if self.content_length is not None and self.sent < self.content_length and not self.head:
            return self._note(
                "content-length",
                f"the WSGI app declared Content-Length {self.content_length} but sent only "
                f"{self.sent} bytes; the server will close the connection",
            )
        return None

    def _note(self, rule: str, message: str) -> str | None:
        if self.record is not None:
            self.record(rule, message)
            return None
        return message

    def body_from_path(self, size: int) -> bool:
        """The app's body is a whole file of ``size`` bytes, which the server can send by
        its path (ASGI's Path Send extension) instead of the iterable being read: whether
        that is allowed; if it is, the body counts as sent, whole. Not before the headers,
        after body bytes went out, for HEAD or a status without a body, nor when the
        declared Content-Length is another size (the iterable is then read, and the
        usual rules apply to it)."""
        if self.state is not _HEADERS_SET or self.head or self.status in NO_BODY_STATUSES:
            return False
        if self.content_length is not None and self.content_length != size:
            return False
        self.sent = size
        self.state = _COMPLETE
        return True

    def headers_for_whole_body(self, length: int) -> list[tuple[bytes, bytes]]:
        """The headers to send when the whole body is known before they go out: with a
        Content-Length, so the server needs no chunked framing (not for HEAD, whose
        length the app did not give, nor for a status that has no body)."""
        if self.content_length is None and not self.head and self.status not in NO_BODY_STATUSES:
            self.headers.append((b"content-length", str(length).encode("ascii")))
        return self.headers
