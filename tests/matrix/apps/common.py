"""What every matrix app does, shared by the apps and by ``tests.matrix.checks``:

- ``GET /``: 200, ``text/plain``, ``hello(<framework id>)``;
- ``GET /echo-query?q=...``: the decoded value of ``q``, as UTF-8 ``text/plain``;
- ``POST /echo``: 200, the request body, ``application/octet-stream``;
- ``GET /stream``: a streamed response (a generator), ``STREAM_CHUNKS`` one after the other;
- ``GET /cookie``: 200, one ``Set-Cookie`` per ``COOKIES`` entry, and ``CUSTOM_HEADER``;
- ``GET /redirect``: 302 to ``REDIRECT_TARGET`` (relative or absolute), which answers 200;
- any other path: 404.

Only the standard library here: the test process imports it without any framework.
"""

from __future__ import annotations

import os
from typing import Literal, cast

STREAM_CHUNKS: tuple[bytes, ...] = tuple(f"chunk {i:02d} ".encode() + b"." * 4000 + b"\n" for i in range(8))
COOKIES: tuple[tuple[str, str], ...] = (("flavour", "chocolate"), ("size", "large"))
CUSTOM_HEADER: tuple[str, str] = ("X-Matrix", "custom-value")
REDIRECT_TARGET = "/target"
TARGET_TEXT = "redirect target"

#: The AsgiToWsgi event loop backend of the ASGI apps (``asyncio`` unless a matrix column
#: sets it).
BACKEND_ENV = "BRIDGE_MATRIX_BACKEND"


def hello(name: str) -> str:
    return f"hello from {name}"


def backend() -> Literal["asyncio", "trio"]:
    return cast(Literal["asyncio", "trio"], os.environ.get(BACKEND_ENV, "asyncio"))
