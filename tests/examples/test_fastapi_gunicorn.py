"""examples/fastapi_gunicorn.py on gunicorn --preload (2 gthread workers): the lifespan
starts in each worker on its first request, never in the master; requests see its state;
SIGTERM runs its shutdown in each worker, after the last request."""

from __future__ import annotations

import collections
import re
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.gunicorn_flags import GUNICORN_NO_CONTROL_SOCKET
from tests.servers import CLIENT_TIMEOUT, ServerProcess

from .launch import Serve

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


def worker_pids(server: ServerProcess) -> set[int]:
    """The workers gunicorn booted, waiting until both have."""
    deadline = time.monotonic() + 30
    while True:
        pids = {int(pid) for pid in re.findall(r"Booting worker with pid: (\d+)", server.log())}
        if len(pids) == 2:
            return pids
        assert server.process.poll() is None, "gunicorn exited"
        assert time.monotonic() < deadline, "gunicorn did not boot two workers"
        time.sleep(0.05)


def hit_every_worker(server: ServerProcess, workers: set[int]) -> list[dict[str, Any]]:
    """Concurrent requests, each on a new connection (so that both workers accept some),
    until every worker answered; all the responses."""

    def get(_: int) -> dict[str, Any]:
        response = httpx.get(server.base_url + "/", timeout=CLIENT_TIMEOUT)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    answers: list[dict[str, Any]] = []
    deadline = time.monotonic() + 30
    with ThreadPoolExecutor(8) as pool:
        while {answer["pid"] for answer in answers} != workers:
            assert time.monotonic() < deadline, f"only {sorted({a['pid'] for a in answers})} answered"
            answers += pool.map(get, range(16))
    return answers


def test_fastapi_lifespan_under_gunicorn_preload(serve: Serve) -> None:
    # Ready when the port accepts: no HTTP request reaches the app before ours.
    server = serve(
        "gunicorn",
        "--preload",
        "-w", "2",
        "-k", "gthread",
        "--threads", "4",
        *GUNICORN_NO_CONTROL_SOCKET,
        "-b", "127.0.0.1:{port}",
        "examples.fastapi_gunicorn:app",
        ready=None,
    )  # fmt: skip
    master = server.pid
    workers = worker_pids(server)
    assert master not in workers
    # Imported by the master (--preload) and forked: nothing started yet, anywhere.
    assert "pool opened" not in server.log()

    answers = hit_every_worker(server, workers)
    for answer in answers:
        # Each request saw the pool of the worker that served it (the lifespan state).
        assert answer["pool_pid"] == answer["pid"], answer
    # One pool per worker, shared by its requests (and threads): its counter is unique.
    queries = collections.defaultdict(list)
    for answer in answers:
        queries[answer["pid"]].append(answer["query"])
    for pid, numbers in queries.items():
        assert sorted(numbers) == list(range(1, len(numbers) + 1)), (pid, numbers)

    opened = [int(pid) for pid in re.findall(r"pool opened in pid (\d+)", server.log())]
    assert sorted(opened) == sorted(workers), f"startup ran in {opened}; master {master}, workers {workers}"

    assert server.stop() == 0
    assert not server.needed_kill
    log = server.log()
    closed = {int(pid): int(n) for pid, n in re.findall(r"pool closed in pid (\d+) after (\d+) queries", log)}
    # Shutdown ran once in each worker, after its last request, and never in the master.
    assert closed == {pid: len(numbers) for pid, numbers in queries.items()}
    assert len(re.findall("pool closed", log)) == 2
    assert "Traceback" not in log
