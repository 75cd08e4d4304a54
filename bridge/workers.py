"""Where WsgiToAsgi runs the WSGI app: worker threads, and the way back to the loop.

Two implementations of one small interface:

* :class:`AsyncioWorkers`, on asyncio: a pool of daemon threads (:class:`DaemonPool`)
  and the loop's own thread-safe calls. anyio's general machinery (cancel scopes and
  a task per call back into the loop) costs about 20 us per trip, a third of a
  request's whole overhead.
* :class:`TrioWorkers`, on trio (anyio runs only those two): the same pool, trio's
  ``TrioToken.run_sync_soon`` and the request's task parked by trio's low-level API.

On both, cancellation is the adapter's own business: a cancelled request marks its
``_Link``, and the worker stops at its next step.
``docs/internals.md`` shows how a request uses them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import queue
import sys
import threading
import time
import weakref
from typing import Any, Callable, Coroutine, NoReturn, TypeVar

import anyio
import anyio.lowlevel
from asgiref.sync import SyncToAsync

from .handoff import LoopRef

__all__ = [
    "AsyncioWorkers",
    "DaemonPool",
    "TrioWorkers",
    "Workers",
    "WorkersPerLoop",
    "is_cancellation",
    "serve_async_views_on",
    "track_async_views",
]

T = TypeVar("T")

logger = logging.getLogger("bridge.workers")


def is_cancellation(exc: BaseException, loop_cancelled: type[BaseException] = asyncio.CancelledError) -> bool:
    """Whether ``exc`` is a cancellation, seen from a worker thread: the loop's own
    (``loop_cancelled``, what ``anyio.get_cancelled_exc_class()`` said on that loop:
    asyncio's ``CancelledError`` or trio's ``Cancelled``) or a cancelled future's."""
    return isinstance(exc, (loop_cancelled, asyncio.CancelledError, concurrent.futures.CancelledError))


Ready = Callable[[T], None]


class Workers:
    """The interface: run a function in a worker thread; from there, call the loop."""

    #: Whether the WSGI app's async views (asgiref's ``async_to_sync``) run on this loop
    #: (see :func:`serve_async_views_on`): on asyncio only, asgiref's one event loop.
    async_views_on_loop = False

    def __init__(self) -> None:
        # Made on the loop: what a hand-off created in a worker needs to wake it, and
        # what a cancellation is there (a worker thread cannot ask anyio: no loop runs).
        self.loop_ref = LoopRef()
        self.cancelled_exc = anyio.get_cancelled_exc_class()

    def is_cancellation(self, exc: BaseException) -> bool:
        """Whether ``exc``, seen in a worker, is this loop's cancellation (or a future's)."""
        return is_cancellation(exc, self.cancelled_exc)

    async def run(self, func: Callable[[], T]) -> T:
        raise NotImplementedError

    async def run_until_ready(self, func: Callable[[Ready[T]], T]) -> T:
        """Run ``func(ready)`` in a worker thread. The first value handed to ``ready``
        is returned at once, while ``func`` goes on in the worker (what it does then,
        errors included, is its own business); if ``func`` never calls it, what ``func``
        returns or raises is the result. Cancelled while the call waits for a thread,
        it never runs; once a thread has it, it runs on, and stopping it is the
        caller's business."""
        raise NotImplementedError

    def call_loop(
        self, func: Callable[..., Coroutine[Any, Any, T]], *args: Any
    ) -> concurrent.futures.Future[T] | None:
        """From a worker: start ``func(*args)`` on the loop and return a future to wait
        on, or None if :meth:`wait_loop` must be used instead."""
        return None

    def wait_loop(self, func: Callable[..., Coroutine[Any, Any, T]], *args: Any) -> T:
        """From a worker: run ``func(*args)`` on the loop and wait for it."""
        raise NotImplementedError

    def cancelled(self) -> bool:
        """From a worker: whether the request's task was cancelled (where the backend
        can tell; otherwise the adapter's own flags say)."""
        return False

    def spawn(self, func: Callable[[], Coroutine[Any, Any, None]]) -> Callable[[], object]:
        """On the loop: run ``func()`` in a task of its own, without a task group around
        the request (an anyio task group costs tens of microseconds, a request's whole
        budget). Returns a function that cancels it. ``func`` must not raise."""
        raise NotImplementedError

    async def checkpoint(self) -> None:
        """On the loop: let other tasks run."""
        await anyio.lowlevel.checkpoint()


