"""``python -m qactuar``: the same command line as the ``qactuar`` script."""

from __future__ import annotations

from qactuar.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
