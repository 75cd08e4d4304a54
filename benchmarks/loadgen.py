"""A small HTTP/1.1 load client, the server tier's fallback where ``wrk`` is missing.

    python -m benchmarks.loadgen --port 8000 --connections 32 --duration 3 --expect-body 'Hello, world!'
    python -m benchmarks.loadgen --port 8000 --duration 2 --latency-duration 0.4

Keep-alive connections each send GET requests back to back for the duration; every
response is checked (status 200 and the exact body), and a JSON summary goes to stdout:
requests, ok, bad, errors, seconds, rps (counting good responses only), and the 50th
and 99th percentiles of the good responses' latencies (from sending the request to the
end of the response). With ``--latency-duration``, a second phase follows on one
connection (one request at a time), summarised the same way under "latency": the
latency of a request that waits for no other.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
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
    host: str,
    port: int,
    path: str,
    deadline: float,
    expect: bytes,
    tally: dict[str, int],
    latencies: list[float],
) -> None:
    request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
    writer: asyncio.StreamWriter | None = None
    while time.perf_counter() < deadline:
        try:
            if writer is None:
                opened = asyncio.open_connection(host, port)
                reader, connected = await asyncio.wait_for(opened, 10)
                writer = connected
            sent = time.perf_counter()
            writer.write(request)
            status, body, keep = await asyncio.wait_for(_response(reader), 10)
            took = time.perf_counter() - sent
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
            latencies.append(took)
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
    latencies: list[float] = []
    start = time.perf_counter()
    deadline = start + duration
    await asyncio.gather(
        *(_connection(host, port, path, deadline, expect, tally, latencies) for _ in range(connections))
    )
    seconds = time.perf_counter() - start
    return {
        **tally,
        "seconds": seconds,
        "rps": tally["ok"] / seconds,
        "latency_p50_ms": _percentile(latencies, 50),
        "latency_p99_ms": _percentile(latencies, 99),
    }


def _percentile(latencies: list[float], percent: float) -> float | None:
    """The nearest-rank percentile, in milliseconds (None without a good response)."""
    if not latencies:
        return None
    ordered = sorted(latencies)
    rank = max(0, math.ceil(percent / 100 * len(ordered)) - 1)
    return ordered[rank] * 1e3


async def load_and_latency(
    host: str, port: int, path: str, connections: int, duration: float, expect: bytes, latency: float
) -> dict[str, Any]:
    """``load``, then (``latency`` seconds > 0) one connection's, under "latency"."""
    result = await load(host, port, path, connections, duration, expect)
    if latency > 0:
        result["latency"] = await load(host, port, path, 1, latency, expect)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int)
    parser.add_argument("--path", default="/")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--expect-body", default="Hello, world!")
    parser.add_argument(
        "--latency-duration",
        type=float,
        default=0.0,
        help="then this many seconds on one connection, one request at a time (0: none)",
    )
    parser.add_argument(
        "--serve",
        action="store_true",
        help="run one load per line of stdin, a JSON object of these options by their long "
        'names ({"port": 8000, "duration": 2, "latency_duration": 0.4}), answering each '
        "with a line of JSON: the server tier's client, started once (a start costs 0.2 s)",
    )
    args = parser.parse_args()
    if not args.serve and args.port is None:
        parser.error("--port is required (or --serve)")
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:
        runner = asyncio.run

    def run(options: argparse.Namespace) -> None:
        result = runner(
            load_and_latency(
                options.host,
                options.port,
                options.path,
                options.connections,
                options.duration,
                options.expect_body.encode(),
                options.latency_duration,
            )
        )
        print(json.dumps(result), flush=True)

    if not args.serve:
        run(args)
        return
    for line in sys.stdin:
        if line.strip():
            run(argparse.Namespace(**{**vars(args), **json.loads(line)}))


if __name__ == "__main__":
    main()
