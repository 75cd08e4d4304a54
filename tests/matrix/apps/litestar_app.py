"""Litestar, served by WSGI servers through ``AsgiToWsgi``."""

from __future__ import annotations

from typing import Any, AsyncIterator

from litestar import Litestar, MediaType, Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.response import Redirect, Stream

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


@get("/", media_type=MediaType.TEXT)
async def index() -> str:
    return hello("litestar")


@get("/echo-query", media_type=MediaType.TEXT)
async def echo_query(q: str = "") -> str:
    return q


@post("/echo", status_code=200)
async def echo(request: Request[Any, Any, Any]) -> Response[bytes]:
    return Response(await request.body(), media_type="application/octet-stream")


@get("/stream")
async def stream() -> Stream:
    async def chunks() -> AsyncIterator[bytes]:
        for chunk in STREAM_CHUNKS:
            yield chunk

    return Stream(chunks(), media_type=MediaType.TEXT)


@get("/cookie")
async def cookie() -> Response[str]:
    return Response(
        "cookies",
        media_type=MediaType.TEXT,
        cookies=[Cookie(key=name, value=value) for name, value in COOKIES],
        headers=dict([CUSTOM_HEADER]),
    )


@get("/redirect")
async def to_target() -> Redirect:
    return Redirect(REDIRECT_TARGET, status_code=302)


@get(REDIRECT_TARGET, media_type=MediaType.TEXT)
async def target() -> str:
    return TARGET_TEXT


litestar_app = Litestar([index, echo_query, echo, stream, cookie, to_target, target])

app = AsgiToWsgi(litestar_app, backend=backend())
