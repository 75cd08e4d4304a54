"""WsgiToAsgi: run a PEP 3333 app under an ASGI server.

The WSGI app runs in a worker thread from a pool the adapter owns. The translation
rules live in the pure modules (:mod:`bridge.environ`, :mod:`bridge.http`); this
module is the concurrency glue: which side runs what, and how the two sides wait.

Per request, in the common case, there is one loop-to-thread round trip: the worker
calls the app and iterates until the first non-empty chunk (a list or tuple is drained
whole), then returns to the loop, which sends the response. When the iterable streams,
the same worker hands the first chunks to the loop and, once the loop has taken them,
goes straight on producing the rest. A streaming iterable's further chunks, and a
streaming request body, pass through bounded hand-offs (:mod:`bridge.handoff`) that
wake the other side only when it waits, so a fast producer pays no round trip per
chunk and memory stays bounded. ``docs/internals.md`` follows one request through
it: which thread does what, where each wait ends, the wake-ups it costs.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import enum
import io
import logging
import sys
import threading
import time
from collections import deque
from functools import partial
from typing import Any, Callable, Coroutine, Iterable, Iterator, Sequence, TypeVar

import anyio
import anyio.lowlevel
import anyio.to_thread

from ._types import Environ, ExcInfo, Receive, Scope, Send, WriteCallable, WSGIApp
from .environ import DEFAULT_MAX_DUPLICATE_HEADERS, build_environ
from .errors import AppExitError, BadRequestError, BodyTooLargeError, ClientDisconnected, InvalidScopeError
from .handoff import Closed, Handoff
from .http import DEFAULT_PRELOAD_BODY, parse_content_length, parse_http_request
from .spool import MemoryBudget, receive_start
from .workers import Workers, WorkersPerLoop, track_async_views
from .wsgi_response import WsgiResponse
from .wsgi_streams import ErrorStream, FileWrapper, StreamingInput

__all__ = ["DEFAULT_MAX_BODY_MEMORY", "DEFAULT_MAX_THREADS", "DEFAULT_SPOOL_BODY", "WsgiToAsgi"]

logger = logging.getLogger("bridge.wsgi_to_asgi")

DEFAULT_MAX_THREADS = 40
#: spool_body's default: bodies up to 16 MiB are received before the app gets a thread.
DEFAULT_SPOOL_BODY = 16 * 1024 * 1024
#: max_body_memory's default: past 64 MiB of bodies held in memory, they go to files.
DEFAULT_MAX_BODY_MEMORY = 64 * 1024 * 1024

# Chunks of a finished response up to this size go out as one http.response.body.
_JOIN_LIMIT = 256 * 1024
# At most this much of a request body waits for the app to read it; beyond it, the
# client waits (backpressure).
_BODY_BUFFER = 256 * 1024
# ...or this much, once the response streams: an app streaming before it reads its
# upload must still notice the client leaving behind that upload.
_WATCH_BODY_BUFFER = 1024 * 1024
# At most this much of a streamed response waits for the server to take it; tiny
# chunks count as this much each, which bounds the number queued as well.
_OUT_BUFFER = 512 * 1024
_MIN_ITEM_COST = 4096
# How often, at most, receive() is asked again when it repeats http.request after
# the body ended (a misbehaving middleware), and how slowly at the slowest.
_REPEAT_BACKOFF = 0.01
_REPEAT_BACKOFF_MAX = 1.0
# How long a cancelled request waits for its worker to stop before letting go.
_ABANDON_WAIT = 5.0

_T = TypeVar("_T")
_A = TypeVar("_A")


class WsgiToAsgi:
    """An ASGI 3 application that serves a WSGI application.

    :param wsgi_app: the PEP 3333 application.
    :param max_threads: how many requests may run the WSGI app at once. The pool is
        the adapter's own (never anyio's process-wide default), so WSGI traffic cannot
        starve other users of worker threads.
    :param strict: raise :class:`~bridge.errors.HopByHopHeaderError` when the app sets
        a hop-by-hop header, instead of dropping it with a warning.
    :param max_duplicate_headers: requests repeating one header more often are answered
        with 400 Bad Request; ``None`` sets no limit (as asgiref's ``duplicate_header_limit``).
    :param on_startup: callables run in a worker thread on ASGI lifespan startup.
    :param on_shutdown: callables run in a worker thread on ASGI lifespan shutdown.
    :param preload_body: request bodies of at most this many bytes are received in
        the event loop's memory before the app gets a thread (no thread waits on a slow
        upload, no hop per chunk), and read from memory.
    :param spool_body: larger bodies up to this size are received before the app gets
        a thread too, onto a temporary file (written in a thread, never on the loop),
        which the app then reads. Larger bodies stream to ``wsgi.input`` as the app
        reads, after what was received; with both sizes ``0``, every body streams.
    :param max_body_memory: the most bytes of such bodies held in memory at once, over
        all requests (until each request ends); past it, bodies go to temporary files
        instead, so that many slow uploads cannot grow memory without bound.
    :param max_body_size: the largest request body the app gets, in bytes (``None``: no
        limit). A larger declared ``Content-Length`` is answered with 413 before the
        app runs; a body without one that grows past it makes the app's next read of
        ``wsgi.input`` raise :class:`~bridge.errors.BodyTooLargeError`, and the client
        gets 413 if no response has started (whatever the app answers then is dropped).
    """

    def __init__(
        self,
        wsgi_app: WSGIApp,
        *,
        max_threads: int = DEFAULT_MAX_THREADS,
        strict: bool = False,
        max_duplicate_headers: int | None = DEFAULT_MAX_DUPLICATE_HEADERS,
        on_startup: Sequence[Callable[[], object]] = (),
        on_shutdown: Sequence[Callable[[], object]] = (),
        preload_body: int = DEFAULT_PRELOAD_BODY,
        spool_body: int = DEFAULT_SPOOL_BODY,
        max_body_size: int | None = None,
        max_body_memory: int = DEFAULT_MAX_BODY_MEMORY,
    ) -> None:
        if max_threads < 1:
            raise ValueError(f"max_threads must be at least 1, got {max_threads}")
        if max_duplicate_headers is not None and max_duplicate_headers < 1:
            raise ValueError(
                f"max_duplicate_headers must be at least 1 (or None: no limit), got {max_duplicate_headers}"
            )
        if preload_body < 0:
            raise ValueError(f"preload_body must be 0 or more, got {preload_body}")
        if spool_body < 0:
            raise ValueError(f"spool_body must be 0 or more, got {spool_body}")
        if max_body_memory < 0:
            raise ValueError(f"max_body_memory must be 0 or more, got {max_body_memory}")
        if max_body_size is not None and max_body_size < 0:
            raise ValueError(f"max_body_size must be 0 or more (or None: no limit), got {max_body_size}")
        #: The wrapped WSGI app; replaceable, as a2wsgi's (Connexion wraps it in place).
        self.app = wsgi_app
        self.max_threads = max_threads
        self.strict = strict
        self.max_duplicate_headers = max_duplicate_headers
        # Hop-by-hop header names already warned about: once per name, not per request.
        self._dropped_warned: set[str] = set()
        self.on_startup = tuple(on_startup)
        self.on_shutdown = tuple(on_shutdown)
        self.preload_body = preload_body
        self.spool_body = spool_body
        self.max_body_size = max_body_size
        self._body_memory = MemoryBudget(max_body_memory)
        self._workers = WorkersPerLoop(f"bridge.WsgiToAsgi.workers.{id(self):x}")

    @property
    def receive_ahead(self) -> int:
        """The most of a request body received before the app gets a thread."""
        return max(self.preload_body, self.spool_body)

    @property
    def wsgi_app(self) -> WSGIApp:
        """The wrapped WSGI app (the same as :attr:`app`)."""
        return self.app

    @wsgi_app.setter
    def wsgi_app(self, app: WSGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            kind = scope["type"]
        except (KeyError, TypeError):
            raise InvalidScopeError(
                f"an ASGI scope must be a dict with a 'type' key, got {scope!r}"
            ) from None
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await _serve_lifespan(receive, send, self.on_startup, self.on_shutdown)
        elif kind == "websocket":
            await _refuse_websocket(receive, send)
        else:
            raise InvalidScopeError(
                f"WsgiToAsgi cannot serve an ASGI scope of type {kind!r}; a WSGI app speaks only HTTP"
            )

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        errors = ErrorStream()
        try:
            environ = build_environ(
                scope,
                errors=errors,
                multithread=self.max_threads > 1,
                max_duplicate_headers=self.max_duplicate_headers or sys.maxsize,
            )
            limit = _content_length(environ)
        except BadRequestError as exc:
            logger.warning("answering 400 Bad Request: %s", exc)
            await _send_simple(send, 400, b"Bad Request\n")
            return
        max_body = self.max_body_size
        if max_body is not None and limit is not None and limit > max_body:
            await _send_too_large(send, f"a declared body of {limit} bytes, max_body_size is {max_body}")
            return

        try:
            received = await receive_start(
                receive,
                length=limit,
                memory=self.preload_body,
                spool=self.receive_ahead,
                max_body=max_body,
                budget=self._body_memory,
            )
        except BodyTooLargeError:
            await _send_too_large(send, f"the body passed max_body_size ({max_body} bytes)")
            return
        if received is None:
            logger.debug("client disconnected during its upload; the app was not run")
            return
        body, more_body, size = received.data, not received.complete, received.size
        if limit is None and size and not more_body:
            # A chunked body, whole: its length, as waitress gives it (Django reads no
            # body without one).
            environ["CONTENT_LENGTH"] = str(size)
        remaining = limit - size if more_body and limit is not None else None
        allowed = max_body - size if max_body is not None and limit is None else None
        workers = self._workers.get(self.max_threads)
        receiver = _Receiver(receive, workers, not more_body, remaining, max_body, allowed)
        link = _Link(workers, receiver)
        environ["bridge.client_disconnected"] = link.client_disconnected
        sender = _Sender(send, link)
        worker = _Worker(self.app, environ, errors, self.strict, link, sender, self._dropped_warned)
        extensions = scope.get("extensions")
        if extensions and "http.response.pathsend" in extensions:
            worker.path_send = True
        streaming: StreamingInput | None = None
        spool = received.file
        if receiver.body_complete:
            environ["wsgi.input"] = spool if spool is not None else io.BytesIO(body)
        else:
            # The rest of the body streams in while the app runs: once the app reads,
            # the receiver task takes it from the server and hands it over, bounded.
            pull = _BodyReader(link).pull
            if spool is not None:
                pull = received.chained(pull)
            environ["wsgi.input"] = streaming = StreamingInput(body, pull, limit)
        body = received.data = b""  # wsgi.input has it (StreamingInput copies it): one copy, not two

        handled: BaseException | None = None
        try:
            chunks, finished = await workers.run_until_ready(worker.work)
            response = worker.response
            if worker.path is not None:
                path, size = worker.path
                await sender.send_path(path, (response.status, response.headers_for_whole_body(size)))
            elif finished:
                if not sender.headers_sent:
                    response.headers_for_whole_body(sum(map(len, chunks)))
                await sender.send_chunks(chunks, (response.status, response.headers), more_body=False)
            else:
                # Committed: the worker changes the status and headers no more.
                await sender.stream(worker, (response.status, response.headers))
            handled = worker.handled_error
        except ClientDisconnected as exc:
            if not receiver.too_large:  # ...else answered below, once the app is done
                logger.debug("client disconnected: %s", exc)
                return
        except _LoopExit as exc:
            raise exc.original from None
        finally:
            receiver.stop()
            if link.abandon():
                # A worker still runs the app: the server cancelled the task outright
                # (asyncio's Task.cancel(), which anyio cannot hold off). It stops at its
                # next step and closes the iterable itself; wake it, and wait for that,
                # so nothing of the request outlives it.
                if worker.out is not None:
                    worker.out.close()
                with anyio.CancelScope(shield=True):
                    await _wait_for_worker(link)
            elif worker.needs_close:
                with anyio.CancelScope(shield=True):
                    await workers.run(partial(worker.context.run, worker.close_iterable))
            # Held by these objects, an error's traceback (whose frames hold them) would
            # keep the whole request alive until a full garbage collection.
            worker.handled_error = worker.stream_error = sender.send_error = None
            if streaming is not None:
                streaming.detach()  # environ -> wsgi.input -> the reader -> environ
            if received.held:
                self._body_memory.give(received.held)  # this request holds it no more
            if spool is not None and not link.worker_active:
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(spool.close)  # (else it closes when dropped)
        if receiver.too_large and link.gone:
            # The app read past max_body_size: whatever it answered went nowhere.
            if not sender.headers_sent:
                await _send_too_large(send, f"the body passed max_body_size ({max_body} bytes)")
            else:
                logger.warning(
                    "the request body passed max_body_size (%s bytes) after the response started, "
                    "which was cut short",
                    max_body,
                )
            return
        if handled is not None:
            # The app answered its own error with start_response(..., exc_info) before any
            # body went out, and that error page went out whole. PEP 3333 asks for the
            # re-raise only once headers were sent: raised to the server now, it would
            # close a kept-alive connection after a complete response (uvicorn does), and
            # cut the client's next request on it. Logged instead, as a server logs it.
            logger.error(
                "the WSGI app answered an error with its own error page (start_response with exc_info)",
                exc_info=(type(handled), handled, handled.__traceback__),
            )
            del handled


class _Receiver:
    """The one consumer of a request's ``receive()``: a task on the loop.

    It hands a streaming request body to ``wsgi.input`` through a bounded hand-off,
    and watches for the client leaving: ASGI servers before spec 2.4 (uvicorn,
    hypercorn) make ``send()`` a silent no-op then, so only ``http.disconnect`` from
    ``receive()`` says so. The task starts only when there is a body still to come
    or a response that streams (or an app that writes or idles with empty chunks),
    so a plain request pays for no task.
    """

    __slots__ = (
        "allowed",
        "body",
        "body_complete",
        "disconnected",
        "error",
        "max_body",
        "receive",
        "remaining",
        "running",
        "stop_task",
        "stopped",
        "too_large",
        "watching",
        "workers",
    )

    def __init__(
        self,
        receive: Receive,
        workers: Workers,
        body_complete: bool,
        remaining: int | None = None,
        max_body: int | None = None,
        allowed: int | None = None,
    ) -> None:
        self.receive = receive
        self.workers = workers
        self.body_complete = body_complete
        self.remaining = remaining  # body bytes still due, when Content-Length says
        self.max_body = max_body
        self.allowed = allowed  # ...or still allowed by max_body_size, when it does not
        self.too_large = False  # the body passed max_body_size
        self.disconnected = False
        self.error: str | None = None  # why receiving stopped, for the app's next read
        self.watching = False  # asked to watch for a disconnect until the request ends
        self.running = False
        self.stopped = False  # the request is over
        self.stop_task: Callable[[], object] | None = None
        self.body: Handoff[bytes] | None = None if body_complete else Handoff(_BODY_BUFFER, workers.loop_ref)

    def start_body(self) -> None:
        """Start taking the rest of the body in (on the loop): the app reads it. Never
        again once receiving stopped for good (a body too large, a broken message)."""
        if not self.running and not self.too_large and self.error is None:
            self.running = True
            self.stop_task = self.workers.spawn(self._run)

    async def begin(self) -> None:
        """:meth:`start_body`, for the worker's first read (through the loop)."""
        self.start_body()

    async def watch(self) -> None:
        """:meth:`start_watching`, for a worker whose app idles (through the loop)."""
        self.start_watching()

    def start_watching(self) -> None:
        """Watch for the client leaving (on the loop), until the request ends."""
        self.watching = True
        if self.body is not None and not self.body_complete:
            # The response streams while the upload is unread: take more of it in, so
            # that the disconnect behind it can still be seen.
            self.body.set_limit(_WATCH_BODY_BUFFER)
        self.start_body()

    def stop(self) -> None:
        self.stopped = True
        if self.stop_task is not None:
            self.stop_task()
            self.stop_task = None
        if self.body is not None:
            self.body.close()

    async def _run(self) -> None:
        body = self.body
        backoff = 0.0
        try:
            while not self.disconnected and (self.watching or not self.body_complete):
                message = await self.receive()
                kind = message.get("type")
                if kind == "http.disconnect":
                    self.disconnected = True
                elif kind == "http.request" and body is not None and not self.body_complete:
                    chunk = message.get("body", b"")
                    more = message.get("more_body", False)
                    if type(chunk) is not bytes or type(more) is not bool:
                        try:  # the slow path: copy, or refuse (a str must never reach the app)
                            chunk, more = parse_http_request(message)
                        except InvalidScopeError as exc:
                            self.error = str(exc)
                            logger.warning("stopped receiving: %s", self.error)
                            return
                    if self.remaining is not None:
                        if len(chunk) >= self.remaining:
                            chunk, more = chunk[: self.remaining], False  # never past Content-Length
                        self.remaining -= len(chunk)
                    elif self.allowed is not None:
                        self.allowed -= len(chunk)
                        if self.allowed < 0:
                            # Stop taking it in: the reader gets what came before, then
                            # BodyTooLargeError; the server's buffers hold the client back.
                            self.too_large = True
                            return
                    if chunk:
                        await body.put_in_loop(chunk, len(chunk))
                    elif more:
                        await self.workers.checkpoint()  # a receive() that never suspends
                    if not more:
                        self.body_complete = True
                        body.close()  # the reader takes what is left, then sees the end
                elif kind == "http.request":
                    # After the whole body, a server's receive() waits for the disconnect.
                    # One that answers with the request again (middleware replaying a
                    # cached body) would have this loop spin, or, if it never suspends,
                    # freeze the event loop: ask again ever more slowly instead, so a
                    # disconnect it passes on later is still seen.
                    if not backoff:
                        logger.debug("receive() repeats http.request after the body ended; polling it slowly")
                    backoff = min(backoff * 2 or _REPEAT_BACKOFF, _REPEAT_BACKOFF_MAX)
                    await anyio.sleep(backoff)
                else:
                    self.error = f"expected http.request or http.disconnect from receive(), got {kind!r}"
                    logger.warning("stopped receiving: %s", self.error)
                    return
        except Closed:
            pass  # the request is over; nobody reads the body any more
        except Exception:
            logger.exception("receiving from the ASGI server failed")
        finally:
            self.running = False
            if body is not None:
                body.close()  # wake a reader: the end of the body, or a disconnect


