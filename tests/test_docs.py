"""Every fenced code block of README.md and docs/*.md is run here, or listed with the reason
it is not, so that a page cannot drift from the code.

- ``console`` blocks are run as a user would run them: a server command (``uvicorn``,
  ``hypercorn``, ``gunicorn``, ``waitress-serve``, ``bridge serve``, ``python serve.py``)
  starts that server for real on 127.0.0.1 (a free port, or a unix socket in the test's
  directory, in place of the one on the page); the ``curl`` and ``bridge check`` commands
  after it run against it, and their output must be the one on the page (``...`` stands for
  any lines; a few values that vary by run, like process ids, are masked). A server with no
  ``curl`` after it must answer a request. ``pip install`` lines are checked, not run: every
  package they name must be installed here (CI installs the test extra, which has them all).
- ``python`` blocks that are a module (``# myapp.py``) are written to a file and served;
  excerpts of a bundled example must be lines of that example, in order (the example itself
  is served by ``tests/examples``), and the ones an app needs are executed and requested
  in-process; fragments are executed with the names they use defined, and what they build
  is called.

Each block is claimed by one entry of ``RUN`` (the test that runs it) or of ``NOT_RUN``
(why not), found by a marker: a piece of its text. ``test_every_block_is_run_or_listed``
fails for a block that no entry claims, or an entry that claims no block (or two), so a
block added to a page must be given a test or a reason.

Every server binds 127.0.0.1 or a unix socket in ``tmp_path``, every wait is bounded,
and every server is stopped (SIGKILL to its group after a grace period) even when a
test fails (``tests/servers.py``).
"""

from __future__ import annotations

import argparse
import configparser
import contextlib
import hashlib
import importlib.metadata
import importlib.util
import inspect
import logging
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import anyio
import httpx
import pytest

from bridge import AsgiToWsgi, WsgiToAsgi
from bridge._types import Environ, Receive, Scope, Send, StartResponse
from tests.gunicorn_flags import GUNICORN_NO_CONTROL_SOCKET
from tests.servers import (
    REPO_ROOT,
    ServerProcess,
    Shutdown,
    child_env,
    http_ready,
    wait_ready,
)

pytestmark = pytest.mark.integration

DOCS = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
#: How long a command (curl, bridge check) may take.
COMMAND_TIMEOUT = 30.0
STARTUP = 30.0
STOP = Shutdown(signal.SIGTERM, group=True, grace=10.0)
BIN = Path(sys.executable).parent


# -- the blocks -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    doc: str  # relative to the repository root
    line: int  # of the opening fence
    lang: str
    text: str

    def where(self) -> str:
        return f"{self.doc}:{self.line} ({self.lang or 'no language'})"


def read_blocks() -> list[Block]:
    blocks: list[Block] = []
    for path in DOCS:
        doc = str(path.relative_to(REPO_ROOT))
        lines = path.read_text("utf-8").splitlines()
        i = 0
        while i < len(lines):
            match = re.match(r"^(\s*)```(\S*)\s*$", lines[i])
            if not match:
                i += 1
                continue
            indent, lang = match.groups()
            start = i
            body: list[str] = []
            i += 1
            while i < len(lines) and lines[i].strip() != "```":
                body.append(lines[i][len(indent) :])
                i += 1
            assert i < len(lines), f"{doc}:{start + 1}: a code block is never closed"
            blocks.append(Block(doc, start + 1, lang, "\n".join(body) + "\n"))
            i += 1
    return blocks


BLOCKS = read_blocks()


@dataclass(frozen=True)
class Run:
    """A block run by ``test``; ``marker`` is a piece of the block's text."""

    doc: str
    marker: str
    test: str


@dataclass(frozen=True)
class NotRun:
    """A block that is not run, and why."""

    doc: str
    marker: str
    reason: str


README = "README.md"
DEPLOY = "docs/deployment.md"
CONFIG = "docs/configuration.md"
DJANGO = "docs/guide-django-on-uvicorn.md"
FASTAPI = "docs/guide-fastapi-on-gunicorn.md"
TRIO = "docs/guide-flask-on-hypercorn-trio.md"
MOUNT = "docs/guide-mount-flask-in-fastapi.md"
WAITRESS = "docs/guide-starlette-on-waitress.md"
VENV = "python3 -m venv .venv && . .venv/bin/activate"

