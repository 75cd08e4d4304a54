"""The exceptions bridge raises.

Every error bridge raises on its own account derives from :class:`BridgeError`, so a
user can catch "anything the adapter objected to" in one place. Errors raised by the
wrapped application itself are never wrapped: the bridge is transparent to them.
"""

from __future__ import annotations

__all__ = [
    "AppExitError",
    "BadRequestError",
    "BodyTooLargeError",
    "BridgeError",
    "ClientDisconnected",
    "HopByHopHeaderError",
    "InvalidScopeError",
    "LifespanError",
    "ResponseError",
]


class BridgeError(Exception):
    """Base class of every error bridge raises on its own account."""


class InvalidScopeError(BridgeError, ValueError):
    """The server handed over a scope, message or environ that breaks its spec.

    For ``WsgiToAsgi``, an ASGI scope or message that breaks the ASGI spec; for
    ``AsgiToWsgi``, a WSGI environ that breaks PEP 3333 (a key or CGI value that is not
    a ``str``, text that is not latin-1, a ``wsgi.input`` whose ``read()`` returns
    ``str``). The message names the field or key. This is a bug in the server or in
    middleware in front of the bridge, not in the app nor the client's doing, so it is
    raised to the server (which answers 500 and logs it) rather than answered with 400.
    """


class BadRequestError(BridgeError, ValueError):
    """The client's request cannot be turned into a WSGI environ.

    For example, too many repeated headers of one name, or two different
    ``Content-Length`` values. The adapter answers these with 400 Bad Request.
    """


class ResponseError(BridgeError):
    """The wrapped app broke the response protocol (PEP 3333 or ASGI).

    A bad status line, a header that cannot be encoded, a body chunk that is not
    ``bytes``, no ``start_response`` call, and the like. The message says what was
    wrong; ``rule`` is the id of the broken rule in :data:`bridge.rules.RULES` (the
    table ``bridge check`` reports from) and ``state`` the response's state when it
    happened, both named at the end of the message when known.
    """

    rule: str | None = None
    state: str | None = None

    def __init__(self, message: str, *, rule: str | None = None, state: str | None = None) -> None:
        super().__init__(message)
        if rule is not None:
            self.rule = rule
        if state is not None:
            self.state = state

    def __str__(self) -> str:
        text = super().__str__()
        if self.rule is None:
            return text
        where = f", in state {self.state}" if self.state is not None else ""
        return f"{text} [rule {self.rule}{where}]"


class HopByHopHeaderError(ResponseError):
    """The app set a hop-by-hop header (``Connection``, ``Transfer-Encoding``, ...).

    Only raised in strict mode; by default such headers are dropped with a warning,
    because the server owns the connection and its framing.
    """


class ClientDisconnected(BridgeError, OSError):
    """The client went away before the request or response was complete.

    An ``OSError`` subclass, as PEP 3333 servers (mod_wsgi, werkzeug) and ASGI 2.4
    servers raise, so code that already handles ``OSError`` keeps working.
    """


class BodyTooLargeError(ClientDisconnected):
    """The request body grew past the adapter's ``max_body_size`` while it streamed in.

    To the app, a request refused for its size is one whose client left: reading the
    body raises this (``wsgi.input.read()`` under ``WsgiToAsgi``; ``receive()`` answers
    ``http.disconnect`` under ``AsgiToWsgi``), what the app answers then goes nowhere,
    and the adapter answers ``413 Content Too Large`` itself if no response has started.
    A body whose declared length is too large is answered with 413 before the app runs.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(f"the request body is larger than max_body_size ({limit} bytes)")
        self.limit = limit


class AppExitError(BridgeError):
    """The app raised ``SystemExit`` or ``KeyboardInterrupt`` while handling a request.

    Converted to an ordinary exception so that one request cannot stop the server:
    the server answers 500 and keeps serving. The original is the ``__cause__``.
    """

    @classmethod
    def wrap(cls, exc: BaseException, kind: str) -> AppExitError:
        """The error to raise instead of ``exc``, from a ``kind`` ("WSGI"/"ASGI") app."""
        error = cls(
            f"the {kind} app raised {type(exc).__name__} while handling a request; the server keeps running"
        )
        error.__cause__ = exc
        return error


class LifespanError(BridgeError):
    """The ASGI app's lifespan startup failed (``lifespan.startup.failed``, an error
    with ``lifespan="on"``, or a timeout). Every request is refused with this error
    rather than served by a half-started app."""
