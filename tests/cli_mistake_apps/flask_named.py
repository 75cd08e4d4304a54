"""A Flask app not called ``app``, beside werkzeug's context proxies, as most Flask
modules have them: finding the app must not touch the proxies (they raise outside a
request)."""

from __future__ import annotations

from flask import Flask, current_app, g, request, session

web = Flask(__name__)


@web.get("/")
def index() -> str:
    return f"{request.method} {current_app.name} {bool(session)} {g}"


def create_app(name: str = __name__, *, debug: bool = False) -> Flask:
    app = Flask(name)
    app.debug = debug

    @app.get("/")
    def hello() -> str:
        return f"hello from {name}, debug={app.debug}\n"

    return app
