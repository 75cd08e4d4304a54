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
import importlib
import importlib.util
import logging
import math
import os
import shlex
import signal
import socket
import stat
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Literal

from .._types import ASGIApp, Environ, Message, Receive, Scope, Send, StartResponse, WSGIApp
from ..asgi_to_wsgi import AsgiToWsgi
from ..errors import LifespanError
from ..http import with_article
from ..wsgi_to_asgi import DEFAULT_MAX_THREADS, WsgiToAsgi
from .load import CommandError, Loaded

__all__ = ["ASGI_SERVERS", "DEFAULT_SHUTDOWN_TIMEOUT", "WSGI_SERVERS", "ServeOptions", "bind_socket", "serve"]

logger = logging.getLogger("bridge.cli")

#: Servers for a WSGI app (they speak ASGI), default first, with the modules each needs.
ASGI_SERVERS = {"uvicorn": ("uvicorn",), "hypercorn": ("hypercorn",), "hypercorn-trio": ("hypercorn", "trio")}
#: How to run an ASGI app on each ASGI server without bridge.
_DIRECT = {"uvicorn": "uvicorn", "hypercorn": "hypercorn", "hypercorn-trio": "hypercorn -k trio"}
#: Servers for an ASGI app (they speak WSGI), default first.
WSGI_SERVERS = {"werkzeug": ("werkzeug",), "gunicorn": ("gunicorn",), "waitress": ("waitress",)}


#: The default of ``--shutdown-timeout``, in seconds.
DEFAULT_SHUTDOWN_TIMEOUT = 10.0


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
    #: Seconds the requests in flight get to finish after SIGINT or SIGTERM, before the
    #: server ends them (an endless stream would otherwise hold the shutdown forever).
    shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT


def serve(loaded: Loaded, options: ServeOptions) -> None:
    """Serve until SIGINT or SIGTERM. Raise :class:`CommandError` for anything the user can fix."""
    detection = loaded.detection
    # The side the object speaks decides the server: an adapter keeps its side, a plain
    # app gets the opposite one.
    needs_asgi_server = (detection.interface == "wsgi") != detection.adapter
    servers = ASGI_SERVERS if needs_asgi_server else WSGI_SERVERS
    server = options.server or next(iter(servers))
    if server not in servers:
        if detection.interface == "asgi" and server in ASGI_SERVERS:
            # An ASGI app on an ASGI server needs no bridge: say how to run it there.
            direct = _DIRECT[server]
            raise CommandError(
                f"{loaded.target} is an ASGI app, which {server} serves without bridge: "
                f"run {direct} {shlex.quote(loaded.target)} (bridge serve puts an ASGI app on a WSGI server: "
                f"--server {' or '.join(servers)})"
            )
        kind = "an ASGI" if needs_asgi_server else "a WSGI"
        raise CommandError(
            f"{loaded.target} is served by {kind} server, and {server} is not one; "
            f"choose --server {' or '.join(servers)}"
        )
    if options.workers != 1 and server != "gunicorn":
        more = ""
        if server in ASGI_SERVERS:
            # uvicorn and hypercorn have workers of their own, outside bridge serve.
            more = (
                f"; for more processes, build the adapter in your module (app = WsgiToAsgi(...)) "
                f"and run {_DIRECT[server]} --workers N on it"
            )
        raise CommandError(
            f"--workers needs --server gunicorn; bridge serve runs {server} in one process{more}"
        )
    for module in servers[server]:
        require(module, f"--server {server}")
    _check_adapter_options(loaded, options)
    if not needs_asgi_server and not loaded.detection.adapter and options.backend == "trio":
        require("trio", "--backend trio")
    elif isinstance(loaded.app, AsgiToWsgi) and loaded.app.backend == "trio":
        require("trio", f"{loaded.target} (an AsgiToWsgi with backend='trio')")
    app, via = _adapt(loaded, options, needs_asgi_server)
    sock = bind_socket(options.host, options.port, options.uds)
    ours = _identity(options.uds) if options.uds else None
    where = _address(sock, options)
    run = _RUNNERS[server]
    pid = os.getpid()
    try:
        if server in ("werkzeug", "waitress"):
            # One process: the app's lifespan starts before the server accepts, and a
            # failed startup serves nothing. (gunicorn's workers start it themselves.)
            start_lifespan(app, options.log_level)
        print(f"bridge: {loaded.target} is {detection.label} ({detection.reason})", file=sys.stderr)
        print(
            f"bridge: serving it {via} on {server} at {where} (Ctrl+C to stop)", file=sys.stderr, flush=True
        )
        run(app, sock, options)
    finally:
        # gunicorn's workers leave through here too, by SystemExit: only the process
        # that bound the socket removes it.
        if os.getpid() == pid:
            sock.close()
            # Only the file this process bound: never one another server put there since.
            if options.uds and ours is not None and _identity(options.uds) == ours:
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
    name = with_article(name)  # an AsgiToWsgi, a WsgiToAsgi
    if isinstance(loaded.app, WsgiToAsgi) and options.threads is not None:
        raise CommandError(
            f"--threads: {loaded.target} is already {name}; set max_threads= where it is built"
        )
    if isinstance(loaded.app, AsgiToWsgi):
        if options.lifespan != "auto":
            raise CommandError(
                f"--lifespan: {loaded.target} is already {name}; set lifespan= where it is built"
            )
        if options.backend != "asyncio":
            raise CommandError(
                f"--backend: {loaded.target} is already {name}; set backend= where it is built"
            )


