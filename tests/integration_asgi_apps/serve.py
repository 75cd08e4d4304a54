"""Run a WSGI app under waitress or werkzeug's dev server, the way one deploys them, with
SIGTERM turned into an orderly exit (neither server installs a SIGTERM handler: without
one the process dies at once and ``atexit`` hooks such as the bridge's lifespan shutdown
never run).

    python -m tests.integration_asgi_apps.serve {waitress|werkzeug} module:attr PORT [THREADS]
"""

from __future__ import annotations

import importlib
import signal
import sys
from typing import Any


def load(target: str) -> Any:
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr or "app")


def main(argv: list[str]) -> None:
    server, target, port_text = argv[:3]
    threads = int(argv[3]) if len(argv) > 3 else 4
    port = int(port_text)
    app = load(target)

    def on_sigterm(signum: int, frame: Any) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, on_sigterm)
    if server == "waitress":
        import waitress

        waitress.serve(app, host="127.0.0.1", port=port, threads=threads)
    elif server == "werkzeug":
        from werkzeug.serving import run_simple

        run_simple("127.0.0.1", port, app, threaded=True, use_reloader=False, use_debugger=False)
    else:
        raise SystemExit(f"unknown server {server!r}")
    print(f"{server} stopped", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
