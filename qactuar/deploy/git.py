"""The only module that imports GitPython: clone one ref of a repository, under a time and a size limit.

GitPython runs git and parses its progress, but it is not the security boundary (its advisories show a
blocklist inside a wrapper never is), and its ``clone_from`` enforces no time limit (GitPython#892).  So:

- The argv is fixed here.  The URL and ref were checked by ``urls.py``; the URL comes after ``--`` and
  the ref is ``--branch=<ref>`` or a full commit id git resolved itself; nothing else a user typed gets in.
- Every git call runs with ``-c protocol.allow=never`` plus ``protocol.<scheme>.allow=always`` for the
  allowed schemes only (and ``GIT_ALLOW_PROTOCOL``, which git ranks above config); no system or global
  config (``GIT_CONFIG_NOSYSTEM``, ``GIT_CONFIG_GLOBAL=/dev/null``, no ``GIT_CONFIG_PARAMETERS``); no
  templates and ``core.hooksPath=/dev/null`` (no hook can run); ``core.fsmonitor=false`` and
  ``safe.bareRepository=explicit`` (an embedded bare repository cannot run anything);
  ``transfer.fsckObjects`` (malformed objects are refused); no submodules; no LFS smudge; no prompts
  (``GIT_TERMINAL_PROMPT=0``, no askpass, ssh in batch mode); no redirects when DEPLOY_ALLOWED_HOSTS is
  set, so a redirect cannot lead to another host.
- Git runs in a session of its own; while it runs, the event loop reads its progress without blocking
  and, every 0.1 s, checks the wall clock (DEPLOY_TIMEOUT) and the bytes on disk under the destination
  (DEPLOY_MAX_BYTES, counted in allocated blocks so that many small files count too).  Past either, the
  whole process group is killed.  Cancelling the coroutine kills it too.
- A branch or tag is cloned with ``--depth=1 --single-branch``.  A commit id needs history: the clone is
  full (``--no-checkout``), GitPython resolves the id, and git checks that commit out, under the same
  limits.  The ``.git`` directory is deleted afterwards: a release is plain files, and none of them
  may be a symbolic link that leads out of the release.
- Git's output is hostile text (CVE-2024-52005): control characters and escape sequences are removed
  before any of it reaches a log, an event or an error message.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from git import Git, RemoteProgress, Repo
from git.exc import BadName, BadObject, GitError

from qactuar.deploy.errors import DeployError, plain_text
from qactuar.deploy.urls import COMMIT_RE

Progress = Callable[[str, float | None], None]  # (what git is doing, fraction done or None)

POLL_INTERVAL = 0.1
KEPT_LINES = 20
_SAFE_CONFIG = (
    "protocol.allow=never",
    "core.hooksPath=/dev/null",
    "core.fsmonitor=false",
    "safe.bareRepository=explicit",
    "submodule.recurse=false",
    "credential.helper=",
    "init.templateDir=",
    "transfer.fsckObjects=true",
    "advice.detachedHead=false",
)
_OPERATIONS = {
    RemoteProgress.COUNTING: "counting objects",
    RemoteProgress.COMPRESSING: "compressing objects",
    RemoteProgress.RECEIVING: "receiving objects",
    RemoteProgress.RESOLVING: "resolving deltas",
    RemoteProgress.FINDING_SOURCES: "finding sources",
    RemoteProgress.CHECKING_OUT: "checking out files",
}


@dataclass(frozen=True, slots=True)
class Limits:
    schemes: tuple[str, ...]
    hosts_restricted: bool
    timeout: float  # seconds, for the clone and any checkout together
    max_bytes: int


@dataclass(frozen=True, slots=True)
class Cloned:
    commit: str  # full commit id
    ref: str  # the ref given, or the default branch's name when none was


class _Progress(RemoteProgress):
    """GitPython's parser of git's progress lines, reporting to a callback."""

    def __init__(self, report: Progress) -> None:
        super().__init__()
        self.report = report

    def update(
        self, op_code: int, cur_count: str | float, max_count: str | float | None = None, message: str = ""
    ) -> None:
        operation = _OPERATIONS.get(op_code & RemoteProgress.OP_MASK, "working")
        fraction = None
        if isinstance(cur_count, float) and isinstance(max_count, float) and max_count > 0:
            fraction = min(1.0, cur_count / max_count)
            operation = f"{operation} {cur_count:.0f}/{max_count:.0f}"
        self.report(operation, fraction)


def _config_args(limits: Limits) -> list[str]:
    settings = [*_SAFE_CONFIG, *(f"protocol.{scheme}.allow=always" for scheme in limits.schemes)]
    if limits.hosts_restricted:
        settings.append("http.followRedirects=false")
    return [arg for setting in settings for arg in ("-c", setting)]


def _environment(limits: Limits, git_dir: Path | None = None) -> dict[str, str]:
    """Overrides of the inherited environment for every git call (GitPython merges them into os.environ)."""
    env = {
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ASKPASS": "",
        "SSH_ASKPASS": "",
        "GIT_SSH_COMMAND": "ssh -o BatchMode=yes",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_COUNT": "0",
        "GIT_CONFIG_PARAMETERS": "",
        "GIT_ALLOW_PROTOCOL": ":".join(limits.schemes),
        "GIT_PROTOCOL_FROM_USER": "0",
        "GIT_LFS_SKIP_SMUDGE": "1",
        "GIT_TEMPLATE_DIR": "",
    }
    if git_dir is not None:  # never a GIT_DIR inherited from whoever started the server
        env.update(GIT_DIR=str(git_dir), GIT_WORK_TREE=str(git_dir.parent))
    return env


def disk_usage(path: Path) -> int:
    """Bytes allocated under ``path`` (files, directories, links; symlinks are not followed)."""
    total = 0
    stack = [path]
    while stack:
        try:
            with os.scandir(stack.pop()) as entries:
                for entry in entries:
                    with contextlib.suppress(OSError):
                        total += entry.stat(follow_symlinks=False).st_blocks * 512
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(Path(entry.path))
        except OSError:
            continue
    return total


class _Run:
    """One supervised git process: progress read on the event loop, killed at the time or size limit."""

    def __init__(self, argv: Sequence[str], cwd: Path, env: dict[str, str], report: Progress) -> None:
        handle = Git(str(cwd)).execute(
            list(argv), as_process=True, with_stdout=False, env=env, start_new_session=True
        )
        popen = handle.proc
        assert popen is not None and popen.stderr is not None
        self.handle = handle  # GitPython's wrapper, kept until the process has been waited for
        self.popen = popen
        self.stderr = popen.stderr
        self.progress = _Progress(report)
        self.pending = b""
        os.set_blocking(self.stderr.fileno(), False)
        asyncio.get_running_loop().add_reader(self.stderr.fileno(), self._read)

    def _read(self) -> None:
        try:
            chunk = os.read(self.stderr.fileno(), 65536)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        self._feed(chunk)

    def _feed(self, chunk: bytes) -> None:
        """Parse the complete lines (git ends progress lines with CR) of what git wrote; b"" is the end."""
        if not chunk:
            self._stop_reading()
        *lines, self.pending = re.split(rb"[\r\n]", self.pending + (chunk or b"\n"))
        progress = self.progress
        for raw in lines:
            line = plain_text(raw.decode("utf-8", "replace")).strip()
            if line:
                progress._parse_progress_line(line)
        del progress.other_lines[:-KEPT_LINES], progress.error_lines[:-KEPT_LINES]

    def _stop_reading(self) -> None:
        with contextlib.suppress(ValueError, OSError):
            asyncio.get_running_loop().remove_reader(self.stderr.fileno())

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)

    async def finish(self, deadline: float, timeout: float, watch: Path, max_bytes: int) -> None:
        """Wait for git to exit within the limits; DeployError when it failed or a limit stopped it."""
        try:
            while self.popen.poll() is None:
                if time.monotonic() > deadline:
                    raise DeployError(f"git did not finish within DEPLOY_TIMEOUT ({timeout:g} s); stopped")
                _check_size(watch, max_bytes)
                await asyncio.sleep(POLL_INTERVAL)
            while chunk := _read_some(self.stderr.fileno()):
                self._feed(chunk)
            self._feed(b"")
            _check_size(watch, max_bytes)
        except BaseException:
            self.kill()
            await _reaped(self.popen)
            raise
        finally:
            self._stop_reading()
            self.stderr.close()
        if self.popen.returncode != 0:
            said = self.progress.error_lines[-2:] or self.progress.other_lines[-2:] or ["no message"]
            raise DeployError(f"git failed (exit status {self.popen.returncode}): {'; '.join(said)}")


def _read_some(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError:  # BlockingIOError included: nothing more to read
        return b""


def _check_size(watch: Path, max_bytes: int) -> None:
    used = disk_usage(watch)
    if used > max_bytes:
        raise DeployError(f"the clone grew past DEPLOY_MAX_BYTES ({used} > {max_bytes} bytes); stopped")


async def _reaped(popen: subprocess.Popen[bytes]) -> None:
    """Wait (briefly: a killed process exits at once) until a killed child is gone."""
    for _ in range(100):
        if popen.poll() is not None:
            return
        await asyncio.sleep(0.02)


def _git() -> str:
    return str(Git.GIT_PYTHON_GIT_EXECUTABLE or "git")


async def clone(url: str, dest: Path, *, ref: str, limits: Limits, report: Progress) -> Cloned:
    """Clone ``ref`` (a branch, tag or commit; "" = the default branch) of ``url`` into ``dest``.

    ``dest`` must not exist; its parent is where git runs.  On success ``dest`` holds the files of that
    commit and no ``.git``; on failure the caller removes ``dest`` (it may hold a partial clone).
    """
    deadline = time.monotonic() + limits.timeout
    by_commit = bool(COMMIT_RE.fullmatch(ref))
    if by_commit:
        shape = ["--no-checkout"]
    else:
        shape = ["--depth=1", "--single-branch", *([f"--branch={ref}"] if ref else [])]
    argv = [
        _git(),
        *_config_args(limits),
        "clone",
        "--progress",
        "--no-recurse-submodules",
        *shape,
        "--",
        url,
        str(dest),
    ]
    run = _Run(argv, dest.parent, _environment(limits), report)
    await run.finish(deadline, limits.timeout, dest.parent, limits.max_bytes)
    try:
        repo = Repo(str(dest))
        repo.git.update_environment(**_environment(limits, dest / ".git"))  # for GitPython's own git calls
        try:
            if by_commit:
                commit = repo.rev_parse(f"{ref}^{{commit}}").hexsha
                report("checking out " + commit[:12], None)
                checkout = [_git(), *_config_args(limits), "checkout", "--quiet", "--detach", commit, "--"]
                run = _Run(checkout, dest, _environment(limits, dest / ".git"), report)
                await run.finish(deadline, limits.timeout, dest.parent, limits.max_bytes)
            head = repo.head
            cloned = Cloned(head.commit.hexsha, ref or ("" if head.is_detached else head.reference.name))
        finally:
            repo.close()
    except (GitError, BadName, BadObject, ValueError, KeyError) as exc:
        what = f"commit {ref}" if by_commit else "the cloned commit"
        raise DeployError(f"git: {what} cannot be resolved: {plain_text(str(exc))[:300]}") from None
    shutil.rmtree(dest / ".git")
    _refuse_outward_links(dest)
    return cloned


def _refuse_outward_links(root: Path) -> None:
    """DeployError for a symbolic link in the checkout that resolves outside it (or loops)."""
    top = root.resolve()
    for folder, dirs, files in os.walk(root):
        for name in (*dirs, *files):
            path = Path(folder, name)
            if not path.is_symlink():
                continue
            try:
                inside = path.resolve().is_relative_to(top)
            except (OSError, RuntimeError):  # a loop
                inside = False
            if not inside:
                where = f"{path.relative_to(root)} -> {plain_text(os.readlink(path))}"
                raise DeployError(f"the repository has a symbolic link pointing outside it: {where}")
