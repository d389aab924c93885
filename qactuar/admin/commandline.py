"""What the ``qactuar`` admin commands do once parsed: find the server, ask it, print the answer.

``qactuar.cli`` owns the command table and the parser; each admin command there is a setup function that
adds its own arguments plus ``add_connection_flags`` and returns a handler from here.  This module never
imports ``qactuar.cli`` (which imports it).

Where the server is comes from the same configuration a server started here would read (``--config`` /
``QACTUAR_CONFIG`` / ``./qactuar.toml`` / ``QACTUAR_*``), with ``--admin``, ``--socket`` and
``--token-file`` on top, so next to a server's ``qactuar.toml`` no flag is needed.

Output is an aligned table or key/value block (``render.py``) by default and the server's reply as JSON with
``--json`` (JSON Lines for ``logs -f``).  A server that cannot be reached, refuses the login or refuses the
request is one line on stderr and exit code 1; Ctrl-C is exit code 130, without a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from qactuar.admin.client import AdminError, AdminUnavailable, Location, SyncAdminClient, locate
from qactuar.admin.render import RENDERERS, render_log
from qactuar.admin.statefiles import parse_address
from qactuar.config import load_config

Handler = Callable[[argparse.Namespace], int]
READ_TIMEOUT = 30.0  # seconds a read-only request may take; mutating ones wait as long as the server works
INTERRUPTED = 130  # what a shell reports for a command stopped by Ctrl-C


def _admin_address(text: str) -> tuple[str, int]:
    try:
        return parse_address(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_connection_flags(parser: argparse.ArgumentParser) -> None:
    """``--admin`` / ``--socket``, ``--token-file`` and ``--json``, for every admin command."""
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--admin",
        type=_admin_address,
        metavar="HOST:PORT",
        help="the server's admin address (default: ADMIN_HOST:ADMIN_PORT of the config, or the address "
        "recorded by a server with ADMIN_PORT = 0)",
    )
    where.add_argument(
        "--socket", metavar="PATH", help="the server's admin Unix socket (default: ADMIN_SOCKET)"
    )
    parser.add_argument(
        "--token-file",
        metavar="F",
        help="the admin token file (default: ADMIN_TOKEN_FILE, else STATE_DIR/admin.token)",
    )
    parser.add_argument("--json", action="store_true", help="print the reply as JSON (for scripts)")


def add_log_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-f", "--follow", action="store_true", help="keep printing new records as they come")
    parser.add_argument("-n", type=int, default=50, metavar="N", help="how many recent records (default: 50)")
    parser.add_argument("--app", metavar="ROUTE", help="only records of the app at ROUTE")
    parser.add_argument("--level", metavar="L", help="only records at level L or above (INFO, WARNING, ...)")
    parser.add_argument("--logger", metavar="NAME", help="only records of logger NAME and its children")
    parser.add_argument("--grep", metavar="TEXT", help="only records whose message contains TEXT (any case)")


def location(args: argparse.Namespace) -> Location:
    """Where the server these arguments name is, and its token (AdminUnavailable when unknown)."""
    settings: dict[str, Any] = {}
    if args.admin:
        settings.update(ADMIN_HOST=args.admin[0], ADMIN_PORT=args.admin[1], ADMIN_SOCKET="")
    if args.socket:
        settings["ADMIN_SOCKET"] = args.socket
    if args.token_file:
        settings["ADMIN_TOKEN_FILE"] = args.token_file
    return locate(load_config(config_file=args.config_file, cli=settings))


def _connected(
    args: argparse.Namespace, work: Callable[[SyncAdminClient], None], timeout: float | None
) -> int:
    """Run ``work`` on a logged-in client; the exit code, with any failure as one line on stderr."""
    try:
        with SyncAdminClient(location(args), timeout=timeout) as admin:
            work(admin)
    except (AdminUnavailable, AdminError) as exc:
        print(f"qactuar: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return INTERRUPTED
    return 0


def _print(args: argparse.Namespace, command: str, data: Any) -> None:
    print(json.dumps(data, indent=2) if args.json else RENDERERS[command](data), flush=True)


def show(command: str, *arg_names: str, waits: bool = False) -> Handler:
    """A handler that runs ``command`` with the parsed arguments ``arg_names`` and prints the reply.

    ``waits``: the command changes the server and may take as long as that takes (no request timeout).
    """

    def handle(args: argparse.Namespace) -> int:
        def work(admin: SyncAdminClient) -> None:
            _print(args, command, admin.request(command, **{name: getattr(args, name) for name in arg_names}))

        return _connected(args, work, None if waits else READ_TIMEOUT)

    return handle


def _print_record(args: argparse.Namespace, record: Any) -> None:
    print(json.dumps(record) if args.json else render_log(record), flush=True)


def logs(args: argparse.Namespace) -> int:
    """Print the last ``-n`` records, then with ``-f`` follow new ones (subscribed first, so none is missed
    between the two; records already printed are recognised by their ``seq``)."""
    given = {"route": args.app, "level": args.level, "logger": args.logger, "text": args.grep}
    filters = {key: value for key, value in given.items() if value is not None}

    def work(admin: SyncAdminClient) -> None:
        if not args.follow:
            _print(args, "logs", admin.request("logs", n=args.n, **filters))
            return
        subscription = admin.subscribe("log", **filters)
        records = admin.request("logs", n=args.n, **filters)
        for record in records:
            _print_record(args, record)
        seqs = [record["seq"] for record in records if isinstance(record.get("seq"), int)]
        last = max(seqs, default=-1)
        for event in subscription:
            if event.dropped:
                print(f"qactuar: {event.dropped} records were left out (reading too slowly)", file=sys.stderr)
            seq = event.data.get("seq") if isinstance(event.data, dict) else None
            if not (isinstance(seq, int) and seq <= last):
                _print_record(args, event.data)

    return _connected(args, work, READ_TIMEOUT)
