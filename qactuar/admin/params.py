"""Checking a request's ``args`` against what a command takes, with errors that name the problem.

A command declares its parameters as ``Param`` rows; ``parse_args`` turns the client's JSON object into
checked values or raises ``ArgumentError``, which the server sends back as an error reply on a connection
that stays open.  Unknown argument names are errors too (a typo must not silently mean "the default").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

REQUIRED: Any = object()


class ArgumentError(Exception):
    """A request named an unknown command or gave bad arguments; the message says which and why."""


def between(low: int, high: int) -> Callable[[Any], str | None]:
    return lambda value: None if low <= value <= high else f"must be from {low} to {high}"


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    kinds: tuple[type, ...]  # JSON types accepted (int never accepts a bool)
    default: Any = REQUIRED  # also used for an explicit null
    check: Callable[[Any], str | None] | None = None  # what is wrong with a well-typed value, or None

    def parse(self, command: str, args: Mapping[str, Any]) -> Any:
        value = args.get(self.name)
        if value is None:  # absent, or null: the default
            if self.default is REQUIRED:
                raise ArgumentError(f"{command}: missing argument {self.name!r}")
            return self.default
        if not isinstance(value, self.kinds) or (isinstance(value, bool) and bool not in self.kinds):
            expected = " or ".join(kind.__name__ for kind in self.kinds)
            raise ArgumentError(f"{command}: argument {self.name!r} must be {expected}, not {value!r:.60}")
        problem = self.check(value) if self.check else None
        if problem:
            raise ArgumentError(f"{command}: argument {self.name!r} {problem} (got {value!r:.60})")
        return value


def parse_args(
    command: str, params: tuple[Param, ...], args: Mapping[str, Any], *, rest: bool = False
) -> dict[str, Any]:
    """The checked values of ``params`` in ``args``; with ``rest``, unknown names are passed through as they
    are (for a command whose remaining arguments are checked later, like ``subscribe``)."""
    values = {param.name: param.parse(command, args) for param in params}
    unknown = [name for name in args if name not in values]
    if unknown and not rest:
        takes = ", ".join(param.name for param in params) or "no arguments"
        raise ArgumentError(f"{command}: unknown argument {unknown[0]!r:.60}; it takes {takes}")
    return {**{name: args[name] for name in unknown}, **values}
