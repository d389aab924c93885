"""The ``qactuar`` command: ``serve``, and the admin commands that ask a running server.

One table, OPTIONS, drives the command line: each row names a Config field, and the flag (``--kebab-case`` of
the field), its type, default and help all come from that row and the field. A flag's argparse ``dest`` is
the field name and its default is ``argparse.SUPPRESS``, so the parsed namespace holds exactly the flags the
user typed and becomes the loader's ``cli`` layer in one comprehension.

Forms: ``qactuar serve [APP] [flags]``; the seed's ``qactuar module:app [flags]``; bare ``qactuar [flags]``
(serve what the config says). A command is one setup function in COMMANDS that adds its arguments and
returns its handler.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from qactuar._version import __version__
from qactuar.admin import commandline as admin_cli
from qactuar.config import (
    FIELD_TYPES,
    HTTP_PARSERS,
    LIFESPANS,
    MODES,
    PROXY_PROTOCOLS,
    Config,
    ConfigError,
    cli_flag,
    load_config,
    mode_name,
    text_list,
)
from qactuar.deploy import commandline as deploy_cli
from qactuar.logs import configure_logging

Handler = Callable[[argparse.Namespace], int]


@dataclass(frozen=True)
class Option:
    """One command line option: the Config field it sets, any extra spellings, and its help."""

    field: str
    help: str
    aliases: tuple[str, ...] = ()  # flags besides the derived --kebab-case one
    type: Callable[[str], Any] | None = None  # None: the field's type
    choices: tuple[str, ...] | None = None

    @property
    def flags(self) -> tuple[str, ...]:
        return (cli_flag(self.field), *self.aliases)


OPTIONS: tuple[Option, ...] = (
    Option("HOST", "address to listen on"),
    Option("PORT", "port to listen on (0 picks a free port)", ("-p",)),
    Option("BACKLOG", "listen() backlog"),
    Option("UDS", "also listen on this Unix socket (alone unless --host/--port are given too)"),
    Option("UDS_MODE", "Unix socket permissions, octal such as 660 ('' = as the umask leaves them)"),
    Option("FD", "also serve this inherited listening socket fd (-1 = none)"),
    Option(
        "FORWARDED_ALLOW_IPS",
        "peers trusted for proxy headers and the PROXY protocol: addresses, CIDRs, unix, * (comma-separated)",
        type=text_list,
    ),
    Option("PROXY_PROTOCOL", "expect a PROXY protocol header from trusted peers", choices=PROXY_PROTOCOLS),
    Option("HEALTH_PATH", "answer PATH/live and PATH/ready in the server ('' = off)"),
    Option("SHUTDOWN_DELAY", "seconds readiness fails while still serving before a shutdown drains"),
    Option("ADMIN_HOST", "admin socket address (loopback unless you mean otherwise)"),
    Option("ADMIN_PORT", "admin socket port (0 picks a free port)"),
    Option("ADMIN_SOCKET", "admin Unix socket path, used instead of TCP ('' = TCP)"),
    Option("ADMIN_ALLOW_REMOTE", "allow a non-loopback ADMIN_HOST (the token is then all that guards it)"),
    Option("ADMIN_TOKEN_FILE", "admin token file ('' = STATE_DIR/admin.token)"),
    Option("STATE_DIR", "directory for run-time state: admin token, deployment records"),
    Option("MODE", "process model (-s also takes 0.2 names)", ("-s", "--server-type"), mode_name, MODES),
    Option("WORKERS", "prefork workers (0 = one per CPU)", ("--process-pool-size",)),
    Option("MAX_PROCESSES", "postfork: most children at once"),
    Option("USE_UVLOOP", "use uvloop when it is installed", ("--uvloop", "-u")),
    Option(
        "HTTP_PARSER",
        "request parser: h11 (pure Python) or httptools (the fast extra)",
        ("--http",),
        choices=HTTP_PARSERS,
    ),
    Option("WORKER_TIMEOUT", "seconds a silent worker lives before it is replaced"),
    Option("GRACEFUL_TIMEOUT", "seconds to drain on shutdown or deploy"),
    Option("MAX_REQUESTS", "recycle a worker after this many requests (0 = never)"),
    Option("MAX_REQUESTS_JITTER", "random extra requests before recycling (0 = none)"),
    Option("LIMIT_CONCURRENCY", "most requests in flight per worker before 503 (0 = no limit)"),
    Option("RELOAD", "restart when source files change (development)"),
    Option("GATHER_PROC_STATS", "collect per-process CPU and memory stats"),
    Option("REQUEST_TIMEOUT", "seconds to receive a request head, and most seconds a body may stall"),
    Option("SEND_TIMEOUT", "most seconds a response may wait on a client that reads none of it"),
    Option("KEEPALIVE_TIMEOUT", "seconds an idle keep-alive connection stays open"),
    Option("RECV_BYTES", "bytes read per receive"),
    Option("MAX_REQUEST_LINE", "longest request line in bytes"),
    Option("MAX_HEADER_BYTES", "largest request head in bytes"),
    Option("MAX_HEADERS", "most request headers"),
    Option("MAX_BODY_BYTES", "largest request body in bytes (0 = no limit)"),
    Option("SSL_CERT_PATH", "TLS certificate chain (PEM); needs --ssl-key-path"),
    Option("SSL_KEY_PATH", "TLS private key (PEM); needs --ssl-cert-path", ("--ssl-cert-key",)),
    Option("SSL_CIPHERS", "OpenSSL cipher string"),
    Option("SSL_CA_PATH", "CA bundle to verify client certificates"),
    Option(
        "SSL_VERIFY_CLIENT",
        "client certificates: none, optional or required",
        choices=("none", "optional", "required"),
    ),
    Option("SSL_KEY_PASSWORD", "password of an encrypted TLS private key"),
    Option("WS_MAX_SIZE", "largest WebSocket message in bytes (larger: close 1009)"),
    Option("WS_MAX_QUEUE", "WebSocket messages buffered per connection before reading pauses"),
    Option("WS_PING_INTERVAL", "seconds between WebSocket pings (0 = none)"),
    Option("WS_PING_TIMEOUT", "seconds to wait for a WebSocket pong before closing"),
    Option("WS_PER_MESSAGE_DEFLATE", "negotiate WebSocket permessage-deflate compression"),
    Option("APP_DIR", "directory put first on sys.path to import apps", ("-a",)),
    Option("FACTORY", "treat APP as a factory to call for the app"),
    Option("ROOT_PATH", "ASGI root_path for apps served behind a path prefix"),
    Option("LIFESPAN", "ASGI lifespan events", choices=LIFESPANS),
    Option("LIFESPAN_STARTUP_TIMEOUT", "seconds an app may take to start"),
    Option("LIFESPAN_SHUTDOWN_TIMEOUT", "seconds an app may take to stop"),
    Option("DEPLOY_TIMEOUT", "seconds a git clone may take before it is stopped"),
    Option("DEPLOY_MAX_BYTES", "most bytes a git clone may put on disk"),
    Option("DEPLOY_ALLOWED_SCHEMES", "git URL schemes deploys may use (comma-separated)", type=text_list),
    Option(
        "DEPLOY_ALLOWED_HOSTS", "hosts deploys may clone from (comma-separated; empty = any)", type=text_list
    ),
    Option("DEPLOY_KEEP_RELEASES", "releases kept per deployed app for rollback"),
    Option("LOG_LEVEL", "level for the qt_* and Qactuar loggers ('' = as LOGS says)"),
    Option("ACCESS_LOG", "log one line per request"),
)


def _add_option(parser: argparse.ArgumentParser, option: Option, default: object) -> None:
    help_text = f"{option.help} (default: {default!r})".replace("%", "%%")
    common: dict[str, Any] = {"dest": option.field, "default": argparse.SUPPRESS, "help": help_text}
    if FIELD_TYPES[option.field] is bool:
        parser.add_argument(*option.flags, action=argparse.BooleanOptionalAction, **common)
    else:
        kind = option.type or FIELD_TYPES[option.field]
        parser.add_argument(*option.flags, type=kind, choices=option.choices, **common)


def _mount(text: str) -> tuple[str, str]:
    route, equals, app = text.partition("=")
    if not equals:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not ROUTE=MODULE:ATTR (for example /api=myapp.api:app)"
        )
    return route, app


def add_config_flag(parser: argparse.ArgumentParser) -> None:
    """``--config FILE``, for every command that reads the configuration."""
    parser.add_argument(
        "--config",
        dest="config_file",
        metavar="FILE",
        help="config file, .toml or .json (default: $QACTUAR_CONFIG, else ./qactuar.toml if present)",
    )


def _cli_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The Config fields the user gave as flags (plus APP, which replaces APPS with {'/': APP})."""
    settings = {name: value for name, value in vars(args).items() if name in FIELD_TYPES}
    if args.app is not None:
        settings["APPS"] = {"/": args.app}
    return settings


