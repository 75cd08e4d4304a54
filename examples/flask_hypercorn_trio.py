"""A Flask app on hypercorn's trio worker, through bridge.WsgiToAsgi.

    hypercorn -k trio -b 127.0.0.1:8000 examples.flask_hypercorn_trio:app
    curl -N http://127.0.0.1:8000/stream?n=3
    curl -T big.file http://127.0.0.1:8000/upload

The server's event loop is trio; the bridge runs the Flask views on its own thread pool,
so a slow view never blocks the loop, and a streamed response or upload moves chunk by
chunk in both directions, never buffered whole.
"""

from __future__ import annotations

import hashlib
import time
from typing import Iterator

from flask import Flask, Response, jsonify, request, stream_with_context
from flask.typing import ResponseReturnValue

from bridge import WsgiToAsgi

flask_app = Flask(__name__)


@flask_app.get("/")
def index() -> str:
    return "Hello from Flask on hypercorn's trio worker!\n"


@flask_app.get("/stream")
def stream() -> ResponseReturnValue:
    """Each line reaches the client as soon as the generator yields it."""
    count = request.args.get("n", default=5, type=int)

    def lines() -> Iterator[str]:
        for i in range(count):
            yield f"line {i} of {count}\n"
            time.sleep(0.2)  # blocking is fine: this runs in a worker thread

    # stream_with_context keeps `request` usable while the generator runs.
    return Response(stream_with_context(lines()), mimetype="text/plain")


@flask_app.route("/upload", methods=["POST", "PUT"])
def upload() -> ResponseReturnValue:
    """Reads the body as it arrives, in 64 KiB pieces (chunked uploads included)."""
    digest = hashlib.sha256()
    size = 0
    while chunk := request.stream.read(64 * 1024):
        digest.update(chunk)
        size += len(chunk)
    return jsonify(size=size, sha256=digest.hexdigest())


app = WsgiToAsgi(flask_app)
