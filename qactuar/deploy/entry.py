"""Which ``module:attr`` of a cloned repository is the ASGI app.

In order: the operator's ``--entry``; ``[tool.qactuar] app = "module:attr"`` in the repository's
``pyproject.toml``; the first of the common layouts whose module exists (``app.py`` or ``app/`` ->
``app:app``, ``main:app``, ``asgi:application``).  Only files are looked at here -- nothing of the
repository is imported in the master; whether the attribute exists and is an app is the import check's
business.  A miss lists every place that was tried, so the operator knows what to add.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from qactuar.deploy.errors import DeployError
from qactuar.deploy.urls import check_entry

COMMON_ENTRIES = ("app:app", "main:app", "asgi:application")
MAX_PYPROJECT = 1024 * 1024


def module_exists(root: Path, module: str) -> bool:
    """True when ``module`` (dotted) is a .py file or a package directory under ``root``."""
    path = root.joinpath(*module.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _from_pyproject(root: Path) -> str | None:
    path = root / "pyproject.toml"
    if not path.is_file() or path.is_symlink():
        return None
    try:
        if path.stat().st_size > MAX_PYPROJECT:
            raise DeployError(f"pyproject.toml is larger than {MAX_PYPROJECT} bytes")
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise DeployError(f"the repository's pyproject.toml cannot be read: {exc}") from None
    tool = data.get("tool")
    section = tool.get("qactuar") if isinstance(tool, dict) else None
    value = section.get("app") if isinstance(section, dict) else None
    if value is None:
        return None
    if not isinstance(value, str):
        raise DeployError(f"[tool.qactuar] app in pyproject.toml must be a string, not {value!r:.60}")
    return check_entry(value)


def find_entry(root: Path, given: str) -> str:
    """The entry point of the repository checked out at ``root``; DeployError listing what was tried."""
    if given:
        return check_entry(given)
    configured = _from_pyproject(root)
    if configured is not None:
        return configured
    for entry in COMMON_ENTRIES:
        if module_exists(root, entry.partition(":")[0]):
            return entry
    tried = ", ".join(f"{entry} ({entry.partition(':')[0]}.py)" for entry in COMMON_ENTRIES)
    raise DeployError(
        "no entry point found: tried --entry (not given), [tool.qactuar] app in pyproject.toml "
        f"(not set), then {tried}; give --entry module:attr or set [tool.qactuar] app"
    )
