"""Small hand-written WSGI apps, each wrapped in ``wsgiref.validate.validator``:
``tests.integration_wsgi_apps.apps.validated:asgi``.

The validator checks the server side of PEP 3333 too (here: the bridge): the environ,
``wsgi.input``, ``wsgi.errors``, ``start_response``, ``write()``, and that the
iterable is never read after ``close()``. A violation raises ``AssertionError`` inside
the request, which the server turns into a 500; its warnings are made errors here,
so they fail the same way. The one check that cannot fail a request, "iterator
garbage collected without being closed", is raised from ``__del__``: an unraisable
hook records it, and ``/__problems__`` reports it.
"""

from __future__ import annotations

import gc
import hashlib
import json
import sys
import threading
import warnings
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator
from wsgiref.validate import WSGIWarning, validator

from bridge import WsgiToAsgi

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse

warnings.simplefilter("error", WSGIWarning)

Environ = dict[str, Any]

_problems: list[str] = []
_problems_lock = threading.Lock()
_previous_hook = sys.unraisablehook


def _record_unraisable(unraisable: Any) -> None:
    with _problems_lock:
        _problems.append(f"{unraisable.exc_type.__name__}: {unraisable.exc_value}")
    _previous_hook(unraisable)


sys.unraisablehook = _record_unraisable

TEXT = [("Content-Type", "text/plain; charset=utf-8")]


