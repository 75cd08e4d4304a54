"""Serve a WSGI app with waitress, werkzeug or wsgiref, the way one deploys them, with SIGTERM
turned into an orderly exit (none of the three installs a SIGTERM handler: without one the
process dies at once and ``atexit`` hooks, such as the bridge's lifespan shutdown, never run).

    python -m tests.matrix.serve {waitress|werkzeug|wsgiref} module:attr PORT
"""

from __future__ import annotations

import importlib
import logging
import signal
import sys
from socketserver import ThreadingMixIn
from types import FrameType
from typing import Any, Optional
from wsgiref.simple_server import WSGIServer

HOST = "127.0.0.1"
THREADS = 4


class ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    """wsgiref's server, one thread per connection (it answers in HTTP/1.0 and closes)."""

    daemon_threads = True


def load(target: str) -> Any:
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr or "app")


def on_sigterm(signum: int, frame: Optional[FrameType]) -> None:
    raise SystemExit(0)


def serve(kind: str, app: Any, port: int) -> None:
    if kind == "waitress":
        import waitress

        waitress.serve(app, host=HOST, port=port, threads=THREADS)
    elif kind == "werkzeug":
        from werkzeug.serving import make_server

        make_server(HOST, port, app, threaded=True).serve_forever()
    elif kind == "wsgiref":
        from wsgiref.simple_server import make_server as wsgiref_server

        with wsgiref_server(HOST, port, app, server_class=ThreadingWSGIServer) as server:
            print(f"wsgiref serving on http://{HOST}:{port}", file=sys.stderr, flush=True)
            server.serve_forever()
    else:
        raise SystemExit(f"unknown server {kind!r}")


def main(argv: list[str]) -> None:
    kind, target, port = argv[0], argv[1], int(argv[2])
    signal.signal(signal.SIGTERM, on_sigterm)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    serve(kind, load(target), port)


if __name__ == "__main__":
    main(sys.argv[1:])