class _Phase(enum.Enum):
    """Who holds a request's WSGI side: the one state both threads write."""

    IDLE = "IDLE"  # no worker runs a step of it
    WORKING = "WORKING"  # a worker runs a step (calls the app, iterates, closes)
    ORPHANED = "ORPHANED"  # the loop let go while a worker runs a step: it closes the iterable
    ABANDONED = "ABANDONED"  # the loop let go, and no worker runs


# (Module names: cheaper than the enum class's attributes, read per request.)
_IDLE, _WORKING, _ORPHANED, _ABANDONED = _Phase.IDLE, _Phase.WORKING, _Phase.ORPHANED, _Phase.ABANDONED


class _Link:
    """What the loop and a request's worker share, and the worker's ways to the loop.

    ``phase`` changes under ``lock``; ``gone`` (the client left, or the task was
    cancelled) is set by either side and read by both; ``pending`` is the worker's
    call into the loop, which the loop cancels when it lets go. Everything else of
    the request belongs to one side: the worker's :class:`_Worker` and
    :class:`_BodyReader`, the loop's :class:`_Sender` and :class:`_Receiver`.
    """

    __slots__ = ("async_views", "gone", "lock", "pending", "phase", "receiver", "workers")

    def __init__(self, workers: Workers, receiver: _Receiver) -> None:
        self.workers = workers
        self.receiver = receiver
        self.lock = threading.Lock()
        self.phase = _IDLE
        self.gone = False
        self.pending: concurrent.futures.Future[Any] | None = None
        # The tasks of the app's async views that asgiref runs on the loop (it adds them
        # here from 3.8 on), cancelled with the request.
        self.async_views: list[asyncio.Task[Any]] | None = [] if workers.async_views_on_loop else None

    # -- the worker's side --------------------------------------------------------------

    def run_step(self, func: Callable[[_A], _T], arg: _A, close: Callable[[], None]) -> _T:
        """Run a worker step, ``func(arg)`` (not a partial: one object fewer per
        request); if the loop lets go meanwhile, ``close()`` the iterable when it
        returns (nobody else can, then)."""
        with self.lock:
            too_late = self.phase is _ABANDONED or self.phase is _ORPHANED
            if not too_late:
                self.phase = _WORKING
        if too_late:
            # The task was cancelled after this step had left the pool's queue but
            # before it got here: the loop is gone, and nobody would stop it.
            raise self.went(_CANCELLED)
        try:
            return func(arg)
        finally:
            with self.lock:
                orphaned = self.phase is _ORPHANED
                if not orphaned:
                    self.phase = _IDLE
            if orphaned:
                try:
                    close()
                finally:
                    self.phase = _ABANDONED  # the loop waits for this (worker_active)

    def to_loop(self, func: Callable[..., Coroutine[Any, Any, _T]], *args: Any) -> _T:
        """Run an async function on the event loop and wait for it, from the worker."""
        self.check()
        try:
            future = self.workers.call_loop(func, *args)
            if future is None:
                return self.workers.wait_loop(func, *args)
            self.pending = future
            try:
                return future.result()
            finally:
                # A failed future keeps its error, whose traceback holds this frame.
                self.pending = future = None
        except ClientDisconnected:
            raise
        except OSError as exc:
            # ASGI spec 2.4: send() raises an OSError subclass once the client is gone.
            raise self.went(f"the client disconnected ({exc})") from exc
        except (KeyboardInterrupt, SystemExit) as exc:
            # The server's, not the app's: carry it through the app back to the loop.
            raise _LoopExit(exc) from None
        except BaseException as exc:
            if self.workers.is_cancellation(exc):
                raise self.went(_CANCELLED) from None
            raise

    def check(self) -> None:
        """Stop working for a request whose client left or whose task was cancelled."""
        if self.gone or self.receiver.disconnected:
            raise self.went("the client disconnected")
        if self.workers.cancelled():
            raise self.went(_CANCELLED)

    def went(self, reason: str) -> ClientDisconnected:
        self.gone = True
        return ClientDisconnected(reason)

    def should_stop(self) -> bool:
        """:meth:`check` as a test, for the hand-offs' waits."""
        try:
            self.check()
        except ClientDisconnected:
            return True
        return False

    def client_disconnected(self) -> bool:
        """``environ["bridge.client_disconnected"]``: whether the client has left (or the
        request was cancelled), for an app that long-polls or streams to stop early.

        The first call has the loop watch for ``http.disconnect`` from then on (one trip
        to the loop); every call after it reads a flag.
        """
        receiver = self.receiver
        if not receiver.watching and not receiver.stopped and not self.should_stop():
            try:
                self.to_loop(receiver.watch)
            except ClientDisconnected:
                return True
        return self.should_stop()

    # -- the loop's side ----------------------------------------------------------------

    def abandon(self) -> bool:
        """The loop is done with the request. True if a worker still runs a step of it
        (it stops at its next step, and closes the iterable itself)."""
        with self.lock:
            active = self.phase is _WORKING
            self.phase = _ORPHANED if active else _ABANDONED
            if active:
                self.gone = True  # stop the worker at its next step
        if active:
            pending = self.pending
            if pending is not None:
                pending.cancel()  # a call into the loop the worker waits on
            for view in self.async_views or ():
                view.cancel()  # an async view the worker waits on (async_to_sync)
        return active

    @property
    def worker_active(self) -> bool:
        return self.phase is _WORKING or self.phase is _ORPHANED