RUN = [
    # README.md
    Run(README, "pip install -e '.[examples]'", "test_readme_install"),
    Run(README, "Hello from Flask, served through bridge.WsgiToAsgi!", "test_readme_install"),
    Run(README, ".venv/bin/python -m pytest", "test_readme_install"),
    Run(README, "pip install flask uvicorn hypercorn", "test_readme_a_wsgi_app"),
    Run(README, "# myapp.py", "test_readme_a_wsgi_app"),
    Run(README, "uvicorn myapp:app", "test_readme_a_wsgi_app"),
    Run(README, "pip install fastapi gunicorn waitress", "test_readme_an_asgi_app"),
    Run(README, "# api.py", "test_readme_an_asgi_app"),
    Run(README, "gunicorn -k gthread --threads 8 api:app", "test_readme_an_asgi_app"),
    Run(README, "--server hypercorn-trio --threads 16", "test_readme_the_command_line"),
    Run(README, "$ bridge check examples.flask_hello:flask_app", "test_readme_the_command_line"),
    Run(README, "$ bridge check tests.cli_apps:wsgi_hop_by_hop", "test_readme_the_command_line"),
    # docs/deployment.md
    Run(DEPLOY, "pip install flask fastapi uvicorn", "test_deployment_thread_pools"),
    Run(DEPLOY, "app = WsgiToAsgi(flask_app, max_threads=16)", "test_deployment_thread_pools"),
    Run(DEPLOY, "$ gunicorn -w 2 -k gthread --threads 8 api:app", "test_deployment_thread_pools"),
    Run(DEPLOY, "# gunicorn.conf.py", "test_deployment_gunicorn_hooks"),
    Run(DEPLOY, "$ gunicorn -c gunicorn.conf.py", "test_deployment_gunicorn_hooks"),
    Run(DEPLOY, "$ bridge serve --uds /tmp/app.sock", "test_deployment_unix_sockets"),
    Run(DEPLOY, "$ uvicorn --uds /tmp/app.sock", "test_deployment_unix_sockets"),
    Run(DEPLOY, "--proxy-headers --forwarded-allow-ips", "test_deployment_proxy"),
    Run(DEPLOY, "app = WsgiToAsgi(ProxyFix(", "test_deployment_proxy"),
    Run(DEPLOY, "app = ProxyFix(AsgiToWsgi(api)", "test_deployment_proxy"),
    Run(DEPLOY, "# serve.py", "test_deployment_sigterm_script"),
    Run(DEPLOY, "$ python serve.py", "test_deployment_sigterm_script"),
    # docs/configuration.md
    Run(CONFIG, "WsgiToAsgi(\n    wsgi_app,", "test_configuration_signatures"),
    Run(CONFIG, "AsgiToWsgi(\n    asgi_app,", "test_configuration_signatures"),
    Run(CONFIG, "bridge serve [options] MODULE:APP", "test_configuration_synopses"),
    Run(CONFIG, "bridge check [options] MODULE:APP", "test_configuration_synopses"),
    Run(CONFIG, 'getLogger("bridge.wsgi.errors")', "test_configuration_logging"),
    # the guides
    Run(DJANGO, "pip install -e . django uvicorn", "test_guide_django"),
    Run(DJANGO, 'os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")', "test_guide_django"),
    Run(DJANGO, "$ cd examples/django_project", "test_guide_django"),
    Run(DJANGO, "$ curl http://127.0.0.1:8000/api/notes/", "test_guide_django"),
    Run(DJANGO, "def upload(request):", "test_guide_django_uploads"),
    Run(DJANGO, "$ curl --data-binary @big.file", "test_guide_django_uploads"),
    Run(DJANGO, "class SpoolChunkedBody:", "test_guide_django_uploads"),
    Run(DJANGO, '{"size": 20000000, "content_length": "20000000"}', "test_guide_django_uploads"),
    Run(DJANGO, "$ pip install whitenoise", "test_guide_django_static_files"),
    Run(DJANGO, '"whitenoise.middleware.WhiteNoiseMiddleware"', "test_guide_django_static_files"),
    Run(DJANGO, "urlpatterns += staticfiles_urlpatterns()", "test_guide_django_static_files"),
    Run(FASTAPI, "pip install -e . fastapi gunicorn", "test_guide_fastapi_on_gunicorn"),
    Run(FASTAPI, "async def lifespan(api: FastAPI)", "test_guide_fastapi_on_gunicorn"),
    Run(FASTAPI, "$ gunicorn --preload -w 2", "test_guide_fastapi_on_gunicorn"),
    Run(FASTAPI, '"pool_pid":5017,"query":1', "test_guide_fastapi_on_gunicorn"),
    Run(TRIO, "pip install -e . flask 'hypercorn[trio]'", "test_guide_flask_on_hypercorn_trio"),
    Run(TRIO, "def stream() -> ResponseReturnValue:", "test_guide_flask_on_hypercorn_trio"),
    Run(TRIO, "$ hypercorn -k trio", "test_guide_flask_on_hypercorn_trio"),
    Run(TRIO, "$ curl -N", "test_guide_flask_on_hypercorn_trio"),
    Run(MOUNT, "pip install -e . fastapi flask uvicorn", "test_guide_mount_flask_in_fastapi"),
    Run(MOUNT, "legacy = Flask(__name__)", "test_guide_mount_flask_in_fastapi"),
    Run(MOUNT, 'app = FastAPI(title="new API")', "test_guide_mount_flask_in_fastapi"),
    Run(MOUNT, "$ uvicorn examples.fastapi_mount_flask:app", "test_guide_mount_flask_in_fastapi"),
    Run(MOUNT, "$ curl http://127.0.0.1:8000/api/users/ada", "test_guide_mount_flask_in_fastapi"),
    Run(MOUNT, "--server uvicorn\nbridge: error:", "test_guide_mount_flask_in_fastapi"),
    Run(MOUNT, "async def ported(name: str)", "test_guide_mount_flask_in_fastapi"),
    Run(WAITRESS, "pip install -e . starlette python-multipart waitress", "test_guide_starlette_on_waitress"),
    Run(WAITRESS, "starlette_app = Starlette(", "test_guide_starlette_on_waitress"),
    Run(WAITRESS, "$ waitress-serve --host 127.0.0.1", "test_guide_starlette_on_waitress"),
    Run(WAITRESS, "$ curl 'http://127.0.0.1:8000/countdown?n=3'", "test_guide_starlette_on_waitress"),
    # coming from another adapter
    Run("docs/migrating-from-a2wsgi.md", "WSGIMiddleware(flask_app", "test_migrating_snippets"),
    Run("docs/migrating-from-a2wsgi.md", "ASGIMiddleware(fastapi_app)", "test_migrating_snippets"),
    Run("docs/migrating-from-asgiref.md", "from asgiref.wsgi import WsgiToAsgi", "test_migrating_snippets"),
    Run("docs/internals.md", "cross-thread toolkit", "test_internals_layers"),
]

