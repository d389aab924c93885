"""The admin commands: one table row each, naming its parameters, whether it changes anything, and its code.

The server looks a request's command up in ``COMMANDS``, checks its arguments against the row's ``Param``
list (``params.py``) and awaits ``run``; a command is added by writing one function and one row.
``mutating`` rows are audit-logged by the server with the peer, the arguments and the
result; read-only rows are not, so a TUI polling ``status`` does not flood the log.

Two policies live here because they are about content, not transport:

- ``config`` output is redacted: any key whose name contains TOKEN, PASSWORD, PASSWD, SECRET or CREDENTIAL
  (at any depth, e.g. inside LOGS) has a non-empty value replaced by ``<redacted>``, and the admin token is
  cut out of every string value whatever its key.  An empty value is shown, so "no password set" is visible.
- ``set`` changes only what is safe to change in a running server (``SETTABLE``); everything else is refused
  with the list of what can be changed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from qactuar.admin.backend import AdminBackend
from qactuar.admin.params import ArgumentError, Param, between
from qactuar.admin.subscriptions import FILTER_PARAMS, Subscriptions, log_filter

MAX_WORKERS = 1024  # a typo like "scale 10000" must not fork that many processes
MAX_LOG_RECORDS = 5000  # per logs request: a reply must fit in one 1 MiB frame
MAX_STATS_SECONDS = 3600
MAX_DEPLOY_TEXT = 4096  # URL, route, name, ref, entry: checked by the pipeline; this keeps audit lines sane
REDACTED = "<redacted>"
SECRET_NAME_PARTS = ("TOKEN", "PASSWORD", "PASSWD", "SECRET", "CREDENTIAL")


@dataclass(frozen=True, slots=True)
class Context:
    """What a command may use: the backend, its connection's subscriptions, and the values never to send."""

    backend: AdminBackend
    subscriptions: Subscriptions
    secrets: tuple[str, ...]


