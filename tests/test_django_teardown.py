"""Django's request_finished (which closes the database connections of the thread it
runs on) ends before the WSGI server starts the next request on the same thread: the
response's close() gives the app ``teardown_wait`` to return after its last body
message (issue 10, item 8)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def signal_order(requests: int, teardown_wait: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-m", "tests.django_teardown_app", str(requests), teardown_wait],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return list(json.loads(out.stdout.strip().splitlines()[-1]))


def test_request_finished_runs_before_the_next_request_starts() -> None:
    assert signal_order(10, "default") == ["started", "finished"] * 10


def test_without_teardown_wait_the_next_request_overtakes_the_teardown() -> None:
    """What the setting is for: with 0, the server starts the next request as soon as
    the response is written, while the 20 ms teardown of the last one still runs."""
    events = signal_order(10, "0")
    assert sorted(events) == ["finished"] * 10 + ["started"] * 10
    assert events != ["started", "finished"] * 10
