"""Tracebacks that show the app's code only.

When an app fails while Qactuar calls into it, the frames of Qactuar's own caller (and of
importlib, for import errors) say nothing to the app's author; they are dropped so the message
shown next to a failed mount starts at the app.
"""

from __future__ import annotations

import traceback
from collections.abc import Collection


def summary(error: BaseException) -> str:
    """``"Type: message"``, or just ``"Type"`` when the message is empty."""
    message = str(error)
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def app_traceback(error: BaseException, *, skip_files: Collection[str]) -> str:
    """The formatted traceback of ``error`` without frames from ``skip_files`` or importlib."""
    details = traceback.TracebackException.from_exception(error)
    details.stack = traceback.StackSummary.from_list(
        [
            frame
            for frame in details.stack
            if frame.filename not in skip_files and not frame.filename.startswith("<frozen importlib")
        ]
    )
    return "".join(details.format()).rstrip()
