"""One test per matrix cell: the cell's server, started for real on 127.0.0.1, serving the
framework's bridged app, answers the requests in ``checks.py``.

A cell whose framework or server is not installed is skipped with a reason ("granian not
installed"), and so is a cell that cannot work by design ("n/a: Quart runs on asyncio only");
the README table shows either as such.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.matrix.cells import Cell, cells
from tests.matrix.checks import check_app
from tests.servers import ServerProcess, Shutdown, http_ready, start

CELLS = cells()

pytestmark = pytest.mark.integration


@pytest.mark.timeout(60)
@pytest.mark.parametrize("cell", CELLS, ids=[cell.id for cell in CELLS])
def test_cell(cell: Cell, tmp_path: Path) -> None:
    reason = cell.not_applicable()
    if reason:
        pytest.skip(f"n/a: {reason}")
    missing = cell.missing()
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed")
    # Ready once the server answers HTTP at all: what it answers is for the checks to judge.
    with start(
        lambda: ServerProcess.launch(
            cell.id,
            cell.command,
            tmp_path,
            env=dict(cell.server.env),
            shutdown=Shutdown(cell.server.stop_signal),
        ),
        ready=http_ready("/", status=None),
    ) as server:
        try:
            check_app(server.base_url, cell.framework.id)
        except Exception as exc:
            server.stop()  # so that the log holds everything the server had to say
            raise AssertionError(
                f"{cell.id}: {exc}\n\n--- {cell.server.label} log ({' '.join(server.command)}) ---\n"
                f"{server.log_tail()}"
            ) from exc