NOT_RUN = [
    # The full benchmark run: it needs the bench extra (a2wsgi, matplotlib) and takes a
    # minute even with --quick; `tox -e bench` runs it.
    NotRun("docs/benchmarks.md", "python -m benchmarks --quick", "needs the bench extra; a minute long"),
    NotRun(
        "docs/benchmarks.md",
        "benchmarks.revisions 2a8e793",
        "a minute or two, 8 processes a revision; tests/test_benchmark_revisions.py runs it, with 2",
    ),
]


def find(doc: str, marker: str) -> list[Block]:
    return [block for block in BLOCKS if block.doc == doc and marker in block.text]


def block(doc: str, marker: str) -> str:
    found = find(doc, marker)
    assert len(found) == 1, f"{doc}: {len(found)} blocks hold {marker!r}"
    return found[0].text


def test_every_block_is_run_or_listed() -> None:
    entries: list[Run | NotRun] = [*RUN, *NOT_RUN]
    problems = []
    for each in BLOCKS:
        claims = [e for e in entries if e.doc == each.doc and e.marker in each.text]
        if len(claims) != 1:
            first = each.text.splitlines()[0] if each.text.strip() else ""
            problems.append(
                f"{each.where()}, starting {first!r}: claimed by {len(claims)} entries of RUN/NOT_RUN "
                "(give it a test in tests/test_docs.py, or a reason in NOT_RUN)"
            )
    for entry in entries:
        if len(find(entry.doc, entry.marker)) != 1:
            problems.append(f"{entry}: matches {len(find(entry.doc, entry.marker))} blocks, not 1")
        if isinstance(entry, Run) and not callable(globals().get(entry.test)):
            problems.append(f"{entry}: there is no test {entry.test}")
    assert not problems, "\n".join(problems)


# -- running console blocks ------------------------------------------------------------------


@dataclass
class Command:
    argv: list[str]
    output: list[str]  # expected lines; empty: not checked
    text: str


def commands(text: str) -> list[Command]:
    """The commands of a console block: ``$ `` lines (or every line, in a block without
    prompts), continuation lines joined, with the output lines that follow each. A
    trailing ``# or: OTHER`` comment is another command to run."""
    lines = text.rstrip("\n").split("\n")
    prompts = any(line.startswith("$ ") for line in lines)
    result: list[Command] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if prompts and not line.startswith("$ "):
            assert result, f"output before any command: {line!r}"
            result[-1].output.append(line)
            continue
        command = line[2:] if prompts else line
        while command.endswith("\\"):
            command = command[:-1] + " " + lines[i].strip()
            i += 1
        argv = shlex.split(command, comments=True)
        result.append(Command(argv, [], command))
        alternative = re.search(r"#\s*or:\s*(.+)$", command)
        if alternative:
            result.append(Command(shlex.split(alternative.group(1)), [], alternative.group(1)))
    return result


def _option(argv: list[str], *names: str) -> str | None:
    """Remove ``--name VALUE`` or ``--name=VALUE`` from argv; the value, or None."""
    for index, arg in enumerate(argv):
        for name in names:
            if arg == name:
                value = argv[index + 1]
                del argv[index : index + 2]
                return value
            if arg.startswith(name + "="):
                del argv[index]
                return arg[len(name) + 1 :]
    return None


SERVERS = ("uvicorn", "hypercorn", "gunicorn", "waitress-serve")