class _Worker:
    """A request's worker side: calls the app, iterates its response and closes it
    exactly once, producing what the loop sends (PEP 3333's rules: ``response``)."""

    __slots__ = (
        "app",
        "context",
        "dropped_warned",
        "environ",
        "errors",
        "handled_error",
        "iterable",
        "iterator",
        "link",
        "needs_close",
        "out",
        "path",
        "path_send",
        "response",
        "sender",
        "stream_ended",
        "stream_error",
    )

    def __init__(
        self,
        app: WSGIApp,
        environ: Environ,
        errors: ErrorStream,
        strict: bool,
        link: _Link,
        sender: _Sender,
        dropped_warned: set[str],
    ) -> None:
        self.app = app
        self.dropped_warned = dropped_warned
        self.environ = environ
        self.errors = errors
        self.link = link
        self.sender = sender  # called only through the loop (link.to_loop)
        # One context for the whole request, as under a WSGI server's single thread:
        # context variables the app sets while called (Flask's request context in a
        # stream_with_context generator) are still there while iterating and in close().
        self.context = contextvars.copy_context()
        # What the app may do next, and what to send: PEP 3333's rules.
        self.response = WsgiResponse(environ["REQUEST_METHOD"], strict=strict)
        self.iterable: Iterable[bytes] | None = None
        self.iterator: Iterator[bytes] | None = None
        self.needs_close = False
        # Whether the server takes a body as a file path (ASGI's Path Send extension).
        self.path_send = False
        # Reports, read by the loop once this side is done with the request:
        self.path: tuple[str, int] | None = None  # the body is this whole file: its path, size
        self.handled_error: BaseException | None = None  # an error the app answered itself
        self.out: Handoff[bytes] | None = None  # the streamed response, once it streams
        self.stream_ended = False  # the whole stream was produced
        self.stream_error: BaseException | None = None  # ...or the app failed midway

    # -- the PEP 3333 callables ---------------------------------------------------------

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None
    ) -> WriteCallable:
        try:
            if exc_info is not None and not self.response.committed:
                self.handled_error = exc_info[1]  # replaced by the page the app sends now
            dropped = self.response.start(status, headers, exc_info)
        finally:
            exc_info = None
        if dropped:
            _warn_dropped(dropped, self.dropped_warned)
        return self.write

    def write(self, data: bytes) -> None:
        """PEP 3333's ``write()``: send the data before returning."""
        data = self.response.write(data)
        if self.out is not None:
            # Streaming already: queue it behind the chunks before it (PEP 3333 lets
            # write() buffer, as long as the order holds).
            self._put_out(data)
        else:
            response = self.response
            self.link.to_loop(self.sender.send_body, data, True, (response.status, response.headers))

    # -- the steps ------------------------------------------------------------------------

    def work(self, ready: Callable[[tuple[list[bytes], bool]], None]) -> tuple[list[bytes], bool]:
        """A worker's share of the request: call the app and return the chunks to send
        first, and whether the response is finished (see :meth:`run_app`).

        When the response streams, the first chunks go into ``out`` instead, ``ready``
        tells the loop, and this same call goes on producing the rest into ``out``
        (:meth:`stream_rest`): one trip to a worker thread and one back to start
        streaming, rather than two of each.
        """
        views = self.link.async_views
        if views is not None:
            track_async_views(views)
        try:
            return self.context.run(self.link.run_step, self._work, ready, self.close_iterable)
        finally:
            if views is not None:
                track_async_views(None)
            if self.out is not None:
                # The end of the stream, signalled only once the step is over: when the
                # loop sees it, the worker is done with the request.
                self.out.close()

    def _work(self, ready: Callable[[tuple[list[bytes], bool]], None]) -> tuple[list[bytes], bool]:
        chunks, finished = self.run_app()
        if finished:
            return chunks, finished
        out = self.out = Handoff(_OUT_BUFFER, self.link.workers.loop_ref)
        for chunk in chunks:
            out.put_in_thread(chunk, max(len(chunk), _MIN_ITEM_COST))  # never waits: empty
        try:
            ready(([], False))
        except BaseException:
            self.close_iterable()  # the loop is gone
            raise
        # Time to first byte: until the loop has taken the first chunks, the app's next
        # step waits, as under a native server, which sends them before going on. Run at
        # once, a CPU-bound step would hold the GIL and keep the loop from sending them
        # for a switch interval (5 ms) or more.
        with contextlib.suppress(Closed):  # the request is over: stream_rest finds out
            out.wait_taken_in_thread(self.link.should_stop)
        self.stream_rest()
        return [], False  # nobody waits for it: ready() went first

    def run_app(self) -> tuple[list[bytes], bool]:
        """Call the app and iterate up to the first non-empty chunk.

        Returns the chunks to send first and whether the response is finished (and the
        iterable closed). A list or tuple is drained whole, so the loop can send it in
        one go.
        """
        response = self.response
        try:
            iterable: Any = self.app(self.environ, self.start_response)
            self.iterable = iterable
            self.needs_close = hasattr(iterable, "close")
            response.returned(iterable)
            if self.path_send and type(iterable) is FileWrapper and self._body_from_path(iterable):
                return [], True
            chunks: list[bytes] = []
            if type(iterable) is list or type(iterable) is tuple:
                for chunk in iterable:
                    data = response.body(chunk)
                    if data is not None:
                        chunks.append(data)
                        if response.complete:
                            break
                finished = True
            else:
                try:
                    iterator = iter(iterable)
                except TypeError:
                    raise response.not_iterable(iterable) from None
                self.iterator = iterator
                finished = True
                # write() may have reached the declared Content-Length already: then
                # nothing more is asked of the iterable (PEP 3333), only close().
                for chunk in () if response.complete else iterator:
                    data = response.body(chunk)
                    if data is not None:
                        chunks.append(data)
                        finished = response.complete
                        break
                    self._idle()
            if finished:
                self._finish()
                self.close_iterable()
            return chunks, finished
        except BaseException as exc:
            self.close_iterable()
            raise _app_error(exc)  # noqa: B904 - the app's own error (or its wrapper), as it raised it

    def _body_from_path(self, wrapper: FileWrapper) -> bool:
        """``wsgi.file_wrapper`` around a whole regular file, on a server with Path Send:
        the server sends the file itself (sendfile, no copy through Python); the app's
        file is closed here. The body's bytes then count as sent."""
        found = wrapper.whole_file()
        if found is None or not self.response.body_from_path(found[1]):
            return False
        self.path = found
        self._finish()
        self.close_iterable()
        return True

    def _finish(self) -> None:
        problem = self.response.finish()
        if problem is not None:
            logger.warning("%s", problem)

    def stream_rest(self) -> None:
        """Produce the remaining chunks of a streaming iterable into ``out``; the loop
        sends them. How it ended is left in ``stream_ended`` or ``stream_error`` (the
        caller then closes ``out``): what the app produced before an error still goes
        out, as under a native server, and then the error aborts the response."""
        assert self.iterator is not None
        iterator = self.iterator
        response = self.response
        try:
            while not response.complete:
                self.link.check()
                try:
                    chunk = next(iterator)
                except StopIteration:
                    break
                data = response.body(chunk)
                if data is not None:
                    self._put_out(data)
                else:
                    self._idle()
            self._finish()
            self.stream_ended = True
        except ClientDisconnected as exc:
            logger.debug("stopped streaming the response: %s", exc)
        except BaseException as exc:
            self.stream_error = _app_error(exc)
        finally:
            self.close_iterable()

    def _put_out(self, data: bytes) -> None:
        assert self.out is not None
        # As to_loop() does: the chunk may have been long in coming, and the request may
        # be over by now (a cancelled task is told only here, on some backends).
        link = self.link
        link.check()
        try:
            self.out.put_in_thread(data, max(len(data), _MIN_ITEM_COST), link.should_stop)
        except Closed:
            raise link.went("the client disconnected") from None

    def _idle(self) -> None:
        """After an empty chunk: an app idling with b"" must still notice a client
        that left, on servers whose send() stays silent then."""
        link = self.link
        if not link.receiver.watching:
            link.to_loop(link.receiver.watch)
        link.check()

    def close_iterable(self) -> None:
        """Call the iterable's ``close()`` once, whatever happened (PEP 3333). Its
        errors are logged: the response's fate is decided by then."""
        if self.needs_close:
            self.needs_close = False
            try:
                self.iterable.close()  # type: ignore[union-attr]
            except BaseException:
                logger.exception("the WSGI response iterable's close() raised")
        # Let go of the app's iterable: one that holds start_response() or write()
        # (bound to this object) would otherwise make a cycle through it.
        self.iterable = self.iterator = None
        self.errors.flush()