def _serve(args: argparse.Namespace) -> int:
    def load() -> Config:
        return load_config(config_file=args.config_file, cli=_cli_settings(args), mounts=dict(args.mount))

    config = load()
    configure_logging(config)
    from qactuar.process import run_server

    return run_server(config, reload_config=load)


def _serve_command(parser: argparse.ArgumentParser) -> Handler:
    """Serve the apps (the default command)."""
    parser.add_argument("app", nargs="?", metavar="APP", help="module:attr to serve at '/' (replaces APPS)")
    parser.add_argument(
        "--mount",
        type=_mount,
        action="append",
        default=[],
        metavar="ROUTE=APP",
        help="also serve APP (module:attr) at ROUTE; repeatable",
    )
    add_config_flag(parser)
    defaults = Config()
    for option in OPTIONS:
        _add_option(parser, option, getattr(defaults, option.field))
    return _serve


# --- admin commands: ask a running server over its admin socket (qactuar/admin/commandline.py runs them) ---


def _admin_flags(parser: argparse.ArgumentParser) -> None:
    add_config_flag(parser)
    admin_cli.add_connection_flags(parser)


def _status_command(parser: argparse.ArgumentParser) -> Handler:
    """Show the running server's version, mode, uptime, generation, addresses and totals."""
    _admin_flags(parser)
    return admin_cli.show("status")


