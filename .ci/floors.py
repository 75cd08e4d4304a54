"""Keep .ci/constraints-lowest.txt honest: it must pin every runtime dependency of
setup.cfg (``install_requires``) at exactly its declared floor. With ``--installed``,
also check that those versions are the ones installed (the constraints took effect).

Runs on the oldest supported Python (3.9), standard library only.
"""

from __future__ import annotations

import configparser
import re
import sys
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _norm(ver: str) -> tuple[int, ...]:
    parts = [int(p) for p in ver.split(".")]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()  # 4.12 == 4.12.0
    return tuple(parts)


def floors() -> dict[str, str]:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    found = {}
    for line in cfg["options"]["install_requires"].strip().splitlines():
        match = re.fullmatch(r"\s*([A-Za-z0-9_.-]+)\s*>=\s*([0-9.]+)\s*", line)
        if match is None:
            sys.exit(f"setup.cfg install_requires: {line.strip()!r} is not NAME>=VERSION")
        found[match[1].lower()] = match[2]
    return found


def pins() -> dict[str, str]:
    found = {}
    for raw in (ROOT / ".ci" / "constraints-lowest.txt").read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            name, _, ver = line.partition("==")
            found[name.strip().lower()] = ver.strip()
    return found


def main() -> int:
    want, pinned = floors(), pins()
    errors = []
    if set(want) != set(pinned):
        errors.append(f"setup.cfg requires {sorted(want)}, constraints-lowest.txt pins {sorted(pinned)}")
    for name in sorted(set(want) & set(pinned)):
        if _norm(want[name]) != _norm(pinned[name]):
            errors.append(f"{name}: setup.cfg floor {want[name]}, constraints-lowest.txt pins {pinned[name]}")
        if "--installed" in sys.argv[1:] and _norm(version(name)) != _norm(pinned[name]):
            errors.append(f"{name}: {version(name)} is installed, not the floor {pinned[name]}")
    for error in errors:
        print(f"floors: {error}", file=sys.stderr)
    if not errors:
        print("floors: " + ", ".join(f"{n}=={v}" for n, v in sorted(pinned.items())))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
