"""Two rows of the README's comparison, measured in-process for bridge, asgiref and
a2wsgi (their WSGI-app-under-ASGI adapters), with the same requests:

* where a Flask or Django ``async def`` view runs: asgiref's ``async_to_sync`` (which
  both frameworks call) on the server's loop, or on a new one;
* eight stalled 2 MiB uploads, four threads (asgiref has one, for every request): how
  long a small request then waits;
* (ASGI app under a WSGI server, bridge and a2wsgi) a client that leaves mid-upload to
  an app that then never answers: whether the WSGI server's thread comes back.

    python -m benchmarks.peer_behaviour
"""

from __future__ import annotations

import asyncio
import io
import threading
import time
from typing import Any, Callable

from a2wsgi import ASGIMiddleware, WSGIMiddleware
from asgiref.sync import async_to_sync
from asgiref.wsgi import WsgiToAsgi as AsgirefWsgiToAsgi

from bridge import AsgiToWsgi, WsgiToAsgi

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


async def _never_answers(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    while True:
        message = await receive()
        if message["type"] == "http.disconnect" or not message.get("more_body"):
            break
    await asyncio.sleep(3600)  # told its client left, it never answers


def thread_after_client_left(adapter: Any) -> str:
    """A WSGI server's thread calls the adapter for an upload whose client left after
    1,000 of 2,000,000 bytes (wsgi.input ends early)."""
    environ = {
        "REQUEST_METHOD": "POST", "PATH_INFO": "/", "QUERY_STRING": "", "SERVER_NAME": "x",
        "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http",
        "CONTENT_LENGTH": "2000000", "wsgi.input": io.BytesIO(b"x" * 1000), "wsgi.errors": io.StringIO(),
        "wsgi.version": (1, 0), "wsgi.multithread": True, "wsgi.multiprocess": False, "wsgi.run_once": False,
    }  # fmt: skip
    returned = threading.Event()

    def serve() -> None:
        try:
            result = adapter(environ, lambda *args: None)
            list(result)
            getattr(result, "close", lambda: None)()
        except Exception:  # how it ends does not matter here, only that it does
            pass
        returned.set()

    started = time.monotonic()
    threading.Thread(target=serve, daemon=True).start()
    if returned.wait(2 * WAIT):
        return f"freed after {time.monotonic() - started:.1f} s"
    return f"still held after {2 * WAIT:.0f} s"


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
    bridge = AsgiToWsgi(_never_answers, disconnect_grace=1.0)
    held = [
        thread_after_client_left(bridge),
        "(no such adapter)",
        thread_after_client_left(ASGIMiddleware(_never_answers)),
    ]
    bridge.close()
    print(f"| ASGI app: client gone mid-upload, app never answers: the WSGI thread | {' | '.join(held)} |")


if __name__ == "__main__":
    main()
