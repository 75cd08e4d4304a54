"""Starlette, served by WSGI servers through ``AsgiToWsgi``."""

from __future__ import annotations

from typing import Iterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

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


async def index(request: Request) -> Response:
    return PlainTextResponse(hello("starlette"))


async def echo_query(request: Request) -> Response:
    return PlainTextResponse(request.query_params.get("q", ""))


async def echo(request: Request) -> Response:
    return Response(await request.body(), media_type="application/octet-stream")


async def stream(request: Request) -> Response:
    def chunks() -> Iterator[bytes]:  # a sync generator: Starlette iterates it in a thread
        yield from STREAM_CHUNKS

    return StreamingResponse(chunks(), media_type="text/plain")


async def cookie(request: Request) -> Response:
    response = PlainTextResponse("cookies", headers=dict([CUSTOM_HEADER]))
    for name, value in COOKIES:
        response.set_cookie(name, value)
    return response


async def to_target(request: Request) -> Response:
    return RedirectResponse(REDIRECT_TARGET, status_code=302)


async def target(request: Request) -> Response:
    return PlainTextResponse(TARGET_TEXT)


starlette_app = Starlette(
    routes=[
        Route("/", index),
        Route("/echo-query", echo_query),
        Route("/echo", echo, methods=["POST"]),
        Route("/stream", stream),
        Route("/cookie", cookie),
        Route("/redirect", to_target),
        Route(REDIRECT_TARGET, target),
    ]
)

app = AsgiToWsgi(starlette_app, backend=backend())
