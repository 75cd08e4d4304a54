"""The design's rule: the pure translation modules import no concurrency machinery."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import bridge

PURE_MODULES = [
    "environ.py",
    "http.py",
    "errors.py",
    "_types.py",
    "wsgi_streams.py",
    "rules.py",
    "wsgi_response.py",
    "asgi_response.py",
]
FORBIDDEN = {"anyio", "asyncio", "trio", "threading", "queue", "concurrent", "socket", "sniffio"}
# body_drain and pathsend own no thread, but block on I/O: no pure module may use them.
GLUE_MODULES = {
    "wsgi_to_asgi",
    "asgi_to_wsgi",
    "loop_thread",
    "lifespan",
    "handoff",
    "workers",
    "spool",
    "body_drain",
    "pathsend",
}


@pytest.mark.parametrize("name", PURE_MODULES)
def test_pure_module_imports(name: str) -> None:
    path = Path(bridge.__file__).parent / name
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots = {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            roots = {module.split(".")[0]} if node.level == 0 else {module.split(".")[0]} & GLUE_MODULES
        else:
            continue
        assert not roots & FORBIDDEN, f"{name} imports {roots & FORBIDDEN}"
        assert not roots & GLUE_MODULES, f"{name} imports glue module {roots & GLUE_MODULES}"
