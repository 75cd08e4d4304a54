"""Acceptance 7a and 7b: concurrency and bounded memory, measured on real servers.

The figures are printed (run with ``-s`` to see them); the assertions use generous
bounds, so a loaded two-core CI machine still passes while a bridge that serialises
requests or buffers whole bodies fails. Speed claims belong in ``benchmarks/``.
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
import threading
import time
from typing import Callable, Iterator

import httpx
import psutil
import pytest

from .apps.lifecycle import CHUNK, download_chunk
from .rawhttp import read_head, request_bytes
from .servers import Server, serve

APP = "tests.integration_wsgi_apps.apps.lifecycle:asgi"

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

CONCURRENCY = 32
SLEEP = 0.2
MIB = 1024 * 1024


async def concurrent_sleeps(server: Server, count: int, sleep: float) -> tuple[float, list[httpx.Response]]:
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
    async with server.async_client(limits=limits, timeout=30.0) as client:
        start = time.perf_counter()
        responses = await asyncio.gather(
            *(client.get("/sleep", params={"s": str(sleep)}) for _ in range(count))
        )
        elapsed = time.perf_counter() - start
    return elapsed, list(responses)


def measure_concurrency(server: Server) -> tuple[float, int]:
    asyncio.run(concurrent_sleeps(server, CONCURRENCY, 0.0))  # warm up: threads, imports
    elapsed, responses = asyncio.run(concurrent_sleeps(server, CONCURRENCY, SLEEP))
    assert [r.status_code for r in responses] == [200] * CONCURRENCY
    threads = len({r.json()["thread"] for r in responses})
    return elapsed, threads


def test_7a_concurrent_sleeping_requests(server: Server) -> None:
    """32 concurrent requests to an app that sleeps 0.2 s: well under 1 s in total
    when the bridge runs them side by side (6.4 s if it serialised them)."""
    elapsed, threads = measure_concurrency(server)
    print(
        f"\n[7a] bridge on {server.kind}: {CONCURRENCY} x sleep({SLEEP}) in {elapsed:.3f} s "
        f"on {threads} worker threads"
    )
    assert elapsed < 2.5


@pytest.fixture(scope="module")
def asgiref_server(request: pytest.FixtureRequest) -> Server:
    # asgiref's adapter does not speak lifespan.
    return serve(
        request, "uvicorn", "tests.integration_wsgi_apps.apps.lifecycle:asgiref_asgi", lifespan="off"
    )


def test_7a_asgiref_for_comparison(asgiref_server: Server) -> None:
    """The same measurement with asgiref.wsgi.WsgiToAsgi. Prints only."""
    elapsed, threads = measure_concurrency(asgiref_server)
    print(
        f"\n[7a] asgiref.wsgi.WsgiToAsgi on uvicorn: {CONCURRENCY} x sleep({SLEEP}) in {elapsed:.3f} s "
        f"on {threads} worker thread(s)"
    )


class PeakRSS:
    """Samples a process's RSS in a background thread and keeps the peak."""

    def __init__(self, pid: int, interval: float = 0.005) -> None:
        self.process = psutil.Process(pid)
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakRSS:
        self.peak = self.process.memory_info().rss
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.peak = max(self.peak, self.process.memory_info().rss)


def upload_chunks(count: int) -> Iterator[bytes]:
    for i in range(count):
        yield download_chunk(count - i)  # any deterministic content


def expected_digest(chunks: Iterator[bytes]) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    for chunk in chunks:
        digest.update(chunk)
        size += len(chunk)
    return size, digest.hexdigest()


def upload(client: httpx.Client, count: int, *, chunked: bool) -> None:
    headers = {} if chunked else {"Content-Length": str(count * CHUNK)}
    response = client.post("/upload", content=upload_chunks(count), headers=headers)
    assert response.status_code == 200, response.text
    size, sha = expected_digest(upload_chunks(count))
    assert response.json() == {"size": size, "sha256": sha}


def download(client: httpx.Client, count: int) -> None:
    digest = hashlib.sha256()
    size = 0
    with client.stream("GET", "/download", params={"chunks": str(count)}) as response:
        assert response.status_code == 200
        for data in response.iter_raw():
            digest.update(data)
            size += len(data)
    assert (size, digest.hexdigest()) == expected_digest(download_chunk(i) for i in range(count))


