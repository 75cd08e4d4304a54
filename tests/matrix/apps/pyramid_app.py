"""Pyramid, served by ASGI servers through ``WsgiToAsgi``."""

from __future__ import annotations

from typing import Iterator

from pyramid.config import Configurator
from pyramid.httpexceptions import HTTPFound
from pyramid.request import Request
from pyramid.response import Response

from bridge import WsgiToAsgi
from tests.matrix.apps.common import (
    COOKIES,
    CUSTOM_HEADER,
    REDIRECT_TARGET,
    STREAM_CHUNKS,
    TARGET_TEXT,
    hello,
)


def text(body: str) -> Response:
    return Response(text=body, content_type="text/plain", charset="utf-8")


def index(request: Request) -> Response:
    return text(hello("pyramid"))


def echo_query(request: Request) -> Response:
    return text(request.GET.get("q", ""))


def echo(request: Request) -> Response:
    return Response(body=request.body, content_type="application/octet-stream")


def stream(request: Request) -> Response:
    def chunks() -> Iterator[bytes]:
        yield from STREAM_CHUNKS

    return Response(app_iter=chunks(), content_type="text/plain")


def cookie(request: Request) -> Response:
    response = text("cookies")
    for name, value in COOKIES:
        response.set_cookie(name, value, path="/")
    response.headers[CUSTOM_HEADER[0]] = CUSTOM_HEADER[1]
    return response


def to_target(request: Request) -> HTTPFound:
    return HTTPFound(location=REDIRECT_TARGET)


def target(request: Request) -> Response:
    return text(TARGET_TEXT)


ROUTES = {
    "index": ("/", index, "GET"),
    "echo_query": ("/echo-query", echo_query, "GET"),
    "echo": ("/echo", echo, "POST"),
    "stream": ("/stream", stream, "GET"),
    "cookie": ("/cookie", cookie, "GET"),
    "redirect": ("/redirect", to_target, "GET"),
    "target": (REDIRECT_TARGET, target, "GET"),
}

with Configurator() as config:
    for route_name, (pattern, view, method) in ROUTES.items():
        config.add_route(route_name, pattern)
        config.add_view(view, route_name=route_name, request_method=method)
    pyramid_app = config.make_wsgi_app()

app = WsgiToAsgi(pyramid_app)
