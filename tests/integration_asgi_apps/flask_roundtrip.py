"""A Flask app served two ways: ``direct`` (the WSGI app itself) and ``app``, the round trip
``AsgiToWsgi(WsgiToAsgi(flask_app))``, which should be indistinguishable from it."""

from __future__ import annotations

from typing import Iterator

from flask import Flask, Response, jsonify, redirect, request, stream_with_context, url_for
from werkzeug.wrappers import Response as WerkzeugResponse

from bridge import AsgiToWsgi, WsgiToAsgi

from . import markers

flask_app = Flask(__name__)


@flask_app.get("/health")
def health() -> Response:
    return jsonify(ok=True)


@flask_app.get("/json")
def json_route() -> Response:
    return jsonify(
        message="hello",
        args=request.args.to_dict(flat=False),
        path=request.path,
        script_root=request.script_root,
        url=request.url,
        numbers=list(range(5)),
    )


@flask_app.post("/form")
def form() -> Response:
    return jsonify(form=request.form.to_dict(flat=False), content_type=request.content_type)


@flask_app.get("/stream")
def stream() -> Response:
    n = int(request.args.get("n", "10"))

    def generate() -> Iterator[str]:
        for i in range(n):
            yield f"line {i} {request.args.get('tag', '')}\n"

    return Response(stream_with_context(generate()), mimetype="text/plain")


@flask_app.get("/redirect")
def redirect_route() -> WerkzeugResponse:
    return redirect(url_for("json_route", via="redirect"))


@flask_app.get("/headers")
def headers() -> Response:
    response = jsonify(user_agent=request.headers.get("User-Agent"), x_test=request.headers.get("X-Test"))
    response.set_cookie("session", "abc", httponly=True)
    response.headers["X-Custom"] = "café"
    return response


direct = flask_app
app = AsgiToWsgi(WsgiToAsgi(flask_app), backend=markers.BACKEND)
