"""Real git repositories made in the test, servers configured for deploys, and ways to observe them.

``GitRepo`` is a bare repository (what a deploy clones, by ``file://`` URL) plus a work tree to commit
to.  ``GitLog`` is a wrapper around the real git binary that records each invocation; a server started
with ``GIT_PYTHON_GIT_EXECUTABLE`` pointing at it proves whether git ever ran.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from server_process import ServerProcess

from qactuar.admin.client import SyncAdminClient, locate
from qactuar.config import load_config

StartServer = Callable[..., ServerProcess]

APP_VERSIONED = """
import asyncio

VERSION = {version!r}


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            kind = message["type"].rsplit(".", 1)[-1]
            await send({{"type": message["type"] + ".complete"}})
            if kind == "shutdown":
                return
    if scope["type"] != "http":
        return
    if scope["path"].endswith("/slow"):
        await asyncio.sleep(1.5)
    body = (VERSION + (" slow" if scope["path"].endswith("/slow") else "")).encode()
    headers = [(b"content-type", b"text/plain")]
    await send({{"type": "http.response.start", "status": 200, "headers": headers}})
    await send({{"type": "http.response.body", "body": body}})
"""

STATIC_APP = """
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"other"})
"""

GIT_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.invalid",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.invalid",
}


def git(*args: str, cwd: Path) -> str:
    result = subprocess.run(
        ["git", *args],
        cwd=cwd,
        env={**os.environ, **GIT_ENV},
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


class GitRepo:
    """A bare repository served by a file:// URL, and a work tree that commits and pushes to it."""

    def __init__(self, root: Path, name: str) -> None:
        self.bare = root / f"{name}.git"
        self.work = root / f"{name}-work"
        git("init", "--quiet", "--bare", "--initial-branch=main", str(self.bare), cwd=root)
        git("init", "--quiet", "--initial-branch=main", str(self.work), cwd=root)
        git("remote", "add", "origin", str(self.bare), cwd=self.work)

    @property
    def url(self) -> str:
        return self.bare.as_uri()

    def commit(self, files: dict[str, str | bytes], message: str = "change") -> str:
        """Write ``files`` (path -> content), commit, push; the new commit id."""
        for relative, content in files.items():
            path = self.work / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content)
        git("add", "--all", cwd=self.work)
        git("commit", "--quiet", "-m", message, cwd=self.work)
        git("push", "--quiet", "origin", "HEAD:main", cwd=self.work)
        return git("rev-parse", "HEAD", cwd=self.work)

    def tag(self, name: str) -> None:
        git("tag", name, cwd=self.work)
        git("push", "--quiet", "origin", name, cwd=self.work)


def versioned_repo(root: Path, name: str, version: str = "v1") -> tuple[GitRepo, str]:
    repo = GitRepo(root, name)
    return repo, repo.commit({"app.py": APP_VERSIONED.format(version=version)}, version)


class GitLog:
    """A git executable that appends its arguments to a file, then runs the real git."""

    def __init__(self, folder: Path) -> None:
        self.log = folder / "git-invocations.log"
        self.executable = folder / "logging-git"
        real = subprocess.run(["which", "git"], capture_output=True, text=True, check=True).stdout.strip()
        self.executable.write_text(f'#!/bin/sh\necho "$*" >> {self.log}\nexec {real} "$@"\n')
        self.executable.chmod(self.executable.stat().st_mode | stat.S_IXUSR)

    @property
    def env(self) -> dict[str, str]:
        return {"GIT_PYTHON_GIT_EXECUTABLE": str(self.executable)}

    def invocations(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []


def app_dir(root: Path) -> Path:
    """An APP_DIR with one configured app, ``other:app`` (answers "other")."""
    folder = root / "apps"
    folder.mkdir()
    (folder / "other.py").write_text(STATIC_APP)
    return folder


def deploy_settings(apps: Path, **extra: Any) -> dict[str, Any]:
    return {"app_dir": str(apps), "deploy_allowed_schemes": ["file"], **extra}


def admin(server: ServerProcess, timeout: float | None = 60) -> SyncAdminClient:
    config = load_config(config_file=str(server.config_path), env={})
    return SyncAdminClient(locate(config), timeout=timeout)


def tree(folder: Path) -> list[str]:
    """Every path under ``folder``, relative and sorted: what a failed deploy must leave as it was."""
    return sorted(
        str(path.relative_to(folder)) for path in folder.rglob("*") if "__pycache__" not in path.parts
    )


def records(apps: Path) -> Any:
    path = apps / ".qactuar-deployments.json"
    return json.loads(path.read_text()) if path.exists() else None


class BlackHole:
    """A TCP server that accepts connections and never answers: a clone from it hangs until killed."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()
