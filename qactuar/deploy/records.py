"""Deployment records: which apps are deployed, from where, at which commit -- what a restart restores.

Layout under APP_DIR (every path is derived from a checked app name and a checked release id, never from a
URL or from text in the records file)::

    APP_DIR/.qactuar-deployments.json       the records (this module)
    APP_DIR/.qactuar-staging/<name>-<rand>/  one deploy in progress (removed when it ends, however it ends)
    APP_DIR/<name>/releases/<release>/       one release: the repository's files at one commit, no .git
    APP_DIR/<name>/current -> releases/<id>  the live release, for people (the records are the truth)

The records file is rewritten whole for every change, atomically (temporary file, fsync, rename, fsync of
the directory), so a crash leaves the old records or the new ones, never half of either.  It is read when
the server starts and before every change; a file that cannot be read or does not validate stops deploys
(with the reason) rather than being overwritten, and the server serves its configured apps meanwhile.

Order matters: the apps are listed in the order their releases go on ``sys.path`` -- the app deployed or
changed last comes last, so a new release can never shadow a module another app already imports (see
``modules.py``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from qactuar.config import Config, route_problem
from qactuar.deploy.errors import DeployError
from qactuar.deploy.names import NAME_RE
from qactuar.deploy.urls import COMMIT_RE

server_log = logging.getLogger("qt_server")

RECORDS_NAME = ".qactuar-deployments.json"
STAGING_NAME = ".qactuar-staging"
RECORDS_VERSION = 1
RELEASE_RE = re.compile(r"[0-9]{8}T[0-9]{6}(?:\.[0-9]{6})?Z-[0-9a-f]{7,12}(?:-[0-9]{1,4})?")


@dataclass(frozen=True, slots=True)
class Release:
    release: str  # directory name under releases/
    commit: str
    ref: str  # the branch, tag or commit it was cloned from
    entry: str  # module:attr
    deployed_at: float  # epoch seconds


@dataclass(frozen=True, slots=True)
class AppRecord:
    name: str
    route: str
    url: str
    entry_given: str  # --entry as the operator gave it; "" = discovered again on every update
    current: str  # the live release id
    releases: tuple[Release, ...]  # oldest first

    @property
    def live(self) -> Release:
        return next(release for release in self.releases if release.release == self.current)


@dataclass(frozen=True, slots=True)
class Deployed:
    """One deployed app as a generation serves it: the master hands a tuple of these to each generation."""

    name: str
    route: str
    entry: str
    path: str  # the release directory, put on sys.path
    url: str
    ref: str
    commit: str
    release: str

    def source(self) -> dict[str, Any]:
        """What the ``apps`` rows of this mount add to say where it came from."""
        return {
            "source": "git",
            "name": self.name,
            "url": self.url,
            "ref": self.ref,
            "commit": self.commit,
            "release": self.release,
        }


class Layout:
    """Where the deploy pipeline keeps things under APP_DIR."""

    def __init__(self, app_dir: str | Path) -> None:
        self.root = Path(app_dir).resolve()
        self.records_file = self.root / RECORDS_NAME
        self.staging = self.root / STAGING_NAME

    def releases(self, name: str) -> Path:
        return self.root / name / "releases"

    def release(self, name: str, release: str) -> Path:
        return self.releases(name) / release

    def current_link(self, name: str) -> Path:
        return self.root / name / "current"


def deployed_set(layout: Layout, apps: Iterable[AppRecord]) -> tuple[Deployed, ...]:
    """What a generation serves for these records, in sys.path order."""
    return tuple(
        Deployed(
            name=app.name,
            route=app.route,
            entry=app.live.entry,
            path=str(layout.release(app.name, app.current)),
            url=app.url,
            ref=app.live.ref,
            commit=app.live.commit,
            release=app.current,
        )
        for app in apps
    )


def with_sources(rows: list[dict[str, Any]], deployed: Iterable[Deployed]) -> list[dict[str, Any]]:
    """App table rows with the git source of each deployed mount added."""
    by_route = {app.route: app for app in deployed}
    return [{**row, **by_route[row["route"]].source()} if row["route"] in by_route else row for row in rows]


# --- the file ----------------------------------------------------------------------------------------------


def _text(item: dict[str, Any], key: str, pattern: re.Pattern[str] | None = None) -> str:
    value = item.get(key)
    if not isinstance(value, str) or (pattern is not None and not pattern.fullmatch(value)):
        raise ValueError(f"{key} is {value!r:.80}")
    return value


def _release(item: Any) -> Release:
    if not isinstance(item, dict):
        raise ValueError("a release is not an object")
    deployed_at = item.get("deployed_at")
    if not isinstance(deployed_at, int | float) or isinstance(deployed_at, bool):
        raise ValueError(f"deployed_at is {deployed_at!r:.40}")
    return Release(
        release=_text(item, "release", RELEASE_RE),
        commit=_text(item, "commit", COMMIT_RE),
        ref=_text(item, "ref"),
        entry=_text(item, "entry"),
        deployed_at=float(deployed_at),
    )


def _app(item: Any) -> AppRecord:
    if not isinstance(item, dict):
        raise ValueError("an app is not an object")
    route = _text(item, "route")
    problem = route_problem(route)
    if problem:
        raise ValueError(f"route {route!r} {problem}")
    releases = item.get("releases")
    if not isinstance(releases, list) or not releases:
        raise ValueError("releases is not a non-empty list")
    record = AppRecord(
        name=_text(item, "name", NAME_RE),
        route=route,
        url=_text(item, "url"),
        entry_given=_text(item, "entry_given"),
        current=_text(item, "current", RELEASE_RE),
        releases=tuple(_release(release) for release in releases),
    )
    if record.current not in {release.release for release in record.releases}:
        raise ValueError(f"current release {record.current} is not among its releases")
    return record


class RecordStore:
    def __init__(self, layout: Layout) -> None:
        self.layout = layout

    def load(self) -> tuple[AppRecord, ...]:
        """The records (none when there is no file yet); DeployError when the file is unusable."""
        path = self.layout.records_file
        try:
            data = json.loads(path.read_bytes())
        except FileNotFoundError:
            return ()
        except (OSError, ValueError) as exc:
            raise DeployError(f"the deployment records {path} cannot be read: {exc}") from None
        try:
            if not isinstance(data, dict) or data.get("version") != RECORDS_VERSION:
                raise ValueError(f"not a version {RECORDS_VERSION} records file")
            items = data.get("apps")
            if not isinstance(items, list):
                raise ValueError("apps is not a list")
            apps = tuple(_app(item) for item in items)
        except ValueError as exc:
            raise DeployError(f"the deployment records {path} are invalid: {exc}") from None
        names = [app.name for app in apps]
        routes = [app.route for app in apps]
        if len(set(names)) != len(names) or len(set(routes)) != len(routes):
            raise DeployError(f"the deployment records {path} name an app or a route twice")
        return apps

    def save(self, apps: tuple[AppRecord, ...]) -> None:
        """Replace the records atomically; OSError when that cannot be done (the old file is then intact)."""
        path = self.layout.records_file
        data = {"version": RECORDS_VERSION, "apps": [asdict(app) for app in apps]}
        payload = (json.dumps(data, indent=2) + "\n").encode("utf-8")
        temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
            with os.fdopen(fd, "wb") as file:
                file.write(payload)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def restore_deployments(config: Config) -> tuple[Deployed, ...]:
    """The deployed apps to serve at start: those of the records, or none (logged) when they are unusable."""
    layout = Layout(config.APP_DIR)
    try:
        apps = RecordStore(layout).load()
    except DeployError as exc:
        server_log.error("Deployed apps are not served: %s", exc)
        return ()
    if apps:
        server_log.info("Serving %d deployed app(s) from %s", len(apps), layout.records_file)
    return deployed_set(layout, apps)
