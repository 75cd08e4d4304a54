"""WsgiToAsgi's request body, received on the event loop before the app gets a thread.

A WSGI app reads its body with blocking calls, so a body that streams in while the app
runs holds one of the adapter's threads for as long as the client takes to send it: a
few dozen slow uploads would take every thread, and every other request would wait. As
a reverse proxy's request buffering does, the body is therefore received first, in
memory up to ``memory`` bytes and on a temporary file beyond it, up to ``spool`` bytes.
The file is created, written and rewound in a thread of anyio's (never on the loop), in
writes of at least :data:`WRITE_SIZE`, so a request holds at most that much in memory
while it spools. A body longer than ``spool`` (known from its Content-Length, or found
while receiving a chunked one) streams to the app as before, after what was received.
"""

from __future__ import annotations

import tempfile
from typing import IO, Any, Callable, Tuple

import anyio
import anyio.lowlevel
import anyio.to_thread

from ._types import Receive
from .errors import BodyTooLargeError, InvalidScopeError
from .http import parse_http_request

__all__ = ["WRITE_SIZE", "MemoryBudget", "Received", "request_chunk", "receive_body", "receive_start"]

#: Bytes gathered in memory before each write to the spool file.
WRITE_SIZE = 256 * 1024
#: Bytes read from the spool file at a time, when a streamed body resumes after it.
_READ_SIZE = 256 * 1024


