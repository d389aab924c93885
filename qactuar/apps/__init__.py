"""Apps: import strings to ASGI apps, the route table, per-app lifespan, and the app table."""

from __future__ import annotations

from qactuar.apps.lifespan import Lifespan, LifespanFailure
from qactuar.apps.loader import AppImportError, add_app_dir, import_app
from qactuar.apps.router import Mount, RouteTable, root_path_for, validate_route
from qactuar.apps.table import AppTable

__all__ = [
    "AppImportError",
    "AppTable",
    "Lifespan",
    "LifespanFailure",
    "Mount",
    "RouteTable",
    "add_app_dir",
    "import_app",
    "root_path_for",
    "validate_route",
]
