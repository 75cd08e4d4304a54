"""A raw ASGI app for ``test_limits_and_lies``, served through ``AsgiToWsgi`` (``app``)
with ``max_body_size=LIMIT`` and a short ``disconnect_grace``; every body streams to
the app (``preload_body=0``).

* ``GET /health``: 200, ``{"pid": ...}``.
* ``POST /upload?token=T``: reads the body; answers its length, or, when the client
  left (or the body was too large), tries to answer anyway (``send()`` raises then);
  ``&never=1``: after the body, never answers (waits until it is cancelled). Writes
  ``started-T`` when it begins and ``ended-T`` when its task ends (see :mod:`.markers`).
* ``GET /short``: declares ``Content-Length: 1000`` and sends 10 bytes.
* ``GET /long``: declares ``Content-Length: 5`` and sends ``hello world``.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any
from urllib.parse import parse_qs

import anyio

from bridge import AsgiToWsgi
from bridge._types import Receive, Scope, Send

from . import markers

LIMIT = 100_000
GRACE = 0.5


async def _answer(
    send: Send, status: int, data: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers or []})
    await send({"type": "http.response.body", "body": data})


async def _upload(scope: Scope, receive: Receive, send: Send) -> None:
    query = parse_qs(scope["query_string"].decode("latin-1"))
    token = query["token"][0]
    record: dict[str, Any] = {"received": 0, "last": None, "send_raised": None, "cancelled": False}
    markers.write_json(f"started-{token}", {"time": time.time()})
    try:
        while True:
            message = await receive()
            record["last"] = message["type"]
            record["received"] += len(message.get("body", b""))
            if message["type"] != "http.request" or not message.get("more_body", False):
                break
        if "never" in query:
            await anyio.sleep(3600)
        try:
            await _answer(send, 200, str(record["received"]).encode())
        except OSError as exc:
            record["send_raised"] = type(exc).__name__
            raise
    except anyio.get_cancelled_exc_class():
        record["cancelled"] = True
        raise
    finally:
        record["ended"] = time.time()
        markers.write_json(f"ended-{token}", record)


async def limits(scope: Scope, receive: Receive, send: Send) -> None:
    assert scope["type"] == "http", scope["type"]
    path = scope["path"]
    if path == "/health":
        await _answer(send, 200, json.dumps({"pid": os.getpid()}).encode())
    elif path == "/upload":
        await _upload(scope, receive, send)
    elif path == "/short":
        await _answer(send, 200, b"x" * 10, [(b"content-length", b"1000")])
    elif path == "/long":
        await _answer(send, 200, b"hello world", [(b"content-length", b"5")])
    else:
        await _answer(send, 404, b"not found\n")


app = AsgiToWsgi(
    limits,
    backend=markers.BACKEND,
    lifespan="off",
    max_body_size=LIMIT,
    disconnect_grace=GRACE,
    preload_body=0,
)
