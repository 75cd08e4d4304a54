"""A leak check for the cross-thread toolkit's tests (``test_handoff``, ``test_workers``,
``test_loop_thread``): every thread a test starts has ended shortly after it.

Import :func:`no_thread_leaks` into a test module; it is autouse there.
"""

from __future__ import annotations

import threading
import time
from typing import Iterator

import pytest

__all__ = ["DEADLINE", "no_thread_leaks"]

#: How long a test's threads get to end, and the bound on every wait in those tests.
DEADLINE = 5.0
# Library thread pools shared by every test (trio's thread cache, anyio's workers on
# asyncio): their idle threads are theirs to reap, not leaks of the code under test.
_SHARED_POOLS = ("Trio thread", "AnyIO worker thread")


@pytest.fixture(autouse=True)
def no_thread_leaks() -> Iterator[None]:
    before = set(threading.enumerate())
    yield

    def left() -> list[threading.Thread]:
        return [
            t
            for t in threading.enumerate()
            if t not in before and t.is_alive() and not t.name.startswith(_SHARED_POOLS)
        ]

    deadline = time.monotonic() + DEADLINE
    while left() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not left(), f"threads left behind: {left()}"
