"""The rule table (bridge.rules.RULES) is the only one, and every rule id used is in it.

Rule ids are found in the source with ``ast``: string literals passed first to
``_refuse(``, ``record(``, ``_name(``, ``_note(`` (and, in ``bridge/cli``, to the report's
``add(`` and ``Finding(``), and string literals given as ``rule=``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any, Iterator

import pytest

import bridge
import bridge.cli.check
import bridge.rules
from bridge.asgi_response import AsgiState
from bridge.rules import RULES
from bridge.wsgi_response import WsgiState

from . import test_asgi_response, test_wsgi_response

PACKAGE = Path(bridge.__file__).parent
SOURCES = sorted([*PACKAGE.glob("*.py"), *(PACKAGE / "cli").glob("*.py")])
RULES_MODULE = PACKAGE / "rules.py"
MACHINES = [PACKAGE / "wsgi_response.py", PACKAGE / "asgi_response.py"]

#: Callables whose first argument is a rule id.
RULE_TAKERS = {"_refuse", "record", "_name", "_note"}
#: The same, in the command line's report (``_Recorder.add``, ``Finding``).
CLI_RULE_TAKERS = {"add", "Finding"}


def _called_name(node: ast.Call) -> str | None:
    if isinstance(node.func, ast.Name):
        return node.func.id
    if isinstance(node.func, ast.Attribute):
        return node.func.attr
    return None


def _rule_ids(path: Path) -> Iterator[tuple[str, int]]:
    """(rule id, line) for every rule id literal in ``path``."""
    takers = RULE_TAKERS | (CLI_RULE_TAKERS if path.parent.name == "cli" else set())
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if not isinstance(node, ast.Call):
            continue
        if _called_name(node) in takers and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                yield first.value, node.lineno
        for keyword in node.keywords:
            if (
                keyword.arg == "rule"
                and isinstance(keyword.value, ast.Constant)
                and isinstance(keyword.value.value, str)
            ):
                yield keyword.value.value, node.lineno


def _used(paths: list[Path]) -> dict[str, list[str]]:
    used: dict[str, list[str]] = {}
    for path in paths:
        for rule, line in _rule_ids(path):
            used.setdefault(rule, []).append(f"{path.relative_to(PACKAGE.parent)}:{line}")
    return used


USED = _used(SOURCES)


def test_the_source_scan_finds_the_rules() -> None:
    # The scan itself works: it finds ids of each kind of call.
    assert {"wsgi-start-twice", "wsgi-status", "asgi-order", "asgi-incomplete", "no-body-status"} <= set(USED)
    assert {"timeout", "app-error", "bridge-refused", "lifespan"} <= set(USED)  # bridge/cli/check.py


@pytest.mark.parametrize("rule", sorted(USED))
def test_every_rule_id_used_is_in_rules(rule: str) -> None:
    assert rule in RULES, f"{rule!r} (used at {', '.join(USED[rule])}) is not in bridge.rules.RULES"


@pytest.mark.parametrize("rule", sorted(RULES))
def test_every_rule_in_rules_is_used(rule: str) -> None:
    assert rule in USED, f"RULES[{rule!r}] is raised or recorded nowhere in bridge/"


@pytest.mark.parametrize("rule", sorted(RULES))
def test_every_rule_has_severity_title_and_hint(rule: str) -> None:
    entry = RULES[rule]
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", rule)
    assert entry.severity in ("error", "warning")
    assert isinstance(entry.title, str) and entry.title.strip()
    assert isinstance(entry.hint, str) and entry.hint.strip()
    assert entry.title != entry.hint
    # A title says whose rule it is.
    if rule.startswith("wsgi-"):
        assert entry.title.startswith("PEP 3333: ")
    if rule.startswith("asgi-"):
        assert entry.title.startswith("ASGI: ")


def test_check_imports_rules_from_bridge_rules() -> None:
    tree = ast.parse(Path(bridge.cli.check.__file__).read_text(encoding="utf-8"))
    imports = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        and any(alias.name == "RULES" for alias in node.names)
        and (
            (node.level == 2 and node.module == "rules")
            or (node.level == 0 and node.module == "bridge.rules")
        )
    ]
    assert imports, "bridge/cli/check.py does not import RULES from bridge.rules"
    assigned = [
        target.id
        for node in ast.walk(tree)
        if isinstance(node, (ast.Assign, ast.AnnAssign))
        for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
        if isinstance(target, ast.Name)
    ]
    assert "RULES" not in assigned
    assert bridge.cli.check.RULES is bridge.rules.RULES


def _second_tables(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and _called_name(node) == "Rule":
            yield f"Rule(...) at line {node.lineno}"
        if isinstance(node, ast.Dict):
            keys = [k.value for k in node.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)]
            if len([k for k in keys if k in RULES]) >= 2:
                yield f"a dict keyed by rule ids at line {node.lineno}"


@pytest.mark.parametrize(
    "path",
    [p for p in sorted(PACKAGE.rglob("*.py")) if p != RULES_MODULE],
    ids=lambda p: str(p.relative_to(PACKAGE.parent)),
)
def test_no_rule_table_outside_bridge_rules(path: Path) -> None:
    assert list(_second_tables(path)) == []


# -- the errors of the table tests -----------------------------------------------------------------


def _wsgi_refusals() -> Iterator[tuple[str, Any]]:
    for param in test_wsgi_response.SEQUENCES:
        steps, _, _, recorded, method, strict = param.values
        outcomes, _ = test_wsgi_response.run(steps, method=method, strict=strict)
        for outcome in outcomes:
            if isinstance(outcome, test_wsgi_response.Refused):
                yield param.id, outcome
        for rule in recorded:
            yield param.id, test_wsgi_response.Refused(rule, "recorded")


def _asgi_refusals() -> Iterator[tuple[str, Any]]:
    for param in test_asgi_response.SEQUENCES:
        steps, _, _, recorded, head = param.values
        outcomes, _ = test_asgi_response.run(steps, head=head)
        for outcome in outcomes:
            if isinstance(outcome, test_asgi_response.Refused):
                yield param.id, outcome
        for rule in recorded:
            yield param.id, test_asgi_response.Refused(rule, "recorded")


@pytest.mark.parametrize(
    ("refusals", "states"),
    [
        pytest.param(_wsgi_refusals, WsgiState, id="wsgi"),
        pytest.param(_asgi_refusals, AsgiState, id="asgi"),
    ],
)
def test_every_error_of_the_table_tests_names_a_rule_and_a_state(refusals: Any, states: Any) -> None:
    seen = list(refusals())
    assert seen
    for row_id, refused in seen:
        assert refused.rule in RULES, row_id
        assert refused.state == "recorded" or refused.state in states.__members__, row_id


@pytest.mark.parametrize(
    ("refusals", "machine"),
    [
        pytest.param(_wsgi_refusals, MACHINES[0], id="wsgi"),
        pytest.param(_asgi_refusals, MACHINES[1], id="asgi"),
    ],
)
def test_the_table_tests_exercise_every_rule_of_the_machine(refusals: Any, machine: Path) -> None:
    exercised = {refused.rule for _, refused in refusals()}
    assert set(_used([machine])) - exercised == set()


def test_the_scan_sees_each_kind_of_rule_literal(tmp_path: Path) -> None:
    cli = tmp_path / "cli"
    cli.mkdir()
    source = (
        "def f(self, record):\n"
        "    self._refuse('a-refused', 'm')\n"
        "    record('b-recorded', 'm')\n"
        "    self._name('c-named', error)\n"
        "    return self._note('d-noted', 'm'), ResponseError('m', rule='e-keyword')\n"
        "    seen.add('not-a-rule')\n"
    )
    (tmp_path / "machine.py").write_text(source, encoding="utf-8")
    (cli / "check.py").write_text(source + "recorder.add('f-added', 'm')\nFinding('g-found', 'p', 'm')\n")
    assert [rule for rule, _ in _rule_ids(tmp_path / "machine.py")] == [
        "a-refused",
        "b-recorded",
        "c-named",
        "d-noted",
        "e-keyword",
    ]
    in_cli = {rule for rule, _ in _rule_ids(cli / "check.py")}
    assert {"f-added", "g-found"} <= in_cli  # the report's add() and Finding(), in bridge/cli only


def test_the_scan_sees_a_second_rule_table(tmp_path: Path) -> None:
    path = tmp_path / "check.py"
    path.write_text(
        "TITLES = {'wsgi-status': 'the status', 'asgi-order': 'the order'}\nR = Rule('error', 't', 'h')\n",
        encoding="utf-8",
    )
    assert len(list(_second_tables(path))) == 2
