"""The import check: a deployed app is imported, and its lifespan started, in a throwaway process first.

Importing an app runs the repository's code, so the master never does it (a hostile or broken app could
take the console down, or read the admin token from the master's memory).  ``verify_release`` starts a
fresh interpreter (``python -I``: no inherited ``PYTHON*`` settings, no working directory on the path) with
exactly the ``sys.path`` a generation will have once the release is mounted, and this module's ``main``
runs in it:

1. The entry module is imported.  When that fails because a module is missing that the repository does
   not provide itself -- a package that is not installed -- a stand-in module is put in its place and the
   import is tried again, so one attempt names every missing package, not only the first.
2. The app is loaded the way a generation loads it (``import_app``: attribute, factory, ASGI check).
3. Its lifespan startup runs (with LIFESPAN and the startup timeout the server uses), then its shutdown:
   an app whose startup fails is refused before a generation would have to serve it as a 503.

The child reports one small JSON object on its original stdout (the app's own prints go to stderr, which
is kept in the staging directory; its last lines explain a crash).  The child runs in a session of its
own and is killed with its process group when the time is up.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import os
import signal
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Any

from qactuar.deploy.errors import DeployError, plain_text

MAX_STAND_INS = 50
MAX_ERROR = 16_000
BOOT = (
    "import json, sys; request = json.load(sys.stdin); sys.path[:] = request['path']; "
    "from qactuar.deploy.verify import main; sys.exit(main(request))"
)


# --- in the throwaway process ------------------------------------------------------------------------------


class _AbsentBase:
    """What a class deriving from a missing package's class derives from instead."""


class _Absent:
    """Stands in for anything a missing module would have provided, so the import can go on."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __call__(self, *args: Any, **kwargs: Any) -> _Absent:
        return _Absent()

    def __getattr__(self, name: str) -> _Absent:
        return _Absent()

    def __iter__(self) -> Any:
        return iter(())

    def __mro_entries__(self, bases: tuple[Any, ...]) -> tuple[type, ...]:
        return (_AbsentBase,)


def _stand_in(name: str) -> types.ModuleType:
    module = types.ModuleType(name, "stands in for a module that is not installed")
    module.__path__ = []  # a package: its submodules are stood in for as they are asked for
    module.__getattr__ = lambda attr: _Absent()  # type: ignore[method-assign]
    return module


def _provided(release: str, name: str) -> bool:
    root = Path(release, name)
    return root.with_suffix(".py").is_file() or root.is_dir()


def missing_modules(module: str, release: str) -> list[str]:
    """Import ``module``; the top-level names of the modules it needs that are not installed."""
    missing: list[str] = []
    before = set(sys.modules)
    for _ in range(MAX_STAND_INS):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            name = exc.name or ""
            top = name.partition(".")[0]
            if not top or _provided(release, top) or name in sys.modules:
                break  # the repository's own module, or no progress: the real import reports it
            if top not in missing:
                missing.append(top)
            for loaded in set(sys.modules) - before:
                if loaded.partition(".")[0] not in missing:
                    del sys.modules[loaded]
            sys.modules[name] = _stand_in(name)
            continue
        except BaseException:
            pass  # any other failure: the real import reports it, with its message
        break
    for name in set(sys.modules) - before:  # the real import starts afresh
        del sys.modules[name]
    return missing


async def _lifespan(app: Any, entry: str, request: dict[str, Any]) -> str | None:
    from qactuar.apps.router import Mount
    from qactuar.apps.table import AppTable

    table = AppTable([Mount("/", entry, app)])
    await table.startup(
        mode=request["lifespan"],
        startup_timeout=request["startup_timeout"],
        shutdown_timeout=request["shutdown_timeout"],
    )
    error = table.mounts[0].error
    await table.shutdown()
    return error


def check(request: dict[str, Any]) -> dict[str, Any]:
    """Import the app of ``request`` and run its lifespan; ``{"ok": ..., "error": ..., "missing": [...]}``."""
    from qactuar.apps.loader import AppImportError, import_app

    entry: str = request["entry"]
    missing = missing_modules(entry.partition(":")[0], request["release"])
    if missing:
        return {
            "ok": False,
            "error": "the app needs modules that are not installed: " + ", ".join(missing),
            "missing": missing,
        }
    try:
        app = import_app(entry, factory=request["factory"])
    except AppImportError as exc:
        return {"ok": False, "error": str(exc)[:MAX_ERROR], "missing": []}
    error = asyncio.run(_lifespan(app, entry, request))
    if error:
        return {"ok": False, "error": error[:MAX_ERROR], "missing": []}
    return {"ok": True, "error": "", "missing": []}


def main(request: dict[str, Any]) -> int:
    """The throwaway process: report ``check``'s answer on the original stdout, app output on stderr."""
    report = os.dup(1)
    os.dup2(2, 1)
    result = check(request)
    with os.fdopen(report, "w", encoding="utf-8") as out:
        json.dump(result, out)
    return 0


# --- in the master -----------------------------------------------------------------------------------------


def _tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_bytes()[-4000:].decode("utf-8", "replace")
    except OSError:
        return ""
    return " | ".join(plain_text(line) for line in text.strip().splitlines()[-lines:])


async def verify_release(
    release: Path,
    entry: str,
    *,
    path: list[str],
    factory: bool,
    lifespan: str,
    startup_timeout: float,
    shutdown_timeout: float,
    log_file: Path,
) -> None:
    """Import ``entry`` from ``release`` (last on ``path``) in a throwaway process; DeployError on failure."""
    request = {
        "path": path,
        "release": str(release),
        "entry": entry,
        "factory": factory,
        "lifespan": lifespan,
        "startup_timeout": startup_timeout,
        "shutdown_timeout": shutdown_timeout,
    }
    timeout = 2 * startup_timeout + shutdown_timeout + 10.0
    with open(log_file, "wb") as log:
        child = subprocess.Popen(
            [sys.executable, "-I", "-c", BOOT],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            start_new_session=True,
        )
    assert child.stdin is not None and child.stdout is not None
    try:
        child.stdin.write(json.dumps(request).encode("utf-8"))
        child.stdin.close()
        deadline = time.monotonic() + timeout
        while child.poll() is None:
            if time.monotonic() > deadline:
                raise DeployError(f"importing the app did not finish within {timeout:g} s")
            await asyncio.sleep(0.05)
        output = child.stdout.read()
    finally:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.pid, signal.SIGKILL)
        child.wait()
        child.stdout.close()
    try:
        result = json.loads(output)
    except ValueError:
        result = None
    if not isinstance(result, dict):
        why = f"exit status {child.returncode}" if child.returncode >= 0 else f"signal {-child.returncode}"
        raise DeployError(f"importing the app crashed the process ({why}): {_tail(log_file) or 'no output'}")
    if not result.get("ok"):
        raise DeployError(str(result.get("error") or "the import check failed"))
