"""FastAPI, served by WSGI servers through ``AsgiToWsgi``."""

from __future__ import annotations

from typing import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, RedirectResponse, Response, StreamingResponse

from bridge import AsgiToWsgi
from tests.matrix.apps.common import (
    COOKIES,
    CUSTOM_HEADER,
    REDIRECT_TARGET,
    STREAM_CHUNKS,
    TARGET_TEXT,
    backend,
    hello,
)

api = FastAPI()


@api.get("/", response_class=PlainTextResponse)
async def index() -> str:
    return hello("fastapi")


@api.get("/echo-query", response_class=PlainTextResponse)
def echo_query(q: str = "") -> str:  # a sync endpoint: FastAPI runs it in a worker thread
    return q


@api.post("/echo")
async def echo(request: Request) -> Response:
    return Response(await request.body(), media_type="application/octet-stream")


@api.get("/stream")
async def stream() -> StreamingResponse:
    async def chunks() -> AsyncIterator[bytes]:
        for chunk in STREAM_CHUNKS:
            yield chunk

    return StreamingResponse(chunks(), media_type="text/plain")


@api.get("/cookie")
async def cookie() -> PlainTextResponse:
    response = PlainTextResponse("cookies", headers=dict([CUSTOM_HEADER]))
    for name, value in COOKIES:
        response.set_cookie(name, value)
    return response


@api.get("/redirect")
async def to_target() -> RedirectResponse:
    return RedirectResponse(REDIRECT_TARGET, status_code=302)


@api.get(REDIRECT_TARGET, response_class=PlainTextResponse)
async def target() -> str:
    return TARGET_TEXT


app = AsgiToWsgi(api, backend=backend())
