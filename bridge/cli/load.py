"""Import ``MODULE:ATTR`` the way uvicorn and gunicorn do, with errors a user can act on.

``ATTR`` is a name (``app``, ``api.app``), or a call of a factory with literal arguments,
as gunicorn has it (``create_app()``, ``create_app('prod', debug=True)``): the arguments
are read with :func:`ast.literal_eval`, never evaluated as code.

Looking for the apps a module holds (to name them when the one asked for is missing)
reads types only: it never touches an attribute of a module global, so werkzeug's
context proxies (``flask.request``, ``current_app``) and other lazy objects are left
alone, and no code of the user's runs.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import os
import re
import sys
import sysconfig
import traceback
import types
from dataclasses import dataclass
from typing import Any

from ..http import with_article
from .detect import Detection, NotAnAppError, describe, detect, is_proxy, plain_type

__all__ = ["CommandError", "Loaded", "load_app", "parse_attr"]

#: Names tried, in order, when the target names only a module (gunicorn's and uvicorn's habits).
DEFAULT_NAMES = ("app", "application")


class CommandError(Exception):
    """A problem the command line reports as one line, without a traceback, exiting with
    ``status``."""

    status = 1


@dataclass(frozen=True)
class Loaded:
    target: str  # what the user typed, resolved to MODULE:ATTR
    app: object
    detection: Detection


@dataclass(frozen=True)
class Call:
    """``ATTR`` split up: the dotted name, and the literal arguments of a call, if any."""

    name: str
    call: bool = False
    args: tuple[Any, ...] = ()
    kwargs: tuple[tuple[str, Any], ...] = ()


def parse_attr(attr: str) -> Call:
    """``create_app('prod', debug=True)`` -> Call('create_app', True, ('prod',), (('debug', True),)).

    Raises :class:`CommandError` for anything but a dotted name or a call of one with
    literal arguments (strings, numbers, tuples, lists, dicts, sets, booleans, None).
    """
    usage = "APP is a name, or a factory call with literal arguments, like create_app('prod')"
    try:
        tree = ast.parse(attr.strip(), mode="eval").body
    except SyntaxError:
        raise CommandError(f"{attr!r} is not a name or a call: {usage}") from None
    if isinstance(tree, ast.Call):
        name = _dotted(tree.func)
        if name is None:
            raise CommandError(f"{attr!r}: only a named function can be called: {usage}")
        try:
            args = tuple(ast.literal_eval(arg) for arg in tree.args)
            kwargs = tuple((str(kw.arg), ast.literal_eval(kw.value)) for kw in tree.keywords)
        except ValueError:
            raise CommandError(f"{attr!r}: the arguments must be literals: {usage}") from None
        if any(kw.arg is None for kw in tree.keywords):
            raise CommandError(f"{attr!r}: the arguments must be literals: {usage}")
        return Call(name, True, args, kwargs)
    name = _dotted(tree)
    if name is None:
        raise CommandError(f"{attr!r} is not a name or a call: {usage}")
    return Call(name)


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return None if base is None else f"{base}.{node.attr}"
    return None


def load_app(target: str, *, factory: bool = False, interface: str = "auto", app_dir: str = ".") -> Loaded:
    """Import the app named by ``target`` and tell which protocol it speaks."""
    module_name, _, attr = target.partition(":")
    if not module_name or (":" in target and not attr.strip()) or (":" in attr and "(" not in attr):
        raise CommandError(f"{target!r} is not an import path; write MODULE:ATTR, like myproject.web:app")
    path = os.path.abspath(app_dir)
    if not os.path.isdir(path):
        raise CommandError(f"--app-dir {app_dir}: no such directory")
    if path not in sys.path:
        sys.path.insert(0, path)
    spec = parse_attr(attr) if attr else None
    if spec is not None and spec.call and factory:
        raise CommandError(
            f"{target}: --factory calls {spec.name} itself; write {module_name}:{spec.name} with "
            f"--factory, or the call without it"
        )
    module = _import(module_name, path)
    if spec is not None:
        obj = _lookup(module, module_name, spec.name)
        attr = spec.name
    else:
        found = next((name for name in DEFAULT_NAMES if hasattr(module, name)), None)
        if found is None:
            raise CommandError(
                f"module {module_name!r} has no 'app' or 'application'; name the app: "
                f"{module_name}:ATTR{_candidates(module)}"
            )
        attr, obj = found, getattr(module, found)
    resolved = f"{module_name}:{attr}"
    if spec is not None and spec.call:
        obj = _call_factory(obj, resolved, spec.args, dict(spec.kwargs), how="")
        resolved = f"{module_name}:{target.partition(':')[2].strip()}"
    elif factory:
        obj = _call_factory(obj, resolved, (), {}, how="--factory: ")
    if interface != "auto":
        return Loaded(resolved, obj, Detection(interface, f"--interface {interface}"))  # type: ignore[arg-type]
    try:
        detection = detect(obj)
    except NotAnAppError as exc:
        raise CommandError(f"{resolved} is not a WSGI or ASGI app: {exc}") from None
    return Loaded(resolved, obj, detection)


def _call_factory(obj: object, name: str, args: tuple[Any, ...], kwargs: dict[str, Any], how: str) -> object:
    if is_proxy(obj) or not callable(obj):
        raise CommandError(f"{how}{name} is {with_article(describe(obj))}, which cannot be called")
    shown = ", ".join([*map(repr, args), *(f"{k}={v!r}" for k, v in kwargs.items())])
    try:
        return obj(*args, **kwargs)
    except Exception as exc:
        raise CommandError(
            f"{how}calling {name}({shown}) raised {_exception_line(exc)}{_where(exc)}"
        ) from exc


def _import(module_name: str, app_dir: str) -> types.ModuleType:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if module_name == missing or module_name.startswith(missing + "."):
            raise CommandError(
                f"cannot import {module_name!r}: no module named {missing!r} "
                f"(searched from {app_dir}; is the app's directory the current one, or --app-dir?)"
            ) from None
        raise CommandError(
            f"importing {module_name!r} failed: {_why_missing(exc, missing)}{_where(exc)}"
        ) from None
    except SyntaxError as exc:
        where = f" (at {_relative(exc.filename)}:{exc.lineno})" if exc.filename else _where(exc)
        raise CommandError(f"importing {module_name!r} raised SyntaxError: {exc.msg}{where}") from None
    except Exception as exc:
        raise CommandError(f"importing {module_name!r} raised {_exception_line(exc)}{_where(exc)}") from None


def _why_missing(exc: ModuleNotFoundError, missing: str) -> str:
    """Not installed, or there but not importable from here: say which."""
    top = missing.partition(".")[0]
    parent_name = missing.rpartition(".")[0]
    if parent_name:
        try:
            parent = importlib.util.find_spec(parent_name)
        except Exception:  # the parent itself does not import
            parent = None
        if parent is not None:
            return f"it imports {missing!r}, and {parent_name!r} has no such module"
    frame = _user_frame(exc)
    if frame is not None:
        # A module beside the user's file, as if its directory were on the path.
        folder = os.path.dirname(os.path.abspath(frame.filename))
        if os.path.exists(os.path.join(folder, top + ".py")) or os.path.isdir(os.path.join(folder, top)):
            shown = _relative(folder)
            return (
                f"it imports {top!r}, which is in {shown} but not on the import path; "
                f"run from there or pass --app-dir {shown}"
            )
    return f"it imports {missing!r}, which is not installed"


def _lookup(module: types.ModuleType, module_name: str, attr: str) -> object:
    obj: object = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise CommandError(
                f"module {module_name!r} has no attribute {attr!r}{_candidates(module)}"
            ) from None
    return obj


def candidates(module: types.ModuleType) -> list[str]:
    """``["flask_app (WSGI)", "api (ASGI)"]``: the apps defined or built in ``module``.

    Reads each global's type only (never an attribute of the global itself, which may be
    a proxy that raises, or a lazy object that runs code), and skips what was imported.
    """
    apps = []
    module_name = module.__name__
    for name, value in sorted(vars(module).items()):
        kind = type(value)
        if name.startswith("_") or not plain_type(kind) or issubclass(kind, types.ModuleType):
            continue
        if issubclass(kind, (types.FunctionType, type)) and getattr(value, "__module__", None) != module_name:
            continue  # imported, like typing.TypedDict: not this module's app
        if not callable(value):
            continue
        try:
            apps.append(f"{name} ({detect(value).interface.upper()})")
        except NotAnAppError:
            if issubclass(kind, types.FunctionType) and _FACTORY.fullmatch(name) and _no_arguments(value):
                apps.append(f"{name}() (a factory)")  # MODULE:create_app() calls it
    return apps


#: Names of functions that build an app, as Flask's and others' docs name them.
_FACTORY = re.compile(r"(create|make|build|get)_\w*app\w*|app_factory")


def _no_arguments(function: Any) -> bool:
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return False
    return all(p.default is not p.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in parameters)


def _candidates(module: types.ModuleType) -> str:
    """``; apps it has: flask_app (WSGI), api (ASGI)``, or nothing."""
    apps = candidates(module)
    if len(apps) > _SHOWN:
        apps = [*apps[:_SHOWN], f"and {len(apps) - _SHOWN} more"]
    return f"; apps it has: {', '.join(apps)}" if apps else ""


_SHOWN = 12


def _exception_line(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


_CLI_DIR = os.path.dirname(os.path.abspath(__file__))
_LIBRARY_DIRS = tuple(
    {
        os.path.abspath(p)
        for key in ("stdlib", "platstdlib", "purelib", "platlib")
        if (p := sysconfig.get_paths().get(key))
    }
)


def _is_user_file(filename: str) -> bool:
    """Not the import machinery, not bridge's command line, not the standard library or
    an installed package: a file of the user's."""
    if filename.startswith("<"):
        return False
    path = os.path.abspath(filename)
    if path.startswith(_CLI_DIR + os.sep) or "importlib" in filename:
        return False
    return not any(path.startswith(folder + os.sep) for folder in _LIBRARY_DIRS)


def _user_frame(exc: BaseException) -> traceback.FrameSummary | None:
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if _is_user_file(f.filename)]
    return frames[-1] if frames else None


def _where(exc: BaseException) -> str:
    """`` (at path/file.py:12)``: the innermost frame in the user's files, else the innermost
    one outside the import machinery and bridge's command line."""
    frame = _user_frame(exc)
    if frame is None:
        frames = [
            f
            for f in traceback.extract_tb(exc.__traceback__)
            if "importlib" not in f.filename and not os.path.abspath(f.filename).startswith(_CLI_DIR + os.sep)
        ]
        if not frames:
            return ""
        frame = frames[-1]
    return f" (at {_relative(frame.filename)}:{frame.lineno})"


def _relative(filename: str) -> str:
    path = os.path.abspath(filename)
    cwd = os.getcwd()
    if path == cwd:
        return "."
    return os.path.relpath(path) if path.startswith(cwd + os.sep) else filename
