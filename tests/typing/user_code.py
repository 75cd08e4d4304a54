"""What a user writes: checked by ``mypy --strict`` in tests/test_typing.py, no ignores.

Each wrapped app is handed to something that declares the protocol it expects (a
server, a framework's mount, typeshed's WSGI types), so a wrong signature in bridge's
public API would show up here as a type error.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from wsgiref.simple_server import make_server

import uvicorn
from fastapi import FastAPI
from flask import Flask
from starlette.applications import Starlette
from starlette.routing import Mount

from bridge import AsgiToWsgi, BridgeError, ClientDisconnected, WsgiToAsgi

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

flask_app = Flask(__name__)


@flask_app.get("/")
def index() -> str:
    return "hello"


api = FastAPI()


@api.get("/")
async def root() -> dict[str, str]:
    return {"hello": "world"}


# A WSGI app under ASGI: the adapter is an ASGI app for uvicorn and for Starlette's Mount.
legacy = WsgiToAsgi(flask_app, max_threads=8)
site = Starlette(routes=[Mount("/legacy", app=legacy)])
api.mount("/old", WsgiToAsgi(flask_app))


def serve_asgi() -> None:
    uvicorn.run(legacy, host="127.0.0.1", port=8000)


# An ASGI app under WSGI: the adapter is a WSGI application as typeshed defines it.
wsgi: WSGIApplication = AsgiToWsgi(api, lifespan="on")
also_wsgi: WSGIApplication = AsgiToWsgi(site, backend="trio", preload_body=0)
round_trip = WsgiToAsgi(AsgiToWsgi(api))


def serve_wsgi() -> None:
    with make_server("127.0.0.1", 8000, wsgi) as server:
        server.handle_request()


def lifespan_state() -> object:
    adapter = AsgiToWsgi(api)
    adapter.start()
    state = adapter.state
    adapter.close()
    return state


def handles_errors() -> str:
    try:
        serve_wsgi()
    except ClientDisconnected as exc:
        return f"client left: {exc.errno}"
    except BridgeError as exc:
        return str(exc)
    return "ok"
