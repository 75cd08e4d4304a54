"""The ASGI lifespan protocol, run by AsgiToWsgi on its event loop (WSGI has none).

Startup runs once per process on the same loop as the requests, so connection pools
the app opens belong to the loop that uses them; its ``state`` is copied into every
request scope. Shutdown runs on close or at interpreter exit, with a timeout.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future
from typing import Any

import anyio
from anyio.from_thread import BlockingPortal

from ._types import ASGIApp, Message
from .errors import LifespanError

__all__ = ["Lifespan"]

logger = logging.getLogger("bridge.lifespan")


class Lifespan:
    """Drives one app's lifespan scope. ``startup`` and ``shutdown`` are called from
    ordinary threads; everything else runs on the loop behind ``portal``."""

    def __init__(self, app: ASGIApp, *, mode: str, startup_timeout: float, shutdown_timeout: float) -> None:
        if mode not in ("auto", "on"):
            raise ValueError(f"lifespan mode must be 'auto', 'on' or 'off', got {mode!r}")
        self.app = app
        self.mode = mode
        self.startup_timeout = startup_timeout
        self.shutdown_timeout = shutdown_timeout
        self.state: dict[str, Any] = {}
        self.supported = False
        self._task: Future[None] | None = None
        self._portal: BlockingPortal | None = None
        self._outcome: Message | None = None
        self._error: BaseException | None = None
        self._returned = False
        self._foreign: str | None = None  # the first non-lifespan message the app sent

    # -- from a WSGI thread --------------------------------------------------------------

    def startup(self, portal: BlockingPortal) -> None:
        """Run lifespan startup; raise :class:`LifespanError` if the app failed it."""
        self._portal = portal
        portal.call(self._prepare)
        self._task = portal.start_task_soon(self._run, name="bridge lifespan")
        portal.call(self._wait, "startup", self.startup_timeout)
        outcome, error = self._outcome, self._error
        if outcome is not None and outcome["type"] == "lifespan.startup.complete":
            self.supported = True
            logger.info("ASGI lifespan startup complete")
            return
        if outcome is not None and outcome["type"] == "lifespan.startup.failed":
            message = outcome.get("message", "")
            raise LifespanError(f"the ASGI app's lifespan startup failed: {message or '(no message)'}")
        if self._foreign is not None:
            # Its task may wait forever on receive(): end it rather than keep it.
            task = self._task
            if task is not None:
                task.cancel()
            reason = f"it answered the lifespan scope with {self._foreign!r}, a message of another protocol"
            if self.mode == "auto":
                logger.info(
                    "the ASGI app does not support the lifespan protocol (%s); serving without it", reason
                )
                return
            raise LifespanError(f"the ASGI app does not support the lifespan protocol: {reason}")
        if error is None and self._returned:
            error = LifespanError("the app returned from the lifespan scope without completing startup")
        if error is not None and self.mode == "auto":
            logger.info(
                "the ASGI app does not support the lifespan protocol (%s: %s); serving without it",
                type(error).__name__,
                error,
            )
            return
        if error is not None:
            raise LifespanError(
                f"the ASGI app raised during lifespan startup: {type(error).__name__}: {error}"
            ) from error
        raise LifespanError(f"the ASGI app did not complete lifespan startup within {self.startup_timeout} s")

    def shutdown(self) -> None:
        """Run lifespan shutdown, if startup completed; failures are logged."""
        portal = self._portal
        if not self.supported or portal is None:
            return
        self.supported = False
        self._outcome = None
        try:
            portal.call(self._request_shutdown)
            portal.call(self._wait, "shutdown", self.shutdown_timeout)
        except Exception:
            logger.exception("ASGI lifespan shutdown could not run")
            return
        outcome = self._latest_outcome()
        if outcome is not None and outcome["type"] == "lifespan.shutdown.complete":
            logger.info("ASGI lifespan shutdown complete")
        elif outcome is not None:
            logger.error("the ASGI app's lifespan shutdown failed: %s", outcome.get("message", ""))
        elif self._error is not None:
            logger.error("the ASGI app raised during lifespan shutdown: %r", self._error)
        else:
            logger.error("the ASGI app did not complete lifespan shutdown within %s s", self.shutdown_timeout)

    def _latest_outcome(self) -> Message | None:
        # A method, not the attribute: the loop thread sets it while we wait.
        return self._outcome

    # -- on the loop ---------------------------------------------------------------------

    async def _prepare(self) -> None:
        self._changed = anyio.Event()
        self._shutdown_requested = anyio.Event()
        self._receives = 0

    async def _run(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": self.state}
        try:
            await self.app(scope, self._receive, self._send)
            self._returned = True
        except anyio.get_cancelled_exc_class():
            raise
        except BaseException as exc:
            self._error = exc
        finally:
            self._changed.set()

    async def _receive(self) -> Message:
        self._receives += 1
        if self._receives == 1:
            return {"type": "lifespan.startup"}
        await self._shutdown_requested.wait()
        if self._receives == 2:
            return {"type": "lifespan.shutdown"}
        await anyio.sleep_forever()
        raise AssertionError("unreachable")  # pragma: no cover

    async def _send(self, message: Message) -> None:
        kind = message.get("type")
        if kind not in (
            "lifespan.startup.complete",
            "lifespan.startup.failed",
            "lifespan.shutdown.complete",
            "lifespan.shutdown.failed",
        ):
            # An app that does not look at scope["type"] answers as if to a request:
            # it does not speak lifespan. Say so now, whatever it does with the error.
            if self._foreign is None:
                self._foreign = str(kind)
                self._changed.set()
            raise LifespanError(f"unexpected lifespan message from the app: {kind!r}")
        self._outcome = message
        self._changed.set()

    async def _request_shutdown(self) -> None:
        self._changed = anyio.Event()
        self._shutdown_requested.set()

    async def _wait(self, phase: str, timeout: float) -> None:
        with anyio.move_on_after(timeout):
            await self._changed.wait()
