"""``bridge serve`` as a user runs it: a subprocess on 127.0.0.1, real servers, a real client.

Each server binds port 0 and the test reads the address from the command's own
"serving ... at" line, so no port is guessed. Every server is stopped with SIGTERM
(SIGKILL after a grace) whether or not the test passed, and its log is shown on failure.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from tests.servers import REPO_ROOT, ServerProcess, Shutdown, http_ready, logged, wait_ready

pytestmark = pytest.mark.integration

STARTUP = 30.0
TIMEOUT = 15.0
#: SIGTERM to the whole process group, as a process manager would, and 10 s to exit.
SHUTDOWN = Shutdown(signal.SIGTERM, group=True, grace=10.0)
#: How a clean stop ends: exit 0, or death by the SIGTERM that uvicorn re-raises once it
#: has shut down gracefully (so a supervisor sees why it stopped).
CLEAN = (0, -signal.SIGTERM)
BRIDGE = [sys.executable, "-m", "bridge"]
#: The line bridge serve prints just before its server starts: where it serves.
SERVING = r" at (http://127\.0\.0\.1:(\d+)|unix:\S+) \(Ctrl\+C"


@contextlib.contextmanager
def bridge_serve(tmp_path: Path, *args: str, uds: str | None = None) -> Iterator[ServerProcess]:
    """``bridge serve`` on port 0 (or a unix socket), ready once the port it printed answers."""

    def command(port: int) -> list[str]:
        where = ["--uds", uds] if uds else ["--host", "127.0.0.1", "--port", str(port)]
        return [*BRIDGE, "serve", *args, *where]

    printed = logged(SERVING)
    with ServerProcess.launch(
        "bridge-serve", command, tmp_path, port=0, shutdown=SHUTDOWN, uds=uds
    ) as served:
        wait_ready(served, lambda s: printed(s) and (uds is None or os.path.exists(uds)), STARTUP)
        if uds is None:
            address = re.search(SERVING, served.log())
            assert address, served.log()
            served.port = int(address.group(2))
        # The line is printed just before the server starts: wait until it answers.
        wait_ready(served, http_ready("/", status=None), STARTUP)
        yield served


WSGI_SERVERS = ["uvicorn", "hypercorn", "hypercorn-trio"]
ASGI_SERVERS = ["werkzeug", "gunicorn", "waitress"]


@pytest.mark.parametrize("server", WSGI_SERVERS)
def test_a_wsgi_app_on_each_asgi_server(tmp_path: Path, server: str) -> None:
    with bridge_serve(
        tmp_path, "tests.cli_apps:wsgi_app", "--server", server, "--root-path", "/mount"
    ) as served:
        with served.client() as client:
            text = client.get("/mount/items").text
            assert text.startswith("wsgi GET script='/mount' path='/items'"), served.log()
            # A proxy that already stripped the prefix: the app is still told where it lives.
            assert client.get("/items").text.startswith("wsgi GET script='/mount' path='/items'")
            assert client.post("/mount/upload", content=b"x" * 300_000).text.endswith("body=300000")
        assert served.graceful_stop() in CLEAN, served.log()
    log = served.log()
    assert "tests.cli_apps:wsgi_app is a WSGI app (function wsgi_app is a plain callable" in log
    assert f"through WsgiToAsgi (max_threads=40), mounted at /mount on {server} at http://127.0.0.1:" in log
    assert "Traceback" not in log


@pytest.mark.parametrize("server", ASGI_SERVERS)
def test_an_asgi_app_on_each_wsgi_server(tmp_path: Path, server: str) -> None:
    with bridge_serve(
        tmp_path, "tests.cli_apps:asgi_app", "--server", server, "--root-path", "/mount/"
    ) as served:
        with served.client() as client:
            text = client.get("/mount/items").text
            pid = re.search(r"pid=(\d+)", text)
            assert pid, served.log()
            # Lifespan startup ran in the process that serves, before the request.
            assert f"started_in={pid.group(1)}" in text
            assert text.startswith("asgi GET root='/mount' path='/mount/items'")
            assert client.post("/mount/upload", content=b"y" * 2_000_000).text.endswith("body=2000000")
        assert served.graceful_stop() in CLEAN, served.log()
    assert f"lifespan shutdown in {pid.group(1)}" in served.log()
    assert f"through AsgiToWsgi (lifespan auto, asyncio), mounted at /mount on {server}" in served.log()
    assert "Traceback" not in served.log()


def test_gunicorn_workers_and_threads(tmp_path: Path) -> None:
    args = ("tests.cli_apps:asgi_app", "--server", "gunicorn", "--workers", "2", "--threads", "4")
    with bridge_serve(tmp_path, *args) as served:
        pids: set[str] = set()
        deadline = time.monotonic() + 20.0
        with served.client() as client:
            # gunicorn gives a new connection to whichever worker accepts first: on a busy
            # machine one worker can take many in a row, so ask until both have answered.
            while time.monotonic() < deadline:
                text = client.get("/", headers={"connection": "close"}).text
                pid = re.search(r"pid=(\d+) started_in=(\d+)", text)
                assert pid and pid.group(1) == pid.group(2), text  # startup in the worker itself
                pids.add(pid.group(1))
                if len(pids) == 2:
                    break
        assert len(pids) == 2, served.log()
        assert str(served.process.pid) not in pids  # never in the master
        assert served.graceful_stop() in CLEAN
    assert "Using worker: gthread" in served.log()
    for worker in pids:
        assert f"lifespan shutdown in {worker}" in served.log()


def test_the_trio_backend_behind_werkzeug(tmp_path: Path) -> None:
    with bridge_serve(tmp_path, "tests.cli_apps:asgi_app", "--backend", "trio") as served:
        with served.client() as client:
            assert client.get("/").text.startswith("asgi GET root='' path='/'")
        assert served.graceful_stop() in CLEAN
    assert "through AsgiToWsgi (lifespan auto, trio) on werkzeug" in served.log()


@pytest.mark.parametrize(
    ("target", "expect"),
    [
        ("tests.cli_apps:wrapped_wsgi", "through the WsgiToAsgi it already is on uvicorn"),
        ("tests.cli_apps:wrapped_asgi", "through the AsgiToWsgi it already is on werkzeug"),
    ],
)
def test_an_app_already_wrapped_is_served_as_it_is(tmp_path: Path, target: str, expect: str) -> None:
    with bridge_serve(tmp_path, target) as served:
        with served.client() as client:
            assert client.get("/").status_code == 200
        assert served.graceful_stop() in CLEAN
    assert expect in served.log()


@pytest.mark.parametrize("target", ["tests.cli_apps:wsgi_app", "tests.cli_apps:asgi_app"])
def test_a_unix_socket(tmp_path: Path, target: str) -> None:
    path = str(tmp_path / "app.sock")
    with socket.socket(socket.AF_UNIX) as dead:  # left by a server that died: replaced
        dead.bind(path)
    with bridge_serve(tmp_path, target, uds=path) as served:
        with httpx.Client(
            transport=httpx.HTTPTransport(uds=path), base_url=served.base_url, timeout=TIMEOUT
        ) as client:
            assert client.get("/").status_code == 200
            # A second server on the same path is refused, and leaves the first one's socket alone.
            line = _fails(tmp_path, "serve", target, "--uds", path)
            assert line == (
                f"bridge: error: cannot listen on unix:{path}: {path} is in use by another server; "
                "choose another path with --uds"
            )
            assert client.get("/").status_code == 200
        assert served.graceful_stop() in CLEAN
    assert f"at unix:{path}" in served.log()
    assert not os.path.exists(path)


def test_the_bundled_example_on_the_default_server(tmp_path: Path) -> None:
    with bridge_serve(tmp_path, "examples.flask_hello:flask_app") as served:
        with served.client() as client:
            assert client.get("/").text == "Hello from Flask, served through bridge.WsgiToAsgi!\n"
            assert client.get("/stream", params={"n": 3}).text == "line 0\nline 1\nline 2\n"
        assert served.graceful_stop() in CLEAN
    assert "on uvicorn at http://127.0.0.1:" in served.log()


# -- what a user gets wrong: one line, exit status 1, no traceback ---------------------------------


def _fails(tmp_path: Path, *args: str, prefix: list[str] | None = None) -> str:
    with ServerProcess.launch(
        "bridge",
        lambda _port: [*(prefix or BRIDGE), *args],
        tmp_path,
        port=0,
        shutdown=Shutdown(signal.SIGKILL),
    ) as run:
        status = run.process.wait(TIMEOUT)
    output = run.log()
    assert status == 1, output
    assert "Traceback" not in output
    lines = output.splitlines()
    assert len(lines) == 1, output
    assert lines[0].startswith("bridge: error: ")
    return lines[0]


def test_a_module_that_holds_no_app(tmp_path: Path) -> None:
    line = _fails(tmp_path, "serve", "tests.asgi_driver", "--port", "0")
    assert "module 'tests.asgi_driver' has no 'app' or 'application'" in line


def test_an_object_that_is_not_an_app(tmp_path: Path) -> None:
    line = _fails(tmp_path, "serve", "tests.cli_apps:takes_nothing", "--port", "0")
    assert "takes no arguments: if it builds the app, pass --factory" in line


def test_a_wrong_import_path(tmp_path: Path) -> None:
    line = _fails(tmp_path, "serve", "no_such_project.web:app", "--port", "0")
    assert "cannot import 'no_such_project.web': no module named 'no_such_project'" in line


def test_a_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        for target in ("tests.cli_apps:wsgi_app", "tests.cli_apps:asgi_app"):
            line = _fails(tmp_path, "serve", target, "--host", "127.0.0.1", "--port", str(port))
            assert f"cannot listen on 127.0.0.1:{port}: the address is in use" in line


def test_a_missing_server(tmp_path: Path) -> None:
    # The server's package made unimportable, as if it were not installed.
    code = "import sys; sys.modules['waitress'] = None; from bridge.cli import main; raise SystemExit(main())"
    prefix = [sys.executable, "-c", code]
    line = _fails(
        tmp_path, "serve", "tests.cli_apps:asgi_app", "--server", "waitress", "--port", "0", prefix=prefix
    )
    assert (
        line
        == "bridge: error: --server waitress needs waitress, which is not installed: pip install waitress"
    )


def test_a_server_of_the_wrong_side(tmp_path: Path) -> None:
    line = _fails(tmp_path, "serve", "tests.cli_apps:wsgi_app", "--server", "gunicorn", "--port", "0")
    assert (
        "is served by an ASGI server, and gunicorn is not one; choose --server uvicorn or hypercorn" in line
    )
    line = _fails(tmp_path, "serve", "tests.cli_apps:wsgi_app", "--workers", "2", "--port", "0")
    assert "--workers needs --server gunicorn" in line


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    process = subprocess.run(
        [sys.executable, "-m", "bridge", "serve", "tests.cli_apps:wsgi_app", "--port", "70000"],
        cwd=REPO_ROOT,
        check=False,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert process.returncode == 2
    assert "a port is from 0 to 65535, got 70000" in process.stderr
