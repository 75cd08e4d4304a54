"""Run a WSGI app under werkzeug's ``run_simple`` or ``waitress.serve`` from a script, the
way one does by hand. SIGTERM is turned into KeyboardInterrupt (as Ctrl+C), since neither
server handles it; SIGINT is left alone.

    python -m tests.integration_leaks.serve {werkzeug|werkzeug-single|waitress} module:attr PORT
"""

from __future__ import annotations

import importlib
import signal
import sys
from typing import Any


def main(argv: list[str]) -> None:
    server, target, port_text = argv[:3]
    module, _, attr = target.partition(":")
    app = getattr(importlib.import_module(module), attr or "app")
    port = int(port_text)

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    if server in ("werkzeug", "werkzeug-single"):
        from werkzeug.serving import run_simple

        threaded = server == "werkzeug"
        run_simple("127.0.0.1", port, app, threaded=threaded, use_reloader=False, use_debugger=False)
    elif server == "waitress":
        import waitress

        waitress.serve(app, host="127.0.0.1", port=port, threads=4)
    else:
        raise SystemExit(f"unknown server {server!r}")
    print(f"{server} stopped", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
