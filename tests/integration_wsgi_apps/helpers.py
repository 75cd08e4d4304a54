"""Small helpers shared by the integration tests."""

from __future__ import annotations

import hashlib
import socket
from typing import Iterator

import httpx
import pytest

from tests.servers import wait_until

from .rawhttp import abort, read_until, request_bytes
from .servers import Server


def wait_for_log(server: Server, offset: int, text: str, *, deadline: float = 10.0) -> str:
    """Wait until ``text`` appears in the server log after byte ``offset``."""
    log, _ = wait_until(
        lambda: server.log_since(offset),
        lambda log: text in log,
        deadline=deadline,
        what=f"{text!r} in the {server.kind} log",
    )
    return log


def pattern_bytes(size: int, seed: bytes = b"bridge") -> bytes:
    """Deterministic, incompressible-looking bytes (every value 0-255 occurs)."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        block = hashlib.sha256(seed + counter.to_bytes(8, "big")).digest()
        out += block
        counter += 1
    return bytes(out[:size])


def repeated_chunks(block: bytes, count: int) -> Iterator[bytes]:
    for _ in range(count):
        yield block


# -- the endless streams of apps/lifecycle.py ------------------------------------------

#: Acceptance figure 7c: close() is called within this many seconds of the drop.
CLOSE_WITHIN = 2.0


def status(client: httpx.Client, token: str) -> dict[str, object]:
    try:
        response = client.get("/status", params={"token": token})
    except httpx.TimeoutException:
        pytest.fail(
            "the server did not answer /status: no worker thread is free "
            "(threads of abandoned streams were not given back)"
        )
    assert response.status_code == 200
    result: dict[str, object] = response.json()
    return result


def open_stream(server: Server, token: str) -> socket.socket:
    """Start /endless on a raw connection and wait until it is streaming."""
    sock = server.connect()
    sock.sendall(request_bytes("GET", f"/endless?token={token}", host=f"127.0.0.1:{server.port}"))
    head = read_until(sock, b"tick 2\n")  # past the first chunk: in the streaming phase
    assert head.startswith(b"HTTP/1.1 200"), head[:200]
    return sock


def drop(sock: socket.socket, how: str) -> None:
    if how == "rst":
        abort(sock)
    else:
        sock.shutdown(socket.SHUT_RDWR)
        sock.close()


def wait_closed(client: httpx.Client, token: str, deadline: float) -> float:
    """Seconds until the app saw close() of stream ``token``."""
    state, elapsed = wait_until(
        lambda: status(client, token),
        lambda state: state["closed"],
        deadline=deadline,
        interval=0.01,
        what=f"close() of stream {token}",
    )
    assert state["started"] is True
    return elapsed
