"""Pin the Python calls into bridge's own code that one hello request costs.

Why: ``test_hops.py`` pins the wake-ups, the dominant cost; this pins the interpreter
work around them, which nothing else holds. Restructuring the core into state machines
and features added later (each small) made the in-process hello 10 to 20 % slower with
the wake-ups unchanged: an opcode count put the difference in a few hundred more
bytecodes per request, spread over new calls. Both threads run one after the other on a
hello, so every call is on the critical path.

Counted: ``call`` events of Python functions defined in ``bridge/`` (a profile hook on
every thread started after it is set, and on this one), per request, over sequential
hello requests as the in-process benchmark serves them (its apps and its synthetic
servers, which check every response), after a warm-up; the least over three batches (a worker thread that
wakes from its idle poll adds calls to one batch). Library code (asyncio, anyio) is not
counted: it differs between Python versions; bridge's own calls do not.

When a change deliberately adds or removes calls: run this test, read the counts from
its failure message, say in the commit message why the calls are worth it (or what was
saved), and update ``PINS``. A count that varies from run to run is a finding to
report, not a pin to loosen.
"""

from __future__ import annotations

import asyncio
import collections
import os
import sys
import threading
from types import FrameType
from typing import Any, Callable, Iterable

import pytest

import bridge
from benchmarks import scenarios_a2w as a2w
from benchmarks import scenarios_w2a as w2a
from bridge import AsgiToWsgi, WsgiToAsgi
from bridge.wsgi_streams import ErrorStream

BRIDGE_DIR = os.path.dirname(bridge.__file__) + os.sep
WARM_UP = 50
BATCH = 40

#: Calls into bridge's code per hello request, all threads together: the least and the
#: most. ``AsgiToWsgi``'s WSGI thread calls the hand-off's wait only when the app's
#: events are not there yet (a race by design, as its wake-ups in test_hops.py).
PINS = {
    "w2a": (54, 54),
    "a2w": (42, 43),
}


_FLUSH = ErrorStream.flush.__code__


class CallCounter:
    """Counts calls of functions defined in bridge/, on every thread it is installed on."""

    def __init__(self) -> None:
        self.calls: collections.Counter[str] = collections.Counter()
        self.total = 0

    def hook(self, frame: FrameType, event: str, arg: Any) -> None:
        if event == "call" and frame.f_code.co_filename.startswith(BRIDGE_DIR):
            if frame.f_code is _FLUSH:
                # Not counted: besides the worker's, io's finalizer flushes the request's
                # error stream when its last reference goes, which may be in another batch
                # (seen on Python 3.9, under load or coverage: 1.9 to 1.975 per request).
                return
            self.total += 1
            self.calls[f"{os.path.basename(frame.f_code.co_filename)}:{frame.f_code.co_name}"] += 1

    def __enter__(self) -> CallCounter:
        threading.setprofile(self.hook)
        sys.setprofile(self.hook)
        return self

    def __exit__(self, *exc_info: object) -> None:
        sys.setprofile(None)
        threading.setprofile(None)


def _per_request(counter: CallCounter, run_batch: Callable[[int], None]) -> tuple[float, list[str]]:
    """The least calls per request over three batches, and where they went (that batch's)."""
    best: tuple[float, list[str]] | None = None
    for _ in range(3):
        counter.total = 0
        counter.calls.clear()
        run_batch(BATCH)
        per_request = counter.total / BATCH
        if best is None or per_request < best[0]:
            where = [f"{name} {count / BATCH:g}" for name, count in counter.calls.most_common()]
            best = (per_request, where)
    assert best is not None
    return best


def _assert_pinned(direction: str, counter: CallCounter, run_batch: Callable[[int], None]) -> None:
    run_batch(WARM_UP)
    calls, where = _per_request(counter, run_batch)
    low, high = PINS[direction]
    assert low <= calls <= high, f"{direction} hello: {calls:g} calls into bridge per request; {where}"


def test_w2a_hello_calls() -> None:
    """The benchmark's own hello app and synthetic ASGI server (every response checked)."""
    adapter = WsgiToAsgi(w2a.hello)

    async def requests(n: int) -> None:
        for _ in range(n):
            await w2a.one_request(adapter, [b""], 0, len(w2a.HELLO), w2a.HELLO)

    with CallCounter() as counter:
        loop = asyncio.new_event_loop()  # one loop for all batches: its workers stay
        try:
            _assert_pinned(
                "w2a", counter, lambda n: loop.run_until_complete(asyncio.wait_for(requests(n), 30))
            )
        finally:
            loop.close()


def test_a2w_hello_calls() -> None:
    """The benchmark's own hello app and synthetic WSGI server (every response checked)."""
    with CallCounter() as counter:
        adapter = AsgiToWsgi(a2w.hello, lifespan="off")

        def requests(n: int) -> None:
            for _ in range(n):
                a2w.one_request(adapter, a2w._empty, 0, len(a2w.HELLO), a2w.HELLO, {})

        try:
            _assert_pinned("a2w", counter, requests)
        finally:
            adapter.close()


@pytest.fixture(autouse=True)
def _no_profiler_left() -> Iterable[None]:
    yield
    assert sys.getprofile() is None
