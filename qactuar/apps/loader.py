"""Import an ASGI app from an import string such as ``"pkg.module:app"`` or ``"module:create_app()"``.

Every failure becomes an :class:`AppImportError` whose message says exactly what was wrong, in the
style of uvicorn's importer, because the message is what the operator sees next to a red mount:

- a malformed import string names the accepted forms;
- a missing module is told apart from a module the app itself imports being missing (the latter
  names the missing module and shows where the app imports it);
- an exception while importing, or raised by a factory, carries the exception and the traceback
  of the app's code only (importlib's and this module's frames are dropped as noise);
- a missing attribute, or a result that is not an ASGI app, names the module and attribute.

Grammar: ``<module>:<attribute>[()]`` where ``<module>`` is a dotted module path and
``<attribute>`` a dotted attribute path. A trailing ``()`` (or ``factory=True``) means the
attribute is a factory, called with no arguments, that returns the app.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from types import ModuleType

from qactuar.apps.asgi2 import accepts_args, as_asgi3
from qactuar.apps.tracebacks import app_traceback, summary
from qactuar.types import ASGIApp

_FORMAT_HINT = 'must be in format "<module>:<attribute>" or "<module>:<factory>()".'
_NOISE_FILES = frozenset({__file__, importlib.__file__})


class AppImportError(Exception):
    """The app named by an import string could not be loaded; ``str(exc)`` says why."""


def add_app_dir(path: str) -> None:
    """Put the absolute ``path`` first on ``sys.path`` unless it is already there."""
    absolute = os.path.abspath(path)
    if absolute not in sys.path:
        sys.path.insert(0, absolute)
        importlib.invalidate_caches()


def import_app(spec: str, *, factory: bool = False) -> ASGIApp:
    """Import the app named by ``spec``; ASGI 2 apps come back wrapped as ASGI 3."""
    module_name, attr_path, call = _parse(spec)
    module = _import_module(module_name)
    obj = _get_attribute(module, module_name, attr_path)
    label = f"{module_name}:{attr_path}"
    if call or factory:
        obj = _call_factory(obj, label)
        what = f'Factory "{label}" returned {type(obj).__name__}, which'
    else:
        what = f'Attribute "{label}" ({type(obj).__name__})'
    if not callable(obj):
        raise AppImportError(f"{what} is not an ASGI app: it is not callable.")
    if not (accepts_args(obj, 3) or accepts_args(obj, 1)):
        hint = "" if call or factory else f' If it is an app factory, write "{label}()".'
        raise AppImportError(
            f"{what} is not an ASGI app: it accepts neither (scope, receive, send) nor (scope).{hint}"
        )
    return as_asgi3(obj)


def _parse(spec: str) -> tuple[str, str, bool]:
    module_name, sep, attr_path = spec.partition(":")
    call = attr_path.endswith("()")
    if call:
        attr_path = attr_path[:-2]
    module_ok = all(module_name.split("."))
    attr_ok = all(part.isidentifier() for part in attr_path.split("."))
    if not (sep and module_ok and attr_ok):
        raise AppImportError(f'Import string "{spec}" {_FORMAT_HINT}')
    return module_name, attr_path, call


def _import_module(module_name: str) -> ModuleType:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing == module_name or module_name.startswith(missing + "."):
            raise AppImportError(
                f'Could not import module "{module_name}": no module named "{missing}" '
                f"(is it in APP_DIR or on sys.path?)."
            ) from None
        raise _with_traceback(
            f'Could not import module "{module_name}": it imports "{missing}", which was not found.', exc
        ) from None
    except (Exception, SystemExit) as exc:
        # SystemExit too: an app calling sys.exit() at import time must fail its own mount,
        # not stop the process that hosts every other app.
        raise _with_traceback(f'Importing module "{module_name}" raised {summary(exc)}', exc) from None


def _get_attribute(module: ModuleType, module_name: str, attr_path: str) -> object:
    obj: object = module
    try:
        for part in attr_path.split("."):
            obj = getattr(obj, part)
    except AttributeError:
        raise AppImportError(f'Attribute "{attr_path}" not found in module "{module_name}".') from None
    return obj


def _call_factory(obj: object, label: str) -> object:
    if not callable(obj):
        raise AppImportError(
            f'Factory "{label}" is not callable (it is {type(obj).__name__}), so it cannot make an app.'
        )
    factory: Callable[[], object] = obj
    try:
        return factory()
    except (Exception, SystemExit) as exc:
        raise _with_traceback(f'Factory "{label}" raised {summary(exc)}', exc) from None


def _with_traceback(headline: str, exc: BaseException) -> AppImportError:
    return AppImportError(f"{headline}\n\n{app_traceback(exc, skip_files=_NOISE_FILES)}")
