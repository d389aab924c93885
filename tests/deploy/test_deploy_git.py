"""Cloning real repositories through GitPython: refs, limits, progress, and what a release may contain."""

from __future__ import annotations

import os
import time
from pathlib import Path

import psutil
import pytest
from deploy_support import BlackHole, GitRepo

from qactuar.deploy.errors import DeployError
from qactuar.deploy.git import Cloned, Limits, clone

FILE_ONLY = Limits(schemes=("file",), hosts_restricted=False, timeout=20.0, max_bytes=50_000_000)


async def clone_into(
    tmp_path: Path, url: str, ref: str = "", limits: Limits = FILE_ONLY
) -> tuple[Cloned, Path]:
    dest = tmp_path / "stage" / "tree"
    dest.parent.mkdir(exist_ok=True)
    return await clone(url, dest, ref=ref, limits=limits, report=lambda message, fraction: None), dest


async def test_default_branch_is_cloned_without_its_git_directory(tmp_path: Path) -> None:
    repo = GitRepo(tmp_path, "site")
    commit = repo.commit({"app.py": "app = 1\n", "pkg/__init__.py": ""})
    seen: list[tuple[str, float | None]] = []
    dest = tmp_path / "tree"
    cloned = await clone(repo.url, dest, ref="", limits=FILE_ONLY, report=lambda m, f: seen.append((m, f)))
    assert cloned == Cloned(commit=commit, ref="main")
    assert sorted(path.name for path in dest.iterdir()) == ["app.py", "pkg"]
    assert any(message.startswith("receiving objects") and fraction == 1.0 for message, fraction in seen)


async def test_branch_tag_and_commit(tmp_path: Path) -> None:
    repo = GitRepo(tmp_path, "site")
    first = repo.commit({"app.py": "version = 1\n"})
    repo.tag("v1")
    second = repo.commit({"app.py": "version = 2\n"})
    for number, (ref, commit, text) in enumerate(
        [("main", second, "2"), ("v1", first, "1"), (first[:9], first, "1")]
    ):
        (tmp_path / str(number)).mkdir()
        cloned, dest = await clone_into(tmp_path / str(number), repo.url, ref)
        assert (cloned.commit, cloned.ref) == (commit, ref)
        assert (dest / "app.py").read_text() == f"version = {text}\n"


async def test_unknown_branch_and_commit_fail_with_git_s_reason(tmp_path: Path) -> None:
    repo = GitRepo(tmp_path, "site")
    repo.commit({"app.py": ""})
    with pytest.raises(DeployError, match=r"git failed .*nope.* not found"):
        await clone_into(tmp_path, repo.url, "nope")
    (tmp_path / "again").mkdir()
    with pytest.raises(DeployError, match="commit abcdef1 cannot be resolved"):
        await clone_into(tmp_path / "again", repo.url, "abcdef1")


async def test_git_itself_refuses_a_protocol_that_is_not_allowed(tmp_path: Path) -> None:
    repo = GitRepo(tmp_path, "site")
    repo.commit({"app.py": ""})
    https_only = Limits(schemes=("https",), hosts_restricted=False, timeout=20.0, max_bytes=50_000_000)
    with pytest.raises(DeployError, match="transport 'file' not allowed"):
        await clone_into(tmp_path, repo.url, limits=https_only)


async def test_a_clone_over_the_size_limit_is_stopped(tmp_path: Path) -> None:
    repo = GitRepo(tmp_path, "big")
    repo.commit({"app.py": "", "blob.bin": os.urandom(4 * 1024 * 1024)})
    small = Limits(schemes=("file",), hosts_restricted=False, timeout=20.0, max_bytes=1024 * 1024)
    with pytest.raises(DeployError, match=r"grew past DEPLOY_MAX_BYTES \(\d+ > 1048576 bytes\)"):
        await clone_into(tmp_path, repo.url, limits=small)


async def test_a_clone_that_hangs_is_killed_at_the_time_limit(tmp_path: Path) -> None:
    hole = BlackHole()
    slow = Limits(schemes=("http",), hosts_restricted=False, timeout=1.0, max_bytes=50_000_000)
    started = time.monotonic()
    try:
        with pytest.raises(DeployError, match=r"did not finish within DEPLOY_TIMEOUT \(1 s\)"):
            await clone_into(tmp_path, f"http://127.0.0.1:{hole.port}/repo.git", limits=slow)
    finally:
        hole.close()
    assert time.monotonic() - started < 5
    leftovers = [p for p in psutil.Process().children(recursive=True) if "git" in " ".join(p.cmdline())]
    assert leftovers == []


async def test_a_symlink_out_of_the_repository_is_refused(tmp_path: Path) -> None:
    repo = GitRepo(tmp_path, "links")
    (repo.work / "inside.txt").write_text("x")
    (repo.work / "ok").symlink_to("inside.txt")
    (repo.work / "passwd").symlink_to("/etc/passwd")
    repo.commit({"app.py": ""})
    with pytest.raises(DeployError, match="symbolic link pointing outside it: passwd -> /etc/passwd"):
        await clone_into(tmp_path, repo.url)