def _processes_command(parser: argparse.ArgumentParser) -> Handler:
    """List the server's processes: role, generation, state, requests, CPU, memory, age."""
    _admin_flags(parser)
    return admin_cli.show("processes")


def _apps_command(parser: argparse.ArgumentParser) -> Handler:
    """List the mounted apps: route, state, error, traffic and latency."""
    _admin_flags(parser)
    return admin_cli.show("apps")


def _logs_command(parser: argparse.ArgumentParser) -> Handler:
    """Show the server's recent log records; -f follows new ones."""
    _admin_flags(parser)
    admin_cli.add_log_flags(parser)
    return admin_cli.logs


def _reload_command(parser: argparse.ArgumentParser) -> Handler:
    """Start a new generation of the apps and retire the old one once it is healthy."""
    _admin_flags(parser)
    return admin_cli.show("reload", waits=True)


def _scale_command(parser: argparse.ArgumentParser) -> Handler:
    """Run N prefork workers."""
    parser.add_argument("n", type=int, metavar="N", help="how many workers")
    _admin_flags(parser)
    return admin_cli.show("scale", "n", waits=True)


def _kill_command(parser: argparse.ArgumentParser) -> Handler:
    """Stop one worker or connection child gracefully; its generation replaces it."""
    parser.add_argument("pid", type=int, metavar="PID", help="a pid from `qactuar processes`")
    _admin_flags(parser)
    return admin_cli.show("kill", "pid", waits=True)


def _config_command(parser: argparse.ArgumentParser) -> Handler:
    """Show the running server's effective configuration (secrets redacted)."""
    _admin_flags(parser)
    return admin_cli.show("config")


