"""Small WSGI apps, iterables and ASGI drivers shared by the WsgiToAsgi tests."""

from __future__ import annotations

import threading
from typing import Any, Callable, Iterable, Iterator

import anyio

from bridge._types import ASGIApp, Message, Scope

from .asgi_driver import Client

# Every wait inside a WSGI app or a test thread is bounded by this, so a broken
# adapter makes a test fail instead of hanging.
WAIT = 5.0


class Tracked:
    """A response iterable with ``close()`` that records how the adapter used it.

    ``source`` is any iterable (a list, or a generator that may raise or block).
    """

    def __init__(self, source: Iterable[Any] = (), *, close_raises: BaseException | None = None) -> None:
        self._source: Iterator[Any] = iter(source)
        self.next_calls = 0
        self.close_calls = 0
        self.closed = threading.Event()
        self.close_thread: int | None = None
        self.close_raises = close_raises
        self._lock = threading.Lock()

    def __iter__(self) -> Tracked:
        return self

    def __next__(self) -> Any:
        with self._lock:
            self.next_calls += 1
        return next(self._source)

    def close(self) -> None:
        with self._lock:
            self.close_calls += 1
        self.close_thread = threading.get_ident()
        self.closed.set()
        if self.close_raises is not None:
            raise self.close_raises


def endless(chunk: bytes = b"x") -> Iterator[bytes]:
    while True:
        yield chunk


def app_returning(
    body: Any, status: str = "200 OK", headers: list[tuple[str, str]] | None = None
) -> Callable[[dict[str, Any], Any], Any]:
    """A WSGI app that calls start_response and returns ``body`` (called if callable)."""

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        start_response(status, list(headers or [("Content-Type", "text/plain")]))
        return body() if callable(body) else body

    return app


def scripted_client(messages: list[Message], **kw: Any) -> Client:
    """A driver Client whose receive() returns exactly ``messages`` first."""
    client = Client(**kw)
    client.pending = list(messages)
    return client


def body_messages(client: Client) -> list[tuple[bytes, bool]]:
    return [(bytes(m.get("body", b"")), bool(m.get("more_body", False))) for m in client.exchange.bodies]


async def run_lifespan(app: ASGIApp, messages: list[Message], *, timeout: float = WAIT) -> list[Message]:
    pending = list(messages)
    sent: list[Message] = []

    async def receive() -> Message:
        assert pending, f"the app called receive() again after {sent!r}"
        return pending.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    scope: Scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": {}}
    with anyio.fail_after(timeout):
        await app(scope, receive, send)
    return sent


async def wait_thread_event(event: threading.Event, timeout: float = WAIT) -> bool:
    """Wait for a threading.Event from async code without blocking the loop."""
    return await anyio.to_thread.run_sync(event.wait, timeout)
