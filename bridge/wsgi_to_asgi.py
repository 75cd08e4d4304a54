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
chunk and memory stays bounded.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import io
import logging
import threading
import time
import weakref
from collections import deque
from functools import partial
from typing import Any, Callable, Coroutine, Iterable, Iterator, Sequence, TypeVar

import anyio
import anyio.lowlevel
import anyio.to_thread

from ._types import Environ, ExcInfo, Receive, Scope, Send, WriteCallable, WSGIApp
from .environ import DEFAULT_MAX_DUPLICATE_HEADERS, build_environ
from .errors import AppExitError, BadRequestError, ClientDisconnected, InvalidScopeError, ResponseError
from .handoff import Closed, Handoff
from .http import (
    DEFAULT_PRELOAD_BODY,
    encode_response_headers,
    parse_content_length,
    parse_http_request,
    parse_status,
)
from .workers import AnyioWorkers, AsyncioWorkers, Workers, is_cancellation
from .wsgi_streams import ErrorStream, StreamingInput

__all__ = ["DEFAULT_MAX_THREADS", "WsgiToAsgi"]

logger = logging.getLogger("bridge.wsgi_to_asgi")

DEFAULT_MAX_THREADS = 40

_NO_BODY_STATUSES = frozenset({204, 304})
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


class WsgiToAsgi:
    """An ASGI 3 application that serves a WSGI application.

    :param wsgi_app: the PEP 3333 application.
    :param max_threads: how many requests may run the WSGI app at once. The pool is
        the adapter's own (never anyio's process-wide default), so WSGI traffic cannot
        starve other users of worker threads.
    :param strict: raise :class:`~bridge.errors.HopByHopHeaderError` when the app sets
        a hop-by-hop header, instead of dropping it with a warning.
    :param max_duplicate_headers: requests repeating one header more often are answered
        with 400 Bad Request.
    :param on_startup: callables run in a worker thread on ASGI lifespan startup.
    :param on_shutdown: callables run in a worker thread on ASGI lifespan shutdown.
    :param preload_body: request bodies of at most this many bytes, with a known
        length, are read in the event loop before the app gets a thread (no thread
        waits on a slow upload, no hop per chunk); larger and chunked bodies stream
        to ``wsgi.input`` as the app reads. ``0`` streams every body.
    """

    def __init__(
        self,
        wsgi_app: WSGIApp,
        *,
        max_threads: int = DEFAULT_MAX_THREADS,
        strict: bool = False,
        max_duplicate_headers: int = DEFAULT_MAX_DUPLICATE_HEADERS,
        on_startup: Sequence[Callable[[], object]] = (),
        on_shutdown: Sequence[Callable[[], object]] = (),
        preload_body: int = DEFAULT_PRELOAD_BODY,
    ) -> None:
        if max_threads < 1:
            raise ValueError(f"max_threads must be at least 1, got {max_threads}")
        if max_duplicate_headers < 1:
            raise ValueError(f"max_duplicate_headers must be at least 1, got {max_duplicate_headers}")
        if preload_body < 0:
            raise ValueError(f"preload_body must be 0 or more, got {preload_body}")
        #: The wrapped WSGI app; replaceable, as a2wsgi's (Connexion wraps it in place).
        self.app = wsgi_app
        self.max_threads = max_threads
        self.strict = strict
        self.max_duplicate_headers = max_duplicate_headers
        self.on_startup = tuple(on_startup)
        self.on_shutdown = tuple(on_shutdown)
        self.preload_body = preload_body
        # Workers per event loop: anyio's primitives belong to the loop that made them.
        self._workers: anyio.lowlevel.RunVar[Workers] = anyio.lowlevel.RunVar(
            f"bridge.WsgiToAsgi.workers.{id(self):x}"
        )
        # The last asyncio loop's workers, found without the RunVar lookup (which asks
        # sniffio for the running library: microseconds, on every request).
        self._last_workers: tuple[weakref.ref[asyncio.AbstractEventLoop], AsyncioWorkers] | None = None

    @property
    def wsgi_app(self) -> WSGIApp:
        """The wrapped WSGI app (the same as :attr:`app`)."""
        return self.app

    @wsgi_app.setter
    def wsgi_app(self, app: WSGIApp) -> None:
        self.app = app

    def _get_workers(self) -> Workers:
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None  # trio
        last = self._last_workers
        if last is not None and loop is not None and last[0]() is loop:
            return last[1]
        workers: Workers
        try:
            workers = self._workers.get()
        except LookupError:
            if anyio.get_cancelled_exc_class() is asyncio.CancelledError:
                workers = AsyncioWorkers(self.max_threads)
            else:
                workers = AnyioWorkers(self.max_threads)
            self._workers.set(workers)
        if isinstance(workers, AsyncioWorkers) and workers.loop is loop:
            self._last_workers = (weakref.ref(workers.loop), workers)
        return workers

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
            await self._lifespan(receive, send)
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
                max_duplicate_headers=self.max_duplicate_headers,
            )
            limit = _content_length(environ)
        except BadRequestError as exc:
            logger.warning("answering 400 Bad Request: %s", exc)
            await _send_simple(send, 400, b"Bad Request\n")
            return

        message = await receive()
        kind = _message_type(message)
        if kind == "http.disconnect":
            return  # the client left before the request began: nothing to run
        if kind != "http.request":
            raise InvalidScopeError(f"expected an http.request message from receive(), got {kind!r}")
        body = message.get("body", b"")
        more_body = message.get("more_body", False)
        if type(body) is not bytes or type(more_body) is not bool:
            # The slow path: bytes-like bodies are copied, anything else is refused,
            # naming the field (a str body must never reach the app).
            body, more_body = parse_http_request(message)
        if more_body and limit is not None:
            if len(body) < limit <= self.preload_body:
                preloaded = await _read_known_length(receive, body, limit)
                if preloaded is None:
                    logger.debug("client disconnected during its upload; the app was not run")
                    return
                body, more_body = preloaded, False
            elif len(body) >= limit:
                more_body = False  # the declared length is here; ignore anything beyond
            remaining = limit - len(body)
        else:
            remaining = None
        workers = self._get_workers()
        receiver = _Receiver(receive, workers, not more_body, remaining)
        exchange = _Exchange(self.app, environ, send, errors, self.strict, receiver, workers)
        streaming: StreamingInput | None = None
        if receiver.body_complete:
            if limit is not None and len(body) > limit:
                body = body[:limit]
            environ["wsgi.input"] = io.BytesIO(body)
        else:
            # The rest of the body streams in while the app runs: once the app reads,
            # the receiver task takes it from the server and hands it over, bounded.
            environ["wsgi.input"] = streaming = StreamingInput(body, exchange.pull_body, limit)

        handled: BaseException | None = None
        try:
            chunks, finished = await workers.run_until_ready(exchange.work)
            if finished:
                if exchange.content_length is None and not exchange.headers_sent:
                    exchange.add_content_length(environ["REQUEST_METHOD"], sum(map(len, chunks)))
                await exchange.send_chunks(chunks, more_body=False)
            else:
                await exchange.stream()
            handled = exchange.handled_error
        except ClientDisconnected as exc:
            logger.debug("client disconnected: %s", exc)
            return
        except _LoopExit as exc:
            raise exc.original from None
        finally:
            receiver.stop()
            if exchange.abandon():
                with anyio.CancelScope(shield=True):
                    await workers.run(partial(exchange.context.run, exchange.close_iterable))
            elif exchange.worker_active:
                # The server cancelled the task outright (asyncio's Task.cancel(), which
                # anyio cannot hold off) while the worker still runs the app. It stops
                # at its next step and closes the iterable itself; wait for that, so
                # nothing of the request outlives it.
                with anyio.CancelScope(shield=True):
                    await _wait_for_worker(exchange)
            # Held by the exchange, an error's traceback (whose frames hold the exchange)
            # would keep the whole request alive until a full garbage collection.
            exchange.handled_error = exchange.stream_error = exchange.send_error = None
            if streaming is not None:
                streaming.detach()  # environ -> wsgi.input -> exchange -> environ
        if handled is not None:
            # The app answered its own error with start_response(..., exc_info); that
            # response went out whole. Re-raise so the server logs it, as uvicorn would.
            try:
                raise handled
            finally:
                del handled  # this frame joins the traceback: no cycle through it

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            kind = message.get("type")
            if kind == "lifespan.startup":
                phase, hooks = "startup", self.on_startup
            elif kind == "lifespan.shutdown":
                phase, hooks = "shutdown", self.on_shutdown
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