def require(module: str, what: str) -> None:
    """Import ``module`` now, before anything is served, or say in one line why it cannot be:
    not installed at all, or installed but failing to import."""
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise CommandError(f"{what} needs {module}, which is not installed: pip install {module}")
    try:
        importlib.import_module(module)
    except Exception as exc:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        raise CommandError(
            f"{what} needs {module}, which is installed but fails to import ({text})"
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
    where = f"unix:{path}"
    if stale_socket(path):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # a socket file left by an earlier run: nothing listens on it
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise CommandError(_bind_error(exc, where, None)) from None
    sock.set_inheritable(True)
    return sock


def stale_socket(path: str) -> bool:
    """Whether ``path`` is a socket file that nothing listens on any more (a server that
    died without removing it), so it may be replaced. False if nothing is there; a
    :class:`CommandError` if something is there that must not be replaced: a live server's
    socket, or a file that is not a socket."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise CommandError(f"cannot listen on unix:{path}: {exc.strerror or exc}; {_UDS_HINT}") from None
    if not stat.S_ISSOCK(mode):
        raise CommandError(f"cannot listen on unix:{path}: it exists and is not a socket; {_UDS_HINT}")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(2.0)
    try:
        probe.connect(path)
    except (ConnectionRefusedError, FileNotFoundError):
        return True  # nobody accepts on it: stale
    except OSError as exc:
        if exc.errno == errno.EAGAIN:  # a live server with a full backlog
            raise CommandError(
                f"cannot listen on unix:{path}: {path} is in use by another server; {_UDS_HINT}"
            ) from None
        raise CommandError(f"cannot listen on unix:{path}: {exc.strerror or exc}; {_UDS_HINT}") from None
    finally:
        probe.close()
    raise CommandError(f"cannot listen on unix:{path}: {path} is in use by another server; {_UDS_HINT}")


_UDS_HINT = "choose another path with --uds"


def _bind_error(exc: OSError, where: str, port: int | None) -> str:
    if port is None:  # a unix socket
        path = where[len("unix:") :]
        folder = os.path.dirname(os.path.abspath(path))
        if exc.errno == errno.EADDRINUSE:
            return f"cannot listen on {where}: {path} is in use by another server; {_UDS_HINT}"
        if exc.errno == errno.ENOENT:
            return f"cannot listen on {where}: the directory {folder} does not exist; {_UDS_HINT}"
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return f"cannot listen on {where}: no permission to create it in {folder}; {_UDS_HINT}"
        if "too long" in str(exc):
            limit = 107 if sys.platform.startswith("linux") else 103
            return (
                f"cannot listen on {where}: the path is too long ({len(os.fsencode(path))} bytes; "
                f"the limit is {limit}); {_UDS_HINT}"
            )
        return f"cannot listen on {where}: {exc.strerror or exc}; {_UDS_HINT}"
    if exc.errno == errno.EADDRINUSE:
        return (
            f"cannot listen on {where}: the address is in use (another server?); choose another with --port"
        )
    if exc.errno == errno.EACCES and port < 1024:
        return f"cannot listen on {where}: ports below 1024 need privileges; choose --port 1024 or above"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"cannot listen on {where}: that address does not belong to this machine"
    return f"cannot listen on {where}: {exc.strerror or exc}"


def _identity(path: str) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino


def _address(sock: socket.socket, options: ServeOptions) -> str:
    if options.uds:
        return f"unix:{options.uds}"
    host, port = sock.getsockname()[:2]
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{port}"


# -- the servers ------------------------------------------------------------------------------


def _run_uvicorn(app: Any, sock: socket.socket, options: ServeOptions) -> None:
    import uvicorn

    watch = _StartupWatch(app)
    settings: dict[str, Any] = {
        "lifespan": options.lifespan,
        "log_level": options.log_level,
        # After this, uvicorn cancels the requests still running (an open stream), then
        # runs the lifespan shutdown. (Without it, it waits for them forever.)
        "timeout_graceful_shutdown": options.shutdown_timeout,
    }
    config = uvicorn.Config(watch, **settings)
    # uvicorn handles SIGINT/SIGTERM itself (stops accepting, drains, runs lifespan
    # shutdown), then re-raises the signal to the handler it found: ours ends the loop
    # here, so the socket file is removed and the exit status is 0, as on other servers.
    mute = _Mute(_STARTUP_LINES, watch.logged_failure)
    quiet = mute.on(options.log_level != "debug")
    server = uvicorn.Server(config)
    try:
        with quiet, _sigterm_as_interrupt(), contextlib.suppress(KeyboardInterrupt):
            server.run(sockets=[sock])
    except SystemExit:  # uvicorn's exit on a failed startup (status 3)
        watch.check(options)
        raise
    if not server.started:  # older uvicorns return instead
        watch.check(options)


def _run_hypercorn(app: Any, sock: socket.socket, options: ServeOptions, *, trio: bool = False) -> None:
    from hypercorn.config import Config

    config = Config()
    config.bind = [f"fd://{_dup(sock)}"]  # hypercorn takes ownership of the fd
    config.loglevel = options.log_level.upper()
    # After this, hypercorn cancels the requests still running (its default is 3 s).
    config.graceful_timeout = options.shutdown_timeout
    # Loggers, not "-": hypercorn then adds no handlers of its own, and the lines go out
    # once, through the root logger the command line set up.
    config.errorlog = logging.getLogger("hypercorn.error")
    config.accesslog = logging.getLogger("hypercorn.access")
    watch = _StartupWatch(app)
    app = watch
    mute = _Mute(_STARTUP_LINES, watch.logged_failure)
    try:
        with mute.on(options.log_level != "debug"):
            _hypercorn_loop(app, config, trio)
    except Exception:  # hypercorn's LifespanFailureError, in an exception group on trio
        watch.check(options)
        raise


def _hypercorn_loop(app: Any, config: Any, trio: bool) -> None:
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
    active = _Active()

    class Server(ThreadedWSGIServer):
        # werkzeug starts a thread per connection; --threads caps how many at once, and
        # further connections wait in the listen backlog.
        def process_request(self, request: Any, client_address: Any) -> None:
            if limit is not None:
                limit.acquire()
            active.enter(request)
            try:
                super().process_request(request, client_address)
            except BaseException:
                # (Ctrl+C may interrupt Thread.start() after the thread began: then both
                # this and the thread leave, and the request must count once.)
                active.leave(request)
                raise

        def process_request_thread(self, request: Any, client_address: Any) -> None:
            try:
                super().process_request_thread(request, client_address)
            finally:
                active.leave(request)
                if limit is not None:
                    limit.release()

    host = f"unix://{options.uds}" if options.uds else options.host
    server = Server(host, 0, app, fd=sock.fileno())
    logging.getLogger("werkzeug").setLevel(_level(options.log_level))
    logger.warning("werkzeug's server is for development; in production use --server gunicorn or waitress")

    def drain() -> None:
        # werkzeug's connection threads are daemon threads that nothing waits for: bridge
        # stops accepting and gives them --shutdown-timeout to end.
        server.socket.close()
        if not active.wait_idle(options.shutdown_timeout):
            logger.warning(
                "%d connection(s) still open after --shutdown-timeout %g s; closing the app",
                active.count,
                options.shutdown_timeout,
            )

    _run_until_stopped(server.serve_forever, server.server_close, app, drain)


def _run_waitress(app: Any, sock: socket.socket, options: ServeOptions) -> None:
    from waitress import wasyncore
    from waitress.server import create_server

    kwargs: dict[str, Any] = {"sockets": [sock], "ident": "bridge"}
    if options.threads:
        kwargs["threads"] = options.threads
    logging.getLogger("waitress").setLevel(_level(options.log_level))
    server = create_server(app, **kwargs)
    dispatcher = server.task_dispatcher
    shutdown = dispatcher.shutdown
    channels: dict[int, Any] = server._map

    def busy() -> bool:
        # A connection with a request in progress, or response bytes still to send.
        return any(
            getattr(channel, "requests", None) or getattr(channel, "total_outbufs_len", 0)
            for channel in list(channels.values())
        )

    def drain(cancel_pending: bool = True, timeout: float = 0.0) -> bool:
        # waitress calls this (its dispatcher's shutdown) from its run() on SIGINT or
        # SIGTERM, its main loop stopped: that loop is what sends the responses, so run it
        # on, accepting nothing new, until the requests in flight are answered or
        # --shutdown-timeout runs out. (waitress itself would wait 5 s for its threads
        # with the loop stopped: no byte more would reach a client.)
        server.accepting = False
        deadline = time.monotonic() + options.shutdown_timeout
        while busy() and time.monotonic() < deadline:
            wasyncore.loop(timeout=0.05, map=channels, use_poll=server.adj.asyncore_use_poll, count=1)
        if busy():
            logger.warning(
                "requests still running after --shutdown-timeout %g s; closing the app",
                options.shutdown_timeout,
            )
        return True

    dispatcher.shutdown = drain

    def close() -> None:
        # The app is closed by now, its requests cancelled: let waitress's threads end
        # them (5 s at most) before its trigger, which they write to, is closed.
        shutdown(timeout=5)
        server.close()

    _run_until_stopped(server.run, close, app)


class _Active:
    """The requests a server is running, and a bounded wait until none is. A request
    leaving twice leaves once."""

    def __init__(self) -> None:
        self._requests: set[int] = set()
        self._changed = threading.Condition()

    @property
    def count(self) -> int:
        return len(self._requests)

    def enter(self, request: object) -> None:
        with self._changed:
            self._requests.add(id(request))

    def leave(self, request: object) -> None:
        with self._changed:
            self._requests.discard(id(request))
            self._changed.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: not self._requests, timeout)


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
        # On SIGTERM each worker closes the app after --shutdown-timeout (see
        # _close_on_sigterm); the master kills (SIGKILL) a worker still alive
        # _GUNICORN_KILL_AFTER seconds later. gunicorn's default is 30 s, in whole seconds.
        "graceful_timeout": math.ceil(options.shutdown_timeout) + _GUNICORN_KILL_AFTER,
        "worker_exit": lambda _server, _worker: _close(app),
        # The lifespan starts in each worker before it accepts; a failed startup ends
        # the worker with gunicorn's boot error, and gunicorn stops.
        "post_worker_init": lambda _worker: _start_in_worker(app, options),
    }

    class Gunicorn(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            for key, value in settings.items():
                if key in self.cfg.settings:
                    self.cfg.set(key, value)

        def load(self) -> Any:
            return app

    Gunicorn().run()


#: Seconds gunicorn's master gives a worker, after --shutdown-timeout, to run the app's
#: lifespan shutdown and exit, before it kills the worker.
_GUNICORN_KILL_AFTER = 5


def _start_in_worker(app: Any, options: ServeOptions) -> None:
    try:
        start_lifespan(app, options.log_level)
    except StartupError as exc:
        print(f"bridge: error: {exc}", file=sys.stderr, flush=True)
        sys.exit(StartupError.status)
    _close_on_sigterm(app, options.shutdown_timeout)


def _close_on_sigterm(app: Any, timeout: float) -> None:
    """In a gunicorn worker: on SIGTERM, besides gunicorn's own handling (no new
    requests, finish those in flight), close the app after ``timeout`` seconds if the
    worker is still there. That cancels the requests still running (an endless stream),
    so the worker ends them and exits, and the lifespan shutdown runs, rather than the
    master killing the worker with SIGKILL."""
    previous = signal.getsignal(signal.SIGTERM)

    def on_sigterm(signum: int, frame: Any) -> None:
        timer = threading.Timer(timeout, _close, (app,))
        timer.daemon = True
        timer.start()
        if callable(previous):
            previous(signum, frame)

    signal.signal(signal.SIGTERM, on_sigterm)


def _run_until_stopped(
    run: Callable[[], object],
    close: Callable[[], object],
    app: Any,
    drain: Callable[[], object] | None = None,
) -> None:
    """A server's own blocking loop, until SIGINT or SIGTERM; then let the requests in
    flight end (``drain``, bounded by --shutdown-timeout), close the app (its requests
    still running are cancelled, its lifespan shutdown runs), and close the server."""
    with _sigterm_as_interrupt():
        try:
            run()
        except KeyboardInterrupt:
            pass
        finally:
            try:
                if drain is not None:
                    drain()
            finally:
                try:
                    _close(app)
                finally:
                    close()


def _dup(sock: socket.socket) -> int:
    fd = os.dup(sock.fileno())
    os.set_inheritable(fd, True)
    return fd


def _close(app: Any) -> None:
    """Run an AsgiToWsgi's lifespan shutdown (through a root-path wrapper, too)."""
    inner = _asgi_to_wsgi(app)
    if inner is not None:
        inner.close()


