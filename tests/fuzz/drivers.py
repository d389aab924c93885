"""The HTTP drivers the fuzz tests run against: every entry must behave the same.

An entry is anything that builds a driver from ``Limits`` (a class, or a ``functools.partial``
that picks a head parser); the tests are parametrised over this list, so a new driver gets the
whole fuzz suite by being added here.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from qactuar.http.driver import HTTPDriver, Limits
from qactuar.http.heads import parse_head_httptools

DriverFactory = Callable[[Limits], Any]

DRIVERS: list[DriverFactory] = [HTTPDriver, functools.partial(HTTPDriver, parse_head=parse_head_httptools)]


def driver_id(factory: DriverFactory) -> str:
    """A readable test id: the class name, or the partial's function and keywords."""
    name = getattr(factory, "__name__", None)
    if name is not None:
        return str(name)
    func = getattr(factory, "func", None)
    keywords = getattr(factory, "keywords", {})
    if func is not None:
        extra = ",".join(f"{k}={getattr(v, '__name__', v)}" for k, v in keywords.items())
        return f"{getattr(func, '__name__', func)}({extra})"
    return repr(factory)
