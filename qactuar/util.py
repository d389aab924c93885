"""The seed's ``qactuar.util`` module, kept so ``from qactuar.util import TornadoWrapper`` still works.

``TornadoWrapper`` lives in ``qactuar.contrib.tornado``; it is looked up on first use (PEP 562), so
importing this module does not need Tornado installed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from qactuar.contrib.tornado import TornadoWrapper

__all__ = ["TornadoWrapper"]


def __getattr__(name: str) -> Any:
    if name == "TornadoWrapper":
        from qactuar.contrib.tornado import TornadoWrapper

        return TornadoWrapper
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