@dataclass
class Session:
    """Runs the commands of a page, in order: one server at a time."""

    tmp: Path
    cwd: Path
    #: Text to replace, on the page's side, in commands and expected output.
    paths: dict[str, str] = field(default_factory=dict)
    #: (pattern, replacement) applied to the expected and the actual output alike.
    masks: list[tuple[str, str]] = field(default_factory=list)
    #: A check of a server that no curl follows (the default: GET / answers below 500).
    probe: Callable[[ServerProcess], None] | None = None
    server: ServerProcess | None = None
    uds: str | None = None
    ran: list[str] = field(default_factory=list)

    def run_block(self, text: str) -> None:
        for command in commands(text):
            self.run(command)

    def run(self, command: Command) -> None:
        argv = [self._path(arg) for arg in command.argv]
        self.ran.append(" ".join(argv))
        if " && " in command.text or argv[:1] == ["pip"]:
            self._install(command.text)
        elif argv[0] == "cd":
            self.cwd = self.cwd / argv[1]
        elif argv[0] == "head" and argv[-2] == ">":
            with open(self.cwd / argv[-1], "wb") as out:
                subprocess.run(argv[:-2], cwd=self.cwd, stdout=out, check=True, timeout=COMMAND_TIMEOUT)
        elif argv[0] == "curl":
            self._compare(command, self._execute(argv))
        elif argv[:2] == ["bridge", "check"]:
            self._compare(command, self._execute([sys.executable, "-m", "bridge", *argv[1:]]))
        elif argv[0] in SERVERS or argv[:2] == ["bridge", "serve"] or argv[0] in ("python", "python3"):
            if command.output:  # a command expected to fail, with what it says
                self.stop()
                self._compare(command, self._execute(self._executable(argv), check=False))
            else:
                self.start(argv)
        else:  # pragma: no cover - a page gained a command this test does not know
            raise AssertionError(f"tests/test_docs.py does not know how to run {command.text!r}")

    def _path(self, arg: str) -> str:
        for page, here in self.paths.items():
            arg = arg.replace(page, here)
        return arg

    def _install(self, text: str) -> None:
        """A ``pip install`` (or venv) line: check, do not run. Every package it names
        must be installed here, and every extra of bridge it names declared."""
        for part in text.split("&&"):
            argv = shlex.split(part)
            if argv[:3] in (["python3", "-m", "venv"],) or argv[:1] == ["."]:
                continue  # the virtual environment these tests already run in
            if argv[:1] == [".venv/bin/python"] or argv[:1] == [".venv/bin/bridge"]:
                continue  # checked by the caller
            pip = argv.index("install")
            assert argv[pip - 1].endswith("pip"), part
            for name in argv[pip + 1 :]:
                if name in ("-q", "-e", "."):
                    continue
                match = re.fullmatch(r"([\w.-]*)(?:\[([\w,]+)\])?", name)
                assert match, name
                package, extras = match.groups()
                if package == ".":
                    package = "bridge"
                if not package:
                    package = "bridge"
                try:
                    importlib.metadata.version(package)
                except importlib.metadata.PackageNotFoundError:
                    if package == "whitenoise":
                        continue  # the one optional package; its use is checked if installed
                    raise AssertionError(f"{text!r} names {package}, which is not installed here") from None
                if extras and package == "bridge":
                    declared = _extras()
                    assert set(extras.split(",")) <= declared, (extras, declared)

    def _executable(self, argv: list[str]) -> list[str]:
        if argv[0] == "bridge":
            return [sys.executable, "-m", "bridge", *argv[1:]]
        if argv[0] in ("python", "python3"):
            return [sys.executable, *argv[1:]]
        return [str(BIN / argv[0]), *argv[1:]]

    def _execute(self, argv: list[str], *, check: bool = True) -> str:
        if argv[0] == "curl" and shutil.which("curl") is None:  # pragma: no cover
            pytest.skip("curl is not installed")
        if argv[0] == "curl":
            assert self.server is not None, "curl without a server"
            self.server.assert_alive()
            argv = [*argv[:1], "-sS", "--max-time", str(COMMAND_TIMEOUT), *argv[1:]]
        process = subprocess.run(
            argv,
            cwd=self.cwd,
            env=child_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT + 5,
            check=False,
        )
        if check and argv[0] == "curl":
            assert process.returncode == 0, process.stderr
        return process.stdout + (process.stderr if argv[0] != "curl" else "")

    def _compare(self, command: Command, actual: str) -> None:
        expected = [self._mask(self._path(line)) for line in command.output]
        got = [self._mask(line) for line in actual.rstrip("\n").split("\n")]
        assert _matches(expected, got), (
            f"{command.text}\nexpected (from the page):\n"
            + "\n".join(expected)
            + "\ngot:\n"
            + "\n".join(got)
            + (f"\nserver log:\n{self.server.log_tail()}" if self.server else "")
        )

    def _mask(self, text: str) -> str:
        for pattern, replacement in self.masks:
            text = re.sub(pattern, replacement, text)
        return text

    def start(self, argv: list[str]) -> None:
        self.stop()
        argv, uds = _bind(argv, self.tmp)
        self.uds = uds

        def command(port: int) -> list[str]:
            return self._executable([part.replace("{port}", str(port)) for part in argv])

        server = ServerProcess.launch(argv[0], command, self.tmp, cwd=self.cwd, shutdown=STOP, uds=uds)
        self.server = server
        if uds is None:
            self.paths["127.0.0.1:8000"] = f"127.0.0.1:{server.port}"
        wait_ready(server, lambda s: (uds is None or os.path.exists(uds)) and http_ready("/", status=None)(s))
        (self.probe or _answers)(server)

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None
        if self.uds is not None:  # a server that left its socket file: the next one binds anew
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.uds)


def _answers(server: ServerProcess) -> None:
    with server.client() as client:
        assert client.get("/").status_code < 500, server.log_tail()


def _matches(expected: Sequence[str], got: Sequence[str]) -> bool:
    """Whether ``got`` is ``expected``, where a line ``...`` (or ``  ...``) stands for any
    lines, and a line ending in ``...`` for any line that starts with what precedes it."""
    if not expected:
        return not got
    head = expected[0]
    if head.strip() == "...":
        return any(_matches(expected[1:], got[i:]) for i in range(len(got) + 1))
    if not got:
        return False
    same = got[0] == head or (head.endswith("...") and got[0].startswith(head[:-3]))
    return same and _matches(expected[1:], got[1:])


def _bind(argv: list[str], tmp: Path) -> tuple[list[str], str | None]:
    """The server command with the page's address replaced: 127.0.0.1 and a free port
    (``{port}``), or a unix socket path already moved into ``tmp`` by the session."""
    argv = list(argv)
    name = "bridge serve" if argv[:2] == ["bridge", "serve"] else argv[0]
    if name in ("uvicorn", "bridge serve"):
        _option(argv, "--host")
        _option(argv, "--port")
        uds = _option(argv, "--uds")
        return [*argv, *(["--uds", uds] if uds else ["--host", "127.0.0.1", "--port", "{port}"])], uds
    if name in ("hypercorn", "gunicorn"):
        bound = _option(argv, "-b", "--bind")
        uds = bound[len("unix:") :] if bound and bound.startswith("unix:") else None
        if name == "gunicorn":
            with contextlib.suppress(ValueError):
                argv.remove("--no-control-socket")  # added below, if this gunicorn has it
            argv[1:1] = GUNICORN_NO_CONTROL_SOCKET
        return [*argv, "-b", f"unix:{uds}" if uds else "127.0.0.1:{port}"], uds
    if name == "waitress-serve":
        _option(argv, "--host")
        _option(argv, "--port")
        _option(argv, "--listen")
        uds = _option(argv, "--unix-socket")
        where = f"--unix-socket={uds}" if uds else "--listen=127.0.0.1:{port}"
        return [argv[0], where, *argv[1:]], uds
    return argv, None  # python serve.py: the test wrote the port into the script


@contextlib.contextmanager
def session(tmp: Path, cwd: Path | None = None, **kwargs: Any) -> Iterator[Session]:
    run = Session(tmp, cwd or tmp, **kwargs)
    run.paths.setdefault("/tmp/app.sock", str(tmp / "app.sock"))
    try:
        yield run
    finally:
        run.stop()


