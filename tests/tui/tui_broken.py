"""An app module that fails at import, so the dashboard has a failed app to show."""

raise RuntimeError("this app is broken at import time")
