"""Record each matrix cell's outcome for ``report.py``.

When ``BRIDGE_MATRIX_RESULTS`` names a file, the session writes there, as JSON, every cell's
outcome (passed, failed, skipped with its reason, xfailed) and the versions of the
frameworks and servers it ran with. Without the variable, nothing is recorded.
"""

from __future__ import annotations

import json
import os
import platform
import re
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from tests.matrix.cells import cells, distributions
from tests.matrix.report import RESULTS_ENV

_CELL_IDS = {cell.id for cell in cells()}
_TEST_ID = re.compile(r"::test_cell\[(?P<id>[^\]]+)\]$")
_RANK = {"passed": 0, "skipped": 1, "xfailed": 2, "xpassed": 3, "failed": 4}

_outcomes: dict[str, dict[str, str]] = {}


def cell_id(nodeid: str) -> str | None:
    match = _TEST_ID.search(nodeid)
    if match and match.group("id") in _CELL_IDS:
        return match.group("id")
    return None


def _outcome(report: pytest.TestReport) -> tuple[str, str]:
    if hasattr(report, "wasxfail"):
        return ("xpassed" if report.passed else "xfailed"), str(report.wasxfail)
    if report.skipped:
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        return "skipped", reason.removeprefix("Skipped: ")
    if report.failed:
        crash = getattr(report.longrepr, "reprcrash", None)
        message = str(getattr(crash, "message", "") or report.longreprtext.strip())
        return "failed", f"{report.when}: {message.splitlines()[0] if message else 'failed'}"
    return "passed", ""


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    cid = cell_id(report.nodeid)
    if cid is None:
        return
    outcome, reason = _outcome(report)
    if report.when != "call" and outcome == "passed":
        return  # setup and teardown passing says nothing about the cell
    previous = _outcomes.get(cid)
    if previous is None or _RANK[outcome] > _RANK[previous["outcome"]]:
        _outcomes[cid] = {"outcome": outcome, "reason": reason}


def versions() -> dict[str, str]:
    found: dict[str, str] = {}
    for dist in distributions():
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[dist] = "not installed"
    return found


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    target = os.environ.get(RESULTS_ENV)
    if not target or not _outcomes:
        return
    results: dict[str, Any] = {
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.system(),
        "versions": versions(),
        "cells": dict(sorted(_outcomes.items())),
    }
    Path(target).write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", "utf-8")