class _BodyReader:
    """``wsgi.input``'s source in the worker: the chunks the loop's :class:`_Receiver`
    hands over, one at a time."""

    __slots__ = ("backlog", "link")

    def __init__(self, link: _Link) -> None:
        self.link = link
        self.backlog: deque[bytes] = deque()  # chunks taken but not yet read

    def pull(self) -> tuple[bytes, bool]:
        """The body chunks that have arrived, and whether more are to come; blocks
        until some arrive."""
        link = self.link
        receiver = link.receiver
        assert receiver.body is not None
        if not receiver.running and not receiver.body_complete:
            link.to_loop(receiver.begin)  # the first read: start taking the body in
        backlog = self.backlog
        if backlog:
            return backlog.popleft(), True
        try:
            chunks = receiver.body.get_in_thread(link.should_stop)
        except Closed:
            if receiver.too_large:
                assert receiver.max_body is not None
                link.gone = True  # what the app answers now goes nowhere: the loop answers 413
                raise BodyTooLargeError(receiver.max_body) from None
            if receiver.error is not None:
                raise InvalidScopeError(receiver.error) from None
            if receiver.body_complete and not link.gone:
                return b"", False
            raise link.went("the client disconnected before sending the whole request body") from None
        # One chunk at a time: joining them would copy up to the whole read-ahead.
        backlog.extend(chunks[1:])
        return chunks[0], True


