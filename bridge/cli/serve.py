"""``bridge serve``: put an app on a real server, through the adapter it needs.

A WSGI app goes through :class:`~bridge.WsgiToAsgi` onto an ASGI server (uvicorn by
default, or hypercorn on asyncio or trio); an ASGI app goes through
:class:`~bridge.AsgiToWsgi` onto a WSGI server (werkzeug's, embedded, by default, or
gunicorn or waitress). An object that already is one of the adapters is served as it is.

The listening socket is bound here, before any server starts, so every server reports
a busy port or a bad address the same way, and unix sockets work on all of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import signal
import socket
import stat
import sys
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Literal

from .._types import ASGIApp, Environ, Receive, Scope, Send, StartResponse, WSGIApp
from ..asgi_to_wsgi import AsgiToWsgi
from ..wsgi_to_asgi import DEFAULT_MAX_THREADS, WsgiToAsgi
from .load import CommandError, Loaded

__all__ = ["ASGI_SERVERS", "WSGI_SERVERS", "ServeOptions", "bind_socket", "serve"]

logger = logging.getLogger("bridge.cli")

#: Servers for a WSGI app (they speak ASGI), default first, with the module each needs.
ASGI_SERVERS = {"uvicorn": "uvicorn", "hypercorn": "hypercorn", "hypercorn-trio": "hypercorn"}
#: Servers for an ASGI app (they speak WSGI), default first.
WSGI_SERVERS = {"werkzeug": "werkzeug", "gunicorn": "gunicorn", "waitress": "waitress"}


@dataclass(frozen=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 8000
    uds: str | None = None
    server: str | None = None  # None: the default for the app's side
    threads: int | None = None
    workers: int = 1
    lifespan: Literal["auto", "on", "off"] = "auto"
    root_path: str = ""
    log_level: str = "info"
    backend: Literal["asyncio", "trio"] = "asyncio"  # the loop an ASGI app runs on behind AsgiToWsgi


def serve(loaded: Loaded, options: ServeOptions) -> None:
    """Serve until SIGINT or SIGTERM. Raise :class:`CommandError` for anything the user can fix."""
    detection = loaded.detection
    # The side the object speaks decides the server: an adapter keeps its side, a plain
    # app gets the opposite one.
    needs_asgi_server = (detection.interface == "wsgi") != detection.adapter
    servers = ASGI_SERVERS if needs_asgi_server else WSGI_SERVERS
    server = options.server or next(iter(servers))
    if server not in servers:
        kind = "an ASGI" if needs_asgi_server else "a WSGI"
        raise CommandError(
            f"{loaded.target} is served by {kind} server, and {server} is not one; "
            f"choose --server {' or '.join(servers)}"
        )
    if options.workers != 1 and server != "gunicorn":
        raise CommandError(f"--workers needs --server gunicorn; {server} runs one process")
    _require(servers[server], server)
    _check_adapter_options(loaded, options)
    app, via = _adapt(loaded, options, needs_asgi_server)
    sock = bind_socket(options.host, options.port, options.uds)
    where = _address(sock, options)
    print(f"bridge: {loaded.target} is {detection.label} ({detection.reason})", file=sys.stderr)
    print(f"bridge: serving it {via} on {server} at {where} (Ctrl+C to stop)", file=sys.stderr, flush=True)
    run = _RUNNERS[server]
    pid = os.getpid()
    try:
        run(app, sock, options)
    finally:
        # gunicorn's workers leave through here too, by SystemExit: only the process
        # that bound the socket removes it.
        if os.getpid() == pid:
            sock.close()
            if options.uds:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(options.uds)


# -- adapting --------------------------------------------------------------------------------


def _adapt(loaded: Loaded, options: ServeOptions, needs_asgi_server: bool) -> tuple[Any, str]:
    app: Any = loaded.app
    if loaded.detection.adapter:
        via = f"through the {type(app).__name__} it already is"
    elif needs_asgi_server:
        threads = options.threads or DEFAULT_MAX_THREADS
        app = WsgiToAsgi(app, max_threads=threads)
        via = f"through WsgiToAsgi (max_threads={threads})"
    else:
        app = AsgiToWsgi(app, lifespan=options.lifespan, backend=options.backend)
        via = f"through AsgiToWsgi (lifespan {options.lifespan}, {options.backend})"
    root = normalize_root(options.root_path)
    if root:
        app = RootPathASGI(app, root) if needs_asgi_server else RootPathWSGI(app, root)
        via += f", mounted at {root}"
    return app, via


def _check_adapter_options(loaded: Loaded, options: ServeOptions) -> None:
    """Options that configure an adapter cannot reach one the module already built."""
    if not loaded.detection.adapter:
        return
    name = type(loaded.app).__name__
    if isinstance(loaded.app, WsgiToAsgi) and options.threads is not None:
        raise CommandError(
            f"--threads: {loaded.target} is already a {name}; set max_threads= where it is built"
        )
    if isinstance(loaded.app, AsgiToWsgi):
        if options.lifespan != "auto":
            raise CommandError(
                f"--lifespan: {loaded.target} is already a {name}; set lifespan= where it is built"
            )
        if options.backend != "asyncio":
            raise CommandError(
                f"--backend: {loaded.target} is already a {name}; set backend= where it is built"
            )


def _require(module: str, server: str) -> None:
    try:
        __import__(module)
    except ImportError:
        raise CommandError(
            f"--server {server} needs {module}, which is not installed: pip install {module}"
        ) from None


class RootPathASGI:
    """Serve an ASGI app as if mounted at ``root``: the path keeps (or gains) the prefix and
    ``root_path`` names it, as the ASGI spec has it. Works whether or not a proxy in
    front stripped the prefix."""

    def __init__(self, app: ASGIApp, root: str) -> None:
        self.app = app
        self.root = normalize_root(root)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            path: str = scope["path"]
            raw_path: bytes | None = scope.get("raw_path")
            if not _under(path, self.root):
                path = self.root + path
                if raw_path is not None:
                    raw_path = self.root.encode("utf-8") + raw_path
            scope = dict(
                scope, root_path=scope.get("root_path", "") + self.root, path=path, raw_path=raw_path
            )
        await self.app(scope, receive, send)


class RootPathWSGI:
    """Serve a WSGI app as if mounted at ``root``: ``SCRIPT_NAME`` gains the prefix, and
    ``PATH_INFO`` loses it when it is there (as gunicorn does with ``SCRIPT_NAME``)."""

    def __init__(self, app: WSGIApp, root: str) -> None:
        self.app = app
        self.root = normalize_root(root)
        self.wsgi_root = self.root.encode("utf-8").decode("latin-1")

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if _under(path, self.wsgi_root):
            environ["PATH_INFO"] = path[len(self.wsgi_root) :]
        environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + self.wsgi_root
        return self.app(environ, start_response)


def normalize_root(root: str) -> str:
    """``/legacy`` from ``legacy/``, ``/legacy/`` or ``/legacy``; ``""`` for ``/``."""
    root = "/" + root.strip("/")
    return "" if root == "/" else root


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root + "/")


# -- the socket ---------------------------------------------------------------------------


def bind_socket(host: str, port: int, uds: str | None = None) -> socket.socket:
    """A listening socket, or a :class:`CommandError` that says what is wrong with the address."""
    if uds:
        return _bind_unix(uds)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise CommandError(
            f"cannot listen on {host!r}: the host name does not resolve ({exc.strerror})"
        ) from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise CommandError(_bind_error(exc, f"{host}:{port}", port)) from None
    sock.set_inheritable(True)
    return sock


def _bind_unix(path: str) -> socket.socket:
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISSOCK(os.stat(path).st_mode):
            os.unlink(path)  # a stale socket file from an earlier run
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise CommandError(_bind_error(exc, path, None)) from None
    sock.set_inheritable(True)
    return sock


def _bind_error(exc: OSError, where: str, port: int | None) -> str:
    if exc.errno == errno.EADDRINUSE:
        return (
            f"cannot listen on {where}: the address is in use (another server?); choose another with --port"
        )
    if exc.errno == errno.EACCES and port is not None and port < 1024:
        return f"cannot listen on {where}: ports below 1024 need privileges; choose --port 1024 or above"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"cannot listen on {where}: that address does not belong to this machine"
    return f"cannot listen on {where}: {exc.strerror or exc}"


def _address(sock: socket.socket, options: ServeOptions) -> str:
    if options.uds:
        return f"unix:{options.uds}"
    host, port = sock.getsockname()[:2]
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{port}"


# -- the servers ------------------------------------------------------------------------------


def _run_uvicorn(app: Any, sock: socket.socket, options: ServeOptions) -> None:
    import uvicorn

    config = uvicorn.Config(app, lifespan=options.lifespan, log_level=options.log_level)
    # uvicorn handles SIGINT/SIGTERM itself (stops accepting, drains, runs lifespan
    # shutdown), then re-raises the signal to the handler it found: ours ends the loop
    # here, so the socket file is removed and the exit status is 0, as on other servers.
    with _sigterm_as_interrupt(), contextlib.suppress(KeyboardInterrupt):
        uvicorn.Server(config).run(sockets=[sock])


def _run_hypercorn(app: Any, sock: socket.socket, options: ServeOptions, *, trio: bool = False) -> None:
    from hypercorn.config import Config

    config = Config()
    config.bind = [f"fd://{_dup(sock)}"]  # hypercorn takes ownership of the fd
    config.loglevel = options.log_level.upper()
    # Loggers, not "-": hypercorn then adds no handlers of its own, and the lines go out
    # once, through the root logger the command line set up.
    config.errorlog = logging.getLogger("hypercorn.error")
    config.accesslog = logging.getLogger("hypercorn.access")
    if trio:
        import trio as trio_module
        from hypercorn.trio import serve as trio_serve

        async def until_signal_trio() -> None:
            with trio_module.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for _ in signals:
                    return

        async def main_trio() -> None:
            await trio_serve(app, config, shutdown_trigger=until_signal_trio)

        trio_module.run(main_trio)
        return
    from hypercorn.asyncio import serve as asyncio_serve

    async def main_asyncio() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await asyncio_serve(app, config, shutdown_trigger=stop.wait)

    asyncio.run(main_asyncio())


def _run_hypercorn_trio(app: Any, sock: socket.socket, options: ServeOptions) -> None:
    _run_hypercorn(app, sock, options, trio=True)


def _run_werkzeug(app: Any, sock: socket.socket, options: ServeOptions) -> None:
    from werkzeug.serving import ThreadedWSGIServer

    limit = threading.BoundedSemaphore(options.threads) if options.threads else None

    class Server(ThreadedWSGIServer):
        # werkzeug starts a thread per connection; --threads caps how many at once, and
        # further connections wait in the listen backlog.
        def process_request(self, request: Any, client_address: Any) -> None:
            if limit is not None:
                limit.acquire()
            super().process_request(request, client_address)

        def process_request_thread(self, request: Any, client_address: Any) -> None:
            try:
                super().process_request_thread(request, client_address)
            finally:
                if limit is not None:
                    limit.release()

    host = f"unix://{options.uds}" if options.uds else options.host
    server = Server(host, 0, app, fd=sock.fileno())
    logging.getLogger("werkzeug").setLevel(_level(options.log_level))
    logger.warning("werkzeug's server is for development; in production use --server gunicorn or waitress")
    _run_until_stopped(server.serve_forever, server.server_close, app)


def _run_waitress(app: Any, sock: socket.socket, options: ServeOptions) -> None:
    from waitress.server import create_server

    kwargs: dict[str, Any] = {"sockets": [sock], "ident": "bridge"}
    if options.threads:
        kwargs["threads"] = options.threads
    logging.getLogger("waitress").setLevel(_level(options.log_level))
    server = create_server(app, **kwargs)
    _run_until_stopped(server.run, server.close, app)


def _run_gunicorn(app: Any, sock: socket.socket, options: ServeOptions) -> None:
    from gunicorn.app.base import BaseApplication

    threads = options.threads or 1
    settings: dict[str, Any] = {
        "bind": [f"fd://{_dup(sock)}"],  # gunicorn closes the fd it is given
        "workers": options.workers,
        "threads": threads,
        "worker_class": "gthread" if threads > 1 else "sync",
        "loglevel": options.log_level,
        "errorlog": "-",
        "accesslog": "-" if options.log_level in ("debug", "info") else None,
        # The app is imported already, so each worker inherits it after the fork;
        # AsgiToWsgi starts its loop (and lifespan) lazily in each worker.
        "preload_app": True,
        "control_socket_disable": True,
        "worker_exit": lambda _server, _worker: _close(app),
    }

    class Gunicorn(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            for key, value in settings.items():
                if key in self.cfg.settings:
                    self.cfg.set(key, value)

        def load(self) -> Any:
            return app

    Gunicorn().run()


def _run_until_stopped(run: Callable[[], object], close: Callable[[], object], app: Any) -> None:
    """A server's own blocking loop, until SIGINT or SIGTERM; then close it and the app."""
    with _sigterm_as_interrupt():
        try:
            run()
        except KeyboardInterrupt:
            pass
        finally:
            close()
            _close(app)


