"""The Config dataclass and the loader that layers every source of settings into one.

Field names are the seed's upper-case keys; TOML files use them in lower case, JSON files in upper case
(either case is accepted in both).

Layers, lowest to highest::

    dataclass defaults < config file < Config given to qactuar.run(conf=...) < environment QACTUAR_<KEY>
        < command line flags < command line --mount routes (added to APPS) < qactuar.run() keyword arguments

The config file is the one named by ``--config``, else by ``QACTUAR_CONFIG``, else ``qactuar.toml`` in the
working directory when it exists. Each layer is type-checked and value-checked on its own, so an error names
the exact source, key and value, and says what is allowed.

Choices the brief left open, written down here:

- Path settings (APP_DIR, STATE_DIR, ...) are stored as absolute paths. A path from a config file is relative
  to the file's directory; from the environment, command line or ``run()`` it is relative to the working
  directory. A path left at its default (APP_DIR ``.``, STATE_DIR ``.qactuar``) counts as part of the config
  file when there is one: the file marks the project root, so its apps and its run-time state sit beside it
  whatever directory the server is started from. ``~`` is expanded.
- An unknown key in a file, on the command line or in ``run()`` is an error. An unknown ``QACTUAR_*``
  environment variable is only a warning: the environment is shared with other programs (and other Qactuar
  tools), so a stray variable must not stop a server.
- ROOT_PATH must be empty or look like a route other than ``/`` (it is prefixed to every path).
- List settings (DEPLOY_ALLOWED_SCHEMES, DEPLOY_ALLOWED_HOSTS) are arrays in files; in the environment and
  on the command line they are comma-separated (``file,https``) or a JSON array.
"""

from __future__ import annotations

import difflib
import importlib.util
import json
import keyword
import logging
import math
import os
import re
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_origin, get_type_hints

from qactuar.http.proxy_headers import valid_network_entry
from qactuar.logs import default_log_config

_log = logging.getLogger("Qactuar")

MODES = ("prefork", "postfork", "async")
LIFESPANS = ("auto", "on", "off")
PROXY_PROTOCOLS = ("off", "v1", "v2", "auto")
HTTP_PARSERS = ("h11", "httptools")
# Qactuar 0.2's SERVER_TYPE names for the process models (the new names are accepted too).
SERVER_TYPE_MODES: Mapping[str, str] = {
    "async_only": "async",
    "simple_fork": "postfork",
    "prefork": "prefork",
    "postfork": "postfork",
    "async": "async",
}
CONFIG_ENV = "QACTUAR_CONFIG"
ENV_PREFIX = "QACTUAR_"
DEFAULT_CONFIG_NAME = "qactuar.toml"


class ConfigError(Exception):
    """A setting is wrong. The message names the source, the key, the value given and what is allowed."""


