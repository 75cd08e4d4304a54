"""A real FastAPI app, served through ``AsgiToWsgi`` (``app``).

Written against anyio only, so it runs on asyncio and on trio: the backend comes from
``BRIDGE_TEST_BACKEND``. Lifespan startup and shutdown, background tasks and the endless
stream leave marker files in ``BRIDGE_TEST_MARKERS`` (see :mod:`.markers`).
"""

from __future__ import annotations

import hashlib
import itertools
import os
import threading
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any, AsyncIterator, Optional, cast

import anyio
import sniffio
from fastapi import BackgroundTasks, Depends, FastAPI, Form, HTTPException, Request, UploadFile
from fastapi.responses import PlainTextResponse, StreamingResponse

from bridge import AsgiToWsgi

from . import markers
from .markers import stream_chunk
from .recorder import Recorder

_requests = itertools.count(1)  # per process; a preloaded master never serves


@dataclass
class Pool:
    """Stands in for a connection pool opened at startup, on the loop that serves requests."""

    name: str
    created_pid: int
    loop_thread: int
    library: str
    checkouts: int = 0
    lock: anyio.Lock = field(default_factory=anyio.Lock)

    async def query(self, value: str) -> str:
        async with self.lock:  # an anyio primitive made at startup, used by requests
            self.checkouts += 1
            return value.upper()


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
    pid = os.getpid()
    markers.lifecycle_event("startup", app="fastapi")
    pool = Pool(
        name="pool-1",
        created_pid=pid,
        loop_thread=threading.get_ident(),
        library=sniffio.current_async_library(),
    )
    yield {"pool": pool, "startup_pid": pid, "started_at": time.time()}
    markers.lifecycle_event("shutdown", app="fastapi", checkouts=pool.checkouts)


api = FastAPI(lifespan=lifespan)


def get_pool(request: Request) -> Pool:
    return cast(Pool, request.state.pool)  # starlette's State is untyped


class Settings:
    def __init__(self, greeting: str = "hello") -> None:
        self.greeting = greeting


def get_settings() -> Settings:
    return Settings()


@api.get("/health")
async def health() -> dict[str, Any]:
    return {"ok": True, "pid": os.getpid()}


@api.get("/state")
async def state(request: Request, delay: float = 0.0) -> dict[str, Any]:
    number = next(_requests)
    if delay:
        await anyio.sleep(delay)
    pool: Pool | None = getattr(request.state, "pool", None)
    return {
        "pid": os.getpid(),
        "request_number": number,
        "startup_pid": getattr(request.state, "startup_pid", None),
        "pool": pool.name if pool else None,
        "pool_loop_thread": pool.loop_thread if pool else None,
        "loop_thread": threading.get_ident(),
        "library": sniffio.current_async_library(),
    }


@api.get("/sleep")
async def sleep(seconds: float = 0.2) -> dict[str, Any]:
    start = time.monotonic()
    await anyio.sleep(seconds)
    return {"pid": os.getpid(), "slept": time.monotonic() - start, "thread": threading.get_ident()}


@api.get("/items/{item_id}")
async def item(
    item_id: int,
    pool: Annotated[Pool, Depends(get_pool)],
    settings: Annotated[Settings, Depends(get_settings)],
    q: Optional[str] = None,
) -> dict[str, Any]:
    return {
        "item_id": item_id,
        "q": q,
        "shouted": await pool.query(q or ""),
        "greeting": settings.greeting,
        "pool": pool.name,
        "library": sniffio.current_async_library(),
    }


@api.get("/sync-items/{item_id}")
def sync_item(item_id: int, settings: Annotated[Settings, Depends(get_settings)]) -> dict[str, Any]:
    # A plain def endpoint: FastAPI runs it in anyio's worker threads.
    return {"item_id": item_id, "greeting": settings.greeting, "in_loop_thread": False}


@api.post("/upload")
async def upload(file: UploadFile, note: Annotated[str, Form()]) -> dict[str, Any]:
    digest = hashlib.sha256()
    size = 0
    while chunk := await file.read(256 * 1024):
        digest.update(chunk)
        size += len(chunk)
    return {
        "filename": file.filename,
        "content_type": file.content_type,
        "size": size,
        "sha256": digest.hexdigest(),
        "note": note,
    }