class _Sender:
    """A request's loop side of the response: sends what the worker produced."""

    __slots__ = ("headers_sent", "link", "send", "send_error")

    def __init__(self, send: Send, link: _Link) -> None:
        self.send = send
        self.link = link
        self.headers_sent = False
        self.send_error: BaseException | None = None

    async def send_chunks(self, chunks: list[bytes], head: _Head, *, more_body: bool) -> None:
        if len(chunks) > 1 and sum(map(len, chunks)) <= _JOIN_LIMIT:
            # Fewer, larger messages: each send() is a trip through the server's protocol.
            chunks = [b"".join(chunks)]
        last = len(chunks) - 1
        if last < 0:
            await self._send_body(b"", more_body, head)
            return
        for index, chunk in enumerate(chunks):
            await self._send_body(chunk, more_body or index != last, head)

    async def send_body(self, data: bytes, more_body: bool, head: _Head) -> None:
        """For the worker's write(): watch for a disconnect from now on, then send."""
        self.link.receiver.start_watching()
        await self._send_body(data, more_body, head)

    async def send_path(self, path: str, head: _Head) -> None:
        """The whole body as a file for the server to send (ASGI's Path Send extension)."""
        await self._send_body(b"", False, head, path)

    async def _send_body(self, data: bytes, more_body: bool, head: _Head, path: str | None = None) -> None:
        link = self.link
        if link.gone or link.receiver.disconnected:
            link.gone = True
            raise ClientDisconnected("the client disconnected")
        try:
            if not self.headers_sent:
                self.headers_sent = True
                await self.send({"type": "http.response.start", "status": head[0], "headers": head[1]})
            if path is not None:
                await self.send({"type": "http.response.pathsend", "path": path})
            elif data or not more_body:
                await self.send({"type": "http.response.body", "body": data, "more_body": more_body})
        except OSError as exc:
            link.gone = True
            raise ClientDisconnected(f"the client disconnected ({exc})") from exc

    async def stream(self, worker: _Worker, head: _Head) -> None:
        """Send a streaming response as the worker produces it into ``out``, its first
        chunks included; returns once that worker is done with the request."""
        self.link.receiver.start_watching()
        # The worker that found the first chunks put them in ``out``, and goes on.
        await self._send_stream(worker, head)
        error = worker.stream_error if worker.stream_error is not None else self.send_error
        if error is not None:
            worker.stream_error = self.send_error = None  # no cycle through the traceback
            try:
                raise error
            finally:
                del error  # this frame joins the traceback: no cycle through it

    async def _send_stream(self, worker: _Worker, head: _Head) -> None:
        """Send what the worker puts in ``out``, until it closes it."""
        out = worker.out
        assert out is not None
        try:
            with contextlib.suppress(Closed):  # the worker is done with the request
                while True:
                    # (No name for the batch: it would hold up to a whole budget's worth
                    # of sent chunks while the next batch is awaited.)
                    for chunk in await out.get_in_loop():
                        await self._send_body(chunk, True, head)
                    # A server whose send() never suspends must not starve the watcher.
                    await self.link.workers.checkpoint()
            if worker.stream_ended:
                await self._send_body(b"", False, head)
            return
        except ClientDisconnected:
            self.link.gone = True
        except anyio.get_cancelled_exc_class():
            raise
        except BaseException as exc:
            self.send_error = exc
            self.link.gone = True  # stop the worker at its next step
        # Sending failed: drop what comes until the worker, which stops at its next step
        # (or finds no room), closes ``out``. Only then is it done with the request.
        with contextlib.suppress(Closed):
            while True:
                await out.get_in_loop()


