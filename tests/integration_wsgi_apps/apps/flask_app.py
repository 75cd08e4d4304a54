"""A Flask app served through the bridge: ``tests.integration_wsgi_apps.apps.flask_app:asgi``."""

from __future__ import annotations

import hashlib
from typing import Iterator

from flask import (
    Flask,
    Response,
    jsonify,
    make_response,
    redirect,
    request,
    send_file,
    session,
    stream_with_context,
    url_for,
)
from werkzeug.wrappers import Response as WerkzeugResponse

from bridge import WsgiToAsgi

app = Flask(__name__)
app.secret_key = "bridge-integration-tests"
# A view that raises reaches the bridge and then the ASGI server, which answers 500
# and logs the traceback: the bridge must be transparent to the app's errors.
app.config["PROPAGATE_EXCEPTIONS"] = True


def _digest(data: bytes) -> dict[str, object]:
    return {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


@app.get("/health")
def health() -> str:
    return "ok"


@app.get("/hello")
def hello() -> str:
    return "Hello, bridge!"


@app.route("/session", methods=["GET", "POST"])
def session_view() -> Response | str:
    if request.method == "POST":
        session["name"] = request.form["name"]
        session["visits"] = 0
        return "stored"
    if "name" not in session:
        return jsonify(name=None, visits=None)
    session["visits"] = session["visits"] + 1
    return jsonify(name=session["name"], visits=session["visits"])


@app.post("/upload")
def upload() -> Response:
    stored = request.files["file"]
    data = stored.read()
    return jsonify(
        filename=stored.filename,
        mimetype=stored.mimetype,
        fields=request.form.to_dict(flat=False),
        **_digest(data),
    )


@app.post("/form")
def form() -> Response:
    return jsonify(form=request.form.to_dict(flat=False), content_type=request.mimetype)


@app.post("/json")
def json_view() -> Response:
    return jsonify(received=request.get_json(), content_type=request.mimetype)


@app.post("/raw")
def raw() -> Response:
    # Without Content-Length, Werkzeug reads to EOF only because the server (here:
    # the bridge) sets wsgi.input_terminated.
    data = request.get_data()
    return jsonify(
        content_length=request.environ.get("CONTENT_LENGTH"),
        transfer_encoding=request.headers.get("Transfer-Encoding"),
        input_terminated=request.environ.get("wsgi.input_terminated"),
        **_digest(data),
    )


@app.get("/query")
def query() -> Response:
    return jsonify(
        args=request.args.to_dict(flat=False),
        query_string=request.environ["QUERY_STRING"],
    )


@app.get("/path/<path:rest>")
def path_view(rest: str) -> Response:
    return jsonify(
        rest=rest,
        path_info=request.environ["PATH_INFO"],
        request_uri=request.environ.get("REQUEST_URI"),
    )


@app.get("/stream")
def stream() -> Response:
    count = request.args.get("n", 5, type=int)

    @stream_with_context
    def generate() -> Iterator[str]:
        # `request` is usable while streaming only thanks to stream_with_context.
        tag = request.args.get("tag", "")
        for i in range(count):
            yield f"{i}:{tag}\n"

    # Flask types the decorator form as taking the iterator it wraps; it takes generate's
    # own arguments (none).
    return Response(generate(), mimetype="text/plain")  # type: ignore[call-arg]


@app.get("/boom")
def boom() -> str:
    raise RuntimeError("boom from a Flask view")


@app.get("/stream-boom")
def stream_boom() -> Response:
    def generate() -> Iterator[bytes]:
        yield b"first chunk\n"
        raise RuntimeError("boom while streaming")

    return Response(generate(), mimetype="text/plain")


@app.get("/go")
def go() -> WerkzeugResponse:
    return redirect(url_for("hello"))


@app.get("/urls")
def urls() -> Response:
    return jsonify(
        hello=url_for("hello"),
        external=url_for("hello", _external=True),
        script_root=request.script_root,
        path=request.path,
        url=request.url,
    )


@app.get("/file")
def file() -> Response:
    """This very source file: send_file with conditional requests and ranges, through
    wsgi.file_wrapper when the server (here: the bridge) offers one."""
    return send_file(__file__, mimetype="text/x-python", conditional=True, etag=True)


@app.get("/nocontent")
def nocontent() -> tuple[str, int]:
    return "", 204


@app.get("/cookies")
def cookies() -> Response:
    response = make_response("two cookies")
    response.set_cookie("first", "1")
    response.set_cookie("second", "2", httponly=True)
    return response


@app.route("/conn", methods=["GET", "POST"])
def conn() -> Response:
    """Which connection served this request, and what it carried."""
    return jsonify(
        remote_port=request.environ.get("REMOTE_PORT"),
        n=request.args.get("n"),
        body=request.get_data().decode("latin-1"),
    )


asgi = WsgiToAsgi(app)