@api.post("/echo-body")
async def echo_body(request: Request) -> dict[str, Any]:
    digest = hashlib.sha256()
    size = 0
    chunks = 0
    async for chunk in request.stream():
        digest.update(chunk)
        size += len(chunk)
        chunks += 1
    return {
        "size": size,
        "sha256": digest.hexdigest(),
        "messages": chunks,
        "content_length": request.headers.get("content-length"),
        "transfer_encoding": request.headers.get("transfer-encoding"),
    }


@api.get("/stream")
async def stream(n: int = 20, size: int = 10_000, gate: Optional[str] = None) -> StreamingResponse:
    """``n`` chunks of ``size`` bytes; with ``gate``, after the first chunk it waits for the
    marker file ``gate-<gate>`` (written by the test) before sending the rest."""

    async def chunks() -> AsyncIterator[bytes]:
        for index in range(n):
            yield stream_chunk(index, size)
            if index == 0 and gate is not None:
                with anyio.fail_after(30):
                    while not markers.exists(f"gate-{gate}"):
                        await anyio.sleep(0.01)

    return StreamingResponse(chunks(), media_type="application/octet-stream")


@api.get("/stream/endless")
async def endless(request: Request, token: str, size: int = 4096) -> StreamingResponse:
    """An endless stream (think server-sent events) that keeps writing, so a WSGI server
    notices a dead client when a write fails. Marks what it saw when it stops."""

    async def chunks() -> AsyncIterator[bytes]:
        index = 0
        try:
            while True:
                if await request.is_disconnected():
                    markers.write_json(f"gen-disconnected-{token}", {"time": time.time(), "chunks": index})
                    return
                yield stream_chunk(index, size)
                index += 1
                await anyio.sleep(0.005)
        finally:
            markers.write_json(f"gen-finally-{token}", {"time": time.time(), "chunks": index})

    return StreamingResponse(chunks(), media_type="application/octet-stream")


@api.api_route("/head-json", methods=["GET", "HEAD"])
async def head_json() -> dict[str, Any]:
    return {"message": "x" * 500}


@api.api_route("/head-stream", methods=["GET", "HEAD"])
async def head_stream() -> StreamingResponse:
    async def chunks() -> AsyncIterator[bytes]:
        for index in range(5):
            yield stream_chunk(index, 1000)

    return StreamingResponse(chunks(), media_type="application/octet-stream")


@api.api_route("/head-endless", methods=["GET", "HEAD"])
async def head_endless(token: str = "") -> StreamingResponse:
    async def chunks() -> AsyncIterator[bytes]:
        index = 0
        while True:
            yield stream_chunk(index, 1000)
            index += 1
            await anyio.sleep(0.01)

    return StreamingResponse(chunks(), media_type="text/event-stream")


@api.post("/background")
async def background(key: str, tasks: BackgroundTasks) -> dict[str, Any]:
    """Schedules a task that runs after the response: it waits for ``go-<key>`` (so the
    test can check that the response came first), then writes ``bg-<key>``."""

    async def later() -> None:
        with anyio.fail_after(30):
            while not markers.exists(f"go-{key}"):
                await anyio.sleep(0.01)
        markers.write_json(f"bg-{key}", {"pid": os.getpid(), "time": time.time()})

    tasks.add_task(later)
    return {"scheduled": key}


@api.get("/background/{key}")
async def background_result(key: str) -> dict[str, Any]:
    if not markers.exists(f"bg-{key}"):
        raise HTTPException(status_code=404, detail="not yet")
    return cast("dict[str, Any]", markers.read_json(f"bg-{key}"))


class Boom(RuntimeError):
    pass


@api.get("/boom")
async def boom(token: str = "") -> dict[str, Any]:
    raise Boom(f"fastapi boom {token}")


@api.get("/text", response_class=PlainTextResponse)
async def text() -> str:
    return "plain text\n"


app = AsgiToWsgi(Recorder(api), backend=markers.BACKEND, lifespan="on")
