"""The matrix's plumbing, without servers: the README's table cannot drift from the matrix the
tests define, the report renders and rewrites it, and a missing package makes a cell skip.

``report.py`` writes the README's table from a run; ``test_readme_block_lists_exactly_the_matrix_cells``
fails if the table (when the README has the ``<!-- matrix:start -->`` markers) lists other cells
than ``cells.py`` defines.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from tests.matrix import report, test_matrix
from tests.matrix.cells import cells


def fake_results(outcome: str = "passed", reason: str = "") -> dict[str, object]:
    return {
        "python": "CPython 3.x",
        "platform": "Linux",
        "versions": {"Flask": "9.9", "granian": "not installed"},
        "cells": {cell.id: {"outcome": outcome, "reason": reason} for cell in cells()},
    }


def test_readme_block_lists_exactly_the_matrix_cells() -> None:
    block = report.block_of(report.README.read_text("utf-8"))
    if block is None:
        pytest.skip(f"README.md has no {report.START} ... {report.END} block yet")
    problems = report.drift(block)
    assert not problems, (
        "README.md's matrix does not match tests/matrix/cells.py; regenerate it with "
        "`python -m tests.matrix.report`: " + "; ".join(problems)
    )


def test_drift_is_detected() -> None:
    block = report.render(fake_results())
    assert report.drift(block) == []
    first, last = cells()[0], cells()[-1]
    # A row replaced by one for a framework the matrix does not have, and a hand-written cell.
    sanic = f"| Sanic | {' | '.join(report.PASSED for _ in first.section.servers)} |"
    lines = [
        sanic if line.startswith(f"| {first.framework.label} |") else line for line in block.splitlines()
    ]
    tampered = "\n".join(lines).replace(
        f"| {last.framework.label} | {report.PASSED}", f"| {last.framework.label} | yes"
    )
    problems = report.drift(tampered)
    assert len(problems) == 3, problems
    assert f"('{first.framework.label}', '{first.server.label}')" in problems[0]
    assert "Sanic" in problems[1]
    assert "yes" in problems[2]


def test_cell_ids_and_labels_are_unique() -> None:
    all_cells = cells()
    assert len({cell.id for cell in all_cells}) == len(all_cells)
    assert len(report.expected_labels(all_cells)) == len(all_cells)


def test_render_lists_every_cell_once() -> None:
    block = report.render(fake_results())
    listed = report.parse_tables(block)
    assert set(listed) == report.expected_labels()
    assert set(listed.values()) == {report.PASSED}
    assert "Flask 9.9" in block and "CPython 3.x on Linux" in block


@pytest.mark.parametrize(
    ("outcome", "reason", "shown"),
    [
        ("passed", "", report.PASSED),
        ("failed", "call: AssertionError", report.FAILED),
        ("skipped", "granian not installed", report.NOT_INSTALLED),
        ("skipped", "n/a: Quart runs on asyncio only", report.NOT_APPLICABLE),
        ("xfailed", "a server bug", f"{report.FAILED} (known server bug)"),
    ],
)
def test_marks(outcome: str, reason: str, shown: str) -> None:
    assert report.mark({"outcome": outcome, "reason": reason}) == shown
    assert shown in report.MARKS


def test_a_cell_missing_from_the_results_shows_as_not_run() -> None:
    results = fake_results()
    first = cells()[0]
    del results["cells"][first.id]  # type: ignore[attr-defined]
    listed = report.parse_tables(report.render(results))
    assert listed[first.framework.label, first.server.label] == report.NOT_RUN


def test_report_rewrites_only_the_block(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# title\n\nbefore\n\n{report.START}\nold table\n{report.END}\n\nafter\n", "utf-8")
    results = tmp_path / "results.json"
    results.write_text(json.dumps(fake_results("skipped", "granian not installed")), "utf-8")
    assert report.main(["--readme", str(readme), "--results", str(results), "--no-run"]) == 0
    text = readme.read_text("utf-8")
    assert text.startswith("# title\n\nbefore\n\n") and text.endswith(f"{report.END}\n\nafter\n")
    assert "old table" not in text
    block = report.block_of(text)
    assert block is not None
    assert set(report.parse_tables(block).values()) == {report.NOT_INSTALLED}
    # Idempotent: rendering the same results again changes nothing.
    assert report.main(["--readme", str(readme), "--results", str(results), "--no-run"]) == 0
    assert readme.read_text("utf-8") == text


def test_report_refuses_a_readme_without_markers(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# no markers\n", "utf-8")
    results = tmp_path / "results.json"
    results.write_text(json.dumps(fake_results()), "utf-8")
    assert report.main(["--readme", str(readme), "--results", str(results), "--no-run"]) == 2
    assert readme.read_text("utf-8") == "# no markers\n"


def test_a_cell_whose_server_is_not_installed_is_skipped_with_its_name(tmp_path: Path) -> None:
    cell = next(cell for cell in cells() if cell.id == "flask-granian")
    absent = dataclasses.replace(cell.server, requires=("granian_not_here_xyz", "uvicorn"))
    with pytest.raises(pytest.skip.Exception, match="granian_not_here_xyz not installed"):
        test_matrix.test_cell(dataclasses.replace(cell, server=absent), tmp_path)


def test_a_cell_that_cannot_work_by_design_is_skipped_as_not_applicable(tmp_path: Path) -> None:
    cell = next(cell for cell in cells() if cell.id == "quart-gunicorn-gthread-trio")
    with pytest.raises(pytest.skip.Exception, match="n/a: Quart runs on asyncio only"):
        test_matrix.test_cell(cell, tmp_path)
