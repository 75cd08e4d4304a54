"""A small HTTP/1.1 load client, the server tier's fallback where ``wrk`` is missing.

    python -m benchmarks.loadgen --port 8000 --connections 32 --duration 3 --expect-body 'Hello, world!'

Keep-alive connections each send GET requests back to back for the duration; every
response is checked (status 200 and the exact body), and a JSON summary goes to stdout:
requests, ok, bad, errors, seconds, rps (counting good responses only).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any


async def _response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """Read one response: status, body, whether the connection stays open."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            data = await reader.readexactly(size + 2)
            if size == 0:
                break
            parts.append(data[:-2])
        body = b"".join(parts)
    else:
        body = await reader.read()
        return status, body, False
    keep = headers.get("connection", "").lower() != "close"
    return status, body, keep


async def _connection(
    host: str, port: int, path: str, deadline: float, expect: bytes, tally: dict[str, int]
) -> None:
    request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
    writer: asyncio.StreamWriter | None = None
    while time.perf_counter() < deadline:
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(host, port)
            writer.write(request)
            status, body, keep = await asyncio.wait_for(_response(reader), 10)
        except (
            OSError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            asyncio.TimeoutError,
            ValueError,
        ):
            tally["errors"] += 1
            if writer is not None:
                writer.close()
            writer = None
            await asyncio.sleep(0.01)
            continue
        tally["requests"] += 1
        if status == 200 and body == expect:
            tally["ok"] += 1
        else:
            tally["bad"] += 1
        if not keep:
            writer.close()
            writer = None
    if writer is not None:
        writer.close()


async def load(
    host: str, port: int, path: str, connections: int, duration: float, expect: bytes
) -> dict[str, Any]:
    tally = {"requests": 0, "ok": 0, "bad": 0, "errors": 0}
    start = time.perf_counter()
    deadline = start + duration
    await asyncio.gather(
        *(_connection(host, port, path, deadline, expect, tally) for _ in range(connections))
    )
    seconds = time.perf_counter() - start
    return {**tally, "seconds": seconds, "rps": tally["ok"] / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--expect-body", default="Hello, world!")
    args = parser.parse_args()
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:
        runner = asyncio.run
    result = runner(
        load(args.host, args.port, args.path, args.connections, args.duration, args.expect_body.encode())
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
