"""systemd's notification protocol: tell the service manager when we are ready, reloading or stopping.

With ``Type=notify`` (or ``notify-reload``) systemd passes ``NOTIFY_SOCKET``, the address of a Unix
datagram socket (a path, or ``@name`` for the abstract namespace), and waits for ``READY=1`` before
it counts the service as started and starts units ordered after it.  Each datagram is
newline-separated ``KEY=VALUE`` lines (sd_notify(3)).  We send:

* ``READY=1`` once the first generation (or async mode's server) serves, with a ``STATUS=`` line;
* ``RELOADING=1`` with ``MONOTONIC_USEC=`` when a reload starts, ``READY=1`` when it is done;
* ``STOPPING=1`` when a shutdown begins.

Without NOTIFY_SOCKET every call does nothing, so callers need no checks.  A notification that
cannot be delivered is logged once at debug level and otherwise ignored: the service manager's
bookkeeping must never stop a server from serving.  The socket is opened close-on-exec and
generations close it after fork (they keep only their listening sockets), so only the process
that owns the service (the master, or async mode's single process) ever notifies.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping

server_log = logging.getLogger("qt_server")


class SystemdNotifier:
    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        address = (os.environ if env is None else env).get("NOTIFY_SOCKET", "")
        self.address = "\0" + address[1:] if address.startswith("@") else address
        self._sock: socket.socket | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    def notify(self, *lines: str) -> None:
        if not self.address:
            return
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto("\n".join(lines).encode("utf-8"), self.address)
        except OSError as exc:
            server_log.debug("sd_notify to %r failed: %s", self.address, exc)

    def ready(self, status: str) -> None:
        self.notify("READY=1", f"STATUS={status}")

    def reloading(self) -> None:
        self.notify("RELOADING=1", f"MONOTONIC_USEC={time.monotonic_ns() // 1000}", "STATUS=Reloading")

    def stopping(self) -> None:
        self.notify("STOPPING=1", "STATUS=Draining in-flight requests")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
