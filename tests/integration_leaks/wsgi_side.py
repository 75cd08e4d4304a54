"""A WSGI app through WsgiToAsgi, for uvicorn and hypercorn: a route for every way a
request can end, and ``/stats``, the process's own state (see :mod:`.tracking`)."""

from __future__ import annotations

import json
import time
from typing import Any, Callable, Iterable, Iterator

from bridge import WsgiToAsgi

from . import tracking
from .tracking import Tracked, track

CHUNK = 16 * 1024
STREAM_CHUNKS = 400  # 6.4 MB at most, 2 s at least: long enough to be cut, bounded anyway


def _json(start_response: Callable[..., Any], data: Any) -> list[bytes]:
    body = json.dumps(data).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def _stream(tracked: Tracked, fail_after: int | None) -> Iterator[bytes]:
    tracking.bump("stream_started")
    try:
        for index in range(STREAM_CHUNKS):
            if fail_after is not None and index == fail_after:
                raise RuntimeError("the app failed in the middle of its stream")
            yield bytes([65 + index % 26]) * CHUNK
            time.sleep(0.005)
        del tracked
    finally:
        tracking.bump("stream_finally")


def wsgi_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    path = environ["PATH_INFO"]
    if path == "/health":
        return _json(start_response, {"ok": True})
    if path == "/stats":
        return _json(start_response, tracking.stats())
    tracked = track(path)
    if path == "/small":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
        return [b"ok"]
    if path == "/echo":
        body = environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]
    if path in ("/stream", "/stream-then-raise"):
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return _stream(tracked, None)
    if path == "/error-before":
        raise RuntimeError("the app failed before its response")
    if path == "/error-mid":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return _stream(tracked, 3)
    start_response("404 Not Found", [("Content-Length", "0")])
    return []


app = WsgiToAsgi(
    wsgi_app,
    max_threads=8,
    on_startup=[lambda: tracking.write_marker("startup")],
    on_shutdown=[lambda: tracking.write_marker("shutdown")],
)
