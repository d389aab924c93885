"""The pipeline's parts on their own: records, entry points, module clashes and the import check."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from qactuar.config import Config
from qactuar.deploy.entry import find_entry
from qactuar.deploy.errors import DeployError
from qactuar.deploy.modules import base_path, clashes, earlier_providers, mount_deployed, top_level
from qactuar.deploy.records import (
    AppRecord,
    Deployed,
    Layout,
    RecordStore,
    Release,
    deployed_set,
    restore_deployments,
    with_sources,
)
from qactuar.deploy.verify import verify_release

COMMIT = "0123456789abcdef0123456789abcdef01234567"
RELEASE = "20250101T000000Z-0123456789ab"


def record(name: str = "blog", route: str = "/blog") -> AppRecord:
    release = Release(RELEASE, COMMIT, "main", "app:app", 1.5)
    return AppRecord(name, route, "file:///srv/blog.git", "", RELEASE, (release,))


def write(root: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


# --- records -----------------------------------------------------------------------------------------------


def test_records_round_trip_and_leave_no_temporary_file(tmp_path: Path) -> None:
    store = RecordStore(Layout(tmp_path))
    assert store.load() == ()
    store.save((record(), record("api", "/api")))
    assert store.load() == (record(), record("api", "/api"))
    assert [path.name for path in tmp_path.iterdir()] == [".qactuar-deployments.json"]


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda app: app.update(name="../etc"), "name is"),
        (lambda app: app.update(current="../../x"), "current is"),
        (lambda app: app["releases"][0].update(release="../x"), "release is"),
        (lambda app: app["releases"][0].update(commit="HEAD"), "commit is"),
        (lambda app: app.update(route="/a/../b"), "route"),
        (lambda app: app.update(current="20250101T000000Z-fffffffffff0"), "not among its releases"),
    ],
)
def test_tampered_records_are_refused(tmp_path: Path, change: object, problem: str) -> None:
    store = RecordStore(Layout(tmp_path))
    store.save((record(),))
    data = json.loads(store.layout.records_file.read_text())
    change(data["apps"][0])  # type: ignore[operator]
    store.layout.records_file.write_text(json.dumps(data))
    with pytest.raises(DeployError, match="are invalid: .*" + problem):
        store.load()


def test_unreadable_records_serve_no_deployed_app(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / ".qactuar-deployments.json").write_text("{not json")
    assert restore_deployments(Config(APP_DIR=str(tmp_path))) == ()
    assert "Deployed apps are not served: the deployment records" in caplog.text


def test_deployed_set_and_sources(tmp_path: Path) -> None:
    (deployed,) = deployed_set(Layout(tmp_path), (record(),))
    assert deployed.path == str(tmp_path.resolve() / "blog" / "releases" / RELEASE)
    rows = with_sources(
        [{"route": "/blog", "state": "loaded"}, {"route": "/", "state": "loaded"}], [deployed]
    )
    assert rows[0]["source"] == "git" and rows[0]["commit"] == COMMIT and rows[0]["release"] == RELEASE
    assert "source" not in rows[1]


# --- entry points ------------------------------------------------------------------------------------------


def test_entry_order(tmp_path: Path) -> None:
    write(tmp_path, {"main.py": "", "asgi.py": ""})
    assert find_entry(tmp_path, "") == "main:app"
    assert find_entry(tmp_path, "asgi:application") == "asgi:application"
    write(tmp_path, {"app/__init__.py": ""})
    assert find_entry(tmp_path, "") == "app:app"
    write(tmp_path, {"pyproject.toml": '[tool.qactuar]\napp = "site.web:make()"\n'})
    assert find_entry(tmp_path, "") == "site.web:make()"


def test_no_entry_lists_what_was_tried(tmp_path: Path) -> None:
    write(tmp_path, {"README.md": "hi", "pyproject.toml": "[project]\nname = 'x'\n"})
    with pytest.raises(DeployError) as caught:
        find_entry(tmp_path, "")
    message = str(caught.value)
    for tried in ("--entry", "[tool.qactuar] app", "app:app (app.py)", "main:app", "asgi:application"):
        assert tried in message


def test_bad_pyproject_entry_is_refused(tmp_path: Path) -> None:
    write(tmp_path, {"pyproject.toml": "[tool.qactuar]\napp = 3\n"})
    with pytest.raises(DeployError, match="must be a string"):
        find_entry(tmp_path, "")


# --- module clashes ----------------------------------------------------------------------------------------


@pytest.fixture
def clean_sys_path() -> Iterator[None]:
    saved = list(sys.path)
    yield
    sys.path[:] = saved


def test_top_level_names(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "app.py": "",
            "pkg/__init__.py": "",
            "tests/test_x.py": "",
            "static/site.css": "",
            "my-scripts/run.py": "",
            ".hidden.py": "",
        },
    )
    found = top_level(tmp_path)
    assert sorted(found) == ["app", "pkg", "tests"]
    assert found["tests"].namespace and found["tests"].children == {"test_x"}
    assert not found["pkg"].namespace


def test_clash_rules(tmp_path: Path) -> None:
    one = write(tmp_path / "one", {"app.py": "", "utils/helpers.py": "", "tests/test_a.py": ""})
    two = write(
        tmp_path / "two", {"app.py": "", "utils/helpers.py": "", "tests/test_b.py": "", "json.py": ""}
    )
    three = write(tmp_path / "three", {"tests/__init__.py": "", "solo.py": ""})
    providers = earlier_providers([str(one)], tmp_path / "nothing")
    found = clashes(two, providers)
    assert any(line.startswith("'app' is also ") and "one/app.py" in line for line in found)
    assert any(line.startswith("'utils.helpers' is also in") for line in found)
    assert any(line.startswith("'json' is also") for line in found)  # the standard library
    assert not any("tests" in line for line in found)  # namespace directories with different files merge
    assert [line.split(" ")[0] for line in clashes(three, providers)] == [
        "'tests'"
    ]  # regular beats namespace


def test_mount_deployed_appends_in_order_and_fails_a_clash(tmp_path: Path, clean_sys_path: None) -> None:
    apps = tmp_path / "apps"
    apps.mkdir()
    first = write(tmp_path / "r1", {"blog_app.py": ""})
    second = write(tmp_path / "r2", {"blog_app.py": ""})
    third = write(tmp_path / "r3", {"shop_app.py": ""})

    def deployed(name: str, route: str, path: Path, entry: str) -> Deployed:
        return Deployed(name, route, entry, str(path), "file:///x", "main", COMMIT, RELEASE)

    mounted, refused = mount_deployed(
        str(apps),
        (
            deployed("a", "/a", first, "blog_app:app"),
            deployed("b", "/b", second, "blog_app:app"),
            deployed("c", "/c", third, "shop_app:app"),
            deployed("d", "/", third, "shop_app:app"),
            deployed("e", "/e", tmp_path / "gone", "x:app"),
        ),
        taken_routes={"/"},
    )
    assert mounted == {"/a": "blog_app:app", "/c": "shop_app:app"}
    assert "module clash: 'blog_app' is also" in refused["/b"]
    assert "is missing" in refused["/e"]
    assert sys.path[-2:] == [str(first), str(third)]
    assert base_path(str(apps))[0] == str(apps)


# --- the import check --------------------------------------------------------------------------------------


async def verify(tmp_path: Path, source: str, entry: str = "app:app") -> None:
    release = write(tmp_path / "release", {"app.py": source})
    await verify_release(
        release,
        entry,
        path=[*base_path(str(tmp_path)), str(release)],
        factory=False,
        lifespan="auto",
        startup_timeout=5.0,
        shutdown_timeout=5.0,
        log_file=tmp_path / "verify.log",
    )


GOOD = "async def app(scope, receive, send):\n    pass\n"


async def test_a_good_app_passes(tmp_path: Path) -> None:
    await verify(tmp_path, "print('noise on stdout')\n" + GOOD)


async def test_every_missing_package_is_named(tmp_path: Path) -> None:
    source = "import not_here_one\nfrom not_here_two.sub import Base\nclass Model(Base): pass\n" + GOOD
    with pytest.raises(DeployError, match=r"modules that are not installed: not_here_one, not_here_two$"):
        await verify(tmp_path, source)


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("raise RuntimeError('config missing')\n", "RuntimeError: config missing"),
        ("x = 1\n", 'Attribute "app" not found in module "app"'),
        ("import os\nos._exit(3)\n", r"crashed the process \(exit status 3\)"),
        (
            "async def app(scope, receive, send):\n    await receive()\n"
            "    await send({'type': 'lifespan.startup.failed', 'message': 'no database'})\n",
            "lifespan startup failed: no database",
        ),
    ],
)
async def test_a_broken_app_fails_with_its_reason(tmp_path: Path, source: str, reason: str) -> None:
    with pytest.raises(DeployError, match=reason):
        await verify(tmp_path, source)
