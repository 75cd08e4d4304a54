"""Worker threads do not outlive their use: a WsgiToAsgi pool's threads leave when the
event loop they served is closed, or when they have been idle long enough, and the
pool still runs every call given to it while threads come and go.
"""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, cast

import pytest

from bridge import WsgiToAsgi
from bridge.workers import DaemonPool

from .asgi_driver import request

_DEADLINE = 10.0


def bridge_workers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "bridge-wsgi-worker"]


def wait_for_no_workers(besides: set[threading.Thread]) -> None:
    deadline = time.monotonic() + _DEADLINE
    while set(bridge_workers()) - besides and time.monotonic() < deadline:
        time.sleep(0.02)
    left = set(bridge_workers()) - besides
    assert not left, f"{len(left)} worker thread(s) outlived their event loop"


def hello(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    time.sleep(0.01)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]


def test_threads_leave_when_their_loop_is_closed() -> None:
    """Ten asyncio.run() calls with one adapter (a script, a notebook, a test suite):
    afterwards no worker thread is left."""
    before = set(bridge_workers())  # other tests' loops may still run
    adapter = WsgiToAsgi(hello, max_threads=4)

    async def burst() -> None:
        exchanges = await asyncio.gather(*(request(adapter) for _ in range(6)))
        assert all(e.body == b"hello" for e in exchanges)

    for _ in range(10):
        asyncio.run(burst())
    wait_for_no_workers(before)


def test_idle_threads_leave_and_come_back() -> None:
    pool = DaemonPool(3, idle_exit=0.2, poll=0.05)
    # The casts: mypy cannot type a lambda's default argument on its own.
    results = [pool.submit(cast(Callable[[], int], lambda i=i: i * 2)) for i in range(9)]
    assert [f.result(_DEADLINE) for f in results] == [i * 2 for i in range(9)]
    deadline = time.monotonic() + _DEADLINE
    while pool.threads and time.monotonic() < deadline:
        time.sleep(0.02)
    assert pool.threads == 0
    assert pool.submit(lambda: "again").result(_DEADLINE) == "again"


@pytest.mark.parametrize("idle_exit", [0.0, 0.01, 60.0])
def test_every_call_runs_while_threads_come_and_go(idle_exit: float) -> None:
    """Submitters on several threads, calls of mixed length, threads leaving as soon
    as they find no work: no call is stranded in the queue, and never more threads
    than the pool's size."""
    size = 4
    pool = DaemonPool(size, idle_exit=idle_exit, poll=0.001)
    running = 0
    most = 0
    guard = threading.Lock()

    def job(i: int) -> int:
        nonlocal running, most
        with guard:
            running += 1
            most = max(most, running)
        time.sleep(0.002 if i % 7 == 0 else 0)
        with guard:
            running -= 1
        return i

    def submit_some(base: int) -> list[int]:
        futures = []
        for i in range(base, base + 200):
            futures.append(pool.submit(cast(Callable[[], int], lambda i=i: job(i))))
            if i % 25 == 0:
                time.sleep(0.005)  # let the pool go idle now and then
        return [f.result(_DEADLINE) for f in futures]

    with ThreadPoolExecutor(4) as submitters:
        done = list(submitters.map(submit_some, range(0, 800, 200)))
    assert sorted(x for batch in done for x in batch) == list(range(800))
    assert most <= size
    assert pool.threads <= size
