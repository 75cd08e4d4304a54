"""Apps that never end their response, for the shutdown tests of ``bridge serve``
(``tests/integration_cli/test_shutdown.py``): a client that keeps reading one of these
streams is what makes a graceful shutdown wait, until the server's timeout runs out.

Each stream sends a line at once, so a test knows the request is running, then one more
every 0.1 s for as long as the server lets it. ``/slow`` is a request that is in flight at
the stop signal and ends well within the timeout: it must still be answered. It prints a
line when it starts, so that a test knows when to send the signal.
"""

from __future__ import annotations

import itertools
import os
import time
from typing import Iterable, Iterator

import anyio

from bridge._types import Environ, Receive, Scope, Send, StartResponse

INTERVAL = 0.1
#: How long /slow takes.
SLOW = 0.5
SLOW_BODY = b"slow and complete\n"


def wsgi_endless(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """``/``: a short text answer (for readiness checks); any other path: an endless stream."""
    if environ["PATH_INFO"] == "/":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "3")])
        return [b"ok\n"]
    if environ["PATH_INFO"] == "/slow":
        print(f"slow request started in {os.getpid()}", flush=True)
        time.sleep(SLOW)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [SLOW_BODY]
    start_response("200 OK", [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache")])
    return _events()


def _events() -> Iterator[bytes]:
    for n in itertools.count():
        yield f"data: {n} from pid {os.getpid()}\n\n".encode()
        time.sleep(INTERVAL)


async def asgi_endless(scope: Scope, receive: Receive, send: Send) -> None:
    """The same for ASGI, with a lifespan whose shutdown prints a line (so a test sees
    whether it ran)."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                print(f"lifespan shutdown in {os.getpid()}", flush=True)
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["path"] == "/":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"3")]})
        await send({"type": "http.response.body", "body": b"ok\n"})
        return
    if scope["path"] == "/slow":
        print(f"slow request started in {os.getpid()}", flush=True)
        await anyio.sleep(SLOW)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": SLOW_BODY})
        return
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]}
    )
    for n in itertools.count():
        body = f"data: {n} from pid {os.getpid()}\n\n".encode()
        await send({"type": "http.response.body", "body": body, "more_body": True})
        await anyio.sleep(INTERVAL)
