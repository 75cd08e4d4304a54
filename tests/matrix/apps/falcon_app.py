"""Falcon (its WSGI ``falcon.App``), served by ASGI servers through ``WsgiToAsgi``."""

from __future__ import annotations

import falcon

from bridge import WsgiToAsgi
from tests.matrix.apps.common import (
    COOKIES,
    CUSTOM_HEADER,
    REDIRECT_TARGET,
    STREAM_CHUNKS,
    TARGET_TEXT,
    hello,
)


class Index:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = falcon.MEDIA_TEXT
        resp.text = hello("falcon")


class EchoQuery:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = falcon.MEDIA_TEXT
        resp.text = req.get_param("q") or ""


class Echo:
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = "application/octet-stream"
        resp.data = req.bounded_stream.read()


class Stream:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = falcon.MEDIA_TEXT
        resp.stream = iter(STREAM_CHUNKS)


class Cookie:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = falcon.MEDIA_TEXT
        resp.text = "cookies"
        for name, value in COOKIES:
            resp.set_cookie(name, value, secure=False, path="/")
        resp.set_header(*CUSTOM_HEADER)


class Redirect:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        raise falcon.HTTPFound(REDIRECT_TARGET)


class Target:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = falcon.MEDIA_TEXT
        resp.text = TARGET_TEXT


falcon_app = falcon.App()
falcon_app.add_route("/", Index())
falcon_app.add_route("/echo-query", EchoQuery())
falcon_app.add_route("/echo", Echo())
falcon_app.add_route("/stream", Stream())
falcon_app.add_route("/cookie", Cookie())
falcon_app.add_route("/redirect", Redirect())
falcon_app.add_route(REDIRECT_TARGET, Target())

app = WsgiToAsgi(falcon_app)