@dataclass
class Config:
    # --- listening (seed keys) ---
    HOST: str = "127.0.0.1"
    PORT: int = 8000
    BACKLOG: int = 2048
    UDS: str = ""  # also (or only) listen on this Unix socket path
    UDS_MODE: str = ""  # its permissions, octal ("660"); "" = as the umask leaves them
    FD: int = -1  # also (or only) serve this inherited listening socket; -1 = none
    # --- behind proxies and load balancers ---
    FORWARDED_ALLOW_IPS: list[str] = field(default_factory=lambda: ["127.0.0.1", "::1", "unix"])
    PROXY_PROTOCOL: str = "off"  # off | v1 | v2 | auto, from FORWARDED_ALLOW_IPS peers only
    HEALTH_PATH: str = ""  # "/healthz" answers /healthz/live and /healthz/ready; "" = off
    SHUTDOWN_DELAY: float = 0.0  # seconds readiness fails while still serving, before the drain
    # --- admin socket (seed keys + new) ---
    ADMIN_HOST: str = "localhost"
    ADMIN_PORT: int = 1986
    ADMIN_SOCKET: str = ""
    ADMIN_ALLOW_REMOTE: bool = False  # allow a non-loopback ADMIN_HOST
    ADMIN_TOKEN_FILE: str = ""
    STATE_DIR: str = ".qactuar"
    # --- process models ---
    MODE: str = "prefork"  # prefork | postfork | async
    WORKERS: int = 0  # 0 = os.cpu_count()
    MAX_PROCESSES: int = 500  # post-fork children cap (seed key)
    USE_UVLOOP: bool = True  # honoured only when uvloop is importable (seed key)
    HTTP_PARSER: str = "h11"  # h11 (pure Python) | httptools (the fast extra)
    WORKER_TIMEOUT: float = 30.0
    GRACEFUL_TIMEOUT: float = 30.0
    MAX_REQUESTS: int = 0
    MAX_REQUESTS_JITTER: int = 0
    LIMIT_CONCURRENCY: int = 0
    RELOAD: bool = False
    GATHER_PROC_STATS: bool = False
    # --- HTTP limits and timeouts ---
    REQUEST_TIMEOUT: float = 5.0  # head delivery deadline and body stall limit (seed key)
    SEND_TIMEOUT: float = 60.0  # most seconds a response may wait on a client that reads nothing
    KEEPALIVE_TIMEOUT: float = 5.0
    RECV_BYTES: int = 65536  # read size per recv (seed key)
    MAX_REQUEST_LINE: int = 8192
    MAX_HEADER_BYTES: int = 16384
    MAX_HEADERS: int = 100
    MAX_BODY_BYTES: int = 0  # 0 = unlimited
    # --- TLS (seed keys + new) ---
    SSL_CERT_PATH: str = ""
    SSL_KEY_PATH: str = ""
    SSL_CIPHERS: str = "TLSv1.2:TLSv1.3:!aNULL:!eNULL"
    SSL_CA_PATH: str = ""
    SSL_VERIFY_CLIENT: str = "none"  # none | optional | required (client certificates, needs SSL_CA_PATH)
    SSL_KEY_PASSWORD: str = ""
    # --- WebSocket ---
    WS_MAX_SIZE: int = 16 * 1024 * 1024
    WS_MAX_QUEUE: int = 32
    WS_PING_INTERVAL: float = 20.0
    WS_PING_TIMEOUT: float = 20.0
    WS_PER_MESSAGE_DEFLATE: bool = True
    # --- apps ---
    APPS: dict[str, str] = field(default_factory=dict)
    APP_DIR: str = "."
    FACTORY: bool = False
    ROOT_PATH: str = ""
    LIFESPAN: str = "auto"  # auto | on | off
    LIFESPAN_STARTUP_TIMEOUT: float = 30.0
    LIFESPAN_SHUTDOWN_TIMEOUT: float = 30.0
    # --- git deploys (qactuar/deploy/) ---
    DEPLOY_TIMEOUT: float = 120.0  # wall-clock limit of one clone
    DEPLOY_MAX_BYTES: int = 200 * 1024 * 1024  # most bytes a clone may put on disk
    DEPLOY_ALLOWED_SCHEMES: list[str] = field(default_factory=lambda: ["https"])
    DEPLOY_ALLOWED_HOSTS: list[str] = field(default_factory=list)  # empty = any host
    DEPLOY_KEEP_RELEASES: int = 3  # releases kept per app for rollback, the live one included
    # --- logging ---
    LOGS: dict[str, Any] = field(default_factory=default_log_config)
    LOG_LEVEL: str = ""  # empty = as LOGS says
    ACCESS_LOG: bool = True
    # --- provenance: set by load_config(), never by a source ---
    CONFIG_FILE: str = ""  # absolute path of the config file read, "" when none

    def worker_count(self) -> int:
        return self.WORKERS or os.cpu_count() or 1

    def state_dir(self) -> Path:
        """Run-time state (admin token, deployment records): STATE_DIR, relative ones beside the config."""
        return self._home() / self.STATE_DIR

    def admin_token_file(self) -> Path:
        if self.ADMIN_TOKEN_FILE:
            return self._home() / self.ADMIN_TOKEN_FILE
        return self.state_dir() / "admin.token"

    def _home(self) -> Path:
        """The directory relative paths of a Config built in code (not loaded) are taken from."""
        return Path(self.CONFIG_FILE).parent if self.CONFIG_FILE else Path.cwd()


