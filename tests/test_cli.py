"""The command line in-process: loading, telling WSGI from ASGI, and ``bridge check``.

Serving on real servers is in tests/integration_cli/.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TypedDict

import pytest

from bridge.cli import main
from bridge.cli.check import RULES, check_app, default_probes
from bridge.cli.detect import NotAnAppError, detect
from bridge.cli.load import CommandError, load_app
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

    assert main(["check", "tests.cli_apps:wsgi_raises_on_post", "--verbose"]) == 0
    out = capsys.readouterr().out
    assert "warning: POST /: ZeroDivisionError: division by zero" in out
    assert "Traceback (most recent call last)" in out


def test_check_with_a_path(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "tests.cli_apps:asgi_app", "--path", "/api/items"]) == 0
    assert "GET /api/items" in capsys.readouterr().out
    assert main(["check", "tests.cli_apps:asgi_app", "--path", "api"]) == 1
    assert "bridge: error: --path 'api' must start with '/'" in capsys.readouterr().err


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