#: The status and headers, as http.response.start sends them.
_Head = tuple[Any, list[tuple[bytes, bytes]]]


_CANCELLED = "the ASGI server cancelled the request"


class _LoopExit(BaseException):
    """A KeyboardInterrupt or SystemExit raised on the loop's side (the server's send or
    receive) while the worker waited on it: carried through the app unchanged, never
    mistaken for the app's own."""

    def __init__(self, original: BaseException) -> None:
        super().__init__(original)
        self.original = original


def _warn_dropped(dropped: list[str], warned: set[str]) -> None:
    new = [name for name in dropped if name.lower() not in warned]
    if new:
        warned.update(name.lower() for name in new)
        logger.warning(
            "dropped hop-by-hop response header(s) %s set by the WSGI app; "
            "the server manages the connection (said once per header name)",
            ", ".join(new),
        )


def _app_error(exc: BaseException) -> BaseException:
    """The error to raise for one from the app: process-ending ones become ordinary
    errors, so one request can never stop the server."""
    if isinstance(exc, (KeyboardInterrupt, SystemExit)):  # not _LoopExit: the server's own
        return AppExitError.wrap(exc, "WSGI")
    return exc


async def _wait_for_worker(link: _Link) -> None:
    deadline = time.monotonic() + _ABANDON_WAIT
    while link.worker_active:
        if time.monotonic() >= deadline:
            logger.warning(
                "the WSGI app is still running %s s after its request was cancelled; it will "
                "close its response when it returns",
                _ABANDON_WAIT,
            )
            return
        await anyio.sleep(0.005)