def _dup(sock: socket.socket) -> int:
    fd = os.dup(sock.fileno())
    os.set_inheritable(fd, True)
    return fd


def _close(app: Any) -> None:
    """Run an AsgiToWsgi's lifespan shutdown (through a root-path wrapper, too)."""
    inner = getattr(app, "app", None) if isinstance(app, RootPathWSGI) else app
    if isinstance(inner, AsgiToWsgi):
        inner.close()


class _sigterm_as_interrupt:
    """SIGTERM stops a blocking serve loop as Ctrl+C does (werkzeug's and waitress's own
    loops only know KeyboardInterrupt)."""

    def __enter__(self) -> None:
        self.previous = signal.signal(signal.SIGTERM, self._handler)

    def __exit__(self, *_: object) -> None:
        signal.signal(signal.SIGTERM, self.previous)

    @staticmethod
    def _handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt


def _level(name: str) -> int:
    return getattr(logging, name.upper(), logging.INFO)


_RUNNERS: dict[str, Callable[[Any, socket.socket, ServeOptions], None]] = {
    "uvicorn": _run_uvicorn,
    "hypercorn": _run_hypercorn,
    "hypercorn-trio": _run_hypercorn_trio,
    "werkzeug": _run_werkzeug,
    "gunicorn": _run_gunicorn,
    "waitress": _run_waitress,
}
