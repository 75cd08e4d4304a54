"""AsgiToWsgi: run an ASGI app under a PEP 3333 server.

The ASGI app runs on one event loop in a background thread (asyncio or trio, through
an anyio portal). Each WSGI call starts the app as a task on that loop (``_AppTask``)
and then, in the WSGI server's thread (``_Responder``), takes the events the app's
``send()`` produces from one bounded hand-off (:class:`bridge.handoff.Handoff`), which
also carries the task's requests to read ``wsgi.input``. What the app may send next is
decided by the ASGI response machine (:mod:`bridge.asgi_response`); the translation
rules live in the pure modules (:mod:`bridge.environ`, :mod:`bridge.http`). This module
is the concurrency glue; ``docs/internals.md`` follows one request through it. Two
jobs of the WSGI thread have modules of their own: reading the body an app left unread
(:mod:`bridge.body_drain`), and opening the file of an ``http.response.pathsend``
(:mod:`bridge.pathsend`).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import enum
import logging
import os
import threading
import time
import weakref
from collections import deque
from typing import Any, Iterable, Iterator, Literal, NoReturn, Union

import anyio
from anyio.from_thread import BlockingPortal
from asgiref.compatibility import guarantee_single_callable

from ._types import ASGIApp, Environ, Message, Scope, StartResponse
from .asgi_response import AsgiResponse, AsgiState, Body, Cut, PathBody, Start
from .body_drain import drain_rest, gunicorn_drains_itself
from .environ import build_scope, environ_type_problem, wsgi_input_bytes
from .errors import (
    AppExitError,
    BadRequestError,
    BodyTooLargeError,
    BridgeError,
    ClientDisconnected,
    InvalidScopeError,
    LifespanError,
    ResponseError,
)
from .handoff import Closed, Handoff, LoopRef
from .http import DEFAULT_PRELOAD_BODY, parse_content_length
from .lifespan import Lifespan
from .loop_thread import LoopThread
from .pathsend import open_path_body

__all__ = ["AsgiToWsgi"]

logger = logging.getLogger("bridge.asgi_to_wsgi")

_DISCONNECT: Message = {"type": "http.disconnect"}
_READ_CHUNK = 256 * 1024
# How long close() waits, beyond the grace period, for a cancelled task to end.
_CANCEL_WAIT = 5.0
# The rest of a request body the app left unread is read and discarded after its
# response (_RequestBody.drain), so that a server that keeps the connection alive
# finds the next request where it starts: at most _DRAIN_LIMIT bytes (a larger rest is
# not read at all), no read started after _DRAIN_TIME seconds (gunicorn's own drain
# gives a body 5 s too), in reads of _DRAIN_CHUNK bytes. The adapter's bounds (its
# docstring promises them), handed to body_drain.drain_rest at each drain.
_DRAIN_LIMIT = 4 * 1024 * 1024
_DRAIN_TIME = 5.0
_DRAIN_CHUNK = 64 * 1024
# The answer to a request body over max_body_size. No hop-by-hop header (PEP 3333):
# whether the connection survives the unread rest of the body is the server's call.
_TOO_LARGE_STATUS = "413 Content Too Large"
_TOO_LARGE_BODY = b"Content Too Large\n"
_TOO_LARGE_HEADERS = (
    ("Content-Type", "text/plain; charset=utf-8"),
    ("Content-Length", str(len(_TOO_LARGE_BODY))),
)


class AsgiToWsgi:
    """A PEP 3333 application that serves an ASGI application.

    :param asgi_app: an ASGI 3 app (an ASGI 2 double-callable is accepted too).
    :param lifespan: ``"auto"`` runs the app's lifespan if it supports it; ``"on"``
        requires it; ``"off"`` never runs it.
    :param backend: ``"asyncio"`` or ``"trio"``, the loop the app runs on.
    :param backend_options: passed to :func:`anyio.run` (e.g. ``{"use_uvloop": True}``).
    :param startup_timeout: seconds lifespan startup may take.
    :param shutdown_timeout: seconds lifespan shutdown may take.
    :param disconnect_grace: seconds an app gets to finish after its client left,
        before its task is cancelled. A client that leaves during the request body
        cannot be seen by the WSGI server while it waits for the response: from the
        moment the app's ``receive()`` returns ``http.disconnect`` for it, the app has
        this long to finish its response (or to send more of it), or its task is
        cancelled and the WSGI call (or the response's iterator) raises
        :class:`~bridge.errors.ClientDisconnected`, freeing the server's thread.
    :param max_buffer: response bytes the app may send ahead of the WSGI server
        before its ``send()`` waits (backpressure).
    :param preload_body: request bodies of at most this many bytes, with a known
        length, are read before the app starts and handed over in one message. A
        larger body streams to the app; what it leaves unread is read and discarded
        after its response (at most 4 MiB, for at most 5 s; a larger rest is not read),
        so that a server that keeps the connection alive finds the client's next
        request.
    :param max_body_size: the largest request body the app gets, in bytes (``None``:
        no limit). A larger declared ``Content-Length`` is answered with ``413 Content
        Too Large`` before the app runs. A body without one (a chunked upload) that
        grows past it is one whose client left, to the app: its ``receive()`` gets
        ``http.disconnect`` (never a byte past the limit) and its later ``send()``
        raises :class:`~bridge.errors.ClientDisconnected`; the client gets 413 if no
        response has started, else the response ends as an error
        (:class:`~bridge.errors.BodyTooLargeError`: the server closes the connection).
    :param teardown_wait: seconds the response's ``close()`` waits for the app to
        return after its last body message, before the WSGI server reuses the thread
        for another request. The client has its response by then; what the app still
        does (Django's ``request_finished``, which closes database connections) then
        finishes before the next request starts. Work longer than this (background
        tasks) goes on, and the server goes on without it. ``0``: never wait.
    """

    def __init__(
        self,
        asgi_app: Any,
        *,
        lifespan: Literal["auto", "on", "off"] = "auto",
        backend: Literal["asyncio", "trio"] = "asyncio",
        backend_options: dict[str, Any] | None = None,
        startup_timeout: float = 60.0,
        shutdown_timeout: float = 30.0,
        disconnect_grace: float = 1.0,
        max_buffer: int = 256 * 1024,
        preload_body: int = DEFAULT_PRELOAD_BODY,
        teardown_wait: float = 0.1,
        max_body_size: int | None = None,
    ) -> None:
        if teardown_wait < 0:
            raise ValueError(f"teardown_wait must be 0 or more, got {teardown_wait}")
        if preload_body < 0:
            raise ValueError(f"preload_body must be 0 or more, got {preload_body}")
        if max_buffer < 1:
            raise ValueError(f"max_buffer must be at least 1, got {max_buffer}")
        if disconnect_grace < 0:
            raise ValueError(f"disconnect_grace must be 0 or more, got {disconnect_grace}")
        if startup_timeout <= 0:
            raise ValueError(f"startup_timeout must be more than 0, got {startup_timeout}")
        if shutdown_timeout <= 0:
            raise ValueError(f"shutdown_timeout must be more than 0, got {shutdown_timeout}")
        if max_body_size is not None and max_body_size < 0:
            raise ValueError(f"max_body_size must be 0 or more (or None: no limit), got {max_body_size}")
        if lifespan not in ("auto", "on", "off"):
            raise ValueError(f"lifespan must be 'auto', 'on' or 'off', got {lifespan!r}")
        if backend not in ("asyncio", "trio"):
            raise ValueError(f"backend must be 'asyncio' or 'trio', got {backend!r}")
        self.app: ASGIApp = guarantee_single_callable(asgi_app)  # type: ignore[no-untyped-call]
        self.lifespan_mode = lifespan
        self.backend = backend
        self.backend_options = backend_options
        self.startup_timeout = startup_timeout
        self.shutdown_timeout = shutdown_timeout
        self.disconnect_grace = disconnect_grace
        self.max_buffer = max_buffer
        self.preload_body = preload_body
        self.teardown_wait = teardown_wait
        self.max_body_size = max_body_size
        self._reset()
        _live_adapters.add(self)

    def _reset(self) -> None:
        """Fresh per-process state: at construction, and in a child after fork()."""
        self._lock = threading.Lock()
        self._loop = LoopThread(self.backend, self.backend_options)
        self._lifespan: Lifespan | None = None
        self._startup_error: LifespanError | None = None
        self._ready = False

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def state(self) -> dict[str, Any] | None:
        """The lifespan state, once startup completed (None without lifespan)."""
        lifespan = self._lifespan
        return lifespan.state if lifespan is not None and lifespan.supported else None

    def start(self) -> None:
        """Start the loop and run lifespan startup now rather than on the first request.

        Raises :class:`~bridge.errors.LifespanError` if startup fails.
        """
        self._portal()

    def _portal(self) -> BlockingPortal:
        portal = self._loop.portal
        if self._ready and portal is not None and not self._loop.forked():
            if self._startup_error is not None:
                raise self._startup_failed()
            return portal
        with self._lock:
            if self._loop.forked():
                self._reset()
            if not self._ready or self._loop.portal is None:
                if _exiting:
                    # Closed at exit; a request still running in a non-daemon thread must
                    # not start the loop and the app's lifespan again.
                    raise BridgeError("the interpreter is exiting: AsgiToWsgi serves no more requests")
                self._startup_error = None
                portal = self._loop.start()
                if self.lifespan_mode != "off":
                    self._lifespan = Lifespan(
                        self.app,
                        mode=self.lifespan_mode,
                        startup_timeout=self.startup_timeout,
                        shutdown_timeout=self.shutdown_timeout,
                    )
                    try:
                        self._lifespan.startup(portal)
                    except LifespanError as exc:
                        logger.error("%s; every request will fail until the app is fixed", exc)
                        # Without the frames it was raised through: they hold this request.
                        self._startup_error = exc.with_traceback(None)
                self._ready = True
            if self._startup_error is not None:
                raise self._startup_failed()
            assert self._loop.portal is not None
            return self._loop.portal

    def _startup_failed(self) -> LifespanError:
        """A fresh error for each refused request: raising the stored one again would
        chain every request's frames (and environ) onto its traceback, for good."""
        stored = self._startup_error
        assert stored is not None
        error = LifespanError(*stored.args)
        error.__cause__ = stored.__cause__
        return error

    def close(self) -> None:
        """Run lifespan shutdown and stop the event loop thread. Safe to call twice;
        a later request starts everything again."""
        with self._lock:
            if not self._ready or self._loop.forked():
                return
            if self._lifespan is not None:
                self._lifespan.shutdown()
            self._loop.stop()
            self._ready = False

    def __enter__(self) -> AsgiToWsgi:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- the WSGI callable -----------------------------------------------------------------

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        portal = self._portal()
        try:
            scope = build_scope(environ)
            body = _RequestBody.from_environ(environ, self.preload_body, self.max_body_size)
        except BadRequestError as exc:
            logger.warning("answering 400 Bad Request: %s", exc)
            start_response(
                "400 Bad Request", [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", "12")]
            )
            return [b"Bad Request\n"]
        except _DeclaredTooLarge as exc:
            logger.warning(
                "answering 413 Content Too Large: the request declares a %d-byte body, "
                "over max_body_size (%d bytes)",
                exc.declared,
                exc.limit,
            )
            start_response(_TOO_LARGE_STATUS, list(_TOO_LARGE_HEADERS))
            return _AnswerThenDrain([_TOO_LARGE_BODY], exc.unread)
        lifespan = self._lifespan
        if lifespan is not None and lifespan.supported:
            scope["state"] = dict(lifespan.state)
        loop_ref = self._loop.loop_ref
        assert loop_ref is not None  # the portal is running
        events: Handoff[_Event] = Handoff(self.max_buffer, loop_ref)
        task = _AppTask(self.app, scope, body, events)
        responder = _Responder(self, task, body, portal, environ)
        task.start(self._loop.asyncio_loop, portal)
        return responder.respond(start_response)


class _RequestBody:
    """Reads ``wsgi.input`` in the WSGI thread, for the app's ``receive()``: never past
    Content-Length, to EOF only when the server says the stream ends there
    (``wsgi.input_terminated``). A small body of known length is read before the app
    starts (``preloaded``) and handed over in one message. A body read to EOF is held
    to ``limit`` (max_body_size); a declared length was checked against it before.
    What the app left unread is read and discarded after the response (:meth:`drain`)."""

    __slots__ = (
        "limit",
        "preloaded",
        "received",
        "remaining",
        "server_drains",
        "socket",
        "stream",
        "too_large",
        "truncated",
        "unasked",
    )

    def __init__(
        self,
        stream: Any,
        remaining: int | None,
        preloaded: bytes | None,
        truncated: bool,
        limit: int | None = None,
        socket: Any = None,
        unasked: bool = False,
        server_drains: bool = False,
    ) -> None:
        self.stream = stream  # None: nothing left to read (all of it read, or never to be)
        self.remaining = remaining  # None: read until EOF
        self.preloaded = preloaded
        self.truncated = truncated  # the preloaded body ended early: the client left
        self.limit = limit  # only for a body read until EOF
        self.received = 0  # bytes read until EOF so far (counted only with a limit)
        self.too_large = False  # ...and they went past the limit: reading stopped
        self.socket = socket  # the server's (gunicorn's), to bound drain()'s waits
        # The client waits for "100 Continue" before it sends the body, and the server
        # may send that only at the first read (gunicorn sends it at once): until then,
        # after a final response, the client may never send it (see drain()).
        self.unasked = unasked
        self.server_drains = server_drains  # the server reads an unread rest itself

    @classmethod
    def from_environ(cls, environ: Environ, preload: int, limit: int | None = None) -> _RequestBody:
        """Raises BadRequestError for a bad CONTENT_LENGTH (the client's, passed on by
        a lenient server), InvalidScopeError for an environ that breaks PEP 3333, and
        _DeclaredTooLarge for a CONTENT_LENGTH over ``limit``."""
        stream = environ.get("wsgi.input")
        raw_length = environ.get("CONTENT_LENGTH")
        length: int | None
        if raw_length:
            try:
                length = parse_content_length(raw_length)
            except ValueError as exc:
                raise BadRequestError(f"invalid CONTENT_LENGTH: {exc}") from None
            except (TypeError, AttributeError):
                raise _RequestBody.invalid_environ("CONTENT_LENGTH", raw_length) from None
        else:
            terminated = environ.get("wsgi.input_terminated")
            if terminated is True:
                length = None  # chunked upload: the server's stream ends at the body's end
            elif terminated is None or terminated is False:
                length = 0  # PEP 3333: without CONTENT_LENGTH there is no body to read
            else:
                raise _RequestBody.invalid_environ("wsgi.input_terminated", terminated, "a bool")
        if length is not None and limit is not None and length > limit:
            # Unread, the body would be the start of the connection's next request on a
            # server that keeps it (gunicorn's gthread worker then loses that request).
            unread = (
                cls._streamed(environ, stream, length, None)
                if callable(getattr(stream, "read", None))
                else None
            )
            raise _DeclaredTooLarge(length, limit, unread)
        if length == 0:
            return cls(None, 0, b"", False)
        if not callable(getattr(stream, "read", None)):
            raise _RequestBody.invalid_environ("wsgi.input", stream, "a stream with read()")
        if length is not None and length <= preload:
            # Small and complete: read it here, hand it over in one message.
            data = _read_exactly(stream, length)
            return cls(None, 0, data, len(data) < length)
        return cls._streamed(environ, stream, length, limit if length is None else None)

    @classmethod
    def _streamed(cls, environ: Environ, stream: Any, length: int | None, limit: int | None) -> _RequestBody:
        """A body read from ``stream`` as the app asks (or drained, unread)."""
        socket = environ.get("gunicorn.socket")
        unasked = socket is None and str(environ.get("HTTP_EXPECT", "")).lower() == "100-continue"
        server_drains = socket is not None and gunicorn_drains_itself(environ.get("SERVER_SOFTWARE"))
        return cls(stream, length, None, False, limit, socket, unasked, server_drains)

    @staticmethod
    def invalid_environ(key: str, value: object, expected: str = "a str") -> BridgeError:
        """InvalidScopeError naming an environ key that breaks PEP 3333 (slow path)."""
        return InvalidScopeError(environ_type_problem(key, value, expected))

    def serve(self, request: _ReadRequest) -> None:
        """Answer the loop's request for the next chunk."""
        if self.stream is None:
            request.answer(b"", False, True)
            return
        self.unasked = False  # (a server that sends "100 Continue" late has sent it now)
        if self.remaining is not None:
            size = min(_READ_CHUNK, self.remaining)
        elif self.limit is None:
            size = _READ_CHUNK
        else:
            # At most one byte past the limit: enough to tell a body that ends at it.
            size = min(_READ_CHUNK, self.limit - self.received + 1)
        try:
            data = self.stream.read(size)
        except Exception as exc:
            logger.debug("reading the request body failed: %r", exc)
            self.stream = None
            request.answer(b"", False, True)
            return
        if type(data) is not bytes:
            try:
                data = wsgi_input_bytes(data)
            except BridgeError as exc:
                # Ends the body; the app's receive() raises it: wsgi.input broke PEP 3333.
                self.stream = None
                request.answer(b"", False, True, exc.with_traceback(None))
                return
        # From here, the end of the body (or of the stream) is the end of reading it:
        # self.stream = None, and then nothing is left for drain().
        if self.remaining is None:
            if self.limit is not None and data and self._over_limit(len(data)):
                request.answer(b"", False, True, too_large=True)
            else:
                if not data:
                    self.stream = None
                request.answer(data, bool(data), False)
        elif not data:
            self.stream = None
            request.answer(b"", False, True)  # the client left before the whole body arrived
        else:
            self.remaining -= len(data)
            if self.remaining <= 0:
                self.stream = None
            request.answer(data, self.remaining > 0, False)

    def forget(self) -> None:
        """Never read the rest: the response failed, and the server closes the connection."""
        self.stream = self.socket = None

    def drain(self) -> None:
        """Read and discard the rest of the body that the app left unread
        (:func:`~bridge.body_drain.drain_rest`, bounded by ``_DRAIN_LIMIT`` and
        ``_DRAIN_TIME``). Only in the WSGI thread, after the response, once the app's
        task can no longer ask for the body (the hand-off refused: its receive() gets a
        disconnect). Nothing is read of a body that the client sends only once told to
        (``Expect: 100-continue``) when the app never read any of it, unless the server
        is gunicorn (which tells it at once): a server that tells it at the first read
        would now wait for a body that the client, holding a final response, need never
        send.
        """
        stream, self.stream = self.stream, None
        sock, self.socket = self.socket, None
        if stream is None or self.server_drains:
            return
        if self.unasked:
            logger.debug(
                "leaving the request body the ASGI app did not read: its client waits for "
                "100 Continue before sending it (Expect: 100-continue), which the server may "
                "never have sent; the server has to close the connection"
            )
            return
        drain_rest(
            stream,
            self.remaining,
            sock,
            max_bytes=_DRAIN_LIMIT,
            max_seconds=_DRAIN_TIME,
            read_size=_DRAIN_CHUNK,
        )

    def _over_limit(self, size: int) -> bool:
        """Count ``size`` more bytes read until EOF; past the limit, stop reading: the
        app gets none of these bytes, and a disconnect instead."""
        assert self.limit is not None
        self.received += size
        if self.received <= self.limit:
            return False
        self.too_large = True
        self.stream = None
        return True


class _DeclaredTooLarge(BodyTooLargeError):
    """The request declares a body over max_body_size: answered 413 before the app runs;
    ``unread`` is that body, to drain after the answer."""

    def __init__(self, declared: int, limit: int, unread: _RequestBody | None) -> None:
        super().__init__(limit)
        self.declared = declared
        self.unread = unread


class _ReadRequest:
    """The loop asks the WSGI thread for the next chunk of the request body; the
    answer comes back in this object (an event that crosses, not a tuple)."""

    __slots__ = ("data", "error", "event", "left", "loop_ref", "more", "too_large")

    def __init__(self, loop_ref: LoopRef) -> None:
        self.loop_ref = loop_ref
        self.event = loop_ref.new_event()
        self.data = b""
        self.more = False
        self.left = True  # the body ended early: the client left
        self.error: BridgeError | None = None  # ...or wsgi.input broke PEP 3333
        self.too_large = False  # ...or it grew past max_body_size

    def answer(
        self,
        data: bytes,
        more: bool,
        left: bool,
        error: BridgeError | None = None,
        *,
        too_large: bool = False,
    ) -> None:
        """From either thread: hand the result over and wake the waiting task (if the
        loop has ended, nobody waits any more)."""
        self.data, self.more, self.left, self.error = data, more, left, error
        self.too_large = too_large
        if threading.get_ident() == self.loop_ref.thread:
            self.event.set()
        else:
            self.loop_ref.wake(self.event)


class _Failed:
    """The app's task failed before its response was handed over: the WSGI thread
    raises ``error`` from the response."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


class _Signal(enum.Enum):
    """What else crosses (CLIENT_LEFT), or comes out of the WSGI thread's wait for
    events (``_TaskEvents.next_event``)."""

    CLIENT_LEFT = "CLIENT_LEFT"  # the task told the app its client left mid-body
    TOO_LARGE = "TOO_LARGE"  # the body grew past max_body_size (the app was told)
    NO_ANSWER = "NO_ANSWER"  # the client left mid-body; the response did not end in time


# (Module names, here and below: cheaper than an enum class's attributes, read per request.)
_CLIENT_LEFT, _TOO_LARGE, _NO_ANSWER = _Signal.CLIENT_LEFT, _Signal.TOO_LARGE, _Signal.NO_ANSWER
_CLIENT_GONE = AsgiState.CLIENT_GONE


#: What the app's task hands to the WSGI thread, through one bounded Handoff: the
#: response as the ASGI machine translates it, a failure, a request to read the
#: body, or word that the app was told its client left. The task's end is the
#: hand-off's close().
_Event = Union[Start, Body, PathBody, _Failed, _ReadRequest, _Signal]


def _read_exactly(stream: Any, length: int) -> bytes:
    """Up to ``length`` bytes of ``stream``; fewer if it ends or fails (the client
    left). A read() that returns a str raises InvalidScopeError naming wsgi.input."""
    chunks = []
    remaining = length
    while remaining > 0:
        try:
            data = stream.read(remaining)
        except Exception as exc:
            logger.debug("reading the request body failed: %r", exc)
            break
        if type(data) is not bytes:
            data = wsgi_input_bytes(data)
        if not data:
            break
        chunks.append(data)
        remaining -= len(data)
    return b"".join(chunks)


class _TaskState(enum.Enum):
    RUNNING = "RUNNING"
    FAILED_EARLY = "FAILED_EARLY"  # the request failed while the task runs on (see receive)
    ENDED = "ENDED"


_RUNNING, _FAILED_EARLY, _ENDED = _TaskState.RUNNING, _TaskState.FAILED_EARLY, _TaskState.ENDED


class _AppCalls:
    """One request's ASGI side, on the loop: all its state (its task's handles too),
    and the app's ``receive()`` and ``send()``. The first gets the request body
    (preloaded, or read by the WSGI thread on request), then ``http.disconnect`` once
    the response is over or the client left; what the second sends, as the ASGI
    machine (``response``) translates it, goes to the WSGI thread as events (through
    ``events``). :class:`_AppTask` runs the app with them. A base class rather than a
    field: one object per request, no second construction on the hot path."""

    __slots__ = (
        "_ended",
        "_over",
        "app",
        "body_done",
        "cancel_scope",
        "events",
        "loop_ref",
        "pending_start",
        "preloaded",
        "response",
        "scope",
        "state",
        "task",
        "truncated",
    )

    def __init__(self, app: ASGIApp, scope: Scope, body: _RequestBody, events: Handoff[_Event]) -> None:
        self.app = app
        self.scope = scope
        self.events = events
        self.loop_ref = events.loop_ref
        self.state = _RUNNING
        # What the app may send next: the ASGI rules.
        self.response = AsgiResponse(head=scope["method"] == "HEAD")
        self.preloaded = body.preloaded
        self.truncated = body.truncated
        self.body_done = False
        # The status, held back and handed over with what follows it, so that the
        # WSGI thread wakes once for the status and the first body, not twice.
        self.pending_start: Start | None = None
        self._over: anyio.Event | None = None  # made only when receive() has to wait
        self._ended: anyio.Event | None = None  # ...or when an abort waits for the end
        self.cancel_scope: anyio.CancelScope | None = None  # the app's task, on trio
        self.task: asyncio.Task[None] | None = None  # the app's task, on asyncio

    async def receive(self) -> Message:
        if self.response.state is _CLIENT_GONE:
            return _DISCONNECT
        if not self.body_done:
            return await self._next_body_message()
        # The whole body was delivered: http.disconnect comes only once the response
        # is complete or the client has gone (ASGI www spec, "Disconnect").
        if not self._response_over():
            broken = self.response.broken
            if broken is not None and self.state is _RUNNING:
                # The app broke the response protocol, swallowed the error, and now
                # waits for the client to leave, which a WSGI server cannot report
                # while it waits for the response: fail the request now.
                self.state = _FAILED_EARLY
                self._hand_over_failure(ResponseError(broken))  # (a fresh one: never raised here)
            if self._over is None:
                self._over = anyio.Event()
            await self._over.wait()
        return _DISCONNECT

    def _response_over(self) -> bool:
        return self.response.finished or self.response.state is _CLIENT_GONE

    async def _next_body_message(self) -> Message:
        preloaded = self.preloaded
        if preloaded is not None:
            self.preloaded = None
            self.body_done = True
            if self.truncated:
                self._client_left()
                return _DISCONNECT
            return {"type": "http.request", "body": preloaded, "more_body": False}
        # wsgi.input belongs to the WSGI thread, which waits on our events anyway: ask
        # it to read the next chunk (one wake-up each way, no extra thread).
        request = _ReadRequest(self.loop_ref)
        try:
            self._emit(request)
        except Closed:
            self.body_done = True
            return _DISCONNECT  # the server has finished with this request
        await request.event.wait()
        if request.left:
            self.body_done = True
            error, request.error = request.error, None
            if error is not None:
                raise error  # wsgi.input broke PEP 3333: the server's bug, not a disconnect
            if request.too_large:
                # Refused for its size: to the app, a client that left (its sends raise
                # from now on; the WSGI side answers 413, or cuts a started response).
                self.response.client_gone()
            else:
                self._client_left()
            return _DISCONNECT
        if not request.more:
            self.body_done = True
        return {"type": "http.request", "body": request.data, "more_body": request.more}

    def _client_left(self) -> None:
        """The app is told now that its client left during the request body. The WSGI
        server cannot see that while it waits for the response: let the WSGI side know,
        so that the app gets ``disconnect_grace`` from now on to answer."""
        with contextlib.suppress(Closed):  # the WSGI side is done with the request already
            self._emit(_CLIENT_LEFT)

    async def send(self, message: Message) -> None:
        event = self.response.send(message)  # ClientDisconnected once the client left
        if isinstance(event, Body):
            if not event.more:
                self._end_response()
            try:
                if event.more and event.data and self.pending_start is None:
                    # Backpressure: wait while the WSGI side is too far behind.
                    await self.events.put_in_loop(event, len(event.data))
                else:
                    self._emit(event)
            except Closed:
                # The WSGI server is done with a response that was not: the client left.
                self.response.client_gone()
                raise ClientDisconnected("the client disconnected") from None
            if self.response.state is _CLIENT_GONE:
                raise ClientDisconnected("the client disconnected")
        elif isinstance(event, Start):
            self.pending_start = event
        elif isinstance(event, PathBody):
            self._end_response()
            try:
                self._emit(event)  # the WSGI thread opens the file: I/O is for threads
            except Closed:
                self.response.client_gone()
                raise ClientDisconnected("the client disconnected") from None
        elif event is not None:
            try:
                self._cut(event)
            finally:
                del event  # it holds the error raised from here: no cycle through this frame

    def _cut(self, cut: Cut) -> NoReturn:
        """The body broke its own Content-Length: the bytes within it go on, then the
        response fails, so that the WSGI server closes the connection (on a kept-alive
        one the client would wait for bytes that never come, or read the surplus as the
        next response). The app's ``send()`` raises the error too."""
        error = cut.error
        _log_lie(error)
        events: list[_Event] = [Body(cut.data, True)] if cut.data else []
        # A copy for the WSGI thread: the app gets the original, with its own frames.
        events.append(_Failed(ResponseError(error.args[0], rule=error.rule, state=error.state)))
        start, self.pending_start = self.pending_start, None
        if start is not None:
            events.insert(0, start)
        with contextlib.suppress(Closed):  # the WSGI side is done already: nobody to tell
            self.events.push_in_loop(*events)
        self.state = _FAILED_EARLY  # what the app raises now is only logged
        try:
            raise error
        finally:
            del error, cut, events  # this frame joins the traceback: no cycle through it

    def _emit(self, event: _Event) -> None:
        start = self.pending_start
        if start is not None:
            self.pending_start = None
            self.events.push_in_loop(start, event)  # one hand-over, one wake-up
        else:
            self.events.push_in_loop(event)

    def _hand_over_failure(self, error: BaseException) -> bool:
        """False if the WSGI thread takes no more events."""
        try:
            self._emit(_Failed(error))
        except Closed:
            return False
        return True

    def _end_response(self) -> None:
        if self._over is not None:
            self._over.set()


class _AppTask(_AppCalls):
    """Runs the app as a task on the loop, reports how it ended (the hand-off's close,
    and an error the WSGI thread is to raise), and lets it go when its client leaves.
    Only :meth:`start` is called from another thread (the WSGI thread, once);
    :meth:`abort_then_cancel` runs on the loop."""

    __slots__ = ()

    def start(self, loop: asyncio.AbstractEventLoop | None, portal: BlockingPortal) -> None:
        """From the WSGI thread: start the app's task, without waiting for the loop."""
        if loop is not None:
            # A bare callback, not run_coroutine_threadsafe: the task reports its end
            # through the events already, so a concurrent future and its chained
            # callbacks would be pure cost (a fifth of the adapter's time per hello).
            # Requests that start while the loop is busy share its wake-up.
            if not self.loop_ref.call_soon(self._create_task, loop):
                raise RuntimeError("Event loop is closed")
        else:
            portal.start_task_soon(self._run_in_scope)

    def _create_task(self, loop: asyncio.AbstractEventLoop) -> None:
        self.task = task = loop.create_task(self.run())
        _running_tasks.add(task)  # asyncio keeps only weak references to tasks

    async def _run_in_scope(self) -> None:
        # A scope of our own to cancel the task by, from the loop: cancelling the
        # portal's future works only from another thread before anyio 4.12.
        with anyio.CancelScope() as cancel_scope:
            self.cancel_scope = cancel_scope
            await self.run()

    async def run(self) -> None:
        try:
            await self.app(self.scope, self.receive, self.send)
        except anyio.get_cancelled_exc_class():
            # Cut off (the adapter closed, or the client left): never let the WSGI
            # server finish a truncated response as if it were complete.
            self._hand_over_failure(
                BridgeError("the ASGI app's task was cancelled before it finished its response")
            )
            raise
        except BaseException as exc:
            self._failed(exc)  # no name for it here: this frame is in its traceback
        else:
            try:
                end = self.response.returned()  # a response that never started is an error
            except ResponseError as exc:
                if exc.rule == "content-length":
                    _log_lie(exc)
                self._failed(exc)
            else:
                if end is not None:  # started, never ended: end it here
                    with contextlib.suppress(Closed):  # the WSGI side is done already
                        self._emit(end)
        finally:
            self.state = _ENDED
            if self.task is not None:
                _running_tasks.discard(self.task)
            # A cancelled task keeps its CancelledError, whose traceback holds this
            # frame, which holds this object: let go of it.
            self.task = self.cancel_scope = None
            self.events.close()  # the end: the WSGI thread sees it once it took the rest
            if self._ended is not None:
                self._ended.set()

    def _failed(self, exc: BaseException) -> None:
        """The app raised: hand the error to the WSGI thread if it will raise it there.

        Otherwise (the response was complete, or its client gone) it is only logged:
        an error left in the hand-off would hold its traceback, whose frames hold this
        request, until a full garbage collection.
        """
        error = AppExitError.wrap(exc, "ASGI") if isinstance(exc, (KeyboardInterrupt, SystemExit)) else exc
        response = self.response
        if response.finished:
            logger.error("the ASGI app raised after its response was complete", exc_info=error)
        elif response.state is _CLIENT_GONE:
            if _caused_by_disconnect(error):
                logger.debug("the ASGI app stopped after its client left: %r", error)
            else:
                logger.error("the ASGI app raised after its client left", exc_info=error)
        elif self.state is _FAILED_EARLY:
            logger.debug("the ASGI app raised after its request failed", exc_info=error)
        elif not self._hand_over_failure(error):
            logger.error("the ASGI app raised after its response was handed over", exc_info=error)

    async def abort_then_cancel(self, grace: float, say_why: bool) -> None:
        """The client is gone: tell the app (its sends raise, its receive()
        disconnects), give it ``grace`` seconds, then cancel it (``say_why``: with a
        log line saying why; otherwise the caller has said it)."""
        self.response.client_gone()
        self._end_response()
        for event in self.events.refuse():  # nobody takes them now; a waiting send() wakes
            if isinstance(event, _ReadRequest):
                event.answer(b"", False, True)
        if self.state is not _ENDED and grace > 0:
            self._ended = anyio.Event()
            with anyio.move_on_after(grace):
                await self._ended.wait()
        if self.state is not _ENDED:
            if say_why:
                logger.warning("cancelling the ASGI app's task: its client left %s s ago", grace)
            if self.task is not None:
                self.task.cancel()
            elif self.cancel_scope is not None:
                self.cancel_scope.cancel()


class _ResponseState(enum.Enum):
    AWAITING = "AWAITING"  # waiting for the status and the first body bytes
    STREAMING = "STREAMING"  # handed to the server, more to come
    DONE = "DONE"  # the server has the whole response (or closed it early)
    CUT = "CUT"  # ended by us (body too large): the app is let go; close() waits for it


_AWAITING, _STREAMING, _RESPONDED, _CUT = (
    _ResponseState.AWAITING,
    _ResponseState.STREAMING,
    _ResponseState.DONE,
    _ResponseState.CUT,
)


class _TaskEvents:
    """One request's WSGI side, in the WSGI server's thread: its state; the app's task's
    events, taken one at a time (its body reads served meanwhile); and the task's end:
    its events refused, the app cut off or given up on, the task waited for.
    :class:`_Responder` makes the WSGI response of those events. A base class rather
    than a field: one object per request, no second construction on the hot path."""

    __slots__ = (
        "answer_by",
        "backlog",
        "body",
        "events",
        "file_wrapper",
        "grace",
        "head",
        "loop",
        "portal",
        "state",
        "task",
        "teardown_wait",
    )

    def __init__(
        self,
        adapter: AsgiToWsgi,
        task: _AppTask,
        body: _RequestBody,
        portal: BlockingPortal,
        environ: Environ,
    ) -> None:
        self.task = task  # only to start and to abort it, through the loop
        self.events = task.events
        self.body = body
        self.loop = adapter._loop
        self.portal = portal
        self.grace = adapter.disconnect_grace
        self.teardown_wait = adapter.teardown_wait
        self.head = task.response.head
        # The server's (PEP 3333: optional), for an http.response.pathsend.
        self.file_wrapper: Any = environ.get("wsgi.file_wrapper")
        self.state = _AWAITING
        self.backlog: deque[_Event] = deque()
        # The client left mid-body: the response must have ended by then (monotonic).
        self.answer_by: float | None = None

    def _loop_stopped(self) -> bool:
        if not self.loop.running and not self.events.closed:
            raise BridgeError("the event loop thread running the ASGI app has stopped")
        return False

    def next_event(self) -> Start | Body | PathBody | _Failed | _Signal | None:
        """The next response event, None once the task has ended; serves the app's
        body reads meanwhile. ``_TOO_LARGE`` once a read went past
        max_body_size; ``_NO_ANSWER`` if the client left mid-body and the app,
        told so, has not finished its response within the grace period (nothing of it
        is waiting to be taken)."""
        backlog = self.backlog
        while True:
            if not backlog:
                answer_by = self.answer_by
                timeout = None if answer_by is None else max(0.0, answer_by - time.monotonic())
                try:
                    events = self.events.get_in_thread(self._loop_stopped, timeout)
                except Closed:
                    return None
                if not events:  # (only with a deadline: it passed)
                    return _NO_ANSWER
                backlog.extend(events)
            event = backlog.popleft()
            if isinstance(event, _ReadRequest):
                self.body.serve(event)
                if self.body.too_large:
                    return _TOO_LARGE
                continue
            if event is _CLIENT_LEFT:
                # The WSGI server sees a client leave only when a write fails; an app
                # that, told, neither answers nor ends would hold this thread for good.
                self.answer_by = time.monotonic() + self.grace
                continue
            return event

    def finish(self) -> None:
        """The WSGI server is done with this request: the task's events are refused
        (its body reads get a disconnect, an error it reports from now on is only
        logged), and those queued go, those taken but not served too: from now on,
        only drain() reads the body."""
        if self.state is not _CUT:
            self.state = _RESPONDED
        for event in self.events.refuse():
            if isinstance(event, _ReadRequest):
                event.answer(b"", False, True)
        backlog = self.backlog
        if backlog:
            for event in backlog:
                if isinstance(event, _ReadRequest):
                    event.answer(b"", False, True)
            backlog.clear()

    def cut(self) -> None:
        """End the request before the app has: its events are refused, it is told the
        client left and cancelled after the grace period; ``close()`` waits for that."""
        self.finish()
        self.state = _CUT
        self.abort(wait=False)

    def give_up(self) -> None:
        """The client left during the request body, the app was told, and it has not
        finished its response within the grace period: a WSGI server cannot see the
        client go while it waits on the app, so free its thread now (the caller then
        fails the request). The app's task is cancelled, and waited for."""
        logger.warning(
            "the client left during the request body and the ASGI app did not finish its "
            "response within disconnect_grace (%s s): cancelling its task",
            self.grace,
        )
        self.finish()
        self.abort(wait=True, grace=0.0, say_why=False)

    def _let_go(self) -> None:
        """The request failed while the app's task may still run (it swallowed the
        error of a broken send()): tell it the client is gone, and cancel it after the
        grace period, as when the server closes a response early."""
        if not self.events.closed:
            self.abort(wait=False)

    def abort(self, *, wait: bool, grace: float | None = None, say_why: bool = True) -> None:
        """The client is gone: tell the app, give it a grace period (``grace``, or
        disconnect_grace), then cancel it (``say_why``: with a log line saying why).

        With ``wait``, block until the app's task has ended (the server is closing the
        response, and nothing of the request should outlive that).
        """
        if grace is None:
            grace = self.grace
        try:
            if self.loop.asyncio_loop is not None:
                asyncio.run_coroutine_threadsafe(
                    self.task.abort_then_cancel(grace, say_why), self.loop.asyncio_loop
                )
            else:
                self.portal.start_task_soon(self.task.abort_then_cancel, grace, say_why)
        except RuntimeError:  # the loop has ended (asyncio's, or the portal's error)
            return
        if wait and not self._wait_for_end(grace + _CANCEL_WAIT):
            logger.warning("the ASGI app's task did not end after it was cancelled")

    def _wait_for_end(self, timeout: float) -> bool:
        """Wait for the task's end (the hand-off's close), dropping what it still
        sends and refusing its body reads; False if it did not come in time."""
        self.backlog.clear()
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return self.events.closed
            try:
                events = self.events.get_in_thread(self._loop_gone, remaining)
            except Closed:
                return True
            for event in events:
                if isinstance(event, _ReadRequest):
                    event.answer(b"", False, True)

    def _loop_gone(self) -> bool:
        return not self.loop.running


class _Responder(_TaskEvents):
    """Hands one request's response to the WSGI server: waits for its status and first
    body bytes, then starts it (a whole body, a stream, a pathsend file, or 413), and,
    from the response's ``close()``, lets the app finish (:meth:`await_return`)."""

    __slots__ = ()

    def respond(self, start_response: StartResponse) -> Iterable[bytes]:
        """Wait for the status, headers and first body bytes; then start the response."""
        status: str | None = None
        headers: list[tuple[str, str]] = []
        chunks: list[bytes] = []
        complete = head_cut = False
        served: Iterable[bytes] | None = None  # the file of an http.response.pathsend
        while True:
            event = self.next_event()
            if isinstance(event, Body):
                if event.data:
                    chunks.append(event.data)
                if not event.more:
                    complete = True
                    break
                if event.data:
                    break
                if self.head:
                    # No body bytes will ever come for HEAD, and an endless stream would
                    # hold the headers forever: answer now, and let the app go.
                    head_cut = True
                    break
            elif isinstance(event, Start):
                status, headers = event
            elif isinstance(event, PathBody):
                # The server closes the file once it has sent it: the response's end.
                on_close = self.await_return if self.teardown_wait or self.body.stream is not None else None
                try:
                    served = open_path_body(event, self.file_wrapper, on_close)
                except ResponseError:
                    self.finish()
                    raise
                break
            elif isinstance(event, _Failed):
                self._let_go()
                error = event.error
                try:
                    raise error
                finally:
                    del error, event  # this frame joins the traceback: no cycle through it
            elif event is None:  # the task ended, after a start (one that never started reports _Failed)
                if status is None:
                    raise BridgeError("the ASGI app's task ended without a response")
                complete = True
                break
            elif event is _TOO_LARGE:
                return self._too_large(start_response)
            else:
                self.give_up()
                raise ClientDisconnected(
                    "the client left before sending the whole request body, and the ASGI app did not answer"
                )
        assert status is not None
        start_response(status, headers)
        if served is not None:
            self.finish()
            return served
        if head_cut:
            self.finish()
            self.abort(wait=False)
            # (A request body the app left unread is read and discarded in close().)
            return [] if self.body.stream is None else _CompleteResponse([], self, wait=False)
        if complete:
            # The whole body is here: a one-element list lets the server set Content-Length.
            self.finish()
            body = [b"".join(chunks)] if not self.head else []
            if (self.events.closed or not self.teardown_wait) and self.body.stream is None:
                return body
            return _CompleteResponse(body, self)
        self.state = _STREAMING
        return _ResponseIterator(self, chunks)

    def _too_large(self, start_response: StartResponse) -> Iterable[bytes]:
        """Before the response started, the body grew past max_body_size: answer 413
        (the app, told its client left, answers nobody), and let the app go."""
        logger.warning(
            "answering 413 Content Too Large: the request body grew past max_body_size "
            "(%d bytes) as it streamed in; the ASGI app was told its client left",
            self.body.limit,
        )
        self.cut()
        start_response(_TOO_LARGE_STATUS, list(_TOO_LARGE_HEADERS))
        return _CompleteResponse([_TOO_LARGE_BODY], self)

    def await_return(self, wait: bool = True) -> None:
        """From the response's close(): the client has the whole response; read and
        discard what the app left of the request body (after finish(): the task can no
        longer read it), and give the app up to ``teardown_wait`` (``wait``) to return
        before the server takes another request. A request we cut (its body over
        max_body_size, never read on) waits for the app's (cancelled) task instead."""
        if self.state is _CUT:
            if not self._wait_for_end(self.grace + _CANCEL_WAIT):
                logger.warning("the ASGI app's task did not end after it was cancelled")
            return
        if self.body.stream is not None:
            self.body.drain()  # (the app's teardown runs meanwhile, on the loop)
        if self.events.closed or not self.teardown_wait or not wait:
            return
        if not self._wait_for_end(self.teardown_wait):
            logger.debug(
                "the ASGI app still runs %s s after its response ended; the server goes on",
                self.teardown_wait,
            )


class _ResponseIterator:
    """The streaming response handed to the WSGI server."""

    __slots__ = ("done", "pending", "responder")

    def __init__(self, responder: _Responder, pending: list[bytes]) -> None:
        self.responder = responder
        self.pending = pending
        self.done = False

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        if self.pending:
            return self.pending.pop(0)
        responder = self.responder
        while not self.done:
            event = responder.next_event()
            if isinstance(event, Body):
                if not event.more:
                    self.done = True
                if event.data:
                    return event.data
            elif isinstance(event, _Failed):
                self.done = True
                responder._let_go()
                responder.body.forget()  # the server closes the connection after this error
                error = event.error
                try:
                    raise error
                finally:
                    del error, event  # this frame joins the traceback: no cycle through it
            elif event is None:
                self.done = True  # returned after start without a final body: end here
            elif event is _NO_ANSWER:
                self.done = True
                responder.give_up()
                raise ClientDisconnected(
                    "the client left before sending the whole request body, and the ASGI app "
                    "did not finish its response"
                )
            else:  # the app read on after the response started, past max_body_size
                self.done = True
                limit = responder.body.limit
                assert limit is not None
                logger.warning(
                    "the request body grew past max_body_size (%d bytes) after the response "
                    "started: ending the response as an error; the ASGI app was told its client left",
                    limit,
                )
                responder.cut()
                raise BodyTooLargeError(limit)
        responder.finish()
        raise StopIteration

    def close(self) -> None:
        responder = self.responder
        if not self.done:
            self.done = True
            responder.finish()
            responder.abort(wait=True)
        else:
            responder.finish()
            responder.await_return()


class _CompleteResponse(list[bytes]):
    """A whole response as a one-element list (the server can set Content-Length),
    whose ``close()`` reads and discards what the app left of the request body, and
    gives the app its ``teardown_wait`` (unless ``wait`` is false)."""

    __slots__ = ("responder", "wait")

    def __init__(self, body: list[bytes], responder: _Responder, *, wait: bool = True) -> None:
        super().__init__(body)
        self.responder: _Responder | None = responder
        self.wait = wait

    def close(self) -> None:
        responder, self.responder = self.responder, None
        if responder is not None:
            responder.await_return(self.wait)


class _AnswerThenDrain(list[bytes]):
    """A whole answer given without the app (413), whose ``close()`` reads and discards
    the request body, bounded (:meth:`_RequestBody.drain`)."""

    __slots__ = ("body",)

    def __init__(self, answer: list[bytes], body: _RequestBody | None) -> None:
        super().__init__(answer)
        self.body = body

    def close(self) -> None:
        body, self.body = self.body, None
        if body is not None:
            body.drain()


def _log_lie(error: ResponseError) -> None:
    """One line naming what the app declared and what it sent; the WSGI server gets
    the error (and logs it its own way) when the response fails."""
    # Formatted here: a record that kept the error would keep, through its traceback
    # (it is raised into the app), the app's frames, for as long as a handler keeps it.
    logger.error("ending the response as an error: %s", str(error))


def _caused_by_disconnect(error: BaseException) -> bool:
    """True if the error comes from the client leaving, even when the app wrapped our
    ClientDisconnected in an exception of its own (Starlette does)."""
    seen = 0
    current: BaseException | None = error
    while current is not None and seen < 8:
        if isinstance(current, OSError):
            return True
        current = current.__cause__ or current.__context__
        seen += 1
    return False


# -- process-wide: fork and exit ------------------------------------------------------------

_live_adapters: weakref.WeakSet[AsgiToWsgi] = weakref.WeakSet()
_running_tasks: set[asyncio.Task[None]] = set()


def _after_fork_in_child() -> None:
    _running_tasks.clear()  # the parent's loop, which the child does not run
    for adapter in list(_live_adapters):
        adapter._reset()


_exiting = False


def _close_all_at_exit() -> None:
    global _exiting
    _exiting = True
    for adapter in list(_live_adapters):
        try:
            adapter.close()
        except Exception:
            logger.exception("closing %r at exit failed", adapter)


def _register_exit_hook() -> None:
    """Close every adapter (lifespan shutdown, loop stopped) when the interpreter exits.

    In the threading module's exit hooks, not only in ``atexit``: the interpreter runs
    those first, in reverse order of registration, and only then joins the non-daemon
    threads and runs ``atexit``. By then ``concurrent.futures`` has shut its pools
    (``run_in_executor``, ``asyncio.to_thread`` and ``getaddrinfo`` in a shutdown raise
    "cannot schedule new futures after interpreter shutdown"), and a non-daemon thread
    that the app stops in its lifespan shutdown would be joined forever first. Importing
    ``concurrent.futures.thread`` before registering puts our hook before its own. The
    ``atexit`` hook stays as a fallback; ``close()`` twice is a no-op.
    """
    import concurrent.futures.thread  # noqa: F401, PLC0415 - registers its exit hook first

    register = getattr(threading, "_register_atexit", None)
    if register is not None:
        try:
            register(_close_all_at_exit)
        except RuntimeError:  # imported while the interpreter is already shutting down
            logger.debug("too late for a threading exit hook; closing in atexit only")
    atexit.register(_close_all_at_exit)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
_register_exit_hook()
