"""A small Flask app served by an ASGI server through bridge.WsgiToAsgi.

uvicorn examples.flask_hello:app --host 127.0.0.1 --port 8000
curl http://127.0.0.1:8000/
"""

from __future__ import annotations

import time
from typing import Iterator

from flask import Flask, Response, jsonify, request, session, stream_with_context

from bridge import WsgiToAsgi

flask_app = Flask(__name__)
flask_app.secret_key = "example-only-not-secret"


@flask_app.get("/")
def index() -> str:
    return "Hello from Flask, served through bridge.WsgiToAsgi!\n"


@flask_app.post("/echo")
def echo() -> Response:
    """Echo the request body; uploads stream in as the client sends them."""
    return Response(request.get_data(), mimetype=request.mimetype or "application/octet-stream")


@flask_app.get("/visits")
def visits() -> Response:
    session["visits"] = session.get("visits", 0) + 1
    return jsonify(visits=session["visits"])


@flask_app.get("/stream")
def stream() -> Response:
    """A streaming response: each line reaches the client as it is produced."""
    count = request.args.get("n", default=5, type=int)

    def lines() -> Iterator[str]:
        for i in range(count):
            yield f"line {i}\n"
            time.sleep(0.1)

    return Response(stream_with_context(lines()), mimetype="text/plain")


app = WsgiToAsgi(flask_app)
