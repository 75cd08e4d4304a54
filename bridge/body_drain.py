"""Reading and discarding the rest of a request body that an ASGI app left unread.

AsgiToWsgi calls :func:`drain_rest` in the WSGI server's thread, from the response's
``close()``, once the app's task can no longer read the body: a server that keeps the
connection alive then finds the client's next request where it starts (gunicorn's
gthread worker reads 64 KiB of such a rest at most, then closes a connection whose
response promised to keep it, losing the client's next request). Blocking reads, on
the caller's thread: no thread, no event loop here.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from .environ import wsgi_input_bytes

__all__ = ["drain_rest", "gunicorn_drains_itself"]

# The adapter's logger: this is its work, and where its users look for it.
logger = logging.getLogger("bridge.asgi_to_wsgi")


def drain_rest(
    stream: Any, remaining: int | None, sock: Any, *, max_bytes: int, max_seconds: float, read_size: int
) -> None:
    """Read and discard what is left of a request body on ``stream`` (``remaining``
    bytes; None: until EOF), in reads of at most ``read_size`` bytes.

    Never past the body's length; a body read until EOF is read to its end. Bounded:
    at most ``max_bytes`` (a larger rest of known length is not read at all; one read
    until EOF stops one byte past the bound), and no read starts once ``max_seconds``
    have passed. A read blocks until the client sends more: on gunicorn, which waits for
    a client's bytes without a timeout, the server's socket (``sock``) gets the time
    left as its timeout for the drain (as gunicorn's own drain does; the prior one is
    restored); elsewhere the server's own read timeout bounds each read. Whatever stops
    the drain early leaves the rest unread: the server then has to close the connection
    (gunicorn does, as its own drain gives up, or as its body reader failed).
    """
    if remaining is not None and remaining > max_bytes:
        logger.debug(
            "leaving the %d request body bytes the ASGI app did not read (over %d, the most "
            "read and discarded after a response): the server has to close the connection",
            remaining,
            max_bytes,
        )
        return
    # Bytes still to read; a body read until EOF: one past the bound tells it went over.
    left = remaining if remaining is not None else max_bytes + 1
    deadline = time.monotonic() + max_seconds
    timed = callable(getattr(sock, "settimeout", None)) and callable(getattr(sock, "gettimeout", None))
    prior = sock.gettimeout() if timed else None
    try:
        while left > 0:
            now = time.monotonic()
            if now >= deadline:
                logger.debug(
                    "stopped reading the rest of the request body after %s s: the server "
                    "has to close the connection",
                    max_seconds,
                )
                return
            try:
                if timed:
                    sock.settimeout(deadline - now)
                data = stream.read(min(read_size, left))
                size = len(data) if type(data) is bytes else len(wsgi_input_bytes(data))
            except Exception as exc:  # (on gunicorn, its socket's timeout included)
                logger.debug(
                    "reading the rest of the request body failed: %r; the server has to close the connection",
                    exc,
                )
                return
            if not size:
                return  # the end of a body read until EOF, or the client left
            left -= size
        if remaining is None:
            logger.debug(
                "leaving the rest of a request body the ASGI app did not read (over %d "
                "bytes, the most read and discarded after a response): the server has to "
                "close the connection",
                max_bytes,
            )
    finally:
        if timed:
            try:
                sock.settimeout(prior)
            except OSError as exc:
                logger.debug("restoring the server socket's timeout failed: %r", exc)


def gunicorn_drains_itself(software: object) -> bool:
    """gunicorn before 24 reads a request body the app left unread itself, before the
    next request on the connection, and keeps it; and it closes the connection when the
    rest is read in the response's close() instead (measured with 23.0.0, the newest for
    Python 3.9, with a plain WSGI app: served, and closed). 27.0.1 reads 64 KiB at most,
    then closes a connection whose response promised keep-alive: :func:`drain_rest` is
    for it. ``software`` is the environ's ``SERVER_SOFTWARE``."""
    if type(software) is not str or not software.startswith("gunicorn/"):
        return False
    major = software[len("gunicorn/") :].partition(".")[0]
    return major.isdigit() and int(major) < 24