class MemoryBudget:
    """The bytes of request bodies an adapter holds in memory, over all its requests:
    those received before the app runs, from the first byte until the request ends
    (a body waits in memory for a free thread too). Past ``limit``, bodies go to
    temporary files instead, chunk by chunk, so that a crowd of slow uploaders cannot
    grow memory without bound. Touched on event loops only."""

    __slots__ = ("held", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0

    def take(self, size: int) -> None:
        self.held += size

    def give(self, size: int) -> None:
        self.held -= size

    @property
    def over(self) -> bool:
        return self.held >= self.limit


class Received:
    """The part of a request body that arrived before the app runs: in ``data`` (of
    which ``held`` bytes count against the budget until the caller gives them back),
    or on ``file`` (a temporary file at its start, which the caller must close),
    ``size`` bytes in all; ``complete`` unless more is still to come from the server."""

    __slots__ = ("complete", "data", "file", "held", "size")

    def __init__(self, data: bytes, file: IO[bytes] | None, size: int, complete: bool, held: int = 0) -> None:
        self.data = data
        self.file = file
        self.size = size
        self.complete = complete
        self.held = held

    def chained(self, rest: Callable[[], Tuple[bytes, bool]]) -> Callable[[], Tuple[bytes, bool]]:
        """A ``pull`` for :class:`bridge.wsgi_streams.StreamingInput`: the spooled part
        from the file (in the worker thread, which reads), then ``rest``."""
        file = self.file
        assert file is not None

        def pull() -> Tuple[bytes, bool]:
            if not file.closed:
                data = file.read(_READ_SIZE)
                if data:
                    return data, True
                file.close()
            return rest()

        return pull


def request_chunk(message: Any) -> Tuple[bytes, bool] | None:
    """The ``body`` and ``more_body`` of what ``receive()`` returned, when it is an
    ``http.request`` message; None for ``http.disconnect``. Anything else breaks the
    ASGI spec: InvalidScopeError, naming what was wrong."""
    try:
        kind = message.get("type")
    except AttributeError:
        raise InvalidScopeError(
            f"receive() must return an ASGI message (a dict), got {type(message).__name__}"
        ) from None
    if kind == "http.request":
        body = message.get("body", b"")
        more = message.get("more_body", False)
        if type(body) is bytes and type(more) is bool:
            return body, more
        # The slow path: bytes-like bodies are copied, anything else is refused,
        # naming the field (a str body must never reach the app).
        return parse_http_request(message)
    if kind == "http.disconnect":
        return None
    raise InvalidScopeError(f"expected http.request or http.disconnect from receive(), got {kind!r}")


async def receive_start(
    receive: Receive,
    *,
    length: int | None,
    memory: int,
    spool: int,
    max_body: int | None,
    budget: MemoryBudget,
) -> Received | None:
    """What of a request's body is here before the app gets a thread: its first
    message's, and when more is to come, up to ``spool`` bytes received ahead
    (:func:`receive_body`: a slow upload holds no thread meanwhile). ``length`` is its
    Content-Length; bytes past it are dropped. None if the client left first; raises
    BodyTooLargeError past ``max_body``, InvalidScopeError for a message that is not
    the spec's."""
    # (The message is not named here: it would keep a second reference to the body for
    # the whole request, a slow crowd's first chunks while they wait for threads.)
    got = request_chunk(await receive())
    if got is None:
        return None  # the client left before the request began: nothing to run
    body, more = got
    del got
    if max_body is not None and length is None and len(body) > max_body:
        raise BodyTooLargeError(max_body)
    if more and spool and (length is None or len(body) < length <= spool):
        # Handed over in a list, not named here: this frame would otherwise hold the
        # first chunk (often the largest) until the whole body is in, spilled or not.
        first = [body] if body else []
        del body
        return await receive_body(
            receive, first, length=length, memory=memory, spool=spool, max_body=max_body, budget=budget
        )
    if length is not None and len(body) >= length:
        body, more = body[:length], False  # the declared length is here; ignore anything beyond
    return Received(body, None, len(body), not more)


def _write(file: IO[bytes], parts: list[bytes]) -> None:
    file.writelines(parts)


def _rewind(file: IO[bytes], parts: list[bytes]) -> None:
    file.writelines(parts)
    file.flush()
    file.seek(0)


async def receive_body(
    receive: Receive,
    parts: list[bytes],
    *,
    length: int | None,
    memory: int,
    spool: int,
    max_body: int | None,
    budget: MemoryBudget,
) -> Received | None:
    """Receive the rest of a body whose first messages brought ``parts`` (and said more
    is to come), up to ``length`` bytes (its Content-Length; None: chunked, up to
    ``spool`` bytes, then the rest streams); None if the client left meanwhile.
    ``parts`` is this function's from then on: it empties the list as it writes.

    In memory up to ``memory`` bytes while ``budget`` allows; past either, on a file.
    Bytes past ``length`` are never kept. Raises BodyTooLargeError when a chunked body
    passes ``max_body``, and InvalidScopeError for a message that breaks the ASGI spec.
    """
    size = pending = sum(map(len, parts))
    # A declared length that fits in memory and in the budget: counted whole, at once,
    # so its chunks go to memory without accounting of their own (a 1 MiB upload is 16
    # or more of them). The budget then holds what this body will hold, a little early.
    counted = length is not None and length <= memory and budget.held + length < budget.limit
    if counted:
        assert length is not None
        pending = length
    budget.take(pending)
    file: IO[bytes] | None = None
    more = True
    try:
        while more and (length is None or size < length):
            if length is None and size > spool:
                break  # too long to hold: the rest streams to the app as it reads
            got = request_chunk(await receive())
            if got is None:
                return None
            chunk, more = got
            del got  # (it would hold the chunk after it was written, while receive() waits)
            if length is not None and size + len(chunk) > length:
                chunk, more = chunk[: length - size], False
            if max_body is not None and size + len(chunk) > max_body:
                raise BodyTooLargeError(max_body)
            if not chunk:
                await anyio.lowlevel.checkpoint()  # a receive() that never suspends
                continue
            parts.append(chunk)
            size += len(chunk)
            if counted:
                continue
            pending += len(chunk)
            budget.take(len(chunk))
            del chunk  # parts has it, until it is written
            if file is None and (size > memory or budget.over):
                file = await anyio.to_thread.run_sync(tempfile.TemporaryFile)
            if file is not None and (pending >= WRITE_SIZE or budget.over):
                await anyio.to_thread.run_sync(_write, file, parts)
                budget.give(pending)
                parts.clear()  # (the caller's name for the list must not keep them)
                pending = 0
        if file is None:
            received = Received(b"".join(parts), None, size, not more or size == length, pending)
            pending = 0  # the caller's to give back
            return received
        await anyio.to_thread.run_sync(_rewind, file, parts)
        received = Received(b"", file, size, not more or size == length)
        file = None  # the caller's now
        return received
    finally:
        budget.give(pending)
        if file is not None:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(file.close)
