"""The deploy pipeline against a stand-in host: every failure undoes what it did, success keeps releases."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from deploy_support import APP_VERSIONED, GitRepo, records, tree, versioned_repo

from qactuar.config import Config
from qactuar.deploy.deployer import Deployer
from qactuar.deploy.errors import DeployError
from qactuar.deploy.records import Deployed


class StandInHost:
    """Records what the deployer asks; ``fail`` makes the next switch fail like a generation that died."""

    def __init__(self, apps: Path, **settings: Any) -> None:
        self.config = Config(APP_DIR=str(apps), DEPLOY_ALLOWED_SCHEMES=["file"], **settings)
        self.deployed: tuple[Deployed, ...] = ()
        self.fail = ""
        self.stopping = False
        self.switches: list[tuple[str, ...]] = []

    def app_rows(self) -> list[dict[str, Any]]:
        return [{"route": app.route, "state": "loaded", "source": "git"} for app in self.deployed]

    async def apply_deployments(self, deployed: tuple[Deployed, ...], must_load: frozenset[str]) -> bool:
        self.switches.append(tuple(app.release for app in deployed))
        if self.fail:
            return False
        self.deployed = deployed
        return True

    def apply_failure(self) -> str:
        return self.fail

    async def retired(self) -> None:
        pass


@pytest.fixture
def apps(tmp_path: Path) -> Path:
    folder = tmp_path / "apps"
    folder.mkdir()
    return folder


def events_of(deployer: Deployer) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    deployer.subscribe(seen.append)
    return seen


async def test_deploy_update_rollback_undeploy(tmp_path: Path, apps: Path) -> None:
    host = StandInHost(apps, DEPLOY_KEEP_RELEASES=2)
    deployer = Deployer(host)
    seen = events_of(deployer)
    repo, first = versioned_repo(tmp_path, "blog")
    row = await deployer.deploy(repo.url, "/blog")
    assert row["name"] == "blog" and row["commit"] == first and row["state"] == "live"
    stages = [event["stage"] for event in seen]
    assert stages[0] == "validating" and stages[-3:] == ["verifying", "starting", "live"]
    assert any(event["stage"] == "cloning" and event["progress"] == 1.0 for event in seen)
    assert all(set(event) == {"name", "stage", "message", "progress"} for event in seen)
    assert (apps / "blog" / "current").resolve() == Path(host.deployed[0].path)
    assert list((apps / ".qactuar-staging").iterdir()) == []

    second = repo.commit({"app.py": APP_VERSIONED.format(version="v2")})
    assert (await deployer.update("blog"))["commit"] == second
    third = repo.commit({"app.py": APP_VERSIONED.format(version="v3")})
    updated = await deployer.update("blog")
    assert updated["commit"] == third
    await asyncio.sleep(0)  # the pruning of the oldest release runs once the old generation retired
    await deployer.close()
    kept = sorted(path.name for path in (apps / "blog" / "releases").iterdir())
    assert len(kept) == 2 and kept[-1] == updated["release"]

    rolled = await deployer.rollback("blog")
    assert rolled["commit"] == second and host.deployed[0].commit == second
    with pytest.raises(DeployError, match="no release before the live one"):
        await deployer.rollback("blog")
    assert deployer.deployments()[0]["commit"] == second

    assert await deployer.undeploy("blog") == {"name": "blog", "state": "removed"}
    assert not (apps / "blog").exists()
    assert records(apps) == {"version": 1, "apps": []}
    assert host.deployed == ()


async def test_a_failed_switch_leaves_nothing_behind(tmp_path: Path, apps: Path) -> None:
    host = StandInHost(apps)
    deployer = Deployer(host)
    seen = events_of(deployer)
    repo, _ = versioned_repo(tmp_path, "blog")
    before = tree(apps)
    host.fail = "generation 2 failed: /blog: lifespan startup failed"
    with pytest.raises(
        DeployError, match="did not start: generation 2 failed: /blog: lifespan startup failed"
    ):
        await deployer.deploy(repo.url, "/blog")
    assert tree(apps) == [*before, ".qactuar-staging"]
    assert records(apps) is None
    assert seen[-1]["stage"] == "failed"

    host.fail = ""
    await deployer.deploy(repo.url, "/blog")
    snapshot, stored = tree(apps), records(apps)
    host.fail = "generation 3 failed"
    repo.commit({"app.py": APP_VERSIONED.format(version="v2")})
    with pytest.raises(DeployError, match="generation 3 failed"):
        await deployer.update("blog")
    assert (tree(apps), records(apps)) == (snapshot, stored)


async def test_one_operation_per_app_at_a_time(tmp_path: Path, apps: Path) -> None:
    deployer = Deployer(StandInHost(apps))
    repo, _ = versioned_repo(tmp_path, "blog")
    first = asyncio.ensure_future(deployer.deploy(repo.url, "/blog"))
    await asyncio.sleep(0)
    with pytest.raises(DeployError, match=r"blog is busy \(deploying\)"):
        await deployer.deploy(repo.url, "/other", name="blog")
    assert (await first)["state"] == "live"


async def test_conflicts_are_refused_before_cloning(tmp_path: Path, apps: Path) -> None:
    host = StandInHost(apps, APPS={"/api": "api:app"})
    deployer = Deployer(host)
    repo, _ = versioned_repo(tmp_path, "blog")
    (apps / "hello").mkdir()
    with pytest.raises(DeployError, match="route /api is already mounted by APPS"):
        await deployer.deploy(repo.url, "/api")
    with pytest.raises(DeployError, match="exists and is not a deployed app"):
        await deployer.deploy(repo.url, "/hello", name="hello")
    await deployer.deploy(repo.url, "/api/v2")  # a distinct longer route is fine
    with pytest.raises(DeployError, match="deployed already; use update"):
        await deployer.deploy(repo.url, "/x", name="blog")
    with pytest.raises(DeployError, match="route /api/v2 is already mounted by the deployed app blog"):
        await deployer.deploy(repo.url, "/api/v2", name="blog2")
    with pytest.raises(DeployError, match="no app named nope is deployed"):
        await deployer.update("nope")
    assert not (apps / ".qactuar-staging").exists() or list((apps / ".qactuar-staging").iterdir()) == []


async def test_a_clash_with_a_deployed_app_is_refused(tmp_path: Path, apps: Path) -> None:
    deployer = Deployer(StandInHost(apps))
    one, _ = versioned_repo(tmp_path, "one")
    two = GitRepo(tmp_path, "two")
    two.commit({"app.py": APP_VERSIONED.format(version="two")})
    await deployer.deploy(one.url, "/one")
    with pytest.raises(DeployError, match=r"module clash: 'app' is also .*/one/releases/.*/app\.py"):
        await deployer.deploy(two.url, "/two")
    assert not (apps / "two").exists()
