"""``python -m benchmarks.revisions``: each revision's bridge in a package of its own,
measured in processes of their own pinned to one CPU (run here as a subprocess, with two
processes a revision: the pin would hold the test process too)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from benchmarks.revisions import extract
from benchmarks.servers import ROOT

pytestmark = pytest.mark.skipif(not (ROOT / ".git").exists(), reason="needs a git checkout")


def test_a_revision_becomes_a_package_of_its_own(tmp_path: object) -> None:
    into = str(tmp_path)
    extract("HEAD", into, "bridge_rev0")
    code = (
        "import sys, bridge_rev0, bridge_rev0.http as h;"
        "print(h.__file__);"
        "print(sorted(m for m in sys.modules if m == 'bridge' or m.startswith('bridge.')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": into},
        cwd=into,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.splitlines()
    assert out[0].startswith(os.path.join(into, "bridge_rev0") + os.sep)
    assert out[1] == "[]"  # nothing of the installed bridge was imported by the copy


def _revisions(*argv: str) -> str:
    """``python -m benchmarks.revisions`` with ``argv``, in a few small processes: its output."""
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.revisions", *argv, "--processes", "2"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_one_revision_given_twice_is_measured_twice() -> None:
    out = _revisions("HEAD", "HEAD", "--rounds", "3", "--requests", "10")
    rows = re.findall(r"^\| (w2a|a2w) hello \| (\d)\. HEAD \| ([\d.]+)x \|", out, re.MULTILINE)
    assert sorted((direction, label) for direction, label, _ in rows) == [
        ("a2w", "1"),
        ("a2w", "2"),
        ("w2a", "1"),
        ("w2a", "2"),
    ]
    assert all(0.1 < float(ratio) < 10 for _, _, ratio in rows)


def test_another_scenario_of_the_tier() -> None:
    out = _revisions(
        "HEAD", "--scenario", "echo-1mib", "--direction", "a2w", "--rounds", "2", "--requests", "2"
    )
    # ratio, spread, thread switches per request, baseline, requests per round
    rows = re.findall(
        r"^\| a2w echo-1mib \| 1\. HEAD \| ([\d.]+)x \| [\d.]+ to [\d.]+ \| ([\d.]+) \| [\d.]+ µs \| 2 \|$",
        out,
        re.MULTILINE,
    )
    assert len(rows) == 1 and 0.1 < float(rows[0][0]) < 10 and float(rows[0][1]) > 0
