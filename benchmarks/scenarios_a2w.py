"""In-process tier, ASGI to WSGI: an ASGI app behind each adapter, called like a WSGI
server calls an application (no sockets).

Subjects: bridge ``AsgiToWsgi`` and a2wsgi ``ASGIMiddleware``, each with its default
settings, and the no-adapter baseline: read the request body in the WSGI thread, one
``asyncio.run_coroutine_threadsafe`` round trip to a loop thread that runs the app and
collects its messages, return the body as a one-element list.

The driver plays the WSGI server: an environ from ``wsgiref.util.setup_testing_defaults``
with ``wsgi.input``, a ``start_response``, iteration of the response and its
``close()``. Concurrent requests come from a pool of 64 threads, as a threaded WSGI
server's would. Every response is checked for its status, its exact length and, when
short, its exact body. The adapters are closed at the end.
"""

from __future__ import annotations

import asyncio
import io
import threading
import time
import tracemalloc
import wsgiref.util
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Callable, Iterable

from . import hops
from .harness import Config, MiB, ScenarioResult, log, matches, run_inprocess
from .server_apps import answer_lifespan

__all__ = ["SCENARIOS", "run"]

CHUNK = 64 * 1024
HELLO = b"Hello, world!"
STREAM_CHUNK = b"x" * (MiB // 16)
MEMORY_TOTAL = 256 * MiB

Scope = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[dict[str, Any]], Any]


# -- the ASGI apps -------------------------------------------------------------------------


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise RuntimeError(f"unexpected {message['type']!r} while reading the body")
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _start(length: int | None = None, content_type: bytes = b"text/plain") -> dict[str, Any]:
    headers = [(b"content-type", content_type)]
    if length is not None:
        headers.append((b"content-length", str(length).encode()))
    return {"type": "http.response.start", "status": 200, "headers": headers}


