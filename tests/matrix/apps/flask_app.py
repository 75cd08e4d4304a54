"""Flask, served by ASGI servers through ``WsgiToAsgi``."""

from __future__ import annotations

from typing import Iterator

from flask import Flask, Response, redirect, request

from bridge import WsgiToAsgi
from tests.matrix.apps.common import (
    COOKIES,
    CUSTOM_HEADER,
    REDIRECT_TARGET,
    STREAM_CHUNKS,
    TARGET_TEXT,
    hello,
)

flask_app = Flask(__name__)


@flask_app.get("/")
def index() -> Response:
    return Response(hello("flask"), mimetype="text/plain")


@flask_app.get("/echo-query")
def echo_query() -> Response:
    return Response(request.args.get("q", ""), mimetype="text/plain")


@flask_app.post("/echo")
def echo() -> Response:
    return Response(request.get_data(), mimetype="application/octet-stream")


@flask_app.get("/stream")
def stream() -> Response:
    def chunks() -> Iterator[bytes]:
        yield from STREAM_CHUNKS

    return Response(chunks(), mimetype="text/plain")


@flask_app.get("/cookie")
def cookie() -> Response:
    response = Response("cookies", mimetype="text/plain")
    for name, value in COOKIES:
        response.set_cookie(name, value)
    response.headers[CUSTOM_HEADER[0]] = CUSTOM_HEADER[1]
    return response


@flask_app.get("/redirect")
def to_target() -> Response:
    return redirect(REDIRECT_TARGET, 302)  # type: ignore[return-value]


@flask_app.get(REDIRECT_TARGET)
def target() -> Response:
    return Response(TARGET_TEXT, mimetype="text/plain")


app = WsgiToAsgi(flask_app)