def _asgi_to_wsgi(app: Any) -> AsgiToWsgi | None:
    inner = getattr(app, "app", None) if isinstance(app, RootPathWSGI) else app
    return inner if isinstance(inner, AsgiToWsgi) else None


# -- the app's lifespan startup, before serving ---------------------------------------------


class StartupError(CommandError):
    """The app's lifespan startup failed: nothing was served."""

    status = 3  # as gunicorn's "Worker failed to boot" and uvicorn's failed startup


def start_lifespan(app: Any, log_level: str) -> None:
    """Run an AsgiToWsgi's lifespan startup now; :class:`StartupError` if it fails.

    The adapter's own error line about it is left out (the StartupError says it), and
    the app's traceback is logged at debug level only.
    """
    adapter = _asgi_to_wsgi(app)
    if adapter is None:
        return
    mute = _Mute({"bridge.asgi_to_wsgi": ("%s; every request will fail until the app is fixed",)})
    try:
        with mute.on(log_level != "debug"):
            adapter.start()
    except LifespanError as exc:
        logger.debug("the app's lifespan startup failed", exc_info=exc)
        adapter.close()
        raise StartupError(f"{exc}; not serving") from None


class _Mute(logging.Filter):
    """Leaves out the given log lines (by logger, and the start of the message format)
    while it is on, and those ``also`` picks."""

    def __init__(
        self, lines: dict[str, tuple[str, ...]], also: Callable[[logging.LogRecord], bool] | None = None
    ) -> None:
        super().__init__()
        self.lines = lines
        self.also = also

    @contextlib.contextmanager
    def on(self, active: bool = True) -> Iterator[None]:
        loggers = [logging.getLogger(name) for name in self.lines] if active else []
        for each in loggers:
            each.addFilter(self)
        try:
            yield
        finally:
            for each in loggers:
                each.removeFilter(self)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name not in self.lines:
            return True
        if self.also is not None and self.also(record):
            return False
        return not any(str(record.msg).startswith(line) for line in self.lines[record.name])


