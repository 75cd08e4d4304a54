"""Raw HTTP/1.1 over a socket, for what httpx hides: keep-alive on one known
connection, pipelining, upgrades and abrupt disconnects.

Requests are written as bytes by the test; responses are parsed with h11 (already a
dependency of uvicorn, hypercorn and httpx), so framing errors by the server are
caught rather than papered over.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

import h11


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]  # lower-case names; repeated headers joined with ", "
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


def request_bytes(
    method: str,
    target: str,
    *,
    host: str = "127.0.0.1",
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    names = {name.lower() for name, _ in headers or ()}
    for name, value in headers or ():
        lines.append(f"{name}: {value}")
    if body and "content-length" not in names and "transfer-encoding" not in names:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class ResponseReader:
    """Reads successive responses from one connection, in request order."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.conn = h11.Connection(h11.CLIENT)

    def read(self, method: str = "GET") -> RawResponse:
        """Read the next response; ``method`` is the one of the matching request (HEAD
        responses have no body)."""
        if self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE:
            self.conn.start_next_cycle()
        # The request itself went out as raw bytes; tell h11 about it so that its state
        # machine expects the matching response.
        self.conn.send(h11.Request(method=method, target="/", headers=[("Host", "x")]))
        self.conn.send(h11.EndOfMessage())
        status = 0
        headers: dict[str, str] = {}
        body = bytearray()
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                data = self.sock.recv(65536)
                self.conn.receive_data(data)  # b"" means EOF; h11 then raises or ends
                continue
            if isinstance(event, h11.InformationalResponse):
                continue
            if isinstance(event, h11.Response):
                status = event.status_code
                for name, value in event.headers:
                    key = name.decode("latin-1").lower()
                    text = value.decode("latin-1")
                    headers[key] = f"{headers[key]}, {text}" if key in headers else text
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                return RawResponse(status, headers, bytes(body))
            elif isinstance(event, h11.ConnectionClosed):
                raise ConnectionError("the server closed the connection before a complete response")


def read_head(sock: socket.socket, limit: int = 65536) -> bytes:
    """Read up to the end of a response head (status line and headers)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
        if len(data) > limit:
            raise ValueError("response head too long")
    return data


def read_until(sock: socket.socket, marker: bytes, limit: int = 1 << 20) -> bytes:
    data = b""
    while marker not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError(f"connection closed before {marker!r}; got {data[-200:]!r}")
        data += chunk
        if len(data) > limit:
            raise ValueError(f"{marker!r} not found in the first {limit} bytes")
    return data


def abort(sock: socket.socket) -> None:
    """Close with a TCP RST instead of a FIN: the most abrupt disconnect there is."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
