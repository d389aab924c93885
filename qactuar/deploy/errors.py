"""The one exception of the deploy pipeline, and the cleaning of hostile text that goes into its messages.

Every step (validation, clone, entry discovery, clash check, import check, the generation swap) raises
``DeployError`` with a sentence for the operator; the deployer turns it into a "failed" progress event and
the admin layer into an error reply.  Anything else escaping a step is a bug and is logged as one.

Much of what a message quotes comes from the repository or the remote (git's ``remote:`` lines, an app's
traceback), so it passes through ``plain_text`` first: escape sequences and control characters are
removed (CVE-2024-52005: a server's sideband message could recolour or rewrite the operator's terminal).
"""

from __future__ import annotations

import re

_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-_]|[\x00-\x08\x0b-\x1f\x7f-\x9f]")


class DeployError(Exception):
    """A deploy step was refused or failed; ``str(exc)`` is the reason shown to the operator."""


def plain_text(text: str) -> str:
    """``text`` without escape sequences and control characters other than TAB and newline."""
    return _ESCAPES.sub("", text)
