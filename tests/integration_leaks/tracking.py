"""What the app processes count about themselves, for the introspection route.

Per-request objects are :class:`Tracked` instances in a WeakSet, each with a
``weakref.finalize``; streaming generators count their starts and their ``finally`` blocks.
The lifespan records startup and shutdown as marker files (``startup-<pid>``,
``shutdown-<pid>``) in the directory of ``LEAKS_MARKERS``.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import threading
import time
import weakref
from pathlib import Path
from typing import Any

_lock = threading.Lock()
_live: weakref.WeakSet[Tracked] = weakref.WeakSet()
counters = {"created": 0, "finalized": 0, "stream_started": 0, "stream_finally": 0}
#: Routes whose per-request object only the cycle collector freed: something held it in
#: a reference cycle (an exception's traceback, usually) after the request ended.
freed_by_gc: list[str] = []
_collecting: list[int] = []  # the thread running the cycle collector, while it runs


def _on_gc(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _collecting.append(threading.get_ident())
    elif _collecting:
        _collecting.pop()


gc.callbacks.append(_on_gc)


class Tracked:
    """One per request: held by the app's frames, generators and response objects."""

    def __init__(self, route: str) -> None:
        self.route = route
        self.payload = bytearray(1024)  # something worth leaking


def _finalized(route: str) -> None:
    bump("finalized")
    if _collecting and _collecting[-1] == threading.get_ident():
        with _lock:
            freed_by_gc.append(route)


def bump(name: str) -> None:
    with _lock:
        counters[name] += 1


def track(route: str) -> Tracked:
    obj = Tracked(route)
    with _lock:
        _live.add(obj)
        counters["created"] += 1
    weakref.finalize(obj, _finalized, route)
    return obj


def stats() -> dict[str, Any]:
    """The process's own state, as the introspection route answers it."""
    live_without_gc = len(_live)
    live_routes = sorted(obj.route for obj in list(_live))
    gc.collect()
    live_after_gc = len(_live)
    fds = len(os.listdir("/proc/self/fd"))
    with _lock:
        snapshot = dict(counters)
        by_gc = sorted(freed_by_gc)
    return {
        "pid": os.getpid(),
        "threads": threading.active_count(),
        "thread_names": sorted(thread.name for thread in threading.enumerate()),
        "fds": fds,
        "live_without_gc": live_without_gc,
        "live_routes": live_routes,
        "live_after_gc": live_after_gc,
        "freed_by_gc": by_gc,
        **snapshot,
    }


# -- lifespan markers -----------------------------------------------------------------------


def marker_dir() -> Path:
    path = Path(os.environ.get("LEAKS_MARKERS", "/nonexistent-leaks-markers"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_marker(phase: str, **extra: Any) -> None:
    pid = os.getpid()
    (marker_dir() / f"{phase}-{pid}").write_text(json.dumps({"pid": pid, "time": time.time(), **extra}))


class LifespanWork:
    """What a real app's lifespan does that the interpreter's exit gets in the way of: a
    non-daemon thread started at startup and stopped at shutdown, and a shutdown step on
    asyncio's default executor (``run_in_executor``, as ``to_thread`` and ``getaddrinfo``)."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.stop.wait, name="app-lifespan-worker", daemon=False)

    def startup(self) -> None:
        self.thread.start()
        write_marker("startup")

    async def shutdown(self) -> None:
        self.stop.set()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.thread.join, 5.0)
        alive = self.thread.is_alive()
        await loop.run_in_executor(None, lambda: write_marker("shutdown", thread_alive=alive))