class TrioWorkers(Workers):
    """trio's fast path, as :class:`AsyncioWorkers` is asyncio's: the adapter's
    :class:`DaemonPool`, ``TrioToken.run_sync_soon`` for the way back, and the request's
    task parked with ``wait_task_rescheduled``. anyio's ``to_thread`` (a system task, an
    event, a limiter and trio's thread cache, which renames its threads per job) cost
    about 100 us per round trip more, a hello's whole overhead twice over."""

    def __init__(self, max_threads: int) -> None:
        super().__init__()
        import outcome  # noqa: PLC0415 - trio's own dependency
        import trio  # noqa: PLC0415 - optional: the only other backend anyio runs on

        # Looked up once here, not per request: the modules are optional imports.
        self._trio = trio
        self._lowlevel = trio.lowlevel
        self._value = outcome.Value
        self.ended = False  # the run is over: idle threads leave at their next poll
        trio.lowlevel.spawn_system_task(self._watch_run, name="bridge-trio-workers")
        self.pool = DaemonPool(max_threads, ended=lambda: self.ended)

    async def _watch_run(self) -> None:
        try:
            await self._trio.sleep_forever()  # a system task: cancelled when the run ends
        finally:
            self.ended = True

    def cancelled(self) -> bool:
        # The request's own cancellation is the adapter's flags' business (as on asyncio).
        return self.ended

    async def run(self, func: Callable[[], T]) -> T:
        return await self.run_until_ready(lambda ready: func())

    async def run_until_ready(self, func: Callable[[Ready[T]], T]) -> T:
        lowlevel = self._lowlevel
        value_of = self._value
        call_soon = self.loop_ref.call_soon  # results that come in together share a wake-up
        task = lowlevel.current_task()
        # The error, kept out of the outcome: a traceback holding this frame would make
        # a reference cycle that keeps the request alive until a full collection.
        failure: list[BaseException] = []
        handed = cancelled = settled = False

        def settle(result: T | None) -> None:  # on the loop (run_sync_soon)
            nonlocal settled
            if not settled:
                settled = True
                lowlevel.reschedule(task, value_of(result))

        def ready(value: T) -> None:
            nonlocal handed
            handed = True
            if not call_soon(settle, value):
                raise RuntimeError("the trio run has ended")

        def job() -> None:
            if cancelled:
                return  # cancelled while it waited for a thread
            try:
                result = func(ready)
            except BaseException as exc:
                if handed:
                    raise
                failure.append(exc)
                result = None
            if not handed and not call_soon(settle, result):
                failure.clear()  # the run has ended: nobody waits any more

        def abort(_: object) -> Any:  # on the loop: the task is cancelled
            nonlocal cancelled, settled
            cancelled = settled = True  # a queued job never runs; a late result is dropped
            return lowlevel.Abort.SUCCEEDED

        self.pool.start(job)
        result = await lowlevel.wait_task_rescheduled(abort)
        if failure:
            _raise_popped(failure)
        return result  # type: ignore[no-any-return]

    def call_loop(
        self, func: Callable[..., Coroutine[Any, Any, T]], *args: Any
    ) -> concurrent.futures.Future[T]:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        lowlevel = self._lowlevel

        def start() -> None:  # on the loop
            if not future.cancelled():
                lowlevel.spawn_system_task(_into_future, future, func, args, name="bridge-call-loop")

        # The loop's one way in from a thread, in order with this thread's other calls.
        if not self.loop_ref.call_soon(start):
            future.set_exception(RuntimeError("the trio run has ended"))
        return future

    def wait_loop(self, func: Callable[..., Coroutine[Any, Any, T]], *args: Any) -> T:
        return self.call_loop(func, *args).result()

    def spawn(self, func: Callable[[], Coroutine[Any, Any, None]]) -> Callable[[], object]:
        scope = self._trio.CancelScope()

        async def run() -> None:
            with scope:
                await func()

        self._lowlevel.spawn_system_task(run)
        return scope.cancel

    async def checkpoint(self) -> None:
        await self._lowlevel.checkpoint()


def _resolve(waiter: asyncio.Future[Any], value: Any) -> None:
    if not waiter.done():  # else cancelled meanwhile
        waiter.set_result(value)


async def _into_future(future: concurrent.futures.Future[Any], func: Any, args: Any) -> None:
    """A system task: ``func(*args)`` into a future that the request may cancel (from the
    loop: ``_Link.abandon``), which cancels this task. It lets go of the future before
    it ends: an error's traceback holds this frame (no cycle)."""
    import trio  # noqa: PLC0415

    try:
        with trio.CancelScope() as scope:
            future.add_done_callback(lambda done: scope.cancel() if done.cancelled() else None)
            try:
                result = await func(*args)
            except BaseException as exc:
                if not future.done():
                    future.set_exception(exc)
                if isinstance(exc, trio.Cancelled):
                    raise
                return
            if not future.done():
                future.set_result(result)
    finally:
        del future, func, args


