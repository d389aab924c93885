"""The process models every end-to-end suite runs against.

"async+fast" is async mode on the `fast` extra (uvloop and the httptools parser); every
other entry runs on the stock asyncio loop and h11, so the pure path is always tested.
"""

from __future__ import annotations

from typing import Any

SERVING_MODES = ["async", "prefork", "postfork", "async+fast"]


def mode_settings(mode: str) -> tuple[str, dict[str, Any]]:
    """(MODE, extra settings) for a SERVING_MODES entry."""
    if mode.endswith("+fast"):
        return mode.removesuffix("+fast"), {"use_uvloop": True, "http_parser": "httptools"}
    return mode, {}
