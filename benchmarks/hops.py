"""Count the cross-thread wake-ups a request costs, without touching the code under test.

What is counted
---------------
A *wake-up* is one hand-off from one thread to another thread that waits for it: the
event loop handing work or a result to a worker thread (*to thread*), or a thread
handing a callback or a result to the event loop (*to loop*). Each costs an OS-level
wake-up of a sleeping thread (or the risk of one), 60-100 µs of latency on a busy
2-core machine, and it is what separates a fast bridge from a slow one.

How
---
While a counted run executes, the primitives that carry hand-offs between threads are
wrapped (monkeypatched at class level, restored afterwards):

* **to loop**: ``asyncio.BaseEventLoop.call_soon_threadsafe`` called from a thread other
  than the loop's own (``asyncio.run_coroutine_threadsafe``, ``run_in_executor``'s result
  and anyio's ``from_thread`` and worker threads all end there), and on trio
  ``TrioToken.run_sync_soon`` called from outside that run's thread (trio's
  ``to_thread`` results and ``from_thread`` calls, anyio's on trio, and bridge's
  ``LoopRef.wake`` all end there). Always a hand-off: the loop runs the callback.
* **to a pool thread**: ``ThreadPoolExecutor.submit`` from outside the pool, and on trio
  the thread cache's ``start_thread_soon`` (``trio.to_thread.run_sync``, anyio's
  ``to_thread`` on trio), which hands the job over by releasing a raw lock.
* **objects another thread waits on**: ``concurrent.futures.Future.set_result`` /
  ``set_exception``, ``threading.Event.set``, ``queue.Queue.put``, ``queue.SimpleQueue.put``
  and a bare ``threading.Condition.notify`` are *signals*; ``Future.result`` /
  ``exception``, ``Event.wait``, ``Queue.get`` and ``Condition.wait`` are *receives*.
* ``queue.SimpleQueue`` is a C type whose methods cannot be wrapped: its ``put`` calls are
  seen through a profile hook (``sys.setprofile``'s ``c_call`` events) installed for the
  run in this thread, in threads started during the run, and in the thread of every
  running asyncio loop and trio run (found with ``gc``: trio's ``from_thread`` answers
  a waiting thread through one); what its consumers took is what was put minus what is
  left in it at the end.

Stable integer counts come from counting what the code path does, not what the OS
scheduler happened to do: whether a waiting thread really slept depends on timing, but
whether it *called* a blocking receive on an object another thread signals does not.
So, after the run, each object gets a budget: the number of its signals that a receive
in another thread matched (``min(#signals, #receives)`` across threads). A queue message
put but never taken, a future set but never waited on, or an event set that nobody
waits for costs nothing and counts nothing. Then the signals are replayed in order; a
top-level signal counts one wake-up if it (or anything it triggers synchronously, such
as a future's done-callbacks) crosses threads. Conditions internal to an Event, Future
or Queue are part of that object's signal, so one hand-off never counts twice.

So the count is of hand-offs a request's code path makes, each one a potential sleep
and wake-up: two ``call_soon_threadsafe`` calls that reach a loop while it is already
awake cost one OS wake-up, not two, and a design that signals only when its peer
actually waits (a condition variable with a "waiting" flag) shows fractional counts,
which is the truth about it. A request's figure is the run's total over its requests.

Limits: hand-offs through raw ``_thread.lock`` releases (but trio's thread cache, above),
pipes or sockets, and ``SimpleQueue.put`` from a thread that existed before the run and
runs no event loop (a pool's worker, say), are invisible; uvloop's loop is not counted
(its ``call_soon_threadsafe`` is not ``BaseEventLoop``'s). trio is counted when it has been
imported by the time the counter is installed (the in-process tier runs on the default
asyncio loop; ``tests/test_hops.py``
counts trio with the trio baselines of ``scenarios_w2a`` and ``scenarios_a2w``). The
driver's own threads mark their bookkeeping with :func:`driver` so it is left out.
Self-check: the no-adapter baselines pay exactly one hop there and one back (2), which
every report states.
"""

from __future__ import annotations

import _queue
import asyncio
import concurrent.futures
import contextlib
import gc
import queue
import sys
import threading
import traceback
from asyncio import base_events
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

__all__ = ["HopCount", "HopCounter", "driver", "enter_thread"]

_TO_LOOP, _TO_THREAD = "to_loop", "to_thread"
# Conditions owned by a primitive: notifying them is part of that primitive's signal.
_INTERNAL_CONDITIONS = ("_cond", "_condition", "not_empty", "not_full", "all_tasks_done")

_PLUMBING = ("/asyncio/", "/concurrent/", "/threading.py", "/queue.py", "/anyio/", "/trio/", "/outcome/")