async def _serve_lifespan(
    receive: Receive,
    send: Send,
    on_startup: tuple[Callable[[], object], ...],
    on_shutdown: tuple[Callable[[], object], ...],
) -> None:
    """ASGI lifespan: the adapter's startup and shutdown hooks, each in a thread."""
    while True:
        message = await receive()
        kind = message.get("type")
        if kind == "lifespan.startup":
            phase, hooks = "startup", on_startup
        elif kind == "lifespan.shutdown":
            phase, hooks = "shutdown", on_shutdown
        else:
            raise InvalidScopeError(f"unexpected lifespan message {kind!r}")
        try:
            for hook in hooks:
                await anyio.to_thread.run_sync(hook)
        except Exception as exc:
            logger.exception("lifespan %s hook failed", phase)
            await send({"type": f"lifespan.{phase}.failed", "message": f"{type(exc).__name__}: {exc}"})
            return
        await send({"type": f"lifespan.{phase}.complete"})
        if phase == "shutdown":
            return


async def _refuse_websocket(receive: Receive, send: Send) -> None:
    # Closing before accepting makes the server answer the handshake with 403.
    message = await receive()
    if message.get("type") == "websocket.connect":
        await send({"type": "websocket.close", "code": 1000})


def _content_length(environ: Environ) -> int | None:
    """The request's Content-Length, parsed; BadRequestError if it is not a number.

    A value with spaces or tabs around it (RFC 9110 OWS, which servers normally strip)
    is stripped in the environ too, so the app reads the length the adapter uses.
    """
    value = environ.get("CONTENT_LENGTH")
    if value is None:
        return None
    try:
        length = parse_content_length(value)
    except ValueError as exc:
        raise BadRequestError(f"invalid Content-Length header: {exc}") from None
    if not value.isdigit():
        environ["CONTENT_LENGTH"] = value.strip(" \t")
    return length


async def _send_simple(
    send: Send, status: int, body: bytes, extra: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode("ascii")),
                *extra,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _send_too_large(send: Send, why: str) -> None:
    logger.warning("answering 413 Content Too Large: %s", why)
    # The rest of the body stays unread: the server must not wait for it on this
    # connection, nor the client keep sending it.
    await _send_simple(send, 413, b"Content Too Large\n", [(b"connection", b"close")])