class _StartupWatch:
    """Around the app an ASGI server runs: remembers how its lifespan startup ended, so
    that a server that gives up on a failed startup is reported in one line."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.failure: str | None = None
        self.message: str | None = None  # of lifespan.startup.failed, which servers log
        self.raised = False  # the app raised rather than answer: a failure with lifespan "on" only

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        started = False

        async def watched_send(message: Message) -> None:
            nonlocal started
            kind = message.get("type")
            if kind == "lifespan.startup.complete":
                started = True
            elif kind == "lifespan.startup.failed" and not started:
                self.message = str(message.get("message", ""))
                self.failure = f"the app's lifespan startup failed: {self.message or '(no message)'}"
            await send(message)

        try:
            await self.app(scope, receive, watched_send)
        except Exception as exc:
            if not started and self.failure is None:
                self.failure = f"the app raised during lifespan startup: {type(exc).__name__}: {exc}"
                self.raised = True
            raise

    def check(self, options: ServeOptions) -> None:
        """After the server gave up: :class:`StartupError` if the startup was why."""
        if self.failure is not None and (options.lifespan == "on" or not self.raised):
            raise StartupError(f"{self.failure}; not serving")

    def logged_failure(self, record: logging.LogRecord) -> bool:
        """The server's log line that repeats the lifespan.startup.failed message."""
        return self.message is not None and record.getMessage() == self.message


#: What uvicorn and WsgiToAsgi log about a failed startup, which the StartupError says again.
_STARTUP_LINES = {
    "uvicorn.error": ("Application startup failed. Exiting.", "Exception in 'lifespan' protocol"),
    "bridge.wsgi_to_asgi": ("lifespan %s hook failed",),
}


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
