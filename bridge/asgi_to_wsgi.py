"""AsgiToWsgi: run an ASGI app under a PEP 3333 server.

The ASGI app runs on one event loop in a background thread (asyncio or trio, through
an anyio portal). Each WSGI call submits the app as a task on that loop and then
blocks on a thread-safe queue of response events that the app's ``send()`` fills.
The translation rules live in the pure modules (:mod:`bridge.environ`,
:mod:`bridge.http`); this module is the concurrency glue.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import queue
import threading
import time
import weakref
from typing import Any, Callable, Coroutine, Iterable, Iterator, Literal

import anyio
from anyio.from_thread import BlockingPortal
from asgiref.compatibility import guarantee_single_callable

from ._types import ASGIApp, Environ, Message, Scope, StartResponse
from .environ import build_scope, environ_type_problem, wsgi_input_bytes
from .errors import (
    AppExitError,
    BadRequestError,
    BridgeError,
    ClientDisconnected,
    InvalidScopeError,
    LifespanError,
    ResponseError,
)
from .handoff import LoopRef
from .http import DEFAULT_PRELOAD_BODY, decode_asgi_headers, parse_asgi_status, parse_content_length
from .lifespan import Lifespan
from .loop_thread import LoopThread

__all__ = ["AsgiToWsgi"]

logger = logging.getLogger("bridge.asgi_to_wsgi")

_DISCONNECT: Message = {"type": "http.disconnect"}
_READ_CHUNK = 256 * 1024
# How long a blocked WSGI thread waits before checking that the loop thread lives.
_POLL = 1.0
# How long close() waits, beyond the grace period, for a cancelled task to end.
_CANCEL_WAIT = 5.0

# Response events, loop -> WSGI thread.
_START, _BODY, _ERROR, _END = "start", "body", "error", "end"
# ...the status with the event that followed it, in one put...
_START_AND = "start+"
# ...and the loop's request to read the body, served by the WSGI thread.
_READ = "read"


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
        before its task is cancelled.
    :param max_buffer: response bytes the app may send ahead of the WSGI server
        before its ``send()`` waits (backpressure).
    :param preload_body: request bodies of at most this many bytes, with a known
        length, are read before the app starts and handed over in one message.
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
    ) -> None:
        if teardown_wait < 0:
            raise ValueError(f"teardown_wait must be 0 or more, got {teardown_wait}")
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
            body = _RequestBody.from_environ(environ, self.preload_body)
        except BadRequestError as exc:
            logger.warning("answering 400 Bad Request: %s", exc)
            start_response(
                "400 Bad Request", [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", "12")]
            )
            return [b"Bad Request\n"]
        lifespan = self._lifespan
        if lifespan is not None and lifespan.supported:
            scope["state"] = dict(lifespan.state)
        call = _Call(self, scope, body, portal)
        call.start()
        return call.respond(start_response)


class _RequestBody:
    """Reads ``wsgi.input`` for the app's ``receive()``: never past Content-Length,
    to EOF only when the server says the stream ends there (``wsgi.input_terminated``)."""

    __slots__ = ("done", "error", "preloaded", "remaining", "stream", "truncated")

    def __init__(self, stream: Any, remaining: int | None, preloaded: bytes | None, truncated: bool) -> None:
        self.stream = stream
        self.remaining = remaining  # None: read until EOF
        self.preloaded = preloaded
        self.truncated = truncated
        self.done = False
        # What the WSGI thread found wrong with wsgi.input (it read a str), for the
        # app's receive() to raise; its traceback is dropped, no frame stays reachable.
        self.error: BridgeError | None = None

    @classmethod
    def from_environ(cls, environ: Environ, preload: int) -> _RequestBody:
        """Raises BadRequestError for a bad CONTENT_LENGTH (the client's, passed on by
        a lenient server) and InvalidScopeError for an environ that breaks PEP 3333."""
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
        if length == 0:
            return cls(None, 0, b"", False)
        if not callable(getattr(stream, "read", None)):
            raise _RequestBody.invalid_environ("wsgi.input", stream, "a stream with read()")
        if length is not None and length <= preload:
            # Small and complete: read it here, hand it over in one message.
            data = _read_exactly(stream, length)
            return cls(None, 0, data, len(data) < length)
        return cls(stream, length, None, False)

    async def next_message(self, call: _Call) -> Message:
        if self.preloaded is not None:
            data, self.preloaded = self.preloaded, None
            self.done = True
            if self.truncated:
                return _DISCONNECT
            return {"type": "http.request", "body": data, "more_body": False}
        # wsgi.input belongs to the WSGI thread, which waits on our events anyway: ask
        # it to read the next chunk (one wake-up each way, no extra thread).
        request = _ReadRequest(call.loop_ref)
        with call.lock:
            if call.wsgi_done:
                self.done = True
                return _DISCONNECT  # the server has finished with this request
            call.events.put((_READ, request))
        await request.event.wait()
        data, more, truncated = request.result
        if truncated:
            self.done = True
            error, self.error = self.error, None
            if error is not None:
                raise error  # wsgi.input broke PEP 3333: the server's bug, not a disconnect
            return _DISCONNECT
        if not more:
            self.done = True
        return {"type": "http.request", "body": data, "more_body": more}

    @staticmethod
    def invalid_environ(key: str, value: object, expected: str = "a str") -> BridgeError:
        """InvalidScopeError naming an environ key that breaks PEP 3333 (slow path)."""
        return InvalidScopeError(environ_type_problem(key, value, expected))

    def read(self) -> tuple[bytes, bool, bool]:
        """In the WSGI thread: the next chunk, whether more follows, whether the client left."""
        size = _READ_CHUNK if self.remaining is None else min(_READ_CHUNK, self.remaining)
        try:
            data = self.stream.read(size)
        except Exception as exc:
            logger.debug("reading the request body failed: %r", exc)
            return b"", False, True
        if type(data) is not bytes:
            try:
                data = wsgi_input_bytes(data)
            except BridgeError as exc:
                # Ends the body; next_message raises it from the app's receive().
                self.error = exc.with_traceback(None)
                return b"", False, True
        if self.remaining is None:
            return data, bool(data), False
        if not data:
            return b"", False, True  # the client left before the whole body arrived
        self.remaining -= len(data)
        return data, self.remaining > 0, False


class _ReadRequest:
    """The loop asks the WSGI thread for the next chunk of the request body."""

    __slots__ = ("event", "loop_ref", "result")

    def __init__(self, loop_ref: LoopRef) -> None:
        self.loop_ref = loop_ref
        self.event = loop_ref.new_event()
        self.result: tuple[bytes, bool, bool] = (b"", False, True)

    def answer(self, result: tuple[bytes, bool, bool]) -> None:
        """In the WSGI thread: hand the result over and wake the waiting task (if the
        loop has ended, nobody waits any more)."""
        self.result = result
        self.loop_ref.wake(self.event)


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


class _Call:
    """One request: the app's task on the loop, and the WSGI thread waiting on it."""

    def __init__(
        self,
        adapter: AsgiToWsgi,
        scope: Scope,
        body: _RequestBody,
        portal: BlockingPortal,
    ) -> None:
        self.app = adapter.app
        self.loop = adapter._loop
        self.grace = adapter.disconnect_grace
        self.teardown_wait = adapter.teardown_wait
        self.limit = adapter.max_buffer
        self.scope = scope
        self.body = body
        self.portal = portal
        self.wsgi_done = False  # the WSGI server finished with the request
        self.head = scope["method"] == "HEAD"
        self.events: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self.lock = threading.Lock()
        self.buffered = 0
        self.space: anyio.Event | None = None
        self.start_seen = False
        self.finished = False  # the final body message was sent
        self.broken: str | None = None  # how the app first broke the response protocol
        self.failed_early = False  # ...and the request failed while its task ran on
        self.reading = True  # the WSGI thread still takes events (see _stop_reading)
        self.aborted = False  # the WSGI server closed the response early: client gone
        self.task_ended = False  # set on the loop when the app's task is over
        self.asyncio_loop = adapter._loop.asyncio_loop
        loop_ref = adapter._loop.loop_ref
        assert loop_ref is not None  # the portal is running
        self.loop_ref = loop_ref
        # Loop-side events, made only when someone has to wait (most requests don't).
        self.response_done = False
        self.pending_start: tuple[Any, ...] | None = None
        self.backlog: tuple[Any, ...] | None = None  # the event that came with the start
        self._response_over: anyio.Event | None = None
        self._ended: anyio.Event | None = None
        self.cancel_scope: anyio.CancelScope | None = None  # the app's task, on trio
        self.task: asyncio.Task[None] | None = None  # the app's task, on asyncio

    # -- on the loop -----------------------------------------------------------------------

    async def run(self) -> None:
        try:
            await self.app(self.scope, self.receive, self.send)
        except anyio.get_cancelled_exc_class():
            # Cut off (the adapter closed, or the client left): never let the WSGI
            # server finish a truncated response as if it were complete.
            self._emit(
                (_ERROR, BridgeError("the ASGI app's task was cancelled before it finished its response"))
            )
            raise
        except BaseException as exc:
            self._failed(exc)  # no name for it here: this frame is in its traceback
        else:
            self._emit((_END,))
        finally:
            self.task_ended = True
            if self.task is not None:
                _running_tasks.discard(self.task)
            # A cancelled task keeps its CancelledError, whose traceback holds this
            # frame, which holds this call: let go of it.
            self.task = self.cancel_scope = None
            if self._ended is not None:
                self._ended.set()

    def _failed(self, exc: BaseException) -> None:
        """The app raised: hand the error to the WSGI thread if it will raise it there.

        Otherwise (the response was complete, or its client gone) it is only logged,
        and the end is reported without it: an error left in the queue would hold its
        traceback, whose frames hold this call, until a full garbage collection.
        """
        error = AppExitError.wrap(exc, "ASGI") if isinstance(exc, (KeyboardInterrupt, SystemExit)) else exc
        if self.finished:
            logger.error("the ASGI app raised after its response was complete", exc_info=error)
        elif self.aborted:
            if _caused_by_disconnect(error):
                logger.debug("the ASGI app stopped after its client left: %r", error)
            else:
                logger.error("the ASGI app raised after its client left", exc_info=error)
        elif self.failed_early:
            logger.debug("the ASGI app raised after its request failed", exc_info=error)
        else:
            with self.lock:
                if self.reading:
                    self._emit((_ERROR, error))
                    return
            logger.error("the ASGI app raised after its response was handed over", exc_info=error)
        self._emit((_END,))

    async def receive(self) -> Message:
        if self.aborted:
            return _DISCONNECT
        if not self.body.done:
            return await self.body.next_message(self)
        # The whole body was delivered: http.disconnect comes only once the response
        # is complete or the client has gone (ASGI www spec, "Disconnect").
        if not self.response_done:
            if self.broken is not None and not self.failed_early:
                # The app broke the response protocol, swallowed the error, and now
                # waits for the client to leave, which a WSGI server cannot report
                # while it waits for the response: fail the request now.
                self.failed_early = True
                self._emit((_ERROR, ResponseError(self.broken)))  # (a fresh one: never raised here)
            if self._response_over is None:
                self._response_over = anyio.Event()
            await self._response_over.wait()
        return _DISCONNECT

    async def send(self, message: Message) -> None:
        if self.aborted:
            raise ClientDisconnected("the client disconnected")
        try:
            kind = message["type"]
        except (KeyError, TypeError):
            raise self._refuse(f"an ASGI message must be a dict with a 'type' key, got {message!r}") from None
        if kind == "http.response.body":
            if not self.start_seen:
                raise self._refuse("the ASGI app sent http.response.body before http.response.start")
            if self.finished:
                return  # ASGI: messages after the final body are ignored
            body = message.get("body", b"")
            if type(body) is not bytes:
                if not isinstance(body, (bytes, bytearray, memoryview)):
                    raise self._refuse(f"http.response.body 'body' must be bytes, got {type(body).__name__}")
                body = bytes(body)
            more = bool(message.get("more_body", False))
            if not more:
                self.finished = True
                self._end_response()
            if self.head:
                body = b""  # the server would write it: WSGI leaves HEAD to the app
            self._emit((_BODY, body, more))
            if body and more:
                await self._reserve(len(body))
        elif kind == "http.response.start":
            if self.start_seen:
                raise self._refuse("the ASGI app sent http.response.start twice")
            if "status" not in message:
                raise self._refuse("http.response.start has no 'status'")
            try:
                status = parse_asgi_status(message["status"])
                headers = decode_asgi_headers(message.get("headers", ()))
            except ResponseError as exc:
                raise self._refuse(str(exc)) from None
            self.start_seen = True
            # Held back and put just before what follows, so that the WSGI thread
            # wakes once for the status and the first body, not twice.
            self.pending_start = (_START, status, headers)
        elif kind == "http.response.trailers":
            return  # never advertised; WSGI has no trailers
        else:
            raise self._refuse(f"unsupported ASGI message type {kind!r} for an http scope")

    def _refuse(self, reason: str) -> ResponseError:
        """The app broke the response protocol: the error to raise into its send(). As
        under uvicorn or hypercorn, an app that catches it and goes on correctly still
        answers; one that then waits for a disconnect fails (see receive())."""
        if self.broken is None:
            self.broken = reason
        return ResponseError(reason)

    async def _reserve(self, size: int) -> None:
        """Account for buffered bytes (of non-final bodies: the final one needs no
        room); wait while the WSGI side is too far behind."""
        with self.lock:
            self.buffered += size
            if self.buffered <= self.limit:
                return
            event = self.space = anyio.Event()
        await event.wait()
        if self.aborted:
            raise ClientDisconnected("the client disconnected")

    def _emit(self, event: tuple[Any, ...]) -> None:
        start = self.pending_start
        if start is not None:
            self.pending_start = None
            self.events.put((_START_AND, start, event))  # one put: one wake-up
        else:
            self.events.put(event)

    def _end_response(self) -> None:
        self.response_done = True
        if self._response_over is not None:
            self._response_over.set()

    async def _abort_then_cancel(self) -> None:
        self.aborted = True
        self._end_response()
        space = self.space
        if space is not None:
            space.set()
        if not self.task_ended:
            self._ended = anyio.Event()
            with anyio.move_on_after(self.grace):
                await self._ended.wait()
        if not self.task_ended:
            logger.warning("cancelling the ASGI app's task: its client left %s s ago", self.grace)
            if self.task is not None:
                self.task.cancel()
            elif self.cancel_scope is not None:
                self.cancel_scope.cancel()

    def start(self) -> None:
        """Start the app's task on the loop, without waiting for the loop to acknowledge."""
        loop = self.asyncio_loop
        if loop is not None:
            # A bare callback, not run_coroutine_threadsafe: the task reports its end
            # through the events already, so a concurrent future and its chained
            # callbacks would be pure cost (a fifth of the adapter's time per hello).
            loop.call_soon_threadsafe(self._create_task, loop)
        else:
            self.portal.start_task_soon(self._run_in_scope)

    async def _run_in_scope(self) -> None:
        # A scope of our own to cancel the task by, from the loop: cancelling the
        # portal's future works only from another thread before anyio 4.12.
        with anyio.CancelScope() as cancel_scope:
            self.cancel_scope = cancel_scope
            await self.run()

    def _create_task(self, loop: asyncio.AbstractEventLoop) -> None:
        self.task = task = loop.create_task(self.run())
        _running_tasks.add(task)  # asyncio keeps only weak references to tasks

    def spawn(self, func: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Start a helper task on the loop, without waiting for the loop to acknowledge."""
        if self.asyncio_loop is not None:
            asyncio.run_coroutine_threadsafe(func(), self.asyncio_loop)
        else:
            self.portal.start_task_soon(func)

    # -- in the WSGI thread ----------------------------------------------------------------

    def _next_event(self) -> tuple[Any, ...]:
        """The next response event; serves the app's body reads meanwhile."""
        if self.backlog is not None:
            event, self.backlog = self.backlog, None
            return event
        while True:
            try:
                event = self.events.get(timeout=_POLL)
            except queue.Empty:
                if not self.loop.running and not self.task_ended:
                    raise BridgeError("the event loop thread running the ASGI app has stopped") from None
                continue
            if event[0] is _READ:
                event[1].answer(self.body.read())
                continue
            if event[0] is _START_AND:
                self.backlog = event[2]
                return event[1]  # type: ignore[no-any-return]
            return event

    def finish(self) -> None:
        """The WSGI server is done with this request: body reads get a disconnect."""
        if self.body.stream is None:
            return  # the body was handed over whole: no read can be pending or come
        self._stop_reading()

    def _consumed(self, size: int) -> None:
        with self.lock:
            self.buffered -= size
            event = self.space
            if event is None or self.buffered > self.limit:
                return
            self.space = None
        self.loop_ref.wake(event)

    def respond(self, start_response: StartResponse) -> Iterable[bytes]:
        """Wait for the status, headers and first body bytes; then start the response."""
        status: str | None = None
        headers: list[tuple[str, str]] = []
        chunks: list[bytes] = []
        complete = head_cut = False
        while True:
            event = self._next_event()
            kind = event[0]
            if kind is _BODY:
                data, more = event[1], event[2]
                if data:
                    chunks.append(data)
                    if more:
                        self._consumed(len(data))
                if not more:
                    complete = True
                    break
                if data:
                    break
                if self.head:
                    # No body bytes will ever come for HEAD, and an endless stream would
                    # hold the headers forever: answer now, and let the app go.
                    head_cut = True
                    break
            elif kind is _START:
                status, headers = event[1], event[2]
            elif kind is _ERROR:
                self._let_go()
                error = event[1]
                try:
                    raise error
                finally:
                    del error, event  # this frame joins the traceback: no cycle through it
            else:  # _END
                if status is None:
                    raise ResponseError("the ASGI app returned without sending http.response.start")
                complete = True
                break
        assert status is not None
        start_response(status, headers)
        if head_cut:
            self._stop_reading()
            self.abort(wait=False)
            return []
        if complete:
            # The whole body is here: a one-element list lets the server set Content-Length.
            self.finish()
            if self.task_ended or not self.teardown_wait:
                return [b"".join(chunks)] if not self.head else []
            return _CompleteResponse([b"".join(chunks)] if not self.head else [], self)
        return _ResponseIterator(self, chunks)

    def _stop_reading(self) -> None:
        """The WSGI thread reads no more events while the app's task may still run:
        body reads get a disconnect, an error it reports from now on is only logged
        (queued, nobody would take it, and its traceback would keep this call alive),
        and one queued already goes."""
        with self.lock:
            self.reading = False
            self.wsgi_done = True  # body reads from now on get a disconnect
            while True:
                try:
                    event = self.events.get_nowait()
                except queue.Empty:
                    return
                if event[0] is _READ:
                    event[1].answer((b"", False, True))

    def _let_go(self) -> None:
        """The request failed while the app's task may still run (it swallowed the
        error of a broken send()): tell it the client is gone, and cancel it after the
        grace period, as when the server closes a response early."""
        if not self.task_ended:
            self.abort(wait=False)

    def await_return(self) -> None:
        """From the response's close(): the client has the whole response; give the
        app up to ``teardown_wait`` to return before the server takes another request."""
        if self.task_ended or not self.teardown_wait:
            return
        if not self._wait_for_end(self.teardown_wait):
            logger.debug(
                "the ASGI app still runs %s s after its response ended; the server goes on",
                self.teardown_wait,
            )

    def abort(self, *, wait: bool) -> None:
        """The client is gone: tell the app, give it a grace period, then cancel it.

        With ``wait``, block until the app's task has ended (the server is closing the
        response, and nothing of the request should outlive that).
        """
        try:
            self.spawn(self._abort_then_cancel)
        except RuntimeError:  # the loop has ended (asyncio's, or the portal's error)
            return
        if wait and not self._wait_for_end(self.grace + _CANCEL_WAIT):
            logger.warning("the ASGI app's task did not end after it was cancelled")

    def _wait_for_end(self, timeout: float) -> bool:
        """Drain the response events until the task's last one (it always sends an end
        or an error, whichever way it finishes); False if it did not come in time."""
        backlog, self.backlog = self.backlog, None
        if backlog is not None and (backlog[0] is _END or backlog[0] is _ERROR):
            return True
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return self.task_ended
            try:
                event = self.events.get(timeout=min(remaining, _POLL))
            except queue.Empty:
                if not self.loop.running:
                    return True
                continue
            if event[0] is _START_AND:
                event = event[2]
            if event[0] is _READ:
                event[1].answer((b"", False, True))
            elif event[0] is _END or event[0] is _ERROR:
                return True


class _ResponseIterator:
    """The streaming response handed to the WSGI server."""

    __slots__ = ("call", "done", "pending")

    def __init__(self, call: _Call, pending: list[bytes]) -> None:
        self.call = call
        self.pending = pending
        self.done = False

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        if self.pending:
            return self.pending.pop(0)
        call = self.call
        while not self.done:
            event = call._next_event()
            kind = event[0]
            if kind is _BODY:
                data, more = event[1], event[2]
                if not more:
                    self.done = True
                elif data:
                    call._consumed(len(data))
                if data:
                    return data  # type: ignore[no-any-return]
            elif kind is _ERROR:
                self.done = True
                call._let_go()
                error = event[1]
                try:
                    raise error
                finally:
                    del error, event  # this frame joins the traceback: no cycle through it
            elif kind is _END:
                self.done = True  # returned after start without a final body: end here
        call.finish()
        raise StopIteration

    def close(self) -> None:
        if not self.done:
            self.done = True
            self.call.abort(wait=True)
        else:
            self.call.await_return()
        self.call.finish()


class _CompleteResponse(list[bytes]):
    """A whole response as a one-element list (the server can set Content-Length),
    whose ``close()`` gives the app its ``teardown_wait``."""

    __slots__ = ("call",)

    def __init__(self, body: list[bytes], call: _Call) -> None:
        super().__init__(body)
        self.call: _Call | None = call

    def close(self) -> None:
        call, self.call = self.call, None
        if call is not None:
            call.await_return()


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
