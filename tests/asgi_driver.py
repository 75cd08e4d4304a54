"""An in-memory ASGI server for adapter tests: it feeds receive() and records send().

It behaves like a real server in the ways the adapter depends on: after the request
body, receive() blocks until the response is complete (or the test says the client
left) and then returns http.disconnect; send() can be made to raise OSError (ASGI
spec 2.4) or to silently drop messages after a disconnect (spec 2.3, uvicorn).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import anyio

from bridge._types import ASGIApp, Message, Scope


def http_scope(
    path: str = "/",
    *,
    method: str = "GET",
    query_string: bytes = b"",
    headers: list[tuple[bytes, bytes]] | None = None,
    root_path: str = "",
    raw_path: bytes | None = None,
    **extra: Any,
) -> Scope:
    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": raw_path if raw_path is not None else path.encode("utf-8"),
        "query_string": query_string,
        "root_path": root_path,
        "headers": headers if headers is not None else [(b"host", b"testserver")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    scope.update(extra)
    return scope


@dataclass
class Exchange:
    """What the app sent, decoded for assertions."""

    messages: list[Message] = field(default_factory=list)

    @property
    def start(self) -> Message:
        starts = [m for m in self.messages if m["type"] == "http.response.start"]
        assert len(starts) == 1, self.messages
        return starts[0]

    @property
    def status(self) -> int:
        return int(self.start["status"])

    @property
    def headers(self) -> list[tuple[bytes, bytes]]:
        return [(bytes(k), bytes(v)) for k, v in self.start["headers"]]

    def header(self, name: bytes) -> bytes | None:
        values = [v for k, v in self.headers if k == name]
        return values[0] if values else None

    @property
    def bodies(self) -> list[Message]:
        return [m for m in self.messages if m["type"] == "http.response.body"]

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.bodies)

    @property
    def complete(self) -> bool:
        bodies = self.bodies
        return bool(bodies) and not bodies[-1].get("more_body", False)


class Client:
    """Drives one request through an ASGI app, in memory."""

    def __init__(
        self,
        body: list[bytes] | bytes = b"",
        *,
        disconnect_after_body: bool = False,
        send_raises_after: int | None = None,
        silent_after: int | None = None,
    ) -> None:
        parts = [body] if isinstance(body, bytes) else list(body)
        if not parts:
            parts = [b""]
        self.pending: list[Message] = [
            {"type": "http.request", "body": p, "more_body": i < len(parts) - 1} for i, p in enumerate(parts)
        ]
        self.disconnect_after_body = disconnect_after_body
        self.send_raises_after = send_raises_after
        self.silent_after = silent_after
        self.gone = anyio.Event()
        self.exchange = Exchange()
        self.receive_calls = 0

    def disconnect(self) -> None:
        self.gone.set()

    async def receive(self) -> Message:
        self.receive_calls += 1
        if self.pending:
            if self.gone.is_set():
                return {"type": "http.disconnect"}
            return self.pending.pop(0)
        if not self.disconnect_after_body:
            await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        sent = len(self.exchange.messages)
        if self.send_raises_after is not None and sent >= self.send_raises_after:
            self.gone.set()
            raise OSError("connection lost")
        if self.silent_after is not None and sent >= self.silent_after:
            self.gone.set()
            return
        self.exchange.messages.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            self.gone.set()

    async def run(self, app: ASGIApp, scope: Scope, *, timeout: float = 10) -> Exchange:
        with anyio.fail_after(timeout):
            await app(scope, self.receive, self.send)
        return self.exchange


async def request(app: ASGIApp, path: str = "/", *, body: list[bytes] | bytes = b"", **kw: Any) -> Exchange:
    return await Client(body).run(app, http_scope(path, **kw))