def health(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", TEXT)
    return [b"ok"]


def list_response(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", [*TEXT, ("X-Kind", "list")])
    return [b"Hello, ", b"", b"list", b"!"]


def generator_response(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    count = int(environ.get("QUERY_STRING") or "3")
    start_response("200 OK", TEXT)

    def body() -> Iterator[bytes]:
        yield b""  # an empty first chunk: no headers may go out for it
        for i in range(count):
            yield b"chunk %d\n" % i

    return body()


def lazy_start_generator(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """start_response is called from inside the generator, before the first chunk."""

    def body() -> Iterator[bytes]:
        start_response("201 Created", [*TEXT, ("X-Lazy", "yes")])
        yield b"created lazily"

    return body()


def write_callable(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    write = start_response("200 OK", TEXT)
    write(b"written ")
    write(b"")
    write(b"then ")
    return [b"returned"]


def write_only(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    write = start_response("200 OK", TEXT)
    write(b"only written")
    return []


def declared_length(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", [*TEXT, ("Content-Length", "10")])
    return iter([b"0123", b"456789"])


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_sized(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """wsgi.input.read(n) in a loop: reports the sizes of the pieces and a digest."""
    size = int(environ.get("QUERY_STRING") or "7")
    stream = environ["wsgi.input"]
    pieces = []
    while True:
        piece = stream.read(size)
        if not piece:
            break
        pieces.append(piece)
    again = stream.read(size)  # reading at EOF keeps returning b""
    data = b"".join(pieces)
    return _json(
        start_response,
        {
            "sizes": sorted(set(len(p) for p in pieces[:-1])),
            "last": len(pieces[-1]) if pieces else 0,
            "size": len(data),
            "sha256": _digest(data),
            "again": again.decode("latin-1"),
        },
    )


def read_lines(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """readline(), readline(n) and readlines() on wsgi.input."""
    stream = environ["wsgi.input"]
    first = stream.readline()
    limited = [stream.readline(5), stream.readline(5)]
    rest = stream.readlines()
    return _json(
        start_response,
        {
            "first": first.decode("latin-1"),
            "limited": [x.decode("latin-1") for x in limited],
            "rest_lengths": [len(x) for x in rest],
            "rest_sha256": _digest(b"".join(rest)),
            "eof": stream.readline().decode("latin-1"),
        },
    )


def iterate_input(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """``for line in wsgi.input`` (through the validator's wrapper, which iterates
    with readline())."""
    lines = list(environ["wsgi.input"])
    return _json(start_response, {"lengths": [len(x) for x in lines], "sha256": _digest(b"".join(lines))})


def iterate_input_directly(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """``for line in wsgi.input`` on the bridge's own stream object, not the
    validator's wrapper (the validator still checks everything else)."""
    lines = list(environ["bridge.test.raw_input"])
    return _json(start_response, {"lengths": [len(x) for x in lines], "sha256": _digest(b"".join(lines))})


def report_environ(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    keys = [
        "REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "CONTENT_TYPE",
        "CONTENT_LENGTH", "SERVER_NAME", "SERVER_PORT", "SERVER_PROTOCOL", "REMOTE_ADDR",
        "REMOTE_PORT", "HTTP_HOST", "HTTP_X_CUSTOM", "HTTP_COOKIE", "wsgi.url_scheme",
        "wsgi.multithread", "wsgi.multiprocess", "wsgi.run_once", "wsgi.input_terminated",
    ]  # fmt: skip
    report = {key: environ.get(key) for key in keys}
    report["wsgi.version"] = list(environ["wsgi.version"])
    report["environ_type"] = type(environ).__name__
    report["HTTP_CONTENT_TYPE present"] = "HTTP_CONTENT_TYPE" in environ
    report["HTTP_CONTENT_LENGTH present"] = "HTTP_CONTENT_LENGTH" in environ
    report["body"] = environ["wsgi.input"].read(1 << 20).decode("latin-1")
    return _json(start_response, report)


def write_errors(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    errors = environ["wsgi.errors"]
    errors.write("validated app: a line for wsgi.errors ☃\n")
    errors.writelines(["validated app: ", "writelines works\n"])
    errors.flush()
    start_response("200 OK", TEXT)
    return [b"logged"]


def exc_info_error_page(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """The app handles its own error: start_response again, with exc_info."""
    start_response("200 OK", TEXT)
    try:
        raise ValueError("handled by the app")
    except ValueError:
        start_response("503 Service Unavailable", [*TEXT, ("X-Error", "handled")], sys.exc_info())
    return [b"sorry, try later"]


class ClosingIterable:
    """An iterable with close(): records that the server closed it."""

    closed = 0
    lock = threading.Lock()

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.chunks)

    def close(self) -> None:
        with ClosingIterable.lock:
            ClosingIterable.closed += 1


def closing(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", TEXT)
    return ClosingIterable([b"closable ", b"body"])


ROUTES: dict[str, Callable[[Environ, StartResponse], Iterable[bytes]]] = {
    "/health": health,
    "/list": list_response,
    "/generator": generator_response,
    "/lazy": lazy_start_generator,
    "/write": write_callable,
    "/write-only": write_only,
    "/declared-length": declared_length,
    "/read": read_sized,
    "/readline": read_lines,
    "/iterate": iterate_input,
    "/iterate-raw": iterate_input_directly,
    "/environ": report_environ,
    "/errors": write_errors,
    "/exc-info": exc_info_error_page,
    "/closing": closing,
}
VALIDATED = {path: validator(view) for path, view in ROUTES.items()}


def _json(start_response: StartResponse, data: object) -> list[bytes]:
    body = json.dumps(data).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def _not_found(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    start_response("404 Not Found", TEXT)
    return [b"not found"]


def router(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """Dispatch on PATH_INFO; transparent (the validator sits under it, at the app)."""
    path = environ.get("PATH_INFO", "")
    # The validator replaces wsgi.input with its wrapper; keep the original reachable.
    environ["bridge.test.raw_input"] = environ["wsgi.input"]
    if path == "/__problems__":
        gc.collect()  # let any unclosed, unreachable iterator complain now
        with _problems_lock:
            body = json.dumps({"problems": list(_problems), "closed": ClosingIterable.closed}).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]
    return VALIDATED.get(path, validator(_not_found))(environ, start_response)


asgi = WsgiToAsgi(router)
