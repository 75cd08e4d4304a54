"""``mypy --strict`` on code a user writes around Flask and FastAPI: no ignores needed.

Runs mypy in a subprocess on tests/typing/, with no project config, as a user's own
project would. ``user_code.py`` must be clean; ``misuse.py`` must fail exactly on the
lines it marks, so the check cannot pass by types having decayed to ``Any``.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent / "typing"


@pytest.mark.timeout(240)
def test_mypy_strict_on_user_code(tmp_path: Path) -> None:
    config = tmp_path / "mypy.ini"
    config.write_text("[mypy]\n")
    files = [HERE / "user_code.py", HERE / "misuse.py"]
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--config-file", str(config),
         "--cache-dir", str(tmp_path / "cache"), *map(str, files)],
        capture_output=True, text=True, timeout=230, check=False,
    )  # fmt: skip
    output = result.stdout + result.stderr
    errors = re.findall(r"^(\S+?):(\d+): error:", output, flags=re.MULTILINE)
    assert not [e for e in errors if e[0].endswith("user_code.py")], output
    source = (HERE / "misuse.py").read_text().splitlines()
    expected = {str(n) for n, line in enumerate(source, 1) if "# error:" in line}
    assert {line for name, line in errors if name.endswith("misuse.py")} == expected, output
    assert len(expected) == 3
