"""Marker files: how the app processes tell the test process what happened inside them.

The directory comes from the ``BRIDGE_TEST_MARKERS`` environment variable, one per server,
so it is shared by every worker of that server. Writes are atomic (write, then rename) so
a test polling for a marker never reads half a file.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Literal, cast

BACKEND = cast(Literal["asyncio", "trio"], os.environ.get("BRIDGE_TEST_BACKEND", "asyncio"))


def marker_dir() -> Path:
    path = Path(os.environ.get("BRIDGE_TEST_MARKERS") or tempfile.gettempdir())
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_json(name: str, data: Any) -> None:
    directory = marker_dir()
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    with os.fdopen(fd, "w") as f:
        json.dump(data, f)
    os.replace(tmp, directory / name)


def append_line(name: str, data: Any) -> None:
    """Append one JSON line: used for events that must happen exactly once (startup)."""
    line = json.dumps(data) + "\n"
    fd = os.open(marker_dir() / name, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def exists(name: str) -> bool:
    return (marker_dir() / name).exists()


def read_json(name: str) -> Any:
    return json.loads((marker_dir() / name).read_text())


def lifecycle_event(phase: str, **extra: Any) -> None:
    """Record a lifespan startup or shutdown of this process (``startup-<pid>``)."""
    pid = os.getpid()
    append_line(f"{phase}-{pid}", {"pid": pid, "time": time.time(), **extra})


def stream_chunk(index: int, size: int) -> bytes:
    """Chunk ``index`` of the test streams (shared by the app and the tests)."""
    return (b"%06d:" % index + bytes([65 + index % 26]) * size)[:size]
