"""An event loop in a background thread, reached through an anyio blocking portal.

Started lazily on first use, so that a WSGI server that imports the app and then
forks (gunicorn ``--preload``) gets a fresh loop in each worker: threads do not
survive ``fork()``. The thread is a daemon, so a loop that is never closed cannot
hold up interpreter exit. (Fork and exit handling: ``docs/internals.md``.)
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from typing import Any

import anyio
from anyio.from_thread import BlockingPortal

from .errors import BridgeError
from .handoff import LoopRef

__all__ = ["LoopThread"]

_START_TIMEOUT = 30.0


class LoopThread:
    """One event loop (asyncio or trio) running in a daemon thread."""

    def __init__(self, backend: str = "asyncio", backend_options: dict[str, Any] | None = None) -> None:
        self.backend = backend
        self.backend_options = backend_options or {}
        self.portal: BlockingPortal | None = None
        # On asyncio, the loop itself: the hot path submits to it directly, since a
        # portal call waits for the loop to acknowledge (a second round trip).
        self.asyncio_loop: asyncio.AbstractEventLoop | None = None
        # How other threads reach the loop (set its events, call into it).
        self.loop_ref: LoopRef | None = None
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()

    @property
    def running(self) -> bool:
        thread = self._thread
        return (
            self.portal is not None and thread is not None and thread.is_alive() and self._pid == os.getpid()
        )

    def forked(self) -> bool:
        """True in a child process that inherited this object but not its thread."""
        return self._pid != os.getpid()

    def start(self) -> BlockingPortal:
        """Start the loop and return its portal. Not thread-safe: callers hold a lock."""
        self._pid = os.getpid()
        ready = threading.Event()
        failure: list[BaseException] = []

        async def main() -> None:
            async with BlockingPortal() as portal:
                if self.backend == "asyncio":
                    self.asyncio_loop = asyncio.get_running_loop()
                self.loop_ref = LoopRef()
                self.portal = portal
                ready.set()
                await portal.sleep_until_stopped()

        def run() -> None:
            try:
                anyio.run(main, backend=self.backend, backend_options=self.backend_options)
            except BaseException as exc:
                failure.append(exc)
            finally:
                self.portal = None
                self.asyncio_loop = None
                ready.set()

        thread = threading.Thread(target=run, name=f"bridge-{self.backend}-loop", daemon=True)
        self._thread = thread
        thread.start()
        if not ready.wait(_START_TIMEOUT) or self.portal is None:
            raise BridgeError(
                f"could not start the {self.backend} event loop thread"
                + (f": {failure[0]!r}" if failure else "")
            ) from (failure[0] if failure else None)
        return self.portal

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the loop, cancelling what still runs on it, and wait for the thread."""
        portal, thread = self.portal, self._thread
        if portal is None or thread is None or self.forked():
            return
        if thread is threading.current_thread():
            # On the loop itself (a hook running there): the portal takes calls only
            # from other threads, so one carries the stop; the loop ends once the
            # current callback returns.
            threading.Thread(
                target=_stop_portal, args=(portal,), name="bridge-loop-stop", daemon=True
            ).start()
        else:
            _stop_portal(portal)
            thread.join(timeout)
        self.portal = None
        self.asyncio_loop = None
        self._thread = None


def _stop_portal(portal: BlockingPortal) -> None:
    # Already stopping: anyio's RunFinishedError (4.11 and later) is a RuntimeError.
    with contextlib.suppress(RuntimeError):
        portal.call(portal.stop, True)
