"""In-process tier, WSGI to ASGI: a WSGI app behind each adapter, driven by a synthetic
ASGI server on one event loop (no sockets).

Subjects: bridge ``WsgiToAsgi``, a2wsgi ``WSGIMiddleware``, asgiref ``WsgiToAsgi``, each with
its default settings (bridge: 40 threads; a2wsgi: 10; asgiref: one), and the no-adapter
baseline: read the body, one ``run_in_executor`` hop that calls the app and drains its
iterable, send the result. When trio is installed, the timing scenarios also drive
bridge and the baseline on trio ("bridge on trio", "baseline on trio": the baseline's
hop a ``trio.to_thread.run_sync``), on one ``trio.run`` that lasts the whole tier in a
thread of its own (:class:`TrioLoop`), so bridge on trio can be read against bridge on
asyncio, round by round. (a2wsgi and asgiref run on asyncio only.)

The synthetic server behaves like a real one: the request body comes in 64 KiB
``http.request`` messages; after the last one, ``receive()`` blocks until the response is
complete and then returns ``http.disconnect``; the final ``http.response.body`` completes
the response, and any message after it is an error. Every response is checked for its
status, its exact length and, when short, its exact body.
"""

from __future__ import annotations

import asyncio
import io
import threading
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Iterable, Iterator

from . import hops
from .harness import ON_TRIO, Config, MiB, ScenarioResult, log, matches, run_inprocess

__all__ = ["SCENARIOS", "run"]

CHUNK = 64 * 1024
HELLO = b"Hello, world!"
STREAM_CHUNK = b"x" * (MiB // 16)
MEMORY_TOTAL = 256 * MiB

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
ASGIApp = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


# -- the WSGI apps -------------------------------------------------------------------------


def hello(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "13")])
    return [HELLO]


