"""Bottle, served by ASGI servers through ``WsgiToAsgi``."""

from __future__ import annotations

from typing import Iterator

import bottle

from bridge import WsgiToAsgi
from tests.matrix.apps.common import (
    COOKIES,
    CUSTOM_HEADER,
    REDIRECT_TARGET,
    STREAM_CHUNKS,
    TARGET_TEXT,
    hello,
)

bottle_app = bottle.Bottle()


@bottle_app.get("/")
def index() -> str:
    bottle.response.content_type = "text/plain; charset=utf-8"
    return hello("bottle")


@bottle_app.get("/echo-query")
def echo_query() -> str:
    bottle.response.content_type = "text/plain; charset=utf-8"
    return str(bottle.request.query.getunicode("q", default=""))


@bottle_app.post("/echo")
def echo() -> bytes:
    bottle.response.content_type = "application/octet-stream"
    return bytes(bottle.request.body.read())


@bottle_app.get("/stream")
def stream() -> Iterator[bytes]:
    bottle.response.content_type = "text/plain"
    yield from STREAM_CHUNKS


@bottle_app.get("/cookie")
def cookie() -> str:
    bottle.response.content_type = "text/plain; charset=utf-8"
    for name, value in COOKIES:
        bottle.response.set_cookie(name, value, path="/")
    bottle.response.set_header(*CUSTOM_HEADER)
    return "cookies"


@bottle_app.get("/redirect")
def to_target() -> None:
    bottle.redirect(REDIRECT_TARGET, 302)  # raises HTTPResponse, with an absolute Location


@bottle_app.get(REDIRECT_TARGET)
def target() -> str:
    bottle.response.content_type = "text/plain; charset=utf-8"
    return TARGET_TEXT


app = WsgiToAsgi(bottle_app)
