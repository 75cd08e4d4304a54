"""Tell a WSGI app from an ASGI app by looking at it, and say why.

Pure: it only inspects signatures. The rules, in order: the adapters' own classes
and asgiref's ``_asgi_single_callable``/``_asgi_double_callable`` hints; a class (ASGI 2
style, instantiated per scope); then the signature of the callable, or of its
``__call__``. ``async def`` taking three arguments is ASGI 3; a plain callable taking
``(environ, start_response)`` is WSGI. Anything else is reported as undecidable, with
the reason, so the user can say ``--interface``.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from dataclasses import dataclass
from typing import Any, Callable, Literal

from ..http import with_article

__all__ = ["Detection", "NotAnAppError", "describe", "detect", "is_proxy", "plain_type"]

Interface = Literal["wsgi", "asgi"]


class NotAnAppError(Exception):
    """The object is not an app of either kind, or its kind cannot be told."""


@dataclass(frozen=True)
class Detection:
    interface: Interface
    reason: str
    #: already one of bridge's adapters: serve it as it is, no second bridge
    adapter: bool = False

    @property
    def label(self) -> str:
        """``a WSGI app`` or ``an ASGI app``."""
        return "a WSGI app" if self.interface == "wsgi" else "an ASGI app"


def is_proxy(obj: object) -> bool:
    """A werkzeug context proxy (``flask.request``, ``current_app``, ...), told by its type
    alone: any attribute of the proxy itself would be looked up on the object behind it,
    which outside a request raises."""
    return _proxy_type(type(obj))


def plain_type(kind: type) -> bool:
    """No attribute hooks anywhere in the class: looking at an instance runs no code of its
    own (neither a proxy's lookup nor a lazy object's loading)."""
    return not _proxy_type(kind) and not any(
        hook in klass.__dict__
        for klass in kind.__mro__[:-1]  # object's own are harmless
        for hook in ("__getattr__", "__getattribute__", "__class__")
    )


def _proxy_type(kind: type) -> bool:
    return any(k.__module__ == "werkzeug.local" and k.__name__.endswith("Proxy") for k in kind.__mro__)


def describe(obj: object) -> str:
    """A short human name for an object: ``Flask instance``, ``function index``."""
    if is_proxy(obj):
        return f"werkzeug {type(obj).__name__}"
    if inspect.isclass(obj):
        return f"class {obj.__qualname__}"
    if inspect.ismodule(obj):
        return f"module {obj.__name__}"
    if isinstance(obj, functools.partial):
        return f"functools.partial of {describe(obj.func)}"
    if inspect.isfunction(obj) or inspect.ismethod(obj):
        return f"{'async ' if _is_async(obj) else ''}function {obj.__qualname__}"
    return f"{type(obj).__qualname__} instance"


def detect(obj: Any) -> Detection:
    """Which protocol ``obj`` speaks; raise :class:`NotAnAppError` saying why if unclear."""
    from ..asgi_to_wsgi import AsgiToWsgi
    from ..wsgi_to_asgi import WsgiToAsgi

    name = describe(obj)
    if is_proxy(obj):
        raise NotAnAppError(
            f"it is {with_article(name)} (like flask.request or flask.current_app), which stands for "
            f"an object only inside a request; name the app object itself"
        )
    if isinstance(obj, WsgiToAsgi):
        return Detection("asgi", f"{name}: already bridge's ASGI side of a WSGI app", adapter=True)
    if isinstance(obj, AsgiToWsgi):
        return Detection("wsgi", f"{name}: already bridge's WSGI side of an ASGI app", adapter=True)
    if inspect.ismodule(obj):
        raise NotAnAppError(
            f"it is {with_article(name)}, not an app; name the app inside it, like MODULE:app"
        )
    if not callable(obj):
        raise NotAnAppError(
            f"it is {with_article(name)}, which is not callable, so neither a WSGI nor an ASGI app"
        )
    if getattr(obj, "_asgi_single_callable", False):
        return Detection("asgi", f"{name} is marked _asgi_single_callable")
    if getattr(obj, "_asgi_double_callable", False):
        return Detection("asgi", f"{name} is marked _asgi_double_callable (ASGI 2)")
    if inspect.isclass(obj):
        # The instances' __call__ (taking receive, send), not type.__call__.
        call = next((k.__dict__["__call__"] for k in obj.__mro__ if "__call__" in k.__dict__), None)
        if call is not None and _is_async(call) and _positional(call, bound=False) == (2, 2):
            return Detection("asgi", f"{name}: ASGI 2 style, instantiated with the scope, then awaited")
        raise NotAnAppError(
            f"it is {with_article(name)}, not an instance of it; use an instance, or --factory if calling it "
            f"builds the app"
        )
    function: Callable[..., Any] = obj if _is_plain_callable(obj) else obj.__call__
    where = name if function is obj else f"{type(obj).__qualname__}.__call__"
    counts = _positional(function, bound=True)
    if counts is None:
        raise NotAnAppError(f"the signature of {where} cannot be read; pass --interface wsgi or asgi")
    required, accepted = counts
    is_async = _is_async(function)
    if is_async and required <= 3 <= accepted:
        return Detection("asgi", f"{where} is async and takes (scope, receive, send)")
    if not is_async and required <= 2 <= accepted != _MANY:
        return Detection("wsgi", f"{where} is a plain callable taking (environ, start_response)")
    if not is_async and required == 0 and accepted == 0:
        raise NotAnAppError(
            f"{where} takes no arguments: if it builds the app, pass --factory; an app takes "
            f"(environ, start_response) or (scope, receive, send)"
        )
    kind = "an async callable" if is_async else "a plain callable"
    hint = ""
    if not is_async and required <= 3 <= accepted:
        hint = "; an ASGI app is async def, so if it returns an awaitable pass --interface asgi"
    if accepted == _MANY:
        hint = "; it accepts any arguments, so pass --interface wsgi or asgi"
    raise NotAnAppError(
        f"{where} is {kind} taking {_arity(required, accepted)}; a WSGI app takes "
        f"(environ, start_response) and an ASGI app is async and takes (scope, receive, send){hint}"
    )


_MANY = 1 << 16


def _is_plain_callable(obj: object) -> bool:
    return (
        inspect.isfunction(obj)
        or inspect.ismethod(obj)
        or inspect.isbuiltin(obj)
        or isinstance(obj, functools.partial)
    )


def _is_async(function: object) -> bool:
    # asyncio's check also honours the marker that sync-looking wrappers set
    # (asgiref's, and inspect.markcoroutinefunction on 3.12+).
    return inspect.iscoroutinefunction(function) or asyncio.iscoroutinefunction(function)


def _positional(function: object, *, bound: bool) -> tuple[int, int] | None:
    """(required, accepted) positional parameters, or None when unreadable.

    ``bound=False`` reads an unbound ``__call__`` and leaves ``self`` out.
    """
    try:
        signature = inspect.signature(function)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    parameters = list(signature.parameters.values())
    if not bound and parameters:
        parameters = parameters[1:]
    required = accepted = 0
    for parameter in parameters:
        if parameter.kind is parameter.VAR_POSITIONAL:
            accepted = _MANY
        elif parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD):
            accepted += 1
            if parameter.default is parameter.empty:
                required += 1
        elif parameter.kind is parameter.KEYWORD_ONLY and parameter.default is parameter.empty:
            return (required, -1)  # a required keyword-only argument: no server passes it
    return required, accepted


def _arity(required: int, accepted: int) -> str:
    if accepted == _MANY:
        return f"at least {required} argument{'s' if required != 1 else ''}"
    if accepted < 0:
        return "a required keyword-only argument"
    if required == accepted:
        return f"{required} argument{'s' if required != 1 else ''}"
    return f"{required} to {accepted} arguments"
