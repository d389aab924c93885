"""Load and soak tests against real servers on 127.0.0.1, bounded in connections and in time.

The default suite runs every test with ``QACTUAR_SOAK_SECONDS`` (default 3) seconds of load per
mode; the long soak is the same tests with a longer load phase::

    QACTUAR_SOAK_SECONDS=60 .venv/bin/pytest -m soak

Each test prints one line of figures (see them with ``-s``).
"""

from __future__ import annotations

import pytest
from soak_support import needed_fds, raise_fd_limit


@pytest.fixture(scope="session", autouse=True)
def fd_limit() -> int:
    """The soft RLIMIT_NOFILE raised to the hard limit, for this process and the servers it starts."""
    needed = needed_fds()
    limit = raise_fd_limit(needed)
    if limit < needed:
        pytest.skip(f"RLIMIT_NOFILE allows {limit} open files; these counts need {needed} (see `ulimit -Hn`)")
    return limit
