"""``qactuar deploy | update | rollback | undeploy | deployments``: the deploy commands from the shell.

Each sends one admin request -- the same command the TUI sends, so both take one code path on the server
-- and, for the commands that change something, follows the ``deploy`` topic for that app while it waits,
printing one line per progress event on stderr (``blog  cloning   42%  receiving objects 21/50``).  The
result goes to stdout: a key/value block, or the reply as JSON with ``--json``, so scripts can read it.

The wait has no time limit (a clone may take DEPLOY_TIMEOUT and a generation its boot time); Ctrl-C stops
waiting, not the deploy, which the server finishes or undoes on its own.  Errors are one line on stderr
and exit status 1, as for the other admin commands.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from typing import Any

from qactuar.admin.client import AdminClient, AdminError, AdminUnavailable, Subscription
from qactuar.admin.commandline import INTERRUPTED, location
from qactuar.admin.render import Column, key_values, table
from qactuar.deploy.errors import DeployError
from qactuar.deploy.names import name_from_url
from qactuar.logs import escape_log_text

FINAL_STAGES = frozenset({"live", "failed", "removed"})
LAST_EVENT_WAIT = 1.0  # seconds to wait for the final event after the reply (it is sent first)


def _progress_line(event: dict[str, Any]) -> str:
    fraction = event.get("progress")
    percent = f"{fraction * 100:3.0f}%" if isinstance(fraction, int | float) else "    "
    stage = str(event.get("stage", ""))
    return escape_log_text(f"{event.get('name', '')}  {stage:<10} {percent}  {event.get('message', '')}")


async def _print_progress(subscription: Subscription) -> None:
    async for event in subscription:
        if isinstance(event.data, dict):
            print(_progress_line(event.data), file=sys.stderr, flush=True)
            if event.data.get("stage") in FINAL_STAGES:
                return


async def _request(
    args: argparse.Namespace, command: str, request: dict[str, Any], follow: str | None
) -> Any:
    async with await AdminClient.connect(location(args), client_name="qactuar-cli") as admin:
        subscription = await admin.subscribe("deploy", name=follow) if follow else None
        printer = asyncio.ensure_future(_print_progress(subscription)) if subscription else None
        try:
            return await admin.request(command, **request)
        finally:
            if printer is not None:
                with contextlib.suppress(TimeoutError, AdminUnavailable):
                    await asyncio.wait_for(printer, LAST_EVENT_WAIT)
                printer.cancel()


def _run(args: argparse.Namespace, command: str, request: dict[str, Any], follow: str | None) -> int:
    try:
        data = asyncio.run(_request(args, command, request, follow))
    except (AdminUnavailable, AdminError) as exc:
        print(f"qactuar: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("qactuar: stopped waiting; the server carries on with the operation", file=sys.stderr)
        return INTERRUPTED
    if args.json:
        print(json.dumps(data, indent=2), flush=True)
    elif command == "deployments":
        print(render_deployments(data), flush=True)
    else:
        print(key_values(data) if isinstance(data, dict) else escape_log_text(str(data)), flush=True)
    return 0


def render_deployments(rows: Any) -> str:
    return table(
        [
            Column("name", "NAME"),
            Column("route", "ROUTE"),
            Column("state", "STATE"),
            Column("commit", "COMMIT", lambda value: escape_log_text(str(value or "-"))[:12]),
            Column("ref", "REF"),
            Column("release", "RELEASE"),
            Column("url", "URL"),
        ],
        rows if isinstance(rows, list) else [],
    )


def deploy(args: argparse.Namespace) -> int:
    request = {"url": args.url, "route": args.route, "name": args.name, "ref": args.ref, "entry": args.entry}
    follow = args.name
    if follow is None:
        with contextlib.suppress(DeployError):  # the server says why, if it cannot derive one either
            follow = name_from_url(args.url)
    return _run(args, "deploy", {key: value for key, value in request.items() if value is not None}, follow)


def update(args: argparse.Namespace) -> int:
    request = {"name": args.name, **({"ref": args.ref} if args.ref else {})}
    return _run(args, "update", request, args.name)


def rollback(args: argparse.Namespace) -> int:
    return _run(args, "rollback", {"name": args.name}, args.name)


def undeploy(args: argparse.Namespace) -> int:
    return _run(args, "undeploy", {"name": args.name}, args.name)


def deployments(args: argparse.Namespace) -> int:
    return _run(args, "deployments", {}, None)
