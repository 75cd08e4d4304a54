"""Command-line flags for every gunicorn the tests start, whatever its version.
Standard library only: the matrix's cell table imports it."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version


def _no_control_socket() -> tuple[str, ...]:
    # gunicorn 24 and later would create ~/.gunicorn/gunicorn.ctl; gunicorn 23, the
    # last for Python 3.9, has no control socket and refuses the flag.
    try:
        major = int(version("gunicorn").split(".")[0])
    except (PackageNotFoundError, ValueError):
        return ()
    return ("--no-control-socket",) if major >= 24 else ()


GUNICORN_NO_CONTROL_SOCKET = _no_control_socket()