_local = threading.local()
_active: HopCounter | None = None


@dataclass
class HopCount:
    """Wake-ups per request in one counted run."""

    requests: int
    to_thread: int
    to_loop: int
    sites: dict[str, int] = field(default_factory=dict)  # with HopCounter(sites=True)

    @property
    def total(self) -> int:
        return self.to_thread + self.to_loop

    @property
    def per_request(self) -> float:
        return self.total / self.requests

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "total": self.total,
            "to_thread": self.to_thread,
            "to_loop": self.to_loop,
            "per_request": self.per_request,
            "to_thread_per_request": self.to_thread / self.requests,
            "to_loop_per_request": self.to_loop / self.requests,
            **({"sites": self.sites} if self.sites else {}),
        }


@dataclass
class _Record:
    """One top-level signalling call and everything it triggered synchronously."""

    thread: int
    parts: list[object] = field(default_factory=list)
    unconditional: str | None = None  # a hand-off that is always consumed, and where to
    site: str = ""


def enter_thread() -> None:
    """Called by a thread of the benchmark's own pool that plays a server thread, at
    the start of each request: during a counted run, its SimpleQueue calls count too."""
    counter = _active
    if counter is not None and counter.profiling and sys.getprofile() is None:
        sys.setprofile(counter._profile)


@contextmanager
def driver() -> Iterator[None]:
    """Leave the benchmark driver's own thread hand-offs out of the count (its pool
    that plays the WSGI server's threads, for instance)."""
    previous = getattr(_local, "paused", False)
    _local.paused = True
    try:
        yield
    finally:
        _local.paused = previous


def _state() -> Any:
    st = _local
    if not hasattr(st, "record"):
        st.record = None
        st.stack = []
        st.paused = False
    return st


def _where(frame: traceback.FrameSummary) -> str:
    parts = frame.filename.replace("\\", "/").rsplit("/", 2)
    return f"{'/'.join(parts[-2:])}:{frame.lineno} {frame.name}"


def _current_trio_token() -> object:
    """The token of the trio run in this thread, or None."""
    trio = sys.modules.get("trio")
    if trio is None:
        return None
    try:
        return trio.lowlevel.current_trio_token()
    except RuntimeError:  # no trio run in this thread
        return None


def _is_loop_thread() -> bool:
    return asyncio._get_running_loop() is not None or _current_trio_token() is not None