async def _read_known_length(receive: Receive, first: bytes, length: int) -> bytes | None:
    """The rest of a body of known length, read in the loop; None if the client left.

    Stops at ``length`` bytes or the end of the body, whichever comes first; bytes
    beyond the declared length are never given to the app.
    """
    parts = [first]
    received = len(first)
    while received < length:
        message = await receive()
        kind = _message_type(message)
        if kind == "http.disconnect":
            return None
        if kind != "http.request":
            raise InvalidScopeError(f"expected http.request or http.disconnect from receive(), got {kind!r}")
        chunk = message.get("body", b"")
        more = message.get("more_body", False)
        if type(chunk) is not bytes or type(more) is not bool:
            chunk, more = parse_http_request(message)  # the slow path: copy, or refuse
        if chunk:
            parts.append(chunk)
            received += len(chunk)
        if not more:
            break
    return b"".join(parts)


def _message_type(message: Any) -> object:
    try:
        return message.get("type")
    except AttributeError:
        raise InvalidScopeError(
            f"receive() must return an ASGI message (a dict), got {type(message).__name__}"
        ) from None


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
        "body",
        "body_complete",
        "disconnected",
        "error",
        "receive",
        "remaining",
        "running",
        "stop_task",
        "watching",
        "workers",
    )

    def __init__(
        self, receive: Receive, workers: Workers, body_complete: bool, remaining: int | None = None
    ) -> None:
        self.receive = receive
        self.workers = workers
        self.body_complete = body_complete
        self.remaining = remaining  # body bytes still due, when Content-Length says
        self.disconnected = False
        self.error: str | None = None  # why receiving stopped, for the app's next read
        self.watching = False  # asked to watch for a disconnect until the request ends
        self.running = False
        self.stop_task: Callable[[], object] | None = None
        self.body: Handoff[bytes] | None = None if body_complete else Handoff(_BODY_BUFFER, workers.loop_ref)

    def start_body(self) -> None:
        """Start taking the rest of the body in (on the loop): the app reads it."""
        if not self.running:
            self.running = True
            self.stop_task = self.workers.spawn(self._run)

    def start_watching(self) -> None:
        """Watch for the client leaving (on the loop), until the request ends."""
        self.watching = True
        if self.body is not None and not self.body_complete:
            # The response streams while the upload is unread: take more of it in, so
            # that the disconnect behind it can still be seen.
            self.body.set_limit(_WATCH_BODY_BUFFER)
        self.start_body()

    def stop(self) -> None:
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