FIELD_TYPES: Mapping[str, type] = {
    name: get_origin(hint) or hint for name, hint in get_type_hints(Config).items()
}


# --- value rules -------------------------------------------------------------------------------------------


class _RuleError(Exception):
    """A value failed its rule; the message says what is wrong and what is allowed (the loader adds where)."""


def _anything(value: Any) -> bool:
    return True


@dataclass(frozen=True)
class _Rule:
    allowed: str  # completes "expected ...", and covers the type too
    ok: Callable[[Any], bool] = _anything  # runs after the type check; may raise _RuleError to say more
    path: bool = False  # a file system path: made absolute after loading


def _ints(low: int, high: int | None = None, note: str = "") -> _Rule:
    span = f">= {low}" if high is None else f"from {low} to {high}"
    return _Rule(f"an integer {span}{note}", lambda v: low <= v and (high is None or v <= high))


def _choice(options: tuple[str, ...]) -> _Rule:
    return _Rule("one of " + ", ".join(map(repr, options)), lambda v: v in options)


ROUTE_RULE = (
    "a route is '/' or segments like '/api/v1': it starts with '/', has no trailing '/', "
    "no empty, '.' or '..' segment, and no whitespace, control character, '?' or '#'"
)
_ROUTE_PROBLEMS: tuple[tuple[Callable[[str], bool], str], ...] = (
    (lambda r: not r.startswith("/"), "does not start with '/'"),
    (lambda r: r != "/" and r.endswith("/"), "ends with '/' (only the root route '/' may)"),
    (lambda r: "//" in r, "has an empty segment ('//')"),
    (lambda r: any(seg in (".", "..") for seg in r.split("/")), "has a '.' or '..' segment"),
    (lambda r: any(c.isspace() or not c.isprintable() for c in r), "has whitespace or a control character"),
    (lambda r: "?" in r or "#" in r, "has '?' or '#' (a route is a path, not a URL)"),
)


def route_problem(route: str) -> str | None:
    """Why ``route`` is not a valid mount route, or None when it is."""
    return next((problem for bad, problem in _ROUTE_PROBLEMS if bad(route)), None)


def _dotted_name(text: str) -> bool:
    return all(part.isidentifier() and not keyword.iskeyword(part) for part in text.split("."))


def is_app_string(text: str) -> bool:
    """True for ``module.path:attr.path``, optionally ending in ``()`` (call a factory)."""
    module, colon, attr = text.partition(":")
    return bool(colon) and _dotted_name(module) and _dotted_name(attr.removesuffix("()"))


def _apps_ok(apps: dict[Any, Any]) -> bool:
    for route, target in apps.items():
        problem = route_problem(route) if isinstance(route, str) else "is not a string"
        if problem:
            raise _RuleError(f"APPS route {route!r} {problem}; {ROUTE_RULE}")
        if not (isinstance(target, str) and is_app_string(target)):
            raise _RuleError(
                f"APPS app {target!r} for route {route!r} is not allowed; expected 'module.path:attr' "
                "or 'module.path:factory()' (dotted Python identifiers)"
            )
    return True


def _root_path_ok(value: str) -> bool:
    return value == "" or (value != "/" and route_problem(value) is None)


def _logs_ok(value: dict[str, Any]) -> bool:
    version = value.get("version")
    return type(version) is int and version == 1


def _level_ok(value: str) -> bool:
    return value == "" or value.upper() in logging.getLevelNamesMapping()


GIT_SCHEMES = ("https", "http", "ssh", "git", "file")
_HOST_NAME = re.compile(r"[A-Za-z0-9.:\[\]-]+")  # a DNS name or an IP address, as in a URL


