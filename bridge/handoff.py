"""A bounded, thread-safe hand-off between an event loop and a worker thread.

What decides the adapters' speed is how often one side must wake the other (each
wake-up is a trip through the loop's self-pipe or a thread switch, tens of
microseconds). Here a side is woken only when it is actually waiting: a producer that
stays ahead of its consumer, within the byte budget, never pays for a wake-up, and a
consumer that finds data waiting takes all of it at once.

One side runs on the event loop (``*_in_loop`` methods), the other in one ordinary
thread (``*_in_thread`` methods, blocking). Either may produce. Two ways to end it:
``close()`` (usually the producer's: nothing more will come; the consumer takes what
is queued, then sees the end) and ``refuse()`` (the consumer's: it takes nothing more;
what is queued is handed back, and puts raise ``Closed``, while a consumer may still
wait for the producer's ``close()``). Both wake both sides; every blocking wait also
wakes up now and then so its caller can check for a reason to stop (the waits have
a way out even if a peer vanishes). ``docs/internals.md`` shows where each
direction uses it.
"""

from __future__ import annotations

import asyncio
import collections
import queue
import threading
import time
from typing import Any, Awaitable, Callable, Generic, Protocol, TypeVar

__all__ = ["Closed", "Handoff", "LoopRef"]

T = TypeVar("T")

_THREAD_POLL = 0.5


class Closed(Exception):
    """The hand-off was closed: nothing more will come, and puts are refused."""


class _Event(Protocol):
    def set(self) -> None: ...

    def wait(self) -> Awaitable[object]: ...


class LoopRef:
    """An event loop as the other threads see it: its thread, its events, and how to
    call into it from any thread. Made on the loop; usable from any thread (a worker
    may then create hand-offs).

    Only the loops' own public calls: asyncio's ``call_soon_threadsafe`` and trio's
    ``TrioToken.run_sync_soon`` (anyio's ``EventLoopToken.backend_class`` is a hook
    for backend implementers that older anyio releases lack).
    """

    __slots__ = ("_asyncio_loop", "_calls", "_scheduled", "_trio_token", "new_event", "thread")

    def __init__(self) -> None:
        self.thread = threading.get_ident()
        self.new_event: Callable[[], _Event]
        self._asyncio_loop: asyncio.AbstractEventLoop | None = None
        self._trio_token: Any = None
        # Calls from other threads that the loop has not run yet, and whether a run of
        # them is scheduled (see call_soon).
        self._calls: collections.deque[tuple[Callable[..., object], tuple[Any, ...]]] = collections.deque()
        self._scheduled = False
        try:
            self._asyncio_loop = asyncio.get_running_loop()
        except RuntimeError:  # not asyncio: the only other loop anyio runs on is trio's
            import trio  # noqa: PLC0415 - optional dependency

            self._trio_token = trio.lowlevel.current_trio_token()
            self.new_event = trio.Event
        else:
            self.new_event = asyncio.Event

    def call_soon(self, func: Callable[..., object], *args: Any) -> bool:
        """From another thread: run ``func(*args)`` on the loop soon, after the calls
        made before it. False if the loop has ended (asyncio raises ``RuntimeError``
        then, trio its subclass ``RunFinishedError``): nobody is left to run it.

        Calls made while the loop has not yet run the earlier ones share their wake-up
        (one self-pipe write, one callback) instead of one each: under load the loop is
        busy when the threads' results come in. Measured on uvicorn, 32 connections, when
        only ``WsgiToAsgi``'s results went this way: the WSGI hello's share of the native
        ASGI hello from 0.25 to 0.30 (httptools) and from 0.36 to 0.46 (h11).
        """
        self._calls.append((func, args))
        # (Appended before the flag is read, and the loop clears the flag before it runs
        # the calls: a call is never left without a run to come.)
        loop = self._asyncio_loop
        if self._scheduled:
            return loop is None or not loop.is_closed()
        self._scheduled = True
        # The loop's method is looked up on each call, not bound once: the benchmarks'
        # hop counter (benchmarks/hops.py) counts wake-ups by wrapping it on the class.
        try:
            if loop is not None:
                loop.call_soon_threadsafe(self._run_calls)
            else:
                self._trio_token.run_sync_soon(self._run_calls)
        except RuntimeError:
            self._scheduled = False  # a later call finds the loop gone too
            return False
        return True

    def _run_calls(self) -> None:
        self._scheduled = False
        calls = self._calls
        try:
            while calls:
                func, args = calls.popleft()
                func(*args)
        finally:
            if calls and not self._scheduled:
                # One raised (the loop reports it): the others run in a callback of
                # their own, not whenever the next call comes. (On the loop's thread.)
                self._scheduled = True
                if self._asyncio_loop is not None:
                    self._asyncio_loop.call_soon(self._run_calls)
                else:
                    self._trio_token.run_sync_soon(self._run_calls)

    def wake(self, event: _Event) -> bool:
        """From another thread: set ``event`` on the loop (:meth:`call_soon`)."""
        return self.call_soon(event.set)


