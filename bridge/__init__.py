"""bridge: run WSGI apps under ASGI servers, and ASGI apps under WSGI servers."""

from __future__ import annotations

from .asgi_to_wsgi import AsgiToWsgi
from .errors import (
    AppExitError,
    BadRequestError,
    BodyTooLargeError,
    BridgeError,
    ClientDisconnected,
    HopByHopHeaderError,
    InvalidScopeError,
    LifespanError,
    ResponseError,
)
from .wsgi_to_asgi import WsgiToAsgi

__version__ = "0.1.0"

__all__ = [
    "AppExitError",
    "AsgiToWsgi",
    "BadRequestError",
    "BodyTooLargeError",
    "BridgeError",
    "ClientDisconnected",
    "HopByHopHeaderError",
    "InvalidScopeError",
    "LifespanError",
    "ResponseError",
    "WsgiToAsgi",
    "__version__",
]
