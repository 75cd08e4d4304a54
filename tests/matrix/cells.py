"""The compatibility matrix: which frameworks run on which servers, and how to start them.

Two sections: WSGI frameworks wrapped in ``WsgiToAsgi`` on ASGI servers, and ASGI frameworks
wrapped in ``AsgiToWsgi`` on WSGI servers. A cell is one framework on one server of its
section; ``test_matrix.py`` has one test per cell and ``report.py`` renders the README table
from a run. Only the standard library here: importing this module imports no framework.
"""

from __future__ import annotations

import importlib.util
import signal
import sys
from dataclasses import dataclass

from tests.gunicorn_flags import GUNICORN_NO_CONTROL_SOCKET
from tests.matrix.apps.common import BACKEND_ENV

APPS = "tests.matrix.apps"
HOST = "127.0.0.1"


@dataclass(frozen=True)
class Framework:
    id: str
    label: str
    #: The module under ``tests.matrix.apps`` whose ``app`` is the bridged app.
    module: str
    #: Import names that must be importable for the cell to run.
    requires: tuple[str, ...]
    #: Distributions whose versions the report shows.
    dists: tuple[str, ...]

    @property
    def app(self) -> str:
        return f"{APPS}.{self.module}:app"


@dataclass(frozen=True)
class Server:
    id: str
    label: str
    #: The command line; ``{app}`` and ``{port}`` are filled in, ``{python}`` is this interpreter.
    argv: tuple[str, ...]
    requires: tuple[str, ...]
    dists: tuple[str, ...]
    stop_signal: int = signal.SIGTERM
    #: Extra environment variables of the server process.
    env: tuple[tuple[str, str], ...] = ()
    #: Frameworks this column does not apply to, with the reason (framework id -> reason).
    not_applicable: tuple[tuple[str, str], ...] = ()

    def command(self, app: str, port: int) -> list[str]:
        return [part.format(python=sys.executable, app=app, port=port, host=HOST) for part in self.argv]


@dataclass(frozen=True)
class Section:
    title: str
    adapter: str
    frameworks: tuple[Framework, ...]
    servers: tuple[Server, ...]


@dataclass(frozen=True)
class Cell:
    section: Section
    framework: Framework
    server: Server

    @property
    def id(self) -> str:
        return f"{self.framework.id}-{self.server.id}"

    def command(self, port: int) -> list[str]:
        return self.server.command(self.framework.app, port)

    def not_applicable(self) -> str | None:
        """Why this framework cannot run in this column by design, if it cannot."""
        return dict(self.server.not_applicable).get(self.framework.id)

    def missing(self) -> list[str]:
        """The required import names that are not installed here."""
        names = dict.fromkeys(self.framework.requires + self.server.requires)
        return [name for name in names if importlib.util.find_spec(name) is None]


WSGI_FRAMEWORKS = (
    Framework("flask", "Flask", "flask_app", ("flask",), ("Flask",)),
    Framework("django", "Django", "django_app", ("django",), ("Django",)),
    Framework("falcon", "Falcon", "falcon_app", ("falcon",), ("falcon",)),
    Framework("bottle", "Bottle", "bottle_app", ("bottle",), ("bottle",)),
    Framework("pyramid", "Pyramid", "pyramid_app", ("pyramid",), ("pyramid",)),
)

ASGI_FRAMEWORKS = (
    Framework("fastapi", "FastAPI", "fastapi_app", ("fastapi",), ("fastapi",)),
    Framework("starlette", "Starlette", "starlette_app", ("starlette",), ("starlette",)),
    Framework("quart", "Quart", "quart_app", ("quart",), ("Quart",)),
    Framework("litestar", "Litestar", "litestar_app", ("litestar",), ("litestar",)),
    Framework("django-asgi", "Django (ASGI handler)", "django_asgi_app", ("django",), ("Django",)),
)