class HopCounter:
    """Install the wrappers for a block of counted runs; :meth:`count` one run at a time.

    ::

        with HopCounter() as counter:
            hops = counter.count(lambda: run_requests(20), requests=20)
    """

    def __init__(self, sites: bool = False) -> None:
        self._patches: list[tuple[Any, str, Any]] = []
        self.sites = sites  # record where each hop comes from (slow; for finding them)
        self._reset()

    def _reset(self) -> None:
        self.records: list[_Record] = []
        self.signals: dict[int, list[int]] = defaultdict(list)
        self.receives: dict[int, list[tuple[int, bool]]] = defaultdict(list)
        self.keep: dict[int, object] = {}  # strong references: ids stay unique in a run
        self.counting = False
        self.profiling = False

    # -- installing ------------------------------------------------------------------------

    def __enter__(self) -> HopCounter:
        global _active
        if _active is not None:
            raise RuntimeError("a HopCounter is already installed")
        self._install()
        _active = self
        return self

    def __exit__(self, *exc_info: object) -> None:
        global _active
        _active = None
        for owner, name, original in reversed(self._patches):
            setattr(owner, name, original)
        self._patches.clear()

    def _patch(self, owner: Any, name: str, replacement: Any) -> None:
        self._patches.append(
            (owner, name, owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name))
        )
        setattr(owner, name, replacement)

    def _install(self) -> None:
        counter = self

        original_cst = base_events.BaseEventLoop.call_soon_threadsafe

        def call_soon_threadsafe(loop: Any, callback: Any, *args: Any, context: Any = None) -> Any:
            if counter.counting and threading.get_ident() != loop._thread_id:
                counter._unconditional(_TO_LOOP)
            return original_cst(loop, callback, *args, context=context)

        self._patch(base_events.BaseEventLoop, "call_soon_threadsafe", call_soon_threadsafe)

        original_submit = concurrent.futures.ThreadPoolExecutor.submit

        def submit(pool: Any, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
            me = threading.get_ident()
            if not counter.counting or any(t.ident == me for t in pool._threads):
                return original_submit(pool, fn, *args, **kwargs)
            with counter._signal(pool, unconditional=_TO_THREAD):
                return original_submit(pool, fn, *args, **kwargs)

        self._patch(concurrent.futures.ThreadPoolExecutor, "submit", submit)

        for owner, name in (
            (concurrent.futures.Future, "set_result"),
            (concurrent.futures.Future, "set_exception"),
            (threading.Event, "set"),
            (queue.Queue, "put"),
            (threading.Condition, "notify"),
        ):
            self._patch(owner, name, self._signal_wrapper(owner.__dict__[name], name == "notify"))

        for owner, name in (
            (concurrent.futures.Future, "result"),
            (concurrent.futures.Future, "exception"),
            (threading.Event, "wait"),
            (queue.Queue, "get"),
            (threading.Condition, "wait"),
        ):
            self._patch(owner, name, self._receive_wrapper(owner.__dict__[name]))

        # trio once imported (by whatever runs on it): never imported here, so that
        # an asyncio-only run stays as it was.
        trio = sys.modules.get("trio")
        if trio is not None:
            self._install_trio(trio)

    def _install_trio(self, trio: Any) -> None:
        counter = self
        token_class = trio.lowlevel.TrioToken
        original_rss = token_class.__dict__["run_sync_soon"]

        def run_sync_soon(token: Any, sync_fn: Any, *args: Any, idempotent: bool = False) -> Any:
            if counter.counting and _current_trio_token() is not token:
                counter._unconditional(_TO_LOOP)
            return original_rss(token, sync_fn, *args, idempotent=idempotent)

        self._patch(token_class, "run_sync_soon", run_sync_soon)

        from trio._core import _thread_cache  # the class has no public name

        cache_class = _thread_cache.ThreadCache
        original_start = cache_class.__dict__["start_thread_soon"]

        def start_thread_soon(cache: Any, fn: Any, deliver: Any, name: Any = None) -> Any:
            if not counter.counting:
                return original_start(cache, fn, deliver, name)
            with counter._signal(cache, unconditional=_TO_THREAD):
                return original_start(cache, fn, deliver, name)

        self._patch(cache_class, "start_thread_soon", start_thread_soon)

    def _signal_wrapper(self, original: Callable[..., Any], is_condition: bool) -> Callable[..., Any]:
        counter = self

        def signal(obj: Any, *args: Any, **kwargs: Any) -> Any:
            if not counter.counting:
                return original(obj, *args, **kwargs)
            if is_condition:
                stack = _state().stack
                if stack and any(getattr(stack[-1], a, None) is obj for a in _INTERNAL_CONDITIONS):
                    return original(obj, *args, **kwargs)
            with counter._signal(obj):
                return original(obj, *args, **kwargs)

        return signal

    def _receive_wrapper(self, original: Callable[..., Any]) -> Callable[..., Any]:
        counter = self

        def receive(obj: Any, *args: Any, **kwargs: Any) -> Any:
            if not counter.counting:
                return original(obj, *args, **kwargs)
            try:
                result = original(obj, *args, **kwargs)
            except (TimeoutError, queue.Empty):
                raise
            except BaseException:
                counter._receive(obj)  # the other side's exception: consumed
                raise
            if result is not False:  # Event.wait / Condition.wait time out with False
                counter._receive(obj)
            return result

        return receive

    # -- recording -------------------------------------------------------------------------

    @contextmanager
    def _signal(self, obj: object, unconditional: str | None = None) -> Iterator[None]:
        st = _state()
        if not self.counting or st.paused:
            yield
            return
        outer = st.record is None
        if outer:
            st.record = _Record(threading.get_ident(), site=self._site())
            self.records.append(st.record)
        record = st.record
        record.parts.append(obj)
        if unconditional is not None and record.unconditional is None:
            record.unconditional = unconditional
        self.signals[id(obj)].append(record.thread)
        self.keep[id(obj)] = obj
        st.stack.append(obj)
        try:
            yield
        finally:
            st.stack.pop()
            if outer:
                st.record = None

    def _unconditional(self, where: str) -> None:
        st = _state()
        if st.paused:
            return
        if st.record is not None:
            if st.record.unconditional is None:
                st.record.unconditional = where
            return
        self.records.append(_Record(threading.get_ident(), unconditional=where, site=self._site()))

    def _site(self) -> str:
        """Where a hop starts: the two innermost callers outside the standard library,
        anyio and this module; for a callback the event loop runs, or a thread with no
        such caller, the innermost frame that is not this module."""
        if not self.sites:
            return ""
        frames = [
            f for f in traceback.extract_stack() if not f.filename.endswith(("hops.py", "contextlib.py"))
        ]
        chain: list[str] = []
        for frame in reversed(frames):
            name = frame.filename.replace("\\", "/")
            if frame.name == "_run_once" and name.endswith("asyncio/base_events.py"):
                break  # the loop called us back: frames beyond belong to someone else
            if any(part in name for part in _PLUMBING):
                continue
            chain.append(_where(frame))
            if len(chain) == 2:
                break
        if not chain and frames:
            chain.append(_where(frames[-1]))
        return " <- ".join(chain)

    def _receive(self, obj: object) -> None:
        if not self.counting or _state().paused:
            return
        self.receives[id(obj)].append((threading.get_ident(), _is_loop_thread()))
        self.keep[id(obj)] = obj

    # -- counting --------------------------------------------------------------------------

    # -- SimpleQueue, a C type: seen through a profile hook -----------------------------

    def _profile(self, frame: Any, event: str, arg: Any) -> None:
        if not self.profiling:
            sys.setprofile(None)  # the run is over: this thread stops paying for the hook
            return
        if event == "c_call" and self.counting:
            owner = getattr(arg, "__self__", None)
            if type(owner) is _queue.SimpleQueue and arg.__name__ in ("put", "put_nowait"):
                with self._signal(owner):
                    pass

    def _enable_profiling(self) -> None:
        """Profile this thread, threads started from now on, and every running asyncio
        loop's and trio run's thread (a loop thread is where a SimpleQueue hand-off
        starts)."""
        self.profiling = True
        hook = self._profile
        sys.setprofile(hook)
        threading.setprofile(hook)
        me = threading.get_ident()
        trio = sys.modules.get("trio")
        token_class = trio.lowlevel.TrioToken if trio is not None else None
        for obj in gc.get_objects():
            # type(), not isinstance(): isinstance() asks a lazy proxy (Django's
            # settings) for its __class__, which sets it up, or raises.
            kind = type(obj)
            if kind is token_class:
                assert trio is not None
                if obj is not _current_trio_token():
                    with contextlib.suppress(trio.RunFinishedError):  # a run that is over
                        self._in_loop(obj.run_sync_soon)
            elif (
                issubclass(kind, base_events.BaseEventLoop)
                and obj.is_running()
                and getattr(obj, "_thread_id", None) != me
            ):
                self._in_loop(obj.call_soon_threadsafe)

    def _in_loop(self, call_soon: Callable[[Callable[[], None]], object]) -> None:
        """Install the profile hook in a loop's thread, through ``call_soon``."""
        hook = self._profile
        done: concurrent.futures.Future[None] = concurrent.futures.Future()

        def enable() -> None:
            sys.setprofile(hook)
            done.set_result(None)

        call_soon(enable)
        done.result(timeout=10)

    def _disable_profiling(self) -> None:
        self.profiling = False  # other threads drop the hook at their next event
        threading.setprofile(None)
        sys.setprofile(None)

    # -- counting --------------------------------------------------------------------------

    def count(self, run: Callable[[], object], requests: int) -> HopCount:
        """Run ``run`` (which serves ``requests`` requests) and count its wake-ups."""
        self._reset()
        self._enable_profiling()
        self.counting = True
        try:
            run()
        finally:
            self.counting = False
            self._disable_profiling()
        result = self._tally(requests)
        self._reset()
        return result

    def _tally(self, requests: int) -> HopCount:
        budget: dict[int, int] = {}
        receiver_is_loop: dict[int, bool] = {}
        for key, senders in self.signals.items():
            obj = self.keep[key]
            if type(obj) is _queue.SimpleQueue:
                # Its get() runs in C, often in a thread that is not profiled: what was
                # taken out is what was put in minus what is left.
                budget[key] = max(0, len(senders) - obj.qsize())
                receiver_is_loop[key] = False
                continue
            receivers = self.receives.get(key, [])
            matched_signals = sum(1 for s in senders if any(r != s for r, _ in receivers))
            matched_receives = sum(1 for r, _ in receivers if any(s != r for s in senders))
            budget[key] = min(matched_signals, matched_receives)
            loops = sum(1 for _, is_loop in receivers if is_loop)
            receiver_is_loop[key] = loops * 2 > len(receivers)
        counts = {_TO_LOOP: 0, _TO_THREAD: 0}
        sites: dict[str, int] = defaultdict(int)
        for record in self.records:
            crossing = [id(p) for p in record.parts if budget.get(id(p), 0) > 0]
            where = record.unconditional
            if where is None and crossing:
                where = _TO_LOOP if receiver_is_loop[crossing[0]] else _TO_THREAD
            if where is not None:
                counts[where] += 1
                if self.sites:
                    sites[f"{where}: {record.site}"] += 1
            for key in crossing:
                budget[key] -= 1
        return HopCount(requests, counts[_TO_THREAD], counts[_TO_LOOP], dict(sites))
