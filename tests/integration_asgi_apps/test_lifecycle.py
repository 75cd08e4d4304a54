"""Process lifecycle: the lifespan runs lazily, once per worker process (never in a gunicorn
--preload master), its state reaches the very first request of each worker, and SIGTERM
ends the server cleanly with the lifespan shutdown run in every process that started."""

from __future__ import annotations

import concurrent.futures
import time
import uuid
from typing import Any, Callable, cast

import psutil
import pytest

from .conftest import BACKENDS, STARLETTE_APP, Server, ServerSpec, wait_for

pytestmark = pytest.mark.integration

ServerFactory = Callable[[ServerSpec], Server]


def _with_backends(*specs: ServerSpec) -> list[ServerSpec]:
    return [ServerSpec(**{**spec.__dict__, "backend": backend}) for spec in specs for backend in BACKENDS]


def _hit_every_worker(
    server: Server,
    workers: int,
    *,
    path: str = "/state",
    params: dict[str, Any] | None = None,
    timeout: float = 20.0,
) -> list[dict[str, Any]]:
    """Concurrent requests (slow ones by default) until ``workers`` distinct pids
    answered; all responses. Each on a connection of its own: kept-alive connections,
    once all accepted by one worker, would never reach the other."""
    results: list[dict[str, Any]] = []
    if params is None:
        params = {"delay": 0.2}

    def fetch(_: int) -> dict[str, Any]:
        with server.client() as client:
            response = client.get(path, params=params)
            assert response.status_code == 200, response.text
            return cast("dict[str, Any]", response.json())

    deadline = time.monotonic() + timeout
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        while len({r["pid"] for r in results}) < workers:
            assert time.monotonic() < deadline, f"only pids {sorted({r['pid'] for r in results})} answered"
            results += pool.map(fetch, range(8))
    return results


def _worker_pids(server: Server) -> set[int]:
    return {child.pid for child in psutil.Process(server.pid).children()}


PRELOAD_SPECS = _with_backends(
    ServerSpec("gunicorn-sync", workers=2, preload=True, ready="tcp"),
    ServerSpec("gunicorn-gthread", workers=2, threads=4, preload=True, ready="tcp"),
)


@pytest.mark.parametrize("spec", PRELOAD_SPECS, ids=[s.id for s in PRELOAD_SPECS])
def test_preload_lifespan_state_from_the_first_request(
    server_factory: ServerFactory, spec: ServerSpec
) -> None:
    # Readiness was a TCP connect, so no request has reached the app yet.
    server = server_factory(spec)
    workers = wait_for(
        lambda: _worker_pids(server) if len(_worker_pids(server)) == 2 else None,
        timeout=20,
        what="two gunicorn workers",
    )
    assert server.lifecycle("startup") == {}, "lifespan startup ran before any request (in the master?)"

    results = _hit_every_worker(server, 2)
    pids = {r["pid"] for r in results}
    print(
        f"\n[preload {spec.id}] master {server.pid}, workers {sorted(workers)}, "
        f"{len(results)} requests answered by {sorted(pids)}"
    )
    assert pids == workers
    for result in results:
        assert result["pool"] == "pool-1", result
        assert result["startup_pid"] == result["pid"], result
        assert result["library"] == spec.backend
    # Only our requests reached the app: each worker's request number 1 was one of them.
    firsts = {r["pid"]: r for r in results if r["request_number"] == 1}
    assert set(firsts) == workers
    assert all(first["pool"] == "pool-1" for first in firsts.values())

    startups = server.lifecycle("startup")
    assert set(startups) == workers, f"startup pids {sorted(startups)} (master {server.pid})"
    assert all(len(events) == 1 for events in startups.values()), startups

    returncode = server.stop()
    assert returncode == 0, server.log_tail()
    shutdowns = server.lifecycle("shutdown")
    assert set(shutdowns) == workers, f"shutdown ran in {sorted(shutdowns)}; log:\n{server.log_tail()}"
    assert all(len(events) == 1 for events in shutdowns.values()), shutdowns


SIGTERM_SPECS = [
    *_with_backends(
        ServerSpec("gunicorn-sync", workers=2),
        ServerSpec("gunicorn-gthread", workers=2, threads=4),
        ServerSpec("waitress", threads=4),
        ServerSpec("werkzeug"),
    ),
    ServerSpec("gunicorn-gthread", app=STARLETTE_APP, workers=2, threads=4, backend="trio"),
    ServerSpec("waitress", app=STARLETTE_APP, backend="asyncio"),
]


@pytest.mark.parametrize(
    "spec",
    SIGTERM_SPECS,
    ids=[s.id + ("-starlette" if s.app == STARLETTE_APP else "") for s in SIGTERM_SPECS],
)
def test_sigterm_exits_cleanly_after_lifespan_shutdown(
    server_factory: ServerFactory, spec: ServerSpec
) -> None:
    server = server_factory(spec)
    workers = 2 if spec.is_gunicorn else 1
    if spec.app == STARLETTE_APP:
        pids = {r["pid"] for r in _hit_every_worker(server, workers, path="/info", params={})}
    else:
        pids = {r["pid"] for r in _hit_every_worker(server, workers)}
    startups = server.lifecycle("startup")
    assert set(startups) == pids

    started = time.monotonic()
    returncode = server.stop()
    elapsed = time.monotonic() - started
    print(
        f"\n[sigterm {spec.id}] exit code {returncode} after {elapsed:.2f} s; lifespan ran in {sorted(pids)}"
    )
    assert returncode == 0, f"exit code {returncode}; log:\n{server.log_tail()}"
    shutdowns = server.lifecycle("shutdown")
    assert set(shutdowns) == pids, (
        f"shutdown ran in {sorted(shutdowns)}, startup in {sorted(pids)}:\n{server.log_tail()}"
    )
    for pid, events in shutdowns.items():
        assert len(events) == 1
        assert events[0]["time"] >= startups[pid][0]["time"]
    assert "Traceback" not in server.log(), server.log_tail()


@pytest.mark.parametrize(
    "spec",
    _with_backends(
        ServerSpec("gunicorn-sync", workers=1), ServerSpec("gunicorn-gthread", workers=1, threads=4)
    ),
    ids=lambda s: s.id,
)
def test_sigterm_finishes_the_request_in_flight_first(
    server_factory: ServerFactory, spec: ServerSpec
) -> None:
    """gunicorn's graceful stop lets the running request finish; the lifespan shutdown
    (at interpreter exit of the worker) comes after it."""
    server = server_factory(spec)
    token = uuid.uuid4().hex
    with server.client() as client, concurrent.futures.ThreadPoolExecutor(1) as pool:
        future = pool.submit(client.get, "/sleep", params={"seconds": 1.0, "token": token})
        server.wait_marker(f"started-{token}")
        assert server.process.poll() is None
        server.terminate()
        response = future.result(timeout=30)
    assert response.status_code == 200
    assert response.json()["slept"] >= 0.9
    returncode = server.stop()
    assert returncode == 0, server.log_tail()
    ended = server.read_marker(f"ended-{token}")
    (shutdown,) = [event for events in server.lifecycle("shutdown").values() for event in events]
    assert shutdown["time"] >= ended["ended"]