def _extras() -> set[str]:
    config = configparser.ConfigParser()
    config.read(REPO_ROOT / "setup.cfg")
    return set(config["options.extras_require"])


def write_module(tmp: Path, text: str) -> Path:
    """A ``# name.py`` block, written to ``tmp/name.py``."""
    name = re.match(r"# (\S+\.py)\n", text)
    assert name, text.splitlines()[0]
    path = tmp / name.group(1)
    path.write_text(text)
    return path


def excerpt_of(text: str, example: str) -> None:
    """Every line of ``text`` (but blank ones and ``...``) is a line of ``example``, in order."""
    source = (REPO_ROOT / example).read_text("utf-8").split("\n")
    position = 0
    for line in text.split("\n"):
        if not line.strip() or line.strip() == "...":
            continue
        try:
            position = source.index(line, position) + 1
        except ValueError:
            raise AssertionError(f"{line!r} is not a line of {example} (in this order)") from None


def namespace(**names: Any) -> dict[str, Any]:
    """Globals for exec: the adapters, and ``names``."""
    return {"__name__": "docs_snippet", "WsgiToAsgi": WsgiToAsgi, "AsgiToWsgi": AsgiToWsgi, **names}


def asgi_get(app: Any, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """One request to an ASGI app, in-process."""

    async def request() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as client:
            return await client.request(method, path, **kwargs)

    return anyio.run(request)


def wsgi_environ_app(environ: Environ, start_response: StartResponse) -> list[bytes]:
    """Answers with what the tests of the proxy snippets look at."""
    text = f"{environ['REMOTE_ADDR']} {environ['wsgi.url_scheme']}".encode()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [text]


# -- README.md --------------------------------------------------------------------------------


def test_readme_install(tmp_path: Path) -> None:
    # One command: a venv, the install, and the serve (.ci's "main job").
    install = block(README, "pip install -e '.[examples]'")
    [line] = install.splitlines()
    serve = ".venv/bin/bridge serve "
    setup = "$ python3 -m venv .venv && .venv/bin/pip install -e '.[examples]' && "
    assert line.startswith(setup + serve), line
    with session(tmp_path, cwd=REPO_ROOT) as run:
        run.run_block(install)  # the venv and pip parts: checked
        run.start(["bridge", "serve", *shlex.split(line.split(serve, 1)[1])])  # in this venv
        run.run_block(block(README, "Hello from Flask, served through bridge.WsgiToAsgi!"))
        assert run.server is not None and "on uvicorn at http://127.0.0.1:" in run.server.log()
    # The test command is .ci/run's first line, verbatim: CI runs it.
    test_command = block(README, ".venv/bin/python -m pytest").strip()
    assert test_command in (REPO_ROOT / ".ci" / "run").read_text("utf-8")
    run.run_block(test_command)  # (the pip part: the test extra exists)


def _readme_modules(tmp: Path) -> None:
    write_module(tmp, block(README, "# myapp.py"))
    write_module(tmp, block(README, "# api.py"))


def test_readme_a_wsgi_app(tmp_path: Path) -> None:
    _readme_modules(tmp_path)

    def hello(server: ServerProcess) -> None:
        with server.client() as client:
            assert client.get("/").text == "Hello from Flask on an ASGI server\n", server.log_tail()

    with session(tmp_path, probe=hello) as run:
        run.run_block(block(README, "pip install flask uvicorn hypercorn"))
        run.run_block(block(README, "uvicorn myapp:app"))
    assert [argv.split()[0] for argv in run.ran[1:]] == ["uvicorn", "hypercorn"]


def _fastapi_hello(server: ServerProcess) -> None:
    with server.client() as client:
        assert client.get("/").json() == {"hello": "from FastAPI on a WSGI server"}, server.log_tail()


def test_readme_an_asgi_app(tmp_path: Path) -> None:
    _readme_modules(tmp_path)
    with session(tmp_path, probe=_fastapi_hello) as run:
        run.run_block(block(README, "pip install fastapi gunicorn waitress"))
        run.run_block(block(README, "gunicorn -k gthread --threads 8 api:app"))
    assert [argv.split()[0] for argv in run.ran[1:]] == ["gunicorn", "waitress-serve"]


def test_readme_the_command_line(tmp_path: Path) -> None:
    _readme_modules(tmp_path)
    with session(tmp_path) as run:
        run.run_block(block(README, "--server hypercorn-trio --threads 16"))
        assert run.server is not None and run.uds is not None
        with run.server.client() as client:  # mounted at /legacy, on a unix socket
            assert client.get("/legacy/").text == "Hello from Flask, served through bridge.WsgiToAsgi!\n"
        run.stop()
        run.run_block(block(README, "$ bridge check examples.flask_hello:flask_app"))
        run.run_block(block(README, "$ bridge check tests.cli_apps:wsgi_hop_by_hop"))


# -- docs/deployment.md -----------------------------------------------------------------------


def test_deployment_thread_pools(tmp_path: Path) -> None:
    flask = pytest.importorskip("flask")
    names = namespace(flask_app=flask.Flask("docs"))
    exec(block(DEPLOY, "app = WsgiToAsgi(flask_app, max_threads=16)"), names)
    assert names["app"].max_threads == 16
    _readme_modules(tmp_path)
    with session(tmp_path, probe=_fastapi_hello) as run:
        run.run_block(block(DEPLOY, "pip install flask fastapi uvicorn"))
        run.run_block(block(DEPLOY, "$ gunicorn -w 2 -k gthread --threads 8 api:app"))
    assert [argv.split()[0] for argv in run.ran[1:]] == ["gunicorn", "waitress-serve", "bridge"]


def test_deployment_gunicorn_hooks(tmp_path: Path) -> None:
    write_module(tmp_path, block(DEPLOY, "# gunicorn.conf.py"))
    with session(tmp_path) as run:
        run.run_block(block(DEPLOY, "$ gunicorn -c gunicorn.conf.py"))
        server = run.server
        assert server is not None
        assert server.graceful_stop() == 0, server.log_tail()
    log = server.log()
    # post_worker_init started each worker's lifespan before any request; worker_exit
    # closed it (the shutdown runs once per worker).
    assert log.count("pool opened in pid") == 2, log
    assert log.count("pool closed in pid") == 2, log


def test_deployment_unix_sockets(tmp_path: Path) -> None:
    _readme_modules(tmp_path)
    with session(tmp_path, cwd=REPO_ROOT) as run:
        run.run_block(block(DEPLOY, "$ bridge serve --uds /tmp/app.sock"))
        run.run_block(block(DEPLOY, "$ uvicorn --uds /tmp/app.sock"))
    assert [argv.split()[0] for argv in run.ran] == [
        "bridge",
        "curl",
        "uvicorn",
        "hypercorn",
        "gunicorn",
        "waitress-serve",
    ]


def test_deployment_proxy(tmp_path: Path) -> None:
    _readme_modules(tmp_path)
    with session(tmp_path) as run:
        run.run_block(block(DEPLOY, "--proxy-headers --forwarded-allow-ips"))
    # The two ProxyFix snippets, around each adapter: the app sees the proxy's client and scheme.
    from werkzeug.middleware.proxy_fix import ProxyFix
    from werkzeug.test import Client

    forwarded = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"}
    names = namespace(flask_app=wsgi_environ_app)
    exec(block(DEPLOY, "app = WsgiToAsgi(ProxyFix("), names)
    assert asgi_get(names["app"], "GET", "/", headers=forwarded).text == "203.0.113.7 https"

    async def api(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            raise RuntimeError("no lifespan")
        text = f"{scope['client'][0]} {scope['scheme']}".encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": text})

    names = namespace(api=api)
    exec(block(DEPLOY, "app = ProxyFix(AsgiToWsgi(api)"), names)
    proxy = names["app"]
    assert isinstance(proxy, ProxyFix) and isinstance(proxy.app, AsgiToWsgi)
    try:
        assert Client(proxy).get("/", headers=forwarded).get_data() == b"203.0.113.7 https"
    finally:
        proxy.app.close()


def test_deployment_sigterm_script(tmp_path: Path) -> None:
    script = block(DEPLOY, "# serve.py")
    assert "port=8000" in script
    assert [c.argv for c in commands(block(DEPLOY, "$ python serve.py"))] == [["python", "serve.py"]]
    port = _free_port()
    (tmp_path / "serve.py").write_text(script.replace("port=8000", f"port={port}"))
    with ServerProcess.launch(
        "serve.py",
        lambda _port: [sys.executable, "serve.py"],
        tmp_path,
        port=port,
        cwd=tmp_path,
        shutdown=Shutdown(signal.SIGTERM, grace=10.0),
    ) as server:
        wait_ready(server, http_ready("/"), STARTUP)
        # SIGTERM is a normal exit (status 0, not death by the signal), so atexit runs
        # bridge's lifespan shutdown.
        assert server.graceful_stop() == 0, server.log_tail()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- docs/configuration.md --------------------------------------------------------------------


def _documented_signature(text: str) -> dict[str, str]:
    """``{name: default}`` of the keyword parameters a signature block shows."""
    params = re.findall(r"^\s+(\w+)=(.+?),?$", text, re.MULTILINE)
    return dict(params)


@pytest.mark.parametrize("cls", [WsgiToAsgi, AsgiToWsgi])
def test_configuration_signatures(cls: type) -> None:
    text = block(CONFIG, f"{cls.__name__}(\n")
    documented = _documented_signature(text)
    actual = {
        name: param.default
        for name, param in inspect.signature(cls).parameters.items()
        if param.kind is inspect.Parameter.KEYWORD_ONLY
    }
    assert list(documented) == list(actual), (documented, actual)
    for name, default in documented.items():
        assert eval(default) == actual[name], (name, default, actual[name])  # the page's literals


def test_configuration_synopses(capsys: pytest.CaptureFixture[str]) -> None:
    from bridge.cli import _parser

    parser = _parser()
    for command in ("serve", "check"):
        text = block(CONFIG, f"bridge {command} [options] MODULE:APP").strip()
        assert text == f"bridge {command} [options] MODULE:APP"
        with pytest.raises(SystemExit):
            parser.parse_args([command, "--help"])
        usage = capsys.readouterr().out
        assert usage.startswith(f"usage: bridge {command} [-h]") and "MODULE:APP" in usage
        # Every option of the command is in the page's table, and only those.
        subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        options = {
            option
            for action in subparsers.choices[command]._actions
            for option in action.option_strings
            if option.startswith("--") and option != "--help"
        }
        section = (REPO_ROOT / CONFIG).read_text("utf-8").split(f"## bridge {command}\n")[1].split("\n## ")[0]
        table = set(re.findall(r"^\| `(--[\w-]+)", section, re.MULTILINE))
        shared = {"--factory", "--interface", "--app-dir", "--log-level"}
        assert options == table | (shared if command == "check" else set()), (options, table)


def test_configuration_logging(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    target = logging.getLogger("bridge.wsgi.errors")
    before = list(target.handlers)
    try:
        exec(block(CONFIG, 'getLogger("bridge.wsgi.errors")'), {})
        (added,) = [handler for handler in target.handlers if handler not in before]
        target.warning("a line from the app")
        added.flush()
        assert (tmp_path / "wsgi-errors.log").read_text() == "a line from the app\n"
    finally:
        for handler in [h for h in target.handlers if h not in before]:
            target.removeHandler(handler)
            handler.close()


# -- the guides -------------------------------------------------------------------------------


def _check_install(doc: str, packages: str) -> None:
    text = block(doc, f"pip install -e . {packages}")
    assert text == f"$ {VENV}\n$ pip install -e . {packages}\n", text
    Session(Path("."), REPO_ROOT).run_block(text)


def test_guide_django(tmp_path: Path) -> None:
    _check_install(DJANGO, "django uvicorn")
    excerpt_of(
        block(DJANGO, 'os.environ.setdefault("DJANGO_SETTINGS_MODULE"'),
        "examples/django_project/mysite/asgi.py",
    )
    with session(tmp_path, cwd=REPO_ROOT) as run:
        run.run_block(block(DJANGO, "$ cd examples/django_project"))
        run.run_block(block(DJANGO, "$ curl http://127.0.0.1:8000/api/notes/"))


#: A Django project in one module, around the guide's upload view (the example project has
#: no such view): the view and the middleware blocks are put in as they are on the page.
#: ``plain`` is the project without the middleware.
DJANGO_UPLOADS = """
import django
from django.conf import settings
from django.http import JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

settings.configure(
    DEBUG=False, SECRET_KEY="docs", ALLOWED_HOSTS=["127.0.0.1"], ROOT_URLCONF=__name__,
    MIDDLEWARE=[], DATABASES={{}},
)
django.setup()

from django.core.wsgi import get_wsgi_application

from bridge import WsgiToAsgi

{view}

urlpatterns = [path("upload", upload)]

plain = WsgiToAsgi(get_wsgi_application())

{middleware}
"""


def test_guide_django_uploads(tmp_path: Path) -> None:
    view = block(DJANGO, "def upload(request):")
    middleware = block(DJANGO, "class SpoolChunkedBody:")
    (tmp_path / "uploads.py").write_text(DJANGO_UPLOADS.format(view=view, middleware=middleware))
    with session(tmp_path) as run:
        run.start(["uvicorn", "uploads:plain"])
        run.run_block(block(DJANGO, "$ curl --data-binary @big.file"))
        # The middleware's block ends with `application = ...`: served as on the page.
        run.start(["uvicorn", "uploads:application"])
        run.run_block(block(DJANGO, '{"size": 20000000, "content_length": "20000000"}'))


def test_guide_django_static_files(tmp_path: Path) -> None:
    """The development way, run: staticfiles_urlpatterns() serves an app's static/ files
    through WsgiToAsgi. The WhiteNoise settings run too, if WhiteNoise is installed (it
    is not in the test extra)."""
    Session(tmp_path, tmp_path).run_block(block(DJANGO, "$ pip install whitenoise"))
    settings = block(DJANGO, '"whitenoise.middleware.WhiteNoiseMiddleware"')
    urls = block(DJANGO, "urlpatterns += staticfiles_urlpatterns()")
    project = tmp_path / "mysite"
    (project / "static").mkdir(parents=True)
    (project / "__init__.py").write_text("")
    (project / "static" / "app.css").write_text("body { color: red }\n")
    whitenoise = importlib.util.find_spec("whitenoise") is not None
    base = textwrap.dedent(
        """
        from pathlib import Path
        BASE_DIR = Path(__file__).resolve().parent.parent
        SECRET_KEY = "docs"
        ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
        ROOT_URLCONF = "mysite.urls"
        DATABASES = {}
        INSTALLED_APPS = ["mysite"]
        MIDDLEWARE = ["django.middleware.security.SecurityMiddleware"]
        """
    )
    # The page's `[..., x]` means: what the project had, then x.
    page = settings.replace("[...,", "[*INSTALLED_APPS,").replace("    ...,\n", "    *MIDDLEWARE[1:],\n")
    if not whitenoise:
        page = page.replace('    "whitenoise.middleware.WhiteNoiseMiddleware",', "")
    (project / "settings.py").write_text(base + page + f"\nDEBUG = {not whitenoise}\n")
    (project / "urls.py").write_text("urlpatterns = []\n" + urls)
    script = textwrap.dedent(
        """
        import os, sys
        os.environ["DJANGO_SETTINGS_MODULE"] = "mysite.settings"
        import django
        django.setup()
        if sys.argv[1] == "collect":
            from django.core.management import call_command
            call_command("collectstatic", "--noinput", verbosity=0)
        import anyio, httpx
        from django.core.wsgi import get_wsgi_application
        from bridge import WsgiToAsgi

        async def main():
            transport = httpx.ASGITransport(app=WsgiToAsgi(get_wsgi_application()))
            async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
                response = await client.get("/static/app.css")
                print(response.status_code, response.text, end="")

        anyio.run(main)
        """
    )
    process = subprocess.run(
        [sys.executable, "-c", script, "collect" if whitenoise else "debug"],
        cwd=tmp_path,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )
    assert process.stdout == "200 body { color: red }\n", process.stdout + process.stderr


def test_guide_fastapi_on_gunicorn(tmp_path: Path) -> None:
    _check_install(FASTAPI, "fastapi gunicorn")
    excerpt_of(block(FASTAPI, "async def lifespan(api: FastAPI)"), "examples/fastapi_gunicorn.py")
    # Which of the two workers answers varies: its pid, and so its count of queries.
    masks = [(r'"pid":\d+,"pool_pid":\d+,"query":\d+', '"pid":P,"pool_pid":P,"query":N')]

    def same_pid(server: ServerProcess) -> None:
        with server.client() as client:
            body = client.get("/").json()
        assert body["pid"] == body["pool_pid"], body

    with session(tmp_path, cwd=REPO_ROOT, masks=masks, probe=same_pid) as run:
        run.run_block(block(FASTAPI, "$ gunicorn --preload -w 2"))
        run.run_block(block(FASTAPI, '"pool_pid":5017,"query":1'))


def test_guide_flask_on_hypercorn_trio(tmp_path: Path) -> None:
    _check_install(TRIO, "flask 'hypercorn[trio]'")
    excerpt_of(block(TRIO, "def stream() -> ResponseReturnValue:"), "examples/flask_hypercorn_trio.py")
    # big.file: 5,000,000 random bytes, as on the page; its digest replaces the page's.
    data = os.urandom(5_000_000)
    (tmp_path / "big.file").write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    masks = [(r'"sha256":"[0-9a-f]{64}"', '"sha256":"DIGEST"')]
    with session(tmp_path, cwd=REPO_ROOT, masks=masks) as run:
        run.run_block(block(TRIO, "$ hypercorn -k trio"))
        run.cwd = tmp_path
        run.run_block(block(TRIO, "$ curl -N"))
        assert run.server is not None
        with run.server.client() as client:
            assert client.put("/upload", content=data).json()["sha256"] == digest


#: What the mount guide's excerpts need to run, as the example imports it.
MOUNT_IMPORTS = """
from fastapi import FastAPI
from flask import Flask, jsonify, redirect, request, session, url_for
from flask.typing import ResponseReturnValue

from bridge import WsgiToAsgi
"""


def test_guide_mount_flask_in_fastapi(tmp_path: Path) -> None:
    _check_install(MOUNT, "fastapi flask uvicorn")
    legacy = block(MOUNT, "legacy = Flask(__name__)")
    new = block(MOUNT, 'app = FastAPI(title="new API")')
    example = "examples/fastapi_mount_flask.py"
    excerpt_of(legacy, example)
    excerpt_of(new, example)
    # The excerpts alone make a working app: every url_for finds its route.
    names = namespace()
    exec(MOUNT_IMPORTS + legacy + new, names)
    app = names["app"]

    async def login() -> tuple[httpx.Response, httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            posted = await client.post("/legacy/login", data={"user": "ada"})
            return posted, await client.get(posted.headers["location"])

    posted, whoami = anyio.run(login)
    assert (posted.status_code, posted.headers["location"]) == (302, "/legacy/whoami")
    assert whoami.json() == {"user": "ada"}
    # A route ported before the mount answers in its place.
    names = namespace()
    exec(
        MOUNT_IMPORTS + legacy + 'app = FastAPI(title="new API")\n' + block(MOUNT, "async def ported"), names
    )
    assert asgi_get(names["app"], "GET", "/legacy/users/ada").json()["served_by"] == "fastapi (ported)"
    with session(tmp_path, cwd=REPO_ROOT) as run:
        run.run_block(block(MOUNT, "$ uvicorn examples.fastapi_mount_flask:app"))
        run.run_block(block(MOUNT, "$ curl http://127.0.0.1:8000/api/users/ada"))
        run.run_block(block(MOUNT, "--server uvicorn\nbridge: error:"))


def test_guide_starlette_on_waitress(tmp_path: Path) -> None:
    _check_install(WAITRESS, "starlette python-multipart waitress")
    excerpt_of(block(WAITRESS, "starlette_app = Starlette("), "examples/starlette_waitress.py")
    with session(tmp_path, cwd=REPO_ROOT) as run:
        run.run_block(block(WAITRESS, "$ waitress-serve --host 127.0.0.1"))
        run.run_block(block(WAITRESS, "$ curl 'http://127.0.0.1:8000/countdown?n=3'"))


# -- coming from another adapter, internals ----------------------------------------------------


def _split_before_after(text: str) -> tuple[str, str]:
    before, after = text.split("# after\n")
    assert before.startswith("# before\n"), text
    return before, after


def test_migrating_snippets() -> None:
    flask = pytest.importorskip("flask")
    fastapi = pytest.importorskip("fastapi")
    snippets = [
        (block("docs/migrating-from-a2wsgi.md", "WSGIMiddleware(flask_app"), "a2wsgi", WsgiToAsgi),
        (block("docs/migrating-from-a2wsgi.md", "ASGIMiddleware(fastapi_app)"), "a2wsgi", AsgiToWsgi),
        (
            block("docs/migrating-from-asgiref.md", "from asgiref.wsgi import WsgiToAsgi"),
            "asgiref",
            WsgiToAsgi,
        ),
    ]
    for text, other, adapter in snippets:
        before, after = _split_before_after(text)
        names = namespace(
            flask_app=flask.Flask("docs"), fastapi_app=fastapi.FastAPI(), wsgi_app=wsgi_environ_app
        )
        del names["WsgiToAsgi"], names["AsgiToWsgi"]  # the snippets import what they use
        # "before" is only compiled, and its imports run (a2wsgi is in the bench extra
        # only; its ASGIMiddleware would start a loop thread in the test process).
        compile(before, "before", "exec")
        if importlib.util.find_spec(other) is not None:
            exec("\n".join(line for line in before.splitlines() if line.startswith("from ")), names)
        exec(after, names)
        assert isinstance(names["app"], adapter), text
    assert asgi_get(names["app"], "GET", "/").text.startswith("127.0.0.1 http")


def test_internals_layers() -> None:
    """The map of the package names every module of bridge/, and only those."""
    text = block("docs/internals.md", "cross-thread toolkit")
    named = set(re.findall(r"^\s+(\w+\.py)\b", text, re.MULTILINE))
    modules = {path.name for path in (REPO_ROOT / "bridge").glob("*.py")}
    missing = named - modules
    assert not missing, f"internals.md names modules that do not exist: {missing}"