def _set_command(parser: argparse.ArgumentParser) -> Handler:
    """Change a setting of the running server (LOG_LEVEL, WORKERS)."""
    parser.add_argument("key", metavar="KEY", help="the setting: LOG_LEVEL or WORKERS")
    parser.add_argument("value", metavar="VALUE", help="its new value")
    _admin_flags(parser)
    return admin_cli.show("set", "key", "value", waits=True)


def _deploy_command(parser: argparse.ArgumentParser) -> Handler:
    """Clone a git repository into APP_DIR and serve it at a route, without a restart."""
    parser.add_argument("url", metavar="URL", help="the repository (schemes: DEPLOY_ALLOWED_SCHEMES)")
    parser.add_argument("--route", required=True, help="where to mount it, e.g. /blog")
    parser.add_argument("--name", help="the app's name (default: from the URL)")
    parser.add_argument("--ref", help="branch, tag or commit (default: the default branch)")
    parser.add_argument("--entry", metavar="M:A", help="the app, module:attr (default: found in the repo)")
    _admin_flags(parser)
    return deploy_cli.deploy


def _update_command(parser: argparse.ArgumentParser) -> Handler:
    """Deploy the newest commit of a deployed app's ref (or of --ref)."""
    parser.add_argument("name", metavar="NAME", help="the deployed app")
    parser.add_argument("--ref", help="branch, tag or commit (default: the one deployed)")
    _admin_flags(parser)
    return deploy_cli.update


def _rollback_command(parser: argparse.ArgumentParser) -> Handler:
    """Serve the release of a deployed app that came before the live one."""
    parser.add_argument("name", metavar="NAME", help="the deployed app")
    _admin_flags(parser)
    return deploy_cli.rollback


def _undeploy_command(parser: argparse.ArgumentParser) -> Handler:
    """Remove a deployed app's route, let its requests finish, delete its files."""
    parser.add_argument("name", metavar="NAME", help="the deployed app")
    _admin_flags(parser)
    return deploy_cli.undeploy


def _deployments_command(parser: argparse.ArgumentParser) -> Handler:
    """List the deployed apps: route, state, commit, ref, release, URL."""
    _admin_flags(parser)
    return deploy_cli.deployments


COMMANDS: Mapping[str, Callable[[argparse.ArgumentParser], Handler]] = {
    "serve": _serve_command,
    "status": _status_command,
    "processes": _processes_command,
    "apps": _apps_command,
    "logs": _logs_command,
    "reload": _reload_command,
    "scale": _scale_command,
    "kill": _kill_command,
    "config": _config_command,
    "set": _set_command,
    "deploy": _deploy_command,
    "update": _update_command,
    "rollback": _rollback_command,
    "undeploy": _undeploy_command,
    "deployments": _deployments_command,
}
_TOP_LEVEL_FLAGS = frozenset({"-h", "--help", "--version"})


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qactuar",
        description="An ASGI server hosting many apps. With no command, `qactuar [APP] [flags]` means serve.",
    )
    parser.add_argument("--version", action="version", version=f"qactuar {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, setup in COMMANDS.items():
        summary = (setup.__doc__ or "").strip()
        command = commands.add_parser(name, help=summary, description=summary)
        command.set_defaults(handler=setup(command))
    return parser


def _with_command(argv: list[str]) -> list[str]:
    """The seed's ``qactuar module:app`` and a bare ``qactuar [flags]`` both mean ``qactuar serve ...``."""
    if argv and (argv[0] in COMMANDS or argv[0] in _TOP_LEVEL_FLAGS):
        return argv
    return ["serve", *argv]


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit code (2 for a usage or configuration error)."""
    try:
        args = build_parser().parse_args(_with_command(sys.argv[1:] if argv is None else argv))
    except SystemExit as exit_:  # argparse exits for --help, --version and usage errors
        return exit_.code if isinstance(exit_.code, int) else 2
    handler: Handler = args.handler
    try:
        return handler(args)
    except ConfigError as exc:
        print(f"qactuar: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (`qactuar logs | head`): stop quietly, as Unix tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
