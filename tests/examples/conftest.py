"""The ``serve`` fixture: start an example on a real server, stop it after the test, and
attach the server logs to the report of a failed test."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Generator, Iterator

import pytest

from tests.servers import ServerProcess

from .launch import Serve, launch

SERVERS = pytest.StashKey[list[ServerProcess]]()


@pytest.fixture
def serve(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Serve]:
    servers: list[ServerProcess] = []
    request.node.stash[SERVERS] = servers

    def start(*args: str, **kwargs: Any) -> ServerProcess:
        server = launch(args, tmp_path, **kwargs)
        servers.append(server)
        return server

    try:
        yield start
    finally:
        for server in servers:
            server.stop()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report = yield
    if report.failed:
        for server in item.stash.get(SERVERS, []):
            report.sections.append((f"log of {' '.join(server.command)}", server.log()))
    return report
