"""The deploy pipeline: a git URL and a route in, an app answering at that route out -- or nothing changed.

Theory of operation
-------------------
``deploy`` (and ``update``, which is a deploy of a new commit of an app already deployed) runs::

    validate ─▶ clone into APP_DIR/.qactuar-staging/<name>-<rand>/tree ─▶ find the entry point
      ─▶ clash check against the apps it joins ─▶ import + lifespan in a throwaway process
      ─▶ rename to APP_DIR/<name>/releases/<id> ─▶ new generation with the new app set ─▶ write records
      ─▶ point APP_DIR/<name>/current at it ─▶ (later, once the old generation has drained) prune releases

Nothing outside the staging directory changes before the import check has passed.  After that, every
step has an undo: the release directory is deleted (and ``APP_DIR/<name>`` when the deploy created it),
the records are only written once the new generation serves, and if writing them fails the previous app
set is applied again.  So a deploy that fails at any step leaves the running apps, the files and the
records exactly as they were, and the staging directory is always removed.

``rollback`` switches to the release before the live one (kept on disk; DEPLOY_KEEP_RELEASES of them);
``undeploy`` removes the route with a new generation, waits until the old generation has drained, then
deletes the files -- never code a live process may still import lazily.

Stopping: when the server stops, its host cancels the operations still running (each undoes itself as
above).  Until then they go on while in-flight requests drain, so a step that finishes meanwhile must not
start an app set: the master sets ``stopping`` when a shutdown begins, and a generation forked after that
would outlive the master (nobody is left to stop it).  So every switch first checks ``stopping`` and fails
("the server is stopping") with nothing changed.  Async mode's flag stays false: its swap is in-process,
and a deploy that completes while it drains is simply a finished deploy.

Concurrency: one operation per app at a time (a second one is refused at once, naming the one running);
operations on different apps run side by side up to the switch, which is serialised (records read, new
generation, records written) so no two switches can lose each other's changes.  The host (the master,
or the async-mode process) does the switch: ``apply_deployments`` returns only when the new app set
serves, or has failed and the old set still serves.

Progress goes to listeners (the admin socket's ``deploy`` topic) as ``{name, stage, message, progress}``;
``stage`` is ``validating``, ``cloning``, ``verifying``, ``starting``, ``live``, ``failed``, ``removing``
or ``removed``; ``progress`` is git's fraction done while cloning, else None.  Stage changes are also
logged on ``qt_server``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

from qactuar.apps.router import validate_route
from qactuar.config import Config
from qactuar.deploy.entry import find_entry
from qactuar.deploy.errors import DeployError
from qactuar.deploy.modules import base_path, clash_reason, clashes, earlier_providers
from qactuar.deploy.names import app_path, check_name, name_from_url
from qactuar.deploy.records import (
    AppRecord,
    Deployed,
    Layout,
    RecordStore,
    Release,
    deployed_set,
)
from qactuar.deploy.urls import check_entry, check_ref, check_url
from qactuar.deploy.verify import verify_release
from qactuar.logs import escape_log_text

server_log = logging.getLogger("qt_server")

Event = dict[str, Any]
Listener = Callable[[Event], None]
PROGRESS_INTERVAL = 0.2  # seconds between two cloning events (stage changes are never held back)
STATES = {"loaded": "live", "failed": "failed"}


class DeployHost(Protocol):
    """What the pipeline needs from the process that serves: the master, or the async-mode process."""

    config: Config
    stopping: bool  # a shutdown has begun: no new app set may start (see "Stopping" above)

    def app_rows(self) -> list[dict[str, Any]]: ...

    async def apply_deployments(self, deployed: tuple[Deployed, ...], must_load: frozenset[str]) -> bool:
        """Serve ``deployed`` (with the configured apps); False, with the old set serving, on failure."""
        ...

    def apply_failure(self) -> str:
        """Why the last ``apply_deployments`` returned False."""
        ...

    async def retired(self) -> None:
        """Return once no process still serves an app set older than the current one."""
        ...


class Deployer:
    def __init__(self, host: DeployHost) -> None:
        self.host = host
        self._busy: dict[str, str] = {}  # app name -> what is being done to it
        self._switching = asyncio.Lock()
        self._listeners: list[Listener] = []
        self._later: set[asyncio.Task[None]] = set()

    @property
    def layout(self) -> Layout:
        return Layout(self.host.config.APP_DIR)

    # --- progress ------------------------------------------------------------------------------------------

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(event)`` for every progress event until the returned function is called."""
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    def _emit(self, name: str, stage: str, message: str, progress: float | None = None) -> None:
        if progress is None:  # a step, not one of git's counts: worth a log line
            level = logging.ERROR if stage == "failed" else logging.INFO
            server_log.log(level, "Deploy %s: %s: %s", name, stage, escape_log_text(message))
        event = {"name": name, "stage": stage, "message": message, "progress": progress}
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                server_log.exception("A deploy progress listener failed")

    def _cloning_reporter(self, name: str) -> Callable[[str, float | None], None]:
        """git's progress as "cloning" events: a new operation or its end at once, the rest throttled."""
        last_at = 0.0
        last_operation = ""
        last_message = ""

        def report(message: str, fraction: float | None) -> None:
            nonlocal last_at, last_operation, last_message
            if message == last_message:
                return  # git repeats the last count with ", done."
            operation = message.rsplit(" ", 1)[0] if fraction is not None else message
            now = time.monotonic()
            if now - last_at >= PROGRESS_INTERVAL or fraction == 1.0 or operation != last_operation:
                last_at, last_operation, last_message = now, operation, message
                self._emit(name, "cloning", message, fraction)

        return report

    # --- the operations ------------------------------------------------------------------------------------

    def deployments(self) -> list[dict[str, Any]]:
        states = {row["route"]: STATES.get(row.get("state", ""), "stopped") for row in self.host.app_rows()}
        return [
            self._row(app, self._busy.get(app.name) or states.get(app.route, "stopped"))
            for app in RecordStore(self.layout).load()
        ]

    async def deploy(
        self,
        url: str,
        route: str,
        *,
        name: str | None = None,
        ref: str | None = None,
        entry: str | None = None,
    ) -> Event:
        app_name = check_name(name) if name else name_from_url(url)

        async def work() -> Event:
            layout = self.layout
            self._emit(app_name, "validating", f"checking {url} for {route}")
            self._check_url(url)
            if ref:
                check_ref(ref)
            if entry:
                check_entry(entry)
            apps = RecordStore(layout).load()
            if any(app.name == app_name for app in apps):
                raise DeployError(
                    f"an app named {app_name} is deployed already; use update (or another --name)"
                )
            where = app_path(layout.root, app_name)
            if os.path.lexists(where):
                raise DeployError(f"{where} exists and is not a deployed app; choose another --name")
            self._check_route(route, apps, app_name)
            return await self._release(app_name, route=route, url=url, ref=ref or "", entry_given=entry or "")

        return await self._operate(app_name, "deploying", work)

    async def update(self, name: str, ref: str | None = None) -> Event:
        check_name(name)

        async def work() -> Event:
            record = self._record(name)
            self._emit(name, "validating", f"checking {record.url}")
            self._check_url(record.url)
            return await self._release(
                name,
                route=record.route,
                url=record.url,
                ref=check_ref(ref) if ref else record.live.ref,
                entry_given=record.entry_given,
                previous=record,
            )

        return await self._operate(name, "updating", work)

    async def rollback(self, name: str) -> Event:
        check_name(name)

        async def work() -> Event:
            record = self._record(name)
            index = [release.release for release in record.releases].index(record.current)
            if index == 0:
                kept = ", ".join(release.release for release in record.releases)
                raise DeployError(f"{name} has no release before the live one to roll back to (kept: {kept})")
            target = record.releases[index - 1]
            path = self.layout.release(name, target.release)
            if not path.is_dir():
                raise DeployError(f"release {target.release} of {name} is missing on disk ({path})")
            self._check_clashes(path, self._search_path(name))
            self._emit(name, "starting", f"rolling back to {target.release} (commit {target.commit[:12]})")
            rolled = dataclasses.replace(record, current=target.release)
            await self._switch(rolled)
            self._emit(name, "live", f"{name} serves commit {target.commit[:12]} at {record.route}")
            return self._row(rolled, "live")

        return await self._operate(name, "rolling back", work)

    async def undeploy(self, name: str) -> Event:
        check_name(name)

        async def work() -> Event:
            record = self._record(name)
            self._emit(name, "removing", f"removing {record.route}; the files go once its requests drained")
            async with self._switching:
                store = RecordStore(self.layout)
                apps = store.load()
                remaining = tuple(app for app in apps if app.name != name)
                await self._apply(remaining, frozenset())
                await self._save(store, remaining, apps)
            await self.host.retired()
            self._remove_tree(app_path(self.layout.root, name))
            self._emit(name, "removed", f"{name} is removed and its files are deleted")
            return {"name": name, "state": "removed"}

        return await self._operate(name, "removing", work)

    async def close(self) -> None:
        """Stop the background work (pruning old releases waits for draining generations)."""
        for task in list(self._later):
            task.cancel()
        await asyncio.gather(*self._later, return_exceptions=True)

    # --- the steps -----------------------------------------------------------------------------------------

    async def _operate(self, name: str, doing: str, work: Callable[[], Awaitable[Event]]) -> Event:
        """Run ``work`` as the one operation on ``name``; failures become a "failed" event and DeployError."""
        if name in self._busy:
            raise DeployError(f"{name} is busy ({self._busy[name]}); wait until that has finished")
        self._busy[name] = doing
        try:
            return await work()
        except DeployError as exc:
            self._emit(name, "failed", str(exc))
            raise
        except asyncio.CancelledError:
            self._emit(name, "failed", "cancelled: the server is stopping")
            raise
        except Exception as exc:
            self._emit(name, "failed", f"internal error ({type(exc).__name__}); the server log has details")
            raise
        finally:
            del self._busy[name]

    def _record(self, name: str) -> AppRecord:
        for app in RecordStore(self.layout).load():
            if app.name == name:
                return app
        raise DeployError(f"no app named {name} is deployed")

    def _check_url(self, url: str) -> None:
        config = self.host.config
        check_url(url, schemes=config.DEPLOY_ALLOWED_SCHEMES, hosts=config.DEPLOY_ALLOWED_HOSTS)

    def _check_route(self, route: str, apps: tuple[AppRecord, ...], name: str) -> None:
        try:
            validate_route(route)
        except ValueError as exc:
            raise DeployError(str(exc)) from None
        rows = self.host.app_rows()
        owners = {row["route"]: f"the app {row.get('spec')!r}" for row in rows if row.get("source") != "git"}
        owners.update(dict.fromkeys(self.host.config.APPS, "APPS in the config"))
        owners.update({app.route: f"the deployed app {app.name}" for app in apps if app.name != name})
        if route in owners:
            raise DeployError(
                f"route {route} is already mounted by {owners[route]}; choose another route "
                f"(a distinct longer route such as {route.rstrip('/')}/v2 is allowed)"
            )

    def _search_path(self, name: str) -> list[str]:
        """sys.path before ``name``'s release once it is mounted (it goes last, after the other apps)."""
        others = deployed_set(self.layout, RecordStore(self.layout).load())
        return [*base_path(self.host.config.APP_DIR), *(app.path for app in others if app.name != name)]

    def _check_clashes(self, tree: Path, path: list[str]) -> None:
        clashed = clashes(tree, earlier_providers(path, self.layout.root))
        if clashed:
            raise DeployError(clash_reason(clashed))

    async def _release(
        self,
        name: str,
        *,
        route: str,
        url: str,
        ref: str,
        entry_given: str,
        previous: AppRecord | None = None,
    ) -> Event:
        """Clone, check, verify and switch to a new release of ``name``; undo everything if a step fails."""
        from qactuar.deploy import git  # GitPython is loaded by the first deploy, not by every server

        config = self.host.config
        layout = self.layout
        layout.staging.mkdir(mode=0o700, parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=layout.staging))
        tree = staging / "tree"
        app_dir = app_path(layout.root, name)
        created = not app_dir.exists()
        release_dir: Path | None = None
        try:
            self._emit(name, "cloning", f"cloning {url}" + (f" at {ref}" if ref else ""))
            limits = git.Limits(
                schemes=tuple(config.DEPLOY_ALLOWED_SCHEMES),
                hosts_restricted=bool(config.DEPLOY_ALLOWED_HOSTS),
                timeout=config.DEPLOY_TIMEOUT,
                max_bytes=config.DEPLOY_MAX_BYTES,
            )
            cloned = await git.clone(url, tree, ref=ref, limits=limits, report=self._cloning_reporter(name))
            commit = cloned.commit
            entry = find_entry(tree, entry_given)
            path = self._search_path(name)
            self._check_clashes(tree, path)
            self._emit(name, "verifying", f"commit {commit[:12]}: importing {entry} in a throwaway process")
            await verify_release(
                tree,
                entry,
                path=[*path, str(tree)],
                factory=config.FACTORY,
                lifespan=config.LIFESPAN,
                startup_timeout=config.LIFESPAN_STARTUP_TIMEOUT,
                shutdown_timeout=config.LIFESPAN_SHUTDOWN_TIMEOUT,
                log_file=staging / "verify.log",
            )
            release = Release(self._release_id(name, commit), commit, cloned.ref, entry, time.time())
            layout.releases(name).mkdir(parents=True, exist_ok=True)
            release_dir = layout.release(name, release.release)
            os.rename(tree, release_dir)
            kept = (*previous.releases, release) if previous else (release,)
            record = self._pruned(AppRecord(name, route, url, entry_given, release.release, kept))
            self._emit(name, "starting", f"starting the apps with {name} {release.release}")
            dropped = await self._switch(record)
            release_dir = None  # it serves: keep it
        finally:
            shutil.rmtree(staging, ignore_errors=True)
            if release_dir is not None:
                shutil.rmtree(release_dir, ignore_errors=True)
                if created:
                    self._remove_tree(app_dir)
        self._emit(name, "live", f"{name} serves commit {commit[:12]} at {route}")
        if dropped:
            self._in_background(self._prune(name, dropped))
        return self._row(record, "live")

    def _release_id(self, name: str, commit: str) -> str:
        """A name that sorts in creation order (microseconds), then says which commit it holds."""
        now = time.time()
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}Z"
        base = stamp + "-" + commit[:12]
        candidate, n = base, 1
        while self.layout.release(name, candidate).exists():
            n += 1
            candidate = f"{base}-{n}"
        return candidate

    def _pruned(self, record: AppRecord) -> AppRecord:
        """``record`` keeping its newest DEPLOY_KEEP_RELEASES releases (the live one always among them)."""
        others = [release for release in record.releases if release != record.live]
        kept = {record.live, *others[max(0, len(others) - self.host.config.DEPLOY_KEEP_RELEASES + 1) :]}
        return dataclasses.replace(record, releases=tuple(r for r in record.releases if r in kept))

    async def _switch(self, record: AppRecord) -> tuple[str, ...]:
        """Serve ``record`` (placed last) with the other apps, write the records; returns releases dropped."""
        async with self._switching:
            store = RecordStore(self.layout)
            apps = store.load()
            self._check_route(record.route, apps, record.name)
            changed = (*(app for app in apps if app.name != record.name), record)
            await self._apply(changed, frozenset({record.route}))
            await self._save(store, changed, apps)
        self._point_current(record.name, record.current)
        before = next((app.releases for app in apps if app.name == record.name), ())
        kept = set(record.releases)
        return tuple(release.release for release in before if release not in kept)

    def _check_running(self) -> None:
        if self.host.stopping:
            raise DeployError("the server is stopping; the new app set was not started and nothing changed")

    async def _apply(self, apps: tuple[AppRecord, ...], must_load: frozenset[str]) -> None:
        self._check_running()
        if not await self.host.apply_deployments(deployed_set(self.layout, apps), must_load):
            raise DeployError(
                f"the new app set did not start: {self.host.apply_failure() or 'see the server log'}; "
                "the apps that served before still serve"
            )

    async def _save(
        self, store: RecordStore, apps: tuple[AppRecord, ...], previous: tuple[AppRecord, ...]
    ) -> None:
        """Write the records of the app set that serves now; if that fails, serve ``previous`` again."""
        try:
            store.save(apps)
        except OSError as exc:
            why = f"the deployment records could not be written ({exc})"
            if self.host.stopping:  # the records on disk are the previous ones: a restart serves those
                raise DeployError(
                    f"{why}; the server is stopping and serves the apps from before when restarted"
                ) from None
            if await self.host.apply_deployments(deployed_set(self.layout, previous), frozenset()):
                raise DeployError(f"{why}; the apps that served before serve again") from None
            raise DeployError(
                f"{why}, and going back to the apps that served before failed too "
                f"({self.host.apply_failure()}): the records and the serving apps differ until a restart"
            ) from None

    def _point_current(self, name: str, release: str) -> None:
        link = self.layout.current_link(name)
        temporary = link.with_name(f".current-{os.getpid()}")
        try:
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()
            temporary.symlink_to(Path("releases") / release)
            os.replace(temporary, link)
        except OSError as exc:
            server_log.warning("Deploy %s: %s could not be pointed at %s: %s", name, link, release, exc)

    async def _prune(self, name: str, releases: tuple[str, ...]) -> None:
        await self.host.retired()
        for release in releases:
            shutil.rmtree(self.layout.release(name, release), ignore_errors=True)

    def _remove_tree(self, path: Path) -> None:
        """Delete a directory this pipeline made, never following a link out of APP_DIR."""
        if path.is_symlink() or not path.resolve().is_relative_to(self.layout.root):
            server_log.warning("Not deleting %s: it is a link or outside APP_DIR", path)
            return
        shutil.rmtree(path, ignore_errors=True)

    def _in_background(self, work: Awaitable[None]) -> None:
        async def run() -> None:
            try:
                await work
            except Exception:
                server_log.exception("Deploy housekeeping failed")

        task = asyncio.ensure_future(run())
        self._later.add(task)
        task.add_done_callback(self._later.discard)

    def _row(self, app: AppRecord, state: str) -> Event:
        live = app.live
        return {
            "name": app.name,
            "route": app.route,
            "url": app.url,
            "ref": live.ref,
            "commit": live.commit,
            "release": app.current,
            "deployed_at": live.deployed_at,
            "state": state,
        }
