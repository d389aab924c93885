"""A module that fails at import, as a broken deploy would."""

raise RuntimeError("this app is broken at import time")
