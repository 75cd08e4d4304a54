"""WSGI apps for the acceptance figures: concurrency, memory, disconnects.

``asgi``             the app through the bridge, default pool (40 threads)
``asgi_two_threads`` the same app through the bridge with ``max_threads=2``
``asgiref_asgi``     the same app through ``asgiref.wsgi.WsgiToAsgi``, for comparison
``asgi_with_hooks``  the bridge with lifespan hooks that record "startup" and "shutdown"

With ``$BRIDGE_TEST_EVENTS`` naming a file, lifespan hooks and ``close()`` of the
endless bodies append a line to it, so a test can read them after the server exited.

Routes:

``/health``                 200 ok
``/sleep?s=0.2``            sleeps in the worker thread, then answers
``/upload?token=T``         reads ``wsgi.input`` in 64 KiB reads, answers size and sha256;
                            records its progress and how reading ended (token optional)
``/upload-status?token=T``  {"outcome": how upload T ended, or null}
``/download?chunks=N``      a generator of N chunks of 64 KiB (see ``download_chunk``)
``/endless?token=T``        a chunk every 50 ms, forever; its ``close()`` is recorded
``/status?token=T``         {"started": bool, "closed": bool, "chunks": int} for stream T
``/threads``                how many threads the server process has
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from typing import Any, Callable, Iterable, Iterator
from urllib.parse import parse_qs

from asgiref.wsgi import WsgiToAsgi as AsgirefWsgiToAsgi

from bridge import WsgiToAsgi

CHUNK = 64 * 1024
TICK = 0.05

Environ = dict[str, Any]
StartResponse = Callable[..., Any]


def download_chunk(index: int) -> bytes:
    """Chunk ``index`` of a download: 64 KiB, different for every index."""
    return index.to_bytes(4, "big") * (CHUNK // 4)


def record_event(text: str) -> None:
    """Append a line to the file named by $BRIDGE_TEST_EVENTS, if set: a record that
    outlives the server process."""
    path = os.environ.get("BRIDGE_TEST_EVENTS")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(text + "\n")


class StreamState:
    def __init__(self, token: str) -> None:
        self.token = token
        self.chunks = 0
        self.closed = False


_streams: dict[str, StreamState] = {}
_uploads: dict[str, str] = {}
_streams_lock = threading.Lock()


class Endless:
    """An endless response body. Only an explicit ``close()`` marks it closed: a
    generator's ``finally`` would also run when it is merely garbage collected, which
    would hide a bridge that forgot to call ``close()``."""

    def __init__(self, state: StreamState) -> None:
        self.state = state

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        if self.state.closed:
            raise RuntimeError("the endless body was iterated after close()")
        if self.state.chunks:
            time.sleep(TICK)
        self.state.chunks += 1
        return b"tick %d\n" % self.state.chunks

    def close(self) -> None:
        self.state.closed = True
        record_event(f"closed {self.state.token}")


def _query(environ: Environ) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}


def _respond(start_response: StartResponse, data: object, status: str = "200 OK") -> list[bytes]:
    body = json.dumps(data).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    path = environ.get("PATH_INFO", "")
    query = _query(environ)
    if path == "/health":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]
    if path == "/sleep":
        time.sleep(float(query.get("s", "0.2")))
        return _respond(
            start_response, {"slept": float(query.get("s", "0.2")), "thread": threading.get_ident()}
        )
    if path == "/upload":
        stream = environ["wsgi.input"]
        digest = hashlib.sha256()
        size = 0
        token = query.get("token")
        try:
            while True:
                data = stream.read(CHUNK)
                if not data:
                    break
                digest.update(data)
                size += len(data)
                if token:
                    with _streams_lock:
                        _uploads[token] = f"reading, {size} bytes so far"
        except OSError as exc:  # PEP 3333 servers raise OSError for a client that left
            with _streams_lock:
                _uploads[token or ""] = f"{type(exc).__name__} after {size} bytes"
            return _respond(start_response, {"error": str(exc)}, "400 Bad Request")
        if token:
            with _streams_lock:
                _uploads[token] = f"complete, {size} bytes"
        return _respond(start_response, {"size": size, "sha256": digest.hexdigest()})
    if path == "/upload-status":
        with _streams_lock:
            return _respond(start_response, {"outcome": _uploads.get(query["token"])})
    if path == "/download":
        count = int(query.get("chunks", "1024"))
        start_response(
            "200 OK",
            [("Content-Type", "application/octet-stream"), ("Content-Length", str(count * CHUNK))],
        )
        return (download_chunk(i) for i in range(count))
    if path == "/endless":
        state = StreamState(query["token"])
        with _streams_lock:
            _streams[query["token"]] = state
        start_response("200 OK", [("Content-Type", "text/plain"), ("Cache-Control", "no-store")])
        return Endless(state)
    if path == "/status":
        with _streams_lock:
            found = _streams.get(query["token"])
        if found is None:
            return _respond(start_response, {"started": False, "closed": False, "chunks": 0})
        return _respond(start_response, {"started": True, "closed": found.closed, "chunks": found.chunks})
    if path == "/threads":
        return _respond(start_response, {"threads": threading.active_count()})
    return _respond(start_response, {"error": "not found"}, "404 Not Found")


asgi = WsgiToAsgi(app)
asgi_two_threads = WsgiToAsgi(app, max_threads=2)
#: Every request body streams to wsgi.input as the app reads (none received ahead).
asgi_streamed = WsgiToAsgi(app, preload_body=0, spool_body=0)
asgiref_asgi = AsgirefWsgiToAsgi(app)  # type: ignore[no-untyped-call]  # unannotated __init__


def _startup_hook() -> None:
    if os.environ.get("BRIDGE_TEST_FAIL_STARTUP"):
        raise RuntimeError("startup hook refuses to start")
    record_event("startup")


def _shutdown_hook() -> None:
    record_event("shutdown")


asgi_with_hooks = WsgiToAsgi(app, on_startup=[_startup_hook], on_shutdown=[_shutdown_hook])