async def hello(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        return await answer_lifespan(receive, send)
    await send(_start(13))
    await send({"type": "http.response.body", "body": HELLO})


async def stream_1mib(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        return await answer_lifespan(receive, send)
    await send(_start(content_type=b"application/octet-stream"))
    for _ in range(16):
        await send({"type": "http.response.body", "body": STREAM_CHUNK, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        return await answer_lifespan(receive, send)
    body = await _read_body(receive)
    await send(_start(len(body), b"application/octet-stream"))
    await send({"type": "http.response.body", "body": body})


async def sleepy(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        return await answer_lifespan(receive, send)
    await asyncio.sleep(0.010)
    await send(_start(2))
    await send({"type": "http.response.body", "body": b"ok"})


async def stream_big(scope: Scope, receive: Receive, send: Send) -> None:
    """Stream as many bytes as the X-Bench-Bytes request header says, 64 KiB a message."""
    if scope["type"] == "lifespan":
        return await answer_lifespan(receive, send)
    total = int(dict(scope["headers"])[b"x-bench-bytes"])
    await send(_start(content_type=b"application/octet-stream"))
    for _ in range(total // CHUNK):
        # a fresh object each time: buffering shows in the peak
        await send({"type": "http.response.body", "body": bytes(CHUNK), "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def sink(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        return await answer_lifespan(receive, send)
    total = 0
    while True:
        message = await receive()
        total += len(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = str(total).encode()
    await send(_start(len(body)))
    await send({"type": "http.response.body", "body": body})


# -- the no-adapter baseline: one round trip to a loop thread -----------------------------


class Baseline:
    """Read the body here; one ``run_coroutine_threadsafe`` round trip to a loop thread
    that runs the app and collects its messages; return them as one chunk. The floor
    any ASGI-to-WSGI adapter can reach."""

    _new_event: Callable[[], Any] = asyncio.Event

    def __init__(self, app: Callable[..., Any]) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="baseline-loop", daemon=True)
        self.thread.start()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": environ["REQUEST_METHOD"],
            "path": environ.get("PATH_INFO", "/"),
            "query_string": b"",
            "headers": [],
        }
        status, headers, chunks = self._round_trip(scope, body)
        start_response(
            f"{status} {HTTPStatus(status).phrase}",
            [(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers],
        )
        return [b"".join(chunks)]

    def _round_trip(self, scope: Scope, body: bytes) -> tuple[int, list[Any], list[bytes]]:
        return asyncio.run_coroutine_threadsafe(self._run(scope, body), self.loop).result()

    async def _run(self, scope: Scope, body: bytes) -> tuple[int, list[Any], list[bytes]]:
        done = self._new_event()
        delivered = False
        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def receive() -> dict[str, Any]:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            await done.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            else:
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    done.set()

        await self.app(scope, receive, send)
        return start["status"], start.get("headers", []), chunks

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


class TrioBaseline(Baseline):
    """The baseline on trio: the round trip is ``trio.from_thread.run`` to a trio loop
    thread (``run_sync_soon`` there, a ``SimpleQueue`` back)."""

    def __init__(self, app: Callable[..., Any]) -> None:
        import trio  # optional, like bridge's trio support

        self.app = app
        self._new_event = trio.Event
        self.token: Any = None
        self._stop: Any = None
        ready = threading.Event()

        async def serve() -> None:
            self.token = trio.lowlevel.current_trio_token()
            self._stop = trio.Event()
            ready.set()
            await self._stop.wait()

        self.thread = threading.Thread(target=trio.run, args=(serve,), name="baseline-trio", daemon=True)
        self.thread.start()
        if not ready.wait(10):
            raise RuntimeError("the trio baseline's loop did not start")

    def _round_trip(self, scope: Scope, body: bytes) -> tuple[int, list[Any], list[bytes]]:
        import trio

        return trio.from_thread.run(self._run, scope, body, trio_token=self.token)

    def close(self) -> None:
        self.token.run_sync_soon(self._stop.set)
        self.thread.join(5)


def make_subjects(app: Callable[..., Any], baseline: bool) -> dict[str, Any]:
    from a2wsgi import ASGIMiddleware

    from bridge import AsgiToWsgi

    subjects: dict[str, Any] = {"bridge": AsgiToWsgi(app), "a2wsgi": ASGIMiddleware(app)}
    if baseline:
        subjects["baseline"] = Baseline(app)
    return subjects


def close_subjects(subjects: dict[str, Any]) -> None:
    for name, subject in subjects.items():
        try:
            if name == "a2wsgi":
                subject.loop.call_soon_threadsafe(subject.loop.stop)
            else:
                subject.close()
        except Exception as exc:
            log(f"    closing {name} failed: {exc!r}")


# -- the synthetic WSGI server -------------------------------------------------------------


class BadResponse(AssertionError):
    pass


class FreshBytesInput:
    """A ``wsgi.input`` of ``total`` bytes made on demand, a fresh object per read."""

    def __init__(self, total: int) -> None:
        self.remaining = total

    def read(self, size: int = -1) -> bytes:
        if size < 0 or size > self.remaining:
            size = self.remaining
        self.remaining -= size
        return bytes(size)


_ENVIRON: dict[str, Any] = {}
wsgiref.util.setup_testing_defaults(_ENVIRON)
_ENVIRON["wsgi.multithread"] = True
_ENVIRON["SERVER_PROTOCOL"] = "HTTP/1.1"


def one_request(
    app: Callable[..., Iterable[bytes]],
    body: Callable[[], Any],
    content_length: int,
    expect_length: int,
    expect_body: bytes | None,
    headers: dict[str, str],
) -> None:
    """Call ``app`` like a WSGI server, and check the response."""
    environ = dict(_ENVIRON)
    environ["REQUEST_METHOD"] = "POST" if content_length else "GET"
    environ["CONTENT_LENGTH"] = str(content_length) if content_length else ""
    environ["wsgi.input"] = body()
    environ.update(headers)
    started: list[Any] = []

    def start_response(status: str, response_headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        if exc_info is not None:
            raise exc_info[1].with_traceback(exc_info[2])
        started[:] = [status, response_headers]
        return _no_write

    result = app(environ, start_response)
    received = 0
    kept: list[bytes] | None = [] if expect_body is not None else None
    try:
        for chunk in result:
            received += len(chunk)
            if kept is not None:
                kept.append(chunk)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    status = started[0] if started else "no start_response"
    if not status.startswith("200 ") or received != expect_length:
        raise BadResponse(f"bad response: status {status!r}, {received} of {expect_length} bytes")
    if kept is not None and b"".join(kept) != expect_body:
        raise BadResponse(f"bad response body {b''.join(kept)[:40]!r}")


def _no_write(data: bytes) -> None:
    raise BadResponse("the benchmark apps never call write()")


# -- scenarios -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    id: str
    title: str
    app: Callable[..., Any]
    kind: str  # "sequential", "concurrent" or "memory"
    requests: int  # per measurement, full mode
    quick_requests: int
    body: Callable[[], Any]  # a fresh wsgi.input
    content_length: int
    expect_length: int
    expect_body: bytes | None = None
    slices: int = 5  # sequential scenarios: passes per round (see harness.interleave)
    count_requests: int = 10
    headers: tuple[tuple[str, str], ...] = ()


_ECHO_BODY = b"e" * MiB


def _empty() -> io.BytesIO:
    return io.BytesIO(b"")


SCENARIOS = [
    Scenario("a2w.hello", "hello", hello, "sequential", 400, 100, _empty, 0, 13, HELLO, 20),
    Scenario(
        "a2w.out-1mib", "1 MiB out, 16 chunks", stream_1mib, "sequential", 20, 10, _empty, 0, MiB, None, 5
    ),
    Scenario(
        "a2w.echo-1mib",
        "1 MiB echo",
        echo,
        "sequential",
        20,
        10,
        lambda: io.BytesIO(_ECHO_BODY),
        MiB,
        MiB,
        None,
        5,
    ),
    Scenario(
        "a2w.concurrent-64", "64 concurrent x 10 ms", sleepy, "concurrent", 64, 64, _empty, 0, 2, b"ok", 64
    ),
    Scenario(
        "a2w.memory-out-256mib",
        "peak memory, 256 MiB out",
        stream_big,
        "memory",
        1,
        1,
        _empty,
        0,
        MEMORY_TOTAL,
        headers=(("HTTP_X_BENCH_BYTES", str(MEMORY_TOTAL)),),
    ),
    Scenario(
        "a2w.memory-in-256mib",
        "peak memory, 256 MiB in",
        sink,
        "memory",
        1,
        1,
        lambda: FreshBytesInput(MEMORY_TOTAL),
        MEMORY_TOTAL,
        len(str(MEMORY_TOTAL)),
        str(MEMORY_TOTAL).encode(),
    ),
]

# Warm-up for the memory scenarios: the same app, a small stream.
_WARM = {
    "a2w.memory-out-256mib": Scenario(
        "warm",
        "warm",
        stream_big,
        "sequential",
        1,
        1,
        _empty,
        0,
        4 * MiB,
        headers=(("HTTP_X_BENCH_BYTES", str(4 * MiB)),),
    ),
    "a2w.memory-in-256mib": Scenario(
        "warm",
        "warm",
        sink,
        "sequential",
        1,
        1,
        lambda: FreshBytesInput(4 * MiB),
        4 * MiB,
        len(str(4 * MiB)),
        str(4 * MiB).encode(),
    ),
}


class Driver:
    """Runs batches of requests: one after another in this thread, or at once from a
    pool of threads that stand for a threaded WSGI server's."""

    def __init__(self) -> None:
        self.pool = ThreadPoolExecutor(64, thread_name_prefix="wsgi-server")

    def batch(self, app: Any, scenario: Scenario, n: int) -> float:
        headers = dict(scenario.headers)

        def request() -> None:
            hops.enter_thread()
            one_request(
                app,
                scenario.body,
                scenario.content_length,
                scenario.expect_length,
                scenario.expect_body,
                headers,
            )

        start = time.perf_counter()
        if scenario.kind == "concurrent":
            with hops.driver():
                futures = [self.pool.submit(request) for _ in range(n)]
                for future in futures:
                    future.result(timeout=120)
        else:
            for _ in range(n):
                request()
        return time.perf_counter() - start

    def close(self) -> None:
        self.pool.shutdown(wait=True)


def _peak_mib(driver: Driver, app: Any, scenario: Scenario) -> tuple[float, float]:
    tracemalloc.start()
    try:
        seconds = driver.batch(app, scenario, 1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak / MiB, seconds


def run_scenario(driver: Driver, scenario: Scenario, config: Config) -> ScenarioResult:
    return run_inprocess(
        scenario,
        config,
        direction="ASGI to WSGI",
        subjects=make_subjects(scenario.app, baseline=scenario.kind != "memory"),
        close=close_subjects,
        batch=driver.batch,
        peak=lambda subject, sc: _peak_mib(driver, subject, sc),
        memory_warmup=_WARM.get(scenario.id),
    )


def run(config: Config) -> list[ScenarioResult]:
    selected = [s for s in SCENARIOS if matches(s.id, config.only)]
    if not selected:
        return []
    results = []
    driver = Driver()
    try:
        for scenario in selected:
            started = time.perf_counter()
            log(f"  {scenario.id} ...")
            results.append(run_scenario(driver, scenario, config))
            log(f"  {scenario.id}: {time.perf_counter() - started:.1f} s")
    finally:
        driver.close()
    return results
