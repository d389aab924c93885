"""Module clashes: every deployed app shares one interpreter, one ``sys.path`` and one ``sys.modules``.

Two repositories that both ship ``app.py`` (or a ``utils`` package) cannot both be imported as themselves
in one process: whichever comes first on ``sys.path`` wins and the other app silently runs the wrong code.
Qactuar refuses such a deploy, naming the clash, instead of letting it happen.

How it is decided, without importing anything (this runs in the master):

- A release's top-level names are its ``*.py`` files, its extension modules, its packages (directories
  with ``__init__.py``) and its namespace directories (directories with ``.py`` files but no
  ``__init__.py``).  Directories without Python files (``static/``, ``templates/``) are not modules.
- Releases go on ``sys.path`` after everything else, in the records' order (the app changed last comes
  last), so what can shadow a new release is everything before it: APP_DIR, the server's own path
  (standard library, site-packages, the working directory), built-in modules, modules the server has
  imported already, and the releases of the other deployed apps.
- A name the release shares with any of those is a clash -- except two namespace directories, which
  Python merges: they clash only when both hold the same submodule (``tests/test_a.py`` and
  ``tests/test_b.py`` can share ``tests``; two ``utils/helpers.py`` cannot).  A regular module or package
  beats a namespace portion wherever it is on the path, so regular-versus-namespace is a clash both ways.

The deployer checks a new release against the apps it will join; each generation checks again when it
loads the deployed apps (APPS or the environment may have changed since), mounting only the releases
that pass and failing the others with the reason.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import logging
import os
import sys
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from qactuar.deploy.records import Deployed

server_log = logging.getLogger("qt_server")
_SOURCE_SUFFIXES = (".py", ".pyc", *importlib.machinery.EXTENSION_SUFFIXES)


@dataclass(frozen=True, slots=True)
class Provider:
    """Where a top-level name comes from, and (for a namespace directory) what is inside it."""

    where: str
    namespace: bool = False
    children: frozenset[str] = frozenset()


def _module_name(filename: str) -> str | None:
    for suffix in _SOURCE_SUFFIXES:
        if filename.endswith(suffix):
            stem = filename[: -len(suffix)]
            return stem if stem.isidentifier() else None
    return None


def _namespace_children(directory: Path) -> frozenset[str]:
    """Submodule names in a directory without ``__init__.py`` (empty: it is no Python directory)."""
    names: set[str] = set()
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                if entry.is_file():
                    name = _module_name(entry.name)
                elif entry.is_dir() and entry.name.isidentifier():
                    name = entry.name if (Path(entry.path) / "__init__.py").is_file() else None
                else:
                    name = None
                if name is not None:
                    names.add(name)
    except OSError:
        return frozenset()
    return frozenset(names)


def top_level(directory: str | Path) -> dict[str, Provider]:
    """The importable top-level names in ``directory`` (nothing when it is not a readable directory)."""
    found: dict[str, Provider] = {}
    try:
        with os.scandir(directory) as scan:
            entries = sorted(scan, key=lambda entry: entry.name)
    except OSError:
        return found
    for entry in entries:
        if entry.name.startswith((".", "__pycache__")):
            continue
        if entry.is_dir():
            if not entry.name.isidentifier():
                continue
            if (Path(entry.path) / "__init__.py").is_file():
                found.setdefault(entry.name, Provider(entry.path))
            else:
                children = _namespace_children(Path(entry.path))
                if children:
                    found.setdefault(entry.name, Provider(entry.path, True, children))
        elif entry.is_file():
            name = _module_name(entry.name)
            if name is not None:
                found.setdefault(name, Provider(entry.path))
    return found


def base_path(app_dir: str) -> list[str]:
    """The path a generation imports from before any release: APP_DIR first, then the server's sys.path.

    Release directories already on sys.path (async mode serves in this process) are left out: the
    caller adds the releases it means, in their order.
    """
    first = os.path.abspath(app_dir)
    rest = [os.path.abspath(entry or os.curdir) for entry in sys.path]
    return [first, *(entry for entry in rest if not Path(entry).is_relative_to(first))]


def _server_modules(exclude: Path) -> dict[str, Provider]:
    """Top-level modules this process has imported already (not counting app code under ``exclude``)."""
    found: dict[str, Provider] = {name: Provider("built into Python") for name in sys.builtin_module_names}
    for name, module in list(sys.modules.items()):
        if "." in name or name == "__main__" or name in found:
            continue
        origin = getattr(module, "__file__", None)
        if isinstance(origin, str) and Path(origin).resolve().is_relative_to(exclude):
            continue
        found[name] = Provider(f"already imported by the server ({origin or 'built in'})")
    return found


def earlier_providers(path: Iterable[str], exclude: Path) -> dict[str, Provider]:
    """Who provides each top-level name before a release appended after ``path``."""
    providers = _server_modules(exclude)
    for entry in path:
        for name, provider in top_level(entry).items():
            known = providers.get(name)
            if known is None:
                providers[name] = provider
            elif known.namespace and provider.namespace:
                providers[name] = Provider(known.where, True, known.children | provider.children)
            elif known.namespace:
                providers[name] = provider  # a regular module wins over namespace portions
    return providers


def clashes(release: str | Path, providers: dict[str, Provider]) -> list[str]:
    """One line per top-level name of ``release`` that a provider would shadow or be shadowed by."""
    found = []
    for name, mine in top_level(release).items():
        theirs = providers.get(name)
        if theirs is None:
            continue
        if mine.namespace and theirs.namespace:
            common = sorted(mine.children & theirs.children)
            if common:
                found.append(f"'{name}.{common[0]}' is also in {theirs.where}")
        else:
            found.append(f"'{name}' is also {theirs.where}")
    return found


def clash_reason(clashed: Sequence[str]) -> str:
    shown = "; ".join(clashed[:5]) + (f"; and {len(clashed) - 5} more" if len(clashed) > 5 else "")
    return (
        f"module clash: {shown}. Two apps cannot share a top-level module in one server; "
        "rename the module in the repository (or move it into a package of its own)"
    )


def mount_deployed(
    app_dir: str, deployed: Sequence[Deployed], taken_routes: Collection[str]
) -> tuple[dict[str, str], dict[str, str]]:
    """Append each deployed release to sys.path in order, unless it cannot be served as itself.

    Returns (route -> entry for the releases now importable, route -> why not for the others).  A release
    whose route is in ``taken_routes`` is left out altogether (logged): the configured app keeps its route.
    """
    path = base_path(app_dir)
    exclude = Path(app_dir).resolve()
    mounted: dict[str, str] = {}
    refused: dict[str, str] = {}
    for app in deployed:
        if app.route in taken_routes:
            server_log.error(
                "Deployed app %s is not served: its route %s is also in APPS; undeploy it or change APPS",
                app.name,
                app.route,
            )
            continue
        if not Path(app.path).is_dir():
            refused[app.route] = f"the release directory {app.path} is missing"
            continue
        clashed = clashes(app.path, earlier_providers(path, exclude))
        if clashed:
            refused[app.route] = clash_reason(clashed)
            continue
        path.append(app.path)
        if app.path not in sys.path:
            sys.path.append(app.path)
        mounted[app.route] = app.entry
    importlib.invalidate_caches()
    return mounted, refused
