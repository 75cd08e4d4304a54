"""In-process benchmark of WSGI-to-ASGI adapters, side by side, in one process run.

    python -m benchmarks            # full: more rounds
    python -m benchmarks --quick    # under a minute

Each scenario runs every adapter in rotating order, round after round; the figure is
the median over rounds of the time per request, and each adapter's ratio to the
no-adapter baseline (one run_in_executor hop) is computed within a round, then the
median taken. Every response is checked (status and exact length), so a broken path
cannot look fast. Only ratios from one run mean anything: absolute figures vary
two-fold between runs on shared machines.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterable

from bridge import WsgiToAsgi

MiB = 1024 * 1024


# -- WSGI apps under test --------------------------------------------------------------


def hello(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "13")])
    return [b"Hello, world!"]


CHUNK = b"x" * (MiB // 16)


def stream_1mib(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    for _ in range(16):
        yield CHUNK


def echo(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    body = environ["wsgi.input"].read()
    start_response(
        "200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(body)))]
    )
    return [body]


def sleepy(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    time.sleep(0.010)
    start_response("200 OK", [("Content-Length", "2")])
    return [b"ok"]


# -- the no-adapter baseline: one executor hop, nothing else ---------------------------


class Baseline:
    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.pool = ThreadPoolExecutor(40)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        import io

        environ = {
            "REQUEST_METHOD": scope["method"],
            "PATH_INFO": scope["path"],
            "wsgi.input": io.BytesIO(body),
        }
        status_headers: list[Any] = []

        def run() -> list[bytes]:
            result = self.app(environ, lambda s, h, e=None: status_headers.extend((s, h)))
            return list(result)

        chunks = await asyncio.get_running_loop().run_in_executor(self.pool, run)
        status, headers = status_headers
        await send(
            {
                "type": "http.response.start",
                "status": int(status[:3]),
                "headers": [(k.lower().encode(), v.encode()) for k, v in headers],
            }
        )
        await send({"type": "http.response.body", "body": b"".join(chunks), "more_body": False})


def adapters(app: Callable[..., Iterable[bytes]]) -> dict[str, Any]:
    found: dict[str, Any] = {"baseline": Baseline(app), "bridge": WsgiToAsgi(app)}
    try:
        from a2wsgi import WSGIMiddleware

        found["a2wsgi"] = WSGIMiddleware(app, workers=40)
    except ImportError:
        pass
    try:
        from asgiref.wsgi import WsgiToAsgi as AsgirefWsgiToAsgi

        found["asgiref"] = AsgirefWsgiToAsgi(app)
    except ImportError:
        pass
    return found


# -- a synthetic server ----------------------------------------------------------------


async def one_request(app: Any, body: bytes, expect_length: int) -> None:
    """Like a real server: the body in 64 KiB messages, then receive() blocks until the
    response is complete and returns http.disconnect."""
    parts = [body[i : i + 65536] for i in range(0, len(body), 65536)] or [b""]
    messages = [
        {"type": "http.request", "body": p, "more_body": i < len(parts) - 1} for i, p in enumerate(parts)
    ]
    done = asyncio.Event()
    received = 0
    status = 0

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal received, status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            received += len(message.get("body", b""))
            if not message.get("more_body", False):
                done.set()

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST" if body else "GET",
        "scheme": "http",
        "path": "/",
        "raw_path": b"/",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"bench"), (b"content-length", str(len(body)).encode())],
        "client": ("127.0.0.1", 1234),
        "server": ("127.0.0.1", 80),
    }
    await asyncio.wait_for(app(scope, receive, send), 30)
    if status != 200 or received != expect_length or not done.is_set():
        raise AssertionError(f"bad response: status {status}, {received} of {expect_length} bytes")


async def time_sequential(app: Any, n: int, body: bytes, length: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        await one_request(app, body, length)
    return (time.perf_counter() - start) / n


async def time_concurrent(app: Any, n: int, body: bytes, length: int) -> float:
    start = time.perf_counter()
    await asyncio.gather(*(one_request(app, body, length) for _ in range(n)))
    return time.perf_counter() - start


SCENARIOS = {
    # name: (app, body, response length, timer, requests per round, unit)
    "hello": (hello, b"", 13, time_sequential, 200, "us/req"),
    "1 MiB out, 16 chunks": (stream_1mib, b"", MiB, time_sequential, 10, "us/req"),
    "1 MiB echo": (echo, b"e" * MiB, MiB, time_sequential, 10, "us/req"),
    "64 concurrent x 10 ms": (sleepy, b"", 2, time_concurrent, 64, "ms/batch"),
}


async def run(rounds: int, only: list[str] | None) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for name, (app, body, length, timer, n, unit) in SCENARIOS.items():
        if only and name not in only:
            continue
        subjects = adapters(app)
        names = list(subjects)
        times: dict[str, list[float]] = {k: [] for k in names}
        ratios: dict[str, list[float]] = {k: [] for k in names}
        for _ in range(2):  # warm up threads and caches
            for k in names:
                await timer(subjects[k], max(1, n // 10), body, length)
        for r in range(rounds):
            order = names[r % len(names) :] + names[: r % len(names)]
            round_times = {}
            for k in order:
                round_times[k] = await timer(subjects[k], n, body, length)
            for k in names:
                times[k].append(round_times[k])
                ratios[k].append(round_times[k] / round_times["baseline"])
        scale = 1e6 if unit == "us/req" else 1e3
        results[name] = {
            k: {
                "median": statistics.median(times[k]) * scale,
                "unit": unit,
                "ratio": statistics.median(ratios[k]),
            }
            for k in names
        }
    return results


def table(results: dict[str, Any]) -> str:
    peers = ["bridge", "a2wsgi", "asgiref", "baseline"]
    lines = [
        "| scenario | " + " | ".join(peers) + " |",
        "|---|" + "---|" * len(peers),
    ]
    for name, row in results.items():
        cells = []
        for p in peers:
            if p in row:
                cells.append(f"{row[p]['median']:.0f} {row[p]['unit']} ({row[p]['ratio']:.2f}x)")
            else:
                cells.append("n/a")
        lines.append(f"| WSGI to ASGI {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="few rounds, under a minute")
    parser.add_argument("--rounds", type=int, help="rounds per scenario (default 5 quick, 15 full)")
    parser.add_argument("--only", action="append", help="run only this scenario (repeatable)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args()
    rounds = args.rounds or (5 if args.quick else 15)
    results = asyncio.run(run(rounds, args.only))
    print(f"median over {rounds} rounds; (ratio to the one-hop baseline, per round)")
    print(table(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