def _schemes_ok(value: list[Any]) -> bool:
    return all(item in GIT_SCHEMES for item in value)


def _allow_ips_ok(value: list[Any]) -> bool:
    for item in value:
        if not (isinstance(item, str) and valid_network_entry(item)):
            raise _RuleError(
                f"FORWARDED_ALLOW_IPS entry {item!r} is not an IP address, a network like 10.0.0.0/8, "
                "'unix' (Unix-socket peers) or '*' (every peer)"
            )
    return True


def file_mode(text: str) -> int | None:
    """UDS_MODE text ('660', '0660', '0o660') as permission bits; None for '' (as the umask leaves it)."""
    if not text:
        return None
    digits = text.lower().removeprefix("0o")
    if not (1 <= len(digits) <= 4 and all(c in "01234567" for c in digits)):
        raise ValueError(f"{text!r} is not an octal file mode")
    return int(digits, 8)


def _uds_mode_ok(value: str) -> bool:
    try:
        file_mode(value)
    except ValueError:
        return False
    return True


def _health_path_ok(value: str) -> bool:
    return value == "" or (value != "/" and route_problem(value) is None)


def _hosts_ok(value: list[Any]) -> bool:
    return all(isinstance(item, str) and _HOST_NAME.fullmatch(item) for item in value)


def text_list(text: str) -> list[str]:
    """A list setting written as text: ``https,file``, ``["https", "file"]`` or ``[https, file]``."""
    inner = text.strip()
    if inner.startswith("[") and inner.endswith("]"):
        inner = inner[1:-1]
    items = (item.strip() for item in inner.split(","))
    return [
        item[1:-1] if len(item) > 1 and item[0] == item[-1] and item[0] in "'\"" else item
        for item in items
        if item
    ]


_TEXT = _Rule("a string")
_BOOL = _Rule("true or false")
_PORT = _ints(0, 65535, " (0 picks a free port)")
_SECONDS = _Rule("a number of seconds > 0", lambda v: math.isfinite(v) and v > 0)
_SIZE = _ints(1)
_OFF_OR_SIZE = _ints(0, note=" (0 = off)")


def _path_ok(value: str) -> bool:
    return "\0" not in value  # no file system takes it (os.path.expanduser would raise on it)


_PATH = _Rule("a file system path (a string; '' = not set)", _path_ok, path=True)

