"""Event loop creation: uvloop when asked for and installed, stock asyncio otherwise."""

from __future__ import annotations

import asyncio
import logging

server_log = logging.getLogger("qt_server")


def new_event_loop(use_uvloop: bool) -> asyncio.AbstractEventLoop:
    if use_uvloop:
        try:
            import uvloop
        except ImportError:
            server_log.debug("uvloop is not installed; using the asyncio event loop")
        else:
            loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
            return loop
    return asyncio.new_event_loop()
