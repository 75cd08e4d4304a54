"""What the property tests use to watch the app's objects die (both directions)."""

from __future__ import annotations

import gc
import time
import weakref
from typing import Any


def wait_dead(refs: list[weakref.ref[Any]], *, collect: bool, timeout: float = 1.0) -> list[weakref.ref[Any]]:
    """The referents still alive after ``timeout``: a worker thread may still be
    leaving bridge's code (holding a frame) just after the request returned."""
    deadline = time.monotonic() + timeout
    while True:
        if collect:
            gc.collect()
        alive = [r for r in refs if r() is not None]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.005)


def cycle_garbage() -> str:
    """What the collector finds unreachable: the frames and exceptions in the cycles."""
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.collect()
        found = []
        for obj in gc.garbage:
            if type(obj).__name__ == "frame":
                found.append(f"frame {obj.f_code.co_name} ({obj.f_code.co_filename.rsplit('/', 1)[-1]})")
            elif isinstance(obj, BaseException) or type(obj).__module__.startswith("bridge"):
                found.append(type(obj).__name__)
        return ", ".join(sorted(set(found)))
    finally:
        gc.garbage.clear()
        gc.set_debug(0)
