"""Import ``MODULE:ATTR`` the way uvicorn and gunicorn do, with errors a user can act on."""

from __future__ import annotations

import importlib
import inspect
import os
import sys
import traceback
from dataclasses import dataclass

from .detect import Detection, NotAnAppError, describe, detect

__all__ = ["CommandError", "Loaded", "load_app"]

#: Names tried, in order, when the target names only a module (gunicorn's and uvicorn's habits).
DEFAULT_NAMES = ("app", "application")


class CommandError(Exception):
    """A problem the command line reports as one line, without a traceback."""


@dataclass(frozen=True)
class Loaded:
    target: str  # what the user typed, resolved to MODULE:ATTR
    app: object
    detection: Detection


def load_app(target: str, *, factory: bool = False, interface: str = "auto", app_dir: str = ".") -> Loaded:
    """Import the app named by ``target`` and tell which protocol it speaks."""
    module_name, _, attr = target.partition(":")
    if not module_name or (target.count(":") > 1) or (":" in target and not attr):
        raise CommandError(f"{target!r} is not an import path; write MODULE:ATTR, like myproject.web:app")
    path = os.path.abspath(app_dir)
    if path not in sys.path:
        sys.path.insert(0, path)
    module = _import(module_name)
    if attr:
        obj = _lookup(module, module_name, attr)
    else:
        found = next((name for name in DEFAULT_NAMES if hasattr(module, name)), None)
        if found is None:
            raise CommandError(
                f"module {module_name!r} has no 'app' or 'application'; name the app: "
                f"{module_name}:ATTR{_candidates(module)}"
            )
        attr, obj = found, getattr(module, found)
    resolved = f"{module_name}:{attr}"
    if factory:
        if not callable(obj):
            raise CommandError(f"--factory: {resolved} is a {describe(obj)}, which cannot be called")
        try:
            obj = obj()
        except Exception as exc:
            raise CommandError(
                f"--factory: calling {resolved}() raised {_exception_line(exc)}{_where(exc)}"
            ) from exc
    if interface != "auto":
        return Loaded(resolved, obj, Detection(interface, f"--interface {interface}"))  # type: ignore[arg-type]
    try:
        detection = detect(obj)
    except NotAnAppError as exc:
        raise CommandError(f"{resolved} is not a WSGI or ASGI app: {exc}") from None
    return Loaded(resolved, obj, detection)


def _import(module_name: str) -> object:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if module_name == missing or module_name.startswith(missing + "."):
            raise CommandError(
                f"cannot import {module_name!r}: no module named {missing!r} "
                f"(searched from {os.getcwd()}; is the app's directory the current one, or --app-dir?)"
            ) from None
        raise CommandError(
            f"importing {module_name!r} failed: it imports {missing!r}, which is not installed{_where(exc)}"
        ) from None
    except Exception as exc:
        raise CommandError(f"importing {module_name!r} raised {_exception_line(exc)}{_where(exc)}") from None


def _lookup(module: object, module_name: str, attr: str) -> object:
    obj = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise CommandError(
                f"module {module_name!r} has no attribute {attr!r}{_candidates(module)}"
            ) from None
    return obj


def _candidates(module: object) -> str:
    """``; it has: flask_app (WSGI), api (ASGI)``, or nothing."""
    apps = []
    module_name = getattr(module, "__name__", None)
    for name, value in sorted(vars(module).items()):
        if name.startswith("_") or inspect.ismodule(value):
            continue
        if (inspect.isfunction(value) or inspect.isclass(value)) and value.__module__ != module_name:
            continue  # imported, like typing.TypedDict: not this module's app
        try:
            apps.append(f"{name} ({detect(value).interface.upper()})")
        except NotAnAppError:
            continue
    return f"; apps it has: {', '.join(apps)}" if apps else ""


def _exception_line(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _where(exc: BaseException) -> str:
    """`` (at path/file.py:12)``: the innermost frame outside the import machinery."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "importlib" not in f.filename]
    if not frames:
        return ""
    frame = frames[-1]
    filename = os.path.relpath(frame.filename) if frame.filename.startswith(os.getcwd()) else frame.filename
    return f" (at {filename}:{frame.lineno})"