_RULES: Mapping[str, _Rule] = {
    "HOST": _TEXT,
    "PORT": _PORT,
    "BACKLOG": _SIZE,
    "UDS": _PATH,
    "UDS_MODE": _Rule("'' or an octal file mode such as '660' or '0o600'", _uds_mode_ok),
    "FD": _ints(-1, note=" (-1 = none)"),
    "FORWARDED_ALLOW_IPS": _Rule(
        "a list of IP addresses, networks (CIDR), 'unix' or '*' (comma-separated in the environment)",
        _allow_ips_ok,
    ),
    "PROXY_PROTOCOL": _choice(PROXY_PROTOCOLS),
    "HEALTH_PATH": _Rule("'' or a path prefix like '/healthz' (no trailing '/')", _health_path_ok),
    "SHUTDOWN_DELAY": _Rule("a number of seconds >= 0", lambda v: math.isfinite(v) and v >= 0),
    "ADMIN_HOST": _TEXT,
    "ADMIN_PORT": _PORT,
    "ADMIN_SOCKET": _PATH,
    "ADMIN_ALLOW_REMOTE": _BOOL,
    "ADMIN_TOKEN_FILE": _PATH,
    "STATE_DIR": _Rule("a non-empty directory path", lambda v: bool(v) and _path_ok(v), path=True),
    "MODE": _choice(MODES),
    "WORKERS": _ints(0, note=" (0 = one per CPU)"),
    "MAX_PROCESSES": _SIZE,
    "USE_UVLOOP": _BOOL,
    "HTTP_PARSER": _Rule(
        "'h11' or 'httptools' (httptools is installed by: pip install 'qactuar[fast]')",
        lambda v: v == "h11" or (v == "httptools" and importlib.util.find_spec("httptools") is not None),
    ),
    "WORKER_TIMEOUT": _SECONDS,
    "GRACEFUL_TIMEOUT": _SECONDS,
    "MAX_REQUESTS": _OFF_OR_SIZE,
    "MAX_REQUESTS_JITTER": _OFF_OR_SIZE,
    "LIMIT_CONCURRENCY": _OFF_OR_SIZE,
    "RELOAD": _BOOL,
    "GATHER_PROC_STATS": _BOOL,
    "REQUEST_TIMEOUT": _SECONDS,
    "SEND_TIMEOUT": _SECONDS,
    "KEEPALIVE_TIMEOUT": _SECONDS,
    "RECV_BYTES": _ints(1024),
    "MAX_REQUEST_LINE": _SIZE,
    "MAX_HEADER_BYTES": _SIZE,
    "MAX_HEADERS": _SIZE,
    "MAX_BODY_BYTES": _ints(0, note=" (0 = unlimited)"),
    "SSL_CERT_PATH": _PATH,
    "SSL_KEY_PATH": _PATH,
    "SSL_CIPHERS": _TEXT,
    "SSL_CA_PATH": _PATH,
    "SSL_VERIFY_CLIENT": _choice(("none", "optional", "required")),
    "SSL_KEY_PASSWORD": _TEXT,
    "WS_MAX_SIZE": _SIZE,
    "WS_MAX_QUEUE": _SIZE,
    "WS_PING_INTERVAL": _Rule(
        "a number of seconds >= 0 (0 = no pings)", lambda v: math.isfinite(v) and v >= 0
    ),
    "WS_PING_TIMEOUT": _SECONDS,
    "WS_PER_MESSAGE_DEFLATE": _BOOL,
    "APPS": _Rule("a table mapping route to 'module:attr' (JSON object text in the environment)", _apps_ok),
    "APP_DIR": _PATH,
    "FACTORY": _BOOL,
    "ROOT_PATH": _Rule("'' or a path prefix like '/prefix' (no trailing '/')", _root_path_ok),
    "LIFESPAN": _choice(LIFESPANS),
    "LIFESPAN_STARTUP_TIMEOUT": _SECONDS,
    "LIFESPAN_SHUTDOWN_TIMEOUT": _SECONDS,
    "DEPLOY_TIMEOUT": _SECONDS,
    "DEPLOY_MAX_BYTES": _SIZE,
    "DEPLOY_ALLOWED_SCHEMES": _Rule(
        "a list of git URL schemes from " + ", ".join(GIT_SCHEMES) + " (comma-separated in the environment)",
        _schemes_ok,
    ),
    "DEPLOY_ALLOWED_HOSTS": _Rule(
        "a list of host names, empty for any host (comma-separated in the environment)", _hosts_ok
    ),
    "DEPLOY_KEEP_RELEASES": _SIZE,
    "LOGS": _Rule(
        "a logging dictConfig table with version = 1 (JSON object text in the environment)", _logs_ok
    ),
    "LOG_LEVEL": _Rule("'' or a logging level name (DEBUG, INFO, WARNING, ERROR, CRITICAL)", _level_ok),
    "ACCESS_LOG": _BOOL,
}

# Seed keys that tuned the seed's polling loop. An event loop waits for readiness, so they mean nothing now.
_IGNORED = frozenset({"SELECT_SLEEP_TIME", "RECV_TIMEOUT"})


def _same(value: Any) -> Any:
    return value


def mode_name(text: str) -> str:
    """The process model ``text`` names, also under its Qactuar 0.2 SERVER_TYPE name (simple_fork, ...)."""
    return SERVER_TYPE_MODES.get(text, text)


def _mode_from_server_type(value: Any) -> Any:
    return mode_name(value) if isinstance(value, str) else value


