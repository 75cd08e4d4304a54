"""An ASGI app through AsgiToWsgi, for gunicorn, waitress and werkzeug: the routes of
:mod:`.wsgi_side`, streams as Starlette ``StreamingResponse`` generators whose ``finally``
is counted, and a lifespan that needs its shutdown to run before the interpreter's exit
(:class:`.tracking.LifespanWork`)."""

from __future__ import annotations

import json
from typing import Any, AsyncIterator

import anyio
from starlette.responses import StreamingResponse

from bridge import AsgiToWsgi

from . import tracking
from .tracking import LifespanWork, Tracked, track
from .wsgi_side import CHUNK, STREAM_CHUNKS


async def _json(send: Any, data: Any) -> None:
    body = json.dumps(data).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _stream(tracked: Tracked, fail_after: int | None) -> AsyncIterator[bytes]:
    tracking.bump("stream_started")
    try:
        for index in range(STREAM_CHUNKS):
            if fail_after is not None and index == fail_after:
                raise RuntimeError("the app failed in the middle of its stream")
            yield bytes([65 + index % 26]) * CHUNK
            await anyio.sleep(0.005)
        del tracked
    finally:
        tracking.bump("stream_finally")


async def _lifespan(receive: Any, send: Any) -> None:
    work = LifespanWork()
    await receive()
    work.startup()
    await send({"type": "lifespan.startup.complete"})
    await receive()
    await work.shutdown()
    await send({"type": "lifespan.shutdown.complete"})


async def asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    path = scope["path"]
    if path == "/health":
        await _json(send, {"ok": True})
        return
    if path == "/stats":
        await _json(send, tracking.stats())
        return
    tracked = track(path)
    if path == "/small":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})
    elif path == "/echo":
        chunks = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        headers = [(b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
    elif path in ("/stream", "/error-mid"):
        # The object stays in this frame too, so it lives as long as an exception raised
        # through here does (its traceback holds the frame).
        response = StreamingResponse(_stream(tracked, 3 if path == "/error-mid" else None))
        await response(scope, receive, send)
    elif path == "/stream-then-raise":
        # Plain ASGI: streams until send() fails (its client left), then fails itself.
        await send({"type": "http.response.start", "status": 200, "headers": []})
        tracking.bump("stream_started")
        try:
            for _ in range(STREAM_CHUNKS):
                try:
                    await send({"type": "http.response.body", "body": b"s" * CHUNK, "more_body": True})
                except Exception as exc:
                    raise RuntimeError("the app failed after its client left") from exc
                await anyio.sleep(0.005)
            await send({"type": "http.response.body", "body": b""})
        finally:
            tracking.bump("stream_finally")
    elif path == "/error-before":
        raise RuntimeError("the app failed before its response")
    else:
        await send({"type": "http.response.start", "status": 404, "headers": [(b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})


app = AsgiToWsgi(asgi_app, lifespan="on", shutdown_timeout=10.0)