def stream_1mib(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    for _ in range(16):
        yield STREAM_CHUNK


def echo(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    body = environ["wsgi.input"].read()
    start_response(
        "200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(body)))]
    )
    return [body]


def sleepy(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    time.sleep(0.010)
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]


def stream_big(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """Stream as many bytes as the X-Bench-Bytes request header says, in 64 KiB chunks."""
    total = int(environ["HTTP_X_BENCH_BYTES"])
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    for _ in range(total // CHUNK):
        yield bytes(CHUNK)  # a fresh object each time: buffering shows in the peak


def sink(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    stream = environ["wsgi.input"]
    total = 0
    while True:
        data = stream.read(CHUNK)
        if not data:
            break
        total += len(data)
    body = str(total).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


# -- the no-adapter baseline: one executor hop, nothing else -----------------------------


class Baseline:
    """Read the whole body, hop once to a thread that calls the app and drains the
    iterable, send what it returned. The floor any WSGI-to-ASGI adapter can reach."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.pool = ThreadPoolExecutor(40, thread_name_prefix="baseline")

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        parts = []
        while True:
            message = await receive()
            parts.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        environ = {
            "REQUEST_METHOD": scope["method"],
            "PATH_INFO": scope["path"],
            "wsgi.input": io.BytesIO(b"".join(parts)),
        }
        status_headers: list[Any] = []

        def run() -> list[bytes]:
            result = self.app(environ, lambda s, h, e=None: status_headers.extend((s, h)))
            try:
                return list(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()

        chunks = await self._in_thread(run)
        status, headers = status_headers
        await send(
            {
                "type": "http.response.start",
                "status": int(status[:3]),
                "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers],
            }
        )
        await send({"type": "http.response.body", "body": b"".join(chunks), "more_body": False})

    def _in_thread(self, run: Callable[[], list[bytes]]) -> Awaitable[list[bytes]]:
        return asyncio.get_running_loop().run_in_executor(self.pool, run)

    def close(self) -> None:
        self.pool.shutdown(wait=False)


class TrioBaseline(Baseline):
    """The baseline on trio (:class:`TrioLoop`): the one hop is ``trio.to_thread``, in
    threads of trio's own cache, as many at once as the pool above allows."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        import trio  # optional, like bridge's trio support

        super().__init__(app)
        self.limiter = trio.CapacityLimiter(40)

    def _in_thread(self, run: Callable[[], list[bytes]]) -> Awaitable[list[bytes]]:
        import trio

        return trio.to_thread.run_sync(run, limiter=self.limiter)


@dataclass(frozen=True)
class OnTrio:
    """A subject that the driver serves on trio (:class:`TrioLoop`) instead of on the
    asyncio loop: the harness hands subjects to one ``batch`` function, which tells the
    two apart by this wrapper."""

    app: Any


def _trio_installed() -> bool:
    try:
        import trio  # noqa: F401 - optional, like bridge's trio support
    except ImportError:
        return False
    return True


def make_subjects(app: Callable[..., Iterable[bytes]], baseline: bool, trio: bool = False) -> dict[str, Any]:
    """The subjects of one scenario; with ``trio`` (and trio installed), also bridge and
    (with ``baseline``) the baseline on trio, each its own instance (a ``TrioLoop``
    serves them)."""
    from a2wsgi import WSGIMiddleware
    from asgiref.wsgi import WsgiToAsgi as AsgirefWsgiToAsgi

    from bridge import WsgiToAsgi

    subjects: dict[str, Any] = {
        "bridge": WsgiToAsgi(app),
        "a2wsgi": WSGIMiddleware(app),
        "asgiref": AsgirefWsgiToAsgi(app),  # type: ignore[no-untyped-call]
    }
    if baseline:
        subjects["baseline"] = Baseline(app)
    if trio and _trio_installed():
        subjects["bridge" + ON_TRIO] = OnTrio(WsgiToAsgi(app))
        if baseline:
            subjects["baseline" + ON_TRIO] = OnTrio(TrioBaseline(app))
    return subjects


def close_subjects(subjects: dict[str, Any]) -> None:
    for wrapped in subjects.values():
        subject = wrapped.app if isinstance(wrapped, OnTrio) else wrapped
        if isinstance(subject, Baseline):
            subject.close()
        executor = getattr(subject, "executor", None)  # a2wsgi's pool
        if isinstance(executor, ThreadPoolExecutor):
            executor.shutdown(wait=False)


# -- the synthetic ASGI server -------------------------------------------------------------

_SCOPE = {
    "type": "http",
    "asgi": {"version": "3.0", "spec_version": "2.3"},
    "http_version": "1.1",
    "scheme": "http",
    "path": "/",
    "raw_path": b"/",
    "query_string": b"",
    "root_path": "",
    "client": ("127.0.0.1", 50000),
    "server": ("127.0.0.1", 80),
}


class BadResponse(AssertionError):
    pass


async def one_request(
    app: Any,
    parts: Iterable[bytes],
    content_length: int,
    expect_length: int,
    expect_body: bytes | None,
    headers: tuple[tuple[bytes, bytes], ...] = (),
    new_event: Callable[[], Any] = asyncio.Event,
) -> None:
    """Serve one request to ``app`` like an ASGI server, and check the response
    (``new_event``: ``trio.Event`` on trio)."""
    scope = dict(_SCOPE)
    scope["method"] = "POST" if content_length else "GET"
    scope["headers"] = [(b"host", b"bench"), (b"content-length", str(content_length).encode()), *headers]
    pending: Iterator[bytes] = iter(parts)
    upcoming = next(pending, None)
    body_done = False
    done = new_event()
    started = False
    status = 0
    received = 0
    kept: list[bytes] | None = [] if expect_body is not None else None

    async def receive() -> dict[str, Any]:
        nonlocal upcoming, body_done
        if not body_done:
            chunk = b"" if upcoming is None else upcoming
            upcoming = None if upcoming is None else next(pending, None)
            body_done = upcoming is None
            return {"type": "http.request", "body": chunk, "more_body": not body_done}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal started, status, received
        kind = message["type"]
        if done.is_set():
            raise BadResponse(f"{kind} sent after the response was complete")
        if kind == "http.response.start":
            if started:
                raise BadResponse("http.response.start sent twice")
            started = True
            status = message["status"]
        elif kind == "http.response.body":
            if not started:
                raise BadResponse("http.response.body before http.response.start")
            body = message.get("body", b"")
            received += len(body)
            if kept is not None:
                kept.append(body)
            if not message.get("more_body", False):
                done.set()
        else:
            raise BadResponse(f"unexpected message {kind!r}")

    await app(scope, receive, send)
    if status != 200 or received != expect_length or not done.is_set():
        raise BadResponse(
            f"bad response: status {status}, {received} of {expect_length} bytes, complete={done.is_set()}"
        )
    if kept is not None and b"".join(kept) != expect_body:
        raise BadResponse(f"bad response body {b''.join(kept)[:40]!r}")


# -- scenarios -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    id: str
    title: str
    app: Callable[..., Iterable[bytes]]
    kind: str  # "sequential", "concurrent" or "memory"
    requests: int  # per measurement, full mode
    quick_requests: int
    body: Callable[[], Iterable[bytes]]  # the request body, as the server's messages
    content_length: int
    expect_length: int
    expect_body: bytes | None = None
    slices: int = 5  # sequential scenarios: passes per round (see harness.interleave)
    count_requests: int = 10  # requests in the hop-counted run
    headers: tuple[tuple[bytes, bytes], ...] = ()


_ECHO_BODY = b"e" * MiB
_ECHO_PARTS = [_ECHO_BODY[i : i + CHUNK] for i in range(0, MiB, CHUNK)]


def _fresh_chunks(total: int) -> Iterator[bytes]:
    for _ in range(total // CHUNK):
        yield bytes(CHUNK)


SCENARIOS = [
    Scenario("w2a.hello", "hello", hello, "sequential", 400, 100, list, 0, 13, HELLO, 20),
    Scenario(
        "w2a.out-1mib", "1 MiB out, 16 chunks", stream_1mib, "sequential", 20, 10, list, 0, MiB, None, 5
    ),
    Scenario(
        "w2a.echo-1mib", "1 MiB echo", echo, "sequential", 20, 10, lambda: _ECHO_PARTS, MiB, MiB, None, 5
    ),
    Scenario(
        "w2a.concurrent-64", "64 concurrent x 10 ms", sleepy, "concurrent", 64, 64, list, 0, 2, b"ok", 64
    ),
    Scenario(
        "w2a.memory-out-256mib",
        "peak memory, 256 MiB out",
        stream_big,
        "memory",
        1,
        1,
        list,
        0,
        MEMORY_TOTAL,
        headers=((b"x-bench-bytes", str(MEMORY_TOTAL).encode()),),
    ),
    Scenario(
        "w2a.memory-in-256mib",
        "peak memory, 256 MiB in",
        sink,
        "memory",
        1,
        1,
        lambda: _fresh_chunks(MEMORY_TOTAL),
        MEMORY_TOTAL,
        len(str(MEMORY_TOTAL)),
        str(MEMORY_TOTAL).encode(),
    ),
]


def _scenario_request(
    app: Any, scenario: Scenario, new_event: Callable[[], Any] = asyncio.Event
) -> Awaitable[None]:
    """One request of ``scenario`` to ``app``, checked (see :func:`one_request`)."""
    return one_request(
        app,
        scenario.body(),
        scenario.content_length,
        scenario.expect_length,
        scenario.expect_body,
        scenario.headers,
        new_event,
    )


# The drivers time a batch inside the loop, from its first request to its last
# response: a server runs one loop for its lifetime, and a loop's own start and finish
# (``trio.run``'s about 350 µs, against 30 µs for ``run_until_complete``) would count
# as up to 17 µs per request in a quick run's slices of 20 hellos.


async def _batch(app: Any, scenario: Scenario, n: int, at_once: bool) -> float:
    def request() -> Awaitable[None]:
        return _scenario_request(app, scenario)

    start = time.perf_counter()
    if at_once:
        await asyncio.gather(*(request() for _ in range(n)))
    else:
        for _ in range(n):
            await request()
    return time.perf_counter() - start


def run_batch(
    loop: asyncio.AbstractEventLoop, app: Any, scenario: Scenario, n: int, at_once: bool | None = None
) -> float:
    """Serve ``n`` requests of ``scenario`` (at once for a concurrent scenario, unless
    ``at_once`` says otherwise); the seconds it took."""
    if at_once is None:
        at_once = scenario.kind == "concurrent"
    return loop.run_until_complete(asyncio.wait_for(_batch(app, scenario, n, at_once), 120))


async def _batch_trio(app: Any, scenario: Scenario, n: int, at_once: bool) -> float:
    import trio

    async def request() -> None:
        await _scenario_request(app, scenario, trio.Event)

    start = time.perf_counter()
    with trio.fail_after(120):
        if at_once:
            async with trio.open_nursery() as nursery:
                for _ in range(n):
                    nursery.start_soon(request)
        else:
            for _ in range(n):
                await request()
    return time.perf_counter() - start


class TrioLoop:
    """One ``trio.run`` in a thread of its own for the whole tier, serving the batches
    of the trio subjects, as a server's one loop would (the asyncio subjects' loop lives
    as long). A ``trio.run`` per batch would pay, besides the run's
    start, a first request in each run about 240 µs slower than the next for bridge
    (70 µs for the baseline): 12 µs per request in a quick run's slices of 20 hellos.

    This thread waits for each batch, so the two never run at once; the hand-offs to
    and from the trio thread are left out of the hop count (``hops.driver``, and a raw
    lock, which the counter does not see) and out of the time (taken inside the run)."""

    def __init__(self) -> None:
        import trio

        ready = threading.Event()
        self._token: Any = None
        self._nursery: Any = None

        async def main() -> None:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                self._token = trio.lowlevel.current_trio_token()
                ready.set()
                await trio.sleep_forever()

        self.thread = threading.Thread(target=trio.run, args=(main,), name="bench-trio", daemon=True)
        self.thread.start()
        if not ready.wait(10):
            raise RuntimeError("the benchmark's trio loop did not start")

    def batch(self, app: Any, scenario: Scenario, n: int, at_once: bool | None = None) -> float:
        if at_once is None:
            at_once = scenario.kind == "concurrent"
        done = threading.Lock()
        done.acquire()
        outcome: list[float | Exception] = []

        async def task() -> None:
            try:
                outcome.append(await _batch_trio(app, scenario, n, at_once))
            except Exception as exc:  # raised again in the calling thread
                outcome.append(exc)
            finally:
                done.release()

        with hops.driver():
            self._token.run_sync_soon(self._nursery.start_soon, task)
        if not done.acquire(timeout=180):
            raise RuntimeError("a batch on the benchmark's trio loop did not finish")
        if not outcome:
            raise RuntimeError("a batch on the benchmark's trio loop was cancelled")
        if isinstance(outcome[0], Exception):
            raise outcome[0]
        return outcome[0]

    def close(self) -> None:
        self._token.run_sync_soon(self._nursery.cancel_scope.cancel)
        self.thread.join(10)


def serve_batch(
    loop: asyncio.AbstractEventLoop, trio_loop: TrioLoop | None, subject: Any, scenario: Scenario, n: int
) -> float:
    """``run_batch`` on ``loop``, or on ``trio_loop`` for an :class:`OnTrio` subject."""
    if isinstance(subject, OnTrio):
        assert trio_loop is not None, "a trio subject without the trio loop"
        return trio_loop.batch(subject.app, scenario, n)
    return run_batch(loop, subject, scenario, n)


def _peak_mib(loop: asyncio.AbstractEventLoop, app: Any, scenario: Scenario) -> tuple[float, float]:
    tracemalloc.start()
    try:
        seconds = run_batch(loop, app, scenario, 1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak / MiB, seconds


def run_scenario(
    loop: asyncio.AbstractEventLoop, scenario: Scenario, config: Config, trio_loop: TrioLoop | None = None
) -> ScenarioResult:
    return run_inprocess(
        scenario,
        config,
        direction="WSGI to ASGI",
        # No trio subjects in the memory scenarios: their figures are the adapters'
        # buffering, the same code on either loop.
        subjects=make_subjects(
            scenario.app,
            baseline=scenario.kind != "memory",
            trio=trio_loop is not None and scenario.kind != "memory",
        ),
        close=close_subjects,
        batch=lambda subject, sc, count: serve_batch(loop, trio_loop, subject, sc, count),
        peak=lambda subject, sc: _peak_mib(loop, subject, sc),
        memory_warmup=_SMALL_STREAMS.get(scenario.id),
    )


# Warm-up for the memory scenarios: the same app paths, a small stream.
_SMALL_STREAMS = {
    "w2a.memory-out-256mib": Scenario(
        "warm",
        "warm",
        stream_big,
        "sequential",
        1,
        1,
        list,
        0,
        4 * MiB,
        headers=((b"x-bench-bytes", str(4 * MiB).encode()),),
    ),
    "w2a.memory-in-256mib": Scenario(
        "warm",
        "warm",
        sink,
        "sequential",
        1,
        1,
        lambda: _fresh_chunks(4 * MiB),
        4 * MiB,
        len(str(4 * MiB)),
        str(4 * MiB).encode(),
    ),
}


def run(config: Config) -> list[ScenarioResult]:
    selected = [s for s in SCENARIOS if matches(s.id, config.only)]
    if not selected:
        return []
    results = []
    loop = asyncio.new_event_loop()
    trio_loop = TrioLoop() if _trio_installed() and any(s.kind != "memory" for s in selected) else None
    try:
        for scenario in selected:
            started = time.perf_counter()
            log(f"  {scenario.id} ...")
            results.append(run_scenario(loop, scenario, config, trio_loop))
            log(f"  {scenario.id}: {time.perf_counter() - started:.1f} s")
    finally:
        if trio_loop is not None:
            trio_loop.close()
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()
    return results
