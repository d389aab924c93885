"""Exit codes shared by the master, generations and serving processes.

A distinct code for "failed at boot" lets a supervisor stop respawning instead of looping.
"""

from __future__ import annotations

import os
import signal

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CONFIG = 2
EXIT_NOTHING_TO_SERVE = 3
EXIT_BOOT_FAILED = 4


def describe_exit(status: int) -> str:
    """A waitpid status in words: "exit code 3" or "killed by SIGKILL"."""
    code = os.waitstatus_to_exitcode(status)
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"