class _Exchange:
    """One request's response state, shared by the loop and a worker thread.

    Until the response streams, the two sides never touch it at the same time: the
    loop waits while the worker runs, and the worker blocks while the loop sends on its
    behalf (``disconnected`` excepted, a flag the loop sets and the worker reads). While
    it streams, both run: the worker owns the iteration (``iterator``, ``sent``,
    ``complete``) and reports through ``out``, ``stream_ended`` and ``stream_error``; the
    loop owns the sending (``headers_sent``, ``send_error``), and status and headers
    no longer change.
    """

    __slots__ = (
        "abandoned",
        "app",
        "body_backlog",
        "complete",
        "content_length",
        "context",
        "disconnected",
        "environ",
        "errors",
        "handled_error",
        "headers",
        "headers_sent",
        "iterable",
        "iterator",
        "lock",
        "needs_close",
        "out",
        "pending",
        "receiver",
        "send",
        "send_error",
        "sent",
        "started",
        "status",
        "stream_ended",
        "stream_error",
        "strict",
        "worker_active",
        "workers",
        "wrote",
    )

    def __init__(
        self,
        app: WSGIApp,
        environ: Environ,
        send: Send,
        errors: ErrorStream,
        strict: bool,
        receiver: _Receiver,
        workers: Workers,
    ) -> None:
        self.app = app
        self.workers = workers
        self.pending: concurrent.futures.Future[Any] | None = None  # a call into the loop
        self.environ = environ
        self.send = send
        self.errors = errors
        self.strict = strict
        self.receiver = receiver
        # One context for the whole request, as under a WSGI server's single thread:
        # context variables the app sets while called (Flask's request context in a
        # stream_with_context generator) are still there while iterating and in close().
        self.context = contextvars.copy_context()
        self.status: int | None = None
        self.headers: list[tuple[bytes, bytes]] = []
        self.content_length: int | None = None
        self.started = False  # start_response was called, even if it then raised
        self.headers_sent = False
        self.wrote = False
        self.sent = 0  # body bytes accepted so far, for Content-Length
        self.complete = False  # Content-Length reached
        self.disconnected = False
        self.iterable: Iterable[bytes] | None = None
        self.iterator: Iterator[bytes] | None = None
        self.needs_close = False
        self.handled_error: BaseException | None = None
        self.out: Handoff[bytes] | None = None  # the streamed response, once it streams
        self.stream_ended = False  # the worker produced the whole stream
        self.stream_error: BaseException | None = None  # ...or the app failed midway
        self.body_backlog: deque[bytes] = deque()  # body chunks taken but not yet read
        self.send_error: BaseException | None = None
        # Who closes the iterable if the ASGI task is torn down while a worker still
        # runs (a server cancelling the task outright): the worker, when it returns.
        self.lock = threading.Lock()
        self.worker_active = False
        self.abandoned = False

    # -- the PEP 3333 callables, run in the worker ------------------------------------

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None
    ) -> WriteCallable:
        if exc_info is not None:
            try:
                if self.headers_sent or self.out is not None:
                    # Too late to change the response (sent, or handed to the loop with
                    # the first chunk when the response streams): PEP 3333 says re-raise.
                    raise exc_info[1].with_traceback(exc_info[2])  # type: ignore[union-attr]
                self.handled_error = exc_info[1]
            finally:
                exc_info = None
        elif self.started:
            raise ResponseError(
                "start_response() was called a second time without exc_info; PEP 3333 allows "
                "a second call only to replace the headers after an error"
            )
        # PEP 3333: record the call first, validate second, so a failed call still counts.
        self.started = True
        self.status = None
        code = parse_status(status)
        encoded = encode_response_headers(headers, strict=self.strict)
        if encoded.dropped:
            logger.warning(
                "dropped hop-by-hop response header(s) %s set by the WSGI app; "
                "the server manages the connection",
                ", ".join(encoded.dropped),
            )
        self.status = code
        self.headers = encoded.headers
        self.content_length = encoded.content_length
        return self.write

    def write(self, data: bytes) -> None:
        """PEP 3333's ``write()``: send the data before returning."""
        if not isinstance(data, bytes):
            raise ResponseError(f"write() takes bytes, not {type(data).__name__}")
        if self.status is None:
            raise ResponseError("write() was called before a successful start_response()")
        if self.complete and data:
            raise ResponseError(f"write() past the declared Content-Length of {self.content_length} bytes")
        self.wrote = True
        data = self._clip(data)
        if self.out is not None:
            # Streaming already: queue it behind the chunks before it (PEP 3333 lets
            # write() buffer, as long as the order holds).
            self._put_out(data)
        else:
            self.to_loop(self._send_body, data, True, True)

    # -- the worker's side --------------------------------------------------------------

    def work(self, ready: Callable[[tuple[list[bytes], bool]], None]) -> tuple[list[bytes], bool]:
        """A worker's share of the request: call the app and return the chunks to send
        first, and whether the response is finished (see :meth:`run_app`).

        When the response streams, the first chunks go into
        ``out`` instead, ``ready`` tells the loop, and this same call goes on producing
        the rest into ``out`` (:meth:`stream_rest`): one trip to a worker thread and one
        back to start streaming, rather than two of each.
        """
        try:
            return self.context.run(self.in_worker, partial(self._work, ready))
        finally:
            if self.out is not None:
                # The end of the stream, signalled only once in_worker is over: when the
                # loop sees it, the worker is done with the request.
                self.out.close()

    def _work(self, ready: Callable[[tuple[list[bytes], bool]], None]) -> tuple[list[bytes], bool]:
        chunks, finished = self.run_app()
        if finished:
            return chunks, finished
        out = self.out = Handoff(_OUT_BUFFER, self.workers.loop_ref)
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
            out.wait_taken_in_thread(self._should_stop)
        self.stream_rest()
        return [], False  # nobody waits for it: ready() went first

    def in_worker(self, func: Callable[[], _T]) -> _T:
        """Run one of the worker steps below, keeping track of who may close the iterable."""
        with self.lock:
            too_late = self.abandoned
            self.worker_active = not too_late
        if too_late:
            # The task was cancelled after this step had left the pool's queue but
            # before it got here: the loop is gone, and nobody would stop it.
            raise self._gone(_CANCELLED)
        try:
            return func()
        finally:
            with self.lock:
                self.worker_active = False
                abandoned = self.abandoned
            if abandoned:
                self.close_iterable()

    def abandon(self) -> bool:
        """The loop is done with this request. True if the loop must close the iterable;
        False if there is nothing to close, or a worker still runs and will close it."""
        with self.lock:
            self.abandoned = True
            if self.worker_active:
                self.disconnected = True  # stop the worker at its next step
                active = True
            else:
                active = False
        if active:
            pending = self.pending
            if pending is not None:
                pending.cancel()  # a call into the loop the worker waits on
            if self.out is not None:
                self.out.close()
            if self.receiver.body is not None:
                self.receiver.body.close()
            return False
        return self.needs_close

    def pull_body(self) -> tuple[bytes, bool]:
        """``wsgi.input``'s source: the body chunks that have arrived, and whether
        more are to come; blocks until some arrive."""
        receiver = self.receiver
        assert receiver.body is not None
        if not receiver.running and not receiver.body_complete:
            self.to_loop(self._start_body)  # the first read: start taking the body in
        backlog = self.body_backlog
        if backlog:
            return backlog.popleft(), True
        try:
            chunks = receiver.body.get_in_thread(self._should_stop)
        except Closed:
            if receiver.error is not None:
                raise InvalidScopeError(receiver.error) from None
            if receiver.body_complete and not self.disconnected:
                return b"", False
            raise self._gone("the client disconnected before sending the whole request body") from None
        # One chunk at a time: joining them would copy up to the whole read-ahead.
        backlog.extend(chunks[1:])
        return chunks[0], True

    def _should_stop(self) -> bool:
        """``_check_gone`` as a test, for the hand-offs' waits."""
        try:
            self._check_gone()
        except ClientDisconnected:
            return True
        return False

    def run_app(self) -> tuple[list[bytes], bool]:
        """Call the app and iterate up to the first non-empty chunk.

        Returns the chunks to send first and whether the response is finished (and the
        iterable closed). A list or tuple is drained whole, so the loop can send it in
        one go.
        """
        try:
            iterable: Any = self.app(self.environ, self.start_response)
            self.iterable = iterable
            self.needs_close = hasattr(iterable, "close")
            if isinstance(iterable, (bytes, bytearray, str)):
                raise ResponseError(
                    f"the WSGI app returned {type(iterable).__name__} instead of an iterable of "
                    f"bytes; return [body] instead"
                )
            chunks: list[bytes] = []
            if type(iterable) is list or type(iterable) is tuple:
                for chunk in iterable:
                    if self._accept(chunk):
                        chunks.append(self._clip(chunk))
                        if self.complete:
                            break
                finished = True
            else:
                try:
                    iterator = iter(iterable)
                except TypeError:
                    raise ResponseError(
                        f"the WSGI app returned {type(iterable).__name__}, which is not iterable"
                    ) from None
                self.iterator = iterator
                finished = True
                # write() may have reached the declared Content-Length already: then
                # nothing more is asked of the iterable (PEP 3333), only close().
                for chunk in () if self.complete else iterator:
                    if self._accept(chunk):
                        chunks.append(self._clip(chunk))
                        finished = self.complete
                        break
                    self._idle()
            if self.status is None:
                raise ResponseError(_NO_START_RESPONSE)
            if finished:
                self._warn_if_short()
                self.close_iterable()
            return chunks, finished
        except BaseException as exc:
            self.close_iterable()
            raise _app_error(exc)  # noqa: B904 - the app's own error (or its wrapper), as it raised it

    def stream_rest(self) -> None:
        """Produce the remaining chunks of a streaming iterable into ``out``; the loop
        sends them. How it ended is left in ``stream_ended`` or ``stream_error`` (the
        caller then closes ``out``): what the app produced before an error still goes
        out, as under a native server, and then the error aborts the response."""
        assert self.iterator is not None
        iterator = self.iterator
        try:
            while not self.complete:
                self._check_gone()
                try:
                    chunk = next(iterator)
                except StopIteration:
                    break
                if self._accept(chunk):
                    self._put_out(self._clip(chunk))
                else:
                    self._idle()
            self._warn_if_short()
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
        self._check_gone()
        try:
            self.out.put_in_thread(data, max(len(data), _MIN_ITEM_COST), self._should_stop)
        except Closed:
            raise self._gone("the client disconnected") from None

    def to_loop(self, func: Callable[..., Coroutine[Any, Any, _T]], *args: Any) -> _T:
        """Run an async function on the event loop and wait for it, from the worker."""
        self._check_gone()
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
            raise self._gone(f"the client disconnected ({exc})") from exc
        except (KeyboardInterrupt, SystemExit) as exc:
            # The server's, not the app's: carry it through the app back to the loop.
            raise _LoopExit(exc) from None
        except BaseException as exc:
            if is_cancellation(exc):
                raise self._gone(_CANCELLED) from None
            raise

    def _check_gone(self) -> None:
        """Stop working for a request whose client left or whose task was cancelled."""
        if self.disconnected or self.receiver.disconnected:
            raise self._gone("the client disconnected")
        if self.workers.cancelled():
            raise self._gone(_CANCELLED)

    def _gone(self, reason: str) -> ClientDisconnected:
        self.disconnected = True
        return ClientDisconnected(reason)

    def _idle(self) -> None:
        """After an empty chunk: an app idling with b"" must still notice a client
        that left, on servers whose send() stays silent then."""
        if not self.receiver.watching:
            self.to_loop(self._watch)
        self._check_gone()

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
        # (bound to this exchange) would otherwise make a cycle through it.
        self.iterable = self.iterator = None
        self.errors.flush()

    def _accept(self, chunk: object) -> bool:
        """Check one chunk from the iterable; True if it carries body bytes."""
        if type(chunk) is not bytes and not isinstance(chunk, bytes):
            raise ResponseError(
                f"the WSGI app yielded {type(chunk).__name__}; response body chunks must be bytes"
            )
        if not chunk:
            return False
        if self.status is None:
            raise ResponseError(_NO_START_RESPONSE)
        return True

    def _clip(self, chunk: bytes) -> bytes:
        """Never send more than the Content-Length the app declared."""
        if self.content_length is None:
            return chunk
        room = self.content_length - self.sent
        if len(chunk) >= room:
            chunk = chunk[:room]
            self.complete = True
        self.sent += len(chunk)
        return chunk

    def _warn_if_short(self) -> None:
        if (
            self.content_length is not None
            and self.sent < self.content_length
            and self.environ["REQUEST_METHOD"] != "HEAD"
        ):
            logger.warning(
                "the WSGI app declared Content-Length %d but sent only %d bytes; the server "
                "will close the connection",
                self.content_length,
                self.sent,
            )

    # -- the loop's side ----------------------------------------------------------------

    def add_content_length(self, method: str, length: int) -> None:
        """The whole body is known: say how long it is, so the server needs no chunking."""
        if method != "HEAD" and self.status not in _NO_BODY_STATUSES:
            self.headers.append((b"content-length", str(length).encode("ascii")))

    async def send_chunks(self, chunks: list[bytes], *, more_body: bool) -> None:
        if len(chunks) > 1 and sum(map(len, chunks)) <= _JOIN_LIMIT:
            # Fewer, larger messages: each send() is a trip through the server's protocol.
            chunks = [b"".join(chunks)]
        last = len(chunks) - 1
        if last < 0:
            await self._send_body(b"", more_body)
            return
        for index, chunk in enumerate(chunks):
            await self._send_body(chunk, more_body or index != last)

    async def _send_body(self, data: bytes, more_body: bool, from_worker: bool = False) -> None:
        receiver = self.receiver
        if from_worker:
            receiver.start_watching()
        if self.disconnected or receiver.disconnected:
            self.disconnected = True
            raise ClientDisconnected("the client disconnected")
        try:
            if not self.headers_sent:
                self.headers_sent = True
                await self.send(
                    {"type": "http.response.start", "status": self.status, "headers": self.headers}
                )
            if data or not more_body:
                await self.send({"type": "http.response.body", "body": data, "more_body": more_body})
        except OSError as exc:
            self.disconnected = True
            raise ClientDisconnected(f"the client disconnected ({exc})") from exc

    async def _watch(self) -> None:
        self.receiver.start_watching()

    async def _start_body(self) -> None:
        self.receiver.start_body()

    async def stream(self) -> None:
        """Send a streaming response as the worker produces it into ``out``, its first
        chunks included; returns once that worker is done with the request."""
        self.receiver.start_watching()
        # The worker that found the first chunks put them in ``out``, and goes on.
        assert self.out is not None
        await self._send_stream(self.out)
        error = self.stream_error if self.stream_error is not None else self.send_error
        if error is not None:
            self.stream_error = self.send_error = None  # no cycle through the traceback
            try:
                raise error
            finally:
                del error  # this frame joins the traceback: no cycle through it

    async def _send_stream(self, out: Handoff[bytes]) -> None:
        """Send what the worker puts in ``out``, until it closes it."""
        try:
            with contextlib.suppress(Closed):  # the worker is done with the request
                while True:
                    # (No name for the batch: it would hold up to a whole budget's worth
                    # of sent chunks while the next batch is awaited.)
                    for chunk in await out.get_in_loop():
                        await self._send_body(chunk, True)
                    # A server whose send() never suspends must not starve the watcher.
                    await self.workers.checkpoint()
            if self.stream_ended:
                await self._send_body(b"", False)
            return
        except ClientDisconnected:
            self.disconnected = True
        except anyio.get_cancelled_exc_class():
            raise
        except BaseException as exc:
            self.send_error = exc
            self.disconnected = True  # stop the worker at its next step
        # Sending failed: drop what comes until the worker, which stops at its next step
        # (or finds no room), closes ``out``. Only then is it done with the request.
        with contextlib.suppress(Closed):
            while True:
                await out.get_in_loop()