class AsyncioWorkers(Workers):
    async_views_on_loop = True

    def __init__(self, max_threads: int) -> None:
        super().__init__()
        self.loop = loop = asyncio.get_running_loop()
        self.pool = DaemonPool(
            max_threads, ended=loop.is_closed, on_thread_start=lambda: serve_async_views_on(loop)
        )

    async def run(self, func: Callable[[], T]) -> T:
        return await asyncio.wrap_future(self.pool.submit(func), loop=self.loop)

    async def run_until_ready(self, func: Callable[[Ready[T]], T]) -> T:
        # One wake-up of the loop either way: ready() or the end of func, whichever
        # comes first, resolves the waiter. No concurrent future (its condition
        # variable, taken three times, costs microseconds on both sides of the hop).
        loop = self.loop
        waiter: asyncio.Future[T | None] = loop.create_future()
        # The error, kept out of the waiter: a failed future keeps its exception, whose
        # traceback holds this frame, which holds the future (a reference cycle that
        # would keep the request alive until a full collection).
        failure: list[BaseException] = []
        handed = cancelled = False

        # Results that come in while the loop is busy share one wake-up.
        call_soon = self.loop_ref.call_soon

        def ready(value: T) -> None:
            nonlocal handed
            handed = True
            if not call_soon(_resolve, waiter, value):
                raise RuntimeError("the event loop is closed")

        def job() -> None:
            if cancelled:
                return  # cancelled while it waited for a thread
            try:
                result = func(ready)
            except BaseException as exc:
                if handed:
                    raise
                failure.append(exc)
                result = None
            if not handed and not call_soon(_resolve, waiter, result):
                failure.clear()  # the loop is closed: nobody waits any more

        self.pool.start(job)
        try:
            result = await waiter
        except asyncio.CancelledError:
            cancelled = True  # still queued for a thread: then it never runs
            raise
        if failure:
            _raise_popped(failure)
        return result  # type: ignore[return-value]

    def call_loop(
        self, func: Callable[..., Coroutine[Any, Any, T]], *args: Any
    ) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(func(*args), self.loop)

    def wait_loop(self, func: Callable[..., Coroutine[Any, Any, T]], *args: Any) -> T:
        return self.call_loop(func, *args).result()

    # asyncio's own, without anyio's per-call lookup of the running library (sniffio).

    def spawn(self, func: Callable[[], Coroutine[Any, Any, None]]) -> Callable[[], object]:
        return self.loop.create_task(func()).cancel

    async def checkpoint(self) -> None:
        await asyncio.sleep(0)


class WorkersPerLoop:
    """An adapter's workers on each event loop it serves: anyio's primitives belong to
    the loop that made them."""

    __slots__ = ("_last", "_per_loop")

    def __init__(self, name: str) -> None:
        self._per_loop: anyio.lowlevel.RunVar[Workers] = anyio.lowlevel.RunVar(name)
        # The last loop's (asyncio's loop or trio's token) workers, found without the
        # RunVar lookup (which asks sniffio for the running library: microseconds, on
        # every request).
        self._last: tuple[weakref.ref[Any], Workers] | None = None

    def get(self, max_threads: int) -> Workers:
        """The running loop's workers; made, at most ``max_threads`` threads, on its first call."""
        key: Any
        try:
            key = asyncio.get_running_loop()
        except RuntimeError:
            key = sys.modules["trio"].lowlevel.current_trio_token()  # anyio's only other backend
        last = self._last
        if last is not None and last[0]() is key:
            return last[1]
        workers: Workers
        try:
            workers = self._per_loop.get()
        except LookupError:
            if isinstance(key, asyncio.AbstractEventLoop):
                workers = AsyncioWorkers(max_threads)
            else:
                workers = TrioWorkers(max_threads)
            self._per_loop.set(workers)
        self._last = (weakref.ref(key), workers)
        return workers


def serve_async_views_on(loop: asyncio.AbstractEventLoop) -> None:
    """In a worker thread of ``loop``: make asgiref's ``async_to_sync`` (what Flask's and
    Django's async views go through) run coroutines on ``loop``, the server's own, as
    asgiref's ``WsgiToAsgi`` does, rather than on a new loop per call in yet another
    thread. A view can then use what the ASGI side opened on that loop (a client, a
    pool, an event), and pays no loop start per call.

    asgiref reads these from its ``SyncToAsync.threadlocal`` (set there by its own
    ``sync_to_async`` threads, the pid guarding against fork); every version from the
    declared floor, 3.6, does. Django's thread-sensitive ``sync_to_async`` calls inside
    such a view come back to this thread, which waits in ``async_to_sync`` meanwhile.
    """
    local = SyncToAsync.threadlocal
    local.main_event_loop = loop
    local.main_event_loop_pid = os.getpid()


