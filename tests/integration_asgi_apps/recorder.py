"""A pure ASGI middleware that records, for requests carrying ``?token=...``, how the app's
task ended: whether it saw ``http.disconnect``, whether ``send()`` raised, and the exception.

It also answers ``/raw-boom`` (and ``/raw-exit``, with SystemExit) by raising before anything
is sent, outside of any framework's error middleware, so the exception reaches the WSGI
server through the bridge.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qs

from bridge._types import ASGIApp, Message, Receive, Scope, Send

from . import markers


class RawBoom(RuntimeError):
    pass


class Recorder:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        token = query.get("token", [None])[0]
        if scope["path"] == "/raw-boom":
            raise RawBoom(f"raw boom {token}")
        if scope["path"] == "/raw-exit":
            raise SystemExit(f"raw exit {token}")  # must not take the worker down
        if token is None:
            await self.app(scope, receive, send)
            return

        record: dict[str, Any] = {
            "path": scope["path"],
            "started": time.time(),
            "received": [],
            "saw_disconnect": False,
            "send_raised": None,
            "sent_body_bytes": 0,
        }
        markers.write_json(f"started-{token}", record)

        async def recording_receive() -> Message:
            message = await receive()
            record["received"].append(message["type"])
            if message["type"] == "http.disconnect":
                record["saw_disconnect"] = True
                record["disconnect_time"] = time.time()
            return message

        async def recording_send(message: Message) -> None:
            try:
                await send(message)
            except BaseException as exc:
                if record["send_raised"] is None:
                    record["send_raised"] = type(exc).__name__
                    record["send_raised_time"] = time.time()
                raise
            if message["type"] == "http.response.body":
                record["sent_body_bytes"] += len(message.get("body", b""))

        try:
            await self.app(scope, recording_receive, recording_send)
        except BaseException as exc:
            record["exception"] = f"{type(exc).__module__}.{type(exc).__qualname__}"
            raise
        else:
            record["exception"] = None
        finally:
            record["ended"] = time.time()
            markers.write_json(f"ended-{token}", record)