# Qactuar 0.2 keys: old key -> (field, converts an old value to the field's).
_ALIASES: Mapping[str, tuple[str, Callable[[Any], Any]]] = {
    "SERVER_TYPE": ("MODE", _mode_from_server_type),
    "PROCESS_POOL_SIZE": ("WORKERS", _same),
}


def _type_ok(kind: type, value: object) -> bool:
    if kind in (int, float) and isinstance(value, bool):
        return False
    return isinstance(value, int | float) if kind is float else isinstance(value, kind)


def _checked(name: str, value: Any, given: Any) -> Any:
    """``value`` for field ``name`` if its type and rule allow it (ints widen to float), else _RuleError.

    ``given`` is the value as the user wrote it (environment text before conversion), for the message.
    """
    kind, rule = FIELD_TYPES[name], _RULES[name]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        try:
            value = float(value)
        except OverflowError:  # an integer larger than any float (TOML and JSON allow it)
            value = None  # fails the type check below
    if not (_type_ok(kind, value) and rule.ok(value)):
        raise _RuleError(f"{given!r} is not allowed for {name}; expected {rule.allowed}")
    return float(value) if kind is float else value


_BOOL_WORDS: Mapping[str, bool] = {
    **dict.fromkeys(("1", "true", "yes", "on"), True),
    **dict.fromkeys(("0", "false", "no", "off"), False),
}
_TEXT_PARSERS: Mapping[type, Callable[[str], object]] = {
    int: int,
    float: float,
    bool: lambda text: _BOOL_WORDS[text.strip().lower()],
    dict: json.loads,
    list: text_list,
    str: str,
}


def _from_text(kind: type, text: str) -> object:
    """Convert environment text to ``kind``; text that does not convert is returned for the type check."""
    try:
        return _TEXT_PARSERS[kind](text)
    except (ValueError, KeyError, RecursionError):  # RecursionError: JSON nested deeper than Python recurses
        return text


# --- layers ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Layer:
    """One source of settings: its raw keys and values, and how to talk about them."""

    values: Mapping[str, Any]
    where: Callable[[str], str]  # raw key -> "config file /x/qactuar.toml, key 'port'"
    base_dir: Path  # relative paths from this source resolve here
    spell: Callable[[str], str] = str.upper  # how this source writes a field name (for "did you mean")
    text: bool = False  # values are text to convert (environment)
    strict: bool = True  # unknown keys are errors (else warnings)
    merge: bool = False  # dict values are added to the lower layers' value instead of replacing it


@dataclass(frozen=True)
class _Setting:
    value: Any
    where: str
    base_dir: Path


def _unknown_key(layer: _Layer, raw: str, key: str) -> None:
    """Raise (or, for a lenient layer, log) that ``raw`` names no setting."""
    if key == "CONFIG_FILE":
        raise ConfigError(
            f"{layer.where(raw)}: CONFIG_FILE is set by the loader to the file it read; "
            f"choose the file with --config FILE or {CONFIG_ENV}"
        )
    match = difflib.get_close_matches(key, list(_RULES), n=1)
    hint = (
        f"did you mean {layer.spell(match[0])!r}?"
        if match
        else "known settings: " + ", ".join(map(layer.spell, _RULES))
    )
    message = f"{layer.where(raw)}: unknown setting {raw!r}; {hint}"
    if layer.strict:
        raise ConfigError(message)
    _log.warning("%s (ignored)", message)


