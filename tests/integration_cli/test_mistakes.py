"""What a user gets wrong, run as the user runs it: ``python -m bridge ...`` in a subprocess.

Each mistake is one line on stderr, ``bridge: error: ...``, without a traceback, and a
known exit status (1: a problem to fix; 2: wrong usage; 130: Ctrl+C), before anything is
served. Missing packages are simulated in the child (``sys.modules[name] = None``), never
uninstalled. Every wait is bounded; every process is killed if a test fails.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

import pytest

from tests.servers import REPO_ROOT, child_env, wait_until

pytestmark = pytest.mark.integration

TIMEOUT = 30.0
BRIDGE = [sys.executable, "-m", "bridge"]


def without(*modules: str) -> list[str]:
    """``python -c ...`` running the command line as if ``modules`` were not installed."""
    blocked = "; ".join(f"sys.modules[{name!r}] = None" for name in modules)
    return [
        sys.executable,
        "-c",
        f"import sys; {blocked}; from bridge.cli import main; raise SystemExit(main())",
    ]


def run(
    *args: str, prefix: Sequence[str] = BRIDGE, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*prefix, *args],
        cwd=REPO_ROOT,
        env=child_env(env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def error_line(process: subprocess.CompletedProcess[str], status: int = 1) -> str:
    """The one line the command printed, having exited with ``status`` and served nothing."""
    output = f"stdout:\n{process.stdout}\nstderr:\n{process.stderr}"
    assert process.returncode == status, output
    assert "Traceback" not in process.stderr, output
    assert "bridge: serving" not in process.stderr, output
    lines = process.stderr.splitlines()
    assert len(lines) == 1, output
    return lines[0]


# -- item 1: finding the app ---------------------------------------------------------------


def test_a_misspelt_name_in_a_flask_module_lists_its_apps() -> None:
    line = error_line(run("serve", "examples.flask_hello:flask_ap", "--port", "0"))
    assert line == (
        "bridge: error: module 'examples.flask_hello' has no attribute 'flask_ap'; "
        "apps it has: app (ASGI), flask_app (WSGI)"
    )


def test_a_flask_app_not_called_app() -> None:
    line = error_line(run("serve", "tests.cli_mistake_apps.flask_named", "--port", "0"))
    assert line == (
        "bridge: error: module 'tests.cli_mistake_apps.flask_named' has no 'app' or 'application'; "
        "name the app: tests.cli_mistake_apps.flask_named:ATTR; "
        "apps it has: create_app() (a factory), web (WSGI)"
    )


def test_a_factory_called_as_gunicorn_calls_it() -> None:
    target = "tests.cli_mistake_apps.flask_named:create_app('site', debug=True)"
    process = run("check", target)
    assert process.returncode == 0, process.stdout + process.stderr
    assert process.stdout.startswith(f"{target} is a WSGI app (Flask.__call__ is a plain callable")
    assert process.stdout.endswith("0 errors, 0 warnings in 7 probes\n")


# -- item 2: what is missing, found before anything starts -----------------------------------


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ("tests.cli_apps:wsgi_app", "--server", "hypercorn-trio"),
            "bridge: error: --server hypercorn-trio needs trio, which is not installed: pip install trio",
        ),
        (
            ("tests.cli_apps:asgi_app", "--backend", "trio"),
            "bridge: error: --backend trio needs trio, which is not installed: pip install trio",
        ),
    ],
)
def test_trio_missing(args: tuple[str, ...], line: str) -> None:
    assert error_line(run("serve", *args, "--port", "0", prefix=without("trio"))) == line


def test_an_import_error_points_at_the_users_line() -> None:
    line = error_line(run("check", "tests.cli_mistake_apps.fails_deep"))
    assert line == (
        "bridge: error: importing 'tests.cli_mistake_apps.fails_deep' raised JSONDecodeError: Expecting "
        "value: line 1 column 11 (char 10) (at tests/cli_mistake_apps/fails_deep.py:8)"
    )


def test_a_module_beside_the_app_is_not_reported_as_not_installed(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "__init__.py").write_text("")
    (project / "web.py").write_text("import helpers\n\napp = None\n")
    (project / "helpers.py").write_text("")
    line = error_line(run("check", "project.web:app", "--app-dir", str(tmp_path)))
    assert line == (
        f"bridge: error: importing 'project.web' failed: it imports 'helpers', which is in {project} but "
        f"not on the import path; run from there or pass --app-dir {project} (at {project}/web.py:1)"
    )


def test_ctrl_c_during_the_import_exits_130_quietly(tmp_path: Path) -> None:
    marker = tmp_path / "importing"
    process = subprocess.Popen(
        [*BRIDGE, "serve", "tests.cli_mistake_apps.slow_import:app", "--port", "0"],
        cwd=REPO_ROOT,
        env=child_env({"BRIDGE_TEST_IMPORTING": str(marker)}),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        wait_until(marker.exists, deadline=TIMEOUT, what="the app's import to start")
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=TIMEOUT)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate(timeout=TIMEOUT)
    assert (process.returncode, stdout, stderr) == (130, "", "")


# -- item 5: socket paths and directories ---------------------------------------------------------


def test_a_socket_path_in_use_or_not_a_socket_is_left_alone(tmp_path: Path) -> None:
    path = str(tmp_path / "app.sock")
    with socket.socket(socket.AF_UNIX) as live:  # another server, still listening
        live.bind(path)
        live.listen()
        line = error_line(run("serve", "tests.cli_apps:wsgi_app", "--uds", path))
        assert line == (
            f"bridge: error: cannot listen on unix:{path}: {path} is in use by another server; "
            "choose another path with --uds"
        )
        # The other server still has its socket.
        with socket.socket(socket.AF_UNIX) as client:
            client.settimeout(TIMEOUT)
            client.connect(path)
    notes = tmp_path / "notes.txt"
    notes.write_text("keep me")
    line = error_line(run("serve", "tests.cli_apps:asgi_app", "--uds", str(notes)))
    assert line == (
        f"bridge: error: cannot listen on unix:{notes}: it exists and is not a socket; "
        "choose another path with --uds"
    )
    assert notes.read_text() == "keep me"


def test_a_missing_app_dir_is_a_usage_error(tmp_path: Path) -> None:
    line = error_line(run("serve", "web:app", "--app-dir", str(tmp_path / "nope")), status=2)
    assert line == (
        f"bridge: error: argument --app-dir: '{tmp_path / 'nope'}': no such directory "
        "(see bridge serve --help)"
    )


# -- item 6: bridge check fails an app that fails ------------------------------------------------


def test_check_fails_an_app_that_raises() -> None:
    process = run("check", "tests.cli_apps:wsgi_raises")
    assert process.returncode == 1, process.stdout + process.stderr
    assert "error: GET /: RuntimeError: the database is down\n" in process.stdout
    assert process.stdout.endswith("7 errors, 0 warnings in 7 probes\n")


def test_check_path_must_start_with_a_slash() -> None:
    line = error_line(run("check", "tests.cli_apps:wsgi_app", "--path", "nope"), status=2)
    assert line == (
        "bridge: error: argument --path: 'nope' does not start with '/'; write /nope "
        "(see bridge check --help)"
    )


def test_check_a_hung_app_takes_its_timeout_and_prints_each_probe_as_it_ends() -> None:
    begin = time.monotonic()
    process = subprocess.Popen(
        [*BRIDGE, "check", "tests.cli_apps:wsgi_hangs_on_post", "--timeout", "0.5"],
        cwd=REPO_ROOT,
        env=child_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first.startswith("tests.cli_apps:wsgi_hangs_on_post is a WSGI app")
        # The first probe's line comes while the hung probes are still to run: not at the end.
        assert process.stdout.readline().startswith("  GET /   ")
        assert process.poll() is None
        stdout, stderr = process.communicate(timeout=TIMEOUT)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate(timeout=TIMEOUT)
    elapsed = time.monotonic() - begin
    assert process.returncode == 1, stdout + stderr
    assert "error: POST /: no complete response within 0.5 s\n" in stdout
    assert stdout.endswith("2 errors, 0 warnings in 7 probes\n")
    assert elapsed < 10.0  # two probes of 0.5 s (it took 2 x 5.5 s when each waited for the app)


# -- item 3: a failed lifespan startup serves nothing -----------------------------------------------

STARTUP_RAISES = (
    "bridge: error: the ASGI app raised during lifespan startup: RuntimeError: cannot reach the database; "
    "not serving"
)


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (("tests.cli_apps:asgi_startup_raises", "--lifespan", "on"), STARTUP_RAISES),
        (
            ("tests.cli_apps:asgi_startup_fails", "--server", "waitress"),
            "bridge: error: the ASGI app's lifespan startup failed: no database; not serving",
        ),
    ],
)
def test_a_failed_startup_on_a_wsgi_server_in_one_process(args: tuple[str, ...], line: str) -> None:
    # werkzeug and waitress: the startup runs before the server starts, and only this line is printed.
    assert error_line(run("serve", *args, "--port", "0"), status=3) == line


def test_a_failed_startup_with_debug_logging_shows_the_traceback() -> None:
    process = run("serve", "tests.cli_apps:asgi_startup_raises", "--lifespan", "on", "--log-level", "debug")
    assert process.returncode == 3, process.stderr
    assert "Traceback (most recent call last)" in process.stderr
    assert process.stderr.splitlines()[-1] == STARTUP_RAISES


@pytest.mark.parametrize(
    ("args", "line"),
    [
        # gunicorn: each worker starts the lifespan before it accepts; gunicorn then stops
        # with "Worker failed to boot" and its status 3.
        (("tests.cli_apps:asgi_startup_raises", "--lifespan", "on", "--server", "gunicorn"), STARTUP_RAISES),
        # A WsgiToAsgi built with a startup hook that fails, on uvicorn and on hypercorn.
        *[
            (
                ("tests.cli_apps:wrapped_wsgi_startup_fails", "--server", server),
                "bridge: error: the app's lifespan startup failed: ConnectionRefusedError: cannot reach the "
                "database; not serving",
            )
            for server in ("uvicorn", "hypercorn")
        ],
    ],
)
def test_a_failed_startup_under_a_server_that_runs_it(args: tuple[str, ...], line: str) -> None:
    process = run("serve", *args, "--port", "0")
    assert process.returncode == 3, process.stderr
    assert "Traceback" not in process.stderr, process.stderr
    lines = process.stderr.splitlines()
    assert [each for each in lines if each.startswith("bridge: error:")] == [line], process.stderr
    if "gunicorn" not in args:  # (gunicorn's own account of the stop follows ours)
        assert [each for each in lines if "error" in each.lower()] == [line], process.stderr
