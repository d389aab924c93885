"""The process models every end-to-end suite runs against.

"async+uvloop" is async mode on uvloop (the `fast` extra); every other entry runs on the
stock asyncio loop, so the pure path is always tested.
"""

from __future__ import annotations

from typing import Any

SERVING_MODES = ["async", "prefork", "postfork", "async+uvloop"]


def mode_settings(mode: str) -> tuple[str, dict[str, Any]]:
    """(MODE, extra settings) for a SERVING_MODES entry."""
    if mode.endswith("+uvloop"):
        return mode.removesuffix("+uvloop"), {"use_uvloop": True}
    return mode, {}
