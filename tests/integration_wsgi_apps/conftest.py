"""Fixtures for the integration tests: real servers on 127.0.0.1 (see servers.py).

A test module picks its app with a module-level ``APP = "module:attribute"`` and gets
one server per module and server kind from the ``server`` fixture. Modules that need
other servers or options build their own module-scoped fixture on ``serve``.
"""

from __future__ import annotations

from typing import Generator, Iterator

import pluggy
import pytest

from .servers import SERVER_KINDS, Server, serve


@pytest.fixture(scope="module", params=SERVER_KINDS)
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    """One server per test module and server kind, serving the module's ``APP``."""
    app = getattr(request.module, "APP", None)
    if app is None:  # pragma: no cover - a mistake in a test module
        pytest.fail(f"{request.module.__name__} uses the server fixture but defines no APP")
    srv = serve(request, request.param, app)
    yield srv
    if not srv.stopped:
        srv.assert_alive()


@pytest.fixture
def log_mark(server: Server) -> int:
    """The server log's size before the test: read what the test caused with log_since."""
    return server.log_size()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pluggy.Result[pytest.TestReport], None]:
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        funcargs: dict[str, object] = getattr(item, "funcargs", {})
        for name, value in funcargs.items():
            if isinstance(value, Server):
                report.sections.append(
                    (f"{value.kind} log ({name}, port {value.port})", value.log()[-20000:])
                )