_UVICORN = (
    "{python}", "-m", "uvicorn", "{app}",
    "--host", "{host}", "--port", "{port}",
    "--lifespan", "on",
    "--timeout-graceful-shutdown", "2",
    "--log-level", "info",
)  # fmt: skip
_HYPERCORN = (
    "{python}", "-m", "hypercorn",
    "--bind", "{host}:{port}",
    # Serve in this process, no supervisor to start. (On trio it then dies at once on
    # SIGTERM, without a graceful shutdown: the matrix does not check shutdown.)
    "--workers", "0",
    "--graceful-timeout", "2",
    "--error-logfile", "-",
    "--access-logfile", "-",
)  # fmt: skip
_GUNICORN = (
    "{python}", "-m", "gunicorn",
    "--bind", "{host}:{port}",
    "--workers", "1",
    "--graceful-timeout", "2",
    "--timeout", "60",
    "--log-level", "info",
    "--access-logfile", "-",
    *GUNICORN_NO_CONTROL_SOCKET,
)  # fmt: skip
_GRANIAN = (
    "{python}", "-m", "granian",
    "--interface", "asgi",
    "--host", "{host}", "--port", "{port}",
    "--workers", "1",
    "--no-ws",
    "--log-level", "info",
    "--access-log",
    "{app}",
)  # fmt: skip
_SERVE = ("{python}", "-m", "tests.matrix.serve")

ASGI_SERVERS = (
    Server(
        "uvicorn-h11",
        "uvicorn (h11)",
        (*_UVICORN, "--http", "h11", "--loop", "asyncio"),
        ("uvicorn", "h11"),
        ("uvicorn", "h11"),
    ),
    Server(
        "uvicorn-httptools",
        "uvicorn (httptools)",
        (*_UVICORN, "--http", "httptools", "--loop", "uvloop"),
        ("uvicorn", "httptools", "uvloop"),
        ("httptools", "uvloop"),
    ),
    Server(
        "hypercorn-asyncio",
        "hypercorn (asyncio)",
        (*_HYPERCORN, "--worker-class", "asyncio", "{app}"),
        ("hypercorn",),
        ("hypercorn",),
    ),
    Server(
        "hypercorn-trio",
        "hypercorn (trio)",
        (*_HYPERCORN, "--worker-class", "trio", "{app}"),
        ("hypercorn", "trio"),
        ("trio",),
    ),
    Server(
        "granian",
        "granian (ASGI)",
        _GRANIAN,
        ("granian",),
        ("granian",),
    ),
)

WSGI_SERVERS = (
    Server(
        "gunicorn-sync",
        "gunicorn (sync)",
        (*_GUNICORN, "--worker-class", "sync", "{app}"),
        ("gunicorn",),
        ("gunicorn",),
    ),
    Server(
        "gunicorn-gthread",
        "gunicorn (gthread)",
        (*_GUNICORN, "--worker-class", "gthread", "--threads", "4", "{app}"),
        ("gunicorn",),
        (),
    ),
    Server("waitress", "waitress", (*_SERVE, "waitress", "{app}", "{port}"), ("waitress",), ("waitress",)),
    Server("werkzeug", "werkzeug", (*_SERVE, "werkzeug", "{app}", "{port}"), ("werkzeug",), ("Werkzeug",)),
    Server("wsgiref", "wsgiref", (*_SERVE, "wsgiref", "{app}", "{port}"), (), ()),
    Server(
        "gunicorn-gthread-trio",
        "gunicorn (gthread), trio backend",
        (*_GUNICORN, "--worker-class", "gthread", "--threads", "4", "{app}"),
        ("gunicorn", "trio"),
        (),
        env=((BACKEND_ENV, "trio"),),  # AsgiToWsgi(..., backend="trio")
        not_applicable=(
            ("quart", "Quart runs on asyncio only"),
            ("django-asgi", "Django's ASGI handler runs on asyncio only"),
        ),
    ),
)

SECTIONS = (
    Section("WSGI apps on ASGI servers", "bridge.WsgiToAsgi", WSGI_FRAMEWORKS, ASGI_SERVERS),
    Section("ASGI apps on WSGI servers", "bridge.AsgiToWsgi", ASGI_FRAMEWORKS, WSGI_SERVERS),
)


def cells() -> list[Cell]:
    """Every cell of the matrix, section by section, row by row."""
    return [
        Cell(section, framework, server)
        for section in SECTIONS
        for framework in section.frameworks
        for server in section.servers
    ]


def distributions() -> list[str]:
    """The distributions whose versions a report shows, in matrix order, each once."""
    names: dict[str, None] = {}
    for section in SECTIONS:
        for framework in section.frameworks:
            names.update(dict.fromkeys(framework.dists))
        for server in section.servers:
            names.update(dict.fromkeys(server.dists))
    return list(names)
