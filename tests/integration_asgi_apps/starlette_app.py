"""A small Starlette app (lifespan with state, a form, a stream), through ``AsgiToWsgi``."""

from __future__ import annotations

import os
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

import anyio
import sniffio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route

from bridge import AsgiToWsgi

from . import markers


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
    markers.lifecycle_event("startup", app="starlette")
    yield {"greeting": "hi from lifespan", "startup_pid": os.getpid()}
    markers.lifecycle_event("shutdown", app="starlette")


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True, "pid": os.getpid()})


async def homepage(request: Request) -> PlainTextResponse:
    return PlainTextResponse(f"hello {request.path_params.get('name', 'world')}\n")


async def info(request: Request) -> JSONResponse:
    return JSONResponse(
        {
            "greeting": request.state.greeting,
            "startup_pid": request.state.startup_pid,
            "pid": os.getpid(),
            "library": sniffio.current_async_library(),
            "method": request.method,
            "path": request.url.path,
            "query": dict(request.query_params),
            "headers": {"x-test": request.headers.get("x-test")},
        }
    )


async def form(request: Request) -> JSONResponse:
    data = await request.form()
    return JSONResponse({key: data.getlist(key) for key in data})


async def countdown(request: Request) -> StreamingResponse:
    n = int(request.query_params.get("n", "5"))

    async def lines() -> AsyncIterator[str]:
        for i in range(n, 0, -1):
            yield f"{i}\n"
            await anyio.sleep(0)
        yield "liftoff\n"

    return StreamingResponse(lines(), media_type="text/plain")


api = Starlette(
    routes=[
        Route("/health", health),
        Route("/", homepage),
        Route("/hello/{name}", homepage),
        Route("/info", info),
        Route("/form", form, methods=["POST"]),
        Route("/countdown", countdown),
    ],
    lifespan=lifespan,
)

app = AsgiToWsgi(api, backend=markers.BACKEND)
