"""Two rows of the README's comparison, measured in-process for bridge, asgiref and
a2wsgi (their WSGI-app-under-ASGI adapters), with the same requests:

* where a Flask or Django ``async def`` view runs: asgiref's ``async_to_sync`` (which
  both frameworks call) on the server's loop, or on a new one;
* eight stalled 2 MiB uploads, four threads (asgiref has one, for every request): how
  long a small request then waits.

    python -m benchmarks.peer_behaviour
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Callable

from a2wsgi import WSGIMiddleware
from asgiref.sync import async_to_sync
from asgiref.wsgi import WsgiToAsgi as AsgirefWsgiToAsgi

from bridge import WsgiToAsgi

UPLOAD = 2 * 1024 * 1024
FIRST = 64 * 1024
STALLED = 8
THREADS = 4
WAIT = 3.0

_server_loop: list[asyncio.AbstractEventLoop] = []


async def _loop_of_view() -> asyncio.AbstractEventLoop:
    return asyncio.get_running_loop()


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    if environ["PATH_INFO"] == "/view":
        body = b"same" if async_to_sync(_loop_of_view)() is _server_loop[-1] else b"new"
    else:
        body = b"read %d" % len(environ["wsgi.input"].read())
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]


def _scope(method: str, path: str, length: int | None = None) -> dict[str, Any]:
    headers = [(b"host", b"x")]
    if length is not None:
        headers.append((b"content-length", str(length).encode()))
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }


async def _get(adapter: Any, path: str) -> bytes:
    answered = asyncio.Event()
    asked: list[bool] = []
    body: list[bytes] = []

    async def receive() -> dict[str, Any]:
        if not asked:
            asked.append(True)
            return {"type": "http.request", "body": b"", "more_body": False}
        await answered.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            body.append(message.get("body", b""))
            if not message.get("more_body", False):
                answered.set()

    await adapter(_scope("GET", path), receive, send)
    return b"".join(body)


async def _stalled_upload(adapter: Any, release: asyncio.Event) -> None:
    sent: list[bool] = []

    async def receive() -> dict[str, Any]:
        if not sent:
            sent.append(True)
            return {"type": "http.request", "body": b"u" * FIRST, "more_body": True}
        await release.wait()
        return {"type": "http.request", "body": b"u" * (UPLOAD - FIRST), "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        pass

    await adapter(_scope("POST", "/upload", UPLOAD), receive, send)


async def view_loop(adapter: Any) -> str:
    _server_loop.append(asyncio.get_running_loop())
    answer = await asyncio.wait_for(_get(adapter, "/view"), WAIT)
    return "the server's" if answer == b"same" else "a new one per call"


async def beside_stalled_uploads(adapter: Any) -> str:
    release = asyncio.Event()
    uploads = [asyncio.create_task(_stalled_upload(adapter, release)) for _ in range(STALLED)]
    await asyncio.sleep(0.2)
    started = time.monotonic()
    try:
        await asyncio.wait_for(_get(adapter, "/small"), WAIT)
        result = f"answered in {(time.monotonic() - started) * 1000:.0f} ms"
    except asyncio.TimeoutError:
        result = f"no answer within {WAIT:.0f} s"
    release.set()
    await asyncio.wait_for(asyncio.gather(*uploads), 10 * WAIT)
    return result


def main() -> None:
    subjects: dict[str, Callable[[], Any]] = {
        "bridge": lambda: WsgiToAsgi(app, max_threads=THREADS),
        "asgiref": lambda: AsgirefWsgiToAsgi(app),
        "a2wsgi": lambda: WSGIMiddleware(app, workers=THREADS),
    }
    print(f"| | {' | '.join(subjects)} |")
    print(f"|---|{'---|' * len(subjects)}")
    loops = [asyncio.run(view_loop(make())) for make in subjects.values()]
    print(f"| async view's loop | {' | '.join(loops)} |")
    waits = [asyncio.run(beside_stalled_uploads(make())) for make in subjects.values()]
    print(f"| a small request beside {STALLED} stalled uploads, {THREADS} threads | {' | '.join(waits)} |")


if __name__ == "__main__":
    main()
