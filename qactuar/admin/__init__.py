"""The admin socket: how the ``qactuar`` CLI and the TUI inspect and steer a running server.

The master hosts an ``AdminServer`` in its event loop and implements ``AdminBackend`` for it; clients find
the server with ``locate(config)`` and talk through ``AdminClient`` (asyncio) or ``SyncAdminClient``.  Both
sides share the sans-I/O ``protocol.Codec``.  ``docs/admin-protocol.md`` describes the wire format.
"""

from __future__ import annotations

from qactuar.admin.backend import AdminBackend, BackendError, LogRecord
from qactuar.admin.client import (
    AdminClient,
    AdminError,
    AdminUnavailable,
    Location,
    Subscription,
    SyncAdminClient,
    SyncSubscription,
    locate,
)
from qactuar.admin.logfilter import LogFilter
from qactuar.admin.server import AdminLimits, AdminServer

__all__ = [
    "AdminBackend",
    "AdminClient",
    "AdminError",
    "AdminLimits",
    "AdminServer",
    "AdminUnavailable",
    "BackendError",
    "Location",
    "LogFilter",
    "LogRecord",
    "Subscription",
    "SyncAdminClient",
    "SyncSubscription",
    "locate",
]
