"""Quart, served by WSGI servers through ``AsgiToWsgi``."""

from __future__ import annotations

from typing import AsyncIterator

from quart import Quart, Response, redirect, request

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

quart_app = Quart(__name__)


@quart_app.get("/")
async def index() -> Response:
    return Response(hello("quart"), mimetype="text/plain")


@quart_app.get("/echo-query")
async def echo_query() -> Response:
    return Response(request.args.get("q", ""), mimetype="text/plain")


@quart_app.post("/echo")
async def echo() -> Response:
    return Response(await request.get_data(), mimetype="application/octet-stream")


@quart_app.get("/stream")
async def stream() -> Response:
    async def chunks() -> AsyncIterator[bytes]:
        for chunk in STREAM_CHUNKS:
            yield chunk

    return Response(chunks(), mimetype="text/plain")


@quart_app.get("/cookie")
async def cookie() -> Response:
    response = Response("cookies", mimetype="text/plain")
    for name, value in COOKIES:
        response.set_cookie(name, value)
    response.headers[CUSTOM_HEADER[0]] = CUSTOM_HEADER[1]
    return response


@quart_app.get("/redirect")
async def to_target() -> Response:
    return redirect(REDIRECT_TARGET, 302)  # type: ignore[return-value]


@quart_app.get(REDIRECT_TARGET)
async def target() -> Response:
    return Response(TARGET_TEXT, mimetype="text/plain")


app = AsgiToWsgi(quart_app, backend=backend())
