"""The command line in-process: loading, telling WSGI from ASGI, and ``bridge check``.

Serving on real servers is in tests/integration_cli/.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import socket
import sys
import time
import types
from pathlib import Path
from typing import Iterator, TypedDict

import anyio
import pytest

from bridge import AsgiToWsgi
from bridge._types import Message
from bridge.cli import main
from bridge.cli.check import RULES, check_app, default_probes
from bridge.cli.detect import NotAnAppError, detect
from bridge.cli.load import Call, CommandError, load_app, parse_attr
from tests import cli_apps

# -- detection -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "interface", "adapter"),
    [
        ("wsgi_app", "wsgi", False),
        ("wsgi_instance", "wsgi", False),
        ("asgi_app", "asgi", False),
        ("asgi_instance", "asgi", False),
        ("asgi_partial", "asgi", False),
        ("Asgi2App", "asgi", False),
        ("wrapped_wsgi", "asgi", True),
        ("wrapped_asgi", "wsgi", True),
    ],
)
def test_detects_each_shape(name: str, interface: str, adapter: bool) -> None:
    detection = detect(getattr(cli_apps, name))
    assert (detection.interface, detection.adapter) == (interface, adapter)
    assert detection.reason


def test_detects_the_frameworks() -> None:
    from django.core.handlers.asgi import ASGIHandler
    from django.core.handlers.wsgi import WSGIHandler
    from fastapi import FastAPI
    from flask import Flask
    from starlette.applications import Starlette

    assert detect(Flask("x")).interface == "wsgi"
    assert "Flask.__call__" in detect(Flask("x")).reason
    assert detect(FastAPI()).interface == "asgi"
    assert detect(Starlette()).interface == "asgi"
    assert detect(object.__new__(ASGIHandler)).interface == "asgi"  # no settings needed to look
    with pytest.raises(NotAnAppError, match="class WSGIHandler, not an instance"):
        detect(WSGIHandler)


def test_detects_asgiref_and_a2wsgi_adapters() -> None:
    from asgiref.wsgi import WsgiToAsgi as AsgirefWsgiToAsgi

    assert detect(AsgirefWsgiToAsgi(cli_apps.wsgi_app)).interface == "asgi"  # type: ignore[no-untyped-call]


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("not_callable", "dict instance, which is not callable"),
        ("takes_nothing", "takes no arguments: if it builds the app, pass --factory"),
        ("takes_one", "plain callable taking 1 argument"),
        ("takes_three_sync", "if it returns an awaitable pass --interface asgi"),
        ("takes_two_async", "async callable taking 2 arguments"),
        ("takes_anything", "it accepts any arguments, so pass --interface wsgi or asgi"),
    ],
)
def test_says_why_something_is_not_an_app(name: str, match: str) -> None:
    with pytest.raises(NotAnAppError, match=match):
        detect(getattr(cli_apps, name))


def test_a_module_is_not_an_app() -> None:
    with pytest.raises(NotAnAppError, match=r"module tests\.cli_apps, not an app; name the app inside it"):
        detect(cli_apps)


# -- loading -------------------------------------------------------------------------------


class LoadOptions(TypedDict, total=False):
    factory: bool


def test_loads_module_and_attribute() -> None:
    loaded = load_app("tests.cli_apps:asgi_instance")
    assert loaded.app is cli_apps.asgi_instance
    assert loaded.target == "tests.cli_apps:asgi_instance"
    assert loaded.detection.interface == "asgi"


def test_a_bare_module_means_its_app() -> None:
    loaded = load_app("tests.cli_apps")
    assert loaded.target == "tests.cli_apps:app"
    assert loaded.app is cli_apps.wsgi_app


def test_factory_is_called() -> None:
    loaded = load_app("tests.cli_apps:create_wsgi_app", factory=True)
    assert loaded.app is cli_apps.wsgi_app


def test_interface_can_be_forced() -> None:
    loaded = load_app("tests.cli_apps:takes_anything", interface="asgi")
    assert loaded.detection.interface == "asgi"
    assert loaded.detection.reason == "--interface asgi"


@pytest.mark.parametrize(
    ("target", "kwargs", "match"),
    [
        ("nosuchmodule_xyz:app", {}, "cannot import 'nosuchmodule_xyz': no module named 'nosuchmodule_xyz'"),
        ("tests.nosuch:app", {}, "no module named 'tests.nosuch'"),
        ("tests.cli_apps:missing", {}, r"has no attribute 'missing'; apps it has: .*asgi_app \(ASGI\)"),
        ("tests.cli_apps:not_callable", {}, "is not a WSGI or ASGI app: it is a dict instance"),
        ("tests.cli_apps:failing_factory", {"factory": True}, "raised RuntimeError: database is down"),
        ("tests.cli_apps:not_callable", {"factory": True}, "cannot be called"),
        ("a:b:c", {}, "is not an import path"),
        ("tests.cli_apps:", {}, "is not an import path"),
    ],
)
def test_load_errors_are_one_clear_line(target: str, kwargs: LoadOptions, match: str) -> None:
    with pytest.raises(CommandError, match=match) as info:
        load_app(target, **kwargs)
    assert "\n" not in str(info.value)


def test_the_apps_a_module_has_are_listed_without_imported_helpers() -> None:
    with pytest.raises(CommandError) as info:
        load_app("examples.fastapi_gunicorn:fastapi_app")
    assert str(info.value).endswith("apps it has: api (ASGI), app (WSGI)")


def test_an_import_error_inside_the_module_names_the_missing_package(tmp_path: Path) -> None:
    (tmp_path / "needs_missing.py").write_text("import nosuchpackage_xyz\napp = None\n")
    (tmp_path / "raises_on_import.py").write_text("x = 1\nraise KeyError('SECRET_KEY')\n")
    with pytest.raises(CommandError, match="it imports 'nosuchpackage_xyz', which is not installed"):
        load_app("needs_missing:app", app_dir=str(tmp_path))
    with pytest.raises(CommandError, match=r"raised KeyError: 'SECRET_KEY' \(at .*raises_on_import.py:2\)"):
        load_app("raises_on_import:app", app_dir=str(tmp_path))
    for name in ("needs_missing", "raises_on_import"):
        sys.modules.pop(name, None)


# -- bridge check ----------------------------------------------------------------------------


def _rules(name: str) -> set[str]:
    report = check_app(load_app(f"tests.cli_apps:{name}"), default_probes(), timeout=5)
    return {finding.rule for finding in report.findings}


@pytest.mark.parametrize("name", ["wsgi_app", "asgi_app", "Asgi2App", "wrapped_wsgi", "wrapped_asgi"])
def test_well_behaved_apps_pass(name: str) -> None:
    report = check_app(load_app(f"tests.cli_apps:{name}"), default_probes(["/", "/x"]), timeout=5)
    assert report.findings == []
    assert len(report.outcomes) == 13
    assert all(outcome.status == 200 for outcome in report.outcomes)


@pytest.mark.parametrize(
    ("name", "rules"),
    [
        ("wsgi_bad_status", {"wsgi-status"}),
        ("wsgi_bare_status", {"wsgi-status"}),
        ("wsgi_raises", {"app-error"}),
        ("wsgi_int_status", {"wsgi-status"}),
        ("wsgi_hop_by_hop", {"wsgi-hop-by-hop"}),
        ("wsgi_header_newline", {"wsgi-headers"}),
        ("wsgi_str_body", {"wsgi-chunk-type"}),
        ("wsgi_returns_bytes", {"wsgi-iterable"}),
        ("wsgi_no_start", {"wsgi-no-start"}),
        ("wsgi_start_twice", {"wsgi-start-twice"}),
        ("wsgi_short_body", {"content-length"}),
        ("wsgi_204_body", {"no-body-status"}),
        ("wsgi_write", {"wsgi-write"}),
        ("wsgi_raises_on_post", {"app-error"}),
        ("wsgi_generator_raises", {"app-error"}),
        ("asgi_str_status", {"asgi-status"}),
        ("asgi_upper_header", {"asgi-header-case"}),
        ("asgi_str_headers", {"asgi-headers"}),
        ("asgi_body_first", {"asgi-order"}),
        ("asgi_start_twice", {"asgi-order"}),
        ("asgi_str_body", {"asgi-body"}),
        ("asgi_incomplete", {"asgi-incomplete"}),
        ("asgi_nothing", {"asgi-incomplete"}),
        ("asgi_after_end", {"asgi-after-end"}),
        ("asgi_wrong_type", {"asgi-message"}),
        ("asgi_long_body", {"content-length"}),
        ("asgi_transfer_encoding", {"asgi-transfer-encoding"}),
        ("asgi_startup_fails", {"lifespan"}),
    ],
)
def test_each_broken_rule_is_reported(name: str, rules: set[str]) -> None:
    assert _rules(name) == rules


def test_a_hung_app_is_reported_not_waited_for() -> None:
    report = check_app(load_app("tests.cli_apps:asgi_hangs_on_post"), default_probes(), timeout=0.5)
    assert {finding.rule for finding in report.findings} == {"timeout"}
    assert [finding.probe for finding in report.findings] == ["POST /", "POST / (chunked)"]


def test_every_rule_has_a_title_and_a_hint() -> None:
    for rule in RULES.values():
        assert rule.title and rule.hint and rule.severity in ("error", "warning")


def test_check_command_output_and_exit_status(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "tests.cli_apps:wsgi_app"]) == 0
    out = capsys.readouterr().out
    assert "tests.cli_apps:wsgi_app is a WSGI app (function wsgi_app is a plain callable" in out
    assert "0 errors, 0 warnings in 7 probes" in out

    assert main(["check", "tests.cli_apps:wsgi_hop_by_hop"]) == 1
    out = capsys.readouterr().out
    assert "error: GET /: the app set 'Connection'" in out
    assert "rule: PEP 3333: apps must not set hop-by-hop headers" in out
    assert "hint: remove the header" in out

    assert main(["check", "tests.cli_apps:wsgi_write"]) == 0  # a warning only
    assert main(["check", "tests.cli_apps:wsgi_write", "--strict"]) == 1
    capsys.readouterr()

    # An app that raises on a probe fails the check: a server would answer 500.
    assert main(["check", "tests.cli_apps:wsgi_raises_on_post", "--verbose"]) == 1
    out = capsys.readouterr().out
    assert "error: POST /: ZeroDivisionError: division by zero" in out
    assert "Traceback (most recent call last)" in out
    assert out.endswith("2 errors, 0 warnings in 7 probes\n")


def test_check_with_a_path(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "tests.cli_apps:asgi_app", "--path", "/api/items"]) == 0
    assert "GET /api/items" in capsys.readouterr().out
    assert main(["check", "tests.cli_apps:asgi_app", "--path", "api"]) == 2  # usage
    assert capsys.readouterr().err == (
        "bridge: error: argument --path: 'api' does not start with '/'; write /api "
        "(see bridge check --help)\n"
    )


def test_check_a_flask_app_with_real_routes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "examples.flask_hello:flask_app", "--path", "/", "--path", "/visits"]) == 0
    out = capsys.readouterr().out
    assert "GET /visits" in out
    assert "0 errors, 0 warnings in 13 probes" in out


def test_command_errors_print_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "tests.cli_apps:not_callable"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("bridge: error: tests.cli_apps:not_callable is not a WSGI or ASGI app")


def test_an_app_error_is_an_error_with_its_exit_status(capsys: pytest.CaptureFixture[str]) -> None:
    report = check_app(load_app("tests.cli_apps:wsgi_raises"), default_probes(), timeout=5)
    assert [f.severity for f in report.findings] == ["error"] * 7
    # FastAPI checked as WSGI: every probe is a TypeError, so the check fails.
    assert main(["check", "examples.fastapi_gunicorn:api", "--interface", "wsgi"]) == 1
    out = capsys.readouterr().out
    assert "error: GET /: TypeError: " in out and "missing 1 required positional argument: 'send'" in out
    assert out.endswith("7 errors, 0 warnings in 7 probes\n")


def test_a_bare_status_breaks_the_wsgi_status_rule() -> None:
    report = check_app(load_app("tests.cli_apps:wsgi_bare_status"), default_probes(), timeout=5)
    assert report.findings[0].message == "the status '200' has no reason phrase, like '200 OK'"
    assert all(outcome.status == 200 for outcome in report.outcomes)  # served all the same


def test_an_incomplete_response_says_what_was_sent() -> None:
    report = check_app(load_app("tests.cli_apps:asgi_incomplete"), default_probes(), timeout=5)
    assert report.findings[0].message == (
        "the app returned after http.response.start and 1 http.response.body message (1 byte), "
        "each with more_body true: the final body never came"
    )
    report = check_app(load_app("tests.cli_apps:asgi_nothing"), default_probes(), timeout=5)
    assert report.findings[0].message == "the app returned having sent nothing"


def test_a_hung_wsgi_app_takes_the_timeout_per_probe_and_each_outcome_comes_as_it_ends() -> None:
    seen: list[str] = []
    begin = time.monotonic()
    try:
        report = check_app(
            load_app("tests.cli_apps:wsgi_hangs_on_post"),
            default_probes(),
            timeout=0.3,
            on_outcome=lambda outcome: seen.append(str(outcome.probe)),
        )
        elapsed = time.monotonic() - begin
    finally:
        cli_apps.release_hung.set()  # let the abandoned requests' threads go
    assert elapsed < 3.0  # two probes of 0.3 s, not 0.3 + 5 s each waiting for the thread
    assert [(f.rule, f.probe) for f in report.findings] == [
        ("timeout", "POST /"),
        ("timeout", "POST / (chunked)"),
    ]
    assert seen == [str(outcome.probe) for outcome in report.outcomes] and len(seen) == 7


# -- what a user gets wrong, in-process: the pure parts -------------------------------------


def test_candidates_never_touch_werkzeug_proxies_or_lazy_objects() -> None:
    import flask

    from bridge.cli.load import candidates

    touched: list[str] = []

    class Lazy:
        def __getattr__(self, name: str) -> object:
            touched.append(name)
            raise RuntimeError("settings are not configured")

    module = types.ModuleType("mistakes_in_memory")
    module.request = flask.request  # type: ignore[attr-defined]
    module.current_app = flask.current_app  # type: ignore[attr-defined]
    module.session = flask.session  # type: ignore[attr-defined]
    module.settings = Lazy()  # type: ignore[attr-defined]
    module.web = flask.Flask("mistakes_in_memory")  # type: ignore[attr-defined]
    module.api = cli_apps.asgi_instance  # type: ignore[attr-defined]
    assert candidates(module) == ["api (ASGI)", "web (WSGI)"]
    assert touched == []


@pytest.mark.parametrize(
    ("target", "message"),
    [
        (
            "examples.flask_hello:flask_ap",
            "module 'examples.flask_hello' has no attribute 'flask_ap'; "
            "apps it has: app (ASGI), flask_app (WSGI)",
        ),
        (
            "tests.cli_mistake_apps.flask_named",
            "module 'tests.cli_mistake_apps.flask_named' has no 'app' or 'application'; name the app: "
            "tests.cli_mistake_apps.flask_named:ATTR; apps it has: create_app() (a factory), web (WSGI)",
        ),
        (
            "tests.cli_mistake_apps.proxy_app",
            "tests.cli_mistake_apps.proxy_app:app is not a WSGI or ASGI app: it is a werkzeug LocalProxy "
            "(like flask.request or flask.current_app), which stands for an object only inside a request; "
            "name the app object itself",
        ),
        (
            "tests.cli_mistake_apps.flask_named:request()",
            "tests.cli_mistake_apps.flask_named:request is a werkzeug LocalProxy, which cannot be called",
        ),
        (
            "tests.cli_mistake_apps.flask_named:create_app(os.environ)",
            "'create_app(os.environ)': the arguments must be literals: APP is a name, or a factory call "
            "with literal arguments, like create_app('prod')",
        ),
        (
            "tests.cli_apps:failing_factory()",
            "calling tests.cli_apps:failing_factory() raised RuntimeError: database is down "
            f"(at tests/cli_apps.py:{inspect.getsourcelines(cli_apps.failing_factory)[1] + 1})",
        ),
        (
            "tests.cli_mistake_apps.fails_deep",
            "importing 'tests.cli_mistake_apps.fails_deep' raised JSONDecodeError: Expecting value: "
            "line 1 column 11 (char 10) (at tests/cli_mistake_apps/fails_deep.py:8)",
        ),
    ],
)
def test_mistakes_are_one_line(target: str, message: str) -> None:
    with pytest.raises(CommandError) as info:
        load_app(target)
    assert str(info.value) == message


def test_a_long_list_of_apps_is_cut() -> None:
    from bridge.cli.load import _candidates

    module = types.ModuleType("many_apps")
    for n in range(15):
        exec(f"def app{n:02}(environ, start_response): pass", vars(module))
    shown = ", ".join(f"app{n:02} (WSGI)" for n in range(12))
    assert _candidates(module) == f"; apps it has: {shown}, and 3 more"


def test_a_factory_call_with_literal_arguments_like_gunicorns() -> None:
    loaded = load_app("tests.cli_apps:make_app('asgi', wrapped=True)")
    assert loaded.target == "tests.cli_apps:make_app('asgi', wrapped=True)"
    assert isinstance(loaded.app, AsgiToWsgi) and loaded.detection.adapter
    assert load_app("tests.cli_apps:make_app()").app is cli_apps.wsgi_app
    app = load_app("tests.cli_mistake_apps.flask_named:create_app(debug=True)").app
    assert app.debug  # type: ignore[attr-defined]
    with pytest.raises(CommandError, match="--factory calls make_app itself"):
        load_app("tests.cli_apps:make_app()", factory=True)


@pytest.mark.parametrize(
    ("attr", "expected"),
    [
        ("app", Call("app")),
        ("api.app", Call("api.app")),
        ("create_app()", Call("create_app", True)),
        ("create_app('prod', 2, debug=True)", Call("create_app", True, ("prod", 2), (("debug", True),))),
        ("factories.web({'a': [1]})", Call("factories.web", True, ({"a": [1]},))),
    ],
)
def test_parse_attr(attr: str, expected: Call) -> None:
    assert parse_attr(attr) == expected


@pytest.mark.parametrize(
    "attr",
    [
        "__import__('os').system('true')",  # no call of a call
        "create_app(os.environ)",  # a name, not a literal
        "create_app(*args)",
        "create_app(**{'debug': True})",
        "create_app(",
        "app[0]",
        "lambda: app",
    ],
)
def test_parse_attr_evaluates_nothing(attr: str) -> None:
    with pytest.raises(CommandError):
        parse_attr(attr)


def test_import_errors_point_at_the_users_file(tmp_path: Path) -> None:
    (tmp_path / "broken_syntax_xyz.py").write_text("x = 1\ndef f(:\n    pass\n")
    package = tmp_path / "project_xyz"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "web.py").write_text("import helpers_xyz\napp = None\n")
    (package / "helpers_xyz.py").write_text("")
    try:
        with pytest.raises(CommandError) as info:
            load_app("broken_syntax_xyz:app", app_dir=str(tmp_path))
        assert str(info.value) == (
            f"importing 'broken_syntax_xyz' raised SyntaxError: invalid syntax "
            f"(at {tmp_path}/broken_syntax_xyz.py:2)"
        )
        with pytest.raises(CommandError) as info:
            load_app("project_xyz.web:app", app_dir=str(tmp_path))
        assert str(info.value) == (
            f"importing 'project_xyz.web' failed: it imports 'helpers_xyz', which is in {package} but not on "
            f"the import path; run from there or pass --app-dir {package} (at {package}/web.py:1)"
        )
    finally:
        for name in ("broken_syntax_xyz", "project_xyz", "project_xyz.web"):
            sys.modules.pop(name, None)


def test_a_required_package_that_is_missing_or_broken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bridge.cli.serve import require

    (tmp_path / "broken_server_xyz.py").write_text(
        "raise ImportError('libfoo.so: cannot open shared object file')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(CommandError) as info:
        require("nosuch_server_xyz", "--server nosuch")
    assert str(info.value) == (
        "--server nosuch needs nosuch_server_xyz, which is not installed: pip install nosuch_server_xyz"
    )
    with pytest.raises(CommandError) as info:
        require("broken_server_xyz", "--server broken")
    assert str(info.value) == (
        "--server broken needs broken_server_xyz, which is installed but fails to import "
        "(ImportError: libfoo.so: cannot open shared object file)"
    )
    sys.modules.pop("broken_server_xyz", None)


def test_a_stale_socket_is_replaced_and_a_live_one_is_not(tmp_path: Path) -> None:
    from bridge.cli.serve import stale_socket

    path = str(tmp_path / "app.sock")
    assert stale_socket(path) is False  # nothing there
    with socket.socket(socket.AF_UNIX) as live:
        live.bind(path)
        live.listen()
        with pytest.raises(CommandError) as info:
            stale_socket(path)
        assert str(info.value) == (
            f"cannot listen on unix:{path}: {path} is in use by another server; "
            "choose another path with --uds"
        )
    assert os.path.exists(path) and stale_socket(path) is True  # closed: nobody listens
    other = tmp_path / "notes.txt"
    other.write_text("keep me")
    with pytest.raises(
        CommandError, match=r"notes.txt: it exists and is not a socket; choose another path with --uds"
    ):
        stale_socket(str(other))
    assert other.read_text() == "keep me"


def test_socket_path_errors_hint_at_the_socket_path(tmp_path: Path) -> None:
    from bridge.cli.serve import bind_socket

    for path, reason in [
        (str(tmp_path / "missing" / "app.sock"), f"the directory {tmp_path / 'missing'} does not exist"),
        (
            str(tmp_path / ("x" * 120)),
            f"the path is too long ({len(str(tmp_path)) + 121} bytes; the limit is 107)",
        ),
    ]:
        with pytest.raises(CommandError) as info:
            bind_socket("127.0.0.1", 0, path)
        assert str(info.value) == f"cannot listen on unix:{path}: {reason}; choose another path with --uds"


def test_a_failed_startup_is_a_startup_error_before_serving() -> None:
    from bridge.cli.serve import StartupError, start_lifespan

    failing = AsgiToWsgi(cli_apps.asgi_startup_raises, lifespan="on")
    with pytest.raises(StartupError) as info:
        start_lifespan(failing, "info")
    assert info.value.status == 3
    assert str(info.value) == (
        "the ASGI app raised during lifespan startup: RuntimeError: cannot reach the database; not serving"
    )
    working = AsgiToWsgi(cli_apps.asgi_app, lifespan="on")
    try:
        start_lifespan(working, "info")
        assert working.state == {"started_in": os.getpid()}
    finally:
        working.close()
    start_lifespan(cli_apps.wsgi_app, "info")  # not an AsgiToWsgi: nothing to start


def test_the_startup_watch_sees_how_an_asgi_servers_startup_ended() -> None:
    from bridge.cli.serve import ServeOptions, StartupError, _StartupWatch

    async def startup(watch: _StartupWatch) -> list[str]:
        sent: list[str] = []
        messages: Iterator[Message] = iter([{"type": "lifespan.startup"}])

        async def receive() -> Message:
            return next(messages)

        async def send(message: Message) -> None:
            sent.append(message["type"])

        with contextlib.suppress(Exception):
            await watch({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, receive, send)
        return sent

    watch = _StartupWatch(cli_apps.wrapped_wsgi_startup_fails)
    assert anyio.run(startup, watch) == ["lifespan.startup.failed"]
    with pytest.raises(StartupError, match="lifespan startup failed: ConnectionRefusedError: cannot reach"):
        watch.check(ServeOptions())
    raising = _StartupWatch(cli_apps.asgi_startup_raises)
    anyio.run(startup, raising)
    raising.check(ServeOptions(lifespan="auto"))  # the server serves without lifespan
    with pytest.raises(StartupError, match="raised during lifespan startup: RuntimeError"):
        raising.check(ServeOptions(lifespan="on"))


def test_a_werkzeug_request_that_leaves_twice_counts_once() -> None:
    """Ctrl+C can interrupt werkzeug's ``Thread.start()`` after the connection's thread
    began: the request then leaves from both sides, and the drain must still wait for
    the other requests (it once counted them one short, and ended an open stream at
    once under CPU load)."""
    from bridge.cli.serve import _Active

    active = _Active()
    stream, interrupted = object(), object()
    active.enter(stream)
    active.enter(interrupted)
    active.leave(interrupted)  # process_request, interrupted
    active.leave(interrupted)  # ...and its thread, ending
    assert active.count == 1
    assert active.wait_idle(0.01) is False  # the stream still runs
    active.leave(stream)
    assert active.wait_idle(0.01) is True