def track_async_views(tasks: list[asyncio.Task[Any]] | None) -> None:
    """In a worker thread, for the request it now runs (None once it is done): where
    asgiref (3.8 and later) records the tasks of the async views it starts on the loop,
    so that the request's cancellation can reach them."""
    SyncToAsync.threadlocal.task_context = tasks


def _raise_popped(failure: list[BaseException]) -> NoReturn:
    """Raise the error a worker left in ``failure``. Every frame it passes through joins
    its traceback, so none may keep a name for it (a cycle, alive until a full
    collection): the callers pass the list, and this frame lets go as it raises."""
    error = failure.pop()
    try:
        raise error
    finally:
        del error


class DaemonPool:
    """At most ``size`` daemon threads running submitted calls in order; each first runs
    ``on_thread_start``.

    Daemon threads, unlike ``ThreadPoolExecutor``'s, never hold up interpreter exit,
    even when a WSGI app is stuck in a request. A thread leaves once it has been idle
    for ``idle_exit`` seconds, or once ``ended()`` says its owner is gone (the event
    loop the pool serves was closed), so a loop per call (tests, scripts, notebooks
    running ``asyncio.run()`` again and again) leaves no threads behind.
    """

    def __init__(
        self,
        size: int,
        *,
        ended: Callable[[], bool] = lambda: False,
        idle_exit: float = 60.0,
        poll: float = 1.0,
        on_thread_start: Callable[[], object] | None = None,
    ) -> None:
        self.size = size
        self._ended = ended
        self._on_thread_start = on_thread_start
        self._idle_exit = idle_exit
        self._poll = min(poll, idle_exit)
        self._work: queue.SimpleQueue[tuple[concurrent.futures.Future[Any] | None, Callable[[], Any]]] = (
            queue.SimpleQueue()
        )
        self._lock = threading.Lock()
        self._threads = 0
        self._waiting = 0  # threads waiting for work (or about to)
        self._pending = 0  # calls queued that no thread has taken yet

    @property
    def threads(self) -> int:
        """How many threads the pool has now."""
        return self._threads

    def submit(self, func: Callable[[], T]) -> concurrent.futures.Future[T]:
        """Run ``func`` in a thread; its outcome goes to the future returned."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._put(future, func)
        return future

    def start(self, func: Callable[[], object]) -> None:
        """Run ``func`` in a thread, for a caller that learns its outcome another way
        (an error escaping it is logged)."""
        self._put(None, func)

    def _put(self, future: concurrent.futures.Future[Any] | None, func: Callable[[], Any]) -> None:
        self._work.put((future, func))
        with self._lock:
            self._pending += 1
            if self._pending <= self._waiting or self._threads >= self.size:
                return  # a waiting thread takes it, or it waits for a thread to be free
            self._threads += 1
        threading.Thread(target=self._serve, name="bridge-wsgi-worker", daemon=True).start()

    def _leave(self, idle_since: float) -> bool:
        """After a poll found no work: whether this waiting thread leaves the pool."""
        if not self._ended() and time.monotonic() - idle_since < self._idle_exit:
            return False
        with self._lock:
            if self._pending:
                return False  # work is queued: some waiting thread must take it
            self._waiting -= 1
            self._threads -= 1
            return True

    def _serve(self) -> None:
        if self._on_thread_start is not None:
            try:
                self._on_thread_start()
            except Exception:
                logger.exception("preparing a bridge worker thread failed; it serves anyway")
        work = self._work
        poll = self._poll
        lock = self._lock
        while True:
            idle_since = time.monotonic()
            with lock:
                self._waiting += 1
            while True:
                try:
                    future, func = work.get(timeout=poll)
                    break
                except queue.Empty:
                    if self._leave(idle_since):
                        return
            with lock:
                self._waiting -= 1
                self._pending -= 1
            if future is None:
                try:
                    func()
                except BaseException:
                    logger.exception("a call in a bridge worker thread failed")
            elif future.set_running_or_notify_cancel():
                try:
                    result = func()
                except BaseException as exc:
                    future.set_exception(exc)
                else:
                    future.set_result(result)
            del future, func