def test_7b_big_transfers_keep_server_memory_flat(server: Server) -> None:
    """64 MiB up and 64 MiB down: the server's RSS grows by less than 32 MiB, since
    neither the bridge nor the server may hold the body in memory."""
    count = 64 * MIB // CHUNK
    process = psutil.Process(server.app_pid)
    with server.client(timeout=60.0) as client:
        # Warm up: worker threads, allocator arenas, imports on first use.
        upload(client, 128, chunked=False)
        upload(client, 128, chunked=True)
        download(client, 128)
        baseline = process.memory_info().rss
        growth: dict[str, float] = {}
        timing: dict[str, float] = {}
        runs: list[tuple[str, Callable[[], None]]] = [
            ("upload", lambda: upload(client, count, chunked=False)),
            ("chunked upload", lambda: upload(client, count, chunked=True)),
            ("download", lambda: download(client, count)),
        ]
        for name, run in runs:
            start = time.perf_counter()
            with PeakRSS(server.app_pid) as peak:
                run()
            timing[name] = time.perf_counter() - start
            growth[name] = (peak.peak - baseline) / MIB
    print(
        f"\n[7b] {server.kind}: baseline RSS {baseline / MIB:.1f} MiB; peak growth "
        + "; ".join(f"{name} 64 MiB: {growth[name]:+.1f} MiB in {timing[name]:.2f} s" for name in growth)
    )
    for name, mib in growth.items():
        assert mib < 32, f"{name}: the server's RSS grew by {mib:.1f} MiB"


def test_concurrent_streamed_uploads(server: Server) -> None:
    """Eight 4 MiB uploads at once, each read in 64 KiB pieces by its own thread."""
    count = 64  # chunks of 64 KiB

    async def run() -> list[httpx.Response]:
        async def body(seed: int):  # type: ignore[no-untyped-def]
            for i in range(count):
                yield download_chunk(seed * 1000 + i)

        async with server.async_client(timeout=60.0) as client:
            return list(
                await asyncio.gather(
                    *(
                        client.post(
                            "/upload", content=body(seed), headers={"Content-Length": str(count * CHUNK)}
                        )
                        for seed in range(8)
                    )
                )
            )

    responses = asyncio.run(run())
    for seed, response in enumerate(responses):
        assert response.status_code == 200, response.text
        expected = expected_digest(download_chunk(seed * 1000 + i) for i in range(count))
        assert response.json() == {"size": expected[0], "sha256": expected[1]}


def test_7b_client_that_does_not_read_gets_backpressure(server: Server) -> None:
    """A client asks for 64 MiB and then reads nothing for a while: the bridge must
    wait for the server's send() (backpressure) instead of queueing the body in
    memory. It reads the whole body afterwards, intact."""
    count = 64 * MIB // CHUNK
    process = psutil.Process(server.app_pid)
    with server.client() as client:
        download(client, 16)  # warm up
    baseline = process.memory_info().rss
    with server.connect(timeout=60.0) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        sock.sendall(request_bytes("GET", f"/download?chunks={count}", host=f"127.0.0.1:{server.port}"))
        with PeakRSS(server.app_pid) as peak:
            # Not a wait for anything: time for a bridge without backpressure to fill
            # its memory with the body (it would take well under a second).
            time.sleep(1.0)
            stalled = (peak.peak - baseline) / MIB
            data = read_head(sock)
            head, _, first = data.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200"), head
            assert f"content-length: {count * CHUNK}".encode() in head.lower()
            digest = hashlib.sha256(first)
            size = len(first)
            while size < count * CHUNK:
                piece = sock.recv(1 << 20)
                assert piece, "the server closed the connection early"
                digest.update(piece)
                size += len(piece)
        total = (peak.peak - baseline) / MIB
    print(
        f"\n[7b] {server.kind}: RSS growth while the client stalled {stalled:+.1f} MiB, "
        f"overall {total:+.1f} MiB"
    )
    assert stalled < 32
    assert total < 32
    assert (size, digest.hexdigest()) == expected_digest(download_chunk(i) for i in range(count))