def _fields_in(layer: _Layer) -> Iterator[tuple[str, str, Callable[[Any], Any]]]:
    """Yield (raw key, field name, value converter) for each key of ``layer`` that sets a field.

    Ignored seed keys and deprecated 0.2 keys are logged; unknown and repeated keys are errors.
    """
    claimed: dict[str, str] = {}
    for raw in layer.values:
        key = raw.upper()
        name, convert = _ALIASES.get(key, (key, _same))
        if key in _IGNORED:
            _log.warning(
                "%s: %s is ignored: Qactuar 0.1 used it to pace its select()/recv() polling loop; "
                "an event loop sleeps until a socket is ready, so there is nothing to tune. Remove it.",
                layer.where(raw),
                raw,
            )
        elif name not in _RULES:
            _unknown_key(layer, raw, key)
        elif name in claimed:
            raise ConfigError(f"{layer.where(raw)}: {name} is given twice (as {claimed[name]!r} and {raw!r})")
        else:
            if key in _ALIASES:
                _log.warning("%s: %s is deprecated; use %s", layer.where(raw), raw, layer.spell(name))
            claimed[name] = raw
            yield raw, name, convert


def _value(layer: _Layer, raw: str, name: str, convert: Callable[[Any], Any]) -> Any:
    given = value = layer.values[raw]
    if layer.text and isinstance(value, str):
        value = _from_text(FIELD_TYPES[name], value)
    return _checked(name, convert(value), given)


def _apply(layer: _Layer, settings: dict[str, _Setting], defaults: Config) -> None:
    for raw, name, convert in _fields_in(layer):
        where = layer.where(raw)
        try:
            value = _value(layer, raw, name, convert)
        except _RuleError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        if layer.merge:
            value = {**(settings[name].value if name in settings else getattr(defaults, name)), **value}
        settings[name] = _Setting(value, where, layer.base_dir)


# --- config files ------------------------------------------------------------------------------------------

_FORMATS: Mapping[str, tuple[str, Callable[[bytes], Any]]] = {
    ".toml": ("TOML", lambda data: tomllib.loads(data.decode("utf-8"))),
    ".json": ("JSON", json.loads),
}


def _find_config_file(named: list[tuple[str, str]], work_dir: Path) -> Path | None:
    """The first file named in ``named`` (value, who named it), else ./qactuar.toml if it exists."""
    for given, origin in named:
        if given:
            path = Path(os.path.normpath(work_dir / os.path.expanduser(given)))
            if not path.is_file():
                raise ConfigError(f"{origin}: config file {path} does not exist or is not a file")
            return path
    default = work_dir / DEFAULT_CONFIG_NAME
    return default if default.is_file() else None


def _read_config_file(path: Path) -> dict[str, Any]:
    if path.suffix.lower() not in _FORMATS:
        kind = repr(path.suffix) if path.suffix else "(no extension)"
        raise ConfigError(f"config file {path}: unsupported file type {kind}; use .toml or .json")
    fmt, parse = _FORMATS[path.suffix.lower()]
    try:
        data = parse(path.read_bytes())
    except OSError as exc:
        raise ConfigError(f"config file {path}: cannot read it: {exc.strerror}") from None
    except ValueError as exc:  # TOMLDecodeError, JSONDecodeError and UnicodeDecodeError; they give the line
        raise ConfigError(f"config file {path}: invalid {fmt}: {exc}") from None
    except RecursionError:
        raise ConfigError(f"config file {path}: invalid {fmt}: arrays or tables nested too deeply") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: the top level must be an object of settings")
    return data


def _file_layer(path: Path) -> _Layer:
    data = _read_config_file(path)
    return _Layer(
        data,
        where=lambda key: f"config file {path}, key {key!r}",
        base_dir=path.parent,
        spell=str.lower if path.suffix.lower() == ".toml" else str.upper,
    )


# --- the other sources -------------------------------------------------------------------------------------


def _conf_layer(conf: Config, work_dir: Path) -> _Layer:
    defaults = Config()
    changed = {
        f.name: getattr(conf, f.name)
        for f in fields(Config)
        if f.name != "CONFIG_FILE" and getattr(conf, f.name) != getattr(defaults, f.name)
    }
    return _Layer(changed, lambda key: f"qactuar.run() conf=Config({key}=...)", work_dir)


