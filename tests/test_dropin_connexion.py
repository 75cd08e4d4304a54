"""bridge as Connexion's WSGI-to-ASGI adapter (it uses a2wsgi's by default): its
FlaskApp.add_wsgi_middleware() reads and replaces the adapter's ``.app``."""

from __future__ import annotations

from typing import Any, Callable, Iterable, cast

import connexion.apps.flask as connexion_flask
import pytest

from bridge import WsgiToAsgi


class Tag:
    """A WSGI middleware that marks the environ."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        environ["HTTP_X_TAGGED"] = "tagged"
        return self.app(environ, start_response)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_add_wsgi_middleware_wraps_the_app_inside_bridge(monkeypatch: pytest.MonkeyPatch) -> None:
    from flask import Flask, request

    monkeypatch.setattr(connexion_flask, "WSGIMiddleware", WsgiToAsgi)
    app = connexion_flask.FlaskApp(__name__)
    flask_app: Flask = app.app  # connexion is untyped

    @flask_app.route("/hello")
    def hello() -> str:
        return "hello " + cast(str, request.environ.get("HTTP_X_TAGGED", "untagged"))

    app.add_wsgi_middleware(Tag)
    adapter = app._middleware_app.asgi_app
    assert isinstance(adapter, WsgiToAsgi)
    assert isinstance(adapter.app, Tag)
    response = app.test_client().get("/hello")
    assert (response.status_code, response.text) == (200, "hello tagged")