Run = Callable[[Context, dict[str, Any]], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Command:
    run: Run
    params: tuple[Param, ...] = ()
    mutating: bool = False  # audit-logged
    rest: bool = False  # arguments beyond ``params`` reach ``run`` unchecked, for it to check


# --- redaction ---------------------------------------------------------------------------------------------


def _secret_name(key: object) -> bool:
    return isinstance(key, str) and any(part in key.upper() for part in SECRET_NAME_PARTS)


def redact(value: Any, secrets: tuple[str, ...]) -> Any:
    """``value`` with secret-named entries and every occurrence of ``secrets`` replaced by ``<redacted>``."""
    if isinstance(value, dict):
        return {
            key: REDACTED if _secret_name(key) and item not in ("", None) else redact(item, secrets)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [redact(item, secrets) for item in value]
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, REDACTED) if secret else value
    return value


# --- settings that may change at run time ------------------------------------------------------------------


def _log_level(value: object) -> str:
    name = value.upper() if isinstance(value, str) else ""
    if name not in logging.getLevelNamesMapping():
        raise ArgumentError(
            f"set: LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL, not {value!r:.60}"
        )
    return name


def _workers(value: object) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_WORKERS:
        raise ArgumentError(
            f"set: WORKERS must be a whole number from 0 (one per CPU) to {MAX_WORKERS}, not {value!r:.60}"
        )
    return value


SETTABLE: Mapping[str, Callable[[object], object]] = {"LOG_LEVEL": _log_level, "WORKERS": _workers}


# --- the commands ------------------------------------------------------------------------------------------


async def _ping(ctx: Context, args: dict[str, Any]) -> Any:
    return {"time": time.time()}


async def _status(ctx: Context, args: dict[str, Any]) -> Any:
    return ctx.backend.status()


async def _processes(ctx: Context, args: dict[str, Any]) -> Any:
    return ctx.backend.processes()


async def _apps(ctx: Context, args: dict[str, Any]) -> Any:
    return ctx.backend.apps()


async def _stats(ctx: Context, args: dict[str, Any]) -> Any:
    return ctx.backend.stats(args["seconds"], args["route"])


async def _logs(ctx: Context, args: dict[str, Any]) -> Any:
    return ctx.backend.logs(args["n"], log_filter(args))


async def _config(ctx: Context, args: dict[str, Any]) -> Any:
    return redact(ctx.backend.config(), ctx.secrets)


async def _reload(ctx: Context, args: dict[str, Any]) -> Any:
    return await ctx.backend.reload()


async def _scale(ctx: Context, args: dict[str, Any]) -> Any:
    return await ctx.backend.scale(args["n"])


async def _kill(ctx: Context, args: dict[str, Any]) -> Any:
    return await ctx.backend.kill(args["pid"])


async def _set(ctx: Context, args: dict[str, Any]) -> Any:
    key = args["key"].upper()
    if key not in SETTABLE:
        raise ArgumentError(
            f"set: {args['key']!r:.60} cannot be changed while the server runs; these can: "
            f"{', '.join(SETTABLE)} (change others in the config and restart)"
        )
    return await ctx.backend.set_setting(key, SETTABLE[key](args["value"]))


async def _deployments(ctx: Context, args: dict[str, Any]) -> Any:
    return ctx.backend.deployments()


async def _deploy(ctx: Context, args: dict[str, Any]) -> Any:
    return await ctx.backend.deploy(args["url"], args["route"], args["name"], args["ref"], args["entry"])


async def _update(ctx: Context, args: dict[str, Any]) -> Any:
    return await ctx.backend.update(args["name"], args["ref"])


async def _rollback(ctx: Context, args: dict[str, Any]) -> Any:
    return await ctx.backend.rollback(args["name"])


async def _undeploy(ctx: Context, args: dict[str, Any]) -> Any:
    return await ctx.backend.undeploy(args["name"])


def _text(limit: int) -> Callable[[Any], str | None]:
    """Bounds a text argument; what the text may contain is for the deploy pipeline to check."""
    return lambda value: None if 0 < len(value) <= limit else f"must be 1 to {limit} characters"


_NAME = Param("name", (str,), check=_text(MAX_DEPLOY_TEXT))
_REF = Param("ref", (str,), None, _text(MAX_DEPLOY_TEXT))


async def _subscribe(ctx: Context, args: dict[str, Any]) -> Any:
    topic = args.pop("topic")
    return {"sub": ctx.subscriptions.add(topic, args)}


async def _unsubscribe(ctx: Context, args: dict[str, Any]) -> Any:
    ctx.subscriptions.remove(args["sub"])
    return {"sub": args["sub"]}


COMMANDS: Mapping[str, Command] = {
    "ping": Command(_ping),
    "status": Command(_status),
    "processes": Command(_processes),
    "apps": Command(_apps),
    "stats": Command(
        _stats,
        (Param("seconds", (int,), 300, between(1, MAX_STATS_SECONDS)), Param("route", (str,), None)),
    ),
    "logs": Command(_logs, (Param("n", (int,), 100, between(1, MAX_LOG_RECORDS)), *FILTER_PARAMS)),
    "config": Command(_config),
    "reload": Command(_reload, mutating=True),
    "scale": Command(_scale, (Param("n", (int,), check=between(1, MAX_WORKERS)),), mutating=True),
    "kill": Command(_kill, (Param("pid", (int,), check=between(1, 2**31 - 1)),), mutating=True),
    "set": Command(_set, (Param("key", (str,)), Param("value", (str, int))), mutating=True),
    "deployments": Command(_deployments),
    "deploy": Command(
        _deploy,
        (
            Param("url", (str,), check=_text(MAX_DEPLOY_TEXT)),
            Param("route", (str,), check=_text(MAX_DEPLOY_TEXT)),
            Param("name", (str,), None, _text(MAX_DEPLOY_TEXT)),
            _REF,
            Param("entry", (str,), None, _text(MAX_DEPLOY_TEXT)),
        ),
        mutating=True,
    ),
    "update": Command(_update, (_NAME, _REF), mutating=True),
    "rollback": Command(_rollback, (_NAME,), mutating=True),
    "undeploy": Command(_undeploy, (_NAME,), mutating=True),
    "subscribe": Command(_subscribe, (Param("topic", (str,)),), rest=True),
    "unsubscribe": Command(_unsubscribe, (Param("sub", (int,)),)),
}
