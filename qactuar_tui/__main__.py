"""``qactuar-tui``: the command line that starts the console.

Zero arguments next to a running server's ``qactuar.toml``; otherwise ``--config FILE``, ``--admin
HOST:PORT`` or ``--socket PATH``, and ``--token-file F``.  A configuration that cannot be read is one line
on stderr and exit status 2; everything about the server itself (not running, wrong token) is shown inside
the console, which keeps trying.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from qactuar.admin.statefiles import parse_address
from qactuar.config import ConfigError
from qactuar_tui.factory import ConnectOptions, make_app

BAD_CONFIG = 2


def _address(text: str) -> tuple[str, int]:
    try:
        return parse_address(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qactuar-tui",
        description="A live console for a running Qactuar server: load, processes, logs and deploys.",
        epilog="Keys: 1-4 switch screens, ctrl+p opens the command palette, q quits.",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--admin",
        type=_address,
        metavar="HOST:PORT",
        help="the server's admin address (default: from the config, or the address a server with "
        "ADMIN_PORT = 0 recorded)",
    )
    where.add_argument("--socket", metavar="PATH", help="the server's admin Unix socket")
    parser.add_argument(
        "--token-file",
        metavar="F",
        help="the admin token file (default: ADMIN_TOKEN_FILE, else STATE_DIR/admin.token)",
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="the server's config file (default: QACTUAR_CONFIG or ./qactuar.toml)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    options = ConnectOptions(
        admin=args.admin, socket=args.socket, token_file=args.token_file, config=args.config
    )
    try:
        app = make_app(options)
    except ConfigError as exc:
        print(f"qactuar-tui: error: {exc}", file=sys.stderr)
        return BAD_CONFIG
    app.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
