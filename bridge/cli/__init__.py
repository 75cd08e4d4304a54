"""The ``bridge`` command: ``bridge serve MODULE:APP`` and ``bridge check MODULE:APP``.

Every problem is one line on stderr, ``bridge: error: ...``, without a traceback. Exit
statuses:

- 0: served until stopped; ``bridge check`` found no error;
- 1: a problem the user can fix (a wrong import path, an object that is no app, a server
  or package that is not installed, a busy port or socket path); ``bridge check`` found
  an error (an app that raises on a probe included); the reader of stdout went away;
- 2: wrong usage (an unknown option, a bad value), as argparse has it;
- 3: ``bridge serve``: the app's lifespan startup failed, so nothing was served (gunicorn's
  status for a worker that failed to boot, and uvicorn's for a failed startup);
- 130: interrupted by Ctrl+C (SIGINT) before serving, quietly, as a shell reports it.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import NoReturn, Sequence

from .. import __version__
from .load import CommandError, load_app

__all__ = ["main"]

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


#: Exit statuses (see the module's docstring).
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def main(argv: Sequence[str] | None = None) -> int:
    try:
        parser = _parser()
        try:
            args = parser.parse_args(argv)
        except UsageError as exc:
            return error(str(exc), EXIT_USAGE)
        logging.basicConfig(
            level=getattr(logging, args.log_level.upper()),
            format="%(levelname)s:%(name)s: %(message)s",
        )
        return int(args.run(args))
    except CommandError as exc:
        return error(str(exc), exc.status)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader left (``bridge check ... | head``): stop quietly, and keep Python from
        # complaining again when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_ERROR


def error(message: str, status: int) -> int:
    """The one way the command reports a problem: one line on stderr; returns ``status``."""
    print(f"bridge: error: {message}", file=sys.stderr, flush=True)
    return status


class UsageError(Exception):
    """argparse found the command line wrong."""


class _Parser(argparse.ArgumentParser):
    """argparse, but its errors are one ``bridge: error:`` line like the others (exit 2),
    without the usage text (``--help`` has it)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see {self.prog} --help)")


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
        shutdown_timeout=args.shutdown_timeout,
    )
    serve(loaded, options)
    return 0


def _check(args: argparse.Namespace) -> int:
    from .check import check_app, default_probes

    loaded = load_app(args.target, factory=args.factory, interface=args.interface, app_dir=args.app_dir)
    detection = loaded.detection
    print(f"{loaded.target} is {detection.label} ({detection.reason})", flush=True)
    report = check_app(
        loaded,
        default_probes(args.path or ["/"]),
        timeout=args.timeout,
        on_outcome=lambda outcome: print(outcome.line(), flush=True),  # each probe as it ends
    )
    print(report.render(verbose=args.verbose, outcomes=False), flush=True)
    failed = report.errors or (args.strict and report.warnings)
    return EXIT_ERROR if failed else 0


def _url_path(text: str) -> str:
    if not text.startswith("/"):
        raise argparse.ArgumentTypeError(f"{text!r} does not start with '/'; write /{text.lstrip('/')}")
    return text


def _directory(text: str) -> str:
    if not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text!r}: no such directory")
    return text


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a number of seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
    return value


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
    parser = _Parser(
        prog="bridge",
        description="Serve a WSGI app on an ASGI server or an ASGI app on a WSGI server, or check one.",
    )
    parser.add_argument("--version", action="version", version=f"bridge {__version__}")
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND", parser_class=_Parser)

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
        command.add_argument(
            "--app-dir", type=_directory, default=".", help="directory to import the app from (default: .)"
        )
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
    serve.add_argument(
        "--shutdown-timeout",
        type=_seconds,
        default=10.0,
        metavar="SECONDS",
        help=(
            "after SIGINT or SIGTERM, how long requests in flight (an open stream) may go on "
            "before the server ends them (default: 10)"
        ),
    )
    serve.set_defaults(run=_serve)

    check = commands.add_parser(
        "check",
        help="probe an app in-process and report the protocol rules it breaks",
        description=(
            "Send probe requests (GET, HEAD, a query, a form POST, a chunked POST, OPTIONS, an unknown "
            "path) through the adapter in-process, and report each PEP 3333 or ASGI rule the app breaks, "
            "with a hint. Exits 1 if any error was found (an app that raises on a probe is one)."
        ),
    )
    app_arguments(check)
    check.add_argument(
        "--path",
        type=_url_path,
        action="append",
        help="a path to probe, starting with / (repeatable; default: /)",
    )
    check.add_argument(
        "--timeout", type=_seconds, default=10.0, help="seconds each probe may take (default: 10)"
    )
    check.add_argument("--strict", action="store_true", help="exit 1 on warnings too")
    check.add_argument("--verbose", action="store_true", help="print the tracebacks of app errors")
    check.set_defaults(run=_check)
    return parser
