"""Every listening socket a server serves on: TCP, a Unix socket, an inherited fd, systemd's sockets.

The process that owns the service (the master, or async mode's single process) opens them once;
generations and workers inherit them.  Several at once are normal: a Unix socket for the local
nginx plus a TCP port for the load balancer's health checks, say.  Sources, in this order:

* systemd socket activation: ``LISTEN_PID`` equal to our pid and ``LISTEN_FDS=n`` mean fds
  3 .. 3+n-1 are listening sockets systemd opened for us (sd_listen_fds(3)).  The variables are
  removed from the environment after reading, so no child mistakes them for its own.
* ``FD`` (``--fd N``): a socket inherited from whatever started us (a supervisor, a test).
* ``UDS`` (``--uds PATH``): a Unix socket we create, with ``UDS_MODE`` permissions applied before
  anyone can connect (the socket is created under a umask of 0177, then chmod-ed).  A stale socket
  file left by a crash is replaced; one that a live server still answers on is an error.  We remove
  the file when we stop, if it is still ours.
* ``HOST``/``PORT``: bound when no other source gave a listener, or when HOST or PORT is set to
  something other than its default -- so ``--uds PATH`` alone serves only the Unix socket, as with
  uvicorn, while ``--uds PATH --port 8080`` serves both.

Inherited sockets (systemd, ``--fd``) must be stream sockets; ``listen()`` is called on them in
case they were only bound.  They are never unlinked or re-bound: their owner keeps them.
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat
from collections.abc import MutableMapping
from dataclasses import dataclass, field

from qactuar.config import Config, file_mode
from qactuar.net import BindError, bind_tcp

SD_LISTEN_FDS_START = 3
_DEFAULTS = Config()


@dataclass
class Listeners:
    """The open listening sockets, and the Unix socket files we created (removed on close)."""

    sockets: list[socket.socket] = field(default_factory=list)
    owned_paths: list[tuple[str, int]] = field(default_factory=list)  # (path, inode)

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()
        self.sockets.clear()
        for path, inode in self.owned_paths:
            with contextlib.suppress(OSError):
                if os.stat(path).st_ino == inode:
                    os.unlink(path)
        self.owned_paths.clear()


def open_listeners(config: Config, env: MutableMapping[str, str] | None = None) -> Listeners:
    """Open every configured listener (see the module docstring); BindError names the one that failed."""
    environ = os.environ if env is None else env
    listeners = Listeners()
    try:
        listeners.sockets.extend(systemd_sockets(environ, config.BACKLOG))
        if config.FD >= 0:
            listeners.sockets.append(inherited_socket(config.FD, config.BACKLOG, f"--fd {config.FD}"))
        if config.UDS:
            sock, inode = bind_unix(config.UDS, config.UDS_MODE, config.BACKLOG)
            listeners.sockets.append(sock)
            listeners.owned_paths.append((config.UDS, inode))
        tcp_set = (config.HOST, config.PORT) != (_DEFAULTS.HOST, _DEFAULTS.PORT)
        if not listeners.sockets or tcp_set:
            listeners.sockets.append(bind_tcp(config.HOST, config.PORT, config.BACKLOG))
    except BaseException:
        listeners.close()
        raise
    return listeners


def systemd_sockets(env: MutableMapping[str, str], backlog: int) -> list[socket.socket]:
    """The sockets systemd passed to this process (none when LISTEN_PID names another process)."""
    pid, count = env.get("LISTEN_PID", ""), env.get("LISTEN_FDS")
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        env.pop(name, None)
    if count is None or not pid.isdigit() or int(pid) != os.getpid():
        return []
    if not count.isdigit():
        raise BindError(f"LISTEN_FDS={count!r} is not a number of file descriptors")
    fds = range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + int(count))
    return [inherited_socket(fd, backlog, f"systemd socket (fd {fd})") for fd in fds]


def inherited_socket(fd: int, backlog: int, what: str) -> socket.socket:
    """Adopt fd as a listening stream socket (its family is read from the fd)."""
    try:
        sock = socket.socket(fileno=fd)
    except OSError as exc:
        raise BindError(f"{what} is not an open socket: {exc.strerror}") from None
    if sock.type != socket.SOCK_STREAM:
        sock.detach()
        raise BindError(f"{what} is not a stream socket")
    try:
        sock.listen(backlog)
    except OSError as exc:
        sock.detach()
        raise BindError(f"{what} cannot listen: {exc.strerror}") from None
    sock.setblocking(False)
    sock.set_inheritable(True)
    return sock


def bind_unix(path: str, mode_text: str, backlog: int) -> tuple[socket.socket, int]:
    """A listening Unix stream socket at ``path`` with mode ``mode_text``; returns it and its inode."""
    mode = file_mode(mode_text)  # checked when the config was loaded
    _remove_stale_socket(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        old_umask = os.umask(0o177)  # nobody but us until the mode asked for is set
        try:
            sock.bind(path)
        finally:
            os.umask(old_umask)
        if mode is not None:
            os.chmod(path, mode)
        else:
            os.chmod(path, 0o666 & ~old_umask)
        sock.listen(backlog)
        inode = os.stat(path).st_ino
    except OSError as exc:
        sock.close()
        raise BindError(f"cannot listen on unix:{path}: {exc.strerror or exc}") from None
    sock.setblocking(False)
    sock.set_inheritable(True)
    return sock, inode


def _remove_stale_socket(path: str) -> None:
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise BindError(f"cannot listen on unix:{path}: {exc.strerror}") from None
    if not stat.S_ISSOCK(info.st_mode):
        raise BindError(f"cannot listen on unix:{path}: the path exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(path)
    except OSError:
        os.unlink(path)  # nobody answers: left behind by a server that did not stop cleanly
        return
    finally:
        probe.close()
    raise BindError(f"cannot listen on unix:{path}: another server is accepting on it")
