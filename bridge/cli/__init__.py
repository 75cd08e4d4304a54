"""The ``bridge`` command: ``bridge serve MODULE:APP`` and ``bridge check MODULE:APP``.

Every problem the user can fix (a wrong import path, an object that is no app, a
server that is not installed, a busy port) is one line on stderr and exit status 1,
without a traceback; wrong usage exits with 2, as argparse does.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Sequence

from .. import __version__
from .load import CommandError, load_app

__all__ = ["main"]

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(levelname)s:%(name)s: %(message)s",
    )
    try:
        return int(args.run(args))
    except CommandError as exc:
        print(f"bridge: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _serve(args: argparse.Namespace) -> int:
    from .serve import ServeOptions, serve

    loaded = load_app(args.target, factory=args.factory, interface=args.interface, app_dir=args.app_dir)
    options = ServeOptions(
        host=args.host,
        port=args.port,
        uds=args.uds,
        server=args.server,
        threads=args.threads,
        workers=args.workers,
        lifespan=args.lifespan,
        root_path=args.root_path,
        log_level=args.log_level,
        backend=args.backend,
    )
    serve(loaded, options)
    return 0


def _check(args: argparse.Namespace) -> int:
    from .check import check_app, default_probes

    loaded = load_app(args.target, factory=args.factory, interface=args.interface, app_dir=args.app_dir)
    detection = loaded.detection
    print(f"{loaded.target} is {detection.label} ({detection.reason})")
    paths = args.path or ["/"]
    for path in paths:
        if not path.startswith("/"):
            raise CommandError(f"--path {path!r} must start with '/'")
    report = check_app(loaded, default_probes(paths), timeout=args.timeout)
    print(report.render(verbose=args.verbose))
    failed = report.errors or (args.strict and report.warnings)
    return 1 if failed else 0


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is from 0 to 65535, got {value}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bridge",
        description="Serve a WSGI app on an ASGI server or an ASGI app on a WSGI server, or check one.",
    )
    parser.add_argument("--version", action="version", version=f"bridge {__version__}")
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")

    def app_arguments(command: argparse.ArgumentParser) -> None:
        command.add_argument(
            "target", metavar="MODULE:APP", help="the app to load, like myproject.wsgi:application"
        )
        command.add_argument("--factory", action="store_true", help="APP is a function that returns the app")
        command.add_argument(
            "--interface",
            choices=("auto", "wsgi", "asgi"),
            default="auto",
            help="the protocol the app speaks (default: find out from its signature)",
        )
        command.add_argument("--app-dir", default=".", help="directory to import the app from (default: .)")
        command.add_argument("--log-level", choices=LOG_LEVELS, default="info", help="(default: info)")

    serve = commands.add_parser(
        "serve",
        help="serve an app through the adapter it needs",
        description=(
            "Serve a WSGI app on an ASGI server through WsgiToAsgi (uvicorn by default; hypercorn, "
            "hypercorn-trio), or an ASGI app on a WSGI server through AsgiToWsgi (werkzeug by default; "
            "gunicorn, waitress)."
        ),
    )
    app_arguments(serve)
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    serve.add_argument(
        "--port", type=_port, default=8000, help="port to listen on; 0 picks a free one (default: 8000)"
    )
    serve.add_argument("--uds", metavar="PATH", help="listen on this unix socket instead of host and port")
    serve.add_argument(
        "--server",
        choices=("uvicorn", "hypercorn", "hypercorn-trio", "werkzeug", "gunicorn", "waitress"),
        help="the server (default: uvicorn for WSGI apps, werkzeug for ASGI apps)",
    )
    serve.add_argument(
        "--threads",
        type=_positive,
        help="WSGI app: its thread pool (max_threads, default 40); ASGI app: the WSGI server's threads",
    )
    serve.add_argument("--workers", type=_positive, default=1, help="processes (gunicorn only; default: 1)")
    serve.add_argument(
        "--lifespan",
        choices=("auto", "on", "off"),
        default="auto",
        help="run the ASGI lifespan (default: auto)",
    )
    serve.add_argument("--root-path", default="", help="the path prefix the app is mounted at, like /legacy")
    serve.add_argument(
        "--backend",
        choices=("asyncio", "trio"),
        default="asyncio",
        help="event loop an ASGI app runs on behind a WSGI server (default: asyncio)",
    )
    serve.set_defaults(run=_serve)

    check = commands.add_parser(
        "check",
        help="probe an app in-process and report the protocol rules it breaks",
        description=(
            "Send probe requests (GET, HEAD, a query, a form POST, a chunked POST, OPTIONS, an unknown "
            "path) through the adapter in-process, and report each PEP 3333 or ASGI rule the app breaks, "
            "with a hint. Exits 1 if any error was found."
        ),
    )
    app_arguments(check)
    check.add_argument("--path", action="append", help="a path to probe (repeatable; default: /)")
    check.add_argument(
        "--timeout", type=float, default=10.0, help="seconds each probe may take (default: 10)"
    )
    check.add_argument("--strict", action="store_true", help="exit 1 on warnings too")
    check.add_argument("--verbose", action="store_true", help="print the tracebacks of app errors")
    check.set_defaults(run=_check)
    return parser