def _env_layer(env: Mapping[str, str], work_dir: Path) -> _Layer:
    values = {
        key.removeprefix(ENV_PREFIX): value
        for key, value in env.items()
        if key.startswith(ENV_PREFIX) and key != CONFIG_ENV
    }
    return _Layer(
        values,
        where=lambda key: f"environment variable {ENV_PREFIX}{key}",
        base_dir=work_dir,
        spell=lambda name: ENV_PREFIX + name,
        text=True,
        strict=False,
    )


def cli_flag(name: str) -> str:
    """The command line flag for field ``name``: PORT -> --port."""
    return "--" + name.lower().replace("_", "-")


def _cli_where(key: str) -> str:
    return "command line " + ("APP argument" if key.upper() == "APPS" else cli_flag(key))


# --- loading -----------------------------------------------------------------------------------------------


def _check_tls(settings: Mapping[str, _Setting]) -> None:
    given = [name for name in ("SSL_CERT_PATH", "SSL_KEY_PATH") if name in settings and settings[name].value]
    if len(given) == 1:
        (name,) = given
        missing = "SSL_KEY_PATH" if name == "SSL_CERT_PATH" else "SSL_CERT_PATH"
        raise ConfigError(
            f"{settings[name].where}: {name} = {settings[name].value!r} is given but {missing} is not; "
            "TLS needs SSL_CERT_PATH and SSL_KEY_PATH together (or neither)"
        )


def _check_proxy_protocol(settings: Mapping[str, _Setting]) -> None:
    """A PROXY header comes before the TLS handshake, but the TLS layer reads first: they cannot mix."""
    proxy, cert = settings.get("PROXY_PROTOCOL"), settings.get("SSL_CERT_PATH")
    if proxy is not None and proxy.value != "off" and cert is not None and cert.value:
        raise ConfigError(
            f"{proxy.where}: PROXY_PROTOCOL = {proxy.value!r} cannot be used with TLS ({cert.where}); "
            "terminate TLS at the load balancer that sends the PROXY header, or set PROXY_PROTOCOL = 'off'"
        )


def _absolute(path: str, base_dir: Path) -> str:
    return os.path.normpath(base_dir / os.path.expanduser(path)) if path else ""


def load_config(
    *,
    config_file: str | None = None,
    cli: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    conf: Config | None = None,
    mounts: Mapping[str, str] | None = None,
) -> Config:
    """Build a Config from every source (see the module docstring for the order); raise ConfigError.

    ``cli`` and ``overrides`` map field names to typed values, only the ones the user gave. ``conf`` is a
    Config whose non-default fields form a layer just above the file (its CONFIG_FILE, when set, names the
    file). ``mounts`` (route -> app, from ``--mount``) are added to APPS after the command line flags.
    """
    env = os.environ if env is None else env
    work_dir = Path(os.path.abspath(cwd or os.getcwd()))
    named = [
        (config_file or "", "command line --config"),
        (conf.CONFIG_FILE if conf else "", "conf.CONFIG_FILE"),
        (env.get(CONFIG_ENV, ""), f"environment variable {CONFIG_ENV}"),
    ]
    path = _find_config_file(named, work_dir)
    layers = [
        *([_file_layer(path)] if path else []),
        *([_conf_layer(conf, work_dir)] if conf else []),
        _env_layer(env, work_dir),
        _Layer(cli or {}, _cli_where, work_dir, spell=cli_flag),
        _Layer({"APPS": mounts} if mounts else {}, lambda key: "command line --mount", work_dir, merge=True),
        _Layer(overrides or {}, lambda key: f"qactuar.run() argument {key}", work_dir),
    ]
    defaults = Config()
    settings: dict[str, _Setting] = {}
    for layer in layers:
        _apply(layer, settings, defaults)
    _check_tls(settings)
    _check_proxy_protocol(settings)
    config = Config(**{name: s.value for name, s in settings.items()}, CONFIG_FILE=str(path or ""))
    home = path.parent if path else work_dir
    for name, rule in _RULES.items():
        if rule.path:
            base_dir = settings[name].base_dir if name in settings else home
            setattr(config, name, _absolute(getattr(config, name), base_dir))
    return config