_CANCELLED = "the ASGI server cancelled the request"
_NO_START_RESPONSE = (
    "the WSGI app returned or yielded body data without a successful call to start_response()"
)


class _LoopExit(BaseException):
    """A KeyboardInterrupt or SystemExit raised on the loop's side (the server's send or
    receive) while the worker waited on it: carried through the app unchanged, never
    mistaken for the app's own."""

    def __init__(self, original: BaseException) -> None:
        super().__init__(original)
        self.original = original


def _app_error(exc: BaseException) -> BaseException:
    """The error to raise for one from the app: process-ending ones become ordinary
    errors, so one request can never stop the server."""
    if isinstance(exc, (KeyboardInterrupt, SystemExit)):  # not _LoopExit: the server's own
        return AppExitError.wrap(exc, "WSGI")
    return exc


async def _wait_for_worker(exchange: _Exchange) -> None:
    deadline = time.monotonic() + _ABANDON_WAIT
    while exchange.worker_active:
        if time.monotonic() >= deadline:
            logger.warning(
                "the WSGI app is still running %s s after its request was cancelled; it will "
                "close its response when it returns",
                _ABANDON_WAIT,
            )
            return
        await anyio.sleep(0.005)


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


async def _send_simple(send: Send, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode("ascii")),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})