class Handoff(Generic[T]):
    """Items with sizes, from a producer to a consumer; at most ``limit`` bytes queued
    (an item larger than the limit still passes, alone). One thread at a time uses the
    thread side."""

    __slots__ = (
        "_items",
        "_lock",
        "_loop_event",
        "_loop_waiting",
        "_queued",
        "_refused",
        "_thread_waiting",
        "_wakeup",
        "closed",
        "limit",
        "loop_ref",
    )

    def __init__(self, limit: int, loop: LoopRef | None = None) -> None:
        """Create it on the event loop, or anywhere given the loop's ``LoopRef``."""
        if loop is None:
            loop = LoopRef()
        self.limit = limit
        self._items: list[T] = []
        self._queued = 0
        self._lock = threading.Lock()
        # The thread side sleeps on this queue and is woken by one put: a C queue, not a
        # threading.Condition, whose wait and notify are Python code (a fifth of an ASGI
        # to WSGI hello's cost, measured). At most one put per wait: whoever clears
        # _thread_waiting under the lock puts, after releasing it (a put under the lock
        # would wake the thread only to have it wait for the lock: a second wake-up).
        self._wakeup: queue.SimpleQueue[None] = queue.SimpleQueue()
        #: ``close()`` was called: nothing more will come (read it; do not set it).
        self.closed = False
        self._refused = False
        self._thread_waiting = False
        self._loop_waiting = False
        self._loop_event: _Event | None = None
        self.loop_ref = loop

    # -- shared ------------------------------------------------------------------------

    def _take_all(self) -> list[T]:
        """Under the lock: everything queued (items leave all at once, so only their
        total size is kept)."""
        items = self._items
        self._items = []
        self._queued = 0
        return items

    def close(self) -> None:
        """From either side: wake both; later puts raise Closed."""
        with self._lock:
            self.closed = True
            if not self._thread_waiting and not self._loop_waiting:
                return  # nobody to wake: the usual end (the other side is busy, or done)
            waiters = self._claim_waiters()
        self._wake_both(*waiters)

    def refuse(self) -> list[T]:
        """From the consumer's side: take nothing more. Returns what was queued, for
        the caller to dispose of; later puts raise Closed (a producer waiting for room
        is woken to find that), and a consumer's get still waits for ``close()``."""
        with self._lock:
            self._refused = True
            items = self._take_all()
            if not self._thread_waiting and not self._loop_waiting:
                return items  # nobody to wake (as in close())
            waiters = self._claim_waiters()
        self._wake_both(*waiters)
        return items

    def _claim_waiters(self) -> tuple[bool, _Event | None]:
        """Under the lock: whether the thread side waits, and the loop side's event if
        it waits; both count as woken from now on (the wake-ups go out after the lock
        is released: :meth:`_wake_both`)."""
        thread, self._thread_waiting = self._thread_waiting, False
        event = self._loop_event if self._loop_waiting else None
        self._loop_waiting = False
        return thread, event

    def _wake_both(self, thread: bool, event: _Event | None) -> None:
        if thread:
            self._wakeup.put(None)
        if event is not None:
            self._signal_loop(event)

    def _signal_loop(self, event: _Event) -> None:
        # From the loop's own thread a plain set() is right; from elsewhere, hand it over.
        if threading.get_ident() == self.loop_ref.thread:
            event.set()
        else:
            self.loop_ref.wake(event)

    def set_limit(self, limit: int) -> None:
        """Change the byte budget; a producer waiting for room re-checks at once."""
        with self._lock:
            self.limit = limit
            waiters = self._claim_waiters()
        self._wake_both(*waiters)

    def _wait_in_thread(self, timeout: float) -> None:
        """Under the lock, in the thread: sleep until woken or ``timeout``; returns with
        the lock held. A wake-up that comes just after a timeout is left in the queue
        and ends the next wait early: every caller re-checks what it waits for."""
        self._thread_waiting = True
        self._lock.release()
        try:
            self._wakeup.get(timeout=timeout)
        except queue.Empty:
            pass
        finally:
            self._lock.acquire()
            self._thread_waiting = False

    # -- thread side -------------------------------------------------------------------

    def put_in_thread(self, item: T, size: int, should_stop: Callable[[], bool] = lambda: False) -> None:
        """Queue an item; block while the queue is over its budget."""
        with self._lock:
            while self._queued and self._queued + size > self.limit and not (self.closed or self._refused):
                self._wait_in_thread(_THREAD_POLL)
                if should_stop():
                    raise Closed("stopped while waiting for room")
            if self.closed or self._refused:
                raise Closed("the hand-off is closed")
            self._items.append(item)
            self._queued += size
            event = self._loop_event if self._loop_waiting else None
            self._loop_waiting = False
        if event is not None and not self.loop_ref.wake(event):
            self.close()
            raise Closed("the event loop has ended: nobody will take the item")

    def wait_taken_in_thread(self, should_stop: Callable[[], bool] = lambda: False) -> None:
        """Block until the consumer has taken everything queued (or it is closed)."""
        with self._lock:
            while self._items and not self.closed:
                self._wait_in_thread(_THREAD_POLL)
                if self._items and should_stop():
                    raise Closed("stopped while waiting for the consumer")

    def get_in_thread(
        self, should_stop: Callable[[], bool] = lambda: False, timeout: float | None = None
    ) -> list[T]:
        """Take everything queued; block while nothing is. Raises Closed once closed
        and empty, or when ``should_stop()`` says so while waiting; returns nothing
        once ``timeout`` seconds have passed, if given."""
        with self._lock:
            deadline = None if timeout is None else time.monotonic() + timeout
            while not self._items:
                if self.closed:
                    raise Closed("the hand-off is closed")
                wait = _THREAD_POLL
                if deadline is not None:
                    wait = min(wait, deadline - time.monotonic())
                    if wait <= 0:
                        return []
                self._wait_in_thread(wait)
                if not self._items and should_stop():
                    raise Closed("stopped while waiting for data")
            items = self._take_all()
            event = self._loop_event if self._loop_waiting else None
            self._loop_waiting = False
        if event is not None:
            self.loop_ref.wake(event)  # a loop producer waiting for room
        return items

    # -- loop side ---------------------------------------------------------------------

    def push_in_loop(self, *items: T) -> None:
        """Queue items now, whatever the budget, counting nothing against it (for the
        few that must never wait: a status, an end, an error, a request to the
        thread); from the loop's thread. One wake-up for all of them."""
        with self._lock:
            if self.closed or self._refused:
                raise Closed("the hand-off is closed")
            self._items.extend(items)
            wake, self._thread_waiting = self._thread_waiting, False
        if wake:
            self._wakeup.put(None)

    async def put_in_loop(self, item: T, size: int) -> None:
        """Queue an item; wait while the queue is over its budget."""
        while True:
            with self._lock:
                if self.closed or self._refused:
                    raise Closed("the hand-off is closed")
                if not self._queued or self._queued + size <= self.limit:
                    self._items.append(item)
                    self._queued += size
                    wake, self._thread_waiting = self._thread_waiting, False
                    break
                event = self._loop_event = self.loop_ref.new_event()
                self._loop_waiting = True
            await event.wait()
        if wake:
            self._wakeup.put(None)

    async def get_in_loop(self) -> list[T]:
        """Take everything queued; wait while nothing is. Raises Closed once closed
        and empty."""
        while True:
            with self._lock:
                if self._items:
                    items = self._take_all()
                    wake, self._thread_waiting = self._thread_waiting, False
                    break
                if self.closed:
                    raise Closed("the hand-off is closed")
                event = self._loop_event = self.loop_ref.new_event()
                self._loop_waiting = True
            await event.wait()
        if wake:
            self._wakeup.put(None)  # a thread producer waiting for room
        return items
